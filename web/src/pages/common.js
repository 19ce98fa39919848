// What both pages share: signing in (a ?token= in the URL or its #hash,
// or the demo server's /demo/token), the device id of this tab, the
// language, the SDK client with its outbox kept across reloads, the
// once-per-animation-frame scheduler, and small DOM helpers.
import { Client, ChatStore, IdbOutbox, codec } from '../sdk/index.js';
import { t, setLang, lang } from './i18n.js';

export const params = new URLSearchParams(location.search);
// A token may come in the hash (the embed snippet puts it there: a hash
// is not sent to servers or written to their logs).
const hashParams = new URLSearchParams(location.hash.slice(1));

// A send that waits this long without a connection is shown as failed
// ("No connection", with Retry) instead of "Sending" for ever.
export const OFFLINE_FAIL_MS = 15000;

/** h('div.cls', {attrs}, ...children): a tiny element builder. */
export function h(tag, attrs, ...kids) {
  const [name, ...cls] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (cls.length) el.className = cls.join(' ');
  if (attrs)
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : v);
    }
  for (const k of kids.flat()) if (k !== null && k !== undefined && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}

// Icons as SVG paths (24x24), drawn in the text colour: an emoji glyph
// depends on the fonts a system has.
const ICONS = {
  bell: 'M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2z',
  clip: 'M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6h-1.5z',
  smile: 'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 18a8 8 0 1 1 0-16 8 8 0 0 1 0 16zm-3.5-9a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3zm7 0a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3zM12 17.5c2.33 0 4.3-1.45 5.1-3.5H6.9c.8 2.05 2.77 3.5 5.1 3.5z',
};

/** An icon (aria-hidden: the button around it has the label). */
export function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'icon');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', ICONS[name]);
  p.setAttribute('fill', 'currentColor');
  svg.append(p);
  return svg;
}

/**
 * Batches work into one call per animation frame: schedule() any number
 * of times (per incoming message, per scroll event); fn runs once, before
 * the next paint. Never a timer.
 */
