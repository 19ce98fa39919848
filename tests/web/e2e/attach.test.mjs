// Issue 15, attachments on the pages: the customer attaches a photo with
// the button, pastes a screenshot, drops a file on the chat; the agent
// sees each inline (images at their size before they load: no jump; files
// as downloads), loaded by links signed for the agent; the photo's
// location is gone; a file the server refuses says so and sends nothing;
// an attachment kept in the outbox goes once after a reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, until, repo } from '../helpers/server.mjs';
import { launch } from '../helpers/browser.mjs';
import { WEB, PHONE, customer, agent, convId, handOff, openOnAgent, done, frames, axeSerious } from '../helpers/pages.mjs';

let srv;
let browser;
const PHOTO = join(repo, 'tests', 'web', 'fixtures', 'photo-gps.jpg');
const GPS_LE = [0x28, 1, 0, 0, 10, 0, 0, 0]; // the latitude's 29.6 s

before(async () => {
  srv = await startServer({ demo: true, web: WEB });
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

// The messages of the page's open conversation that carry an upload.
const media = (page) =>
  page.evaluate(() =>
    window.__sb.view.conv.list.items.filter((e) => e.msg.media && e.msg.media.id).map((e) => ({ type: e.msg.type, body: e.msg.body, ...e.msg.media })),
  );

// Sends a synthetic event carrying files (made in the page) at selector.
async function dispatchFiles(page, selector, type, files) {
  await page.evaluate(
    ({ selector, type, files }) => {
      const dt = new DataTransfer();
      for (const f of files) {
        const bytes = f.b64 ? Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0)) : new TextEncoder().encode(f.text);
        dt.items.add(new File([bytes], f.name, { type: f.type }));
      }
      const el = document.querySelector(selector);
      if (type === 'paste') {
        el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
      } else {
        for (const t of ['dragenter', 'dragover', 'drop']) el.dispatchEvent(new DragEvent(t, { dataTransfer: dt, bubbles: true, cancelable: true }));
      }
    },
    { selector, type, files },
  );
}

// A 2x1 PNG, as a screenshot would be.
const PNG_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAIAAAB7QOjdAAAAEElEQVR4nGP4z8DAwMDAAAAVAQL/2B1xWQAAAABJRU5ErkJggg==';

test('the customer attaches a photo, pastes a screenshot, drops a file; the agent sees them inline, sized before they load, by signed links', async () => {
  const cust = await customer(browser, srv, 'pia');
  const bob = await agent(browser, srv, 'bob');
  try {
    await handOff(cust, 'bob');
    const id = await convId(cust);
    await openOnAgent(bob, id);

    // The button: a photo (320 x 240, with a location).
    await cust.page.setInputFiles('#chat .composer input[type=file]', PHOTO);
    await until(async () => (await media(bob.page)).length === 1, 15000, 'bob gets the photo');
    const [photo] = await media(bob.page);
    assert.equal(photo.type, 'MSG_IMAGE');
    assert.equal(photo.name, 'photo-gps.jpg');
    assert.equal(photo.width, 320);
    assert.equal(photo.height, 240);
    // Shown at its size (scaled into 240 x 240) from the start, and
    // loaded by a link signed for bob.
    const img = bob.page.locator('.msg.theirs img.image').last();
    await img.waitFor();
    assert.equal(await img.getAttribute('width'), '240');
    assert.equal(await img.getAttribute('height'), '180');
    await until(async () => (await img.evaluate((el) => el.complete && el.naturalWidth)) === 320, 10000, 'the image loads');
    const src = await img.getAttribute('src');
    assert.match(src, /\/media\/[0-9a-f]{32}\?t=/);
    const box = await img.boundingBox();
    assert.equal(Math.round(box.width), 240);
    assert.equal(Math.round(box.height), 180);
    // The bytes bob gets have no location.
    const bytes = await bob.page.evaluate(async (u) => [...new Uint8Array(await (await fetch(u)).arrayBuffer())], src);
    const has = (hay, needle) => hay.some((_, i) => needle.every((b, k) => hay[i + k] === b));
    assert.ok(has([...readFileSync(PHOTO)], GPS_LE), 'the fixture has a location');
    assert.ok(!has(bytes, GPS_LE), 'the location is gone');
    // The customer's own copy shows too.
    await cust.page.waitForSelector('.msg.mine img.image');

    // A screenshot pasted into the composer.
    await dispatchFiles(cust.page, '#chat .composer textarea', 'paste', [{ name: 'image.png', type: 'image/png', b64: PNG_B64 }]);
    await until(async () => (await media(bob.page)).length === 2, 15000, 'bob gets the screenshot');
    assert.equal((await media(bob.page))[1].type, 'MSG_IMAGE');
    assert.equal((await media(bob.page))[1].width, 2);

    // A file dropped on the chat: a download, not shown inline.
    await dispatchFiles(cust.page, '#chat', 'drop', [{ name: 'order 1234.txt', type: 'text/plain', text: 'order 1234: the lid leaks\n' }]);
    await until(async () => (await media(bob.page)).length === 3, 15000, 'bob gets the file');
    const file = (await media(bob.page))[2];
    assert.equal(file.type, 'MSG_FILE');
    assert.equal(file.mime, 'text/plain');
    const link = bob.page.locator('.msg.theirs a.file').last();
    await until(async () => /\?t=/.test((await link.getAttribute('href')) || ''), 10000, 'the download link');
    assert.equal(await link.getAttribute('download'), 'order 1234.txt');
    assert.match(await link.textContent(), /order 1234\.txt/);
    const res = await bob.page.evaluate(async (u) => {
      const r = await fetch(u);
      return { status: r.status, cd: r.headers.get('content-disposition'), body: await r.text() };
    }, await link.getAttribute('href'));
    assert.equal(res.status, 200);
    assert.match(res.cd, /^attachment/);
    assert.equal(res.body, 'order 1234: the lid leaks\n');

    // A page that is no member gets no link to them.
    const eve = await customer(browser, srv, 'eve');
    try {
      const err = await eve.page.evaluate((mid) => window.__sb.client.mediaUrl(mid).then(() => 'got one', (e) => e.code), photo.id);
      assert.equal(err, 'ERR_NOT_FOUND');
    } finally {
      await eve.context.close();
    }
    assert.deepEqual(await axeSerious(bob.page), []);
    assert.deepEqual(cust.errors, []);
    assert.deepEqual(bob.errors, []);
  } finally {
    await done(bob, cust);
  }
});

