// The JavaScript SDK's transport shell: a WebSocket (the browser's, or any
// constructor with the same API, e.g. the `ws` package under node), the
// codec, a tick timer and the browser's online/offline events, all
// feeding the sans-IO core (core.js). The application gets events and
// promise-returning methods.
//
// Encoding: protobuf by default. With encoding 'auto' the client offers
// both subprotocols, protobuf first, and speaks whichever the server
// picked, so a server (or proxy) that takes only JSON still works; 'json'
// forces the JSON subprotocol (debugging: add ?enc=json to a page URL).
//
// Servers: url is one ws:// or wss:// URL, or an array of up to URLS_MAX
// of them (the nodes of a cluster): the client connects to one and moves
// to another when its node goes away (core.js, "Several servers").
//
// Attachments (sendFile): the file goes up first, by HTTP POST to the
// server's /media with the session's token (fetch), then the message
// naming it; the send waits in the outbox meanwhile, the file with it in
// IndexedDB across reloads. Uploads are read back through short-lived
// links signed for this user (mediaUrl: MEDIA_URL frames, batched and
// cached), which an <img> can load without the token.
//
// Events (client.on(name, fn)): state(state, err), message(m),
// status(info), receipt(readNotify), synced(), conversation(conv),
// event(frame) (typing, conv_update, agent_state, agent_presence,
// note_mention), mention(noteMention) (a teammate's @mention of this user
// in a note), error(err, text).
import { ClientCore, SbError, State, Close } from './core.js';
import { SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO } from './codec.js';
import { cryptoRandomBytes } from './ids.js';

export { State, SendStatus, SbError } from './core.js';

// The raster images a page shows: sent as MSG_IMAGE, others as MSG_FILE.
const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);
// Signed links are asked for again this long before they expire.
const LINK_MARGIN_MS = 60000;
// Ids per MEDIA_URL (the server's limit).
const LINK_IDS_MAX = 64;

// What an upload's HTTP answer means: the protocol's error codes.
function uploadErr(status) {
  switch (status) {
    case 401:
      return 'ERR_BAD_TOKEN';
    case 403:
      return 'ERR_FORBIDDEN';
    case 404:
      return 'ERR_NOT_FOUND';
    case 413:
      return 'ERR_TOO_LARGE';
    case 429:
      return 'ERR_RATE_LIMITED';
    case 408:
    case 503:
      return 'ERR_UNAVAILABLE';
    case 507:
      return 'ERR_STORE';
    default:
      return status >= 500 ? 'ERR_INTERNAL' : 'ERR_INVALID';
  }
}

function wsUrlOk(u) {
  try {
    const p = new URL(u).protocol;
    return p === 'ws:' || p === 'wss:';
  } catch (e) {
    return false;
  }
}

