// Issue 13, the workbench: queued conversations, names and states in the
// user's language, search, the conversation in the URL, the layout on
// narrow screens, and what agents expect of it (canned replies on "/",
// keyboard shortcuts, drafts, the new-messages pill).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, until } from '../helpers/server.mjs';
import { launch, openPage } from '../helpers/browser.mjs';
import { seedConv } from '../helpers/seed.mjs';
import { WEB, PHONE, customer, agent, send, texts, convId, handOff, openOnAgent, frames, done } from '../helpers/pages.mjs';

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

// Runs a test with keep(page) for the pages it opens; after it, passed or
// failed, the agent gets its status and room back (its conversations
// closed) and every page's context is closed, so that one test's failure
// does not fail the next.
async function scene(fn) {
  const pages = [];
  try {
    await fn((p) => (pages.push(p), p));
  } finally {
    const ag = pages.find((p) => p.page.url().includes('/agent'));
    await done(ag, ...pages.filter((p) => p !== ag));
  }
}

test('item 7: a queued conversation opens read-only (no composer, Transfer or Close) and becomes writable once routed to the agent', () =>
  scene(async (keep) => {
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=q' }));
    await bob.page.selectOption('#status', 'AGENT_AWAY');
    await until(() => bob.page.evaluate(() => window.__sb.store.agentState?.status === 'AGENT_AWAY' || document.querySelector('#status').value === 'AGENT_AWAY'), 5000, 'away');
    await new Promise((r) => setTimeout(r, 300));
    const cust = keep(await customer(browser, srv, 'quincy'));
    const id = await convId(cust);
    await send(cust.page, 'Talk to a person');
    await until(async () => (await cust.page.evaluate(() => window.__sb.conv().info?.state)) === 'STATE_QUEUED', 10000, 'queued');
    await bob.page.click('#tab-queued');
    await bob.page.waitForSelector(`a.conv[data-id="${id}"]`);
    await bob.page.click(`a.conv[data-id="${id}"]`);
    await bob.page.waitForSelector('#chat .notice >> text=/waiting in the queue/');
    assert.equal(await bob.page.isVisible('#chat textarea'), false, 'no composer');
    assert.equal(await bob.page.isDisabled('#transferbtn'), true);
    assert.equal(await bob.page.isDisabled('#closebtn'), true);
    assert.match(await bob.page.textContent('#convhead .st'), /In the queue/);
    assert.match(await bob.page.textContent('#chat .notice'), /Last message: “.+”/, 'the last message is shown');
    // Available again: the server routes the queue to bob, and the open
    // pane becomes his to write in.
    await bob.page.selectOption('#status', 'AGENT_ONLINE');
    await bob.page.waitForSelector('#chat textarea', { state: 'visible', timeout: 10000 });
    assert.equal(await bob.page.isDisabled('#closebtn'), false);
    await send(bob.page, 'Hello, this is Bob.');
    await until(async () => (await texts(cust.page)).includes('Hello, this is Bob.'), 5000, 'bob reaches the customer');
    await bob.page.click('#closebtn');
  }));

test('item 7: an agent takes a queued customer', () =>
  scene(async (keep) => {
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=claim' }));
    await bob.page.selectOption('#status', 'AGENT_AWAY');
    const cust = keep(await customer(browser, srv, 'clara'));
    const id = await convId(cust);
    await send(cust.page, 'Talk to a person');
    await bob.page.click('#tab-queued');
    await bob.page.click(`a.conv[data-id="${id}"]`);
    await bob.page.click('#claimbtn', { timeout: 3000 });
    await bob.page.waitForSelector('#chat textarea', { state: 'visible', timeout: 3000 });
  }));

test('item 7: a queued conversation goes to an agent when the agent connects', () =>
  scene(async (keep) => {
    const cust = keep(await customer(browser, srv, 'cora'));
    await send(cust.page, 'Talk to a person');
    await until(async () => (await cust.page.evaluate(() => window.__sb.conv().info?.state)) === 'STATE_QUEUED', 10000, 'queued');
    const ann = keep(await agent(browser, srv, 'ann'));
    await until(async () => (await cust.page.evaluate(() => window.__sb.conv().info?.agent)) === 'ann', 3000, 'routed to ann');
  }));

