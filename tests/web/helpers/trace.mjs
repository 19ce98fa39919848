// Reads a Chrome trace (browser.startTracing / stopTracing, JSON) of the
// benchmark's burst and says what the renderer's main thread did in its
// long tasks: each task over the threshold with the time of the events
// inside it by self time (script, GC, style, layout, paint, WebSocket
// message dispatch...) and, from the V8 CPU profile carried in the trace,
// the JS functions by self time. Used by `SB_BENCH_TRACE=file make
// bench-web` (tests/web/bench.mjs) and runnable on a saved trace:
//
//   node tests/web/helpers/trace.mjs trace.json [threshold-ms]

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const TRACE_CATEGORIES = [
  'toplevel',
  'devtools.timeline',
  'disabled-by-default-devtools.timeline',
  'disabled-by-default-devtools.timeline.frame',
  'v8',
  'v8.execute',
  'disabled-by-default-v8.gc',
  'disabled-by-default-v8.cpu_profiler',
  'blink',
  'blink.user_timing',
];

const TOP = new Set(['RunTask', 'ThreadControllerImpl::RunTask']);

function mainThread(events) {
  // The page's renderer main thread: CrRendererMain with the most events.
  const names = new Map();
  for (const e of events) if (e.ph === 'M' && e.name === 'thread_name' && e.args.name === 'CrRendererMain') names.set(`${e.pid}:${e.tid}`, 0);
  for (const e of events) {
    const k = `${e.pid}:${e.tid}`;
    if (names.has(k)) names.set(k, names.get(k) + 1);
  }
  let best = null;
  for (const [k, n] of names) if (!best || n > best[1]) best = [k, n];
  return best ? best[0] : null;
}

function label(e) {
  const d = (e.args && (e.args.data || e.args.beginData)) || {};
  if (e.name === 'FunctionCall' || e.name === 'EventDispatch' || e.name === 'TimerFire' || e.name === 'FireAnimationFrame')
    return `${e.name}${d.type ? ` ${d.type}` : ''}${d.functionName ? ` ${d.functionName}` : ''}${d.url ? ` ${d.url.split('/').pop()}:${d.lineNumber}` : ''}`;
  return e.name;
}

/** Complete events (X, or B/E pairs) of one thread, sorted by start. */
function spans(events, key) {
  const out = [];
  const open = [];
  for (const e of events) {
    if (`${e.pid}:${e.tid}` !== key) continue;
    if (e.ph === 'X' && e.dur !== undefined) out.push({ name: label(e), raw: e.name, ts: e.ts, end: e.ts + e.dur, cpu: e.tdur, args: e.args });
    else if (e.ph === 'B') open.push(e);
    else if (e.ph === 'E') {
      for (let i = open.length - 1; i >= 0; i--)
        if (open[i].name === e.name) {
          const b = open.splice(i, 1)[0];
          out.push({ name: label(b), raw: b.name, ts: b.ts, end: e.ts, args: { ...b.args, ...e.args } });
          break;
        }
    }
  }
  out.sort((a, b) => a.ts - b.ts || b.end - a.end);
  return out;
}

/** Self time of each event name within [t0, t1] (nesting by time). */
function selfTimes(sp, t0, t1) {
  const inside = sp.filter((s) => s.ts >= t0 && s.end <= t1);
  const self = new Map();
  const stack = [];
  const close = (upTo) => {
    while (stack.length && stack[stack.length - 1].end <= upTo) stack.pop();
  };
  for (const s of inside) {
    close(s.ts);
    const parent = stack[stack.length - 1];
    if (parent) parent.child += s.end - s.ts;
    s.child = 0;
    stack.push(s);
  }
  for (const s of inside) self.set(s.name, (self.get(s.name) || 0) + (s.end - s.ts - s.child));
  return self;
}

/** Where a task waited (wall time without the thread's CPU time), by the
 * innermost event it waited in: [[name, ms]]. */
