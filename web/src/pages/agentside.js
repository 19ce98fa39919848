// The workbench's agent side: private notes and the customer's contact.
// Notes live in a conversation of their own (the SDK's ChatStore keeps
// it, notesFor); the pane shows the selected conversation's notes in a
// strip of their own under its messages, yellow and labelled "Note", and
// the composer's Note switch sends what is typed there instead of to the
// customer. A teammate's @mention of this agent is a notice (and a
// desktop notification where allowed). The side panel shows the
// customer's contact (name, email, attributes), which the agent edits,
// and the customer's past conversations. Only the workbench loads this
// module: the customer page never asks for notes (the server would
// refuse it anyway).
import { h, toast, errText, fmtDateTime, setText } from './common.js';
import { t } from './i18n.js';

// Attributes as the agent edits them: one "key: value" a line.
function attrsText(attrs) {
  return (attrs || []).map((a) => `${a.key}: ${a.value}`).join('\n');
}

/** The attributes written in text as { key: value }, or a line that is
 * not "key: value" (the first). */
export function parseAttrs(text) {
  const out = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const i = line.indexOf(':');
    if (i <= 0) return { bad: line };
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return { attrs: out };
}

export class AgentSide {
  /**
   * @param {object} o  client, store, view (the ChatView), user, convHref(id)
   *   (a link to a conversation), mayRead(conv) (this agent may read it and
   *   its notes: a member or an admin)
   */
  constructor(o) {
    this.o = o;
    this.client = o.client;
    this.store = o.store;
    this.conv = null;
    this.tried = new Set(); // service conversations whose notes were asked for
    this.supported = this.client.supports('Frame', 'notes_open');
    this.notesEl = document.querySelector('#notes');
    this.noteList = this.notesEl.querySelector('.notelist');
    this.toggle = document.querySelector('#notemode');
    this.toggle.closest('label').hidden = !this.supported;
    this.contactEl = document.querySelector('#contact');
    this.form = this.contactEl.querySelector('form');
    this.formErr = this.form.querySelector('.err');
    this.pastEl = this.contactEl.querySelector('.pastconvs');
    this.contact = null;
    this.contactFor = 0;
    this.contactMay = false;
    this.drawn = '';

    this.toggle.addEventListener('change', () => this.setNoteMode(this.toggle.checked));
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.saveContact();
    });
    this.store.onChange((convs, kinds) => {
      if (!this.conv) return;
      const n = this.store.notesFor(this.conv.id);
      if (convs.has(this.conv.id) || (n && convs.has(n.id)) || kinds.has('mention')) this.drawNotes();
    });
    this.client.on('mention', (x) => this.onMention(x));
  }

  // ---- the conversation shown ----------------------------------------------

  /** The pane shows conv (a service conversation's Conv) or nothing. */
  show(conv) {
    const changed = conv !== this.conv;
    this.conv = conv;
    if (changed) {
      this.setNoteMode(false);
      this.drawn = '';
    }
    const may = !!conv && this.o.mayRead(conv);
    // A teammate mentioned in the notes reads them even where the
    // conversation itself is not theirs to read.
    const notes = conv ? this.store.notesFor(conv.id) : null;
    if (conv && (may || notes) && this.supported && (changed || !this.tried.has(conv.id))) {
      // Notes that exist: open them (joining them) and read them; none
      // yet is no error (the first note makes them).
      this.tried.add(conv.id);
      this.store.openNotes(conv.id).then(
        () => this.drawNotes(),
        () => {},
      );
    }
    this.drawNotes();
    if (changed || this.contactFor !== (conv ? conv.id : 0) || this.contactMay !== may) {
      this.contactMay = may;
      this.loadContact(may);
    }
  }

  setNoteMode(on) {
    this.toggle.checked = on;
    const composer = this.o.view.composer;
    composer.classList.toggle('notemode', on);
    this.o.view.input.placeholder = on ? t('note.ph') : t('compose.ph.agent');
  }

  get noteMode() {
    return this.toggle.checked;
  }

  /** The composer's text goes here in note mode: a private note. */
  sendNote(text) {
    const id = this.conv.id;
    this.store.sendNote(id, text).then(
      () => this.drawNotes(),
      (e) => toast(errText(e)),
    );
  }

  // ---- notes -----------------------------------------------------------------

  drawNotes() {
    const c = this.conv;
    const n = c ? this.store.notesFor(c.id) : null;
    const items = n ? n.list.items : [];
    const sig = JSON.stringify([c && c.id, n && n.list.rev, items.length, this.noteMode]);
    if (sig === this.drawn) return;
    this.drawn = sig;
    this.notesEl.hidden = items.length === 0;
    this.noteList.textContent = '';
    for (const e of items) {
      const m = e.msg;
      if (m.type === 'MSG_EVENT' || m.type === 'MSG_SYSTEM') continue;
      const who = m.sender === this.o.user ? t('you', m.sender) : m.sender;
      this.noteList.append(
        h(
          e.status === 'failed' ? 'li.note.failed' : 'li.note',
          { dataset: { seq: String(m.seq || 0) } },
          h('div.notehead', null, h('span.notelabel', { text: t('note') }), h('b', { text: who }), h('time', { text: fmtDateTime(m.server_ts) })),
          h('div.notebody', { text: m.body }),
        ),
      );
    }
    this.noteList.scrollTop = this.noteList.scrollHeight;
  }

  onMention(x) {
    const from = (x.note && x.note.sender) || '?';
    const body = ((x.note && x.note.body) || '').slice(0, 200);
    const text = t('note.mention', from, String(x.conv_id), body);
    toast(text);
    const box = document.querySelector('#mentions');
    if (box) {
      box.closest('section').hidden = false;
      box.prepend(h('li', null, h('a', { href: this.o.convHref(Number(x.conv_id)), text })));
      while (box.children.length > 20) box.lastChild.remove();
    }
    if (typeof Notification !== 'undefined' && Notification.permission === 'granted' && document.visibilityState !== 'visible') {
      try {
        new Notification(t('note.mention.title', from), { body, tag: `sb-note-${x.notes_conv_id}` });
      } catch (e) {
        /* a browser that wants a service worker for notifications */
      }
    }
  }

  // ---- the contact -------------------------------------------------------------

  async loadContact(may) {
    const c = this.conv;
    this.contactFor = c ? c.id : 0;
    this.formErr.textContent = '';
    if (!c || !may || !this.client.supports('Frame', 'contact_get')) {
      this.contactEl.hidden = true;
      return;
    }
    try {
      const r = await this.client.contactGet({ convId: c.id });
      if (this.conv !== c) return;
      this.fillContact(r);
      this.contactEl.hidden = false;
    } catch (e) {
      if (this.conv === c) this.contactEl.hidden = true;
    }
  }

  fillContact(r) {
    const k = r.contact || {};
    this.contact = k;
    const f = this.form.elements;
    f.name.value = k.name || '';
    f.email.value = k.email || '';
    f.attrs.value = attrsText(k.attributes);
    this.contactEl.querySelector('.verified').hidden = !k.verified;
    setText(this.contactEl.querySelector('.updated'), k.updated_ts ? t('contact.updated', k.updated_by === 'site' ? t('contact.site') : k.updated_by, fmtDateTime(k.updated_ts)) : '');
    this.pastEl.textContent = '';
    const past = (r.conversations || []).filter((x) => x.conv_id !== this.conv.id);
    for (const x of past)
      this.pastEl.append(
        h(
          'li',
          null,
          h('a', { href: this.o.convHref(x.conv_id), text: `#${x.conv_id} · ${fmtDateTime(x.created_ts)}` }),
          h('span.sub', { text: ` ${t(`cstate.${x.state}`)}${x.agent || x.last_agent ? ` · ${x.agent || x.last_agent}` : ''}` }),
        ),
      );
    if (!past.length) this.pastEl.append(h('li.sub', { text: t('contact.nopast') }));
  }

  async saveContact() {
    const c = this.conv;
    if (!c) return;
    const f = this.form.elements;
    const p = parseAttrs(f.attrs.value);
    if (p.bad) {
      this.formErr.textContent = t('contact.badattr', p.bad);
      return;
    }
    const old = this.contact || {};
    const attrs = { ...p.attrs };
    // An attribute taken out of the text is removed (an empty value).
    for (const a of old.attributes || []) if (!(a.key in attrs)) attrs[a.key] = '';
    const name = f.name.value.trim();
    const email = f.email.value.trim();
    const clear = [];
    if (!name && old.name) clear.push('name');
    if (!email && old.email) clear.push('email');
    this.formErr.textContent = '';
    try {
      const r = await this.client.contactSet({ convId: c.id, name, email, attributes: attrs, clear });
      if (this.conv !== c) return;
      const g = await this.client.contactGet({ convId: c.id });
      if (this.conv !== c) return;
      this.fillContact({ contact: r.contact, conversations: g.conversations });
      toast(t('contact.saved'));
    } catch (e) {
      this.formErr.textContent = errText(e);
    }
  }
}
