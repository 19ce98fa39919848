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

const STORE = 'outbox';

export class IdbOutbox {
  /** @param {string} name the database's name (one per user) */
  constructor(name, idb = globalThis.indexedDB) {
    this.name = name;
    this.idb = idb;
    this.db = null;
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

  /** Every record, in no particular order. */
  load() {
    return this.tx('readonly', (s) => s.getAll());
  }

  // Writes are not awaited by the client: a failed write (quota, private
  // mode) costs the copy across a reload, never the send itself.
  put(rec) {
    return this.tx('readwrite', (s) => s.put(rec)).catch(() => {});
  }

  del(key) {
    return this.tx('readwrite', (s) => s.delete(key)).catch(() => {});
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
