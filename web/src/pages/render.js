// One message as an element: text (links made clickable, search terms
// marked), robot answers with quick-reply buttons, cards, images (their
// size known before they load: no jump in the list; their bytes by a link
// signed for this user, ctx.media), files (downloads by the same links),
// events, quotes, recalled messages, a date separator above the
// first message of a day, and for own messages the send status, with
// the reason of a failure and the action that can help (retry, or delete
// when sending it again cannot succeed). Actions are data attributes; the
// page handles clicks by delegation. Text goes in as text nodes only.
import { h, fmtTime, fmtDay, errText, icon } from './common.js';
import { t } from './i18n.js';
import { isQuiet } from '../sdk/chat.js';

const TICKS = { sending: '🕓', sent: '✓', delivered: '✓✓', read: '✓✓', failed: '⚠' };

// What an item shows of its neighbours (VirtualList flags).
export const F_DAY = 1; // the first message of its day: a separator above
export const F_CONT = 2; // same sender as the one before, within GROUP_MS

const GROUP_MS = 5 * 60 * 1000;

const isEvent = (m) => m.type === 'MSG_EVENT' || m.type === 'MSG_SYSTEM';

// The local day of a time, as a number (days since the epoch).
function dayOf(ms) {
  return Math.floor((ms - new Date(ms).getTimezoneOffset() * 60000) / 86400000);
}

/** The flags of item i of a MessageList (see F_DAY, F_CONT). */
export function itemFlags(list, i) {
  const e = list.at(i);
  const p = i > 0 ? list.at(i - 1) : null;
  const ts = e.msg.server_ts || 0;
  if (!p || dayOf(p.msg.server_ts || 0) !== dayOf(ts)) return F_DAY;
  if (p.msg.sender === e.msg.sender && !isEvent(p.msg) && !isEvent(e.msg) && ts - (p.msg.server_ts || 0) < GROUP_MS) return F_CONT;
  return 0;
}

// Links: http(s) URLs and www. names; the punctuation that usually ends a
// sentence is left outside the link.
const URL_RE = /\b(?:https?:\/\/|www\.)[^\s<>"'`]+/gi;
const TRAIL_RE = /[.,;:!?)\]}'"，。；：！？）】」]+$/;

