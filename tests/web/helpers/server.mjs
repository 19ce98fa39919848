// Test helpers: run the real switchboard binary on a free loopback port
// with a fresh store, and mint HS256 tokens for it.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const SECRET = 'web-test-secret';

export function serverBin() {
  const bin = process.env.SB_SERVER_BIN || join(repo, 'build', 'switchboard');
  if (!existsSync(bin)) throw new Error(`no server binary at ${bin}: build it first (make build)`);
  return bin;
}

const b64url = (b) => Buffer.from(b).toString('base64url');

/** An HS256 token as the server expects (docs/protocol.md, Identity). */
export function token(sub, role, { secret = SECRET, expS = 3600, locale = '' } = {}) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = { sub, role, exp: Math.floor(Date.now() / 1000) + expS };
  if (locale) claims.locale = locale;
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/**
 * Starts the server: resolves { port, url, wsUrl, dir, stop(), proc } once
 * it prints its ready line. opts.args are extra flags; opts.web a folder;
 * opts.port a port to listen on (0: a free one); opts.dir the data folder
 * of an earlier run to serve again (default: a new one).
 */
export async function startServer({ args = [], web = null, demo = false, durability = 'os', port: listenPort = 0, dir: dataDir = null } = {}) {
  const dir = dataDir || mkdtempSync(join(tmpdir(), 'sbweb-'));
  // No SEND rate limit: tests fill conversations faster than people type.
  const argv = ['--listen', `127.0.0.1:${listenPort}`, '--data', dir, '--durability', durability, '--quiet', '--sends-per-s', '0', ...args];
  if (demo) argv.push('--demo');
  else argv.push('--secret', SECRET);
  if (web) argv.push('--web', web);
  const proc = spawn(serverBin(), argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const port = await new Promise((res, rej) => {
    let out = '';
    const t = setTimeout(() => rej(new Error(`server did not start: ${out} ${err}`)), 15000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /ready on port (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        res(Number(m[1]));
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(t);
      rej(new Error(`server exited ${code}: ${err}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    port,
    url,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    dir,
    proc,
    stderr: () => err,
    // SIGTERM (the server drains), then the data folder goes unless keep.
    async stop({ keep = false } = {}) {
      if (proc.exitCode === null) {
        const done = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await done;
        clearTimeout(t);
      }
      if (!keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A loopback port free at the time of the call. */
export async function freePort() {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise((res) => s.listen(0, '127.0.0.1', res));
  const { port } = s.address();
  await new Promise((res) => s.close(res));
  return port;
}

/** Polls cond() every 10 ms until it is true or ms pass. */
export async function until(cond, ms = 5000, what = 'condition') {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
