// A windowed message list: only the messages near the viewport are in the
// DOM (a few dozen, whatever the conversation's length); the rest are
// heights in a prefix-sum array. It renders when the page asks (once per
// animation frame, see frameBatcher) and:
//   - keeps the message at the top of the view exactly where it is when
//     older pages are added above it or heights change (anchoring);
//   - sticks to the bottom while the reader is there;
//   - calls onTop() when a sentinel at the top comes into view
//     (IntersectionObserver: segment loading of older history), and
//     after placing the list within that margin of the top (the observer
//     reports changes only: a sentinel that stays in view while a page
//     loads, or that was in view before the list came, is reported once);
//   - calls onSeen(entry) when a message is at least half visible
//     (IntersectionObserver: read receipts);
//   - jumps to a seq by binary search and prefix sums (jumpTo), or brings
//     an index into view for the keyboard (reveal);
//   - keeps the rendered items in the DOM in list order (reading order
//     and Tab order follow the conversation);
//   - renders an item again when its entry changes (rev) or when what it
//     shows of its neighbours does (flags(i): a date separator above it,
//     the sender's group it continues).
//
// A frame forces no layout. update() (in requestAnimationFrame) reads the
// scroll position while the layout is still clean, then only writes: the
// prefix sums, the window for the scroll position it computes from them,
// the scroll position. New elements are measured by the ResizeObserver,
// which runs after the frame's own layout and before paint: it reads their
// heights (free then), fixes the prefix sums and places the list and the
// scroll position (anchor or bottom) in the same frame. Reading heights
// right after inserting the elements (offsetHeight) made the browser lay
// the page out inside the script, and again after it, every frame of a
// burst. jumpTo() measures at once (a click wants its answer now).

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

// How near the top (px) older history is asked for.
const TOP_MARGIN = 600;

