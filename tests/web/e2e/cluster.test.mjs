// The two pages through `make cluster` (scripts/cluster.sh: PostgreSQL,
// nats-server, three demo nodes, HAProxy), on ports of the test's own: a
// customer is handed to agent bob and they chat both ways while two of the
// three nodes are stopped one after the other (SIGTERM: they drain); the
// pages reconnect through HAProxy to the nodes left and nothing is lost.
// Skipped where haproxy, nats-server or PostgreSQL is missing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { serverBin, repo, freePort, until } from '../helpers/server.mjs';
import { launch } from '../helpers/browser.mjs';
import { customer, agent, send, texts, handOff, convId, openOnAgent } from '../helpers/pages.mjs';

const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const pg = existsSync('/usr/lib/postgresql') && readdirSync('/usr/lib/postgresql').length > 0;
const missing = ['haproxy', 'nats-server'].filter((c) => !have(c));
if (!pg) missing.push('PostgreSQL');

// A base port b with b..b+2 (the nodes) and b+100..b+102 (their
// operations ports) free, below Linux's ephemeral range.
async function freeRun() {
  const { createServer } = await import('node:net');
  const free = (port) =>
    new Promise((res) => {
      const srv = createServer();
      srv.once('error', () => res(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
    });
  for (let i = 0; i < 100; i++) {
    const b = 20000 + Math.floor(Math.random() * 12000);
    let ok = true;
    for (const p of [b, b + 1, b + 2, b + 100, b + 101, b + 102]) ok = ok && (await free(p));
    if (ok) return b;
  }
  throw new Error('no free ports');
}

let cl;
let out = '';
let dir;
let browser;
let lb;

before(async () => {
  if (missing.length) return;
  dir = mkdtempSync('/tmp/sbwebcl.');
  chmodSync(dir, 0o755); // PostgreSQL runs as another user
  const listen = await freePort();
  const nodePort = await freeRun();
  cl = spawn(join(repo, 'scripts', 'cluster.sh'), [dirname(serverBin()), join(dir, 'c')], {
    cwd: repo,
    env: {
      ...process.env,
      LISTEN: `127.0.0.1:${listen}`,
      NATS_PORT: String(await freePort()),
      NODE_PORT: String(nodePort),
      ADMIN_PORT: String(nodePort + 100),
    },
  });
  cl.stdout.on('data', (d) => (out += d));
  cl.stderr.on('data', (d) => (out += d));
  await until(() => out.includes('Switchboard cluster') || cl.exitCode !== null, 60000, 'the cluster');
  assert.ok(out.includes('Switchboard cluster'), out);
  lb = { url: `http://127.0.0.1:${listen}` };
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (cl && cl.exitCode === null) {
    cl.kill('SIGTERM');
    await until(() => cl.exitCode !== null, 30000, 'the cluster to stop').catch(() => cl.kill('SIGKILL'));
  }
  if (dir) spawnSync(join(repo, 'scripts', 'pgtest.sh'), ['stop', join(dir, 'c', 'pg')]);
  if (dir) spawnSync('rm', ['-rf', dir]);
});

test('customer and agent chat through HAProxy while nodes drain', { skip: missing.length ? `no ${missing.join(', ')}` : false }, async () => {
  const bob = await agent(browser, lb, 'bob');
  const cust = await customer(browser, lb, 'alice');
  await handOff(cust, 'bob');
  const id = await convId(cust);
  await openOnAgent(bob, id);
  const said = [];
  for (const node of [1, 2]) {
    const mine = `before node${node} stops`;
    await send(cust.page, mine);
    said.push(mine);
    await until(async () => (await texts(bob.page)).includes(mine), 15000, `bob sees "${mine}"`);
    spawnSync('pkill', ['-TERM', '-f', '--', `--data ${join(dir, 'c', `node${node}`)}`]);
    const theirs = `bob after node${node} stopped`;
    await send(bob.page, theirs);
    said.push(theirs);
    await until(async () => (await texts(cust.page)).includes(theirs), 20000, `alice sees "${theirs}"`);
  }
  for (const p of [cust.page, bob.page]) {
    const t = await texts(p);
    for (const s of said) assert.equal(t.filter((x) => x === s).length, 1, `${s} once`);
  }
});
