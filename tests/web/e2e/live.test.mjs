// Issue 13, live state: what both open pages show the moment something
// happens (Chromium, customer 390x844, agents 1280x800, the demo desk).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, until } from '../helpers/server.mjs';
import { launch } from '../helpers/browser.mjs';
import { WEB, customer, agent, send, texts, convId, handOff, openOnAgent } from '../helpers/pages.mjs';

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

// A plain conversation of a new customer with bob, open on bob's page.
async function pair(name, opts = {}) {
  // bob first: a conversation names only users the server knows.
  const bob = await agent(browser, srv, 'bob', { extra: `&d=${name}` });
  const cust = await customer(browser, srv, name, { extra: '&agent=bob', ...opts });
  const id = await convId(cust);
  await send(cust.page, `hi from ${name}`);
  await openOnAgent(bob, id);
  await until(async () => (await texts(bob.page)).includes(`hi from ${name}`), 5000, 'bob has it');
  return { cust, bob, id, async close() {
    assert.deepEqual(cust.errors.concat(bob.errors), []);
    await cust.context.close();
    await bob.context.close();
  } };
}

const msg = (page, text) => page.locator('#chat .msg', { hasText: text });

test('item 1: a recall empties the bubble live on both pages, for the customer and the agent', async () => {
  const p = await pair('rita');
  await send(p.cust.page, 'my card is 4111 1111 1111 1111');
  await msg(p.bob.page, '4111').waitFor();
  // The customer recalls from the message's actions.
  await msg(p.cust.page, '4111').hover();
  await msg(p.cust.page, '4111').locator('[data-act=recall]').click();
  await p.cust.page.locator('#chat .msg.is-recalled', { hasText: 'You recalled a message' }).waitFor({ timeout: 5000 });
  await p.bob.page.locator('#chat .msg.is-recalled', { hasText: 'This message was recalled' }).waitFor({ timeout: 5000 });
  for (const pg of [p.cust.page, p.bob.page]) assert.doesNotMatch(await pg.textContent('#chat .messages'), /4111/, 'the number is gone live');
  // And an agent's "Oops".
  await send(p.bob.page, 'Oops');
  await msg(p.cust.page, 'Oops').waitFor();
  await msg(p.bob.page, 'Oops').hover();
  await msg(p.bob.page, 'Oops').locator('[data-act=recall]').click();
  for (const pg of [p.cust.page, p.bob.page])
    await until(async () => !/Oops/.test(await pg.textContent('#chat .messages')), 5000, 'Oops gone');
  // The conversation list's preview too.
  assert.doesNotMatch(await p.bob.page.textContent('#convs'), /Oops|4111/);
  await p.close();
});

test('item 2: a blocked message says why, in the user\'s language, and offers Delete, not a Retry that cannot succeed', async () => {
  for (const [lang, why] of [
    ['en', /Not sent: Blocked: it contains words that are not allowed/],
    ['zh-CN', /发送失败：已拦截：含有不允许发送的内容/],
  ]) {
    const cust = await customer(browser, srv, `bea-${lang}`, { lang, extra: '&agent=bob' });
    await send(cust.page, 'you badword');
    const m = msg(cust.page, 'you badword');
    await m.locator('[data-status=failed]').waitFor({ timeout: 5000 });
    assert.match(await m.locator('.failure').textContent(), why);
    assert.equal(await m.locator('[data-act=retry]').count(), 0, 'no Retry');
    await m.locator('[data-act=discard]').click();
    await until(async () => (await m.count()) === 0, 5000, 'deleted');
    assert.equal(await cust.page.evaluate(() => window.__sb.client.core.stats().failedNow), 0);
    await cust.context.close();
  }
});

test('item 2: masked words show masked in the sender\'s own bubble at once', async () => {
  const p = await pair('mona');
  await send(p.cust.page, 'darn it');
  await msg(p.bob.page, '**** it').waitFor({ timeout: 5000 });
  await msg(p.cust.page, '**** it').waitFor({ timeout: 3000 });
  await p.close();
});

