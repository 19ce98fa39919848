// The customer chat widget (served at /): one service conversation with
// the desk's bot and then an agent; quick replies, cards, images, quotes,
// recall, read receipts and message statuses; en / zh-CN.
import { params, connect, initLang, stateLabel, frameBatcher, toast, errText } from './common.js';
import { t } from './i18n.js';
import { ChatView } from './chatview.js';

function customerId() {
  let u = params.get('user') || localStorage.getItem('sb.customer');
  if (!u) u = `guest-${Math.random().toString(36).slice(2, 8)}`;
  localStorage.setItem('sb.customer', u);
  return u;
}

async function main() {
  initLang(document.querySelector('#lang'));
  const user = customerId();
  const { client, store } = await connect(user, 'customer');
  const root = document.querySelector('#chat');
  const view = new ChatView({ store, root, staff: false });
  const stateEl = document.querySelector('#conn');
  const subEl = document.querySelector('#convstate');
  let conv = null;

  // Written only when it changes: a burst of messages leaves the header
  // alone.
  const setText = (el, text) => {
    if (el.textContent !== text) el.textContent = text;
  };
  const header = frameBatcher(() => {
    const s = stateLabel(client.state);
    setText(stateEl, s.text);
    if (stateEl.className !== `conn ${s.cls}`) stateEl.className = `conn ${s.cls}`;
    if (!conv || !conv.info) return;
    const i = conv.info;
    setText(
      subEl,
      i.state === 'STATE_QUEUED' ? t('conv.queued', i.queue_position || '?')
      : i.state === 'STATE_ASSIGNED' ? t('conv.assigned', i.agent)
      : i.state === 'STATE_CLOSED' ? t('conv.closed')
      : i.state === 'STATE_BOT' ? t('conv.bot')
      : t('conv.open'),
    );
    if (root.dataset.state !== i.state) root.dataset.state = i.state;
  });
  store.onChange(header);

  // One service conversation: OPEN answers with the open one or a new one
  // (the bot greets). Against a server without desks, ?agent=NAME opens a
  // plain conversation with that agent.
  async function openConv() {
    const agent = params.get('agent');
    let info;
    try {
      info = agent ? await client.open([agent]) : await client.open([], { kind: 'CONV_SERVICE' });
    } catch (e) {
      if (agent) throw e;
      info = await client.open(['bob']);
    }
    conv = store.conv(info.conv_id);
    store.onConversation(info);
    view.show(conv);
    header();
  }
  await client.ready();
  await openConv().catch((e) => toast(errText(e)));
  window.__sb = { client, store, view, conv: () => conv };
  document.body.dataset.ready = '1';
}

main().catch((e) => {
  document.body.dataset.error = String(e.message || e);
  toast(String(e.message || e));
});
