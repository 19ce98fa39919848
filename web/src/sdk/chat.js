// What a chat screen holds, built on a Client: the conversations this user
// sees, each with its seq-sorted MessageList (live messages, history
// pages, own pending sends), receipts, unread count, tags and typing.
// It reports changes, never renders: a page batches the change events
// into one render per animation frame.
//
// change(kinds) is fired with a Set of conv ids touched and a Set of
// kinds ('messages', 'status', 'convs', 'typing', 'state', 'history',
// 'unread', 'tags', 'team', 'mention').
//
// Private notes (agents): the notes of a service conversation are a
// conversation of their own (kind CONV_NOTES, notes_of the service
// conversation's id) with its own seqs; the store keeps it as any other
// Conv and knows which service conversation it belongs to (notesFor).
import { MessageList } from './msglist.js';
import { retryable } from './core.js';

// How long a typing notice lasts after the last one (the sender repeats
// it every 3 s while keys are pressed).
export const TYPING_MS = 6000;

// The mentions kept (the newest; a page shows them as they come).
const MENTIONS_MAX = 50;

export class Conv {
  constructor(id) {
    this.id = id;
    this.info = null; // Conversation from the server, when known
    this.list = new MessageList();
    this.peerRead = 0; // the other participants' marks
    this.peerDelivered = 0;
    this.readSeq = 0; // this user's read mark (sent as READ)
    this.unread = 0;
    this.lastTs = 0;
    this.lastMessage = null;
    this.hasMoreBefore = true; // older messages may exist on the server
    this.loadingOlder = null; // the promise of the HISTORY in flight
    this.typing = null; // { user, until } of the other side
    this.tags = [];
    this.members = new Set();
    this.peerLang = ''; // language of the other side's newest message that has one
    this.peerLangSeq = 0;
    this.csatAsked = false; // a rating was asked for (a csat.request event)
  }

  get state() {
    return this.info ? this.info.state : 'STATE_UNSPECIFIED';
  }

  get title() {
    if (this.info && this.info.title) return this.info.title;
    return `#${this.id}`;
  }

  /** The service conversation whose private notes these are; 0 for any
   * other conversation. */
  get notesOf() {
    return this.info && this.info.kind === 'CONV_NOTES' ? Number(this.info.notes_of) || 0 : 0;
  }
}

export class ChatStore {
  constructor(client) {
    this.client = client;
    this.convs = new Map();
    this.listeners = new Set();
    this.pendingConv = new Map(); // client_msg_id -> conv id
    this.dirtyConvs = new Set();
    this.dirtyKinds = new Set();
    this.notifyQueued = false;
    this.typingTimer = null;
    // The desk's agents as AGENT_LIST and AGENT_PRESENCE tell them:
    // user id -> { user_id, groups, status, load, capacity }.
    this.team = new Map();
    // Service conversation id -> its notes conversation's id.
    this.notesIds = new Map();
    // NOTE_MENTIONs received, oldest first (at most MENTIONS_MAX).
    this.mentions = [];
    client.on('mention', (x) => this.onMention(x));
    client.on('message', (m) => this.onMessage(m));
    client.on('status', (i) => this.onStatus(i));
    client.on('receipt', (r) => this.onReceipt(r));
    client.on('conversation', (c) => this.onConversation(c));
    client.on('event', (f) => this.onEvent(f));
    client.on('state', () => this.changed(0, 'state'));
    client.on('synced', () => this.changed(0, 'state'));
  }