export class Client {
  /**
   * @param {object} o  url, token, deviceId, codec (createCodec()), and
   *   optionally locale, encoding ('auto' | 'proto' | 'json'), WebSocket
   *   (a constructor), now(), randBytes(n), tickMs, window (for
   *   online/offline events; globalThis by default), outbox (where
   *   unsent messages are kept across reloads: an IdbOutbox or anything
   *   with load(), put(rec), del(key); see outbox.js), and any core
   *   option of defaultConfig() (core.js).
   */
  constructor(o) {
    this.url = o.url;
    this.codec = o.codec;
    this.encoding = o.encoding || 'auto';
    this.WS = o.WebSocket || globalThis.WebSocket;
    this.now = o.now || (() => Date.now());
    this.tickMs = o.tickMs || 100;
    this.win = o.window === undefined ? (typeof window !== 'undefined' ? window : null) : o.window;
    this.enc = 'proto';
    this.ws = null;
    this.timer = null;
    this.flushQueued = false;
    this.listeners = new Map();
    this.waiters = new Map(); // rid -> { resolve, reject, body }
    this.readyWaiters = [];
    this.bytesIn = 0;
    this.bytesOut = 0;
    this.outbox = o.outbox || null;
    this.fetch = o.fetch || (globalThis.fetch ? globalThis.fetch.bind(globalThis) : null);
    this.links = new Map(); // upload id -> { url, expMs }
    this.linkWaiters = new Map(); // upload id -> [{ resolve, reject }]
    this.linkBatch = null; // ids to ask for in the next MEDIA_URL
    const randBytes = o.randBytes || cryptoRandomBytes;
    this.core = new ClientCore(
      { ...o, token: o.token, deviceId: o.deviceId },
      {
        onState: (s, err) => this.onState(s, err),
        onMessage: (m) => this.fire('message', m),
        onSendStatus: (i) => {
          this.persist(i);
          this.fire('status', i);
        },
        onReceipt: (r) => this.fire('receipt', r),
        onSynced: () => this.fire('synced'),
        onConversation: (c) => this.fire('conversation', c),
        onEvent: (f) => {
          this.fire('event', f);
          if (f.body === 'note_mention') this.fire('mention', f.note_mention);
        },
        onError: (err, text) => this.fire('error', err, text),
        onResponse: (rid, err, f) => this.onResponse(rid, err, f),
        // The upload's id goes into the kept copy: a reload sends, not
        // uploads again.
        onUploaded: (key) => this.persist({ status: 'sending', clientMsgId: key }),
      },
      {
        connect: () => this.connect(),
        close: (code, frames) => this.closeSocket(code, frames),
        randBytes,
        upload: this.fetch ? (key, convId, blob, name) => this.upload(key, convId, blob, name) : undefined,
      },
    );
    for (const u of this.core.urls) if (!wsUrlOk(u)) throw new SbError('EINVAL', `not a ws:// or wss:// URL: ${u}`);
    this.onOffline = () => this.core.disconnect('ENETDOWN', this.now());
    this.onOnline = () => {
      this.core.kick(this.now());
      this.flush();
    };
  }

