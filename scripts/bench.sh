#!/usr/bin/env bash
# make bench: the standard cs-chat workload (DESIGN.md §7) against a fresh
# server with the default durability (fsync per group commit), the store
# on SQLite, then on PostgreSQL (a throwaway cluster on this machine,
# scripts/pgtest.sh, synchronous_commit on). Prints one JSON line per run;
# docs/benchmarks.md records the figures. STORES=sqlite or STORES=pg runs
# one of them; PG_ARGS adds server options to the PostgreSQL runs
# (PG_ARGS="--store-writers 1").
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BUILD=${1:-build}
CONVS=${CONVS:-500}
MSGS=${MSGS:-200}
RATE=${RATE:-10000}
PG_RATE=${PG_RATE:-5000}
STORES=${STORES:-sqlite pg}
SECRET=bench-secret
DATA=$(mktemp -d /tmp/sbbench.XXXXXX)
PGDIR=$DATA.pg
STORE_ARGS=()
cleanup() {
  kill $SRV 2>/dev/null || true
  wait $SRV 2>/dev/null || true
  [ -d "$PGDIR" ] && "$(dirname "$0")"/pgtest.sh stop "$PGDIR"
  rm -rf "$DATA" "$DATA.log"
}
trap cleanup EXIT

# The abuse limits are off: 1,000 clients share 127.0.0.1 and each sends
# faster than a person would (--sends-per-s, --conns-per-addr).
# It listens on a port of its own choosing (it prints it): a server left
# over on a fixed port would otherwise answer in its place.
start_server() {
  rm -rf "$DATA"/*
  if [ -n "${PGURL:-}" ]; then   # a fresh database per run
    DB=bench$RANDOM$RANDOM
    psql -q "$PGURL/postgres" -c "CREATE DATABASE $DB" >/dev/null
    # shellcheck disable=SC2206 # PG_ARGS: words, e.g. "--store-writers 1"
    STORE_ARGS=(--store "$PGURL/$DB" ${PG_ARGS:-})
  fi
  local ok=0
  sb_start "$DATA.log" "$BUILD"/switchboard --listen 127.0.0.1:0 --data "$DATA" \
    --secret $SECRET --sends-per-s 0 --conns-per-addr 0 --quiet \
    "${STORE_ARGS[@]}" "$@" || ok=$?
  SRV=$SB_PID PORT=$SB_PORT
  if [ "$ok" = 0 ]; then
    for _ in $(seq 100); do
      curl -sf http://127.0.0.1:$PORT/healthz >/dev/null 2>&1 && return 0
      sleep 0.05
    done
  fi
  echo "bench: server did not start: $(cat "$DATA.log")" >&2; exit 1
}
stop_server() { kill $SRV; wait $SRV || true; }

# Where a PostgreSQL run's time goes: the database's transactions and
# statements (pg_stat_statements: each a round trip unless pipelined), the
# cluster's WAL records, bytes, writes and syncs, and the CPU time of all
# its processes (those running, and those ended, which the postmaster has
# reaped), as counters.
pg_cpu_ticks() {
  local pm
  pm=$(head -1 "$PGDIR/data/postmaster.pid")
  { cat /proc/"$pm"/stat; for p in $(pgrep -P "$pm"); do cat /proc/"$p"/stat 2>/dev/null || true; done; } |
    sed 's/^.*) //' | awk -v pm="$pm" 'NR == 1 { t += $14 + $15 } { t += $12 + $13 } END { print t }'
}
pg_counters() {
  echo "$(psql -Atq -F' ' "$PGURL/postgres" -c "SELECT
    (SELECT xact_commit FROM pg_stat_database WHERE datname = '$DB'),
    (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s
       JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$DB'),
    wal_records, wal_bytes, wal_write, wal_sync FROM pg_stat_wal") $(pg_cpu_ticks)"
}

run() { # label, sbbench args...
  local label=$1; shift
  start_server
  local before=
  [ -n "${PGURL:-}" ] && before=$(pg_counters)
  printf '%s ' "$label"
  "$BUILD"/sbbench --url ws://127.0.0.1:$PORT/ws --secret $SECRET \
    --convs $CONVS --msgs $MSGS --server-pid $SRV "$@" || true
  stop_server
  if [ -n "$before" ]; then
    sleep 1 # the backends' statistics reach the shared counters
    # shellcheck disable=SC2086
    set -- $before $(pg_counters)
    awk -v n=$((CONVS * MSGS * 2)) -v hz="$(getconf CLK_TCK)" \
      -v c="$1 $2 $3 $4 $5 $6 $7" -v d="$8 $9 ${10} ${11} ${12} ${13} ${14}" 'BEGIN {
      split(c, a, " "); split(d, b, " ")
      printf "#   per message: %.3f commits, %.2f statements, %.1f WAL records, %.0f WAL bytes, %.3f WAL writes, %.3f WAL syncs, %.1f us of PostgreSQL CPU\n",
        (b[1]-a[1])/n, (b[2]-a[2])/n, (b[3]-a[3])/n, (b[4]-a[4])/n, (b[5]-a[5])/n, (b[6]-a[6])/n, (b[7]-a[7])/hz/n*1e6 }'
    # The statements that took the database's time in this run.
    psql -Atq -F' | ' "$PGURL/postgres" -c "SELECT
      round(total_exec_time::numeric / $((CONVS * MSGS * 2)) * 1000, 1) || ' us/msg',
      calls, left(regexp_replace(query, '\s+', ' ', 'g'), 90)
      FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
      WHERE d.datname = '$DB' ORDER BY total_exec_time DESC LIMIT 4" |
      sed 's/^/#     /'
    # The run's database goes: left, autovacuum would work on it during
    # the next runs, and their figures would count its CPU.
    psql -q "$PGURL/postgres" -c "DROP DATABASE $DB" >/dev/null
  fi
}

echo "# machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) convs=$CONVS msgs=$MSGS body=100B durability=fsync"
# The floor under every durable commit: the store disk's fdatasync.
printf 'fsync-4k '
"$(dirname "$0")"/fsync-latency.py "$DATA" 2000 10
if [[ " $STORES " == *" sqlite "* ]]; then
  run "closed-W16-proto" --window 16
  run "closed-W1-proto " --window 1
  run "closed-W16-json " --window 16 --json
  run "open-${RATE}/s-W16" --window 16 --rate $RATE
  run "open-${RATE}/s-W1 " --window 1 --rate $RATE
fi
if [[ " $STORES " == *" pg "* ]]; then
  PGURL=$(PGTEST_CONF="shared_preload_libraries = 'pg_stat_statements'" \
    "$(dirname "$0")"/pgtest.sh start "$PGDIR" on)
  psql -q "$PGURL/postgres" -c "CREATE EXTENSION pg_stat_statements" >/dev/null
  echo "# PostgreSQL $(psql -Atc 'SHOW server_version' "$PGURL/postgres"), synchronous_commit on"
  run "pg-closed-W16-proto" --window 16
  run "pg-closed-W1-proto " --window 1
  run "pg-open-${PG_RATE}/s-W16" --window 16 --rate $PG_RATE
  run "pg-open-${PG_RATE}/s-W1 " --window 1 --rate $PG_RATE
  PGURL=
  STORE_ARGS=()
fi

# The sensitive-word filter alone, no server: scan throughput (MB/s) over a
# 64 MiB mixed Chinese/English corpus in body-sized messages, and the time
# it adds to a 100-byte message, with 10,000 words generated from a seed
# (docs/benchmarks.md, "Sensitive-word filter").
if [ -x "$BUILD"/sbfilterbench ]; then
  printf 'filter-10k-words '
  "$BUILD"/sbfilterbench --corpus-mib 64 --msgs 1000000 | tail -1 || true
fi