test('item 5: a conversation the agent closed is in its Closed tab, with its agent', () =>
  scene(async (keep) => {
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=closed' }));
    const cust = keep(await customer(browser, srv, 'cleo'));
    const id = await convId(cust);
    await handOff(cust, 'bob');
    await openOnAgent(bob, id);
    await bob.page.click('#closebtn');
    await bob.page.click('#tab-closed');
    await bob.page.waitForSelector(`a.conv[data-id="${id}"]`, { timeout: 3000 });
    await bob.page.click(`a.conv[data-id="${id}"]`);
    assert.match(await bob.page.textContent('#info'), /bob/);
  }));

test('item 8: the customer sees the agent\'s name, the agent sees states and info in words, in en and zh-CN', () =>
  scene(async (keep) => {
    for (const [lang, chatting, mine, state] of [
      ['en', 'Chatting with bob', 'Assigned to you', 'Assigned to you'],
      ['zh-CN', '客服 bob 为您服务', '由你接待', '由你接待'],
    ]) {
      const cust = keep(await customer(browser, srv, `nina-${lang}`, { lang }));
      const bob = keep(await agent(browser, srv, 'bob', { lang, extra: `&d=nina-${lang}` }));
      const id = await convId(cust);
      await send(cust.page, lang === 'en' ? 'Talk to a person' : '转人工');
      await until(async () => (await cust.page.evaluate(() => window.__sb.conv().info?.agent)) === 'bob', 10000, 'assigned');
      await cust.page.waitForSelector(`#convstate >> text=${chatting}`);
      assert.match(await cust.page.title(), lang === 'en' ? /Acme Support$/ : /Acme 客服$/);
      assert.match(await bob.page.title(), lang === 'en' ? /Switchboard workbench$/ : /Switchboard 工作台$/);
      await openOnAgent(bob, id);
      await bob.page.waitForSelector(`#convhead .st >> text=${mine}`);
      const info = await bob.page.textContent('#info');
      assert.ok(info.includes(state), info);
      assert.ok(info.includes(`nina-${lang}`), 'the customer\'s name');
      for (const raw of ['assigned', 'STATE_', 'support', 'system', 'Members', 'bot,']) assert.ok(!info.includes(raw), `no "${raw}" in ${info}`);
      await bob.page.click('#closebtn');
      await cust.page.waitForSelector(`#convstate >> text=${lang === 'en' ? 'Closed' : '已结束'}`);
    }
  }));

test('item 11: clearing the search box shows the list again without Enter; the hits are marked', () =>
  scene(async (keep) => {
    const cust = keep(await customer(browser, srv, 'sam'));
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=sam' }));
    const id = await convId(cust);
    await handOff(cust, 'bob');
    await send(cust.page, 'I need a refund for order 77');
    await openOnAgent(bob, id);
    await bob.page.fill('#search', 'refund');
    await bob.page.waitForSelector('a.conv.hit mark >> text=refund', { timeout: 5000 });
    await bob.page.fill('#search', '');
    await bob.page.waitForSelector(`a.conv:not(.hit)[data-id="${id}"]`, { timeout: 2000 });
    assert.equal(await bob.page.locator('a.conv.hit').count(), 0);
    // A hit opens its conversation at the message, marked there too.
    await bob.page.fill('#search', 'order 77');
    await bob.page.press('#search', 'Enter');
    await bob.page.click('a.conv.hit');
    await bob.page.waitForSelector('#chat .msg mark >> text=order');
    await bob.page.click('#closebtn');
  }));

test('item 13: a reload of the workbench keeps the open conversation (its id is in the URL)', () =>
  scene(async (keep) => {
    const cust = keep(await customer(browser, srv, 'rex'));
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=rex' }));
    const id = await convId(cust);
    await handOff(cust, 'bob');
    await send(cust.page, 'still there after a reload?');
    await openOnAgent(bob, id);
    assert.match(bob.page.url(), new RegExp(`[?&]conv=${id}\\b`));
    await bob.page.reload();
    await bob.page.waitForFunction(() => document.body.dataset.ready === '1');
    assert.equal(await bob.page.evaluate(() => window.__sb.selected()?.id), id);
    await bob.page.waitForSelector('#chat .msg >> text=still there after a reload?');
    assert.equal(await bob.page.getAttribute(`a.conv[data-id="${id}"]`, 'aria-current'), 'true');
    await bob.page.click('#closebtn');
  }));