  // ---- events ---------------------------------------------------------------

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name).delete(fn);
  }

  fire(name, ...args) {
    const set = this.listeners.get(name);
    if (set) for (const fn of set) fn(...args);
  }

  onState(s, err) {
    if (s === State.READY) {
      const w = this.readyWaiters;
      this.readyWaiters = [];
      for (const r of w) r.resolve();
    } else if (s === State.STOPPED) {
      const w = this.readyWaiters;
      this.readyWaiters = [];
      for (const r of w) r.reject(new SbError(err || 'ESHUTDOWN'));
    }
    this.fire('state', s, err);
  }

  onResponse(rid, err, f) {
    const w = this.waiters.get(rid);
    if (!w) return;
    this.waiters.delete(rid);
    if (err) w.reject(new SbError(err, f && f.error ? f.error.text : ''));
    else w.resolve(f[f.body]);
  }

  // ---- the outbox kept across reloads ------------------------------------------

  // A send is written when it is queued or fails and deleted once it is
  // stored (SENT); DELIVERED and READ concern stored messages only.
  persist(i) {
    if (!this.outbox) return;
    if (i.status === 'sending' || i.status === 'failed') {
      const o = this.core.pending(i.clientMsgId);
      if (!o) return;
      this.outbox.put({
        key: o.key,
        convId: o.convId,
        type: o.type,
        body: o.body,
        quoteSeq: o.quoteSeq,
        card: o.card,
        media: o.media && o.media.localUrl ? { ...o.media, localUrl: '' } : o.media,
        upload: o.upload,
        ts: o.ts,
        err: i.status === 'failed' ? i.err || 'ERR_INTERNAL' : '',
        text: i.status === 'failed' ? i.text || '' : '',
      });
    } else if (i.status === 'sent') {
      this.outbox.del(i.clientMsgId);
    }
  }

  /** Puts the sends the outbox kept (a reload, a closed tab) back into
   * the core: pending ones are sent again under their ids, failed ones
   * wait for retry() or discard(). Resolves with how many came back. */
  async restoreOutbox() {
    if (!this.outbox) return 0;
    let recs = [];
    try {
      recs = await this.outbox.load();
    } catch (e) {
      return 0; // storage refused (private mode): nothing to restore
    }
    recs.sort((a, b) => (a.ts || 0) - (b.ts || 0));
    let n = 0;
    for (const r of recs) if (this.core.restore(r)) n++;
    if (n) this.scheduleFlush();
    return n;
  }

  // ---- attachments --------------------------------------------------------------

  /** The server's HTTP origin (http or https for ws or wss). */
  httpBase() {
    const u = new URL(this.core.url());
    return `${u.protocol === 'wss:' ? 'https:' : 'http:'}//${u.host}`;
  }

  // io.upload: the file by POST /media, answered to the core later.
  upload(key, convId, blob, name) {
    const url = `${this.httpBase()}/media?conv=${convId}&name=${encodeURIComponent(name || 'file')}`;
    const done = (err, rec, text) => {
      this.core.uploaded(key, err, rec, text, this.now());
      this.flush();
    };
    Promise.resolve()
      .then(() =>
        this.fetch(url, {
          method: 'POST',
          headers: { Authorization: `Bearer ${this.core.cfg.token}`, 'Content-Type': 'application/octet-stream' },
          body: blob,
        }),
      )
      .then(async (res) => {
        const text = await res.text();
        if (res.status === 201) {
          let rec = null;
          try {
            rec = JSON.parse(text);
          } catch (e) {
            rec = null;
          }
          done(rec ? null : 'EPROTO', rec, '');
        } else {
          done(uploadErr(res.status), null, text.split('\n')[0]);
        }
      })
      .catch(() => done('ECONNRESET', null, ''));
  }

  /**
   * Sends a file (a Blob or File): uploaded first, then a message of type
   * MSG_IMAGE (a JPEG, PNG, GIF or WebP) or MSG_FILE naming the upload,
   * caption as its body. name: the file name shown (File's by default);
   * width and height (an image's, when the page knows them) give the
   * message its size before it is stored; localUrl (an object URL of the
   * file) lets the page show it meanwhile. Returns the send's key, like
   * send(); statuses come as 'status' events, a refused upload as FAILED
   * with ERR_TOO_LARGE or ERR_INVALID.
   */
  sendFile(convId, file, { name = '', caption = '', width = 0, height = 0, quoteSeq = 0, localUrl = '' } = {}) {
    const type = IMAGE_TYPES.has(file.type) ? 'MSG_IMAGE' : 'MSG_FILE';
    const media = { name: name || file.name || 'file', size: file.size || 0, mime: file.type || '', width, height };
    // A page's own view of the file (an object URL) until the upload is
    // read back: shown, never sent, never kept across a reload.
    if (localUrl) media.localUrl = localUrl;
    return this.send(convId, { type, body: caption, media, upload: file, quoteSeq });
  }

  /**
   * A link to upload id for this user (an absolute URL an <img> or a
   * download link can use), signed by the server and valid for a while;
   * asked for in batches (MEDIA_URL) and kept until shortly before it
   * expires. Rejects with SbError (ERR_NOT_FOUND: not this user's to
   * see).
   */
  mediaUrl(id) {
    const now = this.now();
    const have = this.links.get(id);
    if (have && have.expMs - LINK_MARGIN_MS > now) return Promise.resolve(have.url);
    return new Promise((resolve, reject) => {
      if (!this.linkWaiters.has(id)) this.linkWaiters.set(id, []);
      this.linkWaiters.get(id).push({ resolve, reject });
      if (!this.linkBatch) {
        this.linkBatch = new Set();
        queueMicrotask(() => this.askLinks());
      }
      this.linkBatch.add(id);
    });
  }

  async askLinks() {
    const ids = [...this.linkBatch];
    this.linkBatch = null;
    for (let i = 0; i < ids.length; i += LINK_IDS_MAX) {
      const part = ids.slice(i, i + LINK_IDS_MAX);
      let links = [];
      let err = null;
      try {
        const r = await this.request('media_url', { ids: part });
        links = r.links || [];
      } catch (e) {
        err = e;
      }
      const base = this.httpBase();
      for (const l of links) this.links.set(l.id, { url: `${base}${l.url}`, expMs: Number(l.expires_ts) });
      for (const id of part) {
        const ws = this.linkWaiters.get(id) || [];
        this.linkWaiters.delete(id);
        const got = this.links.get(id);
        for (const w of ws) {
          if (got) w.resolve(got.url);
          else w.reject(err && err.code !== 'ERR_NOT_FOUND' ? err : new SbError('ERR_NOT_FOUND', 'not yours to see'));
        }
      }
    }
  }

  // ---- the socket -------------------------------------------------------------

  protocols() {
    if (this.encoding === 'json') return [SUBPROTOCOL_JSON];
    if (this.encoding === 'proto') return [SUBPROTOCOL_PROTO];
    return [SUBPROTOCOL_PROTO, SUBPROTOCOL_JSON];
  }

  connect() {
    // Answers come later, never from within this call.
    if (this.win && this.win.navigator && this.win.navigator.onLine === false) {
      setTimeout(() => this.core.onClose('ENETDOWN', 0, this.now()), 0);
      return;
    }
    let ws;
    try {
      ws = new this.WS(this.core.url(), this.protocols());
    } catch (e) {
      setTimeout(() => this.core.onClose('ECONNREFUSED', 0, this.now()), 0);
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.enc = ws.protocol === SUBPROTOCOL_JSON ? 'json' : 'proto';
      this.core.onOpen(this.now());
      this.flush();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      let f = null;
      const data = ev.data;
      this.bytesIn += typeof data === 'string' ? data.length : data.byteLength;
      try {
        f = this.codec.decode(data, this.enc);
      } catch (e) {
        f = null;
      }
      this.core.onFrame(f, this.now());
      this.scheduleFlush(false);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.core.onClose(ev.code === 1006 ? 'ECONNRESET' : null, ev.code === 1006 || ev.code === 1005 ? 0 : ev.code, this.now());
      this.flush();
    };
    ws.onerror = () => {}; // a close event follows
    // Node's `ws` shows the server's pings; browsers hide them (the core
    // probes with a SYNC instead).
    if (typeof ws.on === 'function') ws.on('ping', () => this.core.onRx(this.now()));
  }

  closeSocket(code, frames) {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    if (ws.readyState === 1 && frames) for (const f of frames) this.write(ws, f);
    try {
      // Browsers let a page close only with 1000 or 3000-4999.
      if (code === Close.NORMAL) ws.close(1000);
      else ws.close(4000 + (code % 1000));
    } catch (e) {
      /* already closing */
    }
  }

  write(ws, f) {
    const data = this.codec.encode(f, this.enc);
    this.bytesOut += typeof data === 'string' ? data.length : data.byteLength;
    ws.send(data);
  }

  /** Writes every frame the core has due. */
  flush() {
    this.flushQueued = false;
    const ws = this.ws;
    for (let f; (f = this.core.nextFrame()); ) {
      if (ws && ws.readyState === 1) this.write(ws, f);
    }
  }

  // After API calls: a microtask (sends go out in this turn). After
  // incoming frames: a task, so a burst of pushes is ACKed once.
  scheduleFlush(soon = true) {
    if (this.flushQueued) return;
    this.flushQueued = true;
    if (soon) queueMicrotask(() => this.flush());
    else setTimeout(() => this.flush(), 0);
  }

  // ---- life ---------------------------------------------------------------------

  start() {
    this.core.start(this.now());
    this.timer = setInterval(() => {
      this.core.tick(this.now());
      this.flush();
    }, this.tickMs);
    if (this.win && this.win.addEventListener) {
      this.win.addEventListener('offline', this.onOffline);
      this.win.addEventListener('online', this.onOnline);
    }
    return this;
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.win && this.win.removeEventListener) {
      this.win.removeEventListener('offline', this.onOffline);
      this.win.removeEventListener('online', this.onOnline);
    }
    this.core.stop();
  }

  get state() {
    return this.core.state;
  }

  get session() {
    return this.core.session;
  }

  get deviceId() {
    return this.core.cfg.deviceId;
  }

  /** The server URL connected to now, or tried next. */
  get serverUrl() {
    return this.core.url();
  }

  /** Resolves when READY (at once if it is). */
  ready() {
    if (this.core.state === State.READY) return Promise.resolve();
    if (this.core.state === State.STOPPED) return Promise.reject(new SbError('ESHUTDOWN'));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  // ---- messages ------------------------------------------------------------------

  /** Queues a message; returns its client_msg_id (hex). Status changes
   * come as 'status' events. Throws SbError (see ClientCore.send). */
  send(convId, opts) {
    const key = this.core.send(convId, { ts: this.now(), ...opts });
    this.scheduleFlush();
    return key;
  }

  /** The retry action of a FAILED send: same client_msg_id. */
  retry(key) {
    const ok = this.core.retry(key);
    this.scheduleFlush();
    return ok;
  }

  /** Forgets a FAILED send (and its copy in the outbox). */
  discard(key) {
    const ok = this.core.discard(key);
    if (ok && this.outbox) this.outbox.del(key);
    return ok;
  }

  read(convId, seq) {
    this.core.read(convId, seq);
    this.scheduleFlush();
  }

  /** Typing indicator (transient; the server relays it to the other
   * members' devices). */
  typing(convId, on) {
    const ok = this.core.notify('typing', { conv_id: convId, user_id: '', on: !!on });
    this.scheduleFlush();
    return ok;
  }

  // ---- requests --------------------------------------------------------------------

  /** Sends a request frame once READY; resolves with the answer's body
   * (open_resp, history_resp, ok...), rejects with SbError. */
  async request(bodyName, body) {
    await this.ready();
    const rid = this.core.request(bodyName, body);
    this.scheduleFlush();
    return new Promise((resolve, reject) => this.waiters.set(rid, { resolve, reject }));
  }

  async open(members, { title = '', kind = 'CONV_UNSPECIFIED', desk = '' } = {}) {
    const r = await this.request('open', { members, title, kind, desk });
    return r.conv;
  }

  history(convId, beforeSeq = 0, limit = 50) {
    return this.request('history', { conv_id: convId, before_seq: beforeSeq, limit });
  }

  // Customer-service operations, each answered by OK or a response frame.
  // A server without them answers ERR_UNKNOWN_TYPE and the promise rejects
  // with that code, which the pages show as "not supported by this server
  // yet".
  // note: a word for the next agent, sent only where the schema has
  // Transfer.note (a server without it would drop it unseen).
  transfer(convId, { toAgent = '', toGroup = '', note = '' } = {}) {
    const body = { conv_id: convId, to_agent: toAgent, to_group: toGroup };
    if (note && this.supports('Transfer', 'note')) body.note = note;
    return this.request('transfer', body);
  }

  /** Whether this build's schema has field of message type (features a
   * newer server brings: the page shows their controls only then). */
  supports(type, field) {
    try {
      return !!this.codec.root.lookupType(`sbp.${type}`).fields[field];
    } catch (e) {
      return false;
    }
  }

  /** An agent takes a queued conversation (where the server has the
   * CLAIM frame: supports('Frame', 'claim')). */
  claim(convId, { overCapacity = false } = {}) {
    return this.request('claim', { conv_id: convId, over_capacity: overCapacity });
  }

  close(convId) {
    return this.request('close', { conv_id: convId });
  }

  /** The desk's team (agents and admins; where the server has AGENT_LIST:
   * supports('Frame', 'agent_list')): resolves with the agent_list_resp
   * { desk, agents: [{ user_id, groups, status, load, capacity }], groups }. */
  agentList(desk = '') {
    return this.request('agent_list', { desk });
  }

  tag(convId, seq, add = [], remove = []) {
    return this.request('tag', { conv_id: convId, seq, add, remove });
  }

  recall(convId, seq) {
    return this.request('recall', { conv_id: convId, seq });
  }

  setAgentStatus(status) {
    return this.request('agent_state', { status, capacity: 0, load: 0 });
  }

  convList({ cursor = '', limit = 30, state = 'STATE_UNSPECIFIED', tag = '', mine = false } = {}) {
    return this.request('conv_list', { cursor, limit, state, tag, mine });
  }

  /** An administrator's command (role admin; docs/protocol.md lists the
   * ops): op with its input, a string or an object sent as JSON. Resolves
   * with the server's text ('' when it answers OK), rejects with SbError
   * (ERR_FORBIDDEN for other roles; a refused change says why in its
   * message). */
  async admin(op, body = '') {
    const r = await this.request('admin', { op, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return (r && r.text) || '';
  }

  cannedList(desk = '') {
    return this.request('canned_list', { desk });
  }

  search(convId, query, limit = 50) {
    return this.request('search', { conv_id: convId, query, limit });
  }

  handoff(convId, group = '') {
    return this.request('handoff', { conv_id: convId, group });
  }

  /** The customer rates its service conversation (once a rating was
   * asked for, at its close): rating 1..5, an optional comment of at most
   * 1000 bytes. Resolves once stored; rejects with SbError (ERR_ALREADY:
   * rated already, the first rating stays; ERR_STATE: not asked yet). */
  csat(convId, rating, comment = '') {
    return this.request('csat', { conv_id: convId, rating, comment });
  }

  /** A report (role admin): the figures of the service conversations
   * opened from day `from` to day `to` (YYYY-MM-DD) in time zone tz (IANA;
   * '' for UTC), a row per combination of the keys of `by` ('desk',
   * 'group', 'agent', 'day'), of only desk, group and agent when given.
   * Resolves with the report_resp ({ rows, total, from_ms, to_ms, tz,
   * by }). */
  report({ from, to = from, tz = '', by = [], desk = '', group = '', agent = '' }) {
    return this.request('report', { from, to, tz, by, desk, group, agent });
  }

  // ---- the agent side: private notes and contacts ---------------------------------

  /** Opens the private notes of service conversation convId (agents with
   * access to it, admins; where the server has NOTES_OPEN:
   * supports('Frame', 'notes_open')): resolves with the notes
   * conversation (kind CONV_NOTES, notes_of convId), of which this user
   * is then a member; notes are sent to it with send() and come back as
   * messages of that conversation. create: make it if there is none
   * (else ERR_NOT_FOUND). The customer is never a member. */
  async notesOpen(convId, { create = true } = {}) {
    const r = await this.request('notes_open', { conv_id: convId, create });
    return r.conv;
  }

  /** The contact of the customer of service conversation convId (or, for
   * admins, of userId): resolves with the contact_resp { contact: {
   * user_id, name, email, attributes: [{ key, value }], verified,
   * updated_ts, updated_by }, conversations } (the customer's service
   * conversations, newest first, no messages). */
  contactGet({ convId = 0, userId = '' } = {}) {
    return this.request('contact_get', { conv_id: convId, user_id: userId });
  }

  /** Changes a contact found as contactGet finds it: a non-empty name or
   * email replaces the stored one, each attribute given is set (an
   * object { key: value } or [{ key, value }]; an empty value removes
   * it), clear lists 'name' and/or 'email' to empty. Resolves with the
   * contact_resp as stored; rejects with SbError (ERR_INVALID: a bad
   * key, email or field; ERR_TOO_LARGE: over a limit). */
  contactSet({ convId = 0, userId = '', name = '', email = '', attributes = [], clear = [] } = {}) {
    const attrs = Array.isArray(attributes) ? attributes : Object.entries(attributes).map(([key, value]) => ({ key, value: String(value) }));
    return this.request('contact_set', { conv_id: convId, user_id: userId, name, email, attributes: attrs, clear });
  }

  stats() {
    return { ...this.core.stats(), bytesIn: this.bytesIn, bytesOut: this.bytesOut, encoding: this.enc };
  }
}
