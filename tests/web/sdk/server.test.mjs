// The JS SDK against the real server binary over loopback (the `ws`
// package stands in for the browser's WebSocket under node 20). Both
// encodings; delivery in order and exactly once; statuses and receipts;
// resend under the same client_msg_id after a dropped connection; SYNC
// after being away; history pages; the demo token endpoint.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from '../helpers/deps.mjs';
import { Client, ChatStore } from '../../../web/src/sdk/index.js';
import { codec } from '../../../web/src/sdk/schema.js';
import { join } from 'node:path';
import { startServer, token, until, repo } from '../helpers/server.mjs';

let srv;
const clients = [];

before(async () => {
  srv = await startServer();
});

after(async () => {
  for (const c of clients) c.stop();
  await srv.stop();
});

function client(user, role, opts = {}) {
  const c = new Client({
    url: srv.wsUrl,
    token: token(user, role),
    deviceId: opts.deviceId || `${user}-dev`,
    codec,
    WebSocket,
    window: null,
    encoding: opts.encoding || 'proto',
    tickMs: 20,
    ...opts,
  });
  const rec = { msgs: [], sts: new Map(), c, store: new ChatStore(c) };
  c.on('message', (m) => rec.msgs.push(m));
  c.on('status', (i) => {
    if (!rec.sts.has(i.clientMsgId)) rec.sts.set(i.clientMsgId, []);
    rec.sts.get(i.clientMsgId).push(i.status);
  });
  clients.push(c);
  c.start();
  return rec;
}

const bodies = (rec, conv) => rec.msgs.filter((m) => m.conv_id === conv).map((m) => m.body);
const seqsOf = (rec, conv) => rec.msgs.filter((m) => m.conv_id === conv).map((m) => m.seq);

test('customer (JSON) and agent (protobuf) chat both ways; statuses reach read', async () => {
  const bob = client('bob', 'agent', { encoding: 'proto' });
  await bob.c.ready();
  const alice = client('alice', 'customer', { encoding: 'json' });
  await alice.c.ready();
  assert.equal(alice.c.stats().encoding, 'json');
  assert.equal(bob.c.stats().encoding, 'proto');
  const conv = await alice.c.open(['bob'], { title: 'help' });
  assert.ok(conv.conv_id > 0);
  const ids = ['hello', 'my order', '你好 🙂'].map((b) => alice.c.send(conv.conv_id, { body: b }));
  await until(() => bodies(bob, conv.conv_id).length === 3, 5000, 'bob gets 3');
  assert.deepEqual(bodies(bob, conv.conv_id), ['hello', 'my order', '你好 🙂']);
  assert.deepEqual(seqsOf(bob, conv.conv_id), [1, 2, 3]);
  // alice's own messages surfaced at SEND_ACK, in order (her acks may
  // reach her after bob's pushes reach him)
  await until(() => seqsOf(alice, conv.conv_id).length === 3, 5000, 'alice acked 3');
  assert.deepEqual(seqsOf(alice, conv.conv_id), [1, 2, 3]);
  await until(() => ids.every((id) => alice.sts.get(id).includes('delivered')), 5000, 'delivered');
  bob.store.markRead(conv.conv_id, 3);
  await until(() => ids.every((id) => alice.sts.get(id).at(-1) === 'read'), 5000, 'read');
  for (const id of ids) assert.deepEqual(alice.sts.get(id), ['sending', 'sent', 'delivered', 'read']);
  // and back, with a quote
  bob.c.send(conv.conv_id, { body: 'hi alice', quoteSeq: 2 });
  await until(() => bodies(alice, conv.conv_id).length === 4, 5000, 'alice gets the reply');
  const reply = alice.msgs.at(-1);
  assert.equal(reply.sender, 'bob');
  assert.equal(reply.quote_seq, 2);
  // the store's view: one list, seq-sorted, statuses from receipts
  const view = alice.store.conv(conv.conv_id);
  assert.deepEqual(view.list.items.map((e) => e.seq), [1, 2, 3, 4]);
  assert.equal(view.list.get(1).status, 'read');
  assert.equal(view.unread, 1);
  alice.c.stop();
  bob.c.stop();
});

