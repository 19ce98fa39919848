// The JavaScript client's protocol core: the connection state machine with
// backoff, the outbox (client_msg_id, window, resend, statuses), the inbox
// (per-conversation cursor, gap buffer, exactly-once in-order surfacing,
// ACKs, SYNC loop) and requests. It does no I/O and reads no clock: the
// transport (client.js) feeds it events with the time and pulls the frames
// to write with nextFrame(); randomness comes in through io.randBytes;
// an attachment's bytes go up through io.upload(key, convId, blob, name),
// answered by uploaded() (optional: without it, no attachments). It
// has the semantics of the C SDK's core (src/client/sb_client_core.h), so
// unit tests drive it frame by frame, exactly as the C tests do.
//
// Frames are plain objects in the codec's shape (codec.js): snake_case
// fields, enums by name, 64-bit integers as numbers, bytes as Uint8Array.
//
// Callbacks run inside the core's methods; they may call the API methods
// (send, retry, request, read, sync, setCursor, stop, accessors) but must
// not feed the core events.
import { MSG_ID_BYTES, toHex, fromHex } from './ids.js';

export const State = Object.freeze({
  IDLE: 'idle',
  CONNECTING: 'connecting', // the transport connects and upgrades
  HELLO_SENT: 'hello_sent', // WebSocket open, waiting for WELCOME
  READY: 'ready', // WELCOME received: sends, SYNC and requests flow
  BACKOFF: 'backoff', // disconnected, waiting to reconnect
  STOPPED: 'stopped', // final: stop(), a refused token, or replaced
});

// The life of one send: SENDING (in the outbox) -> SENT (SEND_ACK: stored
// durably, seq known) -> DELIVERED (another participant's device ACKed it)
// -> READ (another participant read it); or FAILED (a non-retryable ERROR,
// or the attempts ran out), from which retry() brings it back to SENDING
// under the same client_msg_id. DELIVERED is reported before READ even
// when one READ_NOTIFY says both.
export const SendStatus = Object.freeze({
  SENDING: 'sending',
  SENT: 'sent',
  DELIVERED: 'delivered',
  READ: 'read',
  FAILED: 'failed',
});

const RANK = { sending: 0, sent: 1, delivered: 2, read: 3, failed: 4 };

export const Close = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL: 1002,
  POLICY: 1008,
  INTERNAL: 1011,
  TRY_AGAIN: 4013,
});

/** The most server URLs a client takes (cfg.url as an array). */
export const URLS_MAX = 16;
/** A connection READY at least this long (ms) counts as a success: when
 * it ends, the next attempt starts a new round of the URL list. */
export const STABLE_MS = 1000;

/** An error with a code: 'ERR_FORBIDDEN' (the server's names) or an
 * errno-like name ('ETIMEDOUT', 'ECONNRESET', 'ENOTCONN', 'ENOBUFS',
 * 'ESHUTDOWN', 'REPLACED', 'EINVAL'). */
export class SbError extends Error {
  constructor(code, text) {
    super(text ? `${code}: ${text}` : code);
    this.code = code;
    this.text = text || '';
  }
}

// Errors after which the same SEND may succeed (docs/protocol.md).
const RETRYABLE = new Set([
  'ERR_STORE',
  'ERR_RATE_LIMITED',
  'ERR_TOO_MANY_PENDING',
  'ERR_UNAVAILABLE',
  'ERR_INTERNAL',
  'ERR_UNAUTHENTICATED',
]);

/** An attachment whose upload has not given it an id yet: not sent. */
function waitsUpload(o) {
  return !!o.upload && !(o.media && o.media.id);
}

/** Whether a FAILED send with this error may succeed when retried: the
 * server's retryable errors and the transport's (no answer, no
 * connection). A message the server refused for what it is (blocked,
 * too large, not a member...) fails again under the same id. */
export function retryable(err) {
  return RETRYABLE.has(err) || err === 'ETIMEDOUT' || err === 'ENOTCONN' || err === 'ECONNRESET';
}

// Frames the server starts (rid 0) that are not PUSH or READ_NOTIFY: the
// customer-service events, handed to cbs.onEvent.
const SERVER_EVENTS = new Set(['typing', 'conv_update', 'agent_state', 'agent_presence', 'note_mention']);

export function defaultConfig() {
  return {
    token: '',
    deviceId: '',
    clientName: 'switchboard-js/0.1.0',
    locale: '',
    syncDisabled: false, // never SYNC (one-shot tools): gaps stay
    sendTimeoutMs: 5000, // resend a SEND unanswered this long
    sendAttemptsMax: 30, // timeouts + retryable errors; 0: no cap
    // A send that has waited this long without a connection (counted
    // from when it was queued or the connection went, the later) fails
    // with ENOTCONN; retry() queues it again. 0: it waits for as long as
    // it takes, as the C SDK's does.
    offlineFailMs: 0,
    windowMax: 64, // SENDs in flight; also <= WELCOME's
    outboxMax: 1024, // sends not yet SENT; more: ENOBUFS
    heldMax: 1024, // messages held behind gaps
    convsMax: 4096, // conversations tracked
    trackMax: 1024, // SENT messages watched for receipts, per conversation
    requestsMax: 64, // requests awaiting answers
    requestTimeoutMs: 10000,
    connectTimeoutMs: 10000, // from connect() to WELCOME
    backoffMsBase: 250, // reconnect delay: full jitter in
    backoffMsMax: 30000, // [0, min(max, base * 2^attempt)]
    // After the server closed with 1001 (going away: a restart or a
    // deploy), the delay's cap for restartWindowMs (0: no such cap), so
    // that refused attempts while it restarts do not push the reconnect
    // seconds past its return.
    restartBackoffMsMax: 1000,
    restartWindowMs: 30000,
    // url: one server's URL, or an array of several (cluster nodes; see
    // "Several servers" at ClientCore). urlsInOrder: go round them as
    // listed, from the first; by default in a random order per client.
    urlsInOrder: false,
    heartbeatMs: 30000, // until WELCOME says; probe after 1x, dead after 3x
    bodyBytesMax: 64 * 1024, // until WELCOME says
    syncLimit: 0, // SYNC page; 0: WELCOME's sync_page_max
    gapWaitMs: 200, // a gap waits this long for pushes in flight, then SYNC
    gapRetryMs: 1000, // SYNC again if a gap outlives a SYNC
    // A conversation this device has never seen starts this many messages
    // before its newest (older ones are for HISTORY); 0: from seq 1, as
    // the C SDK does.
    initialWindow: 0,
  };
}

