// Issue 13, what people expect of a chat: the embeddable widget (one
// <script> on another site: a launcher, the chat in an iframe, the
// unread count on the bubble, a greeting), notifications (the title's
// unread count, desktop notifications, a sound), date separators,
// grouped messages, safe links and an emoji picker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, until, repo } from '../helpers/server.mjs';
import { launch } from '../helpers/browser.mjs';
import { WEB, DESKTOP, PHONE, customer, agent, send, texts, convId, handOff, openOnAgent, axeSerious, done, frames } from '../helpers/pages.mjs';

let srv;
let browser;

before(async () => {
  srv = await startServer({ demo: true, web: WEB });
  // The shop below is a site "on the internet" (http://shop.test) and the
  // test's server is on loopback: Chromium keeps public pages from
  // reaching private addresses (Local Network Access), which a real
  // deployment's public server never meets. Off for this browser.
  browser = await launch({ args: ['--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights'] });
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

// A shop on another origin (answered by the test) with the snippet.
async function shop(user) {
  const context = await browser.newContext({ viewport: DESKTOP });
  await context.route('http://shop.test/**', (r) =>
    r.fulfill({
      contentType: 'text/html',
      body: `<!doctype html><html lang="en"><head><title>Shop</title></head><body><main><h1>Acme Shop</h1><p>Products.</p></main>
<script src="${srv.url}/widget.js" async data-title="Acme Help" data-color="#0f766e" data-user="${user}" data-reply="within a few minutes"></script></body></html>`,
    }),
  );
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto('http://shop.test/');
  await page.waitForSelector('.launcher');
  return { context, page, errors };
}

test('the widget: one script on another site gives a launcher; the chat opens in an iframe with a greeting; the bubble counts unread messages', async () => {
  const bob = await agent(browser, srv, 'bob');
  const host = await shop('wanda');
  try {
    const { page } = host;
    const launcher = page.locator('.launcher');
    assert.equal(await launcher.getAttribute('aria-label'), 'Open the chat');
    assert.equal(await page.isVisible('iframe.frame'), false);
    await launcher.click();
    assert.equal(await launcher.getAttribute('aria-expanded'), 'true');
    assert.equal(await page.isVisible('iframe.frame'), true);
    const chat = page.frameLocator('iframe.frame');
    // A first visit: the greeting, in the host's words and colour.
    await chat.locator('.greeting').waitFor();
    assert.match(await chat.locator('.greeting').textContent(), /We usually reply within a few minutes/);
    assert.equal(await chat.locator('#title').textContent(), 'Acme Help');
    assert.equal(await chat.locator('.bar').evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(15, 118, 110)');
    await chat.locator('.greeting .start').click();
    await chat.locator('.msg.theirs >> text=/Acme assistant/').waitFor();
    await chat.locator('textarea').fill('Talk to a person');
    await chat.locator('textarea').press('Enter');
    await chat.locator('#convstate >> text=Chatting with bob').waitFor({ timeout: 10000 });
    const frame = page.frames().find((f) => f.url().includes('embed=1'));
    const id = await frame.evaluate(() => window.__sb.conv().id);
    // Closed from inside the chat: the launcher again, with the focus.
    await chat.locator('.closewidget').click();
    assert.equal(await page.isVisible('iframe.frame'), false);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'switchboard-widget');
    // bob writes while it is closed: the bubble counts.
    await openOnAgent(bob, id);
    await send(bob.page, 'Hello from Bob');
    await page.waitForSelector('.launcher .badge >> text=1', { timeout: 5000 });
    assert.match(await launcher.getAttribute('aria-label'), /1 unread/);
    await send(bob.page, 'Are you there?');
    await page.waitForSelector('.launcher .badge >> text=2', { timeout: 5000 });
    // Opened: read, the count goes.
    await launcher.click();
    await chat.locator('.msg >> text=Are you there?').waitFor();
    await until(() => page.locator('.launcher .badge').isHidden(), 5000, 'badge hidden');
    await page.keyboard.press('Escape');
    await until(async () => (await frame.evaluate(() => window.__sb.conv().unread)) === 0, 5000, 'read');
    assert.equal(await page.locator('.launcher .badge').isHidden(), true);
    assert.deepEqual((await axeSerious(page)).filter((v) => !v.includes('iframe')), []);
    assert.deepEqual(host.errors.concat(bob.errors), []);
  } finally {
    await done(bob);
    await host.context.close();
  }
});

test('notifications: the unread count in the title, a desktop notification and a sound while the page is hidden', async () => {
  const bob = await agent(browser, srv, 'bob');
  const context = await browser.newContext({ viewport: PHONE });
  // A stand-in for the browser's notifications, allowed.
  await context.addInitScript(() => {
    window.__notes = [];
    window.Notification = class {
      static permission = 'granted';
      static requestPermission() {
        return Promise.resolve('granted');
      }
      constructor(title, opts) {
        window.__notes.push({ title, body: opts.body });
      }
      close() {}
    };
  });
  const page = await context.newPage();
  try {
    await page.goto(`${srv.url}/?user=nell`);
    await page.waitForFunction(() => document.body.dataset.ready === '1');
    const id = await page.evaluate(() => window.__sb.conv().id);
    await send(page, 'Talk to a person');
    await until(async () => (await page.evaluate(() => window.__sb.conv().info?.agent)) === 'bob', 10000, 'assigned');
    await page.click('.prefs summary');
    await page.check('#pref-desktop');
    await page.check('#pref-sound');
    assert.equal(await page.isChecked('#pref-desktop'), true);
    await page.click('.prefs summary');
    // The page goes to the background.
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await openOnAgent(bob, id);
    await send(bob.page, 'Your parcel is on its way');
    await until(() => page.evaluate(() => window.__notes.length > 0), 5000, 'a notification');
    assert.deepEqual(await page.evaluate(() => window.__notes), [{ title: 'bob', body: 'Your parcel is on its way' }]);
    assert.ok(await page.evaluate(() => window.__sb.notifier.shown.some((x) => x.sound)), 'a sound');
    await until(async () => (await page.title()) === '(1) Acme Support', 5000, 'the count in the title');
    // Back to the page: read, the title is plain again.
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { value: 'visible', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await until(async () => (await page.title()) === 'Acme Support', 5000, 'the title without a count');
  } finally {
    await page.evaluate(() => window.__sb.client.close(window.__sb.conv().id)).catch(() => {});
    await done(bob);
    await context.close();
  }
});

test('messages: a date separator per day, consecutive messages grouped, links clickable and safe, an emoji picker', async () => {
  const bob = await agent(browser, srv, 'bob', { extra: '&d=lena' });
  const cust = await customer(browser, srv, 'lena');
  try {
    const id = await convId(cust);
    await handOff(cust, 'bob');
    await send(cust.page, 'first of two');
    await send(cust.page, 'see https://example.com/a?b=1, javascript:alert(1) and <b>bold</b> or www.example.org.');
    await openOnAgent(bob, id);
    const second = bob.page.locator('#chat .msg', { hasText: 'javascript' });
    await second.waitFor();
    // Grouped: the second of a run from one sender says no name.
    assert.match(await second.getAttribute('class'), /\bcont\b/);
    assert.equal(await second.locator('.who').isVisible(), false);
    assert.equal(await bob.page.locator('#chat .msg', { hasText: 'first of two' }).getAttribute('class').then((c) => /\bcont\b/.test(c)), false);
    // Links: http(s) only, apart from the page, no referrer; text stays text.
    const links = await second.locator('.bubble a').evaluateAll((as) => as.map((a) => [a.getAttribute('href'), a.target, a.rel]));
    assert.deepEqual(links, [
      ['https://example.com/a?b=1', '_blank', 'noopener noreferrer nofollow ugc'],
      ['https://www.example.org/', '_blank', 'noopener noreferrer nofollow ugc'],
    ]);
    assert.equal(await second.locator('b:text("bold")').count(), 0);
    assert.match(await second.locator('.bubble').textContent(), /<b>bold<\/b>/);
    // Today's separator above the first message of the day.
    assert.ok((await bob.page.locator('#chat .msg .day').allTextContents()).includes('Today'));
    // Days: yesterday's and today's messages of a conversation, each day
    // under its separator.
    const days = await cust.page.evaluate(async () => {
      const { store, view } = window.__sb;
      const c = store.conv(999999);
      const now = Date.now();
      const m = (seq, ts) => ({ seq, conv_id: 999999, sender: 'bob', type: 'MSG_TEXT', body: `m${seq}`, server_ts: ts, tags: [] });
      c.list.upsert(m(1, now - 86400000));
      c.list.upsert(m(2, now - 86400000 + 60000));
      c.list.upsert(m(3, now));
      view.show(c, { history: false });
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      const out = [...document.querySelectorAll('#chat .msg')].map((el) => [el.querySelector('.bubble').textContent, el.querySelector('.day')?.textContent || '']);
      view.show(window.__sb.conv());
      return out;
    });
    assert.deepEqual(days, [
      ['m1', 'Yesterday'],
      ['m2', ''],
      ['m3', 'Today'],
    ]);
    // The emoji picker.
    await frames(cust.page);
    await cust.page.click('.emojibtn');
    assert.equal(await cust.page.isVisible('.emojibox'), true);
    assert.equal(await cust.page.getAttribute('.emojibtn', 'aria-expanded'), 'true');
    await cust.page.click('.emojibox button:text("👍")');
    assert.equal(await cust.page.isVisible('.emojibox'), false);
    assert.equal(await cust.page.inputValue('#chat textarea'), '👍');
    await cust.page.click('.emojibtn');
    await cust.page.keyboard.press('ArrowRight');
    await cust.page.keyboard.press('Enter');
    assert.equal(await cust.page.inputValue('#chat textarea'), '👍😂');
    await cust.page.click('.emojibtn');
    await cust.page.keyboard.press('Escape');
    assert.equal(await cust.page.isVisible('.emojibox'), false);
    await cust.page.press('#chat textarea', 'Enter');
    await until(async () => (await texts(bob.page)).includes('👍😂'), 5000, 'sent');
  } finally {
    await done(bob, cust);
  }
});

// The look of the widget comes from the desk's configuration (GET
// /api/widget), read by the loader on the host page and by the chat in
// its frame; the snippet's data-* attributes still win (the first test).
test('the widget takes its colour, title, reply time, greeting and agents\' pictures from the desk, in the visitor\'s language', async () => {
  const desk = JSON.parse(readFileSync(join(repo, 'conf', 'desk.json'), 'utf8'));
  desk.desks[0].widget = {
    color: '#7c3aed',
    title: { en: 'Beta Help', 'zh-CN': '贝塔帮助' },
    reply_time: { en: 'in about an hour', 'zh-CN': '一小时左右' },
    greeting: { en: 'Hi from the desk.', 'zh-CN': '你好，这里是客服台。' },
  };
  const dir = mkdtempSync(join(tmpdir(), 'sbdesk-'));
  writeFileSync(join(dir, 'desk.json'), JSON.stringify(desk));
  const s2 = await startServer({ demo: true, web: WEB, args: ['--desk', join(dir, 'desk.json')] });
  const contexts = [];
  try {
    for (const [lang, title, greeting, reply] of [
      ['en', 'Beta Help', 'Hi from the desk.', /We usually reply in about an hour/],
      ['zh-CN', '贝塔帮助', '你好，这里是客服台。', /一小时左右/],
    ]) {
      const context = await browser.newContext({ viewport: DESKTOP });
      contexts.push(context);
      await context.route('http://shop.test/**', (r) =>
        r.fulfill({
          contentType: 'text/html',
          body: `<!doctype html><html lang="en"><head><title>Shop</title></head><body><main><h1>Shop</h1></main>
<script src="${s2.url}/widget.js" async data-user="wes-${lang}" data-lang="${lang}"></script></body></html>`,
        }),
      );
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto('http://shop.test/');
      const launcher = page.locator('.launcher');
      await until(async () => (await launcher.evaluate((el) => getComputedStyle(el).backgroundColor)) === 'rgb(124, 58, 237)', 5000, 'the desk\'s colour on the launcher');
      await launcher.click();
      const chat = page.frameLocator('iframe.frame');
      await chat.locator('.greeting').waitFor();
      await until(async () => (await chat.locator('body').getAttribute('data-branded')) === '1', 5000, 'branded');
      assert.equal(await chat.locator('#title').textContent(), title);
      assert.equal(await chat.locator('.greeting .intro').textContent(), greeting);
      assert.match(await chat.locator('.greeting .replytime').textContent(), reply);
      assert.equal(await chat.locator('.bar').evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(124, 58, 237)');
      const pics = () => chat.locator('.greeting .team img').evaluateAll((els) => els.map((e) => [e.alt, new URL(e.src).pathname, e.complete && e.naturalWidth > 0]));
      await until(async () => (await pics()).every((p) => p[2]), 5000, 'the pictures loaded');
      assert.deepEqual(await pics(), [['ann', '/avatar-ann.svg', true], ['bob', '/avatar-bob.svg', true], ['cai', '/avatar-cai.svg', true]]);
      assert.equal(await page.locator('iframe.frame').getAttribute('title'), title);
      assert.deepEqual((await axeSerious(page)).filter((v) => !v.includes('iframe')), []);
      assert.deepEqual(errors, []);
    }
  } finally {
    for (const c of contexts) await c.close();
    await s2.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