test('a dropped connection: resends keep their ids, the server answers duplicate, each arrives once', async () => {
  const bob = client('bob2', 'agent');
  await bob.c.ready();
  const alice = client('alice2', 'customer');
  await alice.c.ready();
  const conv = await alice.c.open(['bob2']);
  const dups = [];
  alice.c.on('status', (i) => i.status === 'sent' && i.duplicate && dups.push(i.clientMsgId));
  const n = 40;
  // The SEND_ACKs are lost: the socket swallows what comes in, and is cut
  // once the server has stored (and pushed to bob) every message.
  const ws = alice.c.ws;
  ws.onmessage = () => {};
  for (let i = 0; i < n; i++) alice.c.send(conv.conv_id, { body: `m${i}` });
  await until(() => seqsOf(bob, conv.conv_id).length >= n, 15000, 'stored');
  ws.terminate();
  await until(() => alice.c.stats().outboxLen === 0, 15000, 'answered after reconnect');
  await until(() => seqsOf(bob, conv.conv_id).length >= n, 15000, 'bob gets all');
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(bodies(bob, conv.conv_id), Array.from({ length: n }, (_, i) => `m${i}`));
  assert.deepEqual(seqsOf(alice, conv.conv_id), Array.from({ length: n }, (_, i) => i + 1));
  const st = alice.c.stats();
  assert.ok(st.disconnects >= 1);
  assert.equal(st.outboxLen, 0);
  // Every send reached SENT exactly once.
  for (const [, s] of alice.sts) assert.equal(s.filter((x) => x === 'sent').length, 1);
  assert.ok(st.resends > 0, 'the cut left sends unanswered');
  assert.ok(dups.length > 0, 'the server answered some resends as duplicates');
  console.log(`resends ${st.resends}, duplicates answered ${dups.length}`);
  alice.c.stop();
  bob.c.stop();
});

test('away and back: SYNC brings what was missed, in order, once', async () => {
  const bob = client('bob3', 'agent', { deviceId: 'bob3-laptop' });
  await bob.c.ready();
  const alice = client('alice3', 'customer');
  await alice.c.ready();
  const conv = await alice.c.open(['bob3']);
  alice.c.send(conv.conv_id, { body: 'before' });
  await until(() => seqsOf(bob, conv.conv_id).length === 1, 5000, 'first');
  bob.c.stop();
  for (let i = 0; i < 20; i++) alice.c.send(conv.conv_id, { body: `away ${i}` });
  await until(() => alice.c.stats().outboxLen === 0, 5000, 'all stored');
  // the same device comes back with its cursor (as a page would persist it)
  const back = client('bob3', 'agent', { deviceId: 'bob3-laptop' });
  back.c.core.setCursor(conv.conv_id, 1);
  await until(() => seqsOf(back, conv.conv_id).length === 20, 5000, 'synced');
  assert.deepEqual(seqsOf(back, conv.conv_id), Array.from({ length: 20 }, (_, i) => i + 2));
  assert.equal(back.c.stats().duplicates, 0);
  // a new device of bob's starts from the tail with initialWindow
  const fresh = client('bob3', 'agent', { deviceId: 'bob3-phone', initialWindow: 5 });
  await until(() => seqsOf(fresh, conv.conv_id).length === 5, 5000, 'window');
  assert.deepEqual(seqsOf(fresh, conv.conv_id), [17, 18, 19, 20, 21]);
  // ...and pages older history on demand
  const store = fresh.store;
  assert.equal(await store.loadOlder(conv.conv_id, 10), 10);
  assert.deepEqual(store.conv(conv.conv_id).list.items.map((e) => e.seq).slice(0, 3), [7, 8, 9]);
  await store.loadOlder(conv.conv_id, 10);
  assert.equal(store.conv(conv.conv_id).list.firstSeq(), 1);
  assert.equal(store.conv(conv.conv_id).hasMoreBefore, false);
  assert.equal(await store.loadOlder(conv.conv_id, 10), 0);
  for (const r of [alice, back, fresh]) r.c.stop();
});

test('a burst arrives in PUSH frames of several messages, in order and once, in both encodings', async () => {
  // Each of bob's devices counts the messages of every PUSH it decodes.
  const sizes = { proto: [], json: [] };
  const counting = (enc) => ({
    ...codec,
    decode(data, e) {
      const f = codec.decode(data, e);
      if (f.body === 'push') sizes[enc].push(f.push.messages.length);
      return f;
    },
  });
  const devs = ['proto', 'json'].map((enc) =>
    client('bob5', 'agent', { encoding: enc, deviceId: `bob5-${enc}`, codec: counting(enc) }),
  );
  for (const d of devs) await d.c.ready();
  const alice = client('alice5', 'customer');
  await alice.c.ready();
  const conv = await alice.c.open(['bob5']);
  const n = 60; // within the server's pending sends: one write, few commits
  for (let i = 0; i < n; i++) alice.c.send(conv.conv_id, { body: `b${i}` });
  const want = Array.from({ length: n }, (_, i) => `b${i}`);
  for (const d of devs) {
    await until(() => seqsOf(d, conv.conv_id).length >= n, 10000, 'bob gets the burst');
    assert.deepEqual(bodies(d, conv.conv_id), want);
    assert.deepEqual(seqsOf(d, conv.conv_id), Array.from({ length: n }, (_, i) => i + 1));
    assert.equal(d.c.stats().duplicates, 0);
  }
  for (const enc of ['proto', 'json']) {
    assert.equal(sizes[enc].reduce((a, b) => a + b, 0), n, `${enc}: no message pushed twice`);
    assert.ok(Math.max(...sizes[enc]) > 1, `${enc}: several messages in a PUSH (${sizes[enc]})`);
  }
  console.log(`PUSH sizes: proto ${sizes.proto.join(' ')}; json ${sizes.json.join(' ')}`);
  for (const r of [alice, ...devs]) r.c.stop();
});