test('item 15: the workbench fits 768 and 390 px; connection apart from status; closed means read-only; no sticky Reply on touch; /favicon.ico', () =>
  scene(async (keep) => {
    const cust = keep(await customer(browser, srv, 'vera'));
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=vera', size: { width: 768, height: 900 } }));
    const id = await convId(cust);
    await handOff(cust, 'bob');
    await send(cust.page, 'narrow screens');
    await openOnAgent(bob, id);
    await frames(bob.page);
    assert.ok((await bob.page.evaluate(() => document.documentElement.scrollWidth)) <= 768, 'no sideways scroll at 768');
    assert.equal(await bob.page.isVisible('#convs'), true);
    assert.equal(await bob.page.isVisible('#chat textarea'), true);
    assert.equal(await bob.page.isVisible('#infopanel'), false, 'the info panel is a drawer');
    await bob.page.click('#infobtn');
    assert.equal(await bob.page.isVisible('#infopanel'), true);
    await bob.page.click('#infoclose');
    assert.equal(await bob.page.isVisible('#infopanel'), false);
    // 390: the list, then the conversation with a way back.
    await bob.page.setViewportSize(PHONE);
    await frames(bob.page);
    assert.ok((await bob.page.evaluate(() => document.documentElement.scrollWidth)) <= 390, 'no sideways scroll at 390');
    assert.equal(await bob.page.isVisible('#chat textarea'), true);
    const box = await bob.page.locator('#chat textarea').boundingBox();
    assert.ok(box.y + box.height <= 844 && box.x >= 0 && box.x + box.width <= 390, `the composer is on the screen: ${JSON.stringify(box)}`);
    await bob.page.click('#backbtn');
    assert.equal(await bob.page.isVisible('#convs'), true);
    assert.equal(await bob.page.isVisible('#chat textarea'), false);
    await bob.page.click(`a.conv[data-id="${id}"]`);
    assert.equal(await bob.page.isVisible('#chat textarea'), true);
    // The connection reads as a connection, the agent's status as status.
    assert.match(await bob.page.textContent('#conn'), /Connected/);
    assert.match(await bob.page.getAttribute('#conn', 'aria-label'), /Connection: Connected/);
    assert.match(await bob.page.textContent('label.mystatus'), /My status/);
    // Touch: a tap shows a message's actions; after Reply they go.
    const ctx = await browser.newContext({ viewport: PHONE, hasTouch: true, isMobile: true });
    const tp = await ctx.newPage();
    await tp.goto(`${srv.url}/?user=vera`);
    await tp.waitForFunction(() => document.body.dataset.ready === '1');
    const m = tp.locator('#chat .msg.mine', { hasText: 'narrow screens' });
    await m.tap();
    await m.locator('.acts [data-act=quote]').waitFor({ state: 'visible' });
    await m.locator('.acts [data-act=quote]').tap();
    await tp.waitForSelector('#chat .quotebar:not([hidden])');
    assert.equal(await m.locator('.acts').isVisible(), false, 'Reply does not stick');
    await ctx.close();
    // Closed: the header keeps the customer, nothing to write with.
    await bob.page.click('#closebtn');
    await bob.page.waitForSelector('#chat .notice >> text=/closed/');
    assert.equal(await bob.page.textContent('#convhead .who'), 'vera');
    assert.equal(await bob.page.isVisible('#chat textarea'), false);
    assert.equal(await bob.page.isDisabled('#transferbtn'), true);
    assert.equal(await bob.page.isDisabled('#closebtn'), true);
    const ico = await fetch(`${srv.url}/favicon.ico`);
    assert.equal(ico.status, 200);
    assert.equal(ico.headers.get('content-type'), 'image/x-icon');
  }));

test('"/" in the composer offers the canned replies; up, down and Enter take one', () =>
  scene(async (keep) => {
    const cust = keep(await customer(browser, srv, 'cami'));
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=cami' }));
    const id = await convId(cust);
    await handOff(cust, 'bob');
    await openOnAgent(bob, id);
    await bob.page.click('#chat textarea');
    await bob.page.keyboard.type('/');
    await bob.page.waitForSelector('.suggest [role=option] >> text=Greeting');
    assert.equal(await bob.page.getAttribute('#chat textarea', 'aria-activedescendant'), 'canned-0');
    await bob.page.keyboard.type('mom');
    await bob.page.waitForSelector('.suggest [role=option][aria-selected=true] >> text=One moment');
    await bob.page.keyboard.press('Enter');
    assert.equal(await bob.page.inputValue('#chat textarea'), "Thanks for waiting, I'm checking that for you now.");
    assert.equal(await bob.page.isVisible('.suggest'), false);
    await bob.page.keyboard.press('Enter');
    await until(async () => (await texts(cust.page)).includes("Thanks for waiting, I'm checking that for you now."), 5000, 'sent on the next Enter');
    await bob.page.click('#closebtn');
  }));

