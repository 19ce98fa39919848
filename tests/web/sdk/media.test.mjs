// Attachments through the JS SDK against the real server: sendFile
// uploads (fetch, POST /media) then sends; the other member gets the
// message with the server's id, type, size and dimensions and reads the
// bytes by a signed link (mediaUrl, MEDIA_URL) that carries no token and
// works without one; the photo's location is gone; a non-member gets no
// link; a refused upload (HTML) fails the send and sends nothing; an
// attachment kept in the outbox (a reload: a new client on the same
// outbox) is uploaded and sent once, while the server was down the whole
// time the first client had it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from '../helpers/deps.mjs';
import { Client, MemoryOutbox } from '../../../web/src/sdk/index.js';
import { codec } from '../../../web/src/sdk/schema.js';
import { startServer, token, until, repo } from '../helpers/server.mjs';

let srv;
const clients = [];
const PHOTO = readFileSync(join(repo, 'tests', 'web', 'fixtures', 'photo-gps.jpg'));
// The photo's latitude, 29.6 seconds as the rational 296/10, in EXIF's
// little-endian layout; and XMP's name for it.
const GPS_LE = Buffer.from([0x28, 1, 0, 0, 10, 0, 0, 0]);

before(async () => {
  srv = await startServer();
});

after(async () => {
  for (const c of clients) c.stop();
  await srv.stop();
});

function client(user, role, opts = {}) {
  const c = new Client({
    url: opts.url || srv.wsUrl,
    token: token(user, role),
    deviceId: `${user}-dev`,
    codec,
    WebSocket,
    window: null,
    encoding: opts.encoding || 'proto',
    tickMs: 20,
    backoffMsMax: 300,
    ...opts,
  });
  const rec = { msgs: [], sts: new Map(), c };
  c.on('message', (m) => rec.msgs.push(m));
  c.on('status', (i) => {
    if (!rec.sts.has(i.clientMsgId)) rec.sts.set(i.clientMsgId, []);
    rec.sts.get(i.clientMsgId).push(i);
  });
  clients.push(c);
  c.start();
  return rec;
}

const last = (rec, key) => (rec.sts.get(key) || []).at(-1) || {};

test('a photo: uploaded, sent, delivered with its size; fetched by a signed link without its location', async () => {
  const alice = client('alice', 'customer', { encoding: 'json' });
  const bob = client('bob', 'agent');
  const eve = client('eve', 'customer');
  await Promise.all([alice.c.ready(), bob.c.ready(), eve.c.ready()]);
  const conv = (await alice.c.open(['bob'])).conv_id;
  const file = new Blob([PHOTO], { type: 'image/jpeg' });
  file.name = 'holiday.jpg';
  const key = alice.c.sendFile(conv, file, { caption: 'here', width: 320, height: 240 });
  await until(() => last(alice, key).status === 'sent', 10000, 'sent');
  await until(() => bob.msgs.some((m) => m.conv_id === conv), 5000, 'bob gets it');
  const m = bob.msgs.find((x) => x.conv_id === conv);
  assert.equal(m.type, 'MSG_IMAGE');
  assert.equal(m.body, 'here');
  assert.match(m.media.id, /^[0-9a-f]{32}$/);
  assert.equal(m.media.url, `/media/${m.media.id}`);
  assert.equal(m.media.mime, 'image/jpeg');
  assert.equal(m.media.name, 'holiday.jpg');
  assert.equal(m.media.width, 320);
  assert.equal(m.media.height, 240);
  // Alice's own copy (surfaced at SEND_ACK) has the server's record too.
  const mine = alice.msgs.find((x) => x.conv_id === conv);
  assert.equal(mine.media.id, m.media.id);
  assert.equal(mine.media.width, 320);
  // A signed link: no token needed, and the location is gone.
  const link = await bob.c.mediaUrl(m.media.id);
  assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/media\/[0-9a-f]{32}\?t=/);
  assert.equal(await bob.c.mediaUrl(m.media.id), link, 'kept');
  const res = await fetch(link);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/jpeg');
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.equal(bytes.length, m.media.size);
  assert.ok(PHOTO.includes(GPS_LE) && !bytes.includes(GPS_LE), 'the latitude is gone');
  assert.ok(!bytes.includes(Buffer.from('GPSLatitude')));
  // The plain URL is nothing without a token.
  assert.equal((await fetch(`${bob.c.httpBase()}${m.media.url}`)).status, 401);
  // A non-member gets no link.
  await assert.rejects(eve.c.mediaUrl(m.media.id), (e) => e.code === 'ERR_NOT_FOUND');
  assert.equal(eve.msgs.filter((x) => x.conv_id === conv).length, 0);
});

test('a refused upload fails the send and sends nothing', async () => {
  const alice = client('ann', 'customer');
  await alice.c.ready();
  const conv = (await alice.c.open(['bob'])).conv_id;
  const html = new Blob(['<html><script>alert(1)</script></html>'], { type: 'image/png' });
  html.name = 'cat.png';
  const key = alice.c.sendFile(conv, html);
  await until(() => last(alice, key).status === 'failed', 10000, 'failed');
  assert.equal(last(alice, key).err, 'ERR_INVALID');
  assert.match(last(alice, key).text, /text\/html/);
  const h = await alice.c.history(conv);
  assert.equal(h.messages.length, 0);
});

test('an attachment kept in the outbox goes after a reload, once, the server down meanwhile', async () => {
  const port = srv.port;
  const outbox = new MemoryOutbox();
  const first = client('cid', 'customer', { outbox });
  await first.c.ready();
  const conv = (await first.c.open(['bob'])).conv_id;
  await srv.stop({ keep: true });
  const file = new Blob([PHOTO], { type: 'image/jpeg' });
  file.name = 'later.jpg';
  const key = first.c.sendFile(conv, file);
  await until(async () => (await outbox.load()).length === 1, 2000, 'kept');
  const kept = (await outbox.load())[0];
  assert.equal(kept.key, key);
  assert.ok(kept.upload, 'the file is kept with the send');
  assert.equal(kept.media.id, '');
  first.c.stop();
  // The page comes back (a new client on the same outbox), then the
  // server does.
  srv = await startServer({ port, dir: srv.dir });
  const second = client('cid', 'customer', { outbox });
  assert.equal(await second.c.restoreOutbox(), 1);
  await until(() => last(second, key).status === 'sent', 15000, 'sent after the reload');
  assert.equal((await outbox.load()).length, 0);
  const h = await second.c.history(conv);
  assert.equal(h.messages.length, 1);
  assert.equal(h.messages[0].media.name, 'later.jpg');
  assert.equal(second.c.stats().uploads, 1);
});