test('a failed send (not a member) and its retry action', async () => {
  const bob = client('bob4', 'agent');
  await bob.c.ready();
  const eve = client('eve4', 'customer');
  await eve.c.ready();
  const alice = client('alice4', 'customer');
  await alice.c.ready();
  const conv = await alice.c.open(['bob4']);
  const id = eve.c.send(conv.conv_id, { body: 'let me in' });
  await until(() => (eve.sts.get(id) || []).includes('failed'), 5000, 'failed');
  assert.equal(eve.c.core.pending(id).convId, conv.conv_id);
  eve.c.retry(id);
  await until(() => eve.sts.get(id).filter((s) => s === 'failed').length === 2, 5000, 'failed again');
  assert.deepEqual(eve.sts.get(id), ['sending', 'failed', 'sending', 'failed']);
  for (const r of [bob, eve, alice]) r.c.stop();
});

test('customer-service frames get their answers: an agent tags, a customer may not', async () => {
  const bob = client('bob5', 'agent');
  await bob.c.ready();
  const alice = client('alice5', 'customer');
  await alice.c.ready();
  const conv = await alice.c.open(['bob5']);
  await bob.c.tag(conv.conv_id, 0, ['vip']);
  await assert.rejects(alice.c.tag(conv.conv_id, 0, ['spam']), (e) => e.code === 'ERR_FORBIDDEN');
  for (const c of [bob, alice]) c.c.stop();
});

test('demo token endpoint: only with --demo (and from loopback)', async () => {
  const demo = await startServer({ demo: true });
  try {
    const r = await fetch(`${demo.url}/demo/token?user=carol&role=customer&locale=zh-CN`);
    assert.equal(r.status, 200);
    const { token: tok } = await r.json();
    const c = new Client({ url: demo.wsUrl, token: tok, deviceId: 'carol-1', codec, WebSocket, window: null, tickMs: 20 });
    c.start();
    await c.ready();
    assert.equal(c.session.user_id, 'carol');
    assert.equal(c.session.role, 'ROLE_CUSTOMER');
    c.stop();
    assert.equal((await fetch(`${demo.url}/demo/token?user=carol&role=admin`)).status, 400);
    assert.equal((await fetch(`${demo.url}/demo/token?user=a%20b&role=agent`)).status, 400);
  } finally {
    await demo.stop();
  }
  assert.equal((await fetch(`${srv.url}/demo/token?user=carol&role=customer`)).status, 404);
});

test('admin: desk ops answer with the server text; other roles and refused changes reject', async () => {
  const dsrv = await startServer({ args: ['--desk', join(repo, 'conf', 'desk.json')] });
  const mk = (user, role) => {
    const c = new Client({ url: dsrv.wsUrl, token: token(user, role), deviceId: `${user}-1`, codec, WebSocket, window: null, tickMs: 20 });
    c.start();
    return c;
  };
  const root = mk('root', 'admin');
  const ann = mk('ann', 'agent');
  try {
    await root.ready();
    await ann.ready();
    const doc = JSON.parse(await root.admin('desk-show'));
    assert.equal(doc.desks[0].id, 'support');
    const group = doc.agents[0].groups[0];
    assert.match(await root.admin('desk-agent-set', { id: 'dan', groups: [group], capacity: 2 }), /agent dan added/);
    const after = JSON.parse(await root.admin('desk-show'));
    assert.deepEqual(after.agents.find((a) => a.id === 'dan'), { id: 'dan', groups: [group], capacity: 2 });
    await assert.rejects(root.admin('desk-agent-set', { id: 'eve' }), (e) => e.code === 'ERR_INVALID' && /groups/.test(e.text));
    await assert.rejects(ann.admin('desk-show'), (e) => e.code === 'ERR_FORBIDDEN');
  } finally {
    root.stop();
    ann.stop();
    await dsrv.stop();
  }
});
