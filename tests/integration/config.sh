#!/usr/bin/env bash
# The configuration file against the real server: every option --help
# lists (but the command-line ones) is taken in a file; a bad file is
# refused with a line number for each problem, by --check-config and at
# start; flags override the file, and what the file sets is in force.
# Usage: config.sh SWITCHBOARD
set -euo pipefail
SRV=$1
DIR=$(mktemp -d /tmp/sbconfig.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); echo "ok: $1"; }
bad() { fails=$((fails + 1)); echo "FAIL: $1"; }
has() { # name, file, text
  if grep -qF -- "$3" "$2"; then ok "$1"; else bad "$1: no '$3' in: $(cat "$2")"; fi
}
# Starts the server in the background with its output in $DIR/$1.out and
# .err; waits for the ready line (or its exit).
start() {
  local name=$1; shift
  "$SRV" "$@" > "$DIR/$name.out" 2> "$DIR/$name.err" &
  PIDS+=($!)
  LAST=$!
  for _ in $(seq 200); do
    grep -q "ready on port" "$DIR/$name.out" 2>/dev/null && return 0
    kill -0 "$LAST" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# 1. Every option in one file.
echo s > "$DIR/secret"
ALL=$DIR/all.conf n=0
while IFS= read -r line; do
  [[ $line =~ ^\ \ --([a-z-]+)(\ ([A-Z:]+))? ]] || continue
  name=${BASH_REMATCH[1]} arg=${BASH_REMATCH[3]}
  case $name in config|check-config|help|version) continue ;; esac
  case $arg in
    "") val=yes ;;
    N) val=7 ;;
    HOST:PORT) val=127.0.0.1:0 ;;
    DIR) val=$DIR ;;
    FILE) val=$DIR/secret ;;
    URL) val=postgresql://u@localhost/db ;;
    MODE) val=os ;;
    F) val=json ;;
    L) val=warn ;;
    O) val=https://support.example.com ;;
    TYPES) val=image/png,application/pdf ;;
    *) val=s ;;
  esac
  [ "$name" = store-writers ] && val=2 # 1 to 4
  echo "$name $val" >> "$ALL"
  n=$((n + 1))
done < <("$SRV" --help)
[ "$n" -ge 30 ] && ok "--help lists $n options for the file" || bad "only $n options in --help"
if "$SRV" --check-config "$ALL" > "$DIR/all.out" 2>&1; then
  has "every option in a file checks" "$DIR/all.out" "$ALL: ok"
else
  bad "every option in a file: $(cat "$DIR/all.out")"
fi

# 2. A bad file: each problem with its line number.
cat > "$DIR/bad.conf" <<'EOF'
# options for a test
listen 127.0.0.1:0

sends-per-s many
no-such-option 1
listen 127.0.0.1:1
demo maybe
help
heartbeat-ms 0
Bad_Name x
EOF
set +e; "$SRV" --check-config "$DIR/bad.conf" > "$DIR/bad.out" 2>&1; rc=$?; set -e
[ "$rc" = 1 ] && ok "--check-config of a bad file exits 1" || bad "exit $rc"
B=$DIR/bad.conf
has "bad line names itself" "$DIR/bad.out" "$B:10: 'Bad_Name' is not an option name"
# The cut fails at the first bad name: check the rest without it.
sed -i '$d' "$B"
set +e; "$SRV" --check-config "$B" > "$DIR/bad.out" 2>&1; rc=$?; set -e
[ "$rc" = 1 ] && ok "still exits 1" || bad "exit $rc"
has "a bad number" "$DIR/bad.out" "$B:4: sends-per-s: wants a number"
has "an unknown option" "$DIR/bad.out" "$B:5: no-such-option: no such option"
has "an option twice" "$DIR/bad.out" "$B:6: listen: given again (first on line 2)"
has "a bad flag value" "$DIR/bad.out" "$B:7: demo: wants yes or no"
has "a command-line option" "$DIR/bad.out" "$B:8: help: only on the command line"
has "a rule across options" "$DIR/bad.out" "intervals must be positive"
has "the count" "$DIR/bad.out" "$B: 6 problems"
set +e; "$SRV" --config "$B" --secret s > "$DIR/badrun.out" 2>&1; rc=$?; set -e
[ "$rc" = 2 ] && ok "a bad file stops the start" || bad "start with a bad file: exit $rc"
has "...saying where" "$DIR/badrun.out" "$B:4: sends-per-s"
set +e; "$SRV" --config "$DIR/none.conf" --secret s > "$DIR/none.out" 2>&1; rc=$?; set -e
[ "$rc" = 2 ] && ok "a missing file stops the start" || bad "missing file: exit $rc"
has "...saying so" "$DIR/none.out" "none.conf: No such file or directory"

# 3. Flags override the file; what the file sets is in force.
start a --listen 127.0.0.1:0 --data "$DIR/a" --secret s --quiet || bad "server a"
TAKEN=$(sed -n 's/.*ready on port \([0-9]*\).*/\1/p' "$DIR/a.out")
cat > "$DIR/run.conf" <<EOF
listen 127.0.0.1:$TAKEN
data $DIR/b
secret-file $DIR/secret
admin-listen 127.0.0.1:0
log-format json
log-level info
EOF
set +e; "$SRV" --config "$DIR/run.conf" > "$DIR/taken.out" 2>&1; rc=$?; set -e
[ "$rc" = 1 ] && ok "the file's listen is used (its port is taken)" || bad "exit $rc"
has "...and said" "$DIR/taken.out" "cannot listen on 127.0.0.1:$TAKEN"
if start b --config "$DIR/run.conf" --listen 127.0.0.1:0; then
  ok "--listen overrides the file's"
  has "the file's admin-listen is in force" "$DIR/b.out" "admin on port"
  if head -1 "$DIR/b.err" | jq -e '.event == "listening"' > /dev/null; then
    ok "the file's log-format is in force"
  else
    bad "log not JSON: $(cat "$DIR/b.err")"
  fi
  [ -f "$DIR/b/switchboard.db" ] && ok "the file's data is in force" || bad "no $DIR/b/switchboard.db"
else
  bad "server b: $(cat "$DIR/b.err")"
fi
if start c --config "$DIR/run.conf" --listen 127.0.0.1:0 --log-format text --no-such 2> /dev/null; then
  bad "an unknown flag was taken"
else
  ok "an unknown flag is refused"
fi
if start d --config "$DIR/run.conf" --listen 127.0.0.1:0 --log-format text --data "$DIR/d"; then
  if head -1 "$DIR/d.err" | grep -q "info  listening"; then ok "--log-format overrides the file's"
  else bad "--log-format: $(cat "$DIR/d.err")"; fi
else
  bad "server d: $(cat "$DIR/d.err")"
fi
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
