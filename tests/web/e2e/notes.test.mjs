// Issue 15, the agent side in the workbench: a private note written with
// the composer's Note switch shows in the conversation's notes (yellow,
// labelled "Note"), reaches the teammate it mentions (a notice, and the
// note in that conversation's pane) and never the customer's page; the
// customer's contact, edited in the side panel, is stored and shows
// again after a reload, with the customer's past conversations; the
// customer page signs in with the site's signed identity (the widget's
// data-user-id and data-user-hash), which stores a verified contact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from '../helpers/deps.mjs';
import { Client } from '../../../web/src/sdk/index.js';
import { codec } from '../../../web/src/sdk/schema.js';
import { startServer, until, token, repo } from '../helpers/server.mjs';
import { launch, openPage } from '../helpers/browser.mjs';
import { WEB, customer, agent, send, texts, convId, handOff, openOnAgent, done } from '../helpers/pages.mjs';

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

async function scene(fn) {
  const pages = [];
  try {
    await fn((p) => (pages.push(p), p));
  } finally {
    const ag = pages.find((p) => p.page.url().includes('user=bob'));
    await done(ag, ...pages.filter((p) => p !== ag));
  }
}

const NOTE = 'VIP customer: refund approved. @ann please check the invoice.';

test('a note from one agent is seen by the teammate it mentions and never by the customer page', () =>
  scene(async (keep) => {
    const ann = keep(await agent(browser, srv, 'ann', { extra: '&d=notes' }));
    await ann.page.selectOption('#status', 'AGENT_AWAY');
    await until(() => ann.page.evaluate(() => document.querySelector('#status').value === 'AGENT_AWAY'), 5000, 'ann away');
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=notes' }));
    const cust = keep(await customer(browser, srv, 'nina'));
    const id = await convId(cust);
    await handOff(cust, 'bob');
    await openOnAgent(bob, id);
    await send(bob.page, 'Hello Nina, this is Bob.');
    await until(async () => (await texts(cust.page)).includes('Hello Nina, this is Bob.'), 5000, 'the reply reaches nina');

    // The Note switch: the composer turns yellow and writes a note.
    await bob.page.check('#notemode');
    assert.ok(await bob.page.evaluate(() => document.querySelector('#chat .composer').classList.contains('notemode')));
    await send(bob.page, NOTE);
    const note = bob.page.locator('#notes .note', { hasText: 'refund approved' });
    await note.waitFor({ timeout: 5000 });
    assert.equal((await note.locator('.notelabel').textContent()).trim(), 'Note');
    const bg = await note.evaluate((el) => getComputedStyle(el).backgroundColor);
    assert.equal(bg, 'rgb(254, 240, 138)', 'a yellow note');
    assert.ok(!(await texts(bob.page)).some((x) => x.includes('refund approved')), 'not among the messages to the customer');
    // The switch stays on until turned off; a message after it goes to the customer.
    await bob.page.uncheck('#notemode');
    await send(bob.page, 'Your refund is on its way.');
    await until(async () => (await texts(cust.page)).includes('Your refund is on its way.'), 5000, 'the next reply reaches nina');

    // ann is told, and reads the note in that conversation's pane.
    await ann.page.waitForSelector('.toast >> text=/bob mentioned you in a note/', { timeout: 5000 });
    const link = ann.page.locator('#mentions a', { hasText: 'refund approved' });
    await link.waitFor({ state: 'attached', timeout: 5000 });
    await ann.page.evaluate((x) => window.__sb.select(x), id);
    await ann.page.locator('#notes .note', { hasText: 'refund approved' }).waitFor({ timeout: 5000 });
    assert.match(await ann.page.textContent('#notes .note'), /bob/);

    // The customer's page: nothing of it, in the DOM or in its store.
    assert.ok(!(await texts(cust.page)).some((x) => x.includes('refund approved')));
    assert.ok(!(await cust.page.evaluate(() => document.body.innerText.includes('refund approved'))));
    assert.equal(await cust.page.evaluate(() => document.querySelector('#notes')), null, 'no notes pane');
    const custConvs = await cust.page.evaluate(() => [...window.__sb.store.convs.values()].map((c) => ({ id: c.id, notes: c.notesOf })));
    assert.deepEqual(
      custConvs.filter((c) => c.notes),
      [],
    );
    assert.ok(custConvs.every((c) => c.id === id));
    await bob.page.click('#closebtn');
  }));

