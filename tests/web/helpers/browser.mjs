// Debian's Chromium driven by playwright-core (no browser download):
// headless, sandbox off (root in CI), no background network.
import { existsSync } from 'node:fs';
import { playwright } from './deps.mjs';

export const CHROMIUM = process.env.SB_CHROMIUM || '/usr/bin/chromium';

export async function launch({ args = [] } = {}) {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  const browser = await playwright().chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // --user-data-dir: playwright gives every launch a fresh temporary
      // profile of its own (and refuses the flag here).
      ...args,
    ],
  });
  return browser;
}

/** A page of its own context (its own storage: one user, one device). */
export async function openPage(browser, url, { width = 1280, height = 800 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.ready === '1' || document.body.dataset.error, null, { timeout: 15000 });
  const err = await page.evaluate(() => document.body.dataset.error);
  if (err) throw new Error(`page failed: ${err}`);
  return { context, page, errors };
}