test('a file the server refuses says why and sends nothing; the attach button is labelled in both languages', async () => {
  const cust = await customer(browser, srv, 'quinn', { lang: 'zh-CN' });
  try {
    assert.equal(await cust.page.getAttribute('#chat .attachbtn', 'aria-label'), '添加附件');
    await dispatchFiles(cust.page, '#chat', 'drop', [{ name: 'cat.png', type: 'image/png', text: '<html><script>alert(1)</script></html>' }]);
    await cust.page.waitForSelector('.msg.mine .failure');
    assert.match(await cust.page.textContent('.msg.mine .failure'), /不能发送此类文件/);
    const h = await cust.page.evaluate(async () => (await window.__sb.client.history(window.__sb.conv().id)).messages.filter((m) => m.type === 'MSG_IMAGE' || m.type === 'MSG_FILE').length);
    assert.equal(h, 0);
  } finally {
    await cust.context.close();
  }
  const en = await customer(browser, srv, 'quinn');
  try {
    assert.equal(await en.page.getAttribute('#chat .attachbtn', 'aria-label'), 'Attach a file');
  } finally {
    await en.context.close();
  }
});

test('an attachment kept in the outbox (IndexedDB) goes once after a reload', async () => {
  const cust = await customer(browser, srv, 'rae', { size: PHONE });
  try {
    const id = await convId(cust);
    // Uploads fail (the network to /media is down) and the send waits.
    await cust.page.route('**/media?**', (r) => r.abort());
    await cust.page.setInputFiles('#chat .composer input[type=file]', PHOTO);
    await until(
      () => cust.page.evaluate(() => new Promise((res) => {
        const rq = indexedDB.open('sb-outbox-rae');
        rq.onsuccess = () => {
          const g = rq.result.transaction('outbox').objectStore('outbox').getAll();
          g.onsuccess = () => res(g.result.length === 1 && g.result[0].upload instanceof Blob);
        };
      })),
      5000,
      'kept with its file',
    );
    await cust.page.unroute('**/media?**');
    await cust.page.reload();
    await cust.page.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 15000 });
    await until(
      () => cust.page.evaluate(async (c) => (await window.__sb.client.history(c)).messages.filter((m) => m.type === 'MSG_IMAGE').length, id),
      15000,
      'sent after the reload',
    );
    await frames(cust.page);
    const n = await cust.page.evaluate(async (c) => (await window.__sb.client.history(c)).messages.filter((m) => m.type === 'MSG_IMAGE').length, id);
    assert.equal(n, 1);
    await cust.page.waitForSelector('.msg.mine img.image');
  } finally {
    await cust.context.close();
  }
});
