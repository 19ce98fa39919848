// The JS SDK's agent side against the real server (the demo desk): private
// notes (NOTES_OPEN, notes sent into the notes conversation, NOTE_MENTION)
// reach the agents and never the customer, and contacts (CONTACT_GET,
// CONTACT_SET) are read and changed by the conversation's agent and
// refused to others; one agent on protobuf, the other and the customer on
// JSON.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ChatStore } from '../../../web/src/sdk/index.js';
import { startServer, until } from '../helpers/server.mjs';
import { sdkClient } from '../helpers/seed.mjs';

let srv;
const clients = [];

before(async () => {
  srv = await startServer({ demo: true });
});

after(async () => {
  for (const c of clients) c.stop();
  await srv.stop();
});

async function user(name, role, encoding) {
  const c = await sdkClient(srv, name, role, `${name}-notes`, { encoding });
  clients.push(c);
  const rec = { c, msgs: [], mentions: [], store: new ChatStore(c) };
  c.on('message', (m) => rec.msgs.push(m));
  c.on('mention', (x) => rec.mentions.push(x));
  return rec;
}

const refusal = async (p) => {
  try {
    await p;
  } catch (e) {
    return e.code;
  }
  return 'accepted';
};

// A service conversation of customer `name`, handed to bob (the only one
// of the desk's agents on duty).
async function serviceConv(bob, name) {
  const cu = await user(name, 'customer', 'json');
  const conv = (await cu.c.open([], { kind: 'CONV_SERVICE' })).conv_id;
  cu.c.send(conv, { body: 'Talk to a person' });
  await until(() => bob.store.conv(conv).info?.agent === 'bob', 10000, 'assigned to bob');
  return { cu, conv };
}

test('notes: made and read by agents (both encodings), an @mention tells the teammate, the customer never sees one', async () => {
  const bob = await user('bob', 'agent', 'proto');
  await bob.c.setAgentStatus('AGENT_ONLINE');
  const ann = await user('ann', 'agent', 'json');
  await ann.c.setAgentStatus('AGENT_AWAY');
  const { cu, conv } = await serviceConv(bob, 'nora');

  // No notes yet: opening without create says so.
  assert.equal(await refusal(bob.store.openNotes(conv)), 'ERR_NOT_FOUND');
  await bob.store.sendNote(conv, 'refund approved, @ann please check the invoice.');
  const notes = bob.store.notesFor(conv);
  assert.ok(notes && notes.id !== conv, 'a conversation of their own');
  assert.equal(notes.notesOf, conv);
  await until(() => notes.list.lastSeq() === 1, 5000, 'the note stored');
  assert.equal(notes.list.get(1).msg.body, 'refund approved, @ann please check the invoice.');

  // ann is mentioned: told, made a member, and gets the note itself.
  await until(() => ann.mentions.length === 1, 5000, 'the mention');
  assert.equal(ann.mentions[0].conv_id, conv);
  assert.equal(ann.mentions[0].notes_conv_id, notes.id);
  assert.equal(ann.mentions[0].note.sender, 'bob');
  assert.equal(ann.store.mentions.length, 1);
  assert.equal(ann.store.notesFor(conv).id, notes.id);
  const annNotes = await ann.store.openNotes(conv);
  await until(() => annNotes.list.lastSeq() === 1, 5000, 'ann reads the note');
  // ann answers; bob gets it pushed, in the notes' own seq space.
  await ann.store.sendNote(conv, 'invoice checked');
  await until(() => notes.list.lastSeq() === 2, 5000, 'bob gets the answer');
  assert.equal(notes.list.get(2).msg.sender, 'ann');

  // The customer: nothing of the notes by push, history or NOTES_OPEN; her
  // own conversation's seqs go on without them.
  bob.c.send(conv, { body: 'Your refund is on its way.' });
  await until(() => cu.msgs.some((m) => m.body === 'Your refund is on its way.'), 5000, 'the reply reaches nora');
  assert.ok(cu.msgs.every((m) => m.conv_id === conv), 'only her conversation');
  assert.ok(!cu.msgs.some((m) => /refund approved|invoice/.test(m.body)), 'no note pushed');
  const h = await cu.c.history(conv, 0, 100);
  assert.ok(!h.messages.some((m) => /refund approved|invoice/.test(m.body)), 'no note in her history');
  assert.equal(await refusal(cu.c.notesOpen(conv)), 'ERR_FORBIDDEN');
  assert.equal(await refusal(cu.c.history(notes.id, 0, 10)), 'ERR_FORBIDDEN');
  const seqs = cu.msgs.map((m) => m.seq);
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => i + 1),
    'dense seqs in her conversation',
  );
  // cai, an agent who is no member of it: refused too.
  const cai = await user('cai', 'agent', 'proto');
  await cai.c.setAgentStatus('AGENT_AWAY');
  assert.equal(await refusal(cai.c.notesOpen(conv)), 'ERR_FORBIDDEN');
  assert.equal(cai.msgs.length, 0);
  await bob.c.close(conv);
});