function safeHref(s) {
  try {
    const u = new URL(/^www\./i.test(s) ? `https://${s}` : s);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch (e) {
    return null;
  }
}

// Text with the search terms (lowercase) in <mark>.
function marked(s, terms) {
  if (!terms || !terms.length || !s) return [s];
  const low = s.toLowerCase();
  const out = [];
  let at = 0;
  for (;;) {
    let best = -1;
    let len = 0;
    for (const q of terms) {
      const i = low.indexOf(q, at);
      if (i >= 0 && (best < 0 || i < best)) {
        best = i;
        len = q.length;
      }
    }
    if (best < 0) break;
    if (best > at) out.push(s.slice(at, best));
    out.push(h('mark', { text: s.slice(best, best + len) }));
    at = best + len;
  }
  if (at < s.length) out.push(s.slice(at));
  return out;
}

/** A message's text as nodes: links clickable (http and https only,
 * opening apart from the page, without a referrer) and terms marked. */
export function richText(s, terms) {
  const out = [];
  let at = 0;
  for (const m of (s || '').matchAll(URL_RE)) {
    let url = m[0];
    const trail = TRAIL_RE.exec(url);
    if (trail) url = url.slice(0, -trail[0].length);
    const href = url && safeHref(url);
    if (!href) continue;
    if (m.index > at) out.push(...marked(s.slice(at, m.index), terms));
    out.push(h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow ugc' }, ...marked(url, terms)));
    at = m.index + url.length;
  }
  if (at < (s || '').length) out.push(...marked(s.slice(at), terms));
  return out;
}

function quoteBlock(m, list) {
  if (!m.quote_seq) return null;
  const q = m.quote && m.quote.seq ? m.quote : null;
  const target = list.get(m.quote_seq);
  const sender = q ? q.sender : target ? target.msg.sender : '';
  const recalled = (q && q.recalled) || (target && target.msg.recalled);
  const body = recalled ? t('recalled') : q ? q.body : target ? target.msg.body : t('quote.missing');
  return h(
    'button.quote',
    { type: 'button', dataset: { act: 'jump', seq: m.quote_seq }, 'aria-label': `${t('quote.goto')}: ${sender ? `${sender}: ` : ''}${excerpt(body)}` },
    h('b', { text: sender ? `${sender}: ` : '' }),
    h('span', { text: excerpt(body) }),
  );
}

export function excerpt(s, n = 80) {
  s = s || '';
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

// The largest side an image is shown at, in CSS pixels.
const IMAGE_SIDE = 240;

/** The size an image of w x h is shown at (within IMAGE_SIDE square). */
export function imageBox(w, hgt) {
  if (!w || !hgt) return { width: IMAGE_SIDE, height: Math.round((IMAGE_SIDE * 2) / 3) };
  const scale = Math.min(1, IMAGE_SIDE / w, IMAGE_SIDE / hgt);
  return { width: Math.max(1, Math.round(w * scale)), height: Math.max(1, Math.round(hgt * scale)) };
}

function fileSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${Math.ceil(n / 1024)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

// An upload's element: the link to its bytes comes from ctx.media (a
// promise of a URL signed for this user), or the local copy of a file
// still on its way (localUrl).
function mediaLink(el, attr, md, ctx) {
  if (md.localUrl) el.setAttribute(attr, md.localUrl);
  else if (md.id && ctx.media)
    ctx.media(md.id).then(
      (u) => el.setAttribute(attr, u),
      () => el.classList.add('gone'),
    );
}

function bodyOf(m, mine, ctx) {
  if (m.recalled) return h('div.text.recalled', { text: mine ? t('recalled.you') : t('recalled') });
  switch (m.type) {
    case 'MSG_IMAGE': {
      const md = m.media || {};
      const box = imageBox(md.width, md.height);
      const img = h('img.image', {
        alt: md.name || t('image'),
        decoding: 'async',
        width: box.width,
        height: box.height,
        style: `aspect-ratio: ${box.width} / ${box.height}`,
      });
      mediaLink(img, 'src', md, ctx);
      const link = h('a.imagelink', { target: '_blank', rel: 'noopener noreferrer', 'aria-label': `${t('image')}: ${md.name || ''}` }, img);
      mediaLink(link, 'href', md, ctx);
      return h('div.media', null, link, m.body ? h('div.text', null, ...richText(m.body, ctx.terms)) : null);
    }
    case 'MSG_FILE': {
      const md = m.media || {};
      const a = h('a.file', { download: md.name || '', rel: 'noopener noreferrer' }, icon('clip'), h('span.fname', { text: md.name || t('file') }), md.size ? h('span.fsize', { text: fileSize(md.size) }) : null);
      mediaLink(a, 'href', md, ctx);
      return h('div.media', null, a, m.body ? h('div.text', null, ...richText(m.body, ctx.terms)) : null);
    }
    case 'MSG_CARD': {
      const c = m.card || {};
      const img = c.image_url && safeHref(c.image_url);
      const link = c.link && safeHref(c.link);
      return h(
        'div.card',
        null,
        img ? h('img', { src: img, alt: '', loading: 'lazy', decoding: 'async', width: 64, height: 64 }) : null,
        h('div', null, h('b', { text: c.title || m.body }), c.price ? h('div.price', { text: c.price }) : null, link ? h('a', { href: link, target: '_blank', rel: 'noopener noreferrer', text: t('card.open') }) : null),
      );
    }
    default:
      return h('div.text', null, ...richText(m.body, ctx.terms));
  }
}

function daySeparator(ms) {
  return h('div.day', { role: 'separator', 'aria-label': fmtDay(ms) }, h('span', { text: fmtDay(ms) }));
}

/**
 * The element of one MessageList entry.
 * ctx: { list, staff (agent page), statusOf(entry), terms (search terms
 * to mark, lowercase), media(id) (a promise of a link to an upload) };
 * flags from itemFlags.
 */
export function renderMessage(e, ctx, flags = 0) {
  const m = e.msg;
  const day = flags & F_DAY ? daySeparator(m.server_ts || Date.now()) : null;
  if (isEvent(m)) {
    // A tag change says nothing in the conversation (its chips do): a
    // line of one pixel keeps its place in the list.
    if (isQuiet(m) && !day) return h('div.msg.event.quiet', { dataset: { seq: e.seq }, 'aria-hidden': 'true' });
    return h('div.msg.event', { dataset: { seq: e.seq }, tabindex: -1 }, day, isQuiet(m) ? null : h('span', { text: m.body }));
  }
  const mine = e.mine;
  const robot = m.type === 'MSG_ROBOT' || m.sender === 'bot';
  const status = mine ? ctx.statusOf(e) : null;
  const bubble = h('div.bubble', null, m.recalled ? null : quoteBlock(m, ctx.list), bodyOf(m, mine, ctx));
  if (robot && m.quick_replies && m.quick_replies.length && !m.recalled) {
    // The customer taps them; on the workbench they only show what the
    // customer was offered (an agent's tap would answer as the agent).
    bubble.append(
      ctx.staff
        ? h('div.quick.static', { 'aria-label': t('quick.offered') }, m.quick_replies.map((q) => h('span.qr', { text: q.title })))
        : h(
            'div.quick',
            null,
            m.quick_replies.map((q) => h('button', { type: 'button', dataset: { act: 'quick', text: q.payload || q.title }, text: q.title })),
          ),
    );
  }
  const tags = m.tags && m.tags.length ? h('div.tags', { 'aria-label': t('info.tags') }, m.tags.map((x) => h('span.chip', { text: x }))) : null;
  let statusEl = null;
  if (status === 'failed') {
    // An attachment the server refused says so in a file's words.
    const upload = (m.type === 'MSG_IMAGE' || m.type === 'MSG_FILE') && m.media && !m.media.id;
    const why = upload && e.err === 'ERR_TOO_LARGE' ? t('err.file.large') : upload && e.err === 'ERR_INVALID' ? t('err.file.type') : errText(e.err || 'ERR_INTERNAL');
    statusEl = h(
      'span.failure',
      { role: 'alert' },
      h('span.status.failed', { dataset: { status }, text: `${TICKS.failed} ${t('status.failed.why', why)}` }),
      e.retryable !== false
        ? h('button.retry', { type: 'button', dataset: { act: 'retry', key: e.key }, text: t('retry') })
        : h('button.retry', { type: 'button', dataset: { act: 'discard', key: e.key }, text: t('delete') }),
    );
  } else if (status) {
    statusEl = h(`span.status.${status}`, { dataset: { status }, text: `${TICKS[status]} ${t(`status.${status}`)}` });
  }
  const meta = h('div.meta', null, !mine ? h('span.who', { text: robot ? t('conv.bot') : m.sender }) : null, h('span.time', { text: fmtTime(m.server_ts) }), statusEl);
  const cls = `div.msg.${mine ? 'mine' : 'theirs'}${robot ? '.robot' : ''}${m.recalled ? '.is-recalled' : ''}${flags & F_CONT ? '.cont' : ''}`;
  return h(cls, { dataset: { seq: e.seq || '', key: e.key || '' }, tabindex: -1 }, day, bubble, tags, meta);
}

/**
 * The action bar of a message (quote or reply, tag, recall), or null.
 * Not part of renderMessage: it shows only under the pointer or focus, so
 * the page adds it to a message when one of those reaches it, and the
 * dozen messages a frame of a burst renders carry no hidden buttons.
 */
export function renderActs(e, ctx) {
  const m = e.msg;
  if (!e.seq || m.recalled || isEvent(m) || ctx.readOnly) return null;
  const acts = h('div.acts', { role: 'group', 'aria-label': t('actions') });
  acts.append(h('button', { type: 'button', dataset: { act: 'quote', seq: e.seq }, text: ctx.staff ? t('quote') : t('reply') }));
  if (ctx.staff) acts.append(h('button', { type: 'button', dataset: { act: 'tagmsg', seq: e.seq }, text: t('tag') }));
  if (e.mine) acts.append(h('button', { type: 'button', dataset: { act: 'recall', seq: e.seq }, text: t('recall') }));
  return acts;
}
