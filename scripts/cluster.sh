#!/usr/bin/env bash
# `make cluster`: Switchboard as a cluster on this machine, in the
# foreground until Ctrl-C: PostgreSQL (a cluster of scripts/pgtest.sh in
# DIR/pg, kept between runs), nats-server, three gateway nodes in demo mode
# with the web pages, and HAProxy in front of them on LISTEN.
#
#   scripts/cluster.sh BUILD DIR
#
# LISTEN (127.0.0.1:8080), NATS_PORT (4222), NODE_PORT (8081: the nodes on
# 8081..8083), ADMIN_PORT (9465: their operations ports, 9465..9467) and
# WEB (web/dist) change where things go.
set -euo pipefail

build=${1:?usage: $0 BUILD DIR}
dir=${2:?usage: $0 BUILD DIR}
listen=${LISTEN:-127.0.0.1:8080}
nats_port=${NATS_PORT:-4222}
node_port=${NODE_PORT:-8081}
admin_port=${ADMIN_PORT:-9465}
web=${WEB:-web/dist}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
chmod 755 "$dir" # PostgreSQL may run as another user (pgtest.sh)
dir=$(cd "$dir" && pwd)
bin=$(cd "$build" && pwd)/switchboard

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "cluster: stopping"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$here/pgtest.sh" kill "$dir/pg" >/dev/null 2>&1 || true
}
trap stop INT TERM EXIT

# PostgreSQL: the store of every node (the data stays in DIR/pg).
if [ -f "$dir/pg/url" ] && [ -d "$dir/pg/data" ]; then
  "$here/pgtest.sh" restart "$dir/pg"
else
  rm -rf "$dir/pg"
  "$here/pgtest.sh" start "$dir/pg" >/dev/null
fi
pg=$(cat "$dir/pg/url")
psql -q "$pg/postgres" -c "CREATE DATABASE switchboard" 2>/dev/null || true
store="$pg/switchboard"

# NATS: the news between the nodes.
nats-server -a 127.0.0.1 -p "$nats_port" >"$dir/nats.log" 2>&1 &
pids+=($!)

# Three nodes.
webopt=()
[ -f "$web/index.html" ] && webopt=(--web "$web")
backends=""
for i in 1 2 3; do
  port=$((node_port + i - 1))
  admin=$((admin_port + i - 1))
  "$bin" --demo --quiet --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    --store "$store" --nats "nats://127.0.0.1:$nats_port" --node "node$i" \
    --data "$dir/node$i" "${webopt[@]}" >"$dir/node$i.out" 2>"$dir/node$i.log" &
  pids+=($!)
  backends+="    server node$i 127.0.0.1:$port check port $admin"$'\n'
done
for i in 1 2 3; do
  for _ in $(seq 100); do
    grep -q "ready on port" "$dir/node$i.out" 2>/dev/null && break
    sleep 0.1
  done
  grep -q "ready on port" "$dir/node$i.out" ||
    { echo "cluster: node$i did not start:"; tail "$dir/node$i.log"; exit 1; }
done

# HAProxy: WebSocket-aware (HTTP mode passes the upgrade), each node checked
# on its /readyz so that a draining or stuck node gets no new clients.
cat >"$dir/haproxy.cfg" <<EOF
global
    maxconn 9000
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
    option http-server-close
frontend switchboard
    bind $listen
    default_backend nodes
backend nodes
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
$backends
EOF
haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 &
pids+=($!)
sleep 0.5
kill -0 "${pids[-1]}" 2>/dev/null ||
  { echo "cluster: haproxy did not start:"; cat "$dir/haproxy.log"; exit 1; }

cat <<EOF

Switchboard cluster: three nodes behind HAProxy on http://$listen/
  customer page:  http://$listen/            agent workbench: http://$listen/agent.html
  nodes:          127.0.0.1:$node_port..$((node_port + 2)) (metrics: 127.0.0.1:$admin_port..$((admin_port + 2))/metrics)
  store:          $store
  NATS:           nats://127.0.0.1:$nats_port
  logs:           $dir/node*.log, $dir/haproxy.log

Try it: open both pages, then stop a node (pkill -TERM -f -- '--node node2')
and watch its clients move to the others. The node that owns the desks says
so on its metrics (switchboard_cluster_desk_owner 1). Ctrl-C stops it all.
EOF
wait "${pids[0]}"
