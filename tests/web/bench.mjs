// Web client benchmark (make bench-web): the agent page in Debian's
// Chromium with 10,000 messages in a conversation, then a burst of 1,000
// incoming messages, then jumps to messages 5,000 back. Measures long
// tasks (PerformanceObserver 'longtask', > 50 ms) during the burst and the
// time of each jump (call to the frame after it), asserts the targets in
// every run (SB_BENCH_RUNS, 5 by default), and prints the figures as a
// Markdown table (--write puts them into docs/benchmarks.md under "Web
// client", between the markers). Each run also says why a long task was
// long: the frames' scripts and layout (Long Animation Frames), the page's
// main thread on a CPU vs waiting for one, CPU time by process;
// SB_BENCH_TRACE=file records a Chrome trace of the burst and breaks its
// long tasks down (helpers/trace.mjs), SB_BENCH_PROFILE=1 a CPU profile.
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { execFileSync } from 'node:child_process';
import { startServer, repo, until } from './helpers/server.mjs';
import { launch, openPage } from './helpers/browser.mjs';
import { sdkClient, fill, knownUser } from './helpers/seed.mjs';
import { analyze, TRACE_CATEGORIES } from './helpers/trace.mjs';

const N = Number(process.env.SB_BENCH_MESSAGES || 10000);
const BURST = Number(process.env.SB_BENCH_BURST || 1000);
const JUMP_BACK = 5000;
const LONGTASK_MAX_MS = 50;
const JUMP_MAX_MS = 100;
// Runs, each with a fresh server, browser and conversation: one run on a
// shared 2-core machine says little.
const RUNS = Math.max(1, Number(process.env.SB_BENCH_RUNS || 5));
const BEGIN = '<!-- bench-web figures: tests/web/bench.mjs --write -->';
const END = '<!-- end of bench-web figures -->';

// The renderers' main threads (Linux): time on a CPU and time waiting for
// one (runnable, not running: /proc/PID/schedstat), so that a long task of
// a loaded machine can be told from a long task of the page's own work.
function rendererSched() {
  const out = new Map();
  if (!existsSync('/proc/self/schedstat')) return out;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('--type=renderer')) continue;
      const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);
      out.set(pid, { run, wait });
    } catch {
      /* gone */
    }
  }
  return out;
}

// CPU time of every process (utime + stime, ms), to say who had the
// cores during the burst.
function procCpu() {
  const out = new Map();
  if (!existsSync('/proc/self/stat')) return out;
  const hz = 100;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = st.lastIndexOf(')');
      const name = st.slice(st.indexOf('(') + 1, close);
      const f = st.slice(close + 2).split(' ');
      let kind = name;
      if (name.startsWith('chrom')) {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        const m = /--type=([a-z-]+)/.exec(cmd);
        kind = `chromium ${m ? m[1] : 'browser'}`;
        // The renderer by thread (main, compositor, raster, GC helpers...).
        if (m && m[1] === 'renderer')
          for (const tid of readdirSync(`/proc/${pid}/task`)) {
            const ts = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
            const tc = ts.lastIndexOf(')');
            const tn = ts.slice(ts.indexOf('(') + 1, tc).replace(/[0-9]+$/, '');
            const tf = ts.slice(tc + 2).split(' ');
            out.set(`${pid}/${tid}`, { kind: `  renderer thread ${tid === pid ? 'main' : tn}`, ms: ((Number(tf[11]) + Number(tf[12])) * 1000) / hz, thread: pid });
          }
      }
      out.set(pid, { kind, ms: ((Number(f[11]) + Number(f[12])) * 1000) / hz });
    } catch {
      /* gone */
    }
  }
  return out;
}

