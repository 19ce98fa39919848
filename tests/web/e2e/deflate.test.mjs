// permessage-deflate in Chromium (issue 12): the browser offers it by
// itself, the server takes it (no context takeover either way), and long
// messages go compressed both ways between a customer's page and an
// agent's, shown whole on both; the server counts them (/metrics). With
// --deflate no, the same pages chat without it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, until } from '../helpers/server.mjs';
import { launch } from '../helpers/browser.mjs';
import { WEB, customer, agent, send, texts, convId, openOnAgent } from '../helpers/pages.mjs';

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
});

const extensions = (page) => page.evaluate(() => (window.__sb.client.ws ? window.__sb.client.ws.extensions : null));

// Words of a chat, long enough to pass the 512-byte threshold.
const long = (who, n) =>
  Array.from({ length: n }, (_, i) => `${who} line ${i}: my order 12345 has not arrived, please check the refund status`).join(' ');

async function chat(srv, name) {
  // bob first: a conversation names only users the server knows.
  const bob = await agent(browser, srv, 'bob', { extra: `&d=${name}` });
  const cust = await customer(browser, srv, name, { extra: '&agent=bob' });
  const id = await convId(cust);
  await send(cust.page, `hi from ${name}`);
  await openOnAgent(bob, id);
  const a = long(name, 12);
  const b = long('bob', 15);
  await send(cust.page, a);
  await until(async () => (await texts(bob.page)).includes(a), 10000, 'bob has the long message');
  await send(bob.page, b);
  await until(async () => (await texts(cust.page)).includes(b), 10000, 'the customer has the answer');
  const ext = [await extensions(cust.page), await extensions(bob.page)];
  assert.deepEqual(cust.errors.concat(bob.errors), []);
  await cust.context.close();
  await bob.context.close();
  return ext;
}

async function counter(srv, dir) {
  const text = await (await fetch(`${srv.adminUrl}/metrics`)).text();
  const m = new RegExp(`^switchboard_ws_compressed_messages_total\\{direction="${dir}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : -1;
}

test('Chromium negotiates permessage-deflate and long messages go compressed both ways', async () => {
  const srv = await startServer({ demo: true, web: WEB, args: ['--admin-listen', '127.0.0.1:0'] });
  try {
    const ext = await chat(srv, 'zoe');
    for (const e of ext) {
      assert.match(e, /^permessage-deflate/);
      assert.match(e, /server_no_context_takeover/);
      assert.match(e, /client_no_context_takeover/);
    }
    assert.ok((await counter(srv, 'in')) > 0, 'the browser sent compressed messages');
    assert.ok((await counter(srv, 'out')) > 0, 'the server sent compressed messages');
  } finally {
    await srv.stop();
  }
});

test('with --deflate no the browser goes without, and the chat is the same', async () => {
  const srv = await startServer({ demo: true, web: WEB, args: ['--deflate', 'no', '--admin-listen', '127.0.0.1:0'] });
  try {
    const ext = await chat(srv, 'yan');
    assert.deepEqual(ext, ['', '']);
    assert.equal(await counter(srv, 'in'), 0);
    assert.equal(await counter(srv, 'out'), 0);
  } finally {
    await srv.stop();
  }
});
