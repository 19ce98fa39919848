// A windowed message list: only the messages near the viewport are in the
// DOM (a few dozen, whatever the conversation's length); the rest are
// heights in a prefix-sum array. It renders when the page asks (once per
// animation frame, see frameBatcher) and:
//   - keeps the message at the top of the view exactly where it is when
//     older pages are added above it or heights change (anchoring);
//   - sticks to the bottom while the reader is there;
//   - calls onTop() when a sentinel at the top comes into view
//     (IntersectionObserver: segment loading of older history);
//   - calls onSeen(entry) when a message is at least half visible
//     (IntersectionObserver: read receipts);
//   - jumps to a seq by binary search and prefix sums (jumpTo).
// Heights are measured after render (one layout read per frame) and
// re-measured by a ResizeObserver (images loading, fonts).

function lowerBound(arr, v) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function entryKey(e) {
  return e.seq ? `s${e.seq}` : `p${e.key}`;
}

export class VirtualList {
  /**
   * @param {HTMLElement} scroller  the scrolling element (overflow-y: auto)
   * @param {object} o  renderItem(entry) -> HTMLElement, estimate (px),
   *   overscan (px), onTop(), onSeen(entry), onScroll()
   */
  constructor(scroller, o) {
    this.scroller = scroller;
    this.o = { estimate: 64, overscan: 800, ...o };
    this.list = null;
    this.content = document.createElement('div');
    this.content.className = 'vl-content';
    this.sentinel = document.createElement('div');
    this.sentinel.className = 'vl-sentinel';
    this.content.append(this.sentinel);
    scroller.append(this.content);
    this.heights = new Map(); // key -> measured px
    this.offsets = new Float64Array(1); // offsets[i]: top of item i; [n] total
    this.keys = [];
    this.layoutRev = -1;
    this.rendered = new Map(); // key -> { el, rev, entry }
    this.stick = true;
    this.measureDirty = false;
    this.measureFrom = Infinity;
    this.stats = { renders: 0, maxRendered: 0, lastRenderMs: 0 };

    this.topObserver = new IntersectionObserver(
      (es) => {
        if (es.some((e) => e.isIntersecting) && this.o.onTop) this.o.onTop();
      },
      { root: scroller, rootMargin: '600px 0px 0px 0px' },
    );
    this.topObserver.observe(this.sentinel);
    this.seenObserver = new IntersectionObserver(
      (es) => {
        for (const e of es) {
          if (!e.isIntersecting) continue;
          const r = this.rendered.get(e.target.dataset.key);
          if (r && this.o.onSeen) this.o.onSeen(r.entry);
        }
      },
      { root: scroller, threshold: 0.5 },
    );
    this.resizeObserver = new ResizeObserver((es) => {
      for (const e of es) {
        const key = e.target.dataset.key;
        const hgt = e.target.offsetHeight;
        if (hgt && this.heights.get(key) !== hgt) {
          this.heights.set(key, hgt);
          this.remeasured(key);
        }
      }
      if (this.measureDirty && this.o.onResize) this.o.onResize();
    });
    scroller.addEventListener('scroll', () => {
      this.stick = this.atBottom();
      if (this.o.onScroll) this.o.onScroll();
    });
  }

