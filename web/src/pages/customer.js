// The customer chat widget (served at /): one service conversation with
// the desk's bot and then an agent; quick replies, cards, images, quotes,
// recall, read receipts and message statuses; en / zh-CN. With ?embed=1
// it is the chat inside the launcher of widget.js (an iframe on another
// site): a close button, its unread count told to the host page, and a
// greeting screen for a visitor who has no conversation yet.
import { params, connect, initLang, stateLabel, frameBatcher, toast, errText, setText, signedUser } from './common.js';
import { t, lang } from './i18n.js';
import { ChatView } from './chatview.js';
import { Notifier } from './notify.js';
import { CsatPanel } from './csat.js';

const embed = params.get('embed') === '1';

function customerId() {
  // The site's signed-in user (the widget's signed identity) is who it is.
  if (signedUser()) return signedUser();
  let u = params.get('user') || localStorage.getItem('sb.customer');
  if (!u) u = `guest-${Math.random().toString(36).slice(2, 8)}`;
  localStorage.setItem('sb.customer', u);
  return u;
}

// The desk's look (GET /api/widget: brand colour, title, expected reply
// time, greeting, agents' pictures), or null when the server has none.
async function deskLook() {
  const desk = params.get('desk');
  try {
    const r = await fetch(`/api/widget${desk ? `?desk=${encodeURIComponent(desk)}` : ''}`);
    return r.ok ? await r.json() : null;
  } catch (e) {
    return null;
  }
}

// A text of the desk's {lang: text} set in this page's language.
function inLang(set) {
  if (!set) return '';
  const l = lang();
  return set[l] || set[l.split('-')[0]] || Object.entries(set).find(([k]) => k.split('-')[0] === l.split('-')[0])?.[1] || set.en || '';
}

// The brand: the desk's, and over it the host page's (the snippet's
// data-* attributes, passed in the URL): a colour (#rgb or #rrggbb only),
// a title, the expected reply time; the greeting and the agents' pictures
// are the desk's.
async function brand() {
  const look = await deskLook();
  const valid = (c) => c && /^#[0-9a-f]{3}([0-9a-f]{3})?$/i.test(c);
  const color = valid(params.get('color')) ? params.get('color') : look && valid(look.color) ? look.color : '';
  if (color) document.documentElement.style.setProperty('--brand', color);
  const title = params.get('title') || inLang(look && look.title);
  if (title) {
    const el = document.querySelector('#title');
    delete el.dataset.i18n;
    setText(el, title.slice(0, 60));
    document.title = title.slice(0, 60);
  }
  const reply = params.get('reply') || inLang(look && look.reply_time);
  if (reply) {
    const el = document.querySelector('.replytime');
    el.textContent = t('greet.reply', reply.slice(0, 40));
    el.hidden = false;
  }
  const greeting = inLang(look && look.greeting);
  if (greeting) {
    const el = document.querySelector('.greeting .intro');
    delete el.dataset.i18n;
    el.textContent = greeting.slice(0, 300);
  }
  const team = document.querySelector('.greeting .team');
  const pics = ((look && look.avatars) || []).slice(0, 8);
  team.replaceChildren(...pics.map((a) => Object.assign(document.createElement('img'), { src: a.url, alt: a.agent, title: a.agent, width: 36, height: 36, loading: 'lazy', decoding: 'async' })));
  team.hidden = pics.length === 0;
  document.body.dataset.branded = '1';
}

// Messages to the host page (widget.js): only counts and requests, never
// message text, so any host may hear them.
function tellHost(msg) {
  if (embed && window.parent !== window) window.parent.postMessage({ sb: 1, ...msg }, '*');
}

