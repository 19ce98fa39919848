# Shared by the bench scripts and the shell integration tests (sourced,
# not run).

# sb_start LOG COMMAND...: starts a switchboard (COMMAND) in the background
# with its output in LOG and waits until it is ready: SB_PID is its pid,
# SB_PORT the port it printed. Fails if it exits first or is not ready in
# 10 s. A LOG left by an earlier server goes first: read before the new
# server's shell truncates it, its ready line would give the old port.
sb_start() {
  local log=$1 _
  shift
  rm -f "$log"
  "$@" > "$log" 2>&1 &
  SB_PID=$!
  SB_PORT=
  for _ in $(seq 400); do
    SB_PORT=$(sed -n 's/^switchboard: ready on port \([0-9]*\)$/\1/p' "$log" 2>/dev/null || true)
    [ -n "$SB_PORT" ] && return 0
    kill -0 "$SB_PID" 2>/dev/null || return 1
    sleep 0.025
  done
  return 1
}
