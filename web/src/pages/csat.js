// The customer's rating of a conversation (CSAT): once the desk asked for
// one (a "csat.request" event, at the close) and until it is given, a
// panel above the composer with five stars (a radio group: arrows move,
// Enter or a click picks), an optional comment and Send; "Not now" hides
// it for this page. A conversation is rated once: the server refuses a
// second rating (ERR_ALREADY), which the panel takes as done.
import { h, toast, errText } from './common.js';
import { t } from './i18n.js';

const COMMENT_BYTES_MAX = 1000;
const STARS = 5;

export class CsatPanel {
  /** o: root (the chat element; the panel goes before its composer),
   * client, conv() (the Conv shown, or null). */
  constructor(o) {
    this.o = o;
    this.rating = 0;
    this.dismissed = new Set(); // conversations "Not now" was said to
    this.thanked = null; // the conversation the thanks are shown for
    this.el = h('section.csat', { hidden: true, 'aria-labelledby': 'csat-h' });
    this.title = h('h2', { id: 'csat-h', text: t('csat.title') });
    this.stars = [];
    const group = h('div.stars', { role: 'radiogroup', 'aria-labelledby': 'csat-h' });
    for (let i = 1; i <= STARS; i++) {
      const b = h('button.star', { type: 'button', role: 'radio', 'aria-checked': 'false', 'aria-label': t('csat.star', i), dataset: { rating: i }, text: '★', tabindex: i === 1 ? 0 : -1 });
      b.addEventListener('click', () => this.pick(i, true));
      b.addEventListener('keydown', (ev) => this.onKey(ev, i));
      this.stars.push(b);
      group.append(b);
    }
    // One line: the composer keeps the pane's one textarea.
    this.comment = h('input.comment', { type: 'text', maxlength: COMMENT_BYTES_MAX, placeholder: t('csat.comment'), 'aria-label': t('csat.comment') });
    this.err = h('p.err', { role: 'alert' });
    this.send = h('button.sendbtn', { type: 'button', text: t('csat.send'), disabled: true });
    this.later = h('button.later', { type: 'button', text: t('csat.later') });
    this.form = h('div.csatform', null, group, this.comment, this.err, h('div.buttons', null, this.later, this.send));
    this.thanks = h('p.thanks', { role: 'status', hidden: true });
    this.el.append(this.title, this.form, this.thanks);
    this.send.addEventListener('click', () => this.submit());
    this.later.addEventListener('click', () => {
      const c = o.conv();
      if (c) this.dismissed.add(c.id);
      this.update();
    });
    o.root.querySelector('.composer').before(this.el);
  }

  /** Whether the conversation waits for this customer's rating. */
  static wanted(c) {
    if (!c || (c.info && c.info.csat_rating)) return false;
    return c.csatAsked || c.list.items.some((e) => e.msg.event && e.msg.event.key === 'csat.request');
  }

  pick(i, focus) {
    this.rating = i;
    this.stars.forEach((b, k) => {
      const on = k < i;
      b.classList.toggle('on', on);
      b.setAttribute('aria-checked', String(k === i - 1));
      b.tabIndex = k === i - 1 ? 0 : -1;
    });
    this.send.disabled = false;
    if (focus) this.stars[i - 1].focus();
  }

  onKey(ev, i) {
    const d = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 }[ev.key];
    if (d) {
      ev.preventDefault();
      this.pick(Math.max(1, Math.min(STARS, i + d)), true);
    }
  }

  async submit() {
    const c = this.o.conv();
    if (!c || !this.rating) return;
    const comment = this.comment.value.trim();
    if (new TextEncoder().encode(comment).length > COMMENT_BYTES_MAX) {
      this.err.textContent = t('csat.toolong');
      return;
    }
    this.err.textContent = '';
    this.send.disabled = true;
    try {
      await this.o.client.csat(c.id, this.rating, comment);
      c.info = { ...(c.info || {}), csat_rating: this.rating, csat_comment: comment };
      this.thank(c);
    } catch (e) {
      if (e.code === 'ERR_ALREADY') this.thank(c);
      else {
        this.send.disabled = false;
        this.err.textContent = errText(e);
        toast(errText(e));
      }
    }
  }

  thank(c) {
    this.thanked = c.id;
    this.thanks.textContent = t('csat.thanks');
    this.update();
  }

  /** Shows, hides or thanks, as the conversation shown stands. */
  update() {
    const c = this.o.conv();
    const thanks = !!c && this.thanked === c.id;
    const want = !thanks && CsatPanel.wanted(c) && !this.dismissed.has(c.id);
    this.form.hidden = !want;
    this.title.hidden = !want;
    this.thanks.hidden = !thanks;
    this.el.hidden = !want && !thanks;
    this.el.dataset.state = want ? 'asking' : thanks ? 'thanked' : 'none';
  }
}
