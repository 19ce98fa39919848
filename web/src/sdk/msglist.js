// The messages of one conversation as a view holds them: a seq-sorted
// array of stored messages (from live delivery, history pages and this
// device's own SEND_ACKs, deduplicated by seq), followed by this device's
// sends that have no seq yet (sending or failed), in send order. Lookups,
// inserts and status updates go by binary search, never by a linear scan,
// so a conversation of 10,000 messages costs O(log n) per operation (plus
// the array move of an insert in the middle, which is native memmove).
//
// Each entry: { seq, key, msg, mine, status, order, rev }. seq 0 for the
// pending ones; key is the client_msg_id (hex) of own messages; status is
// the send status of own messages ('sending', 'sent', 'delivered',
// 'read', 'failed'); rev counts changes (renderers compare it).

function lowerBoundBy(arr, v, field) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid][field] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class MessageList {
  constructor() {
    this.items = []; // stored messages, ascending seq
    this.pending = []; // own sends without a seq, ascending order
    this.byKey = new Map(); // client_msg_id hex -> pending entry
    this.nextOrder = 0;
    this.rev = 0; // bumped on every change
    this.dirtyFrom = 0; // first view index changed since takeDirty()
  }

  /** The first view index that changed since the last call (a renderer
   * recomputes its prefix sums from there); Infinity if none. */
  takeDirty() {
    const d = this.dirtyFrom;
    this.dirtyFrom = Infinity;
    return d;
  }

  touch(i) {
    if (i < this.dirtyFrom) this.dirtyFrom = i;
  }

  get length() {
    return this.items.length + this.pending.length;
  }

  /** The entry at view position i: stored ones first, then pending. */
  at(i) {
    const n = this.items.length;
    return i < n ? this.items[i] : this.pending[i - n];
  }

  /** First index whose seq >= seq (items.length if none). */
  lowerBound(seq) {
    return lowerBoundBy(this.items, seq, 'seq');
  }

  /** Index of the message with this seq, or -1. */
  indexOf(seq) {
    const i = lowerBoundBy(this.items, seq, 'seq');
    return i < this.items.length && this.items[i].seq === seq ? i : -1;
  }

  get(seq) {
    const i = this.indexOf(seq);
    return i < 0 ? undefined : this.items[i];
  }

  firstSeq() {
    return this.items.length ? this.items[0].seq : 0;
  }

  lastSeq() {
    return this.items.length ? this.items[this.items.length - 1].seq : 0;
  }

  /**
   * Adds a stored message. Returns 'appended' (the common case: newer than
   * all, O(1)), 'inserted' (history or a late arrival), 'updated' (the
   * seq was there: fields merged, e.g. recalled) or 'duplicate'.
   */
  upsert(msg, { mine = false, status = null, key = '' } = {}) {
    const seq = msg.seq;
    const n = this.items.length;
    if (n === 0 || this.items[n - 1].seq < seq) {
      this.touch(n);
      this.items.push(this.entry(msg, mine, status, key));
      this.rev++;
      return 'appended';
    }
    const i = lowerBoundBy(this.items, seq, 'seq');
    if (i < n && this.items[i].seq === seq) {
      const e = this.items[i];
      if (msg.recalled && !e.msg.recalled) {
        this.recall(seq);
        return 'updated';
      }
      return 'duplicate';
    }
    this.touch(i);
    this.items.splice(i, 0, this.entry(msg, mine, status, key));
    this.rev++;
    return 'inserted';
  }

  entry(msg, mine, status, key) {
    return { seq: msg.seq, key, msg, mine, status, order: 0, rev: 0 };
  }

  /**
   * Adds a page of older messages (ascending). When the whole page is
   * older than what is held (segment loading), it is joined in one
   * concat; otherwise each goes in by binary search. Returns how many
   * were new.
   */
  addPage(msgs, isMine = () => false) {
    if (!msgs.length) return 0;
    const first = this.firstSeq();
    if (this.items.length === 0 || msgs[msgs.length - 1].seq < first) {
      const page = [];
      let prev = 0;
      for (const m of msgs) {
        if (m.seq <= prev) continue;
        prev = m.seq;
        const mine = isMine(m);
        page.push(this.entry(m, mine, mine ? 'sent' : null, ''));
      }
      this.touch(0);
      this.items = page.concat(this.items);
      this.rev++;
      return page.length;
    }
    let added = 0;
    for (const m of msgs) {
      const mine = isMine(m);
      const r = this.upsert(m, { mine, status: mine ? 'sent' : null });
      if (r === 'appended' || r === 'inserted') added++;
    }
    return added;
  }

  /** A send of this device, not yet stored. */
  addPending(key, msg, status = 'sending') {
    if (this.byKey.has(key)) return this.byKey.get(key);
    const e = { seq: 0, key, msg, mine: true, status, order: ++this.nextOrder, rev: 0 };
    this.touch(this.items.length + this.pending.length);
    this.pending.push(e);
    this.byKey.set(key, e);
    this.rev++;
    return e;
  }

  pendingEntry(key) {
    return this.byKey.get(key);
  }

  removePending(key) {
    const e = this.byKey.get(key);
    if (!e) return null;
    this.byKey.delete(key);
    const i = lowerBoundBy(this.pending, e.order, 'order');
    this.touch(this.items.length + i);
    if (this.pending[i] === e) this.pending.splice(i, 1);
    this.rev++;
    return e;
  }

  /**
   * A pending send got its seq (SEND_ACK): it leaves the pending tail and
   * joins the stored messages. Returns the stored entry.
   */
  promote(key, msg, status = 'sent') {
    this.removePending(key);
    this.upsert(msg, { mine: true, status, key });
    const e = this.get(msg.seq);
    if (e && !e.key) e.key = key;
    return e;
  }

  /** Sets the send status of a pending send (by key) or of a stored own
   * message (by seq, binary search). Statuses only move forward, except
   * failed -> sending (retry). Returns the entry changed, or null. */
  setStatus(key, seq, status) {
    let e = seq ? this.get(seq) : this.byKey.get(key);
    if (!e && key) e = this.byKey.get(key);
    if (!e) return null;
    const rank = { sending: 0, sent: 1, delivered: 2, read: 3 };
    const retry = e.status === 'failed' && status === 'sending';
    if (!retry && e.status && status !== 'failed' && rank[status] <= rank[e.status]) return null;
    e.status = status;
    e.rev++;
    this.rev++;
    return e;
  }

  /** Marks the message seq recalled (a RECALL event): its body is gone
   * from the list, and the messages quoting it render again (their quote
   * shows "recalled" instead of the text). */
  recall(seq) {
    const e = this.get(seq);
    if (!e || e.msg.recalled) return null;
    e.msg = { ...e.msg, recalled: true, body: '', card: null, media: null };
    e.rev++;
    // Quotes point back only: a linear pass over what follows, once per
    // recall (rare), never per frame.
    for (let i = this.lowerBound(seq + 1); i < this.items.length; i++) {
      const q = this.items[i];
      if (q.msg.quote_seq !== seq) continue;
      if (q.msg.quote) q.msg = { ...q.msg, quote: { ...q.msg.quote, recalled: true, body: '' } };
      q.rev++;
    }
    this.rev++;
    return e;
  }

  /** Sets the tags of the message seq. */
  setTags(seq, tags) {
    const e = this.get(seq);
    if (!e) return null;
    e.msg = { ...e.msg, tags };
    e.rev++;
    this.rev++;
    return e;
  }

  /** Own stored messages with from < seq <= to, by binary search: for
   * receipts moving a conversation's delivered or read mark. */
  ownBetween(from, to) {
    const out = [];
    for (let i = this.lowerBound(from + 1); i < this.items.length && this.items[i].seq <= to; i++)
      if (this.items[i].mine) out.push(this.items[i]);
    return out;
  }
}
