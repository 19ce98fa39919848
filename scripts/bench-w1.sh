#!/usr/bin/env bash
# make bench-w1: the cs-chat closed loop at W=1 (500 conversations x 200
# messages per side, fsync per group commit) beside mosquitto (QoS 1,
# persistence on: ../shared/peers' chatbench) in the same run, alternated,
# REPS times. Each line: delivered msg/s, the CPU per delivered message of
# the server (by thread) and of the load generator, the load average. With
# BASE=DIR (another checkout, built) its switchboard and sbbench run in
# each round too, for before/after. With SYSCALLS=1 one more round counts
# each process's system calls per delivered message by kind (perf stat on
# the syscall tracepoints; it slows the run, so its rates do not count).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS:-$ROOT/../shared/peers}
REPS=${REPS:-3}
P=${P:-500}
M=${M:-200}
MQ_PORT=${MQ_PORT:-18893}
BASE=${BASE:-}
SYSCALLS=${SYSCALLS:-0}
WORK=$(mktemp -d /tmp/bench-w1.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# mosquitto drops to its own user: it must reach its persistence folder.
chmod 755 "$WORK"
N=$((P * M * 2))
HZ=$(getconf CLK_TCK)

# chatbench, built in a copy (the peers' folder may be read-only), and a
# mosquitto configuration of this run's own (port, persistence folder).
mq_setup() {
  command -v mosquitto >/dev/null || { echo "bench-w1: mosquitto is not installed (../shared/peers/run.sh installs it)" >&2; exit 1; }
  cp "$PEERS"/*.c "$PEERS"/*.h "$PEERS"/Makefile "$PEERS"/mosquitto.conf "$WORK"/
  make -s -C "$WORK" chatbench >/dev/null || { echo "bench-w1: chatbench did not build" >&2; exit 1; }
  sed -e "s/^listener .*/listener $MQ_PORT 127.0.0.1/" \
      -e "s#^persistence_location .*#persistence_location $WORK/mosq/#" \
      "$PEERS"/mosquitto.conf > "$WORK"/mosquitto.conf
}

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Per-thread CPU ticks of a process: "name=ticks ..." (names as the kernel
# keeps them; the loop thread has the process's name).
thread_ticks() {
  for t in /proc/"$1"/task/*; do
    printf '%s=%s ' "$(cat "$t"/comm)" "$(awk '{ print $14 + $15 }' "$t"/stat)"
  done
}
us_per_msg() { awk -v t="$1" -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }'; }
load() { cut -d' ' -f1 /proc/loadavg; }

EVENTS=raw_syscalls:sys_enter
for s in read write readv writev pread64 pwrite64 fdatasync fsync fcntl futex \
         epoll_wait epoll_ctl io_uring_enter; do
  EVENTS=$EVENTS,syscalls:sys_enter_$s
done
# Sums perf stat's counts (per thread with --per-thread) into
# "kind=count/message ..." for the thread named $2 (all when empty).
syscalls_per_msg() {
  awk -v n="$N" -v th="${2:-}" '
    /sys_enter/ { name = ""; cnt = 0
      for (i = 1; i <= NF; i++) if ($i ~ /sys_enter/) { name = $i; cnt = $(i - 1); comm = (i > 2) ? $1 : "" }
      if (th != "" && comm !~ "^" th "-[0-9]+$") next
      gsub(",", "", cnt); sub(/.*sys_enter_?/, "", name); if (name == "") name = "all"
      c[name] += cnt }
    END { for (k in c) if (c[k] > 0) printf "%s=%.2f ", k, c[k] / n }' "$1"
}

# TCP segments on the server's side of the connections to port $1, per
# message, sampled every 0.3 s into $2 until killed (the last sample is at
# most 0.3 s before the end: a slight undercount).
segments_sample() {
  while true; do
    ss -tinH state established "( sport = :$1 )" | awk -v n="$N" '
      { for (i = 1; i <= NF; i++) { split($i, kv, ":"); v[kv[1]] += kv[2] } }
      END { if (v["segs_out"] > 0)
        printf "out %.2f (data %.2f) in %.2f (data %.2f)", v["segs_out"] / n,
          v["data_segs_out"] / n, v["segs_in"] / n, v["data_segs_in"] / n }' > "$2.tmp"
    [ -s "$2.tmp" ] && mv "$2.tmp" "$2"
    sleep 0.3
  done
}

mq_run() { # label [syscalls]
  rm -rf "$WORK"/mosq && mkdir -p "$WORK"/mosq && chown mosquitto: "$WORK"/mosq 2>/dev/null
  mosquitto -c "$WORK"/mosquitto.conf > "$WORK"/mosq.log 2>&1 & local pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$MQ_PORT) 2>/dev/null && break; sleep 0.1; done
  local wrap=() sp= ssp=
  if [ -n "${2:-}" ]; then
    perf stat --per-thread -e "$EVENTS" -p $pid -o "$WORK"/mq.stat 2>/dev/null & sp=$!
    wrap=(perf stat -e "$EVENTS" -o "$WORK"/mqc.stat --)
    : > "$WORK"/mq.segs
    segments_sample $MQ_PORT "$WORK"/mq.segs & ssp=$!
    sleep 0.3
  fi
  local r
  r=$(timeout 300 "${wrap[@]}" "$WORK"/chatbench --broker mqtt --port $MQ_PORT --pid $pid \
      -P $P -M $M -W 1 --deadline 250 2>&1 | grep RESULT | tail -1)
  [ -n "$sp" ] && { kill $ssp; kill -INT $sp; wait $sp $ssp 2>/dev/null; }
  kill $pid; wait $pid 2>/dev/null
  local rate cpu ccpu
  rate=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' <<< "$r")
  cpu=$(sed -n 's/.*broker_cpu_s=\([0-9.]*\).*/\1/p' <<< "$r")
  ccpu=$(sed -n 's/.*client_cpu_s=\([0-9.]*\).*/\1/p' <<< "$r")
  if [ -n "${2:-}" ]; then
    echo "$1 syscalls/msg: broker [$(syscalls_per_msg "$WORK"/mq.stat)] client [$(syscalls_per_msg "$WORK"/mqc.stat)]"
    echo "$1 TCP segments/msg, broker's side: $(cat "$WORK"/mq.segs)"
  else
    awk -v l="$1" -v r="$rate" -v c="$cpu" -v cc="$ccpu" -v n="$N" -v ld="$(load)" 'BEGIN {
      printf "%-8s %7d msg/s  server %5.1f us/msg  client %5.1f us/msg  total %5.1f  load %s\n",
        l, r, c / n * 1e6, cc / n * 1e6, (c + cc) / n * 1e6, ld }'
  fi
}

sb_run() { # label build-dir [syscalls]
  local d="$WORK"/sb
  rm -rf "$d" && mkdir -p "$d"
  sb_start "$d.log" "$2"/switchboard --listen 127.0.0.1:0 --data "$d" --secret s \
    --sends-per-s 0 --conns-per-addr 0 --quiet ||
    { echo "bench-w1: server did not start: $(cat "$d.log")" >&2; exit 1; }
  local pid=$SB_PID port=$SB_PORT
  local wrap=() sp= ssp=
  if [ -n "${3:-}" ]; then
    perf stat --per-thread -e "$EVENTS" -p $pid -o "$WORK"/sb.stat 2>/dev/null & sp=$!
    wrap=(perf stat -e "$EVENTS" -o "$WORK"/sbc.stat --)
    : > "$WORK"/sb.segs
    segments_sample "$port" "$WORK"/sb.segs & ssp=$!
    sleep 0.3
  fi
  local t0 th0 r th1 t1
  t0=$(ticks $pid)
  th0=$(thread_ticks $pid)
  r=$(timeout 300 "${wrap[@]}" "$2"/sbbench --url ws://127.0.0.1:$port/ws --secret s \
      --convs $P --msgs $M --window 1 --server-pid $pid 2>&1 | tail -1)
  t1=$(ticks $pid)
  th1=$(thread_ticks $pid)
  [ -n "$sp" ] && { kill $ssp; kill -INT $sp; wait $sp $ssp 2>/dev/null; }
  kill $pid; wait $pid 2>/dev/null
  if [ -n "${3:-}" ]; then
    echo "$1 syscalls/msg: loop [$(syscalls_per_msg "$WORK"/sb.stat switchboard)] writer [$(syscalls_per_msg "$WORK"/sb.stat sb-writer)] checkpointer [$(syscalls_per_msg "$WORK"/sb.stat sb-checkpoint)] sbbench [$(syscalls_per_msg "$WORK"/sbc.stat)]"
    echo "$1 TCP segments/msg, server's side: $(cat "$WORK"/sb.segs)"
    return
  fi
  local rate ccpu
  rate=$(sed -n 's/.*"delivered_per_s":\([0-9]*\).*/\1/p' <<< "$r")
  ccpu=$(sed -n 's/.*"client_cpu_s":\([0-9.]*\).*/\1/p' <<< "$r")
  grep -q '"dup":0,"ooo":0,"lost":0' <<< "$r" || echo "$1: dup/ooo/lost: $r"
  # The server's CPU over the run (setup included: 1,000 HELLOs and 500
  # OPENs), and by thread.
  local by
  by=$(awk -v a="$th0" -v b="$th1" -v hz="$HZ" -v n="$N" 'BEGIN {
    na = split(a, x, " "); for (i = 1; i <= na; i++) { split(x[i], kv, "="); s[kv[1]] -= kv[2] }
    nb = split(b, y, " "); for (i = 1; i <= nb; i++) { split(y[i], kv, "="); s[kv[1]] += kv[2] }
    printf "loop %.1f writer %.1f ckpt %.1f", s["switchboard"] / hz / n * 1e6,
      s["sb-writer"] / hz / n * 1e6, s["sb-checkpoint"] / hz / n * 1e6 }')
  awk -v l="$1" -v r="$rate" -v t="$((t1 - t0))" -v hz="$HZ" -v cc="$ccpu" -v n="$N" \
      -v by="$by" -v ld="$(load)" 'BEGIN {
    s = t / hz / n * 1e6
    printf "%-8s %7d msg/s  server %5.1f us/msg (%s)  client %5.1f us/msg  total %5.1f  load %s\n",
      l, r, s, by, cc / n * 1e6, s + cc / n * 1e6, ld }'
}

if [ "$SYSCALLS" = 1 ] && ! perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
  echo "bench-w1: SYSCALLS=1 needs perf with the syscall tracepoints (linux-perf, as root)" >&2
  exit 1
fi
mq_setup
echo "# $(date -u +%FT%TZ) W=1 P=$P M=$M fsync; $(nproc) cores; commit $(git -C "$ROOT" rev-parse --short HEAD)${BASE:+, base $(git -C "$BASE" rev-parse --short HEAD)}; load $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq "$REPS"); do
  mq_run mosq
  sb_run sb "$ROOT/$BUILD"
  [ -n "$BASE" ] && sb_run sb-base "$BASE/$BUILD"
done
if [ "$SYSCALLS" = 1 ]; then
  mq_run mosq syscalls
  sb_run sb "$ROOT/$BUILD" syscalls
  [ -n "$BASE" ] && sb_run sb-base "$BASE/$BUILD" syscalls
fi
echo "# end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
