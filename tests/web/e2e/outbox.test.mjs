// Issue 13 item 4: a message typed while disconnected is kept across a
// closed tab and a reload (IndexedDB), shows pending, then failed with
// its reason after a while without a connection, and Retry sends it once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, until } from '../helpers/server.mjs';
import { launch } from '../helpers/browser.mjs';
import { WEB, PHONE, DESKTOP, customer, agent, send, texts, convId, openOnAgent, handOff } from '../helpers/pages.mjs';

let srv;
let browser;

before(async () => {
  srv = await startServer({ demo: true, web: WEB });
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

const notReady = (page) => until(async () => (await page.evaluate(() => window.__sb.client.state)) !== 'ready', 5000, 'the page notices');
const ready = (page) => page.waitForFunction(() => document.body.dataset.ready === '1', null, { timeout: 15000 });
// What a customer page's client says, for a failure's message.
const clientState = (page) =>
  page.evaluate(() => JSON.stringify({ state: window.__sb.client.state, err: window.__sb.client.core.lastErr, stats: window.__sb.client.stats(), pending: window.__sb.view.conv?.list.pending.map((e) => [e.msg.body, e.status, e.err]) }));
// Waits until the agent's page holds text; on a timeout, says where the
// sender's client stood.
const agentGets = (bob, sender, text) =>
  until(async () => (await texts(bob.page)).includes(text), 15000, `bob gets "${text}"`).catch(async (e) => {
    throw new Error(`${e.message}: bob has ${JSON.stringify((await texts(bob.page)).slice(-4))}; the sender: ${await clientState(sender)}`);
  });

// A customer `name` handed off to bob, whose page shows the conversation;
// then the customer's network goes away and its page notices.
async function offlineWithBob(name, opts = {}) {
  const cust = await customer(browser, srv, name, opts);
  const bob = await agent(browser, srv, 'bob', { extra: `&d=${name}` });
  const id = await convId(cust);
  await handOff(cust, 'bob');
  await openOnAgent(bob, id);
  await cust.context.setOffline(true);
  await notReady(cust.page);
  return { cust, bob };
}

test('item 4: a message typed offline survives closing the tab and goes out once when it opens again', async () => {
  // The customer's service conversation, which every load of the widget
  // opens again.
  const { cust, bob } = await offlineWithBob('otto');
  await send(cust.page, 'typed offline');
  await cust.page.waitForSelector('.msg.mine [data-status=sending]');
  // The tab closes before the network is back; the same browser opens
  // the widget again later.
  await cust.page.close();
  await cust.context.setOffline(false);
  const again = await cust.context.newPage();
  await again.goto(`${srv.url}/?user=otto`);
  await ready(again);
  await agentGets(bob, again, 'typed offline');
  await until(async () => (await texts(again)).filter((x) => x === 'typed offline').length === 1 && (await again.evaluate(() => window.__sb.view.conv.list.pending.length)) === 0, 10000, 'sent on the page');
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual((await texts(bob.page)).filter((x) => x === 'typed offline'), ['typed offline'], 'once');
  await again.waitForSelector('.msg.mine:has-text("typed offline") [data-status=sent], .msg.mine:has-text("typed offline") [data-status=delivered], .msg.mine:has-text("typed offline") [data-status=read]');
  await cust.context.close();
  await bob.context.close();
});

test('item 4: offline sends reach "not sent: no connection"; the failed message survives a reload; Retry sends it once (agent page)', async () => {
  const cust = await customer(browser, srv, 'olive', { extra: '&agent=bob' });
  const bob = await agent(browser, srv, 'bob', { extra: '&d=olive', size: DESKTOP });
  const id = await convId(cust);
  await send(cust.page, 'hello bob');
  await openOnAgent(bob, id);
  // A short wait for the test: the pages wait 15 s.
  await bob.page.evaluate(() => (window.__sb.client.core.cfg.offlineFailMs = 1500));
  await bob.context.setOffline(true);
  await notReady(bob.page);
  await send(bob.page, 'typed while the network was down');
  const m = bob.page.locator('#chat .msg.mine', { hasText: 'typed while the network was down' });
  await m.locator('[data-status=sending]').waitFor();
  await m.locator('[data-status=failed]').waitFor({ timeout: 5000 });
  assert.match(await m.locator('.failure').textContent(), /Not sent: No connection/);
  await bob.context.setOffline(false);
  await bob.page.reload();
  await ready(bob.page);
  // The reload opens the same conversation (its id is in the URL) with
  // the failed message and its reason.
  const m2 = bob.page.locator('#chat .msg.mine', { hasText: 'typed while the network was down' });
  await m2.locator('[data-status=failed]').waitFor({ timeout: 5000 });
  assert.match(await m2.locator('.failure').textContent(), /No connection/);
  assert.deepEqual((await texts(cust.page)).filter((x) => x.startsWith('typed while')), [], 'not sent by itself');
  await m2.locator('[data-act=retry]').click();
  await until(async () => (await texts(cust.page)).includes('typed while the network was down'), 10000, 'the customer gets it');
  await m2.locator('[data-status]:not([data-status=failed]):not([data-status=sending])').waitFor({ timeout: 5000 });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await texts(cust.page)).filter((x) => x === 'typed while the network was down').length, 1, 'once');
  // Nothing left in the outbox.
  await bob.page.reload();
  await ready(bob.page);
  assert.equal(await bob.page.evaluate(() => window.__sb.client.core.stats().failedNow + window.__sb.client.core.stats().outboxLen), 0);
  await cust.context.close();
  await bob.context.close();
});

test('item 4: sends pending across a reload go out once, in order', async () => {
  const { cust, bob } = await offlineWithBob('orla', { size: PHONE });
  for (const s of ['one', 'two', 'three']) await send(cust.page, s);
  await cust.context.setOffline(false);
  // Reloaded the moment the network is back: some may have gone, some not.
  await cust.page.reload();
  await ready(cust.page);
  await agentGets(bob, cust.page, 'three');
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual((await texts(bob.page)).filter((x) => ['one', 'two', 'three'].includes(x)), ['one', 'two', 'three']);
  await until(async () => (await cust.page.evaluate(() => window.__sb.view.conv.list.pending.length)) === 0, 5000, 'nothing pending');
  assert.deepEqual((await texts(cust.page)).slice(-3), ['one', 'two', 'three']);
  await cust.context.close();
  await bob.context.close();
});

test('item 4: a send whose IndexedDB write has not completed when the page goes away survives the reload (pagehide keeps it)', async () => {
  const { cust, bob } = await offlineWithBob('oscar', { size: PHONE });
  // Writes from here on never complete, as when the page goes away
  // before IndexedDB commits them.
  await cust.page.evaluate(() => {
    const o = window.__sb.client.outbox;
    const tx = o.tx.bind(o);
    o.tx = (mode, fn) => (mode === 'readwrite' ? new Promise(() => {}) : tx(mode, fn));
  });
  await send(cust.page, 'kept at pagehide');
  await cust.page.locator('.msg.mine', { hasText: 'kept at pagehide' }).locator('[data-status=sending]').waitFor();
  await cust.page.close();
  await cust.context.setOffline(false);
  const again = await cust.context.newPage();
  await again.goto(`${srv.url}/?user=oscar`);
  await ready(again);
  await agentGets(bob, again, 'kept at pagehide');
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual((await texts(bob.page)).filter((x) => x === 'kept at pagehide'), ['kept at pagehide'], 'once');
  await until(async () => (await again.evaluate(() => window.__sb.view.conv.list.pending.length)) === 0, 5000, 'nothing pending');
  await cust.context.close();
  await bob.context.close();
});
