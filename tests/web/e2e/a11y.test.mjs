// Issue 13 item 14: both pages work from the keyboard (a conversation
// opens with Enter, a message's Reply, Tag and Recall are reached without
// a mouse), and axe-core finds no serious or critical violation on either
// page, in en and zh-CN, at desktop and phone sizes, with a conversation
// open (and with the workbench's dialogs and pickers open).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, until } from '../helpers/server.mjs';
import { launch } from '../helpers/browser.mjs';
import { WEB, PHONE, DESKTOP, customer, agent, send, texts, convId, handOff, openOnAgent, axeSerious, frames, done } from '../helpers/pages.mjs';

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

const focused = (page) => page.evaluate(() => {
  const el = document.activeElement;
  return { tag: el.tagName, cls: el.className, act: el.dataset.act || '', text: (el.textContent || '').slice(0, 80) };
});

// Tabs forward until the focus is on the action act (a message's own
// buttons come after its quote's).
async function tabTo(page, act) {
  for (let i = 0; i < 5; i++) {
    await page.keyboard.press('Tab');
    if ((await focused(page)).act === act) return;
  }
  assert.fail(`no ${act} reached with Tab: ${JSON.stringify(await focused(page))} ${await page.evaluate(() => document.activeElement.closest('.vl-item')?.outerHTML)}`);
}

// Moves the focus up the message list until a message holding text has it.
async function arrowTo(page, text, key = 'ArrowUp') {
  for (let i = 0; i < 30; i++) {
    const f = await focused(page);
    if (f.cls.includes('vl-item') && f.text.includes(text)) return;
    await page.keyboard.press(key);
  }
  assert.fail(`no message "${text}" reached with ${key}`);
}

test('item 14: Enter opens a focused conversation; Reply, Tag and Recall are reached from the keyboard', async () => {
  const bob = await agent(browser, srv, 'bob');
  const cust = await customer(browser, srv, 'kira');
  try {
    const id = await convId(cust);
    await handOff(cust, 'bob');
    await send(cust.page, 'please call me back');
    await bob.page.evaluate(() => window.__sb.loadPage(true));
    await bob.page.waitForSelector(`a.conv[data-id="${id}"]`);
    await bob.page.focus(`a.conv[data-id="${id}"]`);
    await bob.page.keyboard.press('Enter');
    await until(() => bob.page.evaluate((x) => window.__sb.selected()?.id === x, id), 5000, 'Enter opens it');
    await bob.page.waitForSelector('#chat .msg >> text=please call me back');
    // To the messages, up to the customer's, Tab to its actions.
    await bob.page.keyboard.press('Alt+m');
    assert.equal((await focused(bob.page)).cls.includes('messages'), true);
    await arrowTo(bob.page, 'please call me back');
    await bob.page.keyboard.press('Tab');
    assert.equal((await focused(bob.page)).act, 'quote');
    await bob.page.keyboard.press('Enter');
    await bob.page.waitForSelector('#chat .quotebar:not([hidden])');
    await bob.page.keyboard.type('Sure, what number?');
    await bob.page.keyboard.press('Enter');
    await until(async () => (await texts(cust.page)).includes('Sure, what number?'), 5000, 'the reply');
    // Tag, then Recall, of the agent's own message (once stored).
    await bob.page.locator('#chat .msg.mine', { hasText: 'Sure, what number?' }).locator('[data-status=read], [data-status=delivered], [data-status=sent]').waitFor();
    await bob.page.keyboard.press('Alt+m');
    await arrowTo(bob.page, 'Sure, what number?');
    await tabTo(bob.page, 'tagmsg');
    await bob.page.keyboard.press('Enter');
    await bob.page.keyboard.type('callback');
    await bob.page.keyboard.press('Enter');
    await bob.page.locator('#chat .msg', { hasText: 'Sure, what number?' }).locator('.chip', { hasText: 'callback' }).waitFor();
    await bob.page.keyboard.press('Alt+m');
    await arrowTo(bob.page, 'Sure, what number?');
    await tabTo(bob.page, 'recall');
    await bob.page.keyboard.press('Enter');
    await until(async () => !(await texts(cust.page)).includes('Sure, what number?'), 5000, 'recalled');
    // The customer replies from the keyboard too.
    await cust.page.focus('#chat .messages');
    await arrowTo(cust.page, 'please call me back');
    await tabTo(cust.page, 'quote');
    await cust.page.keyboard.press('Enter');
    await cust.page.waitForSelector('#chat .quotebar:not([hidden])');
    assert.equal((await focused(cust.page)).tag, 'TEXTAREA');
    assert.deepEqual(bob.errors.concat(cust.errors), []);
  } finally {
    await done(bob, cust);
  }
});

test('item 14: axe-core finds no serious or critical violation on either page, en and zh-CN, desktop and phone', async () => {
  const found = [];
  for (const lang of ['en', 'zh-CN']) {
    const bob = await agent(browser, srv, 'bob', { lang });
    const cust = await customer(browser, srv, `axe-${lang}`, { lang });
    try {
      const id = await convId(cust);
      await send(cust.page, lang === 'en' ? 'Talk to a person' : '转人工');
      await until(async () => (await cust.page.evaluate(() => window.__sb.conv().info?.agent)) === 'bob', 10000, 'assigned');
      await send(cust.page, 'see https://example.com/orders/1');
      await openOnAgent(bob, id);
      await send(bob.page, 'Let me check.');
      await cust.page.waitForSelector('#chat .msg >> text=Let me check.');
      for (const [name, p] of [['agent', bob.page], ['customer', cust.page]]) {
        for (const size of [DESKTOP, PHONE]) {
          await p.setViewportSize(size);
          await frames(p);
          // A message with its actions shown, as under the pointer.
          await p.hover('#chat .msg.theirs >> nth=-1').catch(() => {});
          for (const v of await axeSerious(p)) found.push(`${name} ${lang} ${size.width}: ${v}`);
        }
      }
      // The workbench's dialogs and pickers.
      await bob.page.setViewportSize(DESKTOP);
      await bob.page.click('#transferbtn');
      for (const v of await axeSerious(bob.page)) found.push(`agent ${lang} transfer dialog: ${v}`);
      await bob.page.keyboard.press('Escape');
      await bob.page.click('.emojibtn');
      for (const v of await axeSerious(bob.page)) found.push(`agent ${lang} emoji: ${v}`);
      await bob.page.keyboard.press('Escape');
      await bob.page.fill('#chat textarea', '/');
      await bob.page.dispatchEvent('#chat textarea', 'input');
      for (const v of await axeSerious(bob.page)) found.push(`agent ${lang} canned: ${v}`);
      await bob.page.click('#helpbtn');
      for (const v of await axeSerious(bob.page)) found.push(`agent ${lang} shortcuts: ${v}`);
      await bob.page.keyboard.press('Escape');
      await cust.page.click('.prefs summary');
      for (const v of await axeSerious(cust.page)) found.push(`customer ${lang} notifications menu: ${v}`);
    } finally {
      await done(bob, cust);
    }
  }
  assert.deepEqual(found, []);
});