async function runOnce(run) {
const srv = await startServer({ demo: true, web: process.env.SB_WEB_DIST || join(repo, 'web', 'dist') });
const browser = await launch();
const fig = { load: loadavg()[0] };
const failed = [];
const suffix = RUNS > 1 ? `.${run}` : '';
try {
  await knownUser(srv, 'bob', 'agent');
  const cust = await sdkClient(srv, 'bench-customer', 'customer');
  const conv = await cust.open(['bob']);
  const id = conv.conv_id;
  let t0 = Date.now();
  await fill(cust, id, N, 'old');
  fig.seedMs = Date.now() - t0;

  const { page } = await openPage(browser, `${srv.url}/agent?user=bob`, { width: 1280, height: 800 });
  await page.evaluate((cid) => window.__sb.select(cid), id);
  t0 = Date.now();
  await page.evaluate((cid) => window.__sb.store.ensureLoaded(cid, 1), id);
  fig.loadAllMs = Date.now() - t0;
  const held = await page.evaluate(() => window.__sb.view.conv.list.length);
  if (held < N) throw new Error(`page holds ${held} of ${N}`);
  // To the newest, settle, then watch for long tasks.
  await page.evaluate(() => {
    const s = document.querySelector('#chat .messages');
    s.scrollTop = s.scrollHeight;
    window.__lt = [];
    new PerformanceObserver((l) => window.__lt.push(...l.getEntries().map((e) => ({ start: e.startTime, d: e.duration })))).observe({ type: 'longtask', buffered: false });
    // What the long tasks were (Long Animation Frames: the scripts of a
    // frame, their forced layouts, the frame's own style and layout), for
    // the report only; the target is judged on 'longtask' above.
    window.__loaf = [];
    if (PerformanceObserver.supportedEntryTypes.includes('long-animation-frame'))
      new PerformanceObserver((l) => window.__loaf.push(...l.getEntries().map((e) => ({
        start: e.startTime, d: e.duration, block: e.blockingDuration, renderStart: e.renderStart, styleStart: e.styleAndLayoutStart,
        scripts: e.scripts.map((x) => ({ inv: x.invoker, type: x.invokerType, start: x.startTime, d: x.duration, forced: x.forcedStyleAndLayoutDuration, fn: x.sourceFunctionName, at: x.sourceCharPosition })),
      })))).observe({ type: 'long-animation-frame', buffered: false });
    return new Promise((r) => setTimeout(r, 300));
  });

  // The burst: 1,000 messages from the customer, as fast as the server
  // takes them; the page renders once per animation frame.
  const cdp = process.env.SB_BENCH_PROFILE ? await page.context().newCDPSession(page) : null;
  if (cdp) { await cdp.send('Profiler.enable'); await cdp.send('Profiler.start'); }
  // SB_BENCH_TRACE=file: a Chrome trace of the burst, saved, and its long
  // tasks broken down (helpers/trace.mjs). Tracing slows the page down:
  // figures of such a run are not the benchmark's.
  const traceFile = process.env.SB_BENCH_TRACE ? `${process.env.SB_BENCH_TRACE}${suffix}` : null;
  if (traceFile) await browser.startTracing(page, { categories: process.env.SB_BENCH_TRACE_CATS ? process.env.SB_BENCH_TRACE_CATS.split(',') : TRACE_CATEGORIES });
  const sched0 = rendererSched();
  const cpu0 = procCpu();
  const [tBurst, renders0] = await page.evaluate(() => [performance.mark('sb-burst').startTime, window.__sb.view.vl.stats.renders]);
  t0 = Date.now();
  await fill(cust, id, BURST, 'burst');
  await until(() => page.evaluate((n) => window.__sb.view.conv.list.length >= n, N + BURST), 30000, 'the burst on the page');
  fig.burstMs = Date.now() - t0;
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const burst = await page.evaluate(([tb, r0]) => {
    const lt = window.__lt.filter((e) => e.start >= tb);
    const vl = window.__sb.view.vl;
    const loaf = window.__loaf.filter((f) => f.start >= tb && f.d > 50);
    // The burst is on the screen, not only in the model: the newest
    // message is rendered and inside the list's box.
    const l = window.__sb.view.conv.list;
    const newest = document.querySelector(`#chat .msg[data-seq="${l.at(l.length - 1).seq}"]`);
    const box = document.querySelector('#chat .messages').getBoundingClientRect();
    const rc = newest && newest.getBoundingClientRect();
    const newestShown = !!rc && rc.top >= box.top - 1 && rc.bottom <= box.bottom + 1;
    return { newestShown, count: lt.length, max: lt.reduce((m, e) => Math.max(m, e.d), 0), tasks: lt.map((e) => e.d), renders: vl.stats.renders - r0, maxRendered: vl.stats.maxRendered, atBottom: vl.atBottom(), loaf };
  }, [tBurst, renders0]);
  fig.burst = burst;
  {
    // The page's renderer: the one whose main thread ran the most.
    let best = null;
    for (const [pid, b] of rendererSched()) {
      const a = sched0.get(pid);
      if (!a) continue;
      const d = { pid, run: (b.run - a.run) / 1e6, wait: (b.wait - a.wait) / 1e6 };
      if (!best || d.run > best.run) best = d;
    }
    const by = new Map();
    const threads = new Map();
    for (const [pid, b] of procCpu()) {
      const d = b.ms - (cpu0.get(pid)?.ms || 0);
      if (b.thread && (!best || b.thread !== best.pid)) continue;
      const into = b.thread ? threads : by;
      if (d > 0) into.set(b.kind, (into.get(b.kind) || 0) + d);
    }
    const top = [...by].sort((x, y) => y[1] - x[1]).slice(0, 8);
    if (top.length) console.log(`CPU time during the burst, by process: ${top.map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')}`);
    const topT = [...threads].sort((x, y) => y[1] - x[1]).slice(0, 6);
    if (topT.length) console.log(`  the page's renderer by thread: ${topT.map(([k, v]) => `${k.replace('  renderer thread ', '')} ${v.toFixed(0)} ms`).join(', ')}`);
    if (best) {
      fig.sched = best;
      console.log(`page's main thread during the burst: ${best.run.toFixed(0)} ms on a CPU, ${best.wait.toFixed(0)} ms runnable but waiting for one (load ${loadavg().map((x) => x.toFixed(2)).join(' ')})`);
    }
  }
  if (burst.count) {
    console.log(`long tasks during the burst (ms): ${burst.tasks.map((d) => d.toFixed(0)).join(', ')}`);
    for (const f of burst.loaf) {
      const render = f.renderStart ? f.start + f.d - f.renderStart : 0;
      console.log(`  frame of ${f.d.toFixed(0)} ms at +${(f.start - tBurst).toFixed(0)}: rendering ${render.toFixed(0)} ms (style and layout ${f.styleStart ? (f.start + f.d - f.styleStart).toFixed(0) : 0}), scripts:`);
      for (const x of f.scripts) console.log(`    ${x.d.toFixed(1).padStart(6)} ms (forced layout ${x.forced.toFixed(1)})  ${x.type} ${x.inv}${x.fn ? ` ${x.fn}` : ''}`);
    }
  }
  if (traceFile) {
    const buf = await browser.stopTracing();
    writeFileSync(traceFile, buf);
    analyze(JSON.parse(buf.toString('utf8')), { fromUs: 'sb-burst', thresholdMs: Number(process.env.SB_BENCH_TRACE_MS || LONGTASK_MAX_MS) });
  }
  if (cdp) {
    const { profile } = await cdp.send('Profiler.stop');
    const self = new Map();
    const dt = profile.timeDeltas; const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    profile.samples.forEach((id, i) => { const n = byId.get(id); const k = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber}`; self.set(k, (self.get(k) || 0) + (dt[i] || 0) / 1000); });
    console.log([...self].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([k, v]) => `${v.toFixed(1)}ms ${k}`).join('\n'));
  }
  if (!burst.newestShown) failed.push('the newest message is not in view after the burst');
  if (burst.max > LONGTASK_MAX_MS) failed.push(`long task of ${burst.max.toFixed(0)} ms during the burst`);

  // Jumps to a message 5,000 back (as a click on a quote does), then back
  // to the newest; each timed from the call to the next frame.
  const last = N + BURST;
  const jumps = [];
  for (let i = 0; i < 7; i++) {
    const seq = last - JUMP_BACK - i * 37;
    const r = await page.evaluate(async (s) => {
      const t = performance.now();
      await window.__sb.view.jump(s);
      await new Promise((res) => requestAnimationFrame(() => res()));
      const ms = performance.now() - t;
      const el = document.querySelector(`#chat .msg[data-seq="${s}"]`);
      const box = document.querySelector('#chat .messages').getBoundingClientRect();
      const rc = el && el.getBoundingClientRect();
      const visible = !!rc && rc.top >= box.top && rc.bottom <= box.bottom;
      const sc = document.querySelector('#chat .messages');
      sc.scrollTop = sc.scrollHeight;
      await new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res)));
      return { ms, visible };
    }, seq);
    if (!r.visible) failed.push(`jump to ${seq}: not in view`);
    jumps.push(r.ms);
  }
  jumps.sort((a, b) => a - b);
  fig.jumpMedian = jumps[jumps.length >> 1];
  fig.jumpMax = jumps[jumps.length - 1];
  if (fig.jumpMax > JUMP_MAX_MS) failed.push(`jump took ${fig.jumpMax.toFixed(1)} ms`);
  const lt = await page.evaluate(() => window.__lt.length);
  fig.longTasksTotal = lt;
  cust.stop();
} finally {
  await browser.close();
  await srv.stop();
}
return { fig, failed };
}


