#!/usr/bin/env bash
# make bench: the standard cs-chat workload (DESIGN.md §7) against a fresh
# server with the default durability (fsync per group commit). Prints one
# JSON line per run; docs/benchmarks.md records the figures.
set -euo pipefail
BUILD=${1:-build}
CONVS=${CONVS:-500}
MSGS=${MSGS:-200}
RATE=${RATE:-10000}
SECRET=bench-secret
DATA=$(mktemp -d /tmp/sbbench.XXXXXX)
trap 'kill $SRV 2>/dev/null || true; wait $SRV 2>/dev/null || true; rm -rf "$DATA" "$DATA.log"' EXIT

# The abuse limits are off: 1,000 clients share 127.0.0.1 and each sends
# faster than a person would (--sends-per-s, --conns-per-addr).
# It listens on a port of its own choosing (it prints it): a server left
# over on a fixed port would otherwise answer in its place.
start_server() {
  rm -rf "$DATA"/*
  "$BUILD"/switchboard --listen 127.0.0.1:0 --data "$DATA" --secret $SECRET \
    --sends-per-s 0 --conns-per-addr 0 --quiet "$@" > "$DATA.log" 2>&1 &
  SRV=$!
  for _ in $(seq 100); do
    PORT=$(sed -n 's/^switchboard: ready on port \([0-9]*\)$/\1/p' "$DATA.log")
    [ -n "$PORT" ] && curl -sf http://127.0.0.1:$PORT/healthz >/dev/null 2>&1 && return 0
    kill -0 $SRV 2>/dev/null || break
    sleep 0.05
  done
  echo "bench: server did not start: $(cat "$DATA.log")" >&2; exit 1
}
stop_server() { kill $SRV; wait $SRV || true; }

run() { # label, sbbench args...
  local label=$1; shift
  start_server
  printf '%s ' "$label"
  "$BUILD"/sbbench --url ws://127.0.0.1:$PORT/ws --secret $SECRET \
    --convs $CONVS --msgs $MSGS --server-pid $SRV "$@" || true
  stop_server
}

echo "# machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) convs=$CONVS msgs=$MSGS body=100B durability=fsync"
run "closed-W16-proto" --window 16
run "closed-W1-proto " --window 1
run "closed-W16-json " --window 16 --json
run "open-${RATE}/s-W16" --window 16 --rate $RATE
run "open-${RATE}/s-W1 " --window 1 --rate $RATE

# The sensitive-word filter alone, no server: scan throughput (MB/s) over a
# 64 MiB mixed Chinese/English corpus in body-sized messages, and the time
# it adds to a 100-byte message, with 10,000 words generated from a seed
# (docs/benchmarks.md, "Sensitive-word filter").
if [ -x "$BUILD"/sbfilterbench ]; then
  printf 'filter-10k-words '
  "$BUILD"/sbfilterbench --corpus-mib 64 --msgs 1000000 | tail -1 || true
fi
