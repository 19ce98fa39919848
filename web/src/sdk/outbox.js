// Where a page keeps its unsent messages across reloads and closed tabs:
// one IndexedDB database per user, one record per send, keyed by its
// client_msg_id (hex). The client writes a record when a message is
// queued or fails and deletes it once the server has stored it
// (client.js, persist); at start, restoreOutbox() puts the records back
// into the core, which sends them again under the same ids, so a message
// the server stored before the reload is not stored twice (the server
// keeps (sender, client_msg_id) unique).
//
// A record: { key, convId, type, body, quoteSeq, card, media, ts, err,
// text } (err set: the send failed with it).
//
// An IndexedDB write completes after the call that makes it, and a page
// that goes away first (a reload, a closed tab) aborts it: the send typed
// just before would be lost with it. The records whose write has not
// completed are therefore also written, at once, to localStorage when the
// page goes away (pagehide), and load() takes them back from there. A
// record that holds a file's bytes (upload: a Blob, not yet uploaded)
// cannot go there and is not kept in that case.

const STORE = 'outbox';

export class IdbOutbox {
  /** @param {string} name the database's name (one per user) */
  constructor(name, idb = globalThis.indexedDB, win = globalThis) {
    this.name = name;
    this.idb = idb;
    this.db = null;
    this.unsaved = new Map(); // key -> record whose put has not completed
    this.spare = win && win.localStorage ? win.localStorage : null;
    this.spareKey = `${name}:unsaved`;
    if (win && win.addEventListener && this.spare) win.addEventListener('pagehide', () => this.spill());
  }

  open() {
    if (!this.db)
      this.db = new Promise((resolve, reject) => {
        const rq = this.idb.open(this.name, 1);
        rq.onupgradeneeded = () => rq.result.createObjectStore(STORE, { keyPath: 'key' });
        rq.onsuccess = () => resolve(rq.result);
        rq.onerror = () => reject(rq.error);
      });
    return this.db;
  }

  async tx(mode, fn) {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const rq = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(rq ? rq.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  /** Every record, in no particular order: those kept, and those the
   * last page wrote to localStorage as it went (kept again here). */
  async load() {
    const recs = await this.tx('readonly', (s) => s.getAll());
    const spilt = this.spilt();
    if (spilt.length === 0) return recs;
    // A spilt record is the newer (a failure written over a pending send).
    const byKey = new Map(recs.map((r) => [r.key, r]));
    for (const r of spilt) byKey.set(r.key, r);
    await Promise.all(spilt.map((r) => this.put(r)));
    this.spare.removeItem(this.spareKey);
    return [...byKey.values()];
  }

  // Writes are not awaited by the client: a failed write (quota, private
  // mode) costs the copy across a reload, never the send itself.
  put(rec) {
    this.unsaved.set(rec.key, rec);
    return this.tx('readwrite', (s) => s.put(rec))
      .then(() => {
        if (this.unsaved.get(rec.key) === rec) this.unsaved.delete(rec.key);
      })
      .catch(() => {});
  }

  del(key) {
    this.unsaved.delete(key);
    return this.tx('readwrite', (s) => s.delete(key)).catch(() => {});
  }

  /** The records in localStorage (none if it holds something else). */
  spilt() {
    let a;
    try {
      a = JSON.parse((this.spare && this.spare.getItem(this.spareKey)) || '[]');
    } catch (e) {
      return [];
    }
    return Array.isArray(a) ? a.filter((r) => r && typeof r.key === 'string') : [];
  }

  /** The records whose write has not completed, to localStorage now (the
   * page is going away). */
  spill() {
    if (this.unsaved.size === 0) return;
    const spilt = this.spilt();
    for (const r of this.unsaved.values()) if (!r.upload) spilt.push(r);
    try {
      this.spare.setItem(this.spareKey, JSON.stringify(spilt));
    } catch (e) {
      // storage full or refused: nothing more can be kept
    }
  }
}

/** The same interface in memory (tests; a page without IndexedDB keeps no outbox). */
export class MemoryOutbox {
  constructor() {
    this.recs = new Map();
  }

  async load() {
    return [...this.recs.values()].map((r) => ({ ...r }));
  }

  async put(rec) {
    this.recs.set(rec.key, { ...rec });
  }

  async del(key) {
    this.recs.delete(key);
  }
}
