#!/usr/bin/env bash
# Runs the libFuzzer targets of a fuzz build (make build-fuzz), each for a
# bounded time:  scripts/fuzz.sh BUILD_DIR SECONDS [TARGET...]
# Without TARGETs, every fuzz_* executable in BUILD_DIR. Each target starts
# from its committed seeds (fuzz/corpus/<target>/) plus what earlier runs
# found (BUILD_DIR/corpus/<target>/, not committed). A crash, leak or
# failed check keeps its input in BUILD_DIR/artifacts/, prints the log's
# tail and fails the run (after the other targets have run).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-fuzz}
secs=${2:-60}
shift $(( $# < 2 ? $# : 2 ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$build"/fuzz_*; do
    [ -x "$f" ] && targets+=("$(basename "$f")")
  done
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no fuzz_* targets in $build (make build-fuzz)" >&2
  exit 1
fi
mkdir -p "$build/artifacts" "$build/logs"
fail=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-")
  [ -f "fuzz/$t.dict" ] && args+=(-dict="fuzz/$t.dict")
  args+=("$build/corpus/$t")
  [ -d "fuzz/corpus/$t" ] && args+=("fuzz/corpus/$t")
  log=$build/logs/$t.log
  if "$build/$t" "${args[@]}" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    echo "fuzz: $t ok: ${runs:-?} runs in ${secs} s, ${cov:-cov: ?}"
  else
    echo "fuzz: $t FAILED; log $log, input in $build/artifacts/:"
    tail -n 40 "$log"
    fail=1
  fi
done
exit $fail
