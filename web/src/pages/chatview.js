// The message pane both pages use: a VirtualList over one conversation's
// MessageList, with segment loading at the top, read marking of what is
// seen, jump to a quoted message, a quote bar and a composer with typing
// notices. Renders once per animation frame, whatever the burst size.
import { h, frameBatcher, toast, errText } from './common.js';
import { t } from './i18n.js';
import { VirtualList } from './vlist.js';
import { renderMessage, renderActs } from './render.js';

export class ChatView {
  /**
   * @param {object} o  store, root (element with .messages, .quotebar,
   *   .composer textarea, .sendbtn, .typing), staff (bool)
   */
  constructor(o) {
    this.o = o;
    this.store = o.store;
    this.conv = null;
    this.quoteSeq = 0;
    this.readMax = 0;
    this.pendingJump = 0;
    this.olderRetryAt = 0; // after a failed page of history
    const root = o.root;
    this.scroller = root.querySelector('.messages');
    this.quotebar = root.querySelector('.quotebar');
    this.input = root.querySelector('.composer textarea');
    this.sendBtn = root.querySelector('.sendbtn');
    this.typingEl = root.querySelector('.typing');
    this.schedule = frameBatcher(() => this.render());
    this.vl = new VirtualList(this.scroller, {
      estimate: 64,
      renderItem: (e) =>
        renderMessage(e, {
          me: this.store.me,
          list: this.conv.list,
          staff: !!o.staff,
          statusOf: (x) => this.statusOf(x),
        }),
      onTop: () => this.loadOlder(),
      onSeen: (e) => this.seen(e),
      onScroll: () => this.schedule(),
      onResize: () => this.schedule(),
    });
    this.scroller.addEventListener('click', (ev) => this.onClick(ev));
    // A message's action bar is built when the pointer or the focus first
    // reaches it (see renderActs).
    const addActs = (ev) => {
      const el = ev.target instanceof Element ? ev.target.closest('.vl-item') : null;
      if (!el || el.dataset.acts) return;
      el.dataset.acts = '1';
      const r = this.vl.rendered.get(el.dataset.key);
      const acts = r && r.el === el ? renderActs(r.entry, { staff: !!o.staff }) : null;
      if (acts) el.append(acts);
    };
    this.scroller.addEventListener('mouseover', addActs);
    this.scroller.addEventListener('focusin', addActs);
    this.sendBtn.addEventListener('click', () => this.submit());
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.submit();
      }
    });
    this.typingSent = 0;
    this.input.addEventListener('input', () => this.typing());
    this.quotebar.addEventListener('click', (ev) => {
      if (ev.target.closest('[data-act=unquote]')) this.setQuote(0);
      else if (this.quoteSeq) this.jump(this.quoteSeq);
    });
    this.store.onChange((convs, kinds) => {
      if (!this.conv) return;
      if (convs.has(this.conv.id) || kinds.has('state')) this.schedule();
    });
  }

  /** Shows conversation id (a Conv of the store) or nothing. */
  show(conv) {
    this.conv = conv;
    this.olderRetryAt = 0;
    this.readMax = conv ? conv.readSeq : 0;
    this.setQuote(0);
    this.vl.setList(conv ? conv.list : null);
    this.scroller.classList.toggle('empty', !conv);
    if (conv && conv.list.length < 30 && conv.hasMoreBefore) this.loadOlder();
    this.schedule();
  }

  statusOf(e) {
    if (!e.seq) return e.status;
    const c = this.conv;
    if (e.seq <= c.peerRead) return 'read';
    if (e.seq <= c.peerDelivered && e.status !== 'read') return 'delivered';
    return e.status || 'sent';
  }

  render() {
    if (!this.conv) return;
    this.vl.update();
    const c = this.conv;
    if (this.typingEl) {
      const on = c.typing && c.typing.until > Date.now();
      const text = on ? t('typing', c.typing.user) : '';
      if (this.typingEl.textContent !== text) this.typingEl.textContent = text;
    }
  }

  loadOlder() {
    const c = this.conv;
    if (!c || !c.hasMoreBefore || c.loadingOlder || Date.now() < this.olderRetryAt) return;
    this.store.loadOlder(c.id, 50).then(
      () => this.schedule(),
      () => {
        // Refused (or the connection went): not again in every frame.
        this.olderRetryAt = Date.now() + 2000;
      },
    );
  }

  // A message of the other side is half visible: read through it.
  seen(e) {
    if (!e.seq || e.mine || e.seq <= this.readMax) return;
    if (document.visibilityState === 'hidden') return;
    this.readMax = e.seq;
    this.store.markRead(this.conv.id, e.seq);
  }

  onClick(ev) {
    const b = ev.target.closest('[data-act]');
    if (!b) return;
    const act = b.dataset.act;
    const seq = Number(b.dataset.seq || 0);
    if (act === 'quote') this.setQuote(seq);
    else if (act === 'jump') this.jump(seq);
    else if (act === 'retry') this.store.retry(b.dataset.key);
    else if (act === 'quick') this.sendText(b.dataset.text);
    else if (act === 'recall')
      this.store.client.recall(this.conv.id, seq).catch((e) => toast(errText(e)));
    else if (this.o.onAction) this.o.onAction(act, seq, b);
  }

  setQuote(seq) {
    this.quoteSeq = seq;
    this.quotebar.hidden = !seq;
    this.quotebar.textContent = '';
    if (!seq) return;
    const e = this.conv.list.get(seq);
    this.quotebar.append(
      h('span', { text: `${t('quote')}: ${e ? `${e.msg.sender}: ${(e.msg.body || '').slice(0, 60)}` : `#${seq}`}` }),
      h('button', { type: 'button', dataset: { act: 'unquote' }, text: '×', 'aria-label': t('cancel') }),
    );
    this.input.focus();
  }

  /** Scrolls to seq (fetching older pages down to it if needed) and
   * flashes it. Resolves with the ms it took. */
  async jump(seq) {
    const t0 = performance.now();
    if (this.conv.list.indexOf(seq) < 0) await this.store.ensureLoaded(this.conv.id, seq);
    const el = this.vl.jumpTo(seq);
    if (el) {
      el.classList.add('flash');
      setTimeout(() => el.classList.remove('flash'), 1200);
    }
    return performance.now() - t0;
  }

  submit() {
    const text = this.input.value.trim();
    if (!text || !this.conv) return;
    this.input.value = '';
    this.sendText(text, this.quoteSeq);
    this.setQuote(0);
  }

  sendText(text, quoteSeq = 0) {
    try {
      this.store.send(this.conv.id, { body: text, quoteSeq });
      this.vl.stick = true;
      this.typingSent = 0;
      this.store.client.typing(this.conv.id, false);
    } catch (e) {
      toast(errText(e));
    }
  }

  typing() {
    const now = Date.now();
    if (!this.conv || now - this.typingSent < 3000) return;
    this.typingSent = now;
    this.store.client.typing(this.conv.id, true);
  }
}