test('item 6: after a transfer the transferring agent\'s pane is read-only, saying where the conversation went', async () => {
  const cust = await customer(browser, srv, 'tess');
  const bob = await agent(browser, srv, 'bob', { extra: '&d=tess' });
  let ann = null;
  try {
    const id = await convId(cust);
    await handOff(cust, 'bob');
    // ann comes after the handoff (she would be the one waiting longest).
    ann = await agent(browser, srv, 'ann');
    await openOnAgent(bob, id);
    assert.equal(await bob.page.isVisible('#chat textarea'), true);
    // The picker: another agent by id, since bob has not met ann.
    await bob.page.click('#transferbtn');
    await bob.page.selectOption('#transferto', 'other');
    await bob.page.fill('#transferother', 'ann');
    // A note for ann: hers to read, never the customer's.
    await bob.page.fill('#transfernote', 'VIP, refund approved');
    await bob.page.click('#transferdlg button[type=submit]');
    await until(async () => (await cust.page.evaluate(() => window.__sb.conv().info.agent)) === 'ann', 10000, 'with ann');
    await bob.page.waitForSelector('#chat .notice >> text=/Now with ann/', { timeout: 5000 });
    assert.equal(await bob.page.isVisible('#chat textarea'), false, 'no composer');
    assert.equal(await bob.page.isDisabled('#transferbtn'), true);
    assert.equal(await bob.page.isDisabled('#closebtn'), true);
    assert.match(await bob.page.textContent('#convhead .st'), /Assigned to ann/);
    // ann writes there, with bob's note in front of her.
    await openOnAgent(ann, id);
    await ann.page.waitForSelector('#info >> text=/bob: VIP, refund approved/', { timeout: 5000 });
    assert.doesNotMatch(await bob.page.textContent('#info'), /VIP/, 'not for the one who handed it on');
    await send(ann.page, 'Hi, Ann here.');
    await until(async () => (await texts(cust.page)).includes('Hi, Ann here.'), 5000, 'ann reaches the customer');
    assert.doesNotMatch(await cust.page.textContent('body'), /VIP/);
    assert.equal(await cust.page.evaluate(() => window.__sb.conv().info.transfer_note || ''), '');
    // ann's picker: the desk's whole team (AGENT_LIST) with each one's
    // status and load, and its groups; a note field.
    await ann.page.click('#transferbtn');
    await ann.page.waitForSelector('#transferdlg[open] #transferto option[value="group:billing"]', { state: 'attached', timeout: 5000 });
    const opts = await ann.page.$$eval('#transferto option', (os) => os.map((o) => `${o.value}=${o.textContent}`));
    assert.ok(opts.includes('group:general=Group: general') && opts.includes('group:billing=Group: billing'), `groups in the picker: ${opts}`);
    assert.ok(opts.some((o) => /^agent:bob=bob \(Available, \d\/3\)$/.test(o)), `bob in the picker: ${opts}`);
    assert.ok(opts.some((o) => /^agent:cai=cai \(Offline, 0\/2\)$/.test(o)), `cai in the picker: ${opts}`);
    assert.equal(await ann.page.isVisible('#transfernote'), true);
    // bob steps away: the picker says so while it is open.
    await bob.page.selectOption('#status', 'AGENT_AWAY');
    await until(async () => /Away/.test(await ann.page.textContent('#transferto option[value="agent:bob"]')), 5000, 'bob away in the picker');
    await ann.page.click('#transferdlg .cancel');
    await bob.page.selectOption('#status', 'AGENT_ONLINE');
    assert.deepEqual(bob.errors.concat(cust.errors, ann.errors), []);
  } finally {
    await Promise.all([ann, cust, bob].filter(Boolean).map((x) => x.context.close()));
  }
});

test('item 9: a tag on one message is typed in a bar (no prompt) and its chip shows at once', async () => {
  const p = await pair('tina');
  p.bob.page.on('dialog', (d) => {
    d.dismiss();
    assert.fail(`a ${d.type()} dialog`);
  });
  await send(p.cust.page, 'I want a refund');
  await msg(p.bob.page, 'I want a refund').hover();
  await msg(p.bob.page, 'I want a refund').locator('[data-act=tagmsg]').click();
  await p.bob.page.waitForSelector('.tagbar input:focus');
  await p.bob.page.keyboard.type('refund');
  await p.bob.page.keyboard.press('Enter');
  await msg(p.bob.page, 'I want a refund').locator('.chip', { hasText: 'refund' }).waitFor({ timeout: 5000 });
  assert.equal(await p.bob.page.isVisible('.tagbar'), false, 'the bar closes');
  await p.close();
});