function lowerBound(arr, seq) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const utf8 = new TextEncoder();

function wellFormed(s) {
  if (typeof s.isWellFormed === 'function') return s.isWellFormed();
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

// Several servers. cfg.url may be an array of the URLs of several gateway
// nodes; the client keeps one connection, to one of them, and goes round
// the list when connections fail, as the C SDK does (sb_client_core.h):
// a random order of its own per client (unless urlsInOrder), the next URL
// at once after a failure, and a backoff only once every URL of the list
// has failed in a row (a round), growing per round. A round starts afresh
// after a connection READY for STABLE_MS, and after a close 1001 (the node
// drains); a shorter connection counts as one failure of the round. One
// URL is a round of one: a backoff after every failure.
export class ClientCore {
  /**
   * @param {object} cfg   defaultConfig() with token and deviceId set
   * @param {object} cbs   onState(state, err), onMessage(m),
   *   onSendStatus(info), onReceipt(readNotify), onSynced(),
   *   onResponse(rid, err, frame), onEvent(frame), onConversation(conv),
   *   onError(err, text); each optional
   * @param {object} io    connect(), close(code), randBytes(n): all required
   */
  constructor(cfg, cbs, io) {
    this.cfg = { ...defaultConfig(), ...cfg };
    const c = this.cfg;
    if (!c.token || !c.deviceId || c.deviceId.length > 64) throw new SbError('EINVAL', 'token and deviceId are required');
    if (!io || !io.connect || !io.close || !io.randBytes) throw new SbError('EINVAL', 'io needs connect, close, randBytes');
    if (!(c.windowMax > 0 && c.outboxMax > 0 && c.requestsMax > 0 && c.backoffMsBase > 0 && c.backoffMsMax >= c.backoffMsBase && c.heartbeatMs > 0))
      throw new SbError('EINVAL', 'bad limits');
    const urls = Array.isArray(c.url) ? [...c.url] : [c.url];
    if (Array.isArray(c.url) && !(urls.length >= 1 && urls.length <= URLS_MAX && urls.every((u) => typeof u === 'string' && u)))
      throw new SbError('EINVAL', `url: 1 to ${URLS_MAX} non-empty strings`);
    this.cbs = cbs || {};
    this.io = io;

    this.state = State.IDLE;
    this.depth = 0;
    this.pumpNeeded = false;
    this.nowMs = 0;
    this.lastRxMs = 0;
    this.reconnectAtMs = 0;
    this.connStartedMs = 0;
    this.gapRetryAtMs = 0;
    this.backoffAttempt = 0;
    this.backoffMs = 0;
    this.restartUntilMs = 0; // a restart is expected until then
    this.offlineSinceMs = 0; // when the last connection went (or start)
    this.lastErr = null;
    this.closeCode = 0;
    this.nextRid = 0;
    this.helloRid = 0;
    this.syncRid = 0;
    this.syncInflight = false;
    this.needSync = false;
    this.syncProgress = false;
    this.probeAtMs = 0;
    this.session = null; // WELCOME's fields
    this.window = c.windowMax;
    this.bodyBytesMax = c.bodyBytesMax;
    this.heartbeatMs = c.heartbeatMs;
    this.syncLimit = c.syncLimit;

    this.convs = new Map(); // conv_id -> inbox state
    this.dirty = new Set(); // convs with an ACK or READ maybe due
    this.heldNow = 0;

    this.outbox = new Map(); // hex id -> entry, in send order
    this.byRid = new Map(); // rid of the SEND frame -> entry
    this.nInflight = 0;
    this.nUploading = 0; // attachments being uploaded (io.upload)
    this.failed = new Map(); // hex id -> entry, for retry()

    this.reqs = new Map(); // rid -> { kind, deadlineMs }
    this.outq = [];

    this.urls = urls; // in the configured order
    this.urlOrder = urls.map((u, i) => i); // as tried; shuffled at start
    this.urlPos = 0; // in urlOrder: the URL in use, or next
    this.roundFails = 0; // attempts failed since the round began
    this.readyMs = 0; // when the connection became READY

    this.st = {
      surfaced: 0, // messages handed to onMessage
      duplicates: 0, // dropped: already surfaced or held
      held: 0, // held behind a gap
      heldDropped: 0, // not held (buffer full): SYNC fetches them
      skipped: 0, // older than initialWindow on a new conversation
      dropped: 0, // conversation table full
      syncs: 0,
      connects: 0,
      readies: 0,
      disconnects: 0,
      urlSwitches: 0, // attempts on the next URL without a backoff
      sends: 0,
      uploads: 0,
      uploadRetries: 0,
      sendFrames: 0,
      resends: 0,
      sendAcks: 0,
      sendFailed: 0,
      acks: 0,
      protocolErrors: 0,
    };
  }

  // ---- small helpers ------------------------------------------------------

  newRid() {
    this.nextRid = (this.nextRid + 1) >>> 0;
    if (this.nextRid === 0) this.nextRid = 1;
    return this.nextRid;
  }

  randU32() {
    const b = this.io.randBytes(4);
    return ((b[0] | (b[1] << 8) | (b[2] << 16)) >>> 0) + b[3] * 0x1000000;
  }

  connected() {
    return this.state === State.CONNECTING || this.state === State.HELLO_SENT || this.state === State.READY;
  }

  setState(st, err) {
    this.state = st;
    if (this.cbs.onState) this.cbs.onState(st, err || null);
  }

  emit(frame) {
    this.outq.push(frame);
  }

  // ---- conversations --------------------------------------------------------

  conv(convId, create) {
    let c = this.convs.get(convId);
    if (c || !create) return c;
    if (this.convs.size >= this.cfg.convsMax) return undefined;
    c = {
      convId,
      surfaced: 0, // highest contiguous seq surfaced
      acked: 0, // last ACK written
      readSeq: 0, // READ asked for by the app
      readSent: 0, // READ written
      peerDelivered: 0, // max over the other participants
      peerRead: 0,
      held: [], // ascending seq, all > surfaced + 1
      placed: false, // the cursor was set (setCursor, initialWindow)
      track: [], // SENT sends watched for receipts, ascending seq
      trackDelivered: 0, // how many leading track entries are DELIVERED
    };
    this.convs.set(convId, c);
    return c;
  }

  markDirty(c) {
    this.pumpNeeded = true;
    this.dirty.add(c);
  }

  surface(c, m) {
    c.surfaced = m.seq;
    this.st.surfaced++;
    this.syncProgress = true;
    this.markDirty(c);
    if (this.cbs.onMessage) this.cbs.onMessage(m);
  }

  heldDrain(c) {
    while (c.held.length && c.held[0].seq <= c.surfaced + 1 && this.state !== State.STOPPED) {
      const m = c.held.shift();
      this.heldNow--;
      if (m.seq === c.surfaced + 1) this.surface(c, m);
    }
  }

  heldDropThrough(c, seq) {
    let n = 0;
    while (n < c.held.length && c.held[n].seq <= seq) n++;
    if (n) {
      c.held.splice(0, n);
      this.heldNow -= n;
    }
  }

  hold(c, m) {
    const i = lowerBound(c.held, m.seq);
    if (i < c.held.length && c.held[i].seq === m.seq) {
      this.st.duplicates++;
      return;
    }
    if (this.heldNow >= this.cfg.heldMax) {
      this.st.heldDropped++;
      this.needSync = true;
      this.pumpNeeded = true;
      return;
    }
    // The missing ones may be pushes still on their way (in a cluster, a
    // SEND_ACK can pass another node's message): SYNC if they do not come
    // within gapWaitMs.
    if (!this.cfg.gapWaitMs) {
      this.needSync = true;
      this.pumpNeeded = true;
    } else if (!this.gapRetryAtMs && !this.syncInflight) {
      this.gapRetryAtMs = this.nowMs + this.cfg.gapWaitMs;
    }
    c.held.splice(i, 0, m);
    this.heldNow++;
    this.st.held++;
  }

  // The one way into the inbox: PUSH, SYNC_RESP and own SEND_ACKs.
  inboxOffer(m) {
    if (!m.conv_id || !m.seq) {
      this.st.protocolErrors++;
      return;
    }
    const c = this.conv(m.conv_id, true);
    if (!c) {
      this.st.dropped++;
      return;
    }
    if (m.seq <= c.surfaced) {
      this.st.duplicates++;
      return;
    }
    if (m.seq === c.surfaced + 1) {
      this.surface(c, m);
      this.heldDrain(c);
    } else {
      this.hold(c, m);
    }
  }

  // A conversation this device has never seen starts initialWindow
  // messages before its newest; older ones are HISTORY's. "Never seen"
  // includes one known only by pushes held behind the gap from 0 (e.g. an
  // agent's "joined" event pushed between WELCOME and the SYNC answer):
  // nothing of it surfaced and no cursor was set.
  conversationSeen(conv) {
    if (!conv || !conv.conv_id) return;
    const known = this.convs.get(conv.conv_id);
    if ((!known || (known.surfaced === 0 && !known.placed)) && this.cfg.initialWindow > 0 && conv.last_seq > this.cfg.initialWindow) {
      const c = known || this.conv(conv.conv_id, true);
      if (c) {
        c.surfaced = conv.last_seq - this.cfg.initialWindow;
        c.placed = true;
        this.st.skipped += c.surfaced;
        this.syncProgress = true;
        this.heldDropThrough(c, c.surfaced);
        this.heldDrain(c);
      }
    }
    if (this.cbs.onConversation) this.cbs.onConversation(conv);
  }

  // ---- outbox ---------------------------------------------------------------

  report(o, status, extra) {
    if (!this.cbs.onSendStatus) return;
    this.cbs.onSendStatus({
      clientMsgId: o.key,
      convId: o.convId,
      msgId: 0,
      seq: 0,
      serverTs: 0,
      status,
      duplicate: false,
      err: null,
      text: '',
      ...extra,
    });
  }

  outUnlink(o) {
    this.outbox.delete(o.key);
    if (o.rid) this.byRid.delete(o.rid);
    if (o.inflight) this.nInflight--;
    o.inflight = false;
  }

  outFail(o, err, text) {
    this.outUnlink(o);
    this.st.sendFailed++;
    this.failed.set(o.key, o);
    this.report(o, SendStatus.FAILED, { err, text: text || '' });
  }

  attemptsLeft(o) {
    return this.cfg.sendAttemptsMax === 0 || o.attempts < this.cfg.sendAttemptsMax;
  }

  sendOut(o) {
    const rid = this.newRid();
    const send = {
      client_msg_id: o.id,
      conv_id: o.convId,
      type: o.type,
      body: o.body,
      quote_seq: o.quoteSeq,
    };
    if (o.card) send.card = o.card;
    // An upload's send names it by id: the server fills in the rest.
    if (o.media) send.media = o.upload ? { id: o.media.id } : o.media;
    this.emit({ rid, send });
    if (o.rid) this.byRid.delete(o.rid);
    o.rid = rid;
    this.byRid.set(rid, o);
    o.inflight = true;
    o.sentMs = this.nowMs;
    if (o.attempts > 0) this.st.resends++;
    o.attempts++;
    this.nInflight++;
    this.st.sendFrames++;
  }

  // Receipts: DELIVERED and READ of SENT messages, by binary search over
  // the conversation's seq-sorted track list.
  trackAdvance(c) {
    const t = c.track;
    const nd = Math.min(t.length, lowerBound(t, c.peerDelivered + 1));
    for (let i = c.trackDelivered; i < nd; i++) {
      if (RANK[t[i].status] < RANK.delivered) {
        t[i].status = SendStatus.DELIVERED;
        this.reportTrack(t[i], SendStatus.DELIVERED);
      }
    }
    if (nd > c.trackDelivered) c.trackDelivered = nd;
    const nr = Math.min(t.length, lowerBound(t, c.peerRead + 1));
    for (let i = 0; i < nr; i++) this.reportTrack(t[i], SendStatus.READ);
    if (nr) {
      t.splice(0, nr);
      c.trackDelivered = Math.max(0, c.trackDelivered - nr);
    }
  }

  reportTrack(t, status) {
    if (!this.cbs.onSendStatus) return;
    this.cbs.onSendStatus({
      clientMsgId: t.key,
      convId: t.convId,
      msgId: t.msgId,
      seq: t.seq,
      serverTs: t.serverTs,
      status,
      duplicate: false,
      err: null,
      text: '',
    });
  }

  trackAdd(c, t) {
    if (this.cfg.trackMax === 0) return;
    const i = lowerBound(c.track, t.seq);
    if (i < c.track.length && c.track[i].seq === t.seq) return;
    c.track.splice(i, 0, t);
    if (i < c.trackDelivered) c.trackDelivered++;
    if (c.track.length > this.cfg.trackMax) {
      // Forget the oldest: no more receipts for it.
      c.track.shift();
      if (c.trackDelivered) c.trackDelivered--;
    }
  }

  // ---- connection -------------------------------------------------------------

  // Everything that belongs to one connection is dropped; sends in flight
  // go back to the queue. No callbacks: see failRequests().
  connReset() {
    this.offlineSinceMs = this.nowMs;
    this.outq.length = 0;
    for (const o of this.outbox.values()) o.inflight = false;
    this.nInflight = 0;
    this.syncInflight = false;
    this.st.disconnects++;
  }

  failRequests(err) {
    const reqs = [...this.reqs.keys()];
    this.reqs.clear();
    for (const rid of reqs) if (this.cbs.onResponse) this.cbs.onResponse(rid, err, null);
  }

  beginConnect() {
    if (this.st.connects === 0) this.orderUrls();
    this.st.connects++;
    this.connStartedMs = this.nowMs;
    this.closeCode = 0;
    this.setState(State.CONNECTING, null);
    if (this.state === State.CONNECTING) this.io.connect();
  }

  // Full jitter: uniform in [0, min(max, base * 2^attempt)], and at most
  // restartBackoffMsMax while a restart is expected; attempt counts the
  // rounds of the URL list that failed since the last WELCOME, except
  // those that met the restart's cap: a restart that outlasts its window
  // goes on from that cap (doubling), not from the many attempts made
  // under it.
  scheduleBackoff(err) {
    let cap = this.cfg.backoffMsBase;
    for (let i = 0; i < this.backoffAttempt && cap < this.cfg.backoffMsMax; i++) cap *= 2;
    if (cap > this.cfg.backoffMsMax) cap = this.cfg.backoffMsMax;
    const capped = this.cfg.restartBackoffMsMax > 0 && this.nowMs < this.restartUntilMs && cap >= this.cfg.restartBackoffMsMax;
    if (capped) cap = this.cfg.restartBackoffMsMax;
    this.backoffMs = Math.floor(((cap + 1) * this.randU32()) / 0x100000000);
    if (!capped) this.backoffAttempt++;
    this.reconnectAtMs = this.nowMs + this.backoffMs;
    this.lastErr = err;
    this.setState(State.BACKOFF, err);
  }

  // A connection ended or an attempt failed, not for good (the state is
  // BACKOFF): on to the next URL of the list, at once while the round has
  // URLs left to try, else after a backoff. fresh: the end says nothing
  // against the node (it was READY long enough, or it drains), so a new
  // round begins with it. See "Several servers" at ClientCore.
  reconnectNext(err, fresh) {
    if (fresh) this.roundFails = 0;
    this.roundFails++;
    this.urlPos = (this.urlPos + 1) % this.urls.length;
    if (this.roundFails >= this.urls.length) {
      this.roundFails = 0;
      this.scheduleBackoff(err);
      return;
    }
    this.st.urlSwitches++;
    this.backoffMs = 0;
    this.reconnectAtMs = this.nowMs;
    this.lastErr = err;
    this.setState(State.BACKOFF, err);
    if (this.state === State.BACKOFF) this.beginConnect();
  }

  // Whether the connection ending now (in state st) was READY long enough
  // to count as a success.
  wasStable(st) {
    return st === State.READY && this.nowMs - this.readyMs >= STABLE_MS;
  }

  // The order in which the URLs are tried: as listed, or shuffled
  // (Fisher-Yates) once per client, at its first attempt.
  orderUrls() {
    this.urlOrder = this.urls.map((u, i) => i);
    this.urlPos = 0;
    if (this.cfg.urlsInOrder) return;
    for (let i = this.urls.length - 1; i > 0; i--) {
      const j = Math.floor(((i + 1) * this.randU32()) / 0x100000000);
      [this.urlOrder[i], this.urlOrder[j]] = [this.urlOrder[j], this.urlOrder[i]];
    }
  }

  // The core drops the connection: io.close, then on to the next URL (at
  // once or after a backoff) or stop.
  dropConn(err, code, fatal) {
    const fresh = this.wasStable(this.state);
    this.state = fatal ? State.STOPPED : State.BACKOFF;
    this.io.close(code);
    this.connReset();
    if (fatal) {
      this.lastErr = err;
      this.setState(State.STOPPED, err);
    } else {
      this.reconnectNext(err, fresh);
    }
    this.failRequests('ECONNRESET');
  }

  // ---- frames in ----------------------------------------------------------------

  onWelcome(w) {
    if (this.state !== State.HELLO_SENT) {
      this.st.protocolErrors++;
      return;
    }
    this.session = { ...w };
    const c = this.cfg;
    this.window = c.windowMax;
    if (w.pending_sends_max && w.pending_sends_max < this.window) this.window = w.pending_sends_max;
    if (this.window === 0) this.window = 1;
    this.bodyBytesMax = w.body_bytes_max || c.bodyBytesMax;
    this.heartbeatMs = w.heartbeat_ms || c.heartbeatMs;
    this.syncLimit = c.syncLimit || w.sync_page_max;
    if (w.sync_page_max && this.syncLimit > w.sync_page_max) this.syncLimit = w.sync_page_max;
    this.backoffAttempt = 0;
    this.readyMs = this.nowMs;
    this.lastErr = null;
    this.st.readies++;
    this.needSync = !c.syncDisabled;
    this.gapRetryAtMs = 0;
    this.probeAtMs = 0;
    // The last ACKs may have been lost with the connection: ACK again.
    for (const cv of this.convs.values()) {
      if (cv.surfaced) cv.acked = 0;
      if (cv.readSeq) cv.readSent = 0;
      if (cv.surfaced || cv.readSeq) this.markDirty(cv);
    }
    this.pumpNeeded = true;
    this.setState(State.READY, null);
  }

  onSendAck(a) {
    const key = a.client_msg_id && a.client_msg_id.length === MSG_ID_BYTES ? toHex(a.client_msg_id) : '';
    const o = this.outbox.get(key);
    if (!o) return; // an answer to a resend already answered
    this.outUnlink(o);
    this.pumpNeeded = true;
    this.st.sendAcks++;
    const convId = a.conv_id || o.convId;
    this.report(o, SendStatus.SENT, {
      convId,
      msgId: a.msg_id,
      seq: a.seq,
      serverTs: a.server_ts,
      duplicate: !!a.duplicate,
    });
    // The sender gets no PUSH of its own message: surface it here.
    const me = this.session ? this.session.user_id : '';
    this.inboxOffer({
      msg_id: a.msg_id,
      conv_id: convId,
      seq: a.seq,
      sender: me,
      sender_device: this.cfg.deviceId,
      client_msg_id: o.id,
      type: o.type,
      // The stored body when the server changed it (masked words);
      // SEND_ACK carries it only then.
      body: a.body || o.body,
      quote_seq: o.quoteSeq,
      tags: [],
      server_ts: a.server_ts,
      lang: this.cfg.locale,
      quote: null,
      recalled: false,
      event: null,
      quick_replies: [],
      card: o.card || null,
      media: o.media || null,
    });
    const c = this.conv(convId, true);
    if (c && a.seq) {
      const t = { key: o.key, convId, seq: a.seq, msgId: a.msg_id, serverTs: a.server_ts, status: SendStatus.SENT };
      this.trackAdd(c, t);
      this.trackAdvance(c);
    }
  }

  onErrorFrame(rid, e) {
    const err = e.code || 'ERR_INTERNAL';
    if (this.state === State.HELLO_SENT && (rid === this.helloRid || rid === 0)) {
      const fatal = err === 'ERR_BAD_TOKEN' || err === 'ERR_TOKEN_EXPIRED';
      this.dropConn(err, Close.NORMAL, fatal);
      return;
    }
    let o;
    if (e.client_msg_id && e.client_msg_id.length === MSG_ID_BYTES) o = this.outbox.get(toHex(e.client_msg_id));
    else if (rid) o = this.byRid.get(rid);
    if (o) {
      if (!RETRYABLE.has(err) || !this.attemptsLeft(o)) {
        this.outFail(o, err, e.text);
        return;
      }
      if (o.inflight) this.nInflight--;
      o.inflight = false;
      const delay = Math.min(100 * 2 ** Math.min(o.attempts, 10), this.cfg.sendTimeoutMs);
      o.notBeforeMs = this.nowMs + delay;
      this.pumpNeeded = true;
      return;
    }
    if (rid && rid === this.syncRid && this.syncInflight) {
      this.syncInflight = false;
      this.gapRetryAtMs = this.nowMs + this.cfg.gapRetryMs;
      return;
    }
    if (rid && this.reqs.has(rid)) {
      this.reqs.delete(rid);
      if (this.cbs.onResponse) this.cbs.onResponse(rid, err, { rid, error: e, body: 'error' });
      return;
    }
    if (this.cbs.onError) this.cbs.onError(err, e.text);
  }

  onSyncResp(rid, r) {
    const mine = this.syncInflight && rid === this.syncRid;
    if (!mine) this.st.protocolErrors++;
    this.syncProgress = false;
    for (const conv of r.convs || []) this.conversationSeen(conv);
    for (const m of r.messages || []) {
      if (this.state !== State.READY) return; // stopped in a callback
      this.inboxOffer(m);
    }
    if (!mine) return;
    this.syncInflight = false;
    this.pumpNeeded = true;
    // Another page, unless this one moved no cursor: asking again with the
    // same cursors would loop.
    if (r.more && this.syncProgress) {
      this.needSync = true;
      return;
    }
    // A gap that outlives a full SYNC: the message may not be visible yet;
    // try again later rather than loop.
    this.needSync = false;
    this.gapRetryAtMs = this.heldNow > 0 ? this.nowMs + this.cfg.gapRetryMs : 0;
    if (this.cbs.onSynced) this.cbs.onSynced();
  }

  onReadNotify(r) {
    const me = this.session ? this.session.user_id : '';
    if (r.user_id !== me) {
      const c = this.conv(r.conv_id, true);
      if (c) {
        if (r.delivered_seq > c.peerDelivered) c.peerDelivered = r.delivered_seq;
        if (r.read_seq > c.peerRead) c.peerRead = r.read_seq;
        if (c.peerRead > c.peerDelivered) c.peerDelivered = c.peerRead;
        this.trackAdvance(c);
      }
    }
    if (this.cbs.onReceipt) this.cbs.onReceipt(r);
  }

  // ---- frames out ------------------------------------------------------------------

  sendSync() {
    const cursors = [];
    for (const c of this.convs.values()) cursors.push({ conv_id: c.convId, seq: c.surfaced });
    const rid = this.newRid();
    this.emit({ rid, sync: { cursors, limit: this.syncLimit } });
    this.syncRid = rid;
    this.syncInflight = true;
    this.needSync = false;
    this.gapRetryAtMs = 0;
    this.st.syncs++;
  }

  // ACK and READ for every conversation that has one due.
  flushReceipts() {
    for (const c of this.dirty) {
      if (c.surfaced > c.acked) {
        this.emit({ rid: 0, ack: { conv_id: c.convId, seq: c.surfaced } });
        c.acked = c.surfaced;
        this.st.acks++;
      }
      if (c.readSeq > c.readSent) {
        this.emit({ rid: 0, read: { conv_id: c.convId, seq: c.readSeq } });
        c.readSent = c.readSeq;
      }
    }
    this.dirty.clear();
  }

  // Produces the frames that are due: SYNC, ACKs and READs, SENDs; and
  // starts the uploads due (io.upload), one at a time.
  pump() {
    this.pumpNeeded = false;
    if (this.state !== State.READY) return;
    if (this.needSync && !this.syncInflight && !this.cfg.syncDisabled) this.sendSync();
    this.flushReceipts();
    if (this.io.upload && this.nUploading < 1) {
      for (const o of this.outbox.values()) {
        if (!waitsUpload(o) || o.uploading || o.notBeforeMs > this.nowMs) continue;
        o.uploading = true;
        this.nUploading++;
        this.io.upload(o.key, o.convId, o.upload, o.media.name);
        break;
      }
    }
    if (this.nInflight >= this.window) return;
    for (const o of this.outbox.values()) {
      if (this.nInflight >= this.window) break;
      if (o.inflight || waitsUpload(o) || o.notBeforeMs > this.nowMs) continue;
      this.sendOut(o);
    }
  }

  /**
   * The answer to io.upload(key, ...): rec, the server's record of the
   * upload (id, name, mime, size, width, height, url), makes the send go
   * with it; err (a code: ERR_TOO_LARGE, ERR_INVALID, ERR_RATE_LIMITED,
   * ERR_UNAVAILABLE, ERR_STORE, ECONNRESET...) and text, the server's
   * reason, make it wait and try again (what may pass) or fail.
   */
  uploaded(key, err, rec, text, nowMs) {
    this.enter();
    this.nowMs = nowMs;
    const o = this.outbox.get(key);
    if (o && o.uploading) {
      o.uploading = false;
      this.nUploading--;
    }
    if (o && waitsUpload(o)) {
      this.pumpNeeded = true;
      if (!err && rec && /^[0-9a-f]{32}$/.test(rec.id || '')) {
        o.media = { ...o.media, ...rec };
        o.notBeforeMs = 0;
        this.st.uploads++;
        if (this.cbs.onUploaded) this.cbs.onUploaded(key);
      } else {
        err = err || 'EPROTO';
        o.attempts++;
        if (!retryable(err) || !this.attemptsLeft(o)) {
          this.outFail(o, err, text);
        } else {
          this.st.uploadRetries++;
          o.notBeforeMs = nowMs + Math.min(200 * 2 ** Math.min(o.attempts, 10), this.cfg.backoffMsMax);
        }
      }
    }
    this.leave();
  }

  /** The next frame to write as one WebSocket message, or null. Pending
   * ACKs are produced here, so one ACK per conversation covers everything
   * fed since the last pull. */
  nextFrame() {
    if (this.depth === 0 && this.pumpNeeded) this.pump();
    if (this.outq.length === 0) return null;
    return this.outq.shift();
  }

  /** Every frame due now. */
  drain() {
    const out = [];
    for (let f; (f = this.nextFrame()); ) out.push(f);
    return out;
  }

  // ---- transport events ------------------------------------------------------------

  enter() {
    this.depth++;
  }

  leave() {
    this.depth--;
  }

  /** IDLE -> CONNECTING (calls io.connect). */
  start(nowMs) {
    this.enter();
    this.nowMs = nowMs;
    this.offlineSinceMs = nowMs;
    if (this.state === State.IDLE) this.beginConnect();
    this.leave();
  }

  /** Any state -> STOPPED. When READY, the ACKs and READs due are queued
   * first (the transport writes them before the close frame). Requests
   * fail with ECONNRESET; the outbox is kept. */
  stop() {
    this.enter();
    if (this.state !== State.STOPPED) {
      const was = this.connected();
      if (this.state === State.READY) this.flushReceipts();
      const keep = this.outq.slice();
      this.state = State.STOPPED;
      if (was) {
        this.io.close(Close.NORMAL, keep);
        this.connReset();
      }
      this.setState(State.STOPPED, null);
      this.failRequests('ECONNRESET');
    }
    this.leave();
  }

  onOpen(nowMs) {
    this.enter();
    this.nowMs = nowMs;
    this.lastRxMs = nowMs;
    if (this.state === State.CONNECTING) {
      this.outq.length = 0;
      this.helloRid = this.newRid();
      this.emit({
        rid: this.helloRid,
        hello: {
          token: this.cfg.token,
          device_id: this.cfg.deviceId,
          client: this.cfg.clientName,
          protocol: 1,
          locale: this.cfg.locale,
        },
      });
      this.setState(State.HELLO_SENT, null);
    }
    this.leave();
  }

  /** Bytes were seen on the connection (a ping): it is alive. */
  onRx(nowMs) {
    this.nowMs = nowMs;
    this.lastRxMs = nowMs;
  }

  /** One decoded frame (codec.js shape); null for an undecodable one. */
  onFrame(f, nowMs) {
    this.enter();
    this.nowMs = nowMs;
    this.lastRxMs = nowMs;
    try {
      if (this.state !== State.HELLO_SENT && this.state !== State.READY) return;
      if (!f) {
        this.st.protocolErrors++;
        this.dropConn('EPROTO', Close.PROTOCOL, false);
        return;
      }
      const ready = this.state === State.READY;
      const body = f.body;
      switch (body) {
        case 'welcome':
          this.onWelcome(f.welcome);
          break;
        case 'error':
          this.onErrorFrame(f.rid, f.error);
          break;
        case 'send_ack':
          if (ready) this.onSendAck(f.send_ack);
          break;
        case 'push':
          if (!ready) break;
          for (const m of f.push.messages) {
            if (this.state !== State.READY) break; // stopped in a callback
            this.inboxOffer(m);
          }
          break;
        case 'sync_resp':
          if (ready) this.onSyncResp(f.rid, f.sync_resp);
          break;
        case 'read_notify':
          if (ready) this.onReadNotify(f.read_notify);
          break;
        case 'sync_hint':
          // Messages may have passed this device's node unseen (a
          // cluster's link was down): SYNC.
          if (ready && !this.cfg.syncDisabled) {
            this.needSync = true;
            this.pumpNeeded = true;
          }
          break;
        default:
          if (!ready || !body) break; // a frame kind newer than this schema
          if (f.rid && this.reqs.has(f.rid)) {
            this.reqs.delete(f.rid);
            if (body === 'open_resp' && f.open_resp.conv) this.conversationSeen(f.open_resp.conv);
            if (this.cbs.onResponse) this.cbs.onResponse(f.rid, null, f);
          } else if (SERVER_EVENTS.has(body)) {
            if (body === 'conv_update' && f.conv_update.conv && this.cbs.onConversation)
              this.cbs.onConversation(f.conv_update.conv);
            if (this.cbs.onEvent) this.cbs.onEvent(f);
          } else {
            this.st.protocolErrors++;
          }
      }
    } finally {
      this.leave();
    }
  }

  /** The connection is gone: err (a transport error name) or null, code
   * the WebSocket close code received (0 if none). */
  onClose(err, code, nowMs) {
    this.enter();
    this.nowMs = nowMs;
    if (this.connected()) {
      this.closeCode = code || 0;
      if (code === Close.POLICY || code === Close.NORMAL) {
        // 1008: the token was refused, reconnecting with it cannot succeed.
        // 1000: this device connected again elsewhere.
        const why = code === Close.NORMAL ? 'REPLACED' : this.lastErr === 'ERR_TOKEN_EXPIRED' ? 'ERR_TOKEN_EXPIRED' : 'ERR_BAD_TOKEN';
        this.state = State.STOPPED;
        this.connReset();
        this.lastErr = why;
        this.setState(State.STOPPED, why);
      } else {
        // 1001: the node drains (or found this connection idle); its
        // sessions move to the other nodes at once.
        const fresh = this.wasStable(this.state) || code === Close.GOING_AWAY;
        this.state = State.BACKOFF;
        this.connReset();
        if (code === Close.GOING_AWAY) this.restartUntilMs = nowMs + this.cfg.restartWindowMs;
        this.reconnectNext(err || (code ? 'ECONNRESET' : 'EPIPE'), fresh);
      }
      this.failRequests('ECONNRESET');
    }
    this.leave();
  }

  /** Timers: reconnect, timeouts, resends, liveness. Call every 50-200 ms. */
  tick(nowMs) {
    this.enter();
    this.nowMs = nowMs;
    this.pumpNeeded = true;
    if (this.state !== State.READY && this.state !== State.STOPPED) this.failOffline();
    switch (this.state) {
      case State.BACKOFF:
        if (nowMs >= this.reconnectAtMs) this.beginConnect();
        break;
      case State.CONNECTING:
      case State.HELLO_SENT:
        if (nowMs - this.connStartedMs >= this.cfg.connectTimeoutMs) this.dropConn('ETIMEDOUT', Close.NORMAL, false);
        break;
      case State.READY: {
        const quiet = nowMs - this.lastRxMs;
        if (quiet >= 3 * this.heartbeatMs) {
          this.dropConn('ETIMEDOUT', Close.GOING_AWAY, false);
          break;
        }
        // Browsers hide WebSocket pings: after a heartbeat of silence,
        // ask for something (a SYNC) so that a live server answers.
        if (quiet >= this.heartbeatMs && nowMs >= this.probeAtMs && !this.syncInflight && !this.cfg.syncDisabled) {
          this.needSync = true;
          this.probeAtMs = nowMs + this.heartbeatMs;
        }
        for (const o of this.outbox.values()) {
          if (!o.inflight || nowMs - o.sentMs < this.cfg.sendTimeoutMs) continue;
          if (!this.attemptsLeft(o)) {
            this.outFail(o, 'ETIMEDOUT', 'no SEND_ACK');
            continue;
          }
          o.inflight = false; // pump writes it again, same id
          this.nInflight--;
        }
        for (const [rid, r] of this.reqs) {
          if (nowMs < r.deadlineMs) continue;
          this.reqs.delete(rid);
          if (this.cbs.onResponse) this.cbs.onResponse(rid, 'ETIMEDOUT', null);
        }
        if (this.gapRetryAtMs && nowMs >= this.gapRetryAtMs && !this.syncInflight) {
          this.gapRetryAtMs = 0;
          if (this.heldNow > 0) this.needSync = true;
        }
        break;
      }
      default:
        break;
    }
    this.leave();
  }

  // Sends that waited offlineFailMs without a connection fail (ENOTCONN),
  // so that the sender is told rather than left with "sending".
  failOffline() {
    const limit = this.cfg.offlineFailMs;
    if (!limit) return;
    for (const o of this.outbox.values())
      if (this.nowMs - Math.max(o.queuedMs, this.offlineSinceMs) >= limit) this.outFail(o, 'ENOTCONN', 'no connection');
  }

  /** The network is back (the browser's 'online' event): reconnect now
   * rather than at the end of the backoff. */
  kick(nowMs) {
    this.enter();
    this.nowMs = nowMs;
    if (this.state === State.BACKOFF) {
      this.backoffAttempt = 0;
      this.roundFails = 0;
      this.beginConnect();
    }
    this.leave();
  }

  /** The network is gone (the browser's 'offline' event): drop the
   * connection now rather than wait for the heartbeat to notice. */
  disconnect(err, nowMs) {
    this.enter();
    this.nowMs = nowMs;
    if (this.connected()) this.dropConn(err || 'ENETDOWN', Close.GOING_AWAY, false);
    this.leave();
  }

  // A new client_msg_id: the core's clock in milliseconds (6 bytes, big
  // endian), then random bytes. Ids mostly sort in the order they are
  // made, so that the store's idempotency index, which leads with
  // client_msg_id, takes each new one at its right edge instead of on a
  // random page; the random part keeps them unique.
  newMsgId() {
    const id = new Uint8Array(MSG_ID_BYTES);
    let ms = Math.max(0, Math.floor(this.nowMs));
    for (let i = 5; i >= 0; i--) {
      id[i] = ms % 256;
      ms = Math.floor(ms / 256);
    }
    id.set(this.io.randBytes(MSG_ID_BYTES - 6), 6);
    return id;
  }

  // ---- API --------------------------------------------------------------------------

  /**
   * Queues a message (any state but STOPPED: written when READY). Returns
   * its client_msg_id as hex. Throws SbError: ESHUTDOWN, ERR_INVALID
   * (conv 0), ERR_TOO_LARGE, ERR_BAD_UTF8, ENOBUFS (outbox full).
   */
  send(convId, { type = 'MSG_TEXT', body = '', quoteSeq = 0, card = null, media = null, upload = null, ts = 0 } = {}) {
    if (this.state === State.STOPPED) throw new SbError('ESHUTDOWN');
    if (!convId) throw new SbError('ERR_INVALID', 'conv_id 0');
    if (upload && (!this.io.upload || (type !== 'MSG_IMAGE' && type !== 'MSG_FILE')))
      throw new SbError('ERR_INVALID', 'an upload goes with MSG_IMAGE or MSG_FILE');
    if (body.indexOf('\0') >= 0 || !wellFormed(body)) throw new SbError('ERR_BAD_UTF8');
    if (utf8.encode(body).length > this.bodyBytesMax) throw new SbError('ERR_TOO_LARGE');
    if (this.outbox.size >= this.cfg.outboxMax) throw new SbError('ENOBUFS', 'outbox full');
    const o = this.outEntry(this.newMsgId(), { convId, type, body, quoteSeq, card, media, upload, ts });
    this.outbox.set(o.key, o);
    this.st.sends++;
    this.pumpNeeded = true;
    this.report(o, SendStatus.SENDING);
    return o.key;
  }

  // An outbox entry; ts is the application's time of the send (shown
  // with the message until the server's comes), queuedMs the core's.
  // An attachment's entry holds its bytes (upload: a Blob, opaque to the
  // core) and media without an id until io.upload's answer gives one.
  outEntry(id, { convId, type = 'MSG_TEXT', body = '', quoteSeq = 0, card = null, media = null, upload = null, ts = 0 }) {
    return {
      id,
      key: toHex(id),
      convId,
      type,
      body,
      quoteSeq: quoteSeq || 0,
      card,
      media: upload ? { id: '', name: (upload && upload.name) || 'file', size: upload.size || 0, ...(media || {}) } : media,
      upload: upload || null,
      uploading: false,
      ts,
      rid: 0,
      inflight: false,
      sentMs: 0,
      queuedMs: this.nowMs,
      notBeforeMs: 0,
      attempts: 0,
    };
  }

  /**
   * Puts back a send this application persisted before (a reload):
   * rec.key (the client_msg_id's hex), convId, type, body, quoteSeq,
   * card, media, ts; with rec.err set it comes back FAILED with that
   * error (and rec.text), else SENDING, resent under the same id (the
   * server answers one it stored already with the original SEND_ACK).
   * Returns false for a key the core holds or a malformed record.
   */
  restore(rec) {
    if (this.state === State.STOPPED || !rec || !/^[0-9a-f]{32}$/.test(rec.key || '') || !rec.convId) return false;
    if (this.outbox.has(rec.key) || this.failed.has(rec.key)) return false;
    const o = this.outEntry(fromHex(rec.key), rec);
    if (rec.err) {
      this.failed.set(o.key, o);
      this.report(o, SendStatus.FAILED, { err: rec.err, text: rec.text || '' });
    } else {
      this.outbox.set(o.key, o);
      this.pumpNeeded = true;
      this.report(o, SendStatus.SENDING);
    }
    return true;
  }

  /** A FAILED send goes back into the outbox under the same
   * client_msg_id (the server answers a duplicate with the original
   * SEND_ACK). Returns false if there is no such failed send. */
  retry(key) {
    const o = this.failed.get(key);
    if (!o || this.state === State.STOPPED) return false;
    this.failed.delete(key);
    o.attempts = 0;
    o.notBeforeMs = 0;
    o.inflight = false;
    o.uploading = false;
    o.queuedMs = this.nowMs;
    this.outbox.set(key, o);
    this.pumpNeeded = true;
    this.report(o, SendStatus.SENDING);
    return true;
  }

  /** Forgets a FAILED send. */
  discard(key) {
    return this.failed.delete(key);
  }

  /** The send (outbox or failed) with this id, or undefined. */
  pending(key) {
    return this.outbox.get(key) || this.failed.get(key);
  }

  /**
   * A request answered by a frame with the same rid (open_resp,
   * history_resp, ok, conv_list_resp...) or by an error, through
   * cbs.onResponse(rid, err, frame). READY only. Returns the rid. Throws
   * ENOTCONN or ENOBUFS.
   */
  request(bodyName, body) {
    if (this.state !== State.READY) throw new SbError('ENOTCONN');
    if (this.reqs.size >= this.cfg.requestsMax) throw new SbError('ENOBUFS', 'too many requests');
    const rid = this.newRid();
    this.reqs.set(rid, { kind: bodyName, deadlineMs: this.nowMs + this.cfg.requestTimeoutMs });
    this.emit({ rid, [bodyName]: body });
    return rid;
  }

  /** A frame with no answer (typing): written now if READY, else
   * dropped. Returns whether it was queued. */
  notify(bodyName, body) {
    if (this.state !== State.READY) return false;
    this.emit({ rid: 0, [bodyName]: body });
    return true;
  }

  open(members, title = '', kind = 'CONV_UNSPECIFIED', desk = '') {
    if (members.length > 64) throw new SbError('ERR_INVALID', 'too many members');
    return this.request('open', { members, title, kind, desk });
  }

  history(convId, beforeSeq = 0, limit = 50) {
    if (!convId) throw new SbError('ERR_INVALID', 'conv_id 0');
    return this.request('history', { conv_id: convId, before_seq: beforeSeq, limit });
  }

  /** READ: this user has read convId through seq. Coalesced; written when
   * READY. */
  read(convId, seq) {
    if (!convId || !seq) throw new SbError('ERR_INVALID');
    const c = this.conv(convId, true);
    if (!c) throw new SbError('ENOBUFS', 'conversation table full');
    if (seq > c.readSeq) {
      c.readSeq = seq;
      this.markDirty(c);
    }
  }

  /** Asks for a SYNC loop now (one is done after every WELCOME anyway). */
  sync() {
    if (this.cfg.syncDisabled) return;
    this.needSync = true;
    this.pumpNeeded = true;
  }

  /** Restores a persisted cursor: convId has been surfaced through seq.
   * Only moves forward. */
  setCursor(convId, seq) {
    if (!convId) throw new SbError('ERR_INVALID');
    const c = this.conv(convId, true);
    if (!c) throw new SbError('ENOBUFS');
    c.placed = true;
    if (seq > c.surfaced) {
      c.surfaced = seq;
      this.heldDropThrough(c, seq);
      this.enter();
      this.heldDrain(c);
      this.leave();
      this.markDirty(c);
    }
  }

  setToken(token) {
    this.cfg.token = token;
  }

  // ---- accessors ---------------------------------------------------------------------

  /** The highest contiguous seq surfaced in convId (0 if none). */
  cursor(convId) {
    const c = this.convs.get(convId);
    return c ? c.surfaced : 0;
  }

  /** Where the other participants' devices have got to in convId. */
  peer(convId) {
    const c = this.convs.get(convId);
    return c ? { delivered: c.peerDelivered, read: c.peerRead } : { delivered: 0, read: 0 };
  }

  /** The URL the client connects to now, or will next (in BACKOFF). */
  url() {
    return this.urls[this.urlOrder[this.urlPos]];
  }

  /** Its index in the configured list (0 for a single url). */
  urlIndex() {
    return this.urlOrder[this.urlPos];
  }

  stats() {
    return {
      ...this.st,
      outboxLen: this.outbox.size,
      inflight: this.nInflight,
      heldNow: this.heldNow,
      convs: this.convs.size,
      failedNow: this.failed.size,
    };
  }
}
