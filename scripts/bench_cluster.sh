#!/usr/bin/env bash
# make bench-cluster: the cs-chat workload (DESIGN.md §7) on three gateway
# nodes sharing one PostgreSQL (a throwaway cluster, synchronous_commit on)
# and one nats-server, all on this machine; every conversation's agent on
# one node and its customer on the next (sbbench --spread), so that every
# message crosses nodes. For comparison the same workload on one node on
# the same PostgreSQL. For each run: sbbench's JSON line, then the CPU
# seconds each part used (each node, PostgreSQL's processes, nats-server)
# and per delivered message. docs/scaling.md reads them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BUILD=${1:-build}
CONVS=${CONVS:-500}
MSGS=${MSGS:-200}
RATE=${RATE:-3000}
SECRET=bench-secret
here=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/sbbenchc.XXXXXX)
chmod 755 "$DIR"
NODES=()
NATS=
cleanup() {
  for p in "${NODES[@]}" $NATS; do kill $p 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$here/pgtest.sh" stop "$DIR/pg" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU seconds (user + system) of the given processes, from /proc.
cpu() {
  local tck total=0 p f
  tck=$(getconf CLK_TCK)
  for p in "$@"; do
    f=$(cat /proc/$p/stat 2>/dev/null) || continue
    f=${f##*) }
    set -- $f
    total=$((total + ${12} + ${13}))
  done
  echo "scale=3; $total / $tck" | bc
}
pg_pids() { pgrep -u sbpg -d ' ' postgres || pgrep -d ' ' postgres; }

PGURL=$("$here/pgtest.sh" start "$DIR/pg" on)
NATS_PORT=$(port)
nats-server -a 127.0.0.1 -p $NATS_PORT >"$DIR/nats.log" 2>&1 &
NATS=$!

# n nodes (1: alone, no NATS) on a fresh database; URLS, NODES set.
start_nodes() {
  local n=$1 db=bench$RANDOM$RANDOM i
  psql -q "$PGURL/postgres" -c "CREATE DATABASE $db" >/dev/null
  NODES=()
  URLS=
  for i in $(seq $n); do
    local cl=()
    [ "$n" -gt 1 ] && cl=(--nats nats://127.0.0.1:$NATS_PORT --node n$i)
    local ok=0
    sb_start "$DIR/n$i.log" "$BUILD"/switchboard --listen 127.0.0.1:0 \
      --data "$DIR/d$i" --store "$PGURL/$db" --secret $SECRET \
      --sends-per-s 0 --conns-per-addr 0 --quiet "${cl[@]}" || ok=$?
    NODES+=($SB_PID)
    [ "$ok" = 0 ] || { echo "bench-cluster: node $i did not start" >&2; cat "$DIR/n$i.log" >&2; exit 1; }
    URLS+="${URLS:+,}ws://127.0.0.1:$SB_PORT/ws"
  done
}
stop_nodes() {
  for p in "${NODES[@]}"; do kill $p 2>/dev/null || true; done
  for p in "${NODES[@]}"; do wait $p 2>/dev/null || true; done
  NODES=()
}

run() { # label, nodes, sbbench args...
  local label=$1 n=$2; shift 2
  start_nodes $n
  sleep 1
  local c0 p0 q0 out
  c0=(); for p in "${NODES[@]}"; do c0+=($(cpu $p)); done
  p0=$(cpu $(pg_pids)); q0=$(cpu $NATS)
  out=$("$BUILD"/sbbench --url "$URLS" --secret $SECRET --convs $CONVS \
    --msgs $MSGS $([ $n -gt 1 ] && echo --spread) "$@" || true)
  local nodes_cpu="" i=0 d
  for p in "${NODES[@]}"; do
    nodes_cpu+="${nodes_cpu:+,}$(echo "$(cpu $p) - ${c0[$i]}" | bc)"
    i=$((i + 1))
  done
  local pg_cpu nats_cpu
  pg_cpu=$(echo "$(cpu $(pg_pids)) - $p0" | bc)
  nats_cpu=$(echo "$(cpu $NATS) - $q0" | bc)
  d=$(sed -n 's/.*"delivered":\([0-9]*\).*/\1/p' <<<"$out")
  printf '%s %s\n' "$label" "$out"
  printf '%s cpu_s nodes=[%s] postgres=%s nats=%s' "$label" "$nodes_cpu" "$pg_cpu" "$nats_cpu"
  if [ -n "$d" ] && [ "$d" -gt 0 ]; then
    local tot
    tot=$(echo "$nodes_cpu" | tr ',' '+' | bc)
    printf ' us_per_delivered: nodes=%s postgres=%s nats=%s' \
      "$(echo "scale=1; $tot * 1000000 / $d" | bc)" \
      "$(echo "scale=1; $pg_cpu * 1000000 / $d" | bc)" \
      "$(echo "scale=1; $nats_cpu * 1000000 / $d" | bc)"
  fi
  echo
  stop_nodes
}

echo "# machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) convs=$CONVS msgs=$MSGS body=100B, PostgreSQL $(psql -Atc 'SHOW server_version' "$PGURL/postgres") synchronous_commit on, $(nats-server --version)"
run "cluster3-closed-W16" 3 --window 16
run "cluster3-open-${RATE}/s-W1" 3 --window 1 --rate $RATE
run "single-closed-W16  " 1 --window 16
run "single-open-${RATE}/s-W1" 1 --window 1 --rate $RATE