test('item 9 on other devices: a tag shows on the agent\'s other page at once and after a reload, never on the customer\'s', async () => {
  const p = await pair('tilda');
  const bob2 = await agent(browser, srv, 'bob', { extra: '&d=tilda2' });
  try {
    await send(p.cust.page, 'please refund me');
    await openOnAgent(bob2, p.id);
    await msg(bob2.page, 'please refund me').waitFor();
    await msg(p.bob.page, 'please refund me').hover();
    await msg(p.bob.page, 'please refund me').locator('[data-act=tagmsg]').click();
    await p.bob.page.waitForSelector('.tagbar input:focus');
    await p.bob.page.keyboard.type('refund');
    await p.bob.page.keyboard.press('Enter');
    // The other page of bob: the chip, live, and no line in the chat.
    await msg(bob2.page, 'please refund me').locator('.chip', { hasText: 'refund' }).waitFor({ timeout: 5000 });
    assert.doesNotMatch(await bob2.page.textContent('#chat .messages'), /changed the tags/);
    // The conversation's own tag too.
    await p.bob.page.fill('#addtag', 'vip');
    await p.bob.page.press('#addtag', 'Enter');
    await bob2.page.waitForSelector('#convhead .convtags .chip >> text=vip', { timeout: 5000 });
    await bob2.page.reload();
    await bob2.page.waitForFunction(() => document.body.dataset.ready === '1');
    await msg(bob2.page, 'please refund me').locator('.chip', { hasText: 'refund' }).waitFor({ timeout: 5000 });
    // The customer: neither the tags nor that there were any.
    await new Promise((r) => setTimeout(r, 300));
    assert.doesNotMatch(await p.cust.page.textContent('#chat .messages'), /vip|changed the tags/i);
    assert.equal(await p.cust.page.locator('#chat .chip').count(), 0);
    assert.equal(await msg(p.cust.page, 'please refund me').locator('.chip').count(), 0);
    assert.equal(await p.cust.page.evaluate(() => window.__sb.conv().list.items.some((e) => (e.msg.tags || []).length)), false);
    assert.deepEqual(bob2.errors, []);
  } finally {
    await bob2.context.close();
    await p.close();
  }
});

test('item 10: the typing notice goes away about 6 s after the last keystroke', async () => {
  const p = await pair('tom');
  await p.cust.page.click('#chat textarea');
  await p.cust.page.keyboard.type('I am wri', { delay: 30 });
  await p.bob.page.waitForSelector('#chat .typing >> text=/tom is typing/', { timeout: 5000 });
  const t0 = Date.now();
  await until(async () => (await p.bob.page.textContent('#chat .typing')) === '', 9000, 'the notice ends');
  const took = Date.now() - t0;
  assert.ok(took < 7500, `ended ${took} ms after the last keystroke`);
  // Emptying the composer ends it at once.
  await p.cust.page.keyboard.type('x');
  await p.bob.page.waitForSelector('#chat .typing >> text=/typing/');
  await p.cust.page.fill('#chat textarea', '');
  await p.cust.page.dispatchEvent('#chat textarea', 'input');
  await until(async () => (await p.bob.page.textContent('#chat .typing')) === '', 2000, 'ended by the empty composer');
  await p.close();
});

test('item 12: the bot\'s quick replies are not buttons on the workbench', async () => {
  const cust = await customer(browser, srv, 'quinn');
  const bob = await agent(browser, srv, 'bob', { extra: '&d=quinn' });
  try {
    const id = await convId(cust);
    await handOff(cust, 'bob');
    await openOnAgent(bob, id);
    await bob.page.waitForSelector('#chat .quick .qr >> text=Refunds');
    assert.equal(await bob.page.locator('#chat .quick button').count(), 0);
    const before = (await texts(cust.page)).length;
    await bob.page.click('#chat .quick .qr >> text=Refunds');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await texts(cust.page)).length, before, 'nothing sent');
    // The customer's are buttons.
    assert.ok((await cust.page.locator('#chat .quick button').count()) > 0);
  } finally {
    await cust.context.close();
    await bob.context.close();
  }
});

test('item 3: "Read" stays "Read" after reloading either page', async () => {
  const p = await pair('rhea');
  try {
    await send(p.cust.page, 'read me');
    await msg(p.cust.page, 'read me').locator('[data-status=read]').waitFor({ timeout: 5000 });
    await send(p.bob.page, 'and me');
    await msg(p.bob.page, 'and me').locator('[data-status=read]').waitFor({ timeout: 5000 });
    for (const pg of [p.cust.page, p.bob.page]) {
      await pg.reload();
      await pg.waitForFunction(() => document.body.dataset.ready === '1');
    }
    await msg(p.bob.page, 'and me').locator('[data-status=read]').waitFor({ timeout: 3000 });
    await msg(p.cust.page, 'read me').locator('[data-status=read]').waitFor({ timeout: 3000 });
  } finally {
    await p.close();
  }
});
