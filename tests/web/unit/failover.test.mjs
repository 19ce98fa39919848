// The JS core's list of server URLs, driven with no sockets and a fake
// clock: the cases of the C core's "several servers" tests
// (tests/client/test_client_core.c, test_urls_*).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientCore, State, Close, URLS_MAX, STABLE_MS } from '../../../web/src/sdk/core.js';
import { fromHex } from '../../../web/src/sdk/ids.js';

const URLS = ['ws://a:1/ws', 'ws://b:2/ws', 'ws://c:3/ws'];

// A core with recorded callbacks and io. rand 'max': every random byte
// 0xff (the top of every jitter range); else a seeded generator.
function h(cfg = {}, { rand = 'lcg', stopInBackoff = false } = {}) {
  let seed = 7;
  const t = { now: 1000, states: [], msgs: [], sts: [], tried: [], closes: [], out: [], backoffCodes: [] };
  t.cc = new ClientCore(
    { token: 'tok', deviceId: 'dev-a', urlsInOrder: true, ...cfg },
    {
      onState: (s, err) => {
        t.states.push([s, err]);
        if (s === State.BACKOFF) t.backoffCodes.push(t.cc.closeCode);
        if (stopInBackoff && s === State.BACKOFF) t.cc.stop();
      },
      onMessage: (m) => t.msgs.push(m),
      onSendStatus: (i) => t.sts.push(i),
    },
    {
      connect: () => t.tried.push(t.cc.urlIndex()),
      close: (code) => t.closes.push(code),
      randBytes: (n) => {
        const b = new Uint8Array(n);
        for (let i = 0; i < n; i++) b[i] = rand === 'max' ? 0xff : (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
        return b;
      },
    },
  );
  t.pull = () => (t.out = t.cc.drain());
  t.kind = (k) => t.out.filter((f) => f[k]);
  t.feed = (f) => t.cc.onFrame({ rid: 0, ...f, body: Object.keys(f).find((k) => k !== 'rid') }, t.now);
  // From CONNECTING: open, HELLO out, WELCOME in; t.out holds what
  // followed (the SYNC, resends).
  t.welcome = () => {
    assert.equal(t.cc.state, State.CONNECTING);
    t.cc.onOpen(t.now);
    t.pull();
    const hello = t.kind('hello')[0];
    assert.ok(hello);
    t.feed({
      rid: hello.rid,
      welcome: { user_id: 'alice', role: 'ROLE_CUSTOMER', session_id: 77, server_ts: 5, heartbeat_ms: 30000, frame_bytes_max: 65536, body_bytes_max: 8192, pending_sends_max: 16, sync_page_max: 200 },
    });
    assert.equal(t.cc.state, State.READY);
    t.pull();
  };
  // The last two states: BACKOFF (err), then CONNECTING to URL want at once.
  t.switched = (want, err) => {
    const n = t.states.length;
    assert.deepEqual(t.states[n - 2], [State.BACKOFF, err]);
    assert.equal(t.states[n - 1][0], State.CONNECTING);
    assert.equal(t.cc.backoffMs, 0);
    assert.equal(t.tried.at(-1), want);
    assert.equal(t.cc.url(), (cfg.url || URLS)[want]);
  };
  t.msg = (conv, seq, sender = 'bob', body) => ({
    msg_id: conv * 1000 + seq,
    conv_id: conv,
    seq,
    sender,
    sender_device: sender === 'alice' ? 'dev-a' : 'dev-b',
    client_msg_id: new Uint8Array(16),
    type: 'MSG_TEXT',
    body: body ?? `c${conv}s${seq}`,
    quote_seq: 0,
    tags: [],
    server_ts: seq,
  });
  return t;
}

test('failed attempts go round the list at once; a backoff per round, growing per round', () => {
  const t = h({ url: URLS }, { rand: 'max' });
  t.cc.start(t.now);
  assert.deepEqual(t.tried, [0]);
  assert.equal(t.cc.url(), 'ws://a:1/ws');
  for (let round = 0; round < 3; round++) {
    const want = 250 * 2 ** round;
    for (let i = 0; i < 3; i++) {
      assert.equal(t.tried.length, 1 + round * 3 + i);
      assert.equal(t.tried.at(-1), i);
      t.cc.onClose('ECONNREFUSED', 0, t.now);
      if (i < 2) t.switched(i + 1, 'ECONNREFUSED');
    }
    assert.equal(t.cc.state, State.BACKOFF);
    assert.equal(t.cc.backoffMs, want);
    assert.equal(t.cc.urlIndex(), 0);
    const n = t.tried.length;
    t.now += want - 1;
    t.cc.tick(t.now);
    assert.equal(t.tried.length, n);
    t.now += 1;
    t.cc.tick(t.now);
    assert.equal(t.tried.length, n + 1);
    assert.equal(t.tried.at(-1), 0);
  }
  assert.equal(t.cc.stats().urlSwitches, 6);
  // READY on a for a while, then lost: b and c at once, then the first
  // backoff (the WELCOME reset it).
  t.welcome();
  t.now += STABLE_MS;
  t.cc.onClose('ECONNRESET', 0, t.now);
  t.switched(1, 'ECONNRESET');
  t.cc.onClose('ECONNREFUSED', 0, t.now);
  t.switched(2, 'ECONNREFUSED');
  t.cc.onClose('ECONNREFUSED', 0, t.now);
  assert.equal(t.cc.state, State.BACKOFF);
  assert.equal(t.cc.backoffMs, 250);
  assert.equal(t.cc.stats().urlSwitches, 8);
});

test('a close 1001 moves on at once; nodes that welcome and drop make the client wait', () => {
  const t = h({ url: URLS.slice(0, 2) }, { rand: 'max' });
  t.cc.start(t.now);
  t.welcome();
  t.cc.onClose(null, Close.GOING_AWAY, t.now);
  t.switched(1, 'ECONNRESET');
  assert.equal(t.backoffCodes.at(-1), Close.GOING_AWAY);
  t.cc.onClose('ECONNREFUSED', 0, t.now); // the round began with the 1001
  assert.equal(t.cc.state, State.BACKOFF);
  assert.equal(t.cc.backoffMs, 250);
  t.now += 250;
  t.cc.tick(t.now);
  assert.equal(t.tried.at(-1), 0);
  t.welcome();
  t.cc.onClose('ECONNRESET', 0, t.now);
  t.switched(1, 'ECONNRESET');
  t.welcome();
  t.cc.onClose(null, Close.TRY_AGAIN, t.now);
  assert.equal(t.cc.state, State.BACKOFF);
  assert.equal(t.cc.backoffMs, 250);
  // The browser's 'online' event: a full round again before a backoff.
  t.cc.kick(t.now);
  assert.equal(t.tried.at(-1), 0);
  t.cc.onClose('ECONNREFUSED', 0, t.now);
  t.switched(1, 'ECONNREFUSED');
});

test('one URL is a round of one: a backoff after every failure, even 1001', () => {
  const t = h({ url: 'ws://a:1/ws' }, { rand: 'max' });
  t.cc.start(t.now);
  t.cc.onClose('ECONNREFUSED', 0, t.now);
  assert.equal(t.cc.state, State.BACKOFF);
  assert.equal(t.cc.backoffMs, 250);
  t.now += 250;
  t.cc.tick(t.now);
  t.welcome();
  t.cc.onClose(null, Close.GOING_AWAY, t.now);
  assert.equal(t.cc.state, State.BACKOFF);
  assert.equal(t.cc.backoffMs, 250);
  assert.equal(t.cc.stats().urlSwitches, 0);
  assert.equal(t.cc.url(), 'ws://a:1/ws');
});

test('the connect timeout and a HELLO refused for now move on; a refused token stops', () => {
  let t = h({ url: URLS });
  t.cc.start(t.now);
  t.now += 10000; // connectTimeoutMs
  t.cc.tick(t.now);
  assert.equal(t.closes.length, 1);
  t.switched(1, 'ETIMEDOUT');
  t.cc.onOpen(t.now);
  t.pull();
  t.feed({ rid: t.out[0].rid, error: { code: 'ERR_UNAVAILABLE', text: 'draining' } });
  t.switched(2, 'ERR_UNAVAILABLE');
  t.cc.onOpen(t.now);
  t.pull();
  t.feed({ rid: t.out[0].rid, error: { code: 'ERR_BAD_TOKEN', text: '' } });
  assert.equal(t.cc.state, State.STOPPED);
  t.now += 100000;
  t.cc.tick(t.now);
  assert.equal(t.tried.length, 3);

  t = h({ url: URLS }, { stopInBackoff: true });
  t.cc.start(t.now);
  t.cc.onClose('ECONNREFUSED', 0, t.now);
  assert.equal(t.cc.state, State.STOPPED);
  assert.equal(t.tried.length, 1);
});

test('by default each client goes round its own random order, the same every round', () => {
  const urls = Array.from({ length: URLS_MAX }, (_, i) => `ws://n${i}:80/ws`);
  const orders = [];
  for (const seed of [1, 2]) {
    const t = h({ url: urls, urlsInOrder: false });
    for (let i = 0; i < seed; i++) t.cc.randU32(); // another stream
    t.cc.start(t.now);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < URLS_MAX; i++) {
        if (t.cc.state === State.BACKOFF) {
          t.now += 60000;
          t.cc.tick(t.now);
        }
        assert.equal(t.cc.url(), urls[t.tried.at(-1)]);
        t.cc.onClose('ECONNREFUSED', 0, t.now);
      }
    }
    assert.equal(t.tried.length, 2 * URLS_MAX);
    const first = t.tried.slice(0, URLS_MAX);
    assert.deepEqual([...first].sort((a, b) => a - b), urls.map((u, i) => i));
    assert.deepEqual(t.tried.slice(URLS_MAX), first);
    assert.notDeepEqual(first, urls.map((u, i) => i));
    orders.push(first.join());
  }
  assert.notEqual(orders[0], orders[1]);
});