// ---- the runs ------------------------------------------------------------------

const figs = [];
const failed = [];
for (let run = 1; run <= RUNS; run++) {
  const r = await runOnce(run);
  const f = r.fig;
  figs.push(f);
  for (const x of r.failed) failed.push(RUNS > 1 ? `run ${run}: ${x}` : x);
  console.log(
    `run ${run}/${RUNS} (load ${f.load.toFixed(2)}): longest long task ${f.burst.count ? `${f.burst.max.toFixed(0)} ms (${f.burst.count})` : 'none'}, burst ${f.burstMs} ms, jump ${f.jumpMedian.toFixed(1)} / ${f.jumpMax.toFixed(1)} ms${f.sched ? `, main thread ${f.sched.run.toFixed(0)} ms on a CPU / ${f.sched.wait.toFixed(0)} ms waiting` : ''}`,
  );
}

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const med = (xs) => sorted(xs)[(xs.length - 1) >> 1];
const range = (xs, fmt = (x) => String(x)) => (xs.length > 1 ? `${fmt(med(xs))} (${fmt(sorted(xs)[0])} - ${fmt(sorted(xs)[xs.length - 1])})` : fmt(xs[0]));
const cpu = cpus()[0] ? cpus()[0].model.trim() : '?';
const lts = figs.map((f) => (f.burst.count ? f.burst.max : 0));
const clean = lts.filter((x) => x === 0).length;
const schedFigs = figs.filter((f) => f.sched);
let commit = '?';
try {
  commit = execFileSync('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  if (execFileSync('git', ['-C', repo, 'status', '--porcelain', '--', 'web/src', 'tests/web'], { encoding: 'utf8' }).trim()) commit += ' + uncommitted web changes';
} catch {
  /* not a checkout */
}
const lines = [
  `| figure | target | measured: median (min - max) of ${RUNS} run${RUNS > 1 ? 's' : ''} |`,
  '|---|---|---|',
  `| messages held by the page (loaded by HISTORY pages) | 10,000 | ${N.toLocaleString('en')} in ${range(figs.map((f) => f.loadAllMs / 1000), (x) => `${x.toFixed(1)} s`)} |`,
  `| burst of incoming messages, all on the page, the newest in view | 1,000 | ${BURST.toLocaleString('en')} in ${range(figs.map((f) => f.burstMs), (x) => `${x} ms`)} (server and page) |`,
  `| longest long task during the burst, each run | < ${LONGTASK_MAX_MS} ms | ${lts.map((x) => (x ? `${x.toFixed(0)} ms` : 'none')).join(', ')}: ${clean} of ${RUNS} run${RUNS > 1 ? 's' : ''} without one |`,
  ...(schedFigs.length
    ? [`| the page's main thread during the burst: on a CPU / runnable, waiting for one | — | ${range(schedFigs.map((f) => f.sched.run), (x) => `${x.toFixed(0)}`)} / ${range(schedFigs.map((f) => f.sched.wait), (x) => `${x.toFixed(0)}`)} ms |`]
    : []),
  `| renders of the list during the burst (at most one per animation frame) | — | ${range(figs.map((f) => f.burst.renders))} |`,
  `| most message elements in the DOM at once | — | ${Math.max(...figs.map((f) => f.burst.maxRendered))} |`,
  `| jump to a message 5,000 back, call to next frame: median of 7 / max of 7 | < ${JUMP_MAX_MS} ms | ${range(figs.map((f) => f.jumpMedian), (x) => x.toFixed(1))} / ${range(figs.map((f) => f.jumpMax), (x) => x.toFixed(1))} ms |`,
];
const stamp = `${new Date().toISOString().slice(0, 10)}, commit ${commit}, ${cpus().length} cores (${cpu}), load average at the start of the runs ${range(figs.map((f) => f.load), (x) => x.toFixed(1))}`;
const table = lines.join('\n');
console.log(table);
console.log(`(${stamp}; Chromium ${process.env.SB_CHROMIUM || '/usr/bin/chromium'}, headless)`);
if (process.argv.includes('--write')) {
  // Only the figures between the markers are replaced: the rest of the
  // section (what limits them, what was done) is written by hand.
  const path = join(repo, 'docs', 'benchmarks.md');
  const block = `${BEGIN}\nMeasured ${stamp}:\n\n${table}\n${END}`;
  let doc = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n';
  const i = doc.indexOf(BEGIN);
  const j = doc.indexOf(END);
  if (i >= 0 && j > i) doc = doc.slice(0, i) + block + doc.slice(j + END.length);
  else doc = `${doc.trimEnd()}\n\n## Web client\n\n\`make bench-web\` (tests/web/bench.mjs).\n\n${block}\n`;
  writeFileSync(path, doc);
}
if (failed.length) {
  console.log(`FAILED: ${failed.join('; ')}`);
  process.exit(1);
}
console.log('targets met');
