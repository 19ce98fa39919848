// One message as an element: text, robot answers with quick-reply
// buttons, cards, images (lazy), files, events, quotes, recalled
// messages, and for own messages the send status with a retry action.
// Actions are data attributes; the page handles clicks by delegation.
import { h, fmtTime } from './common.js';
import { t } from './i18n.js';

const TICKS = { sending: '…', sent: '✓', delivered: '✓✓', read: '✓✓', failed: '!' };

function quoteBlock(m, list) {
  if (!m.quote_seq) return null;
  const q = m.quote && m.quote.seq ? m.quote : null;
  const target = q ? null : list.get(m.quote_seq);
  const sender = q ? q.sender : target ? target.msg.sender : '';
  const recalled = q ? q.recalled : target ? target.msg.recalled : false;
  const body = recalled ? t('recalled') : q ? q.body : target ? target.msg.body : t('quote.missing');
  return h('button.quote', { type: 'button', dataset: { act: 'jump', seq: m.quote_seq }, title: `#${m.quote_seq}` }, h('b', { text: sender ? `${sender}: ` : '' }), h('span', { text: excerpt(body) }));
}

function excerpt(s, n = 80) {
  s = s || '';
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

function bodyOf(m) {
  if (m.recalled) return h('div.text.recalled', { text: t('recalled') });
  switch (m.type) {
    case 'MSG_IMAGE': {
      const md = m.media || {};
      const w = md.width || 240;
      const hgt = md.height || 160;
      const scale = Math.min(1, 240 / w);
      return h('img.image', {
        src: md.url || m.body,
        alt: md.name || '',
        loading: 'lazy',
        decoding: 'async',
        width: Math.round(w * scale),
        height: Math.round(hgt * scale),
      });
    }
    case 'MSG_FILE': {
      const md = m.media || {};
      return h('a.file', { href: md.url || '#', target: '_blank', rel: 'noopener' }, `📎 ${md.name || m.body}`, md.size ? ` (${Math.ceil(md.size / 1024)} KiB)` : '');
    }
    case 'MSG_CARD': {
      const c = m.card || {};
      return h(
        'div.card',
        null,
        c.image_url ? h('img', { src: c.image_url, alt: '', loading: 'lazy', decoding: 'async', width: 64, height: 64 }) : null,
        h('div', null, h('b', { text: c.title || m.body }), c.price ? h('div.price', { text: c.price }) : null, c.link ? h('a', { href: c.link, target: '_blank', rel: 'noopener', text: t('card.open') }) : null),
      );
    }
    default:
      return h('div.text', { text: m.body });
  }
}

/**
 * The element of one MessageList entry.
 * ctx: { me, list, staff (agent page), statusOf(entry) }
 */
export function renderMessage(e, ctx) {
  const m = e.msg;
  if (m.type === 'MSG_EVENT' || m.type === 'MSG_SYSTEM') {
    return h('div.msg.event', { dataset: { seq: e.seq } }, h('span', { text: m.body }));
  }
  const mine = e.mine;
  const robot = m.type === 'MSG_ROBOT' || m.sender === 'bot';
  const status = mine ? ctx.statusOf(e) : null;
  const bubble = h('div.bubble', null, quoteBlock(m, ctx.list), bodyOf(m));
  if (robot && m.quick_replies && m.quick_replies.length && !m.recalled) {
    bubble.append(
      h(
        'div.quick',
        null,
        m.quick_replies.map((q) => h('button', { type: 'button', dataset: { act: 'quick', text: q.payload || q.title }, text: q.title })),
      ),
    );
  }
  const tags = m.tags && m.tags.length ? h('div.tags', null, m.tags.map((x) => h('span.chip', { text: x }))) : null;
  const meta = h(
    'div.meta',
    null,
    !mine ? h('span.who', { text: robot ? t('conv.bot') : m.sender }) : null,
    h('span.time', { text: fmtTime(m.server_ts) }),
    status ? h(`span.status.${status}`, { title: t(`status.${status}`), dataset: { status }, text: `${TICKS[status]} ${t(`status.${status}`)}` }) : null,
    status === 'failed' ? h('button.retry', { type: 'button', dataset: { act: 'retry', key: e.key }, text: t('retry') }) : null,
  );
  const cls = `div.msg.${mine ? 'mine' : 'theirs'}${robot ? '.robot' : ''}${m.recalled ? '.is-recalled' : ''}`;
  return h(cls, { dataset: { seq: e.seq || '', key: e.key || '' } }, bubble, tags, meta);
}

/**
 * The action bar of a message (quote or reply, tag, recall), or null.
 * Not part of renderMessage: it shows only under the pointer or focus, so
 * the page adds it to a message when one of those reaches it, and the
 * dozen messages a frame of a burst renders carry no hidden buttons.
 */
export function renderActs(e, ctx) {
  const m = e.msg;
  if (!e.seq || m.recalled || m.type === 'MSG_EVENT' || m.type === 'MSG_SYSTEM') return null;
  const acts = h('div.acts');
  acts.append(h('button', { type: 'button', dataset: { act: 'quote', seq: e.seq }, text: ctx.staff ? t('quote') : t('reply') }));
  if (ctx.staff) acts.append(h('button', { type: 'button', dataset: { act: 'tagmsg', seq: e.seq }, text: t('tag') }));
  if (e.mine) acts.append(h('button', { type: 'button', dataset: { act: 'recall', seq: e.seq }, text: t('recall') }));
  return acts;
}
