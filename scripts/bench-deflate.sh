#!/usr/bin/env bash
# make bench-deflate: permessage-deflate (issue 12), figures in
# docs/benchmarks.md. A fresh server (fsync per group commit, the
# defaults) and sbwirebench: a conversation of MSGS chat messages, then
# for protobuf and JSON, without and with permessage-deflate, the wire
# bytes and time (median, 10th and 90th percentile of REPS) of a
# 200-message HISTORY page and of a SYNC of the whole conversation; then,
# without a server, the size and time of one-message PUSH frames by body
# size, compressed at zlib levels 1 and 6 (what the 512-byte threshold
# rests on). One JSON object per line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BUILD=${1:-build}
MSGS=${MSGS:-1000}
REPS=${REPS:-30}
SECRET=bench-secret
DATA=$(mktemp -d "${TMPDIR:-/tmp}/sbdeflate.XXXXXX")
SRV=
cleanup() {
  [ -n "$SRV" ] && { kill $SRV 2>/dev/null || true; wait $SRV 2>/dev/null || true; }
  rm -rf "$DATA" "$DATA.log"
}
trap cleanup EXIT
echo "# machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) msgs=$MSGS reps=$REPS load $(cut -d' ' -f1-3 /proc/loadavg)"
ok=0
sb_start "$DATA.log" "$BUILD"/switchboard --listen 127.0.0.1:0 --data "$DATA" \
  --secret $SECRET --sends-per-s 0 --quiet || ok=$?
SRV=$SB_PID PORT=$SB_PORT
[ "$ok" = 0 ] || { echo "bench-deflate: server did not start: $(cat "$DATA.log")" >&2; exit 1; }
"$BUILD"/sbwirebench --url ws://127.0.0.1:$PORT/ws --secret $SECRET \
  --msgs "$MSGS" --reps "$REPS"
echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"
for level in 1 6; do "$BUILD"/sbwirebench --frames --level $level; done
