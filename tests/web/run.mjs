// Runs the web tests one file at a time (`node --test FILE` each), so that
// no two test files share the machine's cores or a browser, and so that it
// works on Node 18, whose `node --test` has no --test-concurrency. Fails
// when any file fails; prints each file's summary line and, for a failed
// file, its whole output.
//
//   node tests/web/run.mjs [DIR|FILE ...]     (default: unit, sdk, e2e)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const roots = args.length ? args.map((a) => resolve(a)) : ['unit', 'sdk', 'e2e'].map((d) => join(here, d));

function files(p) {
  if (statSync(p).isFile()) return [p];
  return readdirSync(p)
    .sort()
    .flatMap((f) => (f.endsWith('.test.mjs') || f.endsWith('.test.js') ? [join(p, f)] : []));
}

// Node 18 has the Web Crypto API (the SDK's random client_msg_ids) only
// behind a flag; 19 and later have it on globalThis.
const flags = Number(process.versions.node.split('.')[0]) < 19 ? ['--experimental-global-webcrypto'] : [];

const failed = [];
const t0 = Date.now();
for (const f of roots.flatMap(files)) {
  const name = relative(process.cwd(), f);
  const t = Date.now();
  const r = spawnSync(process.execPath, [...flags, '--test', f], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const out = `${r.stdout}${r.stderr}`;
  const count = (k) => (new RegExp(`^# ${k} (\\d+)`, 'm').exec(out) || [])[1] || '?';
  const ok = r.status === 0;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${count('pass')} passed, ${count('fail')} failed, ${count('skipped')} skipped, ${count('todo')} todo (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  if (!ok) {
    failed.push(name);
    process.stdout.write(out);
  } else if (process.env.SB_TEST_VERBOSE) {
    process.stdout.write(out);
  }
}
console.log(`${failed.length ? `${failed.length} failed: ${failed.join(', ')}` : 'all passed'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(failed.length ? 1 : 0);