test('the list is checked and copied', () => {
  const io = { connect() {}, close() {}, randBytes: (n) => new Uint8Array(n) };
  const make = (url) => new ClientCore({ token: 't', deviceId: 'd', url }, {}, io);
  assert.throws(() => make([]), { code: 'EINVAL' });
  assert.throws(() => make(Array(URLS_MAX + 1).fill('ws://x/ws')), { code: 'EINVAL' });
  assert.throws(() => make(['ws://x/ws', '']), { code: 'EINVAL' });
  assert.throws(() => make(['ws://x/ws', 5]), { code: 'EINVAL' });
  const mine = ['ws://x:1/ws', 'ws://y:2/ws'];
  const cc = make(mine);
  mine[0] = 'ws://z/ws';
  assert.equal(cc.url(), 'ws://x:1/ws');
  assert.equal(make('ws://one/ws').url(), 'ws://one/ws');
});

test('on the next node: SYNC from the cursors, sends again under their ids, nothing twice', () => {
  const t = h({ url: URLS.slice(0, 2) });
  t.cc.start(t.now);
  t.welcome();
  let sync = t.kind('sync')[0];
  t.feed({ rid: sync.rid, sync_resp: { messages: [], more: false, convs: [] } });
  t.feed({ push: { messages: [t.msg(7, 1), t.msg(7, 2)] } });
  assert.equal(t.msgs.length, 2);
  const ids = [t.cc.send(7, { body: 'one' }), t.cc.send(7, { body: 'two' })];
  t.pull();
  assert.equal(t.kind('send').length, 2);
  t.now += STABLE_MS;
  t.cc.onClose(null, Close.GOING_AWAY, t.now);
  t.switched(1, 'ECONNRESET');
  t.welcome();
  sync = t.kind('sync')[0];
  assert.deepEqual(sync.sync.cursors, [{ conv_id: 7, seq: 2 }]);
  const sends = t.kind('send');
  assert.deepEqual(
    sends.map((f) => Buffer.from(f.send.client_msg_id).toString('hex')),
    ids,
  );
  // The new node has "one" (stored before the drain) and a message from
  // the other side; seq 2 comes again and is dropped.
  t.feed({ rid: sync.rid, sync_resp: { messages: [t.msg(7, 2), t.msg(7, 3, 'alice', 'one'), t.msg(7, 4)], more: false, convs: [] } });
  const ack = (key, seq, duplicate) => t.feed({ send_ack: { client_msg_id: fromHex(key), msg_id: 500 + seq, conv_id: 7, seq, server_ts: 99, duplicate } });
  ack(ids[0], 3, true);
  ack(ids[1], 5, false);
  assert.deepEqual(
    t.msgs.map((m) => m.seq),
    [1, 2, 3, 4, 5],
  );
  assert.equal(t.cc.stats().outboxLen, 0);
});
