// Issue 15: the customer's rating and the workbench's Reports view, in
// Debian's Chromium against the real server (demo desk). The rating: asked
// at the close, given with the keyboard (stars as a radio group) and a
// comment, thanked, refused a second time (ERR_ALREADY), seen by the agent
// in the customer panel; "Not now" and the Chinese texts. Reports: only
// for administrators; the figures of the conversations above by agent,
// the CSV download, a refused time zone said in the view.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, until, token } from '../helpers/server.mjs';
import { launch } from '../helpers/browser.mjs';
import { WEB, DESKTOP, customer, agent, send, convId, handOff, openOnAgent, axeSerious, done } from '../helpers/pages.mjs';

const DEMO_SECRET = 'switchboard-demo-secret-change-me';

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

/** The customer of cust is handed to bob, who answers and closes. */
async function servedAndClosed(cust, bob, reply) {
  await handOff(cust, 'bob');
  const id = await convId(cust);
  await openOnAgent(bob, id);
  await send(bob.page, reply);
  await bob.page.click('#closebtn');
  await until(async () => (await cust.page.evaluate(() => window.__sb.conv().info?.state)) === 'STATE_CLOSED', 10000, 'closed');
  return id;
}

test('the customer rates the closed conversation with the keyboard and a comment, once; the agent sees it', async () => {
  const bob = await agent(browser, srv, 'bob', { extra: '&d=r1' });
  const cust = await customer(browser, srv, 'rita');
  try {
    const id = await servedAndClosed(cust, bob, 'Your parcel left today.');
    // Asked: the event in the conversation, and the panel.
    await cust.page.waitForSelector('.msg.event >> text=/Please rate this conversation/');
    await cust.page.waitForSelector('.csat[data-state=asking]');
    assert.equal(await cust.page.textContent('.csat h2'), 'How did we do?');
    assert.equal(await cust.page.isDisabled('.csat .sendbtn'), true, 'nothing to send before a star is picked');
    assert.deepEqual(await axeSerious(cust.page), [], 'no serious accessibility violation with the panel open');
    // Four stars with the arrows, a comment, Send.
    await cust.page.focus('.csat .star[data-rating="1"]');
    await cust.page.keyboard.press('ArrowRight');
    await cust.page.keyboard.press('ArrowRight');
    await cust.page.keyboard.press('ArrowRight');
    assert.equal(await cust.page.getAttribute('.csat .star[data-rating="4"]', 'aria-checked'), 'true');
    assert.equal(await cust.page.locator('.csat .star.on').count(), 4);
    await cust.page.fill('.csat .comment', 'Quick and kind');
    await cust.page.click('.csat .sendbtn');
    await cust.page.waitForSelector('.csat[data-state=thanked] >> text=Thank you for your rating!');
    await cust.page.waitForSelector('.msg.event >> text=/rated this conversation 4 out of 5/');
    // Once: the server keeps the first rating.
    const again = await cust.page.evaluate((x) => window.__sb.client.csat(x, 1, 'no').then(() => 'ok', (e) => e.code), id);
    assert.equal(again, 'ERR_ALREADY');
    // The agent who had it sees the rating and the comment in the panel.
    await bob.page.waitForSelector('#info dd >> text=/★★★★ 4 of 5 — “Quick and kind”/', { timeout: 10000 });
    assert.deepEqual(cust.errors, []);
    assert.deepEqual(bob.errors, []);
  } finally {
    await done(bob, cust);
  }
});

