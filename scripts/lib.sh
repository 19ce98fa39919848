# Shared by the bench scripts (sourced, not run).

# sb_wait_port LOG PID: prints the port that the switchboard of PID wrote
# to LOG once it is ready; fails if it exits first or is not ready in 10 s.
sb_wait_port() {
  local log=$1 pid=$2 port _
  for _ in $(seq 400); do
    port=$(sed -n 's/^switchboard: ready on port \([0-9]*\)$/\1/p' "$log" 2>/dev/null || true)
    [ -n "$port" ] && { echo "$port"; return 0; }
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.025
  done
  return 1
}
