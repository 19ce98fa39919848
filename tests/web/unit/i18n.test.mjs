// Every text the pages use is there in both languages: the keys named in
// the pages' code (t('key'), data-i18n attributes, and the keys built
// from a code: err.*, state.*, status.*) against web/src/pages/i18n.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEXTS } from '../../../web/src/pages/i18n.js';

const pages = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web', 'src', 'pages');

function usedKeys() {
  const keys = new Set();
  for (const f of readdirSync(pages)) {
    const src = readFileSync(join(pages, f), 'utf8');
    if (f.endsWith('.js')) for (const m of src.matchAll(/\bt\('([^']+)'/g)) keys.add(m[1]);
    if (f.endsWith('.html') && f !== 'embed.html') for (const m of src.matchAll(/data-i18n(?:-ph|-label)?="([^"]+)"/g)) keys.add(m[1]);
  }
  return keys;
}

test('every key the pages use is in en and zh-CN', () => {
  const keys = usedKeys();
  assert.ok(keys.size > 100, `${keys.size} keys found`);
  for (const lang of ['en', 'zh-CN']) {
    const missing = [...keys].filter((k) => !(k in TEXTS[lang]));
    assert.deepEqual(missing, [], `missing in ${lang}`);
  }
});

test('both languages have the same keys, the same placeholders, and the codes the pages turn into words', () => {
  assert.deepEqual(Object.keys(TEXTS['zh-CN']).sort(), Object.keys(TEXTS.en).sort());
  for (const [k, v] of Object.entries(TEXTS.en)) {
    const ph = (s) => (s.match(/\{\d\}/g) || []).sort().join();
    assert.equal(ph(TEXTS['zh-CN'][k]), ph(v), `placeholders of ${k}`);
  }
  const codes = ['ERR_BLOCKED', 'ERR_FORBIDDEN', 'ERR_STATE', 'ERR_TOO_LARGE', 'ERR_RATE_LIMITED', 'ERR_STORE', 'ENOTCONN', 'ETIMEDOUT', 'REPLACED'];
  for (const c of codes) assert.ok(TEXTS.en[`err.${c}`] && TEXTS['zh-CN'][`err.${c}`], c);
  for (const s of ['idle', 'connecting', 'hello_sent', 'ready', 'backoff', 'stopped']) assert.ok(TEXTS['zh-CN'][`state.${s}`], s);
  for (const s of ['sending', 'sent', 'delivered', 'read', 'failed']) assert.ok(TEXTS['zh-CN'][`status.${s}`], s);
});