test('in Chinese, and "Not now" hides the panel without a rating', async () => {
  const bob = await agent(browser, srv, 'bob', { extra: '&d=r2' });
  const cust = await customer(browser, srv, 'wen', { lang: 'zh-CN' });
  try {
    await send(cust.page, '转人工');
    await until(async () => (await cust.page.evaluate(() => window.__sb.conv().info?.agent)) === 'bob', 10000, 'assigned to bob');
    const id = await convId(cust);
    await openOnAgent(bob, id);
    await send(bob.page, 'Hello');
    await bob.page.click('#closebtn');
    await cust.page.waitForSelector('.csat[data-state=asking]', { timeout: 10000 });
    assert.equal(await cust.page.textContent('.csat h2'), '请为本次服务评分');
    assert.equal(await cust.page.getAttribute('.csat .star[data-rating="5"]', 'aria-label'), '5 星（满分 5 星）');
    assert.equal(await cust.page.textContent('.csat .later'), '以后再说');
    await cust.page.click('.csat .later');
    await cust.page.waitForSelector('.csat', { state: 'hidden' });
    assert.equal(await cust.page.evaluate(() => window.__sb.conv().info.csat_rating), 0);
  } finally {
    await done(bob, cust);
  }
});

test('Reports: administrators only; by agent as a table and a CSV; a refused time zone said in the view', async () => {
  // An agent has no Reports button (the REPORT frame answers admins).
  const bob = await agent(browser, srv, 'bob', { extra: '&d=r3' });
  assert.equal(await bob.page.isHidden('#reportsbtn'), true);
  const root = await agent(browser, srv, 'root', { size: DESKTOP, extra: `&token=${token('root', 'admin', { secret: DEMO_SECRET })}` });
  try {
    await root.page.waitForSelector('#reportsbtn', { state: 'visible' });
    await root.page.click('#reportsbtn');
    await root.page.waitForSelector('#reports', { state: 'visible' });
    assert.equal(await root.page.isHidden('.desk'), true);
    assert.match(root.page.url(), /view=reports/);
    // Today, in UTC (the conversations of the tests above), by agent.
    await root.page.fill('#rtz', 'UTC');
    const today = new Date().toISOString().slice(0, 10);
    await root.page.fill('#rfrom', today);
    await root.page.fill('#rto', today);
    await root.page.click('#reports button[type=submit]');
    await root.page.waitForSelector('#reports[data-state=done] table.report');
    // bob had both: one rated 4, one asked and not rated.
    const bobRow = root.page.locator('table.report tbody tr', { has: root.page.locator('th', { hasText: /^bob$/ }) });
    const cells = await bobRow.locator('td').allTextContents();
    assert.equal(cells[0], '2', 'conversations');
    assert.equal(cells[1], '2', 'closed');
    assert.match(cells[2], /^\d+(\.\d)?[smhd].* \/ /, 'first response median / p90');
    assert.equal(cells[5], '4.00');
    assert.equal(cells[6], '1 / 2 (50%)');
    assert.match(await root.page.textContent('table.report caption'), new RegExp(`${today} to ${today} \\(UTC\\)`));
    assert.deepEqual(await axeSerious(root.page), [], 'no serious accessibility violation in the view');
    // The CSV: the server's columns.
    const [download] = await Promise.all([root.page.waitForEvent('download'), root.page.click('#rcsv')]);
    const csv = readFileSync(await download.path(), 'utf8');
    const lines = csv.split('\r\n');
    assert.match(lines[0], /^agent,conversations,closed,first_responses,first_response_median_ms,/);
    const bobLine = lines.find((l) => l.startsWith('bob,'));
    assert.ok(bobLine, csv);
    assert.match(bobLine, /^bob,2,2,2,\d+,\d+,\d+,\d+,2,\d+,\d+,2,1,4\.0000,0\.5000$/);
    assert.match(lines.find((l) => l.startsWith('*,')), /^\*,/);
    // A time zone tzdata does not have: the server's reason, no table.
    await root.page.fill('#rtz', 'Mars/Olympus');
    await root.page.click('#reports button[type=submit]');
    await root.page.waitForSelector('#reports[data-state=error]');
    assert.match(await root.page.textContent('#reports .err'), /Mars\/Olympus is not a time zone/);
    assert.equal(await root.page.isDisabled('#rcsv'), true);
    // Back to the conversations.
    await root.page.click('#reportsclose');
    await root.page.waitForSelector('.desk', { state: 'visible' });
    assert.deepEqual(root.errors, []);
  } finally {
    await done(bob, root);
  }
});