function waits(sp, t0, t1) {
  const inside = sp.filter((s) => s.ts >= t0 && s.end <= t1 && s.cpu !== undefined);
  const stack = [];
  for (const s of inside) {
    while (stack.length && stack[stack.length - 1].end <= s.ts) stack.pop();
    const parent = stack[stack.length - 1];
    s.childWait = 0;
    if (parent) parent.childWait += s.end - s.ts - s.cpu;
    stack.push(s);
  }
  const w = new Map();
  for (const s of inside) w.set(s.name, (w.get(s.name) || 0) + (s.end - s.ts - s.cpu - s.childWait));
  return [...w].filter(([, us]) => us > 1000).sort((a, b) => b[1] - a[1]).map(([n, us]) => [n, us / 1000]);
}

/** Samples of the V8 CPU profile in the trace: [{ ts, node }] and nodes. */
function cpuSamples(events, pid) {
  const nodes = new Map();
  const samples = [];
  const profiles = new Map(); // id -> { ts }
  for (const e of events) {
    if (e.pid !== pid) continue;
    if (e.name === 'Profile') profiles.set(e.id, { t: e.args.data.startTime });
    if (e.name !== 'ProfileChunk') continue;
    const p = profiles.get(e.id) || { t: 0 };
    profiles.set(e.id, p);
    const d = e.args.data || {};
    const cp = d.cpuProfile || {};
    for (const n of cp.nodes || []) nodes.set(`${e.id}:${n.id}`, { ...n, parentKey: n.parent ? `${e.id}:${n.parent}` : null });
    const ids = cp.samples || [];
    const dts = d.timeDeltas || [];
    const lines = d.lines || [];
    for (let i = 0; i < ids.length; i++) {
      p.t += dts[i] || 0;
      samples.push({ ts: p.t, key: `${e.id}:${ids[i]}`, line: lines[i] || 0 });
    }
  }
  samples.sort((a, b) => a.ts - b.ts);
  return { nodes, samples };
}

function frameName(n) {
  const cf = n.callFrame || {};
  const f = cf.functionName || '(anonymous)';
  const url = cf.url ? ` ${cf.url.split('/').pop()}:${cf.lineNumber + 1}:${cf.columnNumber + 1}` : '';
  return `${f}${url}`;
}

const ms = (us) => (us / 1000).toFixed(1);

/**
 * Analyses a trace (parsed JSON). Returns { tasks: [...] } for the main
 * thread's tasks over thresholdMs within [fromUs, toUs] if given, each with
 * the top events and JS functions by self time, and prints a report if
 * print is set.
 */
