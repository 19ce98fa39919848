// The message pane both pages use: a VirtualList over one conversation's
// MessageList, with segment loading at the top, read marking of what is
// seen, jump to a quoted message, a "new messages" pill while reading
// history, keyboard navigation between messages, a quote bar, a tag bar
// (workbench), and a composer with typing notices, a draft kept per
// conversation, an emoji picker, "/" for canned replies (workbench) and
// attachments (a button, pasting a screenshot, dropping files on the
// pane).
// Renders once per animation frame, whatever the burst size.
import { h, frameBatcher, toast, errText, setText, icon } from './common.js';
import { t } from './i18n.js';
import { VirtualList } from './vlist.js';
import { renderMessage, renderActs, itemFlags, excerpt } from './render.js';
import { isQuiet } from '../sdk/chat.js';

const EMOJI = '😀 😂 🙂 😉 😊 😍 🤔 😅 😢 😮 😡 👍 👎 👌 🙏 👏 🙌 💪 👋 ✌️ 🎉 ❤️ 💔 🔥 ⭐ ✅ ❌ ⚠️ ❓ 💡 📦 🚚 💳 💰 🧾 📞 📧 ⏰ 🎁 🛒'.split(' ');

// A typing notice is repeated at most this often while keys are pressed.
const TYPING_EVERY_MS = 3000;