export function frameBatcher(fn) {
  let queued = false;
  return function schedule() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

// Each tab is one device (sessionStorage survives a reload, not a new
// tab): two tabs of one user are two devices, as the protocol wants.
export function deviceId(user) {
  const k = `sb.device.${user}`;
  let id = sessionStorage.getItem(k);
  if (!id) {
    id = `web-${user}-${Math.random().toString(36).slice(2, 10)}`;
    sessionStorage.setItem(k, id);
  }
  return id;
}

/** The customer id the site vouched for (the widget's signed identity,
 * in the URL's hash: never sent to a server but by identify()), or ''. */
export function signedUser() {
  return hashParams.get('uid') && hashParams.get('uhash') ? hashParams.get('uid') : '';
}

// The widget's signed identity (docs/web.md): the site's backend signed
// the user id with the desk's identity_secret; the server checks the
// signature, stores the contact the page gives as verified, and answers
// with a customer token for that id.
async function identify() {
  let attributes = {};
  try {
    attributes = JSON.parse(hashParams.get('attrs') || '{}');
  } catch (e) {
    attributes = {};
  }
  const body = { user_id: hashParams.get('uid'), user_hash: hashParams.get('uhash'), locale: lang(), attributes };
  if (params.get('desk')) body.desk = params.get('desk');
  if (hashParams.get('name')) body.name = hashParams.get('name');
  if (hashParams.get('email')) body.email = hashParams.get('email');
  const r = await fetch('/api/identify', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(t('err.identify'));
  return (await r.json()).token;
}

export async function getToken(user, role) {
  const given = hashParams.get('token') || params.get('token');
  if (given) return given;
  if (role === 'customer' && signedUser()) return identify();
  const r = await fetch(`/demo/token?user=${encodeURIComponent(user)}&role=${role}&locale=${lang()}`);
  if (!r.ok) throw new Error(t('err.token'));
  return (await r.json()).token;
}

export function wsUrl() {
  if (params.get('ws')) return params.get('ws');
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

/** Signs in and starts a client with a ChatStore on it; the sends this
 * user left unsent (a reload, a closed tab) go out again first. */
export async function connect(user, role) {
  const token = await getToken(user, role);
  const client = new Client({
    url: wsUrl(),
    token,
    deviceId: deviceId(user),
    codec,
    locale: lang(),
    encoding: params.get('enc') || 'auto',
    clientName: `switchboard-web/${role}`,
    initialWindow: 50,
    offlineFailMs: OFFLINE_FAIL_MS,
    outbox: typeof indexedDB !== 'undefined' ? new IdbOutbox(`sb-outbox-${user}`) : null,
  });
  const store = new ChatStore(client);
  await client.restoreOutbox();
  client.start();
  return { client, store };
}

export function initLang(select) {
  const l = params.get('lang') || localStorage.getItem('sb.lang') || (navigator.language.startsWith('zh') ? 'zh-CN' : 'en');
  setLang(l);
  document.documentElement.lang = l;
  if (select) {
    select.value = l;
    select.addEventListener('change', () => {
      localStorage.setItem('sb.lang', select.value);
      // The server renders events and the bot answers in the HELLO's
      // locale: start again in the new one.
      const u = new URL(location.href);
      u.searchParams.set('lang', select.value);
      location.replace(u.toString());
    });
  }
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-ph]')) el.placeholder = t(el.dataset.i18nPh);
  for (const el of document.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  for (const el of document.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
}

// Formatters made once per language: Date.prototype.toLocaleTimeString
// with options builds a new ICU formatter on every call (about 0.4 ms,
// and garbage the GC finalises later in one long pause), which a burst of
// messages turned into tens of ms per frame; format() on a kept
// Intl.DateTimeFormat takes about a microsecond.
const formatters = new Map();
function formatter(kind) {
  const k = `${lang()} ${kind}`;
  let f = formatters.get(k);
  if (!f) {
    const opts = {
      time: { hour: '2-digit', minute: '2-digit' },
      day: { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' },
      datetime: { year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' },
    };
    f = new Intl.DateTimeFormat(lang(), opts[kind]);
    formatters.set(k, f);
  }
  return f;
}

/** A message's time (hours and minutes) in the page's language. */
export function fmtTime(ms) {
  if (!ms) return '';
  return formatter('time').format(ms);
}

/** A day for a date separator: today, yesterday, or the date. */
export function fmtDay(ms) {
  const d = new Date(ms);
  const today = new Date();
  const same = (a, b) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  if (same(d, today)) return t('day.today');
  const y = new Date(today);
  y.setDate(y.getDate() - 1);
  if (same(d, y)) return t('day.yesterday');
  return formatter('day').format(ms);
}

/** A date and time in the page's language. */
export function fmtDateTime(ms) {
  if (!ms) return '';
  return formatter('datetime').format(ms);
}

/** The connection state as a short label and a class; err says why a
 * stopped client stopped (opened elsewhere, sign-in refused). */
export function stateLabel(s, err) {
  const text = s === 'stopped' && err ? `${t('state.stopped')}: ${errText(err)}` : t(`state.${s}`);
  return { text, cls: s === 'ready' ? 'ok' : s === 'stopped' ? 'bad' : 'wait' };
}

/** Shows a short notice (errors of actions). */
export function toast(text) {
  let box = document.querySelector('.toasts');
  if (!box) {
    box = h('div.toasts');
    document.body.append(box);
  }
  const el = h('div.toast', { role: 'status', text });
  box.append(el);
  setTimeout(() => el.remove(), 4000);
}

/** An error in words, in the page's language: the code's text, or a
 * general one naming the code (never the bare code). */
export function errText(e) {
  const code = e && e.code ? e.code : String(e);
  const known = t(`err.${code}`);
  return known === `err.${code}` ? t('err.other', code) : known;
}

/** Writes el's text only when it differs (no needless style work). */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