export function analyze(trace, { thresholdMs = 50, print = true, fromUs = 0, toUs = Infinity, top = 12 } = {}) {
  const events = Array.isArray(trace) ? trace : trace.traceEvents;
  const key = mainThread(events);
  if (!key) throw new Error('no CrRendererMain thread in the trace');
  const pid = Number(key.split(':')[0]);
  const sp = spans(events, key);
  // A mark the page set (performance.mark(name)) starts the window.
  if (typeof fromUs === 'string') {
    const m = events.find((e) => e.name === fromUs && e.pid === pid);
    fromUs = m ? m.ts : 0;
  }
  // Outermost tasks only (RunTask nests in ThreadControllerImpl::RunTask).
  const allTop = [];
  for (const s of sp) {
    if (!TOP.has(s.raw) || s.ts < fromUs || s.ts > toUs) continue;
    const last = allTop[allTop.length - 1];
    if (last && s.ts < last.end) continue;
    allTop.push(s);
  }
  const tasks = allTop.filter((s) => s.end - s.ts > thresholdMs * 1000);
  const { nodes, samples } = cpuSamples(events, pid);
  const out = [];
  const jsIn = (t0, t1) => {
    const fn = new Map();
    const ln = new Map();
    for (const s of samples) {
      if (s.ts < t0 || s.ts > t1) continue;
      const n = nodes.get(s.key);
      if (!n) continue;
      const name = frameName(n);
      fn.set(name, (fn.get(name) || 0) + 1);
      if (s.line) {
        const k = `${(n.callFrame && n.callFrame.functionName) || '(anon)'} line ${s.line}`;
        ln.set(k, (ln.get(k) || 0) + 1);
      }
    }
    return { fn, ln };
  };
  if (print && allTop.length) {
    const t0 = allTop[0].ts;
    const t1 = allTop[allTop.length - 1].end;
    const self = [...selfTimes(sp, t0, t1)].filter(([n]) => !TOP.has(n)).sort((a, b) => b[1] - a[1]);
    const { fn, ln } = jsIn(t0, t1);
    const n = [...fn.values()].reduce((a, b) => a + b, 0);
    console.log(`whole window, events by self time (${allTop.length} tasks):`);
    for (const [k, us] of self.slice(0, 25)) console.log(`  ${ms(us).padStart(7)} ms  ${k}`);
    console.log(`whole window, JS profile by self time (${n} samples):`);
    for (const [k, c] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`  ${String(c).padStart(6)}  ${k}`);
    console.log('whole window, hottest lines:');
    for (const [k, c] of [...ln].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`  ${String(c).padStart(6)}  ${k}`);
  }
  for (const t of tasks) {
    const self = [...selfTimes(sp, t.ts, t.end)].filter(([n]) => !TOP.has(n)).sort((a, b) => b[1] - a[1]);
    const fn = new Map();
    const stacks = new Map();
    for (const s of samples) {
      if (s.ts < t.ts || s.ts > t.end) continue;
      const n = nodes.get(s.key);
      if (!n) continue;
      const name = frameName(n);
      fn.set(name, (fn.get(name) || 0) + 1);
      // The first frames of our own code above the sample: who called it.
      const chain = [];
      for (let p = n; p && chain.length < 6; p = p.parentKey ? nodes.get(p.parentKey) : null) chain.push((p.callFrame && p.callFrame.functionName) || '(anon)');
      const sk = chain.join(' < ');
      stacks.set(sk, (stacks.get(sk) || 0) + 1);
    }
    const nSamples = [...fn.values()].reduce((a, b) => a + b, 0);
    const perSample = nSamples ? (t.end - t.ts) / nSamples : 0;
    out.push({
      startUs: t.ts,
      ms: (t.end - t.ts) / 1000,
      // The thread's own CPU time in the task (the trace's thread clock):
      // far below the wall time when the thread waited for a core.
      cpuMs: t.cpu === undefined ? null : t.cpu / 1000,
      waits: waits(sp, t.ts, t.end).slice(0, 6),
      events: self.slice(0, top).map(([n, us]) => ({ name: n, ms: us / 1000 })),
      functions: [...fn].sort((a, b) => b[1] - a[1]).slice(0, top).map(([n, c]) => ({ name: n, samples: c, ms: (c * perSample) / 1000 })),
      stacks: [...stacks].sort((a, b) => b[1] - a[1]).slice(0, top).map(([n, c]) => ({ stack: n, samples: c })),
    });
  }
  if (print) {
    const busy = allTop.reduce((a, s) => a + (s.end - s.ts), 0);
    const cpu = allTop.reduce((a, s) => a + (s.cpu || 0), 0);
    const span = allTop.length ? allTop[allTop.length - 1].end - allTop[0].ts : 0;
    console.log(`trace: ${allTop.length} main-thread tasks, busy ${ms(busy)} ms (CPU ${ms(cpu)} ms) of ${ms(span)} ms; ${tasks.length} over ${thresholdMs} ms`);
    for (const t of out) {
      console.log(`\n== task of ${t.ms.toFixed(1)} ms (main thread on a CPU ${t.cpuMs === null ? '?' : t.cpuMs.toFixed(1)} ms of it) at ${ms(t.startUs - (allTop[0] ? allTop[0].ts : 0))} ms`);
      if (t.waits.length) console.log(`  waited (wall time off the CPU) in: ${t.waits.map(([n, m]) => `${n} ${m.toFixed(1)} ms`).join('; ')}`);
      console.log('  events by self time:');
      for (const e of t.events) console.log(`    ${e.ms.toFixed(1).padStart(7)} ms  ${e.name}`);
      console.log('  JS profile by self time:');
      for (const f of t.functions) console.log(`    ${f.ms.toFixed(1).padStart(7)} ms  ${f.name}`);
      console.log('  hottest stacks (samples):');
      for (const s of t.stacks.slice(0, 8)) console.log(`    ${String(s.samples).padStart(5)}  ${s.stack}`);
    }
  }
  return { tasks: out };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const trace = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  analyze(trace, { thresholdMs: Number(process.argv[3] || 50) });
}
