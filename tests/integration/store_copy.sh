#!/usr/bin/env bash
# Moving out of SQLite, as docs/operations.md tells it: a server on SQLite
# takes messages and a conversation tag; `sbctl store copy` copies its
# store into an empty PostgreSQL database while it runs; more messages
# come, and a tag on a message copied already; the server stops and a
# second copy brings only what changed (a third, nothing); the same server
# then runs on PostgreSQL and serves every message, and new messages and
# conversations after them; attachments sent before the move (their
# records and their bytes, one of them after the first copy) are served
# from PostgreSQL, byte for byte. A database with conversations of its own
# is refused. Usage: store_copy.sh SWITCHBOARD SBCTL PGTEST_SH
set -euo pipefail
. "$(dirname "$0")/../../scripts/lib.sh"
SRV_BIN=$1
CTL=$2
PGTEST=$3
DIR=$(mktemp -d /tmp/sbcopy.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  "$PGTEST" stop "$DIR/pg" || true
  rm -rf "$DIR"
}
trap cleanup EXIT
mkdir -p "$DIR/data"
chmod 755 "$DIR" # the cluster's user (not root) reaches its folder in it
PG=$("$PGTEST" start "$DIR/pg")
psql -q "$PG/postgres" -c "CREATE DATABASE moved" -c "CREATE DATABASE other"
DB=$PG/moved

start() { # the server on SQLite, or on $1 (a URI)
  local ok=0
  sb_start "$DIR/log" "$SRV_BIN" --listen 127.0.0.1:0 --data "$DIR/data" \
    --secret s ${1:+--store "$1"} || ok=$?
  PID=$SB_PID PORT=$SB_PORT
  [ "$ok" = 0 ] || { echo "store_copy: the server did not start"; cat "$DIR/log"; exit 1; }
  export SB_URL=ws://127.0.0.1:$PORT/ws
}
stop() { kill -TERM "$PID"; wait "$PID" || true; PID=; }
tok() { "$CTL" token --secret s --sub "$1" --role "$2"; }

fails=0 passes=0
ok() { passes=$((passes + 1)); echo "ok: $1"; }
bad() { fails=$((fails + 1)); echo "FAIL: $1"; cat "$DIR/last" 2>/dev/null || true; }
check() { # name, expected exit status, command...
  local name=$1 want=$2; shift 2
  set +e; "$@" > "$DIR/last" 2>&1; local got=$?; set -e
  if [ "$got" = "$want" ]; then ok "$name"; else bad "$name: exit $got, want $want"; fi
}
has() { if grep -qF -- "$2" "$DIR/last"; then ok "$1"; else bad "$1: no '$2'"; fi; }

ALICE=$(tok alice customer) BOB=$(tok bob agent)
start
# A member is a user the server has met: bob connects once first.
"$CTL" list --token "$BOB" > /dev/null
CONV=$("$CTL" open --member bob --token "$ALICE")
for i in $(seq 1 30); do
  "$CTL" send --conv "$CONV" --token "$ALICE" "message $i from alice" >/dev/null
done
"$CTL" send --conv "$CONV" --token "$BOB" "bob answers" >/dev/null
"$CTL" tag --conv "$CONV" --token "$BOB" --add vip >/dev/null
head -c 300000 /dev/urandom | base64 > "$DIR/first.txt"
"$CTL" send --conv "$CONV" --token "$ALICE" --file "$DIR/first.txt" >/dev/null

# The first copy, while the server runs.
check "copy while running" 0 "$CTL" store copy --from "$DIR/data" --to "$DB"
has "first copy verified" "verified"
# 30 + 1 messages, the tag's event (conv.tagged) and the upload's message.
has "first copy: 33 messages" "33 messages (33 new)"
has "first copy: its upload" "1 uploads (1 files new)"

# More, then a tag on a message copied already (its flag changes), then a
# stop.
for i in $(seq 31 40); do
  "$CTL" send --conv "$CONV" --token "$ALICE" "message $i from alice" >/dev/null
done
"$CTL" tag --conv "$CONV" --seq 5 --add refund --token "$BOB" >/dev/null
head -c 1500000 /dev/urandom | base64 > "$DIR/second.txt"
"$CTL" send --conv "$CONV" --token "$BOB" --file "$DIR/second.txt" --name "log.txt" >/dev/null
stop

check "second copy" 0 "$CTL" store copy --from "$DIR/data" --to "$DB"
# 10 more, the second tag's event (msg.tagged) and the second upload's.
has "second copy brings the rest" "45 messages (12 new)"
has "second copy: the new upload's bytes" "2 uploads (1 files new)"
check "third copy: nothing new" 0 "$CTL" store copy --from "$DIR/data" --to "$DB"
has "third copy" "45 messages (0 new)"
has "third copy: no file again" "2 uploads (0 files new)"
t=$(psql -Atq "$DB" -c "SELECT tagged FROM messages WHERE conv_id = $CONV AND seq = 5")
[ "$t" = 1 ] && ok "a copied message's tag follows" || bad "a copied message's tag follows ($t)"

# The same server, on PostgreSQL now.
start "$DB"
check "history on PostgreSQL" 0 "$CTL" history --conv "$CONV" --limit 50 --token "$ALICE"
has "first message" "message 1 from alice"
has "last message before the move" "message 40 from alice"
has "the agent's answer" "bob answers"
for f in first second; do
  url=$(grep -o "/media/[0-9a-f]*" "$DIR/last" | sed -n "$([ $f = first ] && echo 1 || echo 2)p")
  curl -fsS -H "Authorization: Bearer $ALICE" "http://127.0.0.1:$PORT$url" -o "$DIR/$f.got" || true
  if cmp -s "$DIR/$f.txt" "$DIR/$f.got"; then ok "$f upload served from PostgreSQL"; else bad "$f upload served from PostgreSQL"; fi
done
check "send after the move" 0 "$CTL" send --conv "$CONV" --token "$ALICE" "after the move"
has "seq continues" "seq=46"
check "new conversation" 0 "$CTL" open --member bob --token "$(tok carol customer)"
if [ "$(cat "$DIR/last")" -gt "$CONV" ]; then ok "conv ids continue"; else bad "conv ids continue"; fi
stop

# A database with a store of its own is refused.
start "$PG/other"
"$CTL" list --token "$BOB" > /dev/null
"$CTL" open --member bob --token "$ALICE" > /dev/null
stop
check "non-empty target refused" 1 "$CTL" store copy --from "$DIR/data" --to "$PG/other"
has "says why" "conversations of its own"

echo "store_copy: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
