#!/usr/bin/env bash
# The admin command that reloads the sensitive-word lists, against the real
# server with sbctl: an admin's reload is answered ok and the new list is in
# force for the next message; a broken list is refused (the old one stays);
# a customer may not ask; a second server on its port says why it exits
# even with --quiet. Usage: admin_reload.sh SWITCHBOARD SBCTL
set -euo pipefail
SRV_BIN=$1
CTL=$2
DIR=$(mktemp -d /tmp/sbadmin.XXXXXX)
PORT_FILE=$DIR/out
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
mkdir -p "$DIR/lists" "$DIR/data"
printf 'policy: block\n|alpha|\n' > "$DIR/lists/words.txt"
"$SRV_BIN" --listen 127.0.0.1:0 --data "$DIR/data" --secret s --quiet \
  --filter "$DIR/lists" > "$PORT_FILE" 2>&1 &
PID=$!
for _ in $(seq 100); do
  grep -q "ready on port" "$PORT_FILE" 2>/dev/null && break
  sleep 0.05
done
PORT=$(sed -n 's/.*ready on port \([0-9]*\).*/\1/p' "$PORT_FILE")
export SB_URL=ws://127.0.0.1:$PORT/ws
AD=$("$CTL" token --secret s --sub root --role admin)
AG=$("$CTL" token --secret s --sub agent1 --role agent)
CU=$("$CTL" token --secret s --sub cust1 --role customer)
fails=0 passes=0
check() { # name, expected exit status, command...
  local name=$1 want=$2; shift 2
  set +e; "$@" > "$DIR/last" 2>&1; local got=$?; set -e
  if [ "$got" = "$want" ]; then passes=$((passes + 1)); echo "ok: $name"
  else fails=$((fails + 1)); echo "FAIL: $name: exit $got, want $want"; cat "$DIR/last"; fi
}
# A conversation's members are users the server has met: cust1 connects
# once before the agent opens one with it.
"$CTL" list --token "$CU" > /dev/null
CONV=$("$CTL" open --token "$AG" --member cust1)
check "alpha is blocked" 1 "$CTL" send --token "$AG" --conv "$CONV" alpha
check "beta passes" 0 "$CTL" send --token "$AG" --conv "$CONV" beta
printf 'policy: block\n|beta|\n' > "$DIR/lists/words.txt"
check "admin reload" 0 "$CTL" admin reload-filter --token "$AD"
check "beta is blocked after the reload" 1 "$CTL" send --token "$AG" --conv "$CONV" beta
check "alpha passes after the reload" 0 "$CTL" send --token "$AG" --conv "$CONV" alpha
printf 'policy: sometimes\nbeta\n' > "$DIR/lists/words.txt"
check "a broken list is refused" 1 "$CTL" admin reload-filter --token "$AD"
check "the old list stays" 1 "$CTL" send --token "$AG" --conv "$CONV" beta
check "a customer may not reload" 1 "$CTL" admin reload-filter --token "$CU"
grep -q "ERR_FORBIDDEN" "$DIR/last" || { fails=$((fails + 1)); echo "FAIL: not ERR_FORBIDDEN"; }
# Errors are printed even with --quiet: a second server on the same port
# says why it exits (a silent exit 1 let a benchmark talk to a stale one).
check "a taken port is refused" 1 "$SRV_BIN" --listen 127.0.0.1:$PORT \
  --data "$DIR/data2" --secret s --quiet
grep -q "cannot listen on 127.0.0.1:$PORT" "$DIR/last" ||
  { fails=$((fails + 1)); echo "FAIL: --quiet hid the error: $(cat "$DIR/last")"; }
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