export class ChatView {
  /**
   * @param {object} o  store, root (element with .messages, .quotebar,
   *   .composer textarea, .sendbtn, .typing), staff (bool), user (whose
   *   drafts), onAction(act, seq, button) for actions the page handles,
   *   canned() -> [{ title, text }] (the "/" suggestions; workbench),
   *   onSubmit(text) -> true when the page sent the composer's text itself
   *   (the workbench's private notes)
   */
  constructor(o) {
    this.o = o;
    this.store = o.store;
    this.conv = null;
    this.quoteSeq = 0;
    this.tagSeq = 0;
    this.readMax = 0;
    this.olderRetryAt = 0; // after a failed page of history
    this.writable = true;
    this.terms = null; // search terms marked in the messages
    this.bottomSeq = 0; // the newest seq when the view was last at the bottom
    const root = o.root;
    this.root = root;
    this.scroller = root.querySelector('.messages');
    this.quotebar = root.querySelector('.quotebar');
    this.composer = root.querySelector('.composer');
    this.input = root.querySelector('.composer textarea');
    this.sendBtn = root.querySelector('.sendbtn');
    this.typingEl = root.querySelector('.typing');
    this.scroller.tabIndex = 0;
    this.scroller.setAttribute('role', 'log');
    this.scroller.setAttribute('aria-label', t('messages'));
    this.schedule = frameBatcher(() => this.render());
    this.vl = new VirtualList(this.scroller, {
      estimate: 64,
      renderItem: (e, flags) =>
        renderMessage(
          e,
          {
            list: this.conv.list,
            staff: !!o.staff,
            statusOf: (x) => this.statusOf(x),
            terms: this.terms,
            media: (id) => this.store.client.mediaUrl(id),
          },
          flags,
        ),
      flags: (i) => itemFlags(this.conv.list, i),
      onTop: () => this.loadOlder(),
      onSeen: (e) => this.seen(e),
      onScroll: () => this.schedule(),
      onResize: () => this.schedule(),
    });
    this.scroller.addEventListener('click', (ev) => this.onClick(ev));
    this.scroller.addEventListener('keydown', (ev) => this.onListKey(ev));
    // A message's action bar is built when the pointer or the focus first
    // reaches it (see renderActs).
    const addActs = (ev) => {
      const el = ev.target instanceof Element ? ev.target.closest('.vl-item') : null;
      if (!el || el.dataset.acts) return;
      el.dataset.acts = '1';
      const r = this.vl.rendered.get(el.dataset.key);
      const acts = r && r.el === el ? renderActs(r.entry, { staff: !!o.staff, readOnly: !this.writable }) : null;
      if (acts) el.append(acts);
    };
    this.scroller.addEventListener('mouseover', addActs);
    this.scroller.addEventListener('focusin', addActs);

    // "New messages" while reading history: a pill to the newest.
    this.pill = h('button.newpill', { type: 'button', hidden: true, onclick: () => this.toBottom() });
    this.scroller.after(this.pill);
    // Why the composer is not there (a queued, transferred, closed
    // conversation).
    this.notice = h('div.notice', { role: 'status', hidden: true });
    this.composer.before(this.notice);

    this.sendBtn.addEventListener('click', () => this.submit());
    this.input.addEventListener('keydown', (ev) => this.onInputKey(ev));
    this.typingSent = 0;
    this.input.addEventListener('input', () => this.onInput());
    this.quotebar.addEventListener('click', (ev) => {
      if (ev.target.closest('[data-act=unquote]')) this.setQuote(0);
      else if (this.quoteSeq) this.jump(this.quoteSeq);
    });
    if (o.staff) this.buildTagbar();
    this.buildEmoji();
    this.buildAttach();
    if (o.canned) this.buildSuggest();
    this.store.onChange((convs, kinds) => {
      if (!this.conv) return;
      if (convs.has(this.conv.id) || kinds.has('state')) this.schedule();
    });
    // Messages seen while the page was hidden are read when it shows.
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.readVisible();
    });
  }

  // ---- the conversation ---------------------------------------------------

  /** Shows a conversation (a Conv of the store) or nothing. history:
   * false when this user may not read its history (a queued one). */
  show(conv, { history = true } = {}) {
    if (this.conv && this.conv !== conv) this.saveDraft();
    const same = this.conv === conv;
    this.conv = conv;
    this.history = history;
    if (!same) {
      this.olderRetryAt = 0;
      this.readMax = conv ? conv.readSeq : 0;
      this.bottomSeq = conv ? conv.list.lastSeq() : 0;
      this.setQuote(0, false);
      this.setTagTarget(0);
      this.vl.setList(conv ? conv.list : null);
      this.input.value = conv ? this.loadDraft() : '';
      this.closePopups();
    }
    this.scroller.classList.toggle('empty', !conv);
    if (conv && history && conv.list.length < 30 && conv.hasMoreBefore) this.loadOlder();
    this.schedule();
  }

  /** Whether this user may write here; notice says why not. */
  setWritable(writable, notice = '') {
    if (writable !== this.writable) {
      this.writable = writable;
      // Action bars were built for the other mode.
      for (const el of this.scroller.querySelectorAll('.vl-item[data-acts]')) {
        delete el.dataset.acts;
        const a = el.querySelector('.acts');
        if (a) a.remove();
      }
      if (!writable) {
        this.setQuote(0, false);
        this.setTagTarget(0);
        this.closePopups();
      }
    }
    this.composer.hidden = !writable;
    this.notice.hidden = !notice;
    setText(this.notice, notice);
  }

  /** Marks these search terms in the messages (null: none). */
  highlight(terms) {
    this.terms = terms && terms.length ? terms.map((x) => x.toLowerCase()) : null;
    this.vl.invalidate();
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
      setText(this.typingEl, on ? t('typing', c.typing.user) : '');
    }
    this.drawPill();
  }

  // The pill counts the others' messages that came since the view left
  // the bottom (binary search: no walk over the list).
  drawPill() {
    const l = this.conv.list;
    if (this.vl.stick) this.bottomSeq = l.lastSeq();
    let n = 0;
    if (!this.vl.stick)
      for (let i = l.lowerBound(this.bottomSeq + 1); i < l.items.length; i++) {
        const e = l.items[i];
        if (!e.mine && e.msg.type !== 'MSG_EVENT' && e.msg.type !== 'MSG_SYSTEM') n++;
      }
    this.pill.hidden = n === 0;
    if (n) setText(this.pill, `${t('newmsgs', n)} ↓`);
  }

  toBottom() {
    this.vl.stick = true;
    this.vl.update({ forceBottom: true });
    this.drawPill();
    this.scroller.focus({ preventScroll: true });
  }

  loadOlder() {
    const c = this.conv;
    if (!c || !this.history || !c.hasMoreBefore || c.loadingOlder || Date.now() < this.olderRetryAt) return;
    this.store.loadOlder(c.id, 50).then(
      () => this.schedule(),
      (e) => {
        // Not a member (any more): no history to ask for. Otherwise (the
        // connection went) not again in every frame.
        if (e.code === 'ERR_FORBIDDEN' && this.conv === c) this.history = false;
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

  // The page shows again: what is in view now was seen (the observer
  // reported it while hidden, and reports changes only).
  readVisible() {
    if (!this.conv) return;
    const i = this.vl.lastVisibleIndex();
    const e = i >= 0 ? this.conv.list.at(i) : null;
    if (e && e.seq) this.seen({ ...e, mine: false });
  }

  onClick(ev) {
    const b = ev.target.closest('[data-act]');
    if (!b) return;
    const act = b.dataset.act;
    const seq = Number(b.dataset.seq || 0);
    if (act === 'quote') this.setQuote(seq);
    else if (act === 'jump') this.jump(seq);
    else if (act === 'retry') this.store.retry(b.dataset.key);
    else if (act === 'discard') this.store.discard(b.dataset.key);
    else if (act === 'quick') this.sendText(b.dataset.text);
    else if (act === 'tagmsg') this.setTagTarget(seq);
    else if (act === 'recall') this.store.client.recall(this.conv.id, seq).catch((e) => toast(errText(e)));
    else if (this.o.onAction) this.o.onAction(act, seq, b);
  }

  // ---- keyboard in the list -------------------------------------------------

  // Up and down move between messages (the focused one shows its
  // actions, which Tab reaches); Home and End go to the oldest loaded and
  // the newest; Escape goes back to the composer.
  onListKey(ev) {
    const keys = ['ArrowUp', 'ArrowDown', 'Home', 'End', 'PageUp', 'PageDown'];
    if (!this.conv || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (ev.key === 'Escape') {
      if (this.writable) this.input.focus();
      return;
    }
    if (!keys.includes(ev.key)) return;
    const item = ev.target.closest('.vl-item');
    if (ev.target !== this.scroller && (!item || ev.target !== item)) return; // a button inside
    const n = this.conv.list.length;
    if (!n) return;
    let i = item ? this.vl.keyIndex(item.dataset.key) : this.vl.lastVisibleIndex();
    if (i < 0) i = n - 1;
    const step = ev.key === 'PageUp' || ev.key === 'PageDown' ? 5 : 1;
    if (ev.key === 'ArrowUp' || ev.key === 'PageUp') i = item ? i - step : i;
    else if (ev.key === 'ArrowDown' || ev.key === 'PageDown') i = item ? i + step : i;
    else if (ev.key === 'Home') i = 0;
    else i = n - 1;
    ev.preventDefault();
    i = Math.max(0, Math.min(n - 1, i));
    // A tag change is a line of one pixel, not a stop: on to the next
    // message the way the key goes (back the other way at an end).
    const dir = ev.key === 'ArrowDown' || ev.key === 'PageDown' || ev.key === 'Home' ? 1 : -1;
    const quiet = (j) => isQuiet(this.conv.list.at(j).msg);
    let j = i;
    while (j >= 0 && j < n && quiet(j)) j += dir;
    if (j < 0 || j >= n) for (j = i; j >= 0 && j < n && quiet(j); j -= dir);
    if (j >= 0 && j < n) i = j;
    const el = this.vl.reveal(i);
    if (el) el.focus({ preventScroll: true });
    if (i === 0) this.loadOlder();
    this.drawPill();
  }

  // ---- quote and tag bars ---------------------------------------------------

  setQuote(seq, focus = true) {
    this.quoteSeq = seq;
    this.quotebar.hidden = !seq;
    this.quotebar.textContent = '';
    if (!seq) return;
    const e = this.conv.list.get(seq);
    this.quotebar.append(
      h('span', { text: `${t('quote')}: ${e ? `${e.msg.sender}: ${excerpt(e.msg.body, 60)}` : `#${seq}`}` }),
      h('button', { type: 'button', dataset: { act: 'unquote' }, text: '×', 'aria-label': t('cancel') }),
    );
    if (focus) this.input.focus();
  }

  // The workbench tags one message from a bar above the composer: the
  // message, a field and Add; Enter adds, Escape closes.
  buildTagbar() {
    this.tagbar = h('form.tagbar', { hidden: true });
    this.tagLabel = h('span.what');
    this.tagInput = h('input', { type: 'text', 'aria-label': t('tag.add'), placeholder: t('tag.add'), maxlength: 64 });
    this.tagbar.append(
      this.tagLabel,
      this.tagInput,
      h('button', { type: 'submit', text: t('tag.addbtn') }),
      h('button', { type: 'button', text: '×', 'aria-label': t('cancel'), onclick: () => this.setTagTarget(0) }),
    );
    this.tagbar.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const tag = this.tagInput.value.trim();
      const seq = this.tagSeq;
      if (!tag || !seq) return;
      const conv = this.conv;
      this.store.tag(conv.id, seq, [tag]).then(
        () => {
          if (this.tagSeq === seq && this.conv === conv) this.setTagTarget(0);
        },
        (e) => toast(errText(e)),
      );
    });
    this.tagbar.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') this.setTagTarget(0);
    });
    this.quotebar.after(this.tagbar);
  }

  setTagTarget(seq) {
    if (!this.tagbar) return;
    const back = this.tagSeq && !seq && this.tagbar.contains(document.activeElement);
    this.tagSeq = seq;
    this.tagbar.hidden = !seq;
    this.tagInput.value = '';
    if (!seq) {
      if (back) this.input.focus();
      return;
    }
    const e = this.conv.list.get(seq);
    setText(this.tagLabel, `${t('tag.msg')}: ${e ? excerpt(e.msg.body, 40) : `#${seq}`}`);
    this.tagInput.focus();
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
    this.drawPill();
    return performance.now() - t0;
  }

  // ---- the composer -----------------------------------------------------------

  submit() {
    const text = this.input.value.trim();
    if (!text || !this.conv || !this.writable) return;
    this.input.value = '';
    this.clearDraft();
    this.closePopups();
    if (this.o.onSubmit && this.o.onSubmit(text)) return;
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

  onInput() {
    if (!this.conv) return;
    this.saveDraftSoon();
    if (this.suggest) this.updateSuggest();
    const now = Date.now();
    // An emptied composer ends the notice at once; typing repeats it.
    if (!this.input.value) {
      if (this.typingSent) this.store.client.typing(this.conv.id, false);
      this.typingSent = 0;
      return;
    }
    if (now - this.typingSent < TYPING_EVERY_MS) return;
    this.typingSent = now;
    this.store.client.typing(this.conv.id, true);
  }

  onInputKey(ev) {
    if (this.suggest && !this.suggest.hidden && this.suggestKey(ev)) return;
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      this.submit();
    } else if (ev.key === 'Escape') {
      if (this.quoteSeq) this.setQuote(0);
    }
  }

  /** Inserts text at the caret. */
  insert(text) {
    const ta = this.input;
    const at = ta.selectionStart ?? ta.value.length;
    ta.setRangeText(text, at, ta.selectionEnd ?? at, 'end');
    ta.focus();
    this.onInput();
  }

  // ---- drafts, per conversation, kept across reloads --------------------------

  draftKey() {
    return `sb.draft.${this.o.user || ''}.${this.conv.id}`;
  }

  loadDraft() {
    try {
      return localStorage.getItem(this.draftKey()) || '';
    } catch (e) {
      return '';
    }
  }

  saveDraft() {
    clearTimeout(this.draftTimer);
    if (!this.conv) return;
    try {
      if (this.input.value) localStorage.setItem(this.draftKey(), this.input.value);
      else localStorage.removeItem(this.draftKey());
    } catch (e) {
      /* storage full or refused: the draft lives as long as the page */
    }
  }

  saveDraftSoon() {
    clearTimeout(this.draftTimer);
    this.draftTimer = setTimeout(() => this.saveDraft(), 300);
  }

  clearDraft() {
    clearTimeout(this.draftTimer);
    try {
      localStorage.removeItem(this.draftKey());
    } catch (e) {
      /* nothing kept */
    }
  }

  // ---- emoji --------------------------------------------------------------------

  buildEmoji() {
    this.emojiBtn = h('button.emojibtn', { type: 'button', 'aria-label': t('emoji'), title: t('emoji'), 'aria-expanded': 'false', 'aria-haspopup': 'true' }, icon('smile'));
    this.emojiBox = h(
      'div.emojibox',
      { role: 'group', 'aria-label': t('emoji'), hidden: true },
      EMOJI.map((x) => h('button', { type: 'button', text: x, dataset: { emoji: x } })),
    );
    this.emojiBtn.addEventListener('click', () => this.toggleEmoji());
    this.emojiBox.addEventListener('click', (ev) => {
      const b = ev.target.closest('[data-emoji]');
      if (!b) return;
      this.toggleEmoji(false);
      this.insert(b.dataset.emoji);
    });
    this.emojiBox.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        this.toggleEmoji(false);
        this.emojiBtn.focus();
        return;
      }
      // Arrows move in the grid (8 to a row).
      const d = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -8, ArrowDown: 8 }[ev.key];
      if (!d) return;
      const bs = [...this.emojiBox.children];
      const i = bs.indexOf(document.activeElement);
      if (i < 0) return;
      ev.preventDefault();
      bs[Math.max(0, Math.min(bs.length - 1, i + d))].focus();
    });
    this.input.before(this.emojiBtn);
    this.composer.append(this.emojiBox);
  }

  // ---- attachments ---------------------------------------------------------------

  buildAttach() {
    this.fileInput = h('input', { type: 'file', multiple: true, hidden: true, tabindex: -1, 'aria-hidden': 'true' });
    this.attachBtn = h('button.attachbtn', { type: 'button', 'aria-label': t('attach'), title: t('attach') }, icon('clip'));
    this.attachBtn.addEventListener('click', () => this.fileInput.click());
    this.fileInput.addEventListener('change', () => {
      this.sendFiles([...this.fileInput.files]);
      this.fileInput.value = '';
    });
    this.input.before(this.attachBtn, this.fileInput);
    // A screenshot pasted into the composer is sent as an image.
    this.input.addEventListener('paste', (ev) => {
      const files = ev.clipboardData ? [...ev.clipboardData.files] : [];
      if (!files.length) return;
      ev.preventDefault();
      this.sendFiles(files);
    });
    // Files dropped anywhere on the pane.
    this.dropNote = h('div.dropnote', { hidden: true, text: t('drop.here') });
    this.scroller.after(this.dropNote);
    let depth = 0;
    const over = (on) => {
      this.root.classList.toggle('dropping', on);
      this.dropNote.hidden = !on;
    };
    const hasFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes('Files');
    this.root.addEventListener('dragenter', (ev) => {
      if (!hasFiles(ev) || !this.conv || !this.writable) return;
      ev.preventDefault();
      depth++;
      over(true);
    });
    this.root.addEventListener('dragover', (ev) => {
      if (!hasFiles(ev) || !this.conv || !this.writable) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = 'copy';
    });
    this.root.addEventListener('dragleave', () => {
      if (depth > 0 && --depth === 0) over(false);
    });
    this.root.addEventListener('drop', (ev) => {
      depth = 0;
      over(false);
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      this.sendFiles([...ev.dataTransfer.files]);
    });
  }

  /** Sends each file: an image's size is read first, so that its message
   * takes its place in the list before the bytes are there. */
  async sendFiles(files) {
    if (!this.conv || !this.writable) return;
    const convId = this.conv.id;
    for (const file of files) {
      let width = 0;
      let height = 0;
      if (/^image\/(jpeg|png|gif|webp)$/.test(file.type) && globalThis.createImageBitmap) {
        try {
          const bmp = await createImageBitmap(file);
          width = bmp.width;
          height = bmp.height;
          bmp.close();
        } catch (e) {
          /* not an image after all: the server decides */
        }
      }
      try {
        this.store.sendFile(convId, file, { width, height, localUrl: URL.createObjectURL(file) });
        this.vl.stick = true;
      } catch (e) {
        toast(errText(e));
      }
    }
  }

  toggleEmoji(open = this.emojiBox.hidden) {
    this.emojiBox.hidden = !open;
    this.emojiBtn.setAttribute('aria-expanded', String(open));
    if (open) this.emojiBox.firstChild.focus();
  }

  closePopups() {
    if (this.emojiBox) this.toggleEmoji(false);
    if (this.suggest) this.closeSuggest();
  }

  // ---- "/" for canned replies (workbench) --------------------------------------

  // A listbox over the composer: "/" then a few letters of a reply's
  // title or text; up and down choose, Enter or Tab take it, Escape
  // closes. The composer keeps the focus (aria-activedescendant).
  buildSuggest() {
    this.suggest = h('ul.suggest', { role: 'listbox', id: 'canned-suggest', 'aria-label': t('canned'), hidden: true });
    this.suggest.addEventListener('mousedown', (ev) => ev.preventDefault()); // keep the focus in the composer
    this.suggest.addEventListener('click', (ev) => {
      const li = ev.target.closest('li[data-i]');
      if (li) this.takeSuggest(Number(li.dataset.i));
    });
    this.composer.append(this.suggest);
    this.input.setAttribute('aria-autocomplete', 'list');
    this.input.setAttribute('aria-controls', 'canned-suggest');
    this.sugItems = [];
    this.sugAt = 0;
  }

  updateSuggest() {
    const v = this.input.value;
    const m = /^\/(\S*)$/.exec(v);
    if (!m) return this.closeSuggest();
    const q = m[1].toLowerCase();
    const all = this.o.canned() || [];
    this.sugItems = all.filter((c) => !q || c.title.toLowerCase().includes(q) || (c.key || '').toLowerCase().includes(q) || c.text.toLowerCase().includes(q)).slice(0, 8);
    this.sugAt = 0;
    this.drawSuggest();
  }

  drawSuggest() {
    const items = this.sugItems;
    this.suggest.replaceChildren(
      ...(items.length
        ? items.map((c, i) =>
            h(
              'li',
              { role: 'option', id: `canned-${i}`, dataset: { i }, 'aria-selected': String(i === this.sugAt) },
              h('b', { text: c.title }),
              h('span', { text: excerpt(c.text, 60) }),
            ),
          )
        : [h('li.none', { role: 'option', 'aria-disabled': 'true', 'aria-selected': 'false', text: t('canned.none') })]),
    );
    this.suggest.hidden = false;
    if (items.length) this.input.setAttribute('aria-activedescendant', `canned-${this.sugAt}`);
    else this.input.removeAttribute('aria-activedescendant');
  }

  suggestKey(ev) {
    const n = this.sugItems.length;
    if (ev.key === 'Escape') {
      this.closeSuggest();
      return true;
    }
    if (!n) return false;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      this.sugAt = (this.sugAt + (ev.key === 'ArrowDown' ? 1 : n - 1)) % n;
      this.drawSuggest();
      return true;
    }
    if ((ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) || ev.key === 'Tab') {
      ev.preventDefault();
      this.takeSuggest(this.sugAt);
      return true;
    }
    return false;
  }

  takeSuggest(i) {
    const c = this.sugItems[i];
    if (!c) return;
    this.input.value = c.text;
    this.closeSuggest();
    this.input.focus();
    this.onInput();
  }

  closeSuggest() {
    if (!this.suggest || this.suggest.hidden) return;
    this.suggest.hidden = true;
    this.input.removeAttribute('aria-activedescendant');
  }
}
