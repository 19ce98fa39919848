#!/usr/bin/env bash
# The desk configuration kept in the store and changed by admins with
# sbctl, against the real server: a capacity raised and an agent added
# while conversations wait are assigned at once, without a restart; an
# agent removed hands its conversations to the queue (and on to the agent
# with room); a broken configuration is refused and the old one stays; a
# non-admin gets a clear refusal; a restart with the same --desk file keeps
# the admins' changes; SIGHUP imports the file once it changed.
# Usage: admin_desk.sh SWITCHBOARD SBCTL
set -euo pipefail
SRV_BIN=$1
CTL=$2
DIR=$(mktemp -d /tmp/sbdesk.XXXXXX)
PID= BG=()
cleanup() {
  for p in "${BG[@]}" $PID; do kill "$p" 2>/dev/null || true; done
  for p in "${BG[@]}" $PID; do wait "$p" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
mkdir -p "$DIR/data"
cat > "$DIR/desk.json" <<'EOF'
{"desks": [{"id": "d", "groups": ["g1", "g2"], "default_group": "g1",
  "greeting": {"en": "Hi"}, "fallback": {"en": "Sorry?"},
  "out_of_hours": {"en": "Closed"},
  "rules": {"en": [{"keywords": ["human"], "handoff": true}]}}],
 "agents": [{"id": "a1", "groups": ["g1"], "capacity": 1}]}
EOF

start() { # starts the server on $PORT (0: any), sets PID and PORT
  "$SRV_BIN" --listen "127.0.0.1:${PORT:-0}" --data "$DIR/data" --secret s \
    --desk "$DIR/desk.json" >> "$DIR/log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do
    grep -q "ready on port" "$DIR/log" 2>/dev/null && break
    sleep 0.05
  done
  PORT=$(sed -n 's/.*ready on port \([0-9]*\).*/\1/p' "$DIR/log" | tail -1)
  export SB_URL=ws://127.0.0.1:$PORT/ws
}
stop() {
  kill -TERM "$PID"
  wait "$PID" || true
  PID=
  : > "$DIR/log"
}
tok() { "$CTL" token --secret s --sub "$1" --role "$2"; }

fails=0 passes=0
ok() { passes=$((passes + 1)); echo "ok: $1"; }
bad() { fails=$((fails + 1)); echo "FAIL: $1"; [ -f "$DIR/last" ] && cat "$DIR/last"; }
check() { # name, expected exit status, command...
  local name=$1 want=$2; shift 2
  set +e; "$@" > "$DIR/last" 2>&1; local got=$?; set -e
  if [ "$got" = "$want" ]; then ok "$name"; else bad "$name: exit $got, want $want"; fi
}
has() { # name, text: the last output has text
  if grep -qF -- "$2" "$DIR/last"; then ok "$1"; else bad "$1: no '$2'"; fi
}
# Waits (up to 5 s) until customer $2's conversation list has text $3.
wait_list() {
  for _ in $(seq 100); do
    "$CTL" list --token "$2" > "$DIR/last" 2>&1 || true
    if grep -qF -- "$3" "$DIR/last"; then ok "$1"; return; fi
    sleep 0.05
  done
  bad "$1: no '$3'"
}
# A customer opens its conversation and asks for a person.
ask() {
  local conv
  conv=$("$CTL" service open --token "$1")
  "$CTL" send --token "$1" --conv "$conv" "a human please" > /dev/null
}
online() { # keeps agent $1 connected in the background
  "$CTL" listen --token "$(tok "$1" agent)" --device "$1-d" > /dev/null 2>&1 &
  BG+=($!)
  sleep 0.3
}

start
grep -q "imported from .*the store had none" "$DIR/log" && ok "imported at the first start" || bad "not imported"
AD=$(tok root admin)
C1=$(tok c1 customer) C2=$(tok c2 customer) C3=$(tok c3 customer)
online a1

ask "$C1"
wait_list "c1 goes to a1" "$C1" "assigned desk=d group=g1 agent=a1"
ask "$C2"
wait_list "c2 waits: a1 is full" "$C2" "queued"

check "admin raises a1's capacity (JSON encoding)" 0 "$CTL" admin desk agent-set a1 --capacity 2 --json --token "$AD"
has "the answer says what was done" "agent a1 updated: groups g1, capacity 2"
wait_list "c2 is assigned to a1 at once" "$C2" "assigned desk=d group=g1 agent=a1"

ask "$C3"
wait_list "c3 waits" "$C3" "queued"
online a2
check "admin adds agent a2" 0 "$CTL" admin desk agent-set a2 --groups g1 --token "$AD"
wait_list "c3 is assigned to the new agent a2" "$C3" "agent=a2"

echo '{"desks": [], "agents": []}' > "$DIR/bad.json"
check "a broken configuration is refused" 1 "$CTL" admin desk set "$DIR/bad.json" --token "$AD"
has "with the reason" "desks: want a non-empty array"
check "the old one stays" 0 "$CTL" admin desk show --json --token "$AD"
has "a2 is still there" '"id": "a2"'
check "an unknown group is refused" 1 "$CTL" admin desk agent-set a3 --groups nope --token "$AD"
has "naming it" "unknown group"

check "a1 is removed" 0 "$CTL" admin desk agent-rm a1 --token "$AD"
wait_list "a1's conversation c1 goes to a2" "$C1" "agent=a2"
wait_list "and so does c2" "$C2" "agent=a2"

check "an agent may not change the desks" 1 "$CTL" admin desk agent-set a9 --groups g1 --token "$(tok a2 agent)"
has "refused as forbidden" "ERR_FORBIDDEN"
has "saying why" "role admin"
check "nor show them" 1 "$CTL" admin desk show --token "$C1"

check "a canned reply is added" 0 "$CTL" admin desk canned-add bye Bye "Goodbye!" --token "$AD"
check "agents list it" 0 "$CTL" canned --token "$(tok a2 agent)"
has "the new canned reply" "bye Goodbye!"
check "out-of-hours text in zh-CN" 0 "$CTL" admin desk text out_of_hours zh-CN "下班了" --token "$AD"

stop
PORT=$PORT start
grep -q "from the store .*unchanged since its import" "$DIR/log" && ok "restart with the same file: the store's" || bad "restart: $(cat "$DIR/log")"
check "after the restart" 0 "$CTL" admin desk show --token "$AD"
has "a2 stays" '"id": "a2"'
has "a2's groups stay" '"g1"'
has "the text stays" "下班了"
if grep -qF '"id": "a1"' "$DIR/last"; then bad "a1 came back"; else ok "a1 stays removed"; fi

# The file changes: SIGHUP imports it, replacing the admins' changes.
sed -i 's/"id": "a1"/"id": "a7"/' "$DIR/desk.json"
kill -HUP "$PID"
for _ in $(seq 100); do grep -q "imported from" "$DIR/log" && break; sleep 0.05; done
grep -q "desk configuration imported from" "$DIR/log" && ok "SIGHUP imports the changed file" || bad "SIGHUP: $(cat "$DIR/log")"
check "the file's configuration is in force" 0 "$CTL" admin desk show --token "$AD"
has "a7 is there" '"id": "a7"'
kill -HUP "$PID"
for _ in $(seq 100); do grep -q "unchanged" "$DIR/log" && break; sleep 0.05; done
grep -q "unchanged since its import" "$DIR/log" && ok "SIGHUP again: unchanged" || bad "second SIGHUP: $(cat "$DIR/log")"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
