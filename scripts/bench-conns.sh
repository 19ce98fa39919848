#!/usr/bin/env bash
# make bench-conns: connection density and the reconnect storm (issue 12,
# DESIGN.md §7), figures in docs/benchmarks.md. Prints one JSON object per
# measurement.
#
#  idle      CONNS authenticated idle WebSocket connections (sbconns
#            --hello-only, in two processes: this machine allows 20,000
#            open files per process), plain and over TLS: the server's RSS
#            growth per connection (VmRSS and its anonymous part) and the
#            kernel's (slab and socket buffers, both ends of each
#            connection are on this machine: halved);
#  tls       the TLS half of idle alone;
#  peers     the same figure by ../shared/peers' chatbench (raw clients,
#            one at a time) for mosquitto and for Switchboard, when that
#            harness is there;
#  restart   CONNS devices (half agents, half customers, a conversation
#            per pair) connected; the server is stopped (SIGTERM: drain)
#            and started again on the same port and store: the time until
#            every device has its WELCOME and has synced, and the new
#            server's peak RSS;
#  storm     the same devices; the customers are frozen (SIGSTOP) while
#            the server restarts and each agent sends K messages, then
#            released at once: all of them reconnect together and each
#            syncs the K messages it missed.
#
# Knobs: CONNS (19000), TLS_CONNS (CONNS), REPS (3), K (10), PHASES
# ("idle peers restart storm"), PEERS (the harness's folder); TRACE=1:
# the devices log their states during each wave (sbconns --trace), and
# KEEP=DIR: the run's logs are copied there at the end (LOG="--log-level
# info": the server's lines too, which say when each stage of its drain
# began); DEVARGS: more sbconns options (--no-deflate); SOURCES (16):
# the devices connect from that many loopback addresses (sbconns
# --sources), as clients of many machines do: from one address, each
# connect() searches the ephemeral ports that address has left for the
# server's port, and with 19,000 of them taken that search, in the
# clients' own system calls, is what a reconnect wave waits for. The idle
# phase connects from 127.0.0.1 alone (IDLE_SOURCES, 0): connections that
# arrive faster leave more of the burst's heap behind the trim, and its
# figure is the idle cost, not that.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BUILD=${1:-build}
CONNS=${CONNS:-19000}
TLS_CONNS=${TLS_CONNS:-$CONNS}
REPS=${REPS:-3}
K=${K:-10}
SOURCES=${SOURCES:-16}
IDLE_SOURCES=${IDLE_SOURCES:-0}
PHASES=${PHASES:-idle peers restart storm}
PEERS=${PEERS:-$(cd "$(dirname "$0")/.." && pwd)/../shared/peers}
SECRET=bench-secret
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sbconns.XXXXXX")
SRV= DEVS=() MQ=
cleanup() {
  for p in ${DEVS[@]+"${DEVS[@]}"} $SRV $MQ; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp -r "$WORK"/. "$KEEP"/; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

now() { "$BUILD"/sbconns --now; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
# Bytes of slab objects in use, system-wide (root reads /proc/slabinfo).
slab() { awk 'NR > 2 {s += $2 * $4} END {printf "%d", s}' /proc/slabinfo 2>/dev/null || echo 0; }
# Pages of TCP socket buffers, system-wide.
tcpmem() { awk '$1 == "TCP:" {print $NF}' /proc/net/sockstat; }

# start_server DATA_DIR PORT [args...]: sets SRV and PORT.
start_server() {
  local dir=$1 port=$2; shift 2
  [ -f "$dir.log" ] && mv "$dir.log" "$dir.log.old" # the server before a restart
  local ok=0
  sb_start "$dir.log" "$BUILD"/switchboard --listen 127.0.0.1:"$port" --data "$dir" \
    --secret $SECRET --conns-per-addr 0 --sends-per-s 0 ${LOG:---quiet} "$@" || ok=$?
  SRV=$SB_PID PORT=$SB_PORT
  [ "$ok" = 0 ] && return 0
  echo "bench-conns: server did not start: $(cat "$dir.log")" >&2; exit 1
}
stop_server() { kill "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; SRV=; }

# devices OUT ROLE N FIRST RUN [args...]: one sbconns process.
devices() {
  local out=$1 role=$2 n=$3 first=$4 run=$5; shift 5
  "$BUILD"/sbconns --url "${SCHEME:-ws}://127.0.0.1:$PORT/ws" --secret $SECRET \
    ${CA:+--ca "$CA"} --role "$role" --devices "$n" --first "$first" --run "$run" --sources "$SOURCES" ${TRACE:+--trace} ${DEVARGS:-} "$@" \
    > "$out" 2> "$out.err" &
  DEVS+=($!)
}
stop_devices() {
  for p in "${DEVS[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  for p in "${DEVS[@]}"; do wait "$p" 2>/dev/null || true; done
  DEVS=()
}
# wait_for FILE WORD SECONDS: until a line starts with WORD.
wait_for() {
  local t=$(( $3 * 10 ))
  for _ in $(seq $t); do grep -q "^$2 " "$1" && return 0; sleep 0.1; done
  echo "bench-conns: no '$2' in $1 after $3 s: $(tail -3 "$1.err")" >&2; exit 1
}
field() { awk -v w="$2" -v i="$3" '$1 == w {print $i; exit}' "$1"; }

echo "# machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), open files $(ulimit -n)"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) conns=$CONNS tls_conns=$TLS_CONNS reps=$REPS k=$K load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- idle ------------------------------------------------------------------
idle() { # label N [server args...]
  local label=$1 n=$2; shift 2
  local dir=$WORK/idle-$label
  mkdir -p "$dir"
  start_server "$dir" 0 "$@"
  sleep 1
  local rss0 anon0 slab0 tcp0 t0 t1
  rss0=$(kib $SRV VmRSS); anon0=$(kib $SRV RssAnon); slab0=$(slab); tcp0=$(tcpmem)
  t0=$(now)
  local half=$(( n / 2 ))
  devices "$dir.a" customer $half 0 "i$label" --hello-only --sources "$IDLE_SOURCES"
  devices "$dir.b" customer $(( n - half )) $half "i$label" --hello-only --sources "$IDLE_SOURCES"
  wait_for "$dir.a" up 900; wait_for "$dir.b" up 900
  t1=$(now)
  sleep 3 # the heap trim after the burst (one quiet sweep)
  local rss1 anon1 slab1 tcp1 hwm
  rss1=$(kib $SRV VmRSS); anon1=$(kib $SRV RssAnon); slab1=$(slab); tcp1=$(tcpmem); hwm=$(kib $SRV VmHWM)
  awk -v l="$label" -v n="$n" -v r0="$rss0" -v r1="$rss1" -v a0="$anon0" -v a1="$anon1" \
      -v s0="$slab0" -v s1="$slab1" -v c0="$tcp0" -v c1="$tcp1" -v h="$hwm" -v t="$(( (t1 - t0) / 1000000 ))" 'BEGIN {
    printf "{\"bench\":\"idle\",\"conns\":\"%s\",\"n\":%d,\"connect_ms\":%d,\"rss_kib_before\":%d,\"rss_kib_after\":%d,", l, n, t, r0, r1
    printf "\"rss_kib_per_conn\":%.3f,\"anon_kib_per_conn\":%.3f,\"peak_rss_kib\":%d,", (r1 - r0) / n, (a1 - a0) / n, h
    printf "\"kernel_slab_kib_per_end\":%.2f,\"tcp_buffer_pages\":\"%d->%d\"}\n", (s1 - s0) / 1024 / n / 2, c0, c1 }'
  stop_devices
  stop_server
}
if [[ " $PHASES " == *" idle "* || " $PHASES " == *" tls "* ]]; then
  [[ " $PHASES " == *" idle "* ]] && idle plain "$CONNS"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 2>/dev/null
  SCHEME=wss CA=$WORK/cert.pem idle tls "$TLS_CONNS" --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"
fi

# ---- the peers' harness: mosquitto and Switchboard, one client at a time ---
if [[ " $PHASES " == *" peers "* ]]; then
  # A copy: the harness's folder may be read-only.
  mkdir -p "$WORK/peers"
  if [ -f "$PEERS/idle.c" ] && command -v mosquitto >/dev/null &&
     cp "$PEERS"/*.c "$PEERS"/*.h "$PEERS"/Makefile "$PEERS"/*.conf "$WORK/peers/" &&
     make -s -C "$WORK/peers" >/dev/null 2>&1; then
    mkdir -p /tmp/peers-bench/mosquitto
    chown mosquitto: /tmp/peers-bench/mosquitto 2>/dev/null || true
    (cd "$WORK/peers" && exec mosquitto -c mosquitto.conf) > "$WORK/mosquitto.log" 2>&1 &
    MQ=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18883) 2>/dev/null && break; sleep 0.1; done
    printf 'peers-mosquitto '
    "$WORK/peers/chatbench" --broker mqtt --port 18883 --pid $MQ --idle "$CONNS" 2>/dev/null | grep RESULT || echo failed
    kill $MQ; wait $MQ 2>/dev/null || true; MQ=
    mkdir -p "$WORK/peers-sb"
    start_server "$WORK/peers-sb" 0 --secret s
    printf 'peers-switchboard '
    SB_SECRET=s "$WORK/peers/chatbench" --broker sb --port "$PORT" --pid $SRV --idle "$CONNS" 2>/dev/null | grep RESULT || echo failed
    stop_server
  else
    echo "# peers: no harness at $PEERS, or no mosquitto (its run.sh installs it)"
  fi
fi

# ---- restart and storm -----------------------------------------------------
# pair_up DIR RUN: CONNS/2 agents and CONNS/2 customers, all up.
pair_up() {
  local dir=$1 run=$2 half=$(( CONNS / 2 ))
  devices "$dir.ag" agent $half 0 "$run"
  devices "$dir.cu" customer $half 0 "$run"
  wait_for "$dir.ag" up 900; wait_for "$dir.cu" up 900
  sleep 2
}
ms() { echo $(( ($2 - $1) / 1000000 )); }
# CPU time of a process (all its threads) in ms; 0 once it is gone.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz)}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pstate() { awk '{sub(/^.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null; }
clients_cpu() { local s=0 p; for p in "${DEVS[@]}"; do s=$(( s + $(cpu "$p") )); done; echo $s; }
# stop_old: SIGTERM, and the server's CPU time as last seen before it
# ended into OLD_CPU (the shell reaps it at once: no zombie to read).
stop_old() {
  local c
  OLD_CPU=$(cpu $SRV)
  kill -TERM $SRV
  while [[ "$(pstate $SRV)" == [RSD] ]]; do
    c=$(cpu $SRV); [ "$c" -gt 0 ] && OLD_CPU=$c
    sleep 0.05
  done
  wait $SRV 2>/dev/null || true
}

if [[ " $PHASES " == *" restart "* ]]; then
  for rep in $(seq "$REPS"); do
    dir=$WORK/restart-$rep
    mkdir -p "$dir"
    start_server "$dir" 0
    pair_up "$dir" "r$rep"
    rss_before=$(kib $SRV VmRSS)
    old0=$(cpu $SRV) cl0=$(clients_cpu)
    t0=$(now)
    stop_old
    t1=$(now)
    cl1=$(clients_cpu)
    start_server "$dir" "$PORT"
    t2=$(now)
    wait_for "$dir.ag" back 300; wait_for "$dir.cu" back 300
    new1=$(cpu $SRV) cl2=$(clients_cpu)
    tb=$(field "$dir.ag" back 4); tc=$(field "$dir.cu" back 4)
    [ "$tc" -gt "$tb" ] && tb=$tc
    pct="\"agents_p50_p90_p99_after_start_ms\":[$(ms $t2 "$(field "$dir.ag" back 5)"),$(ms $t2 "$(field "$dir.ag" back 6)"),$(ms $t2 "$(field "$dir.ag" back 7)")]"
    pct+=",\"customers_p50_p90_p99_after_start_ms\":[$(ms $t2 "$(field "$dir.cu" back 5)"),$(ms $t2 "$(field "$dir.cu" back 6)"),$(ms $t2 "$(field "$dir.cu" back 7)")]"
    hwm=$(kib $SRV VmHWM)
    kill -TERM "${DEVS[@]}"; sleep 0.5
    connects=$(cat "$dir.ag" "$dir.cu" | awk '$1 == "stats" {split($3, a, "="); s += a[2]} END {print s}')
    echo "{\"bench\":\"restart\",\"rep\":$rep,\"devices\":$CONNS,\"drain_ms\":$(ms $t0 $t1),\"start_ms\":$(ms $t1 $t2),\"all_back_after_start_ms\":$(ms $t2 $tb),\"all_back_after_sigterm_ms\":$(ms $t0 $tb),$pct,\"connect_attempts\":$connects,\"rss_kib_before\":$rss_before,\"new_server_peak_rss_kib\":$hwm,\"cpu_ms\":{\"old_server_drain\":$(( OLD_CPU - old0 )),\"clients_drain\":$(( cl1 - cl0 )),\"new_server\":$new1,\"clients_after_start\":$(( cl2 - cl1 ))},\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
    stop_devices
    stop_server
  done
fi

if [[ " $PHASES " == *" storm "* ]]; then
  for rep in $(seq "$REPS"); do
    dir=$WORK/storm-$rep
    mkdir -p "$dir"
    start_server "$dir" 0
    pair_up "$dir" "s$rep"
    cust=${DEVS[1]} agents=${DEVS[0]}
    kill -STOP "$cust"
    kill -TERM $SRV; wait $SRV 2>/dev/null || true
    start_server "$dir" "$PORT"
    wait_for "$dir.ag" back 300
    kill -USR1 "$agents"
    wait_for "$dir.ag" sent 300
    kill -USR1 "$cust" # pending until it runs again: expect K more
    s0=$(cpu $SRV) cl0=$(clients_cpu)
    t0=$(now)
    kill -CONT "$cust"
    wait_for "$dir.cu" back 300
    s1=$(cpu $SRV) cl1=$(clients_cpu)
    tb=$(field "$dir.cu" back 4)
    pct="[$(ms $t0 "$(field "$dir.cu" back 5)"),$(ms $t0 "$(field "$dir.cu" back 6)"),$(ms $t0 "$(field "$dir.cu" back 7)")]"
    hwm=$(kib $SRV VmHWM)
    echo "{\"bench\":\"storm\",\"rep\":$rep,\"devices\":$(( CONNS / 2 )),\"missed_each\":$K,\"all_synced_ms\":$(ms $t0 $tb),\"p50_p90_p99_ms\":$pct,\"server_peak_rss_kib\":$hwm,\"cpu_ms\":{\"server\":$(( s1 - s0 )),\"clients\":$(( cl1 - cl0 ))},\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
    stop_devices
    stop_server
  done
fi
