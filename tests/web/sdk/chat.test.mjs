// The ChatStore against the real server binary: what the pages show live
// (recalls, refused messages, typing that ends, tags) and the outbox kept
// across a reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { WebSocket } from '../helpers/deps.mjs';
import { Client, ChatStore, MemoryOutbox } from '../../../web/src/sdk/index.js';
import { codec } from '../../../web/src/sdk/schema.js';
import { startServer, token, until, repo } from '../helpers/server.mjs';

let srv;
const clients = [];

before(async () => {
  srv = await startServer({ args: ['--filter', join(repo, 'conf', 'filter')] });
});

after(async () => {
  for (const c of clients) c.stop();
  await srv.stop();
});

async function client(user, role, opts = {}) {
  const c = new Client({ url: srv.wsUrl, token: token(user, role), deviceId: opts.deviceId || `${user}-dev`, codec, WebSocket, window: null, tickMs: 20, ...opts });
  const store = new ChatStore(c);
  clients.push(c);
  await c.restoreOutbox();
  c.start();
  await c.ready();
  return { c, store };
}

const bodyAt = (store, conv, seq) => store.conv(conv).list.get(seq)?.msg.body;

test('a recall is applied live on both sides: the event names [user, seq]', async () => {
  const bob = await client('rbob', 'agent');
  const amy = await client('ramy', 'customer');
  const conv = (await amy.c.open(['rbob'])).conv_id;
  amy.c.send(conv, { body: 'my card is 4111 1111 1111 1111' });
  await until(() => bodyAt(bob.store, conv, 1), 5000, 'bob has it');
  bob.c.send(conv, { body: 'about your card', quoteSeq: 1 });
  await until(() => amy.store.conv(conv).list.get(2), 5000, 'amy has the quote');
  await amy.c.recall(conv, 1);
  for (const s of [amy.store, bob.store]) {
    await until(() => s.conv(conv).list.get(1).msg.recalled, 5000, 'recalled live');
    assert.equal(bodyAt(s, conv, 1), '');
    const q = s.conv(conv).list.get(2).msg;
    assert.ok(!q.quote || q.quote.body === '', 'the quote of it is emptied too');
  }
  assert.notEqual(bob.store.conv(conv).list.get(3)?.msg.event?.args[1], undefined);
});

test('a blocked message fails with its reason and is not retryable', async () => {
  const bob = await client('bbob', 'agent');
  const amy = await client('bamy', 'customer');
  const conv = (await amy.c.open(['bbob'])).conv_id;
  const key = amy.c.send(conv, { body: 'you badword' });
  await until(() => amy.store.conv(conv).list.pendingEntry(key)?.status === 'failed', 5000, 'failed');
  const e = amy.store.conv(conv).list.pendingEntry(key);
  assert.equal(e.err, 'ERR_BLOCKED');
  assert.equal(e.retryable, false);
  amy.store.discard(key);
  assert.equal(amy.store.conv(conv).list.pendingEntry(key), undefined);
  assert.equal(amy.c.core.pending(key), undefined);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(bob.store.conv(conv).list.length, 0, 'nothing delivered');
});

test('the outbox survives a reload: pending sends go out once, failed ones come back failed', async () => {
  const bob = await client('obob', 'agent');
  const box = new MemoryOutbox();
  const first = await client('oamy', 'customer', { outbox: box, deviceId: 'oamy-tab1' });
  const conv = (await first.c.open(['obob'])).conv_id;
  // Refused by the server: kept as failed, with the reason.
  const blocked = first.c.send(conv, { body: 'badword' });
  await until(async () => (await box.load()).some((r) => r.key === blocked && r.err === 'ERR_BLOCKED'), 5000, 'failed and kept');
  // Stored, but the page goes before it hears so (its socket swallows
  // what comes in): the record stays.
  first.c.ws.onmessage = () => {};
  first.c.send(conv, { body: 'stored before the reload' });
  await until(() => bob.store.conv(conv).list.length === 1, 5000, 'stored');
  // Not sent at all: queued while the connection was down.
  first.c.core.disconnect('ENETDOWN', Date.now());
  first.c.core.reconnectAtMs = Infinity;
  first.c.send(conv, { body: 'typed offline' });
  first.c.stop();
  assert.equal((await box.load()).length, 3);

  const second = await client('oamy', 'customer', { outbox: box, deviceId: 'oamy-tab2' });
  await until(() => bob.store.conv(conv).list.length === 2, 5000, 'the offline one arrives');
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(
    bob.store.conv(conv).list.items.map((e) => e.msg.body),
    ['stored before the reload', 'typed offline'],
    'once each',
  );
  const list = second.store.conv(conv).list;
  await until(() => list.pending.length === 1, 5000, 'only the failed one left pending');
  assert.equal(list.pending[0].status, 'failed');
  assert.equal(list.pending[0].err, 'ERR_BLOCKED');
  assert.deepEqual((await box.load()).map((r) => r.key), [blocked]);
});

test('a typing notice ends by itself after its time', async () => {
  const bob = await client('tbob', 'agent');
  const amy = await client('tamy', 'customer');
  const conv = (await amy.c.open(['tbob'])).conv_id;
  const changes = [];
  bob.store.onChange((convs, kinds) => kinds.has('typing') && changes.push(Date.now()));
  amy.c.typing(conv, true);
  await until(() => bob.store.conv(conv).typing, 5000, 'typing shown');
  const t0 = Date.now();
  await until(() => !bob.store.conv(conv).typing, 8000, 'typing ends');
  const took = Date.now() - t0;
  assert.ok(took > 5000 && took < 7000, `ended after ${took} ms`);
  assert.ok(changes.length >= 2, 'the pages were told');
});

test('a tag on a message shows on the tagging page once stored', async () => {
  const bob = await client('gbob', 'agent');
  const amy = await client('gamy', 'customer');
  const conv = (await amy.c.open(['gbob'])).conv_id;
  amy.c.send(conv, { body: 'refund please' });
  await until(() => bob.store.conv(conv).list.get(1), 5000, 'bob has it');
  await bob.store.tag(conv, 1, ['refund']);
  assert.deepEqual(bob.store.conv(conv).list.get(1).msg.tags, ['refund']);
  await bob.store.tag(conv, 0, ['vip']);
  assert.deepEqual(bob.store.conv(conv).tags, ['vip']);
});
