// Unit tests of the JS SDK's protocol core (web/src/sdk/core.js), driven
// frame by frame with no sockets and a fake clock: the cases of the C
// core's tests (tests/unit/test_client_core.c).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientCore, State, SendStatus, Close, retryable } from '../../../web/src/sdk/core.js';
import { fromHex, toHex } from '../../../web/src/sdk/ids.js';

// A harness: a core with recorded callbacks, io and a clock.
function h(cfg = {}) {
  let seed = 1;
  const t = {
    now: 1000,
    states: [],
    msgs: [],
    sts: [],
    receipts: [],
    responses: [],
    events: [],
    convs: [],
    synced: 0,
    connects: 0,
    closes: [],
    out: [],
    uploads: [],
  };
  t.cc = new ClientCore(
    { token: 'tok', deviceId: 'dev-a', ...cfg },
    {
      onState: (s, err) => t.states.push([s, err]),
      onMessage: (m) => t.msgs.push(m),
      onSendStatus: (i) => t.sts.push(i),
      onReceipt: (r) => t.receipts.push(r),
      onSynced: () => t.synced++,
      onResponse: (rid, err, f) => t.responses.push({ rid, err, f }),
      onEvent: (f) => t.events.push(f),
      onConversation: (c) => t.convs.push(c),
    },
    {
      connect: () => t.connects++,
      close: (code) => t.closes.push(code),
      upload: (key, convId, blob, name) => t.uploads.push({ key, convId, blob, name }),
      // Deterministic "randomness": a counter, so ids differ.
      randBytes: (n) => {
        const b = new Uint8Array(n);
        for (let i = 0; i < n; i++) b[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
        return b;
      },
    },
  );
  t.pull = () => (t.out = t.cc.drain());
  t.kind = (k) => t.out.filter((f) => f[k]);
  t.feed = (f) => t.cc.onFrame({ rid: 0, ...f, body: Object.keys(f).find((k) => k !== 'rid') }, t.now);
  t.welcome = (rid, pending = 16) =>
    t.feed({
      rid,
      welcome: {
        user_id: 'alice',
        role: 'ROLE_CUSTOMER',
        session_id: 77,
        server_ts: 5,
        heartbeat_ms: 30000,
        frame_bytes_max: 65536,
        body_bytes_max: 8192,
        pending_sends_max: pending,
        sync_page_max: 200,
      },
    });
  // To READY, answering the first SYNC with nothing; leaves the other
  // frames pulled on the way (resends, ACKs) in t.out.
  t.ready = (pending = 16) => {
    if (t.cc.state === State.IDLE) t.cc.start(t.now);
    t.cc.onOpen(t.now);
    t.pull();
    assert.equal(t.out[0].hello.device_id, 'dev-a');
    t.welcome(t.out[0].rid, pending);
    t.pull();
    const sync = t.kind('sync')[0];
    assert.ok(sync, 'a SYNC after WELCOME');
    const first = t.out.filter((f) => f !== sync);
    t.feed({ rid: sync.rid, sync_resp: { messages: [], more: false, convs: [] } });
    t.pull();
    t.out = [...first, ...t.out];
  };
  t.msg = (conv, seq, sender = 'bob', body) => ({
    msg_id: conv * 1000 + seq,
    conv_id: conv,
    seq,
    sender,
    sender_device: 'dev-b',
    client_msg_id: new Uint8Array(16),
    type: 'MSG_TEXT',
    body: body ?? `c${conv}s${seq}`,
    quote_seq: 0,
    tags: [],
    server_ts: seq,
  });
  t.push = (conv, seqs) => t.feed({ push: { messages: seqs.map((s) => t.msg(conv, s)) } });
  t.ack = (key, conv, seq, duplicate = false) =>
    t.feed({ send_ack: { client_msg_id: fromHex(key), msg_id: 500 + seq, conv_id: conv, seq, server_ts: 99, duplicate } });
  t.surfaced = (conv) => t.msgs.filter((m) => m.conv_id === conv).map((m) => m.seq);
  return t;
}

const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

test('connect, HELLO, WELCOME, then SYNC', () => {
  const t = h();
  assert.equal(t.cc.state, State.IDLE);
  t.cc.start(t.now);
  assert.equal(t.connects, 1);
  t.cc.onOpen(t.now);
  t.pull();
  assert.equal(t.out.length, 1);
  assert.equal(t.out[0].hello.token, 'tok');
  assert.equal(t.out[0].hello.protocol, 1);
  t.welcome(t.out[0].rid, 16);
  assert.deepEqual(
    t.states.map((s) => s[0]),
    [State.CONNECTING, State.HELLO_SENT, State.READY],
  );
  assert.equal(t.cc.session.user_id, 'alice');
  assert.equal(t.cc.session.session_id, 77);
  t.pull();
  assert.equal(t.out.length, 1);
  assert.ok(t.out[0].sync);
  assert.deepEqual(t.out[0].sync.cursors, []);
});

test('in order, exactly once, one cumulative ACK', () => {
  const t = h();
  t.ready();
  t.push(9, [1, 2, 3]);
  t.push(9, [2, 3]); // a retried PUSH
  t.push(9, [4]);
  assert.deepEqual(t.surfaced(9), [1, 2, 3, 4]);
  assert.equal(t.msgs[2].body, 'c9s3');
  t.pull();
  assert.equal(t.kind('ack').length, 1);
  assert.deepEqual(t.kind('ack')[0].ack, { conv_id: 9, seq: 4 });
  assert.equal(t.cc.cursor(9), 4);
  assert.equal(t.cc.stats().surfaced, 4);
  assert.equal(t.cc.stats().duplicates, 2);
  t.push(9, [1, 2, 3]);
  assert.equal(t.msgs.length, 4);
  t.pull();
  assert.equal(t.kind('ack').length, 0);
  t.push(9, [5, 6]);
  t.push(11, [1]);
  t.pull();
  assert.equal(t.kind('ack').length, 2);
});

test('a gap is held until SYNC fills it', () => {
  const t = h();
  t.ready();
  t.push(5, [1]);
  t.push(5, [3, 4]); // 2 is missing
  assert.deepEqual(t.surfaced(5), [1]);
  assert.equal(t.cc.stats().heldNow, 2);
  t.pull();
  assert.equal(t.kind('ack')[0].ack.seq, 1); // not beyond the gap
  // The gap waits gapWaitMs for a push on its way, then SYNCs.
  assert.equal(t.kind('sync').length, 0);
  t.now += 200;
  t.cc.tick(t.now);
  t.pull();
  const sync = t.kind('sync')[0];
  assert.ok(sync);
  assert.deepEqual(sync.sync.cursors, [{ conv_id: 5, seq: 1 }]);
  t.feed({
    rid: sync.rid,
    sync_resp: { messages: [t.msg(5, 2, 'bob', 'two'), t.msg(5, 3, 'bob', 'three'), t.msg(5, 4), t.msg(5, 5)], more: false, convs: [] },
  });
  assert.deepEqual(t.surfaced(5), [1, 2, 3, 4, 5]);
  assert.equal(t.msgs[1].body, 'two');
  assert.equal(t.msgs[2].body, 'c5s3'); // the held copy
  t.pull();
  assert.equal(t.kind('ack')[0].ack.seq, 5);
  assert.equal(t.kind('sync').length, 0);
  assert.equal(t.cc.stats().heldNow, 0);
});

test('SYNC_HINT makes the client SYNC with its cursors', () => {
  const t = h();
  t.ready();
  t.push(4, [1, 2]);
  t.pull();
  assert.equal(t.kind('sync').length, 0);
  t.feed({ sync_hint: {} });
  t.pull();
  const sync = t.kind('sync')[0];
  assert.ok(sync);
  assert.deepEqual(sync.sync.cursors, [{ conv_id: 4, seq: 2 }]);
});

test('a gap filled by a PUSH within gapWaitMs needs no SYNC', () => {
  const t = h();
  t.ready();
  t.push(6, [1, 3]);
  t.now += 150;
  t.cc.tick(t.now);
  t.push(6, [2]);
  assert.deepEqual(t.surfaced(6), [1, 2, 3]);
  t.now += 1000;
  t.cc.tick(t.now);
  t.pull();
  assert.equal(t.kind('sync').length, 0);
});

test('a gap filled by PUSH first; the held buffer is bounded', () => {
  const t = h({ heldMax: 2 });
  t.ready();
  t.push(8, [3, 4, 5, 6]);
  assert.equal(t.msgs.length, 0);
  assert.equal(t.cc.stats().heldNow, 2);
  assert.equal(t.cc.stats().heldDropped, 2);
  t.push(8, [1, 2]);
  assert.deepEqual(t.surfaced(8), [1, 2, 3, 4]);
  t.pull();
  const sync = t.kind('sync')[0];
  assert.equal(sync.sync.cursors[0].seq, 4);
  t.feed({ rid: sync.rid, sync_resp: { messages: range(1, 6).map((s) => t.msg(8, s)), more: false, convs: [] } });
  assert.deepEqual(t.surfaced(8), range(1, 6));
});

test('a PUSH of many messages over several conversations: in order, once, one ACK each', () => {
  const t = h({ gapWaitMs: 0 });
  t.ready();
  const a = [[9, 1], [11, 1], [9, 2], [11, 2], [9, 3]];
  t.feed({ push: { messages: a.map(([c, s]) => t.msg(c, s)) } });
  assert.deepEqual(t.msgs.map((m) => [m.conv_id, m.seq]), a);
  t.pull();
  assert.deepEqual(t.kind('ack').map((f) => f.ack).sort((x, y) => x.conv_id - y.conv_id), [
    { conv_id: 9, seq: 3 },
    { conv_id: 11, seq: 2 },
  ]);
  assert.equal(t.kind('sync').length, 0);
  // 64: 9:3 again (a retry), 9:4.. and 11:3.. alternating, and 12:2 whose
  // 12:1 is missing (held; a SYNC; the others go on).
  const b = [[9, 3]];
  for (let i = 1; i < 63; i++) b.push(i % 2 ? [9, 4 + (i >> 1)] : [11, 2 + (i >> 1)]);
  b.push([12, 2]);
  t.feed({ push: { messages: b.map(([c, s]) => t.msg(c, s)) } });
  assert.deepEqual(t.msgs.slice(5).map((m) => [m.conv_id, m.seq]), b.slice(1, 63));
  assert.equal(t.cc.stats().duplicates, 1);
  assert.equal(t.cc.stats().heldNow, 1);
  assert.equal(t.cc.cursor(9), 34);
  assert.equal(t.cc.cursor(11), 33);
  t.pull();
  assert.deepEqual(t.kind('ack').map((f) => f.ack).sort((x, y) => x.conv_id - y.conv_id), [
    { conv_id: 9, seq: 34 },
    { conv_id: 11, seq: 33 },
  ]);
  assert.equal(t.kind('sync').length, 1);
});

test('a PUSH as the server writes it (messages encoded one by one, concatenated) decodes in both encodings', async () => {
  const { codec } = await import('../../../web/src/sdk/schema.js');
  const Message = codec.root.lookupType('sbp.Message');
  const msgs = [[4, 1], [5, 1], [4, 2]].map(([c, s]) => ({
    msg_id: c * 1000 + s,
    conv_id: c,
    seq: s,
    sender: 'bob',
    type: 'MSG_TEXT',
    body: `c${c}s${s} 你好`,
    server_ts: 1790000000000 + s,
  }));
  // JSON: the Frame's text around the messages' objects.
  const text = `{"push":{"messages":[${msgs.map((m) => JSON.stringify(m)).join(',')}]}}`;
  // protobuf: Push.messages records (field 1) in Frame.push (field 15).
  const varint = (n) => {
    const b = [];
    for (; n >= 0x80; n >>>= 7) b.push((n & 0x7f) | 0x80);
    b.push(n);
    return b;
  };
  const body = [];
  for (const m of msgs) {
    const bytes = Message.encode(Message.fromObject(m)).finish();
    body.push(0x0a, ...varint(bytes.length), ...bytes);
  }
  const bin = new Uint8Array([0x7a, ...varint(body.length), ...body]);
  for (const [enc, data] of [['json', text], ['proto', bin]]) {
    const f = codec.decode(data, enc);
    assert.equal(f.body, 'push');
    assert.equal(f.push.messages.length, 3);
    const t = h();
    t.ready();
    t.cc.onFrame(f, t.now);
    assert.deepEqual(t.msgs.map((m) => [m.conv_id, m.seq, m.body]), msgs.map((m) => [m.conv_id, m.seq, m.body]));
    t.pull();
    assert.equal(t.kind('ack').length, 2);
  }
});

test('SYNC pages until more is false, and stops on a page without progress', () => {
  const t = h();
  t.cc.start(t.now);
  t.cc.onOpen(t.now);
  t.pull();
  t.welcome(t.out[0].rid);
  t.pull();
  let sync = t.kind('sync')[0];
  assert.equal(sync.sync.cursors.length, 0);
  t.feed({ rid: sync.rid, sync_resp: { messages: [t.msg(1, 1), t.msg(1, 2)], more: true, convs: [] } });
  assert.equal(t.synced, 0);
  t.pull();
  sync = t.kind('sync')[0];
  assert.deepEqual(sync.sync.cursors, [{ conv_id: 1, seq: 2 }]);
  assert.equal(t.kind('ack').length, 1);
  t.feed({ rid: sync.rid, sync_resp: { messages: [t.msg(2, 1)], more: false, convs: [] } });
  assert.equal(t.synced, 1);
  assert.equal(t.msgs.length, 3);
  t.pull();
  assert.equal(t.kind('sync').length, 0);
  // A broken page (more, but nothing new) ends the loop: no spin.
  t.cc.sync();
  t.pull();
  sync = t.kind('sync')[0];
  t.feed({ rid: sync.rid, sync_resp: { messages: [t.msg(1, 1), t.msg(1, 2)], more: true, convs: [] } });
  assert.equal(t.synced, 2);
  t.pull();
  assert.equal(t.kind('sync').length, 0);
});

test('own message surfaces at its SEND_ACK, in order', () => {
  const t = h();
  t.ready();
  t.push(7, [1]);
  const id = t.cc.send(7, { body: 'mine' });
  t.pull();
  const s = t.kind('send')[0];
  assert.equal(toHex(s.send.client_msg_id), id);
  assert.equal(s.send.body, 'mine');
  assert.equal(s.send.conv_id, 7);
  t.ack(id, 7, 2);
  assert.deepEqual(t.surfaced(7), [1, 2]);
  assert.equal(t.msgs[1].body, 'mine');
  assert.equal(t.msgs[1].sender, 'alice');
  assert.equal(t.msgs[1].sender_device, 'dev-a');
  assert.deepEqual(
    t.sts.map((x) => [x.status, x.seq]),
    [
      [SendStatus.SENDING, 0],
      [SendStatus.SENT, 2],
    ],
  );
  // Own message after a gap: held until the other message comes.
  const id2 = t.cc.send(7, { body: 'mine too' });
  t.pull();
  t.ack(id2, 7, 4);
  assert.equal(t.msgs.length, 2);
  t.push(7, [3]);
  assert.deepEqual(t.surfaced(7), [1, 2, 3, 4]);
  assert.equal(t.msgs[3].body, 'mine too');
  // A duplicate SEND_ACK (answer to a resend) surfaces nothing more.
  t.ack(id2, 7, 4, true);
  assert.equal(t.msgs.length, 4);
  t.pull();
  assert.equal(t.kind('ack')[0].ack.seq, 4);
});

test('resend with the same id after a reconnect and after a timeout', () => {
  const t = h();
  t.ready();
  const ids = ['one', 'two', 'three'].map((b) => t.cc.send(3, { body: b }));
  t.pull();
  assert.equal(t.kind('send').length, 3);
  t.cc.onClose('ECONNRESET', 0, t.now);
  assert.equal(t.cc.state, State.BACKOFF);
  assert.equal(t.cc.outbox.size, 3);
  t.pull();
  assert.equal(t.out.length, 0); // nothing is written while away
  const id4 = t.cc.send(3, { body: 'four' });
  t.now += 60000;
  t.cc.tick(t.now);
  assert.equal(t.cc.state, State.CONNECTING);
  t.ready();
  const sends = t.kind('send');
  assert.equal(sends.length, 4);
  assert.deepEqual(
    sends.map((f) => toHex(f.send.client_msg_id)),
    [...ids, id4],
  );
  // The first had been stored: the server answers duplicate.
  t.ack(ids[0], 3, 1, true);
  const sent = t.sts.filter((x) => x.status === SendStatus.SENT);
  assert.equal(sent[0].clientMsgId, ids[0]);
  assert.equal(sent[0].duplicate, true);
  assert.equal(t.cc.outbox.size, 3);
  t.pull();
  // A timeout resends, with the same id.
  t.now += 5000;
  t.cc.tick(t.now);
  t.cc.onRx(t.now);
  t.pull();
  assert.deepEqual(
    t.kind('send').map((f) => toHex(f.send.client_msg_id)),
    [ids[1], ids[2], id4],
  );
  assert.equal(t.cc.stats().resends, 6);
});

test('a client_msg_id starts with the time in ms: a sender\'s ids sort as sent', () => {
  const t = h();
  t.ready();
  const t0 = t.now;
  const a = t.cc.send(4, { body: 'a' });
  t.now += 300;
  t.cc.tick(t.now);
  const b = t.cc.send(4, { body: 'b' });
  assert.equal(parseInt(a.slice(0, 12), 16), t0);
  assert.equal(parseInt(b.slice(0, 12), 16), t0 + 300);
  assert.ok(a < b);
  assert.notEqual(a.slice(12), b.slice(12));
});

test('the window bounds sends in flight', () => {
  const t = h();
  t.ready(2);
  const ids = range(1, 5).map((i) => t.cc.send(4, { body: `m${i}` }));
  t.pull();
  assert.equal(t.kind('send').length, 2);
  t.ack(ids[0], 4, 1);
  t.pull();
  assert.equal(t.kind('send').length, 1);
  assert.equal(toHex(t.kind('send')[0].send.client_msg_id), ids[2]);
  t.ack(ids[1], 4, 2);
  t.ack(ids[2], 4, 3);
  t.pull();
  assert.equal(t.kind('send').length, 2);
  assert.equal(t.cc.stats().inflight, 2);
});

test('statuses: sent, delivered, read, in order, once each', () => {
  const t = h();
  t.ready();
  const a = t.cc.send(6, { body: 'a' });
  const b = t.cc.send(6, { body: 'b' });
  t.pull();
  t.ack(a, 6, 1);
  t.ack(b, 6, 2);
  const of = (key) => t.sts.filter((x) => x.clientMsgId === key).map((x) => x.status);
  // bob's device got 1; then bob read 2 (delivered and read at once).
  t.feed({ read_notify: { conv_id: 6, user_id: 'bob', read_seq: 0, delivered_seq: 1 } });
  assert.deepEqual(of(a), ['sending', 'sent', 'delivered']);
  assert.deepEqual(of(b), ['sending', 'sent']);
  // Our own devices' receipts change nothing.
  t.feed({ read_notify: { conv_id: 6, user_id: 'alice', read_seq: 2, delivered_seq: 2 } });
  assert.deepEqual(of(b), ['sending', 'sent']);
  t.feed({ read_notify: { conv_id: 6, user_id: 'bob', read_seq: 2, delivered_seq: 2 } });
  assert.deepEqual(of(a), ['sending', 'sent', 'delivered', 'read']);
  assert.deepEqual(of(b), ['sending', 'sent', 'delivered', 'read']);
  // Repeated receipts say nothing more.
  t.feed({ read_notify: { conv_id: 6, user_id: 'bob', read_seq: 2, delivered_seq: 2 } });
  assert.equal(t.sts.length, 8);
  assert.deepEqual(t.cc.peer(6), { delivered: 2, read: 2 });
  assert.equal(t.receipts.length, 4);
  // A receipt that came before the SEND_ACK applies at once.
  const c = t.cc.send(6, { body: 'c' });
  t.pull();
  t.feed({ read_notify: { conv_id: 6, user_id: 'bob', read_seq: 0, delivered_seq: 3 } });
  t.ack(c, 6, 3);
  assert.deepEqual(of(c), ['sending', 'sent', 'delivered']);
});

test('receipts are watched for a bounded number of sends', () => {
  const t = h({ trackMax: 3 });
  t.ready();
  const ids = range(1, 5).map((i) => t.cc.send(2, { body: `m${i}` }));
  t.pull();
  ids.forEach((id, i) => t.ack(id, 2, i + 1));
  t.feed({ read_notify: { conv_id: 2, user_id: 'bob', read_seq: 5, delivered_seq: 5 } });
  const read = t.sts.filter((x) => x.status === 'read').map((x) => x.seq);
  assert.deepEqual(read, [3, 4, 5]); // the oldest two were forgotten
});

test('a non-retryable error fails the send; retry() resends it with the same id', () => {
  const t = h();
  t.ready();
  const id = t.cc.send(3, { body: 'x' });
  t.pull();
  const rid = t.kind('send')[0].rid;
  t.feed({ rid, error: { code: 'ERR_FORBIDDEN', text: 'not a member', client_msg_id: fromHex(id) } });
  const last = t.sts.at(-1);
  assert.equal(last.status, SendStatus.FAILED);
  assert.equal(last.err, 'ERR_FORBIDDEN');
  assert.equal(last.text, 'not a member');
  assert.equal(t.cc.outbox.size, 0);
  assert.equal(t.cc.stats().failedNow, 1);
  assert.equal(t.cc.retry(id), true);
  assert.equal(t.sts.at(-1).status, SendStatus.SENDING);
  t.pull();
  assert.equal(toHex(t.kind('send')[0].send.client_msg_id), id);
  t.ack(id, 3, 1);
  assert.equal(t.sts.at(-1).status, SendStatus.SENT);
  assert.equal(t.cc.retry(id), false);
  // A retryable error (by rid alone) delays the resend, keeps the id.
  const id2 = t.cc.send(3, { body: 'y' });
  t.pull();
  t.feed({ rid: t.kind('send')[0].rid, error: { code: 'ERR_STORE', text: 'disk full', client_msg_id: new Uint8Array(0) } });
  t.pull();
  assert.equal(t.kind('send').length, 0);
  t.now += 200;
  t.cc.tick(t.now);
  t.pull();
  assert.equal(toHex(t.kind('send')[0].send.client_msg_id), id2);
});

test('attempts run out: FAILED with ETIMEDOUT', () => {
  const t = h({ sendAttemptsMax: 2, sendTimeoutMs: 1000 });
  t.ready();
  const id = t.cc.send(3, { body: 'x' });
  for (let i = 0; i < 3; i++) {
    t.pull();
    t.now += 1000;
    t.cc.onRx(t.now);
    t.cc.tick(t.now);
  }
  const last = t.sts.at(-1);
  assert.equal(last.clientMsgId, id);
  assert.equal(last.status, SendStatus.FAILED);
  assert.equal(last.err, 'ETIMEDOUT');
  assert.equal(t.cc.stats().sendFrames, 2);
});

test('send limits', () => {
  const t = h({ outboxMax: 2 });
  t.ready();
  assert.throws(() => t.cc.send(0, { body: 'x' }), { code: 'ERR_INVALID' });
  assert.throws(() => t.cc.send(1, { body: 'x'.repeat(8193) }), { code: 'ERR_TOO_LARGE' });
  assert.throws(() => t.cc.send(1, { body: '\uD800' }), { code: 'ERR_BAD_UTF8' });
  assert.throws(() => t.cc.send(1, { body: 'a\0b' }), { code: 'ERR_BAD_UTF8' });
  t.cc.send(1, { body: '好'.repeat(2730) }); // 8190 bytes of UTF-8
  t.cc.send(1, { body: 'y' });
  assert.throws(() => t.cc.send(1, { body: 'z' }), { code: 'ENOBUFS' });
  t.cc.stop();
  assert.throws(() => t.cc.send(1, { body: 'z' }), { code: 'ESHUTDOWN' });
});

test('backoff grows, is capped, and is jittered', () => {
  const t = h({ backoffMsBase: 100, backoffMsMax: 1000 });
  t.cc.start(t.now);
  const delays = [];
  for (let i = 0; i < 10; i++) {
    t.cc.onClose('ECONNREFUSED', 0, t.now);
    assert.equal(t.cc.state, State.BACKOFF);
    const cap = Math.min(1000, 100 * 2 ** i);
    assert.ok(t.cc.backoffMs >= 0 && t.cc.backoffMs <= cap, `attempt ${i}: ${t.cc.backoffMs} <= ${cap}`);
    delays.push(t.cc.backoffMs);
    t.now += t.cc.backoffMs - 1;
    t.cc.tick(t.now);
    if (t.cc.backoffMs > 0) assert.equal(t.cc.state, State.BACKOFF);
    t.now += 1;
    t.cc.tick(t.now);
    assert.equal(t.cc.state, State.CONNECTING);
  }
  assert.ok(new Set(delays).size > 3, 'jitter');
  assert.equal(t.connects, 11);
  // WELCOME resets the attempts.
  t.cc.onOpen(t.now);
  t.pull();
  t.welcome(t.out[0].rid);
  assert.equal(t.cc.backoffAttempt, 0);
});

test('after the server\'s 1001 (a restart) the backoff stays under restartBackoffMsMax for restartWindowMs', () => {
  const t = h();
  t.cc.start(t.now);
  t.cc.onOpen(t.now);
  t.pull();
  t.welcome(t.out[0].rid);
  const t0 = t.now;
  t.cc.onClose(null, 1001, t.now);
  let n = 0;
  while (t.now - t0 < 30000) {
    assert.ok(t.cc.backoffMs <= 1000, `attempt ${n}: ${t.cc.backoffMs}`);
    t.now += t.cc.backoffMs;
    t.cc.tick(t.now);
    assert.equal(t.cc.state, State.CONNECTING);
    t.cc.onClose('ECONNREFUSED', 0, t.now);
    n++;
  }
  assert.ok(n > 25, 'many attempts, each within the cap');
  // Then as usual, doubling from the cap: the attempts made at it do not
  // count (2 s, 4 s, 8 s: not the 30 s that 30-odd failures would give).
  let max = 0;
  for (let i = 0; i < 3; i++) {
    t.now += t.cc.backoffMs;
    t.cc.tick(t.now);
    t.cc.onClose('ECONNREFUSED', 0, t.now);
    max = Math.max(max, t.cc.backoffMs);
  }
  assert.ok(max > 1000 && max <= 8000, `grows again from the cap: ${max}`);
});

test('no reconnect after a refused token or a replaced session', () => {
  const t = h();
  t.cc.start(t.now);
  t.cc.onOpen(t.now);
  t.pull();
  t.feed({ rid: t.out[0].rid, error: { code: 'ERR_TOKEN_EXPIRED', text: 'expired', client_msg_id: new Uint8Array(0) } });
  assert.equal(t.cc.state, State.STOPPED);
  assert.equal(t.cc.lastErr, 'ERR_TOKEN_EXPIRED');
  t.now += 100000;
  t.cc.tick(t.now);
  assert.equal(t.connects, 1);

  const u = h();
  u.ready();
  u.cc.onClose(null, Close.POLICY, u.now);
  assert.equal(u.cc.state, State.STOPPED);
  assert.equal(u.cc.lastErr, 'ERR_BAD_TOKEN');

  const v = h();
  v.ready();
  v.cc.onClose(null, Close.NORMAL, v.now);
  assert.equal(v.cc.state, State.STOPPED);
  assert.equal(v.states.at(-1)[1], 'REPLACED');
  // 1001 (server going away) and 1013 reconnect.
  const w = h();
  w.ready();
  w.cc.onClose(null, Close.TRY_AGAIN, w.now);
  assert.equal(w.cc.state, State.BACKOFF);
});

test('a dead connection is dropped; a silent one is probed first; requests time out', () => {
  const t = h();
  t.ready();
  const rid = t.cc.history(4, 0, 20);
  t.now += 30000;
  t.cc.tick(t.now);
  t.pull();
  // a heartbeat of silence: a SYNC probe
  assert.equal(t.kind('sync').length, 1);
  assert.deepEqual(t.responses, [{ rid, err: 'ETIMEDOUT', f: null }]);
  t.now += 60000;
  t.cc.tick(t.now);
  assert.equal(t.cc.state, State.BACKOFF);
  assert.equal(t.cc.lastErr, 'ETIMEDOUT');
  assert.deepEqual(t.closes, [Close.GOING_AWAY]);
  // connect timeout
  t.now += 60000;
  t.cc.tick(t.now);
  assert.equal(t.cc.state, State.CONNECTING);
  t.now += 10000;
  t.cc.tick(t.now);
  assert.equal(t.cc.state, State.BACKOFF);
});

test('requests: open, history, customer-service frames answered by rid', () => {
  const t = h();
  t.ready();
  assert.throws(() => h().cc.open(['bob']), { code: 'ENOTCONN' });
  const r1 = t.cc.open(['bob'], 'help', 'CONV_SERVICE');
  const r2 = t.cc.history(4, 100, 50);
  const r3 = t.cc.request('tag', { conv_id: 4, seq: 0, add: ['vip'], remove: [] });
  const r4 = t.cc.request('close', { conv_id: 4 });
  t.pull();
  assert.deepEqual(t.out.find((f) => f.open).open, { members: ['bob'], title: 'help', kind: 'CONV_SERVICE', desk: '' });
  assert.deepEqual(t.out.find((f) => f.history).history, { conv_id: 4, before_seq: 100, limit: 50 });
  assert.deepEqual(t.out.find((f) => f.tag).tag.add, ['vip']);
  const conv = { conv_id: 12, kind: 'CONV_SERVICE', state: 'STATE_OPEN', members: [], last_seq: 0 };
  t.feed({ rid: r1, open_resp: { conv } });
  t.feed({ rid: r2, history_resp: { conv_id: 4, messages: [t.msg(4, 98), t.msg(4, 99)], more: true } });
  t.feed({ rid: r3, ok: {} });
  t.feed({ rid: r4, error: { code: 'ERR_UNKNOWN_TYPE', text: 'unknown frame', client_msg_id: new Uint8Array(0) } });
  assert.equal(t.responses.length, 4);
  assert.equal(t.responses[0].f.open_resp.conv.conv_id, 12);
  assert.deepEqual(t.convs.map((c) => c.conv_id), [12]);
  assert.equal(t.responses[1].f.history_resp.messages.length, 2);
  assert.equal(t.responses[2].err, null);
  assert.equal(t.responses[2].f.body, 'ok');
  assert.equal(t.responses[3].err, 'ERR_UNKNOWN_TYPE');
  // History is not the inbox: nothing surfaced.
  assert.equal(t.msgs.length, 0);
  // Requests die with their connection.
  const r5 = t.cc.history(4);
  t.cc.onClose('ECONNRESET', 0, t.now);
  assert.deepEqual(t.responses.at(-1), { rid: r5, err: 'ECONNRESET', f: null });
  // Server events (rid 0) go to onEvent; a frame newer than the schema is ignored.
  t.now += 60000;
  t.cc.tick(t.now);
  t.ready();
  t.feed({ typing: { conv_id: 4, user_id: 'bob', on: true } });
  t.feed({ conv_update: { conv: { ...conv, state: 'STATE_CLOSED' } } });
  t.cc.onFrame({ rid: 0, body: undefined }, t.now);
  assert.deepEqual(t.events.map((f) => f.body), ['typing', 'conv_update']);
  assert.equal(t.convs.at(-1).state, 'STATE_CLOSED');
  assert.equal(t.cc.state, State.READY);
  assert.equal(t.cc.notify('typing', { conv_id: 4, on: true }), true);
});

test('READ is coalesced, and ACK and READ are written again after a reconnect', () => {
  const t = h();
  t.ready();
  t.push(3, [1, 2, 3]);
  t.cc.read(3, 1);
  t.cc.read(3, 3);
  t.cc.read(3, 2);
  t.pull();
  assert.deepEqual(t.kind('read').map((f) => f.read), [{ conv_id: 3, seq: 3 }]);
  assert.deepEqual(t.kind('ack').map((f) => f.ack), [{ conv_id: 3, seq: 3 }]);
  t.cc.onClose('ECONNRESET', 0, t.now);
  t.now += 60000;
  t.cc.tick(t.now);
  t.cc.onOpen(t.now);
  t.pull();
  t.welcome(t.out[0].rid);
  t.pull();
  assert.deepEqual(t.kind('sync')[0].sync.cursors, [{ conv_id: 3, seq: 3 }]);
  assert.deepEqual(t.kind('read').map((f) => f.read), [{ conv_id: 3, seq: 3 }]);
  assert.deepEqual(t.kind('ack').map((f) => f.ack), [{ conv_id: 3, seq: 3 }]);
});

test('stop inside a callback; stop ACKs first', () => {
  const t = h();
  t.ready();
  t.cc.cbs.onMessage = (m) => {
    t.msgs.push(m);
    if (m.seq === 2) t.cc.stop();
  };
  t.push(1, [1, 2, 3]);
  assert.deepEqual(t.surfaced(1), [1, 2]);
  assert.equal(t.cc.state, State.STOPPED);

  const u = h();
  let written = null;
  u.cc.io.close = (code, frames) => (written = { code, frames });
  u.ready();
  u.push(1, [1, 2]);
  u.cc.stop();
  assert.equal(written.code, Close.NORMAL);
  assert.deepEqual(written.frames.map((f) => f.ack), [{ conv_id: 1, seq: 2 }]);
});

test('set_cursor moves forward only and drains what was held', () => {
  const t = h();
  t.ready();
  t.cc.setCursor(4, 10);
  t.push(4, [9, 10]);
  assert.equal(t.msgs.length, 0);
  t.push(4, [12]);
  assert.equal(t.msgs.length, 0);
  t.cc.setCursor(4, 11);
  assert.deepEqual(t.surfaced(4), [12]);
  t.cc.setCursor(4, 5);
  assert.equal(t.cc.cursor(4), 12);
});

test('initialWindow: a new conversation starts near its newest message', () => {
  const t = h({ initialWindow: 3 });
  t.cc.start(t.now);
  t.cc.onOpen(t.now);
  t.pull();
  t.welcome(t.out[0].rid);
  t.pull();
  let sync = t.kind('sync')[0];
  const conv = { conv_id: 7, last_seq: 10, members: [] };
  t.feed({ rid: sync.rid, sync_resp: { messages: range(1, 4).map((s) => t.msg(7, s)), more: true, convs: [conv] } });
  assert.equal(t.msgs.length, 0);
  assert.equal(t.cc.cursor(7), 7);
  t.pull();
  sync = t.kind('sync')[0];
  assert.ok(sync, 'skipping ahead counts as progress');
  assert.deepEqual(sync.sync.cursors, [{ conv_id: 7, seq: 7 }]);
  t.feed({ rid: sync.rid, sync_resp: { messages: range(8, 10).map((s) => t.msg(7, s)), more: false, convs: [] } });
  assert.deepEqual(t.surfaced(7), [8, 9, 10]);
  // A conversation already known keeps its cursor.
  t.cc.sync();
  t.pull();
  sync = t.kind('sync')[0];
  t.feed({ rid: sync.rid, sync_resp: { messages: [], more: false, convs: [{ conv_id: 7, last_seq: 100 }] } });
  assert.equal(t.cc.cursor(7), 10);
});

test('initialWindow: a push held before the first SYNC answer does not pull the whole history', () => {
  // An agent's "joined" event is pushed between WELCOME and the SYNC
  // answer: the conversation is known only by a held message.
  const t = h({ initialWindow: 3 });
  t.cc.start(t.now);
  t.cc.onOpen(t.now);
  t.pull();
  t.welcome(t.out[0].rid);
  t.pull();
  let sync = t.kind('sync')[0];
  t.push(7, [10]);
  assert.equal(t.msgs.length, 0);
  const conv = { conv_id: 7, last_seq: 10, members: [] };
  t.feed({ rid: sync.rid, sync_resp: { messages: range(1, 4).map((s) => t.msg(7, s)), more: true, convs: [conv] } });
  assert.equal(t.cc.cursor(7), 7);
  t.pull();
  sync = t.kind('sync')[0];
  assert.deepEqual(sync.sync.cursors, [{ conv_id: 7, seq: 7 }]);
  t.feed({ rid: sync.rid, sync_resp: { messages: range(8, 10).map((s) => t.msg(7, s)), more: false, convs: [] } });
  assert.deepEqual(t.surfaced(7), [8, 9, 10]);
  assert.equal(t.cc.stats().heldNow, 0);
});

test('offline and online: drop now, reconnect at once', () => {
  const t = h();
  t.ready();
  t.cc.send(2, { body: 'x' });
  t.pull();
  t.cc.disconnect('ENETDOWN', t.now);
  assert.equal(t.cc.state, State.BACKOFF);
  assert.equal(t.cc.lastErr, 'ENETDOWN');
  t.cc.kick(t.now);
  assert.equal(t.cc.state, State.CONNECTING);
  t.ready();
  assert.equal(t.kind('send').length, 1);
});

test('offlineFailMs: a send waiting without a connection fails with ENOTCONN; retry queues it again', () => {
  const t = h({ offlineFailMs: 5000 });
  t.ready();
  t.cc.disconnect('ENETDOWN', t.now);
  t.cc.backoffMsBase = 1e9; // stay offline
  t.cc.reconnectAtMs = Infinity;
  const id = t.cc.send(2, { body: 'x' });
  t.now += 4000;
  t.cc.tick(t.now);
  assert.equal(t.sts.at(-1).status, SendStatus.SENDING);
  t.now += 1000;
  t.cc.tick(t.now);
  assert.equal(t.sts.at(-1).status, SendStatus.FAILED);
  assert.equal(t.sts.at(-1).err, 'ENOTCONN');
  assert.equal(retryable('ENOTCONN'), true);
  // Retried while still offline: the wait starts again.
  assert.equal(t.cc.retry(id), true);
  t.now += 4999;
  t.cc.tick(t.now);
  assert.equal(t.sts.at(-1).status, SendStatus.SENDING);
  // Back online before the limit: it goes out under the same id.
  t.cc.kick(t.now);
  t.ready();
  assert.equal(toHex(t.kind('send')[0].send.client_msg_id), id);
});

test('offlineFailMs counts from when the connection went, not from an older send', () => {
  const t = h({ offlineFailMs: 5000, windowMax: 1 });
  t.ready(1);
  t.cc.send(2, { body: 'a' });
  t.cc.send(2, { body: 'b' }); // waits behind the window
  t.pull();
  t.now += 20000;
  t.cc.onRx(t.now);
  t.cc.tick(t.now);
  t.cc.disconnect('ENETDOWN', t.now);
  t.cc.reconnectAtMs = Infinity;
  t.now += 100;
  t.cc.tick(t.now);
  assert.ok(t.sts.every((s) => s.status !== SendStatus.FAILED), 'not at once');
  t.now += 5000;
  t.cc.tick(t.now);
  assert.equal(t.sts.filter((s) => s.status === SendStatus.FAILED).length, 2);
});

test('retryable: a blocked message is not; the server retryable errors and the transport are', () => {
  for (const e of ['ERR_BLOCKED', 'ERR_TOO_LARGE', 'ERR_FORBIDDEN', 'ERR_STATE', 'ERR_INVALID', 'ERR_BAD_UTF8']) assert.equal(retryable(e), false, e);
  for (const e of ['ERR_STORE', 'ERR_RATE_LIMITED', 'ERR_UNAVAILABLE', 'ETIMEDOUT', 'ENOTCONN']) assert.equal(retryable(e), true, e);
});

test('restore: persisted sends come back under their ids, pending ones resent, failed ones kept for retry', () => {
  const t = h();
  const a = toHex(new Uint8Array(16).fill(0xab));
  const b = toHex(new Uint8Array(16).fill(0xcd));
  t.cc.start(t.now);
  assert.equal(t.cc.restore({ key: a, convId: 4, type: 'MSG_TEXT', body: 'kept', ts: 123 }), true);
  assert.equal(t.cc.restore({ key: b, convId: 4, body: 'blocked', err: 'ERR_BLOCKED', text: 'blocked' }), true);
  assert.equal(t.cc.restore({ key: a, convId: 4, body: 'again' }), false, 'a key it holds');
  assert.equal(t.cc.restore({ key: 'zz', convId: 4 }), false, 'malformed');
  assert.deepEqual(
    t.sts.map((s) => [s.clientMsgId, s.status, s.err]),
    [
      [a, SendStatus.SENDING, null],
      [b, SendStatus.FAILED, 'ERR_BLOCKED'],
    ],
  );
  assert.equal(t.cc.pending(a).ts, 123);
  t.ready();
  const sends = t.kind('send');
  assert.equal(sends.length, 1);
  assert.equal(toHex(sends[0].send.client_msg_id), a);
  assert.equal(sends[0].send.body, 'kept');
  // The server had stored it before the reload: the original answer.
  t.ack(a, 4, 9, true);
  assert.equal(t.sts.at(-1).status, SendStatus.SENT);
  assert.equal(t.cc.retry(b), true);
  t.pull();
  assert.equal(toHex(t.kind('send')[0].send.client_msg_id), b);
});

test('SEND_ACK with the stored body (masked) surfaces that body', () => {
  const t = h();
  t.ready();
  const id = t.cc.send(2, { body: 'darn it' });
  t.pull();
  t.feed({ send_ack: { client_msg_id: fromHex(id), msg_id: 1, conv_id: 2, seq: 1, server_ts: 5, duplicate: false, body: '**** it' } });
  assert.equal(t.msgs.at(-1).body, '**** it');
  const id2 = t.cc.send(2, { body: 'fine' });
  t.pull();
  t.ack(id2, 2, 2);
  assert.equal(t.msgs.at(-1).body, 'fine', 'no body in the ack: the text sent');
});

test('attachments: uploaded one at a time, sent only with the upload id, retried on passing failures, failed on refusals', () => {
  const t = h({ backoffMsMax: 1000 });
  t.ready();
  assert.throws(() => t.cc.send(5, { type: 'MSG_TEXT', upload: { size: 1 } }), (e) => e.code === 'ERR_INVALID');
  const a = t.cc.send(5, { type: 'MSG_IMAGE', body: 'my cat', media: { name: 'cat.jpg', width: 40, height: 30 }, upload: { name: 'cat.jpg', size: 900 } });
  const b = t.cc.send(5, { type: 'MSG_FILE', upload: { name: 'b.pdf', size: 5 } });
  t.pull();
  assert.equal(t.uploads.length, 1, 'one at a time');
  assert.equal(t.uploads[0].key, a);
  assert.equal(t.uploads[0].name, 'cat.jpg');
  assert.equal(t.kind('send').length, 0, 'nothing sent before its upload');
  // The network fails: tried again after a pause; b goes meanwhile.
  t.cc.uploaded(a, 'ECONNRESET', null, '', t.now);
  t.pull();
  assert.equal(t.uploads.length, 2);
  assert.equal(t.uploads[1].key, b);
  // b is refused: FAILED, and never sent.
  t.cc.uploaded(b, 'ERR_TOO_LARGE', null, 'at most 10 MiB', t.now);
  const fb = t.sts.filter((i) => i.clientMsgId === b).at(-1);
  assert.equal(fb.status, SendStatus.FAILED);
  assert.equal(fb.err, 'ERR_TOO_LARGE');
  assert.equal(retryable('ERR_TOO_LARGE'), false);
  t.pull();
  assert.equal(t.uploads.length, 2, "a's pause is not over");
  t.now += 1000;
  t.cc.tick(t.now);
  t.cc.onRx(t.now);
  t.pull();
  assert.equal(t.uploads.length, 3);
  assert.equal(t.uploads[2].key, a);
  const rec = { id: '0123456789abcdef0123456789abcdef', name: 'cat.jpg', mime: 'image/jpeg', size: 880, width: 40, height: 30, url: '/media/0123456789abcdef0123456789abcdef' };
  t.cc.uploaded(a, null, rec, '', t.now);
  t.pull();
  const sends = t.kind('send');
  assert.equal(sends.length, 1);
  assert.equal(sends[0].send.type, 'MSG_IMAGE');
  assert.equal(sends[0].send.body, 'my cat');
  assert.deepEqual(sends[0].send.media, { id: rec.id }, 'the upload by its id, nothing else');
  // SENT: the own message has the upload's record.
  t.feed({ rid: sends[0].rid, send_ack: { client_msg_id: fromHex(a), msg_id: 9, conv_id: 5, seq: 1, server_ts: 7, duplicate: false } });
  const own = t.msgs.find((m) => m.seq === 1 && m.conv_id === 5);
  assert.equal(own.media.id, rec.id);
  assert.equal(own.media.width, 40);
  assert.equal(t.cc.stats().uploads, 1);
  assert.equal(t.cc.stats().uploadRetries, 1);
});
