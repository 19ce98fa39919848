// The web folder's npm packages (web/node_modules, installed by `npm ci`
// from web/package-lock.json), for the tests that live outside it.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { repo } from './server.mjs';

const require = createRequire(join(repo, 'web', 'package.json'));

export const WebSocket = require('ws');
export function playwright() {
  return require('playwright-core');
}
