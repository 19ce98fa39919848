// Builds the web folder: generates the protocol descriptor from
// proto/switchboard.proto (protobufjs' parser, at build time only), then
// bundles the pages with esbuild into dist/. No CDN at run time: the
// bundles carry protobufjs' light runtime and the descriptor.
//
//   node build.mjs            gen + bundle (minified) into dist/
//   node build.mjs gen        only gen/proto.json (for the node tests)
import { mkdirSync, writeFileSync, copyFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const here = dirname(fileURLToPath(import.meta.url));
const protoFile = join(here, '..', 'proto', 'switchboard.proto');
const genDir = join(here, 'gen');
const distDir = join(here, 'dist');

function gen() {
  const root = new protobuf.Root();
  root.loadSync(protoFile, { keepCase: true });
  root.resolveAll();
  mkdirSync(genDir, { recursive: true });
  writeFileSync(join(genDir, 'proto.json'), JSON.stringify(root.toJSON()));
}

async function bundle() {
  const esbuild = await import('esbuild');
  mkdirSync(join(distDir, 'assets'), { recursive: true });
  const t0 = Date.now();
  await esbuild.build({
    entryPoints: {
      customer: join(here, 'src/pages/customer.js'),
      agent: join(here, 'src/pages/agent.js'),
      style: join(here, 'src/pages/style.css'),
    },
    outdir: join(distDir, 'assets'),
    bundle: true,
    format: 'esm',
    target: ['chrome110', 'firefox110', 'safari16'],
    // SB_WEB_MINIFY=0: readable names in profiles (tests/web/bench.mjs
    // SB_BENCH_TRACE); the served build is minified.
    minify: process.env.SB_WEB_MINIFY !== '0',
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const f of readdirSync(join(here, 'src/pages'))) {
    if (f.endsWith('.html') || f.endsWith('.svg') || f.endsWith('.png'))
      copyFileSync(join(here, 'src/pages', f), join(distDir, f));
  }
  const sizes = readdirSync(join(distDir, 'assets'))
    .filter((f) => !f.endsWith('.map'))
    .map((f) => `${f} ${(statSync(join(distDir, 'assets', f)).size / 1024).toFixed(1)} KiB`);
  console.log(`web: built dist/ in ${Date.now() - t0} ms: ${sizes.join(', ')}`);
}

gen();
if (process.argv[2] !== 'gen') await bundle();