async function main() {
  initLang(document.querySelector('#lang'));
  document.body.classList.toggle('embed', embed);
  const branded = brand();
  const user = customerId();
  const { client, store } = await connect(user, 'customer');
  const root = document.querySelector('#chat');
  const view = new ChatView({ store, root, staff: false, user });
  const stateEl = document.querySelector('#conn');
  const subEl = document.querySelector('#convstate');
  let conv = null;
  // Embedded: closed until the host opens the launcher.
  let embedClosed = embed;
  // The rating asked for at the close.
  const csat = new CsatPanel({ root, client, conv: () => conv });

  const notifier = new Notifier({
    client,
    store,
    unread: () => (conv ? conv.unread : 0),
    isOpen: (id) => !!conv && conv.id === id && !embedClosed,
    onOpen: () => view.input.focus(),
    who: (m) => (m.type === 'MSG_ROBOT' || m.sender === 'bot' ? t('conv.bot') : m.sender),
  });
  notifier.setBase(document.title);
  document.querySelector('.bar .right').prepend(notifier.controls());

  // In the launcher: a close button; the host says when it opens us.
  if (embed) {
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'closewidget';
    close.textContent = '×';
    close.setAttribute('aria-label', t('widget.close'));
    close.addEventListener('click', () => tellHost({ type: 'close' }));
    document.querySelector('.bar .right').append(close);
    window.addEventListener('message', (ev) => {
      if (ev.source !== window.parent || !ev.data || ev.data.sb !== 1) return;
      if (ev.data.type === 'open') {
        embedClosed = false;
        view.readVisible();
        if (!view.composer.hidden) view.input.focus();
      } else if (ev.data.type === 'closed') embedClosed = true;
    });
  }
  let told = -1;

  // Written only when it changes: a burst of messages leaves the header
  // alone.
  const header = frameBatcher(() => {
    const s = stateLabel(client.state, client.core.lastErr);
    setText(stateEl, s.text);
    if (stateEl.className !== `conn ${s.cls}`) stateEl.className = `conn ${s.cls}`;
    if (!conv || !conv.info) return;
    const i = conv.info;
    setText(
      subEl,
      i.state === 'STATE_QUEUED' ? (i.queue_position ? t('conv.queued', i.queue_position) : t('conv.queued.anon'))
      : i.state === 'STATE_ASSIGNED' ? (i.agent ? t('conv.assigned', i.agent) : t('conv.assigned.anon'))
      : i.state === 'STATE_CLOSED' ? t('conv.closed')
      : i.state === 'STATE_BOT' ? t('conv.bot')
      : t('conv.open'),
    );
    if (root.dataset.state !== i.state) root.dataset.state = i.state;
    csat.update();
  });
  // The host hears the count at once, not at the next frame: a frame
  // that is display: none (the launcher closed) gets no animation frames.
  function tellUnread() {
    const unread = conv ? conv.unread : 0;
    if (unread === told) return;
    told = unread;
    tellHost({ type: 'unread', n: unread });
  }
  store.onChange(() => {
    tellUnread();
    header();
  });

  // The customer's conversation with agent that is not closed, from its
  // list (the newest), or null: a reload goes back to it.
  async function withAgent(agent) {
    const r = await client.convList({ limit: 50 });
    return r.convs.find((c) => c.state !== 'STATE_CLOSED' && (c.members || []).some((m) => m.user_id === agent)) || null;
  }

  // One service conversation: OPEN answers with the open one or a new one
  // (the bot greets). Against a server without desks, ?agent=NAME opens a
  // plain conversation with that agent, or goes back to the one it has.
  async function openConv() {
    const agent = params.get('agent');
    let info;
    try {
      info = agent ? (await withAgent(agent)) || (await client.open([agent])) : await client.open([], { kind: 'CONV_SERVICE' });
    } catch (e) {
      if (agent) throw e;
      info = await client.open(['bob']);
    }
    conv = store.conv(info.conv_id);
    store.onConversation(info);
    view.show(conv);
    header();
  }

  // A new visitor of the embedded widget first sees a greeting; one with
  // a conversation goes straight to it.
  async function hasConversation() {
    try {
      const r = await client.convList({ limit: 1 });
      return r.convs.length > 0;
    } catch (e) {
      return true;
    }
  }

  window.__sb = { client, store, view, notifier, csat, conv: () => conv };
  await client.ready();
  await branded;
  notifier.setBase(document.title);
  if (embed && !(await hasConversation())) {
    const greet = document.querySelector('.greeting');
    greet.hidden = false;
    document.body.dataset.greeting = '1';
    root.classList.add('greeting-on');
    await new Promise((resolve) => greet.querySelector('.start').addEventListener('click', resolve, { once: true }));
    greet.hidden = true;
    root.classList.remove('greeting-on');
  }
  await openConv().catch((e) => toast(errText(e)));
  document.body.dataset.ready = '1';
}

main().catch((e) => {
  document.body.dataset.error = String(e.message || e);
  toast(String(e.message || e));
});
