// The seq-sorted message list of a conversation view.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageList } from '../../../web/src/sdk/msglist.js';

const m = (seq, body = `m${seq}`) => ({ seq, conv_id: 1, body, sender: 'bob' });
const seqs = (l) => l.items.map((e) => e.seq);

test('appends, inserts in order, drops duplicates', () => {
  const l = new MessageList();
  assert.equal(l.upsert(m(5)), 'appended');
  assert.equal(l.upsert(m(7)), 'appended');
  assert.equal(l.upsert(m(6)), 'inserted');
  assert.equal(l.upsert(m(1)), 'inserted');
  assert.equal(l.upsert(m(6)), 'duplicate');
  assert.deepEqual(seqs(l), [1, 5, 6, 7]);
  assert.equal(l.indexOf(6), 2);
  assert.equal(l.indexOf(4), -1);
  assert.equal(l.get(7).msg.body, 'm7');
  assert.equal(l.lowerBound(2), 1);
  assert.equal(l.upsert({ ...m(6), recalled: true }), 'updated');
  assert.equal(l.get(6).msg.recalled, true);
});

test('a page of older history joins in one piece; overlapping pages merge', () => {
  const l = new MessageList();
  for (let s = 101; s <= 150; s++) l.upsert(m(s));
  assert.equal(l.addPage([51, 52, 100].map((s) => m(s))), 3);
  assert.deepEqual(seqs(l).slice(0, 4), [51, 52, 100, 101]);
  assert.equal(l.addPage([99, 100, 101].map((s) => m(s))), 1);
  assert.equal(l.length, 54);
  for (let i = 1; i < l.items.length; i++) assert.ok(l.items[i - 1].seq < l.items[i].seq);
});

test('own sends: pending tail in send order, promoted at SEND_ACK', () => {
  const l = new MessageList();
  l.upsert(m(1));
  l.addPending('aa', { body: 'x' });
  l.addPending('bb', { body: 'y' });
  l.addPending('cc', { body: 'z' });
  assert.equal(l.length, 4);
  assert.equal(l.at(1).key, 'aa');
  assert.equal(l.at(3).key, 'cc');
  l.setStatus('bb', 0, 'failed');
  assert.equal(l.pendingEntry('bb').status, 'failed');
  l.setStatus('bb', 0, 'sending'); // retry
  assert.equal(l.pendingEntry('bb').status, 'sending');
  const e = l.promote('bb', { ...m(2, 'y'), sender: 'alice' });
  assert.equal(e.seq, 2);
  assert.equal(e.mine, true);
  assert.equal(e.status, 'sent');
  assert.equal(e.key, 'bb');
  assert.deepEqual(seqs(l), [1, 2]);
  assert.deepEqual(l.pending.map((x) => x.key), ['aa', 'cc']);
  // Statuses by seq, forward only.
  assert.ok(l.setStatus('bb', 2, 'read'));
  assert.equal(l.setStatus('bb', 2, 'delivered'), null);
  assert.equal(l.get(2).status, 'read');
  assert.deepEqual(l.ownBetween(0, 2).map((x) => x.seq), [2]);
});

test('10,000 messages: inserts and lookups stay fast', () => {
  const l = new MessageList();
  const t0 = performance.now();
  for (let s = 2; s <= 20000; s += 2) l.upsert(m(s));
  for (let s = 1; s <= 2000; s += 2) l.upsert(m(s));
  for (let s = 1; s <= 20000; s++) l.indexOf(s);
  const ms = performance.now() - t0;
  assert.equal(l.length, 11000);
  assert.ok(ms < 500, `${ms} ms`);
});

test('a recall empties the message and the quotes of it', () => {
  const l = new MessageList();
  l.upsert(m(1, 'card 4111 1111 1111 1111'));
  l.upsert({ ...m(2, 'about that'), quote_seq: 1, quote: { seq: 1, sender: 'bob', body: 'card 4111 1111 1111 1111', recalled: false } });
  l.upsert(m(3));
  const rev2 = l.get(2).rev;
  assert.ok(l.recall(1));
  assert.equal(l.get(1).msg.recalled, true);
  assert.equal(l.get(1).msg.body, '');
  assert.equal(l.get(2).msg.quote.recalled, true);
  assert.equal(l.get(2).msg.quote.body, '');
  assert.ok(l.get(2).rev > rev2, 'the quoting message renders again');
  assert.equal(l.recall(1), null, 'once');
  assert.ok(l.setTags(3, ['vip']));
  assert.deepEqual(l.get(3).msg.tags, ['vip']);
});