  setList(list) {
    for (const r of this.rendered.values()) this.drop(r);
    this.rendered.clear();
    this.list = list;
    if (list) list.takeDirty();
    this.layoutRev = -1;
    this.measureFrom = Infinity;
    this.stick = true;
    this.keys = [];
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  height(key) {
    return this.heights.get(key) ?? this.o.estimate;
  }

  // Prefix sums over the list, recomputed from the first index that
  // changed (the list's dirty mark, or the first re-measured item): a
  // burst appended at the end costs O(burst), not O(conversation).
  layout() {
    const l = this.list;
    const n = l ? l.length : 0;
    let from = l ? Math.min(l.takeDirty(), this.measureFrom) : 0;
    if (this.layoutRev === -1) from = 0;
    from = Math.max(0, Math.min(from, this.keys.length, n));
    if (this.offsets.length < n + 1) {
      const o = new Float64Array(Math.max(n + 1, this.offsets.length * 2));
      o.set(this.offsets.subarray(0, from + 1));
      this.offsets = o;
    }
    const keys = this.keys;
    keys.length = n;
    let y = this.offsets[from] || 0;
    if (from === 0) y = 0;
    for (let i = from; i < n; i++) {
      const k = entryKey(l.at(i));
      keys[i] = k;
      this.offsets[i] = y;
      y += this.heights.get(k) ?? this.o.estimate;
    }
    this.offsets[n] = y;
    this.layoutRev = l ? l.rev : -1;
    this.measureDirty = false;
    this.measureFrom = Infinity;
    this.content.style.height = `${y}px`;
  }

  // A height changed: the prefix sums are stale from that item on.
  remeasured(key) {
    const i = this.list ? this.keyIndex(key) : 0;
    this.measureFrom = Math.min(this.measureFrom, i < 0 ? 0 : i);
    this.measureDirty = true;
  }

  total() {
    return this.offsets[this.keys.length] || 0;
  }

  /** Index of the item at pixel y (binary search on the prefix sums). */
  indexAt(y) {
    const n = this.keys.length;
    if (n === 0) return 0;
    const i = lowerBound(this.offsets.subarray(0, n + 1), y + 0.5) - 1;
    return Math.max(0, Math.min(n - 1, i));
  }

  // The item at the top of the view and its distance from the top edge.
  anchor() {
    if (!this.keys.length) return null;
    const top = this.scroller.scrollTop;
    const i = this.indexAt(top);
    return { key: this.keys[i], delta: this.offsets[i] - top };
  }

  /**
   * Renders the window. Call once per animation frame after data or
   * scroll changes. opts.forceBottom scrolls to the newest.
   */
  update(opts = {}) {
    const t0 = performance.now();
    if (!this.list) return;
    const stick = opts.forceBottom || this.stick;
    const anchor = stick ? null : this.anchor();
    if (this.layoutRev !== this.list.rev || this.measureDirty) this.layout();
    if (stick) this.scroller.scrollTop = this.total();
    else if (anchor) this.restore(anchor);
    this.renderWindow();
    // Measure what was just rendered (one layout read), then fix the
    // prefix sums and keep the anchor in place.
    let changed = false;
    for (const [key, r] of this.rendered) {
      if (r.measured) continue;
      r.measured = true;
      const hgt = r.el.offsetHeight;
      if (hgt && this.heights.get(key) !== hgt) {
        this.heights.set(key, hgt);
        this.remeasured(key);
        changed = true;
      }
    }
    if (changed) {
      const a2 = stick ? null : anchor && this.rendered.has(anchor.key) ? anchor : this.anchor();
      this.layout();
      if (stick) this.scroller.scrollTop = this.total();
      else if (a2) this.restore(a2);
      this.renderWindow();
    }
    this.stick = stick ? true : this.atBottom();
    this.stats.renders++;
    this.stats.lastRenderMs = performance.now() - t0;
    this.stats.maxRendered = Math.max(this.stats.maxRendered, this.rendered.size);
  }

  restore(a) {
    const i = this.keyIndex(a.key);
    if (i >= 0) this.scroller.scrollTop = this.offsets[i] - a.delta;
  }

  // Index of a key: by seq (binary search) for stored messages, else in
  // the short pending tail.
  keyIndex(key) {
    if (key[0] === 's') {
      const i = this.list.indexOf(Number(key.slice(1)));
      return i;
    }
    const n = this.list.items.length;
    for (let j = 0; j < this.list.pending.length; j++) if (`p${this.list.pending[j].key}` === key) return n + j;
    return -1;
  }

  renderWindow() {
    const n = this.keys.length;
    const top = this.scroller.scrollTop;
    const bottom = top + this.scroller.clientHeight;
    const first = n ? this.indexAt(Math.max(0, top - this.o.overscan)) : 0;
    const last = n ? this.indexAt(bottom + this.o.overscan) : -1;
    const want = new Set();
    for (let i = first; i <= last; i++) {
      const e = this.list.at(i);
      const key = this.keys[i];
      want.add(key);
      let r = this.rendered.get(key);
      if (r && (r.rev !== e.rev || r.entry !== e)) {
        this.drop(r);
        this.rendered.delete(key);
        r = null;
      }
      if (!r) {
        const el = this.o.renderItem(e);
        el.dataset.key = key;
        el.classList.add('vl-item');
        r = { el, rev: e.rev, entry: e, measured: false };
        this.rendered.set(key, r);
        this.content.append(el);
        this.seenObserver.observe(el);
        this.resizeObserver.observe(el);
      }
      const y = this.offsets[i];
      if (r.y !== y) {
        r.el.style.transform = `translateY(${y}px)`;
        r.y = y;
      }
    }
    for (const [key, r] of this.rendered) {
      if (!want.has(key)) {
        this.drop(r);
        this.rendered.delete(key);
      }
    }
  }

  drop(r) {
    this.seenObserver.unobserve(r.el);
    this.resizeObserver.unobserve(r.el);
    r.el.remove();
  }

  /** Scrolls so that seq is in view (a third from the top) and renders.
   * Returns its element, or null if seq is not in the list. */
  jumpTo(seq) {
    const i = this.list.indexOf(seq);
    if (i < 0) return null;
    if (this.layoutRev !== this.list.rev || this.measureDirty) this.layout();
    this.stick = false;
    this.scroller.scrollTop = Math.max(0, this.offsets[i] - this.scroller.clientHeight / 3);
    const key = this.keys[i];
    this.update();
    // Heights measured on the way may have moved it: settle on it.
    const j = this.list.indexOf(seq);
    this.scroller.scrollTop = Math.max(0, this.offsets[j] - this.scroller.clientHeight / 3);
    this.renderWindow();
    this.stick = this.atBottom();
    const r = this.rendered.get(key);
    return r ? r.el : null;
  }

  /** The element of seq if rendered. */
  elementOf(seq) {
    const r = this.rendered.get(`s${seq}`);
    return r ? r.el : null;
  }
}
