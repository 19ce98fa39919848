// Telling the user of new messages when they are not looking: the unread
// count in the tab's title, desktop notifications (after the user allows
// them) and an optional sound, both pages. The choices are kept per
// browser (localStorage); the controls are a small <details> menu.
import { h, icon } from './common.js';
import { t } from './i18n.js';

const PREF_DESKTOP = 'sb.notify.desktop';
const PREF_SOUND = 'sb.notify.sound';
// Messages older than this when they arrive come from catching up
// (SYNC after a reconnect), not from someone writing now.
const LIVE_MS = 60000;

function pref(k) {
  try {
    return localStorage.getItem(k) === '1';
  } catch (e) {
    return false;
  }
}

function setPref(k, on) {
  try {
    localStorage.setItem(k, on ? '1' : '0');
  } catch (e) {
    /* kept for this page only */
  }
}

export class Notifier {
  /**
   * @param {object} o  client, store, unread() -> the count for the
   *   title, isOpen(convId) (the user is looking at it), onOpen(convId)
   *   (a notification was clicked), who(message) -> a name to show
   */
  constructor(o) {
    this.o = o;
    this.base = document.title;
    this.synced = false;
    this.audio = null;
    this.shown = []; // the notifications shown (tests read it)
    o.client.on('synced', () => (this.synced = true));
    o.client.on('message', (m) => this.onMessage(m));
    o.store.onChange(() => this.title());
  }

  /** Sets the title's base ("Acme Support") and writes the title. */
  setBase(base) {
    this.base = base;
    this.title();
  }

  title() {
    const n = this.o.unread();
    const text = n > 0 ? `(${n > 99 ? '99+' : n}) ${this.base}` : this.base;
    if (document.title !== text) document.title = text;
  }

  onMessage(m) {
    if (!this.synced || m.sender === this.o.store.me || m.type === 'MSG_EVENT' || m.type === 'MSG_SYSTEM') return;
    if (m.server_ts && m.server_ts < Date.now() - LIVE_MS) return;
    if (document.visibilityState === 'visible' && this.o.isOpen(m.conv_id)) return;
    if (pref(PREF_DESKTOP)) this.desktop(m);
    if (pref(PREF_SOUND)) this.beep();
  }

  desktop(m) {
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
    const body = m.recalled ? t('recalled') : m.type === 'MSG_TEXT' || m.type === 'MSG_ROBOT' ? m.body : t('notify.attachment');
    try {
      const n = new Notification(this.o.who(m), { body: body.slice(0, 200), tag: `sb-conv-${m.conv_id}`, lang: document.documentElement.lang });
      n.onclick = () => {
        window.focus();
        this.o.onOpen(m.conv_id);
        n.close();
      };
      this.shown.push({ title: this.o.who(m), body, conv: m.conv_id });
    } catch (e) {
      /* a browser that wants a service worker for notifications */
    }
  }

  // A short tone made on the spot (no sound file to fetch).
  beep() {
    try {
      const ctx = this.audio || (this.audio = new AudioContext());
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.05;
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.12);
      this.shown.push({ sound: true });
    } catch (e) {
      /* no audio */
    }
  }

  /** The menu: desktop notifications (asks for permission when ticked)
   * and sound. */
  controls() {
    const desk = h('input', { type: 'checkbox', id: 'pref-desktop' });
    const sound = h('input', { type: 'checkbox', id: 'pref-sound' });
    const why = h('p.sub', { role: 'status' });
    desk.checked = pref(PREF_DESKTOP) && typeof Notification !== 'undefined' && Notification.permission === 'granted';
    sound.checked = pref(PREF_SOUND);
    desk.addEventListener('change', async () => {
      why.textContent = '';
      if (!desk.checked) return setPref(PREF_DESKTOP, false);
      if (typeof Notification === 'undefined') {
        desk.checked = false;
        why.textContent = t('notify.unsupported');
        return;
      }
      const p = Notification.permission === 'default' ? await Notification.requestPermission() : Notification.permission;
      desk.checked = p === 'granted';
      setPref(PREF_DESKTOP, desk.checked);
      if (!desk.checked) why.textContent = t('notify.denied');
    });
    sound.addEventListener('change', () => {
      setPref(PREF_SOUND, sound.checked);
      if (sound.checked) this.beep(); // a sample, and the audio is allowed from this gesture on
    });
    return h(
      'details.prefs',
      null,
      h('summary', { 'aria-label': t('notify.menu'), title: t('notify.menu') }, icon('bell')),
      h(
        'div.prefbox',
        null,
        h('label', { for: 'pref-desktop' }, desk, ` ${t('notify.desktop')}`),
        h('label', { for: 'pref-sound' }, sound, ` ${t('notify.sound')}`),
        why,
      ),
    );
  }
}