test('keyboard shortcuts: Alt+Down and Alt+Up between conversations, Alt+2 the Mine tab, ? the list of shortcuts', () =>
  scene(async (keep) => {
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=keys' }));
    const a = keep(await customer(browser, srv, 'kim'));
    const b = keep(await customer(browser, srv, 'kai'));
    await handOff(a, 'bob');
    await handOff(b, 'bob');
    await bob.page.waitForSelector('a.conv >> nth=1');
    const order = await bob.page.$$eval('a.conv', (as) => as.map((x) => Number(x.dataset.id)));
    await bob.page.keyboard.press('Alt+ArrowDown');
    assert.equal(await bob.page.evaluate(() => window.__sb.selected()?.id), order[0]);
    await bob.page.keyboard.press('Alt+ArrowDown');
    assert.equal(await bob.page.evaluate(() => window.__sb.selected()?.id), order[1]);
    await bob.page.keyboard.press('Alt+ArrowUp');
    assert.equal(await bob.page.evaluate(() => window.__sb.selected()?.id), order[0]);
    await bob.page.keyboard.press('Alt+1');
    assert.equal(await bob.page.getAttribute('#tab-queued', 'aria-selected'), 'true');
    await bob.page.keyboard.press('Alt+2');
    assert.equal(await bob.page.getAttribute('#tab-mine', 'aria-selected'), 'true');
    await bob.page.locator('body').press('?');
    assert.equal(await bob.page.isVisible('#helpdlg'), true);
    await bob.page.keyboard.press('Escape');
    assert.equal(await bob.page.isVisible('#helpdlg'), false);
  }));

test('drafts are kept per conversation, across a switch and a reload', () =>
  scene(async (keep) => {
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=drafts' }));
    const a = keep(await customer(browser, srv, 'dora'));
    const b = keep(await customer(browser, srv, 'dan'));
    await handOff(a, 'bob');
    await handOff(b, 'bob');
    const ida = await convId(a);
    const idb = await convId(b);
    await openOnAgent(bob, ida);
    await bob.page.fill('#chat textarea', 'half-written answer for dora');
    await bob.page.dispatchEvent('#chat textarea', 'input');
    await openOnAgent(bob, idb);
    assert.equal(await bob.page.inputValue('#chat textarea'), '');
    await openOnAgent(bob, ida);
    assert.equal(await bob.page.inputValue('#chat textarea'), 'half-written answer for dora');
    await new Promise((r) => setTimeout(r, 400));
    await bob.page.reload();
    await bob.page.waitForFunction(() => document.body.dataset.ready === '1');
    assert.equal(await bob.page.inputValue('#chat textarea'), 'half-written answer for dora');
    await bob.page.press('#chat textarea', 'Enter');
    await until(async () => (await texts(a.page)).includes('half-written answer for dora'), 5000, 'sent');
    await bob.page.reload();
    await bob.page.waitForFunction(() => document.body.dataset.ready === '1');
    assert.equal(await bob.page.inputValue('#chat textarea'), '', 'a sent draft is gone');
  }));

test('reading history, new messages show a pill that goes to the newest', () =>
  scene(async (keep) => {
    const conv = await seedConv(srv, 'pia', 'bob', 200);
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=pill' }));
    await bob.page.evaluate((id) => window.__sb.select(id), conv.conv_id);
    await until(() => bob.page.evaluate(() => window.__sb.view.conv.list.length >= 50), 10000, 'loaded');
    await frames(bob.page);
    await bob.page.evaluate(() => {
      const s = document.querySelector('#chat .messages');
      s.scrollTop = s.scrollHeight / 2;
    });
    await frames(bob.page);
    assert.equal(await bob.page.isVisible('.newpill'), false);
    const c = keep(await openPage(browser, `${srv.url}/?user=pia&agent=bob`, PHONE));
    // The customer writes into the seeded conversation through the SDK.
    await c.page.evaluate((id) => {
      window.__sb.client.send(id, { body: 'new one' });
      window.__sb.client.send(id, { body: 'and another' });
    }, conv.conv_id);
    await bob.page.waitForSelector('.newpill >> text=/2 new/', { timeout: 5000 });
    await bob.page.click('.newpill');
    await frames(bob.page);
    assert.equal(await bob.page.isVisible('.newpill'), false);
    assert.equal(await bob.page.evaluate(() => window.__sb.view.vl.atBottom()), true);
  }));
