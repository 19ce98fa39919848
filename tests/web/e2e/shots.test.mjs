// The screenshots in docs/screenshots (linked from the README and
// docs/web.md), taken of the pages in a conversation as people see it:
// the customer on a phone (en, zh-CN), the workbench on a desktop and on
// a phone, and the widget on a site.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, until, repo } from '../helpers/server.mjs';
import { launch } from '../helpers/browser.mjs';
import { WEB, PHONE, DESKTOP, customer, agent, send, texts, convId, openOnAgent, frames, done } from '../helpers/pages.mjs';

const SHOTS = join(repo, 'docs', 'screenshots');
let srv;
let browser;

before(async () => {
  srv = await startServer({ demo: true, web: WEB });
  browser = await launch();
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

async function talk(lang, user, lines) {
  const bob = await agent(browser, srv, 'bob', { lang });
  const cust = await customer(browser, srv, user, { lang });
  const id = await convId(cust);
  const [hello, person, ...rest] = lines;
  await send(cust.page, hello);
  await cust.page.waitForSelector('.msg.theirs.robot >> nth=1');
  await send(cust.page, person);
  await until(async () => (await cust.page.evaluate(() => window.__sb.conv().info?.agent)) === 'bob', 10000, 'assigned');
  await openOnAgent(bob, id);
  for (const [who, text] of rest) {
    await send(who === 'c' ? cust.page : bob.page, text);
    await until(async () => (await texts(who === 'c' ? bob.page : cust.page)).includes(text), 5000, 'delivered');
  }
  // Everything the customer wrote read by bob, and no pointer over a
  // message (its actions would show).
  await until(() => cust.page.evaluate(() => window.__sb.view.conv.list.items.filter((e) => e.mine).every((e) => window.__sb.view.statusOf(e) === 'read')), 5000, 'read');
  for (const p of [cust.page, bob.page]) await p.mouse.move(0, 0);
  await Promise.all([frames(cust.page), frames(bob.page)]);
  return { bob, cust };
}

test('screenshots of both pages and the widget', async () => {
  const en = await talk('en', 'carol', [
    'hello',
    'Talk to a person',
    ['c', 'My order #1234 has not arrived yet, the tracking page says https://example.com/track/1234'],
    ['b', 'Sorry about that! Let me check order #1234 for you 🙂'],
    ['b', 'It left our warehouse yesterday and arrives tomorrow.'],
    ['c', 'Great, thanks!'],
  ]);
  try {
    await en.cust.page.screenshot({ path: join(SHOTS, 'customer.png') });
    await en.bob.page.evaluate(() => window.__sb.view.setTagTarget(0));
    await en.bob.page.screenshot({ path: join(SHOTS, 'agent.png') });
    await en.bob.page.setViewportSize(PHONE);
    await frames(en.bob.page);
    await en.bob.page.screenshot({ path: join(SHOTS, 'agent-phone.png') });
  } finally {
    await done(en.bob, en.cust);
  }
  const zh = await talk('zh-CN', 'lili', ['你好', '转人工', ['c', '我的订单还没到，能帮我查一下吗？'], ['b', '好的，我来帮您查询。']]);
  try {
    await zh.cust.page.screenshot({ path: join(SHOTS, 'customer-zh.png') });
  } finally {
    await done(zh.bob, zh.cust);
  }
  // The widget on the demo page: the launcher opened on the greeting.
  const context = await browser.newContext({ viewport: DESKTOP });
  try {
    const page = await context.newPage();
    await page.goto(`${srv.url}/embed`);
    await page.click('.launcher');
    await page.frameLocator('iframe.frame').locator('.greeting .start').waitFor();
    await frames(page);
    await page.screenshot({ path: join(SHOTS, 'widget.png') });
    assert.equal(await page.isVisible('iframe.frame'), true);
  } finally {
    await context.close();
  }
});
