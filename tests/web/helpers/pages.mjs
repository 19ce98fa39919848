// What the page tests share: opening the customer widget and the agent
// workbench against a server, typing and sending, reading what a page's
// conversation holds, a service conversation handed to an agent, and
// axe-core's report (from npm, injected into the page).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { repo, until } from './server.mjs';
import { openPage } from './browser.mjs';

export const WEB = process.env.SB_WEB_DIST || join(repo, 'web', 'dist');

const require = createRequire(join(repo, 'web', 'package.json'));
let axeSource = null;

export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };

/** The customer page of user (a new browser context: its own storage). */
export function customer(browser, srv, user, { lang = 'en', size = PHONE, extra = '' } = {}) {
  return openPage(browser, `${srv.url}/?user=${user}&lang=${lang}${extra}`, size);
}

/** The workbench of agent user. */
export function agent(browser, srv, user, { lang = 'en', size = DESKTOP, extra = '' } = {}) {
  return openPage(browser, `${srv.url}/agent?user=${user}&lang=${lang}${extra}`, size);
}

export async function send(page, text) {
  await page.fill('#chat textarea', text);
  await page.press('#chat textarea', 'Enter');
}

/** Texts of the messages the page's open conversation holds, in order
 * (the model: the DOM holds only the window). */
export const texts = (page) =>
  page.evaluate(() => window.__sb.view.conv.list.items.filter((e) => e.msg.type !== 'MSG_EVENT' && e.msg.type !== 'MSG_SYSTEM').map((e) => e.msg.body));

/** The customer page's conversation id, once it has opened one. */
export async function convId(cust) {
  await cust.page.waitForFunction(() => window.__sb.conv(), null, { timeout: 10000 });
  return cust.page.evaluate(() => window.__sb.conv().id);
}

/** The customer asks for a person; resolves when the conversation is
 * assigned to agentId. */
export async function handOff(cust, agentId) {
  await send(cust.page, 'hello');
  await cust.page.waitForSelector('.msg.theirs >> text=/What can I help you with/');
  await send(cust.page, 'Talk to a person');
  await until(async () => (await cust.page.evaluate(() => window.__sb.conv().info?.agent)) === agentId, 10000, `assigned to ${agentId}`);
}

/** Opens conversation id on an agent page (its list shows it). */
export async function openOnAgent(ag, id) {
  await ag.page.evaluate(() => window.__sb.loadPage(true));
  await ag.page.waitForSelector(`a.conv[data-id="${id}"]`);
  await ag.page.click(`a.conv[data-id="${id}"]`);
  await until(() => ag.page.evaluate((x) => window.__sb.selected()?.id === x, id), 5000, 'selected');
}

/** axe-core's violations on the page that are serious or critical. */
export async function axeSerious(page) {
  if (!axeSource) axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  if (!(await page.evaluate(() => !!window.axe))) await page.addScriptTag({ content: axeSource });
  const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return res.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

/** Waits two animation frames (a render and the measurements after). */
export const frames = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

/** Closes every open conversation assigned to the agent of page ag (a
 * test gives its agent's room back, passed or failed) and the customers'
 * of the other pages, then the contexts of all. */
export async function done(ag, ...others) {
  if (ag)
    await ag.page
      .evaluate(async () => {
        const c = window.__sb.client;
        if (document.querySelector('#status').value !== 'AGENT_ONLINE') await c.setAgentStatus('AGENT_ONLINE');
        const r = await c.convList({ mine: true, limit: 50 });
        for (const x of r.convs) if (x.state !== 'STATE_CLOSED') await c.close(x.conv_id).catch(() => {});
      })
      .catch(() => {});
  // Customers close theirs too (a queued one would take an agent's room
  // in a later test).
  for (const c of others)
    await c.page
      .evaluate(() => {
        const conv = window.__sb && window.__sb.conv && window.__sb.conv();
        return conv && window.__sb.client.close(conv.id);
      })
      .catch(() => {});
  await Promise.all([ag, ...others].filter(Boolean).map((p) => p.context.close()));
}
