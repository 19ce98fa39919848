#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests and benchmarks, on loopback.
#
#   scripts/pgtest.sh start DIR [FSYNC]  initdb into DIR, start on a free port,
#                                       print the server's URL (no database)
#   scripts/pgtest.sh stop DIR           stop it (by the postmaster's PID) and
#                                       remove DIR
#   scripts/pgtest.sh url DIR            print the URL of a started cluster
#   scripts/pgtest.sh kill DIR           kill -9 the server and its processes
#   scripts/pgtest.sh restart DIR        start it again, on the same port
#   scripts/pgtest.sh pause|resume DIR   SIGSTOP / SIGCONT all its processes
#
# With PGTEST_TMPFS_MB set, start puts the cluster's data folder on a tmpfs
# of that size (root only), for tests of a full disk; stop unmounts it.
# PGTEST_CONF adds lines to postgresql.conf (the benchmark's
# shared_preload_libraries).
#
# PostgreSQL refuses to run as root: as root, the cluster runs as the user
# sbpg, made here if missing. Its socket lives in DIR; clients connect over
# TCP to 127.0.0.1 as the superuser "postgres" (trust: it listens on
# loopback only). FSYNC is "on" (the default) or "off".
set -euo pipefail

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PGBIN/initdb" ] || { echo "pgtest: no PostgreSQL server (postgresql-15)" >&2; exit 1; }
RUNAS=()
if [ "$(id -u)" -eq 0 ]; then
  id sbpg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin sbpg
  RUNAS=(runuser -u sbpg --)
fi

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|url|kill|restart|pause|resume DIR" >&2; exit 2; }

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

postmaster() { head -1 "$dir/data/postmaster.pid" 2>/dev/null || true; }

# The server's processes: the postmaster and its children.
procs() {
  local pid
  pid=$(postmaster)
  [ -n "$pid" ] || return 0
  echo "$pid"
  pgrep -P "$pid" || true
}

case "$cmd" in
start)
  fsync=${3:-on}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -n "${PGTEST_TMPFS_MB:-}" ]; then
    mkdir -p "$dir/data"
    mount -t tmpfs -o size="${PGTEST_TMPFS_MB}m" tmpfs "$dir/data"
    [ ${#RUNAS[@]} -gt 0 ] && chown sbpg "$dir/data"
    chmod 700 "$dir/data"
  fi
  [ ${#RUNAS[@]} -gt 0 ] && chown sbpg "$dir"
  chmod 700 "$dir"
  "${RUNAS[@]}" "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust \
    -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  port=$(free_port)
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = $fsync
synchronous_commit = on
max_connections = 200
shared_buffers = 256MB
max_wal_size = 2GB
log_min_messages = warning
${PGTEST_CONF:-}
EOF
  "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  echo "postgresql://postgres@127.0.0.1:$port" >"$dir/url"
  cat "$dir/url"
  ;;
stop)
  [ -d "$dir" ] || exit 0
  pid=$(postmaster)
  if [ -n "$pid" ]; then
    procs | xargs -r kill -CONT 2>/dev/null || true  # a test may have paused it
    kill -INT "$pid" 2>/dev/null || true            # fast shutdown
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  mountpoint -q "$dir/data" 2>/dev/null && umount -l "$dir/data"
  rm -rf "$dir"
  ;;
kill)
  pids=$(procs)
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  for p in $pids; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  done
  ;;
restart)
  "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    start >/dev/null || { tail -20 "$dir/server.log" >&2; exit 1; }
  ;;
pause)
  procs | xargs -r kill -STOP
  ;;
resume)
  procs | xargs -r kill -CONT
  ;;
url)
  cat "$dir/url"
  ;;
*)
  echo "usage: $0 start|stop|url|kill|restart|pause|resume DIR" >&2
  exit 2
  ;;
esac