test('the customer contact: edited in the side panel, stored, shown again after a reload with the past conversations', () =>
  scene(async (keep) => {
    const bob = keep(await agent(browser, srv, 'bob', { extra: '&d=contact' }));
    await bob.page.selectOption('#status', 'AGENT_ONLINE');
    const cust = keep(await customer(browser, srv, 'nina'));
    const id = await convId(cust);
    await handOff(cust, 'bob');
    await openOnAgent(bob, id);
    await bob.page.waitForSelector('#contact:not([hidden])', { timeout: 5000 });
    const past = bob.page.locator('#contact .pastconvs a');
    await past.first().waitFor({ state: 'attached', timeout: 5000 });
    assert.ok((await past.count()) >= 1, 'the conversation of the first test is a past one');

    await bob.page.fill('#contact input[name=name]', 'Nina Nguyen');
    await bob.page.fill('#contact input[name=email]', 'nina@example.com');
    await bob.page.fill('#contact textarea[name=attrs]', 'plan: gold\ncity: Hanoi');
    await bob.page.click('#contact button[type=submit]');
    await bob.page.waitForSelector('.toast >> text=Contact saved', { timeout: 5000 });
    // A line that is not "key: value" is refused in the form, nothing sent.
    await bob.page.fill('#contact textarea[name=attrs]', 'plan gold');
    await bob.page.click('#contact button[type=submit]');
    await bob.page.waitForSelector('#contact .err >> text=/Not "key: value"/', { timeout: 5000 });
    // A bad email: the server's refusal, said in the form.
    await bob.page.fill('#contact textarea[name=attrs]', 'plan: gold\ncity: Hanoi');
    await bob.page.fill('#contact input[name=email]', 'not an email');
    await bob.page.click('#contact button[type=submit]');
    await until(async () => (await bob.page.textContent('#contact .err')).trim() !== '', 5000, 'the refusal');

    await bob.page.reload();
    await bob.page.waitForFunction(() => document.body.dataset.ready === '1');
    await bob.page.waitForSelector('#contact:not([hidden])', { timeout: 5000 });
    await until(async () => (await bob.page.inputValue('#contact input[name=name]')) === 'Nina Nguyen', 5000, 'the stored name');
    assert.equal(await bob.page.inputValue('#contact input[name=email]'), 'nina@example.com');
    assert.equal(await bob.page.inputValue('#contact textarea[name=attrs]'), 'city: Hanoi\nplan: gold');
    assert.match(await bob.page.textContent('#contact .updated'), /Changed by bob/);
    await bob.page.click('#closebtn');
  }));

test('the signed identity: the page signs in as the site says, the contact stored verified; a wrong signature is refused', async () => {
  const SECRET_ID = 'site-identity-secret-0123456789';
  const dir = mkdtempSync(join(tmpdir(), 'sbdesk-'));
  const desk = JSON.parse(readFileSync(join(repo, 'conf', 'desk.json'), 'utf8'));
  desk.desks[0].identity_secret = SECRET_ID;
  writeFileSync(join(dir, 'desk.json'), JSON.stringify(desk));
  const srv2 = await startServer({ web: WEB, args: ['--desk', join(dir, 'desk.json')] });
  const pages = [];
  let admin = null;
  try {
    const hash = createHmac('sha256', SECRET_ID).update('vera-42').digest('hex');
    const frag = new URLSearchParams({ uid: 'vera-42', uhash: hash, name: 'Vera V.', email: 'vera@example.com', attrs: JSON.stringify({ plan: 'gold' }) });
    const ok = await openPage(browser, `${srv2.url}/?lang=en#${frag}`);
    pages.push(ok);
    await ok.page.waitForFunction(() => document.body.dataset.ready === '1' || document.body.dataset.error, null, { timeout: 10000 });
    assert.equal(await ok.page.evaluate(() => document.body.dataset.error || ''), '');
    assert.equal(await ok.page.evaluate(() => window.__sb.client.session.user_id), 'vera-42');
    admin = new Client({ url: srv2.wsUrl, token: token('root', 'admin'), deviceId: 'root-notes', codec, WebSocket, window: null, tickMs: 20 });
    admin.start();
    const r = await admin.contactGet({ userId: 'vera-42' });
    assert.equal(r.contact.name, 'Vera V.');
    assert.equal(r.contact.email, 'vera@example.com');
    assert.equal(r.contact.verified, true);
    assert.equal(r.contact.updated_by, 'site');
    assert.deepEqual(
      r.contact.attributes.map((a) => [a.key, a.value]),
      [['plan', 'gold']],
    );

    // Someone posing as another customer: the hash does not match.
    const bad = new URLSearchParams({ uid: 'vera-43', uhash: hash, name: 'Mallory' });
    const context = await browser.newContext();
    pages.push({ context });
    const no = await context.newPage();
    await no.goto(`${srv2.url}/?lang=en#${bad}`);
    await no.waitForFunction(() => document.body.dataset.error, null, { timeout: 10000 });
    assert.match(await no.evaluate(() => document.body.dataset.error), /signed identity was refused/);
    const other = await admin.contactGet({ userId: 'vera-43' }).catch((e) => e.code);
    assert.equal(other, 'ERR_NOT_FOUND', 'nothing stored for the refused one');
  } finally {
    if (admin) admin.stop();
    await Promise.all(pages.map((p) => p.context.close()));
    await srv2.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
