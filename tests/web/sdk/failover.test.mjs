// The JS SDK's list of server URLs against the real server binary over
// loopback, the shape of the C suite's integ_failover: a port nobody
// listens on, the server, and a port the server is not on yet. While a
// customer and an agent send, the server gets SIGTERM (it drains: close
// 1001), exits, and starts again on the third port with the same store;
// both clients move there by themselves, every message is acknowledged
// once and surfaced by both, in order, exactly once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from '../helpers/deps.mjs';
import { Client, SbError } from '../../../web/src/sdk/index.js';
import { codec } from '../../../web/src/sdk/schema.js';
import { startServer, token, until, freePort } from '../helpers/server.mjs';

const PER_SIDE = 200;
const cleanups = [];

after(async () => {
  for (const f of cleanups.reverse()) await f();
});

function client(user, role, url, opts = {}) {
  const c = new Client({
    url,
    token: token(user, role),
    deviceId: `${user}-dev`,
    codec,
    WebSocket,
    window: null,
    tickMs: 20,
    backoffMsBase: 20,
    backoffMsMax: 200,
    ...opts,
  });
  const rec = { c, msgs: [], sts: new Map(), codes: [], user };
  c.on('message', (m) => rec.msgs.push(m));
  c.on('status', (i) => {
    if (!rec.sts.has(i.clientMsgId)) rec.sts.set(i.clientMsgId, []);
    rec.sts.get(i.clientMsgId).push(i.status);
  });
  c.on('state', (s) => {
    if (s === 'backoff') rec.codes.push(c.core.closeCode);
  });
  cleanups.push(() => c.stop());
  c.start();
  return rec;
}

const sentCount = (rec) => [...rec.sts.values()].filter((l) => l.includes('sent')).length;

test('a bad URL in the list is refused at once', () => {
  assert.throws(
    () => new Client({ url: ['ws://127.0.0.1:1/ws', 'http://127.0.0.1/ws'], token: 't', deviceId: 'd', codec, WebSocket, window: null }),
    (e) => e instanceof SbError && e.code === 'EINVAL',
  );
});

test('the node moves to another URL of the list under load: each message acked once, surfaced in order once', async () => {
  const srv = await startServer();
  let srv2 = null;
  cleanups.push(async () => {
    if (srv2) await srv2.stop();
    else await srv.stop();
  });
  const later = await freePort();
  const dead = 'ws://127.0.0.1:1/ws';
  const laterUrl = `ws://127.0.0.1:${later}/ws`;
  const urls = [dead, srv.wsUrl, laterUrl];
  const alice = client('alice', 'customer', urls, { urlsInOrder: true });
  const bob = client('bob', 'agent', urls); // a random order
  await alice.c.ready();
  await bob.c.ready();
  assert.equal(alice.c.serverUrl, srv.wsUrl);
  assert.equal(bob.c.serverUrl, srv.wsUrl);
  assert.equal(alice.c.stats().urlSwitches, 1); // the dead port first
  const conv = (await alice.c.open(['bob'], { title: 'failover' })).conv_id;

  // Both sides send, one each every tick, until PER_SIDE each.
  const sent = { alice: 0, bob: 0 };
  const pump = setInterval(() => {
    for (const r of [alice, bob]) if (sent[r.user] < PER_SIDE) r.c.send(conv, { body: `${r.user} #${sent[r.user]++}` });
  }, 5);
  cleanups.push(() => clearInterval(pump));
  await until(() => sentCount(alice) + sentCount(bob) >= PER_SIDE / 2, 10000, 'some acked');

  // SIGTERM: the node drains and exits; the same store comes back on
  // the third URL while the clients go on sending.
  const atSignal = sent.alice + sent.bob;
  await srv.stop({ keep: true });
  srv2 = await startServer({ port: later, dir: srv.dir });
  const atRestart = sent.alice + sent.bob;
  const tUp = Date.now();
  await until(
    () => [alice, bob].every((r) => r.c.state === 'ready' && r.c.serverUrl === laterUrl),
    10000,
    'both on the third URL',
  );
  const moveMs = Date.now() - tUp;
  for (const r of [alice, bob]) assert.ok(r.codes.includes(1001), `${r.user} saw the drain's 1001: ${r.codes}`);

  await until(() => sent.alice === PER_SIDE && sent.bob === PER_SIDE, 10000, 'all queued');
  await until(() => sentCount(alice) === PER_SIDE && sentCount(bob) === PER_SIDE, 20000, 'all acked');
  clearInterval(pump);
  const n = 2 * PER_SIDE;
  await until(() => [alice, bob].every((r) => r.msgs.filter((m) => m.conv_id === conv).length >= n), 20000, 'all surfaced');
  for (const r of [alice, bob]) {
    for (const l of r.sts.values()) {
      assert.equal(l.filter((s) => s === 'sent').length, 1);
      assert.ok(!l.includes('failed'));
    }
    const got = r.msgs.filter((m) => m.conv_id === conv);
    assert.deepEqual(
      got.map((m) => m.seq),
      Array.from({ length: n }, (_, i) => i + 1),
    );
    const bodies = new Set(got.map((m) => m.body));
    assert.equal(bodies.size, n);
    for (const who of ['alice', 'bob']) for (let i = 0; i < PER_SIDE; i++) assert.ok(bodies.has(`${who} #${i}`));
  }
  // Both saw the same message at each seq.
  const ids = (r) => r.msgs.filter((m) => m.conv_id === conv).map((m) => m.msg_id);
  assert.deepEqual(ids(alice), ids(bob));
  console.log(
    `failover: ${atSignal} sends made at SIGTERM, ${atRestart} when the server was up again on the third URL, both clients there ${moveMs} ms later; ${n} messages each acked once`,
  );
});