export class VirtualList {
  /**
   * @param {HTMLElement} scroller  the scrolling element (overflow-y: auto)
   * @param {object} o  renderItem(entry, flags) -> HTMLElement, flags(i)
   *   -> a small integer of what item i shows of its neighbours (0 when
   *   absent), estimate (px), overscan (px), stickOverscan (px above the
   *   view while stuck to the bottom), onTop(), onSeen(entry),
   *   onScroll(), onResize() (a frame is wanted: the window needs items
   *   a measurement uncovered)
   */
  constructor(scroller, o) {
    this.scroller = scroller;
    this.o = { estimate: 64, overscan: 800, stickOverscan: 120, ...o };
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
    this.rendered = new Map(); // key -> { el, rev, flags, epoch, entry, y, measured }
    this.epoch = 0; // bumped by invalidate(): every item renders again
    this.stick = true;
    this.measureDirty = false;
    this.measureFrom = Infinity;
    this.top = 0; // the scroll position as last read or written
    this.viewH = 0; // the scroller's height
    this.settle = null; // { stick, anchor }: placing left to the ResizeObserver
    this.contentH = -1;
    this.stats = { renders: 0, maxRendered: 0, lastRenderMs: 0, created: 0 };

    this.topObserver = new IntersectionObserver(
      (es) => {
        if (es.some((e) => e.isIntersecting) && this.o.onTop) this.o.onTop();
      },
      { root: scroller, rootMargin: `${TOP_MARGIN}px 0px 0px 0px` },
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
    this.resizeObserver = new ResizeObserver((es) => this.resized(es));
    this.resizeObserver.observe(scroller);
    scroller.addEventListener('scroll', () => {
      const st = scroller.scrollTop;
      if (st === this.top) return; // our own write: the window is rendered
      this.top = st;
      this.stick = this.atBottom();
      if (this.o.onScroll) this.o.onScroll();
    });
  }

  /** Every item renders again at the next update (what renderItem shows
   * changed for all of them: a search highlight). */
  invalidate() {
    this.epoch++;
  }

  setList(list) {
    for (const r of this.rendered.values()) this.drop(r);
    this.rendered.clear();
    this.list = list;
    if (list) list.takeDirty();
    this.layoutRev = -1;
    this.measureFrom = Infinity;
    this.stick = true;
    this.settle = null;
    this.keys = [];
  }

  /** Whether the view is at the newest message (from the prefix sums and
   * the last scroll position: no layout). */
  atBottom() {
    return this.total() - this.top - this.viewH < 48;
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
    if (y !== this.contentH) {
      this.contentH = y;
      this.content.style.height = `${y}px`;
    }
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
    const i = this.indexAt(this.top);
    return { key: this.keys[i], delta: this.offsets[i] - this.top };
  }

  // Where the view should be: at the bottom, or with the anchor item where
  // it was (from the prefix sums).
  placeTop(stick, anchor) {
    const max = Math.max(0, this.total() - this.viewH);
    if (stick) return max;
    if (anchor) {
      const i = this.keyIndex(anchor.key);
      if (i >= 0) return Math.min(max, Math.max(0, this.offsets[i] - anchor.delta));
    }
    return Math.min(max, this.top);
  }

  // Writes the scroll position (the write lays out what is dirty; the
  // read back is then free).
  scrollTo(top) {
    if (top === this.top) return;
    this.scroller.scrollTop = top;
    this.top = this.scroller.scrollTop;
  }

  /**
   * Renders the window. Call once per animation frame after data or
   * scroll changes. opts.forceBottom scrolls to the newest.
   */
  update(opts = {}) {
    const t0 = performance.now();
    if (!this.list) return;
    // Reads first, while the layout is clean (nothing has written yet in
    // this frame): no layout is forced by them.
    this.top = this.scroller.scrollTop;
    this.viewH = this.scroller.clientHeight;
    if (this.settle) this.placeSettled(); // a measurement that never came
    const stick = opts.forceBottom || this.stick;
    const anchor = stick ? null : this.anchor();
    if (this.layoutRev !== this.list.rev || this.measureDirty) this.layout();
    const top = this.placeTop(stick, anchor);
    const created = this.renderWindow(top, stick, true);
    this.stick = stick;
    if (created) {
      // The new elements' heights come with the ResizeObserver, after
      // this frame's layout; the scroll position is set then.
      this.settle = { stick, anchor };
    } else {
      this.scrollTo(top);
      this.stick = stick || this.atBottom();
      this.placed();
    }
    this.stats.renders++;
    this.stats.lastRenderMs = performance.now() - t0;
    this.stats.maxRendered = Math.max(this.stats.maxRendered, this.rendered.size);
  }

  // The ResizeObserver: after the frame's layout, before paint. Heights of
  // new (or resized: images, fonts) items and of the scroller; then the
  // list is placed again and the scroll position set, in this frame.
  resized(es) {
    let viewChanged = false;
    for (const e of es) {
      if (e.target === this.scroller) {
        viewChanged = this.viewH !== this.scroller.clientHeight;
        this.viewH = this.scroller.clientHeight;
        continue;
      }
      const key = e.target.dataset.key;
      const r = this.rendered.get(key);
      if (!r || r.el !== e.target) continue;
      r.measured = true;
      const hgt = e.target.offsetHeight;
      if (hgt && this.heights.get(key) !== hgt) {
        this.heights.set(key, hgt);
        this.remeasured(key);
      }
    }
    if (!this.settle && !this.measureDirty && !viewChanged) return;
    this.placeSettled();
  }

  placeSettled() {
    const s = this.settle || { stick: this.stick, anchor: this.stick ? null : this.anchor() };
    this.settle = null;
    if (this.measureDirty) this.layout();
    const top = this.placeTop(s.stick, s.anchor);
    // Items only placed here: creating elements now would be measured
    // only in a later frame, so missing ones come with the next one.
    const missing = this.renderWindow(top, s.stick, false);
    this.scrollTo(top);
    this.stick = s.stick || this.atBottom();
    if (missing && this.o.onResize) this.o.onResize();
    this.placed();
  }

  // The scroll position is set (and known: no settling left).
  placed() {
    if (this.top < TOP_MARGIN && this.o.onTop) this.o.onTop();
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

  /**
   * Puts the items near [top, top + view height] in the DOM at their
   * offsets and drops the others. With create false, only places and
   * drops. Returns how many elements were created (create) or are
   * missing (not create).
   */
  renderWindow(top, stick = false, create = true) {
    const n = this.keys.length;
    const bottom = top + this.viewH;
    const above = stick ? Math.min(this.o.overscan, this.o.stickOverscan) : this.o.overscan;
    const first = n ? this.indexAt(Math.max(0, top - above)) : 0;
    const last = n ? this.indexAt(bottom + this.o.overscan) : -1;
    const want = new Set();
    let count = 0;
    // The item with the keyboard focus, if one has it: rendered again
    // (its status changed, a send got its seq), the new element takes the
    // focus over.
    const act = document.activeElement;
    const had = act && act !== this.scroller && this.content.contains(act) ? act.closest('.vl-item') : null;
    const hadEntry = had && this.rendered.has(had.dataset.key) ? this.rendered.get(had.dataset.key).entry : null;
    // The rendered items are one run of the list, in the DOM in list
    // order: a new one goes right after the one before it.
    let prev = this.sentinel;
    for (let i = first; i <= last; i++) {
      const e = this.list.at(i);
      const key = this.keys[i];
      const flags = this.o.flags ? this.o.flags(i) : 0;
      let r = this.rendered.get(key);
      if (r && (r.rev !== e.rev || r.entry !== e || r.flags !== flags || r.epoch !== this.epoch)) {
        this.drop(r);
        this.rendered.delete(key);
        r = null;
      }
      if (!r) {
        count++;
        if (!create) continue;
        const el = this.o.renderItem(e, flags);
        el.dataset.key = key;
        el.classList.add('vl-item');
        r = { el, rev: e.rev, flags, epoch: this.epoch, entry: e, measured: false, y: -1 };
        this.rendered.set(key, r);
        prev.after(el);
        this.seenObserver.observe(el);
        this.resizeObserver.observe(el);
        this.stats.created++;
      }
      prev = r.el;
      want.add(key);
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
    if (hadEntry && !had.isConnected)
      for (const r of this.rendered.values())
        if ((hadEntry.seq && r.entry.seq === hadEntry.seq) || (hadEntry.key && r.entry.key === hadEntry.key)) {
          r.el.focus({ preventScroll: true });
          break;
        }
    return count;
  }

  drop(r) {
    this.seenObserver.unobserve(r.el);
    this.resizeObserver.unobserve(r.el);
    r.el.remove();
  }

  // Heights of the rendered items not measured yet, read now (forces a
  // layout: for jumpTo only). Returns whether any changed.
  measureNow() {
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
    return changed;
  }

  /** Scrolls so that seq is in view (a third from the top) and renders,
   * measured at once. Returns its element, or null if seq is not in the
   * list. */
  jumpTo(seq) {
    const i = this.list.indexOf(seq);
    if (i < 0) return null;
    return this.placeIndex(entryKey(this.list.at(i)), (j) => this.offsets[j] - this.viewH / 3);
  }

  /** Scrolls as little as needed to have item i wholly in view (the
   * keyboard's next message), measured at once. Returns its element. */
  reveal(i) {
    if (!this.list || i < 0 || i >= this.list.length) return null;
    return this.placeIndex(entryKey(this.list.at(i)), (j) => {
      const top = this.offsets[j];
      const bottom = this.offsets[j + 1];
      if (top < this.top) return top;
      if (bottom > this.top + this.viewH) return bottom - this.viewH;
      return this.top;
    });
  }

  // Renders the window where want(index of key) says, measuring at once
  // (forced layout: a click or a key wants its answer in this frame).
  placeIndex(key, want) {
    this.viewH = this.scroller.clientHeight;
    this.settle = null;
    this.stick = false;
    const place = () => {
      const i = this.keyIndex(key);
      return i < 0 ? this.top : Math.max(0, Math.min(this.total() - this.viewH, want(i)));
    };
    // Twice at most: heights measured on the way may move it; settle on it.
    for (let pass = 0; pass < 3; pass++) {
      if (this.layoutRev !== this.list.rev || this.measureDirty) this.layout();
      const top = place();
      this.renderWindow(top, false, true);
      this.scrollTo(top);
      if (!this.measureNow()) break;
    }
    if (this.measureDirty) {
      this.layout();
      const top = place();
      this.renderWindow(top, false, false);
      this.scrollTo(top);
    }
    this.stick = this.atBottom();
    this.stats.renders++;
    this.stats.maxRendered = Math.max(this.stats.maxRendered, this.rendered.size);
    const r = this.rendered.get(key);
    return r ? r.el : null;
  }

  /** The index of the last item whose top is in the view (from the
   * prefix sums: no layout), or -1. */
  lastVisibleIndex() {
    if (!this.keys.length) return -1;
    return this.indexAt(this.top + this.viewH - 1);
  }

  /** The element of seq if rendered. */
  elementOf(seq) {
    const r = this.rendered.get(`s${seq}`);
    return r ? r.el : null;
  }
}