test('contacts: the agent reads and edits the customer contact with past conversations; bad input and other users refused', async () => {
  const bob = await user('bob', 'agent', 'json');
  await bob.c.setAgentStatus('AGENT_ONLINE');
  const first = await serviceConv(bob, 'olga');
  await bob.c.close(first.conv);
  const { cu, conv } = await serviceConv(bob, 'olga');

  const empty = await bob.c.contactGet({ convId: conv });
  assert.equal(empty.contact.user_id, 'olga');
  assert.equal(empty.contact.name, '');
  assert.deepEqual(
    empty.conversations.map((c) => c.conv_id),
    [conv, first.conv],
    'her conversations, newest first',
  );
  assert.equal(empty.conversations[1].state, 'STATE_CLOSED');

  const set = await bob.c.contactSet({ convId: conv, name: 'Olga O.', email: 'olga@example.com', attributes: { plan: 'pro', city: 'Oslo' } });
  assert.equal(set.contact.name, 'Olga O.');
  assert.equal(set.contact.updated_by, 'bob');
  assert.equal(set.contact.verified, false);
  const got = await bob.c.contactGet({ convId: conv });
  assert.equal(got.contact.email, 'olga@example.com');
  assert.deepEqual(Object.fromEntries(got.contact.attributes.map((a) => [a.key, a.value])), { city: 'Oslo', plan: 'pro' });
  // An empty value removes an attribute; clear empties a field.
  const less = await bob.c.contactSet({ convId: conv, attributes: [{ key: 'city', value: '' }], clear: ['email'] });
  assert.equal(less.contact.email, '');
  assert.equal(less.contact.name, 'Olga O.');
  assert.deepEqual(
    less.contact.attributes.map((a) => a.key),
    ['plan'],
  );

  // Bad input: refused with a reason, nothing changed.
  assert.equal(await refusal(bob.c.contactSet({ convId: conv, email: 'not an email' })), 'ERR_INVALID');
  assert.equal(await refusal(bob.c.contactSet({ convId: conv, attributes: { 'bad key!': 'x' } })), 'ERR_INVALID');
  assert.equal(await refusal(bob.c.contactSet({ convId: conv, name: 'x'.repeat(200) })), 'ERR_TOO_LARGE');
  assert.equal(await refusal(bob.c.contactSet({ convId: conv, clear: ['phone'] })), 'ERR_INVALID');
  assert.equal((await bob.c.contactGet({ convId: conv })).contact.name, 'Olga O.');
  // Others: the customer, an agent who is no member, an agent naming a user.
  assert.equal(await refusal(cu.c.contactGet({ convId: conv })), 'ERR_FORBIDDEN');
  const cai = await user('cai', 'agent', 'json');
  assert.equal(await refusal(cai.c.contactGet({ convId: conv })), 'ERR_FORBIDDEN');
  assert.equal(await refusal(cai.c.contactSet({ convId: conv, name: 'Mallory' })), 'ERR_FORBIDDEN');
  assert.equal(await refusal(bob.c.contactGet({ userId: 'olga' })), 'ERR_FORBIDDEN');
  await bob.c.close(conv);
});
