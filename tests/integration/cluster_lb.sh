#!/usr/bin/env bash
# integ_cluster_lb: `make cluster` as a user runs it (scripts/cluster.sh:
# PostgreSQL, nats-server, three nodes, HAProxy), on ports of its own; sbctl
# through HAProxy's one address opens a conversation, sends and reads it
# back, while one node and then another are stopped (SIGTERM).
#
#   cluster_lb.sh SWITCHBOARD_BUILD_DIR SBCTL SCRIPTS_DIR
set -euo pipefail
build=$1 sbctl=$2 scripts=$3
for t in haproxy nats-server; do
  command -v $t >/dev/null || { echo "integ_cluster_lb: no $t, skipped"; exit 77; }
done
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || { echo "integ_cluster_lb: no PostgreSQL, skipped"; exit 77; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
lb=$(port) nats=$(port)
# Three node ports and three operations ports after them, free, below
# Linux's ephemeral range.
free_run() {
  python3 - <<'PY'
import random, socket
for _ in range(100):
    b = random.randrange(20000, 32000)
    try:
        for p in (b, b + 1, b + 2, b + 100, b + 101, b + 102):
            s = socket.socket(); s.bind(("127.0.0.1", p)); s.close()
        print(b); break
    except OSError:
        pass
PY
}
nodes=$(free_run) admin=$((nodes + 100))
dir=$(mktemp -d /tmp/sbclb.XXXXXX)
chmod 755 "$dir" # PostgreSQL runs as another user
LISTEN=127.0.0.1:$lb NATS_PORT=$nats NODE_PORT=$nodes ADMIN_PORT=$admin \
  "$scripts/cluster.sh" "$build" "$dir/c" >"$dir/out" 2>&1 &
cl=$!
cleanup() {
  kill -TERM $cl 2>/dev/null || true
  wait $cl 2>/dev/null || true
  "$scripts/pgtest.sh" stop "$dir/c/pg" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 300); do grep -q "Switchboard cluster" "$dir/out" && break; sleep 0.1; done
grep -q "Switchboard cluster" "$dir/out" || { cat "$dir/out"; exit 1; }

url=ws://127.0.0.1:$lb/ws
tok() { curl -sf "http://127.0.0.1:$lb/demo/token?user=$1&role=$2" | sed 's/.*"token":"\([^"]*\)".*/\1/'; }
ta=$(tok alice customer) tb=$(tok bob agent)
"$sbctl" list --url $url --token "$tb" >/dev/null # bob is a user the server knows
conv=$("$sbctl" open --url $url --token "$ta" --member bob)
"$sbctl" send --url $url --token "$ta" --conv "$conv" -- one >/dev/null
"$sbctl" history --url $url --token "$tb" --conv "$conv" | grep -q "alice one"
for n in 1 2; do
  pkill -TERM -f -- "--data $dir/c/node$n"
  sleep 2.5 # HAProxy's checks (every second, down after two) take it out
  for i in 1 2 3; do
    "$sbctl" send --url $url --token "$ta" --conv "$conv" -- "after$n-$i" >/dev/null
  done
done
out=$("$sbctl" history --url $url --token "$tb" --conv "$conv")
for w in one after1-1 after1-2 after1-3 after2-1 after2-2 after2-3; do
  grep -q "alice $w\$" <<<"$out" || { echo "missing $w in:"; echo "$out"; exit 1; }
done
[ "$(wc -l <<<"$out")" -eq 7 ] || { echo "not 7 messages:"; echo "$out"; exit 1; }
echo "integ_cluster_lb: 7 messages through HAProxy while two of the three nodes stopped"