  get me() {
    return this.client.session ? this.client.session.user_id : '';
  }

  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  // Changes are collected and handed over once per microtask turn; the
  // page's renderer batches further, per animation frame.
  changed(convId, kind) {
    if (convId) this.dirtyConvs.add(convId);
    this.dirtyKinds.add(kind);
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      const convs = this.dirtyConvs;
      const kinds = this.dirtyKinds;
      this.dirtyConvs = new Set();
      this.dirtyKinds = new Set();
      for (const fn of this.listeners) fn(convs, kinds);
    });
  }

  conv(id) {
    let c = this.convs.get(id);
    if (!c) {
      c = new Conv(id);
      this.convs.set(id, c);
      this.changed(id, 'convs');
    }
    return c;
  }

  isMine(m) {
    return m.sender === this.me;
  }

  // ---- from the client ----------------------------------------------------------

  onConversation(info) {
    const c = this.conv(info.conv_id);
    c.info = { ...(c.info || {}), ...info };
    if (c.notesOf) this.notesIds.set(c.notesOf, c.id);
    if (info.tags) c.tags = info.tags.slice();
    for (const mb of info.members || []) {
      c.members.add(mb.user_id);
      // The other members' receipts, where the server sends them with
      // the conversation (Member.read_seq, delivered_seq): a reloaded
      // page shows "Read" without waiting for the next READ_NOTIFY.
      if (mb.user_id !== this.me && (mb.read_seq || mb.delivered_seq))
        this.onReceipt({ conv_id: c.id, user_id: mb.user_id, read_seq: mb.read_seq || 0, delivered_seq: mb.delivered_seq || 0 });
    }
    if (info.read_seq > c.readSeq) c.readSeq = info.read_seq;
    if (info.updated_ts > c.lastTs) c.lastTs = info.updated_ts;
    if (info.last_message && info.last_message.seq && !isQuiet(info.last_message) && (!c.lastMessage || info.last_message.seq >= c.lastMessage.seq)) c.lastMessage = info.last_message;
    if (info.unread !== undefined && info.unread !== null && c.list.length === 0) c.unread = Number(info.unread) || 0;
    this.changed(c.id, 'convs');
  }

  onMessage(m) {
    const c = this.conv(m.conv_id);
    const mine = this.isMine(m);
    const key = mine && m.client_msg_id && m.client_msg_id.length ? hex(m.client_msg_id) : '';
    // A send of this page's outbox: this device's SEND_ACK, or the copy
    // SYNC brings when a send restored after a reload had been stored
    // before it (then under another device id).
    if (key && c.list.pendingEntry(key)) {
      c.list.promote(key, m, this.statusFromMarks(c, m.seq, 'sent'));
    } else {
      c.list.upsert(m, { mine, status: mine ? this.statusFromMarks(c, m.seq, 'sent') : null, key: mine ? key : '' });
    }
    c.members.add(m.sender);
    this.notePeerLang(c, m, mine);
    if (!mine && m.seq > c.readSeq && m.type !== 'MSG_EVENT' && m.type !== 'MSG_SYSTEM') c.unread++;
    if ((!c.lastMessage || m.seq >= c.lastMessage.seq) && !isQuiet(m)) c.lastMessage = m;
    if (m.server_ts > c.lastTs) c.lastTs = m.server_ts;
    if (m.type === 'MSG_EVENT' || m.type === 'MSG_SYSTEM') this.applyEvent(c, m);
    if (m.tags && m.tags.length) c.list.get(m.seq);
    if (c.typing && c.typing.user === m.sender) c.typing = null;
    this.changed(c.id, 'messages');
  }

  notePeerLang(c, m, mine) {
    if (!mine && m.lang && m.seq > c.peerLangSeq) {
      c.peerLang = m.lang;
      c.peerLangSeq = m.seq;
    }
  }

  statusFromMarks(c, seq, fallback) {
    if (seq <= c.peerRead) return 'read';
    if (seq <= c.peerDelivered) return 'delivered';
    return fallback;
  }

  // Stored events change the conversation for every device alike (the
  // server's catalog: docs/protocol.md). The event's body is the server's
  // text in this user's locale and is shown as it is.
  applyEvent(c, m) {
    const ev = m.event;
    if (!ev || !ev.key) return;
    const args = ev.args || [];
    if (ev.key === 'msg.tagged' || ev.key === 'conv.tagged') {
      // args: [user, seq, the tags after the change...]; a customer's
      // copy has none (the tags are the service side's).
      if (args.length < 2) return;
      const seq = Number(args[1]);
      if (seq) c.list.setTags(seq, args.slice(2));
      else {
        c.tags = args.slice(2);
        this.changed(c.id, 'tags');
      }
      return;
    }
    if (ev.key === 'msg.recalled') {
      // args: [the user who recalled it, its seq]
      const seq = Number(args[1]);
      if (seq) {
        c.list.recall(seq);
        if (c.lastMessage && c.lastMessage.seq === seq) c.lastMessage = { ...c.lastMessage, recalled: true, body: '' };
      }
    } else if (ev.key === 'conv.closed' && c.info) {
      c.info = { ...c.info, state: 'STATE_CLOSED' };
    } else if (ev.key === 'csat.request') {
      // The customer was asked to rate the conversation (at its close).
      c.csatAsked = true;
    } else if (ev.key === 'csat.submitted') {
      // args: [the rating]
      const rating = Number(args[0]);
      if (rating) c.info = { ...(c.info || {}), csat_rating: rating };
    }
  }

  onStatus(i) {
    const c = this.conv(i.convId);
    if (i.status === 'sending' || i.status === 'failed') {
      this.pendingConv.set(i.clientMsgId, i.convId);
      let e = c.list.pendingEntry(i.clientMsgId);
      const p = this.client.core.pending(i.clientMsgId);
      if (!e && p)
        e = c.list.addPending(
          i.clientMsgId,
          {
            seq: 0,
            conv_id: i.convId,
            sender: this.me,
            sender_device: this.client.deviceId,
            type: p.type,
            body: p.body,
            quote_seq: p.quoteSeq,
            card: p.card,
            media: p.media,
            server_ts: p.ts || Date.now(),
            tags: [],
          },
          i.status,
        );
      else c.list.setStatus(i.clientMsgId, 0, i.status);
      if (e) {
        // Why it failed, and whether sending it again can help.
        e.err = i.status === 'failed' ? i.err || 'ERR_INTERNAL' : null;
        e.retryable = i.status === 'failed' ? retryable(e.err) : true;
      }
    } else if (i.status === 'sent') {
      this.pendingConv.delete(i.clientMsgId);
      // The message itself arrives through onMessage (surfaced in order);
      // if it is held behind a gap, the pending entry shows 'sent'. One
      // this list holds already (a resend answered as a duplicate after a
      // reload, the copy surfaced by SYNC) leaves the pending tail now.
      const e = c.list.pendingEntry(i.clientMsgId);
      const stored = i.seq ? c.list.get(i.seq) : null;
      if (e && stored) {
        c.list.removePending(i.clientMsgId);
        if (!stored.key) stored.key = i.clientMsgId;
      } else if (e) {
        e.status = 'sent';
        e.rev++;
        c.list.rev++;
      }
    } else {
      c.list.setStatus(i.clientMsgId, i.seq, i.status);
    }
    this.changed(c.id, 'status');
  }

  onReceipt(r) {
    const c = this.conv(r.conv_id);
    if (r.user_id === this.me) {
      // Another device of mine read up to read_seq.
      if (r.read_seq > c.readSeq) this.markReadLocal(c, r.read_seq);
    } else {
      const oldRead = c.peerRead;
      const oldDel = c.peerDelivered;
      c.peerDelivered = Math.max(c.peerDelivered, r.delivered_seq, r.read_seq);
      c.peerRead = Math.max(c.peerRead, r.read_seq);
      // Own messages from other devices of mine, by binary search on the
      // range the marks moved over.
      for (const e of c.list.ownBetween(oldDel, c.peerDelivered)) c.list.setStatus(e.key, e.seq, 'delivered');
      for (const e of c.list.ownBetween(oldRead, c.peerRead)) c.list.setStatus(e.key, e.seq, 'read');
    }
    this.changed(c.id, 'status');
  }

  onEvent(f) {
    if (f.body === 'typing') {
      const t = f.typing;
      if (t.user_id === this.me) return;
      const c = this.conv(t.conv_id);
      c.typing = t.on ? { user: t.user_id, until: Date.now() + TYPING_MS } : null;
      this.changed(c.id, 'typing');
      if (t.on) this.expireTyping();
    } else if (f.body === 'conv_update') {
      this.changed(f.conv_update.conv ? f.conv_update.conv.conv_id : 0, 'convs');
    } else if (f.body === 'agent_state') {
      this.agentState = f.agent_state;
      this.changed(0, 'state');
    } else if (f.body === 'agent_presence') {
      // A teammate's status (the server tells the agents of its desk).
      const p = f.agent_presence;
      this.team.set(p.user_id, { ...(this.team.get(p.user_id) || { user_id: p.user_id }), status: p.status });
      this.changed(0, 'team');
    }
  }

  // A teammate mentioned this user in a note of service conversation
  // conv_id: the note itself comes as a message of the notes conversation
  // (this user is a member of it now).
  onMention(x) {
    if (!x || !x.conv_id) return;
    if (x.notes_conv_id) this.notesIds.set(Number(x.conv_id), Number(x.notes_conv_id));
    this.mentions.push(x);
    if (this.mentions.length > MENTIONS_MAX) this.mentions.shift();
    this.changed(Number(x.conv_id), 'mention');
  }

  // One timer for every conversation's typing notice: at the earliest
  // expiry the notices that ran out are dropped (and the pages told), so
  // that a notice ends TYPING_MS after the last one, not at the next
  // message or render.
  expireTyping() {
    if (this.typingTimer) clearTimeout(this.typingTimer);
    this.typingTimer = null;
    const now = Date.now();
    let next = Infinity;
    for (const c of this.convs.values()) {
      if (!c.typing) continue;
      if (c.typing.until <= now) {
        c.typing = null;
        this.changed(c.id, 'typing');
      } else next = Math.min(next, c.typing.until);
    }
    if (next !== Infinity) this.typingTimer = setTimeout(() => this.expireTyping(), next - now + 10);
  }

  // ---- actions ----------------------------------------------------------------------

  send(convId, opts) {
    return this.client.send(convId, opts);
  }

  /** An attachment (Client.sendFile): uploaded, then sent. */
  sendFile(convId, file, opts) {
    return this.client.sendFile(convId, file, opts);
  }

  /** The desk's team, asked of the server (agents and admins): resolves
   * with { desk, agents, groups }, kept in this.team; presence pushes
   * keep the statuses current. */
  async loadTeam(desk = '') {
    const r = await this.client.agentList(desk);
    this.team.clear();
    for (const a of r.agents || []) this.team.set(a.user_id, { ...a });
    this.changed(0, 'team');
    return r;
  }

  retry(key) {
    return this.client.retry(key);
  }

  /** The notes (a Conv) of service conversation convId that this user
   * knows of, or null. */
  notesFor(convId) {
    const id = this.notesIds.get(convId);
    return id ? this.conv(id) : null;
  }

  /** Opens the notes of service conversation convId (NOTES_OPEN, which
   * makes this user a member of them; create: make them if there are
   * none) and loads their history: resolves with their Conv, rejects
   * with SbError (ERR_NOT_FOUND: none and create not set; ERR_FORBIDDEN:
   * not this user's). A teammate mentioned in them who has no access to
   * the service conversation is a member of the notes only: their
   * history is read directly. */
  async openNotes(convId, { create = false } = {}) {
    let c = null;
    try {
      const info = await this.client.notesOpen(convId, { create });
      this.onConversation(info);
      c = this.conv(info.conv_id);
    } catch (e) {
      c = e.code === 'ERR_FORBIDDEN' ? this.notesFor(convId) : null;
      if (!c) throw e;
    }
    if (c.list.length === 0 && c.hasMoreBefore) await this.loadOlder(c.id);
    return c;
  }

  /** Writes a private note in service conversation convId (its notes are
   * opened, and made, first if needed): returns the send's client id. */
  async sendNote(convId, body) {
    const n = this.notesFor(convId) || (await this.openNotes(convId, { create: true }));
    return this.send(n.id, { body });
  }

  /** Drops a FAILED send: from the outbox and from the list. */
  discard(key) {
    const convId = this.pendingConv.get(key);
    this.client.discard(key);
    this.pendingConv.delete(key);
    const c = convId ? this.convs.get(convId) : null;
    if (c && c.list.removePending(key)) this.changed(c.id, 'messages');
  }

  /** Tags the conversation (seq 0) or one message; resolves once the
   * server has stored it, and the tags show on this page at once. */
  async tag(convId, seq, add = [], remove = []) {
    await this.client.tag(convId, seq, add, remove);
    const c = this.conv(convId);
    const apply = (tags) => tags.filter((x) => !remove.includes(x)).concat(add.filter((x) => !tags.includes(x)));
    if (!seq) c.tags = apply(c.tags);
    else c.list.setTags(seq, apply(c.list.get(seq) ? c.list.get(seq).msg.tags || [] : []));
    this.changed(c.id, seq ? 'messages' : 'tags');
  }

  /** This user has seen convId through seq: READ (coalesced by the core)
   * and the unread count drops. */
  markRead(convId, seq) {
    const c = this.conv(convId);
    if (seq <= c.readSeq) return;
    this.markReadLocal(c, seq);
    this.client.read(convId, seq);
  }

  markReadLocal(c, seq) {
    c.readSeq = seq;
    // Unread: messages of others after the mark, counted from the list
    // by binary search (lowerBound), not by walking all of it.
    let n = 0;
    const items = c.list.items;
    for (let i = c.list.lowerBound(seq + 1); i < items.length; i++) {
      const m = items[i].msg;
      if (!items[i].mine && m.type !== 'MSG_EVENT' && m.type !== 'MSG_SYSTEM') n++;
    }
    c.unread = n;
    this.changed(c.id, 'unread');
  }

  /** Loads the page of history before the oldest message held (segment
   * loading). Resolves with the number of messages added (0 at the start
   * of the conversation). One request at a time per conversation. */
  loadOlder(convId, limit = 50) {
    const c = this.conv(convId);
    if (!c.hasMoreBefore) return Promise.resolve(0);
    if (c.loadingOlder) return c.loadingOlder;
    const before = c.list.firstSeq() || 0;
    if (before === 1) {
      c.hasMoreBefore = false;
      return Promise.resolve(0);
    }
    c.loadingOlder = this.client
      .history(convId, before, limit)
      .then((h) => {
        const added = c.list.addPage(h.messages, (m) => this.isMine(m));
        for (const m of h.messages) {
          c.members.add(m.sender);
          this.notePeerLang(c, m, this.isMine(m));
          // A rating asked for or given stays so: older events say it
          // too (the others describe the past).
          if (m.event && (m.event.key === 'csat.request' || m.event.key === 'csat.submitted')) this.applyEvent(c, m);
        }
        if (!h.more || h.messages.length === 0 || c.list.firstSeq() === 1) c.hasMoreBefore = false;
        if (h.messages.length && !c.lastMessage) c.lastMessage = h.messages[h.messages.length - 1];
        this.changed(c.id, 'history');
        return added;
      })
      .finally(() => {
        c.loadingOlder = null;
      });
    return c.loadingOlder;
  }

  /** Makes sure the message seq is in the list (fetching the pages down
   * to it if needed). Resolves with whether it is there. */
  async ensureLoaded(convId, seq) {
    const c = this.conv(convId);
    while (c.list.indexOf(seq) < 0 && c.hasMoreBefore && (c.list.firstSeq() === 0 || c.list.firstSeq() > seq)) {
      const gap = c.list.firstSeq() ? c.list.firstSeq() - seq : 50;
      const n = await this.loadOlder(convId, Math.min(200, Math.max(50, gap + 10)));
      if (n === 0 && !c.hasMoreBefore) break;
    }
    return c.list.indexOf(seq) >= 0;
  }

  /** Conversations, newest activity first. */
  sorted(filter = () => true) {
    return [...this.convs.values()].filter(filter).sort((a, b) => b.lastTs - a.lastTs || b.id - a.id);
  }
}

/** Whether m is an event that changes state without saying anything in
 * the conversation (tag changes: the chips show them). */
export function isQuiet(m) {
  return !!(m && m.event && (m.event.key === 'msg.tagged' || m.event.key === 'conv.tagged'));
}

function hex(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return s;
}
