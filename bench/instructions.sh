#!/usr/bin/env bash
# Instructions per request (BENCHMARKS.md, "Instructions per request"): each binary is run under
# callgrind with one worker and `--rate-limit 0`. It gets 30 warm-up requests, then REQUESTS
# requests one at a time, counted between `callgrind_control -z` and `-d`. The count is the same
# whatever else the machine is doing, so it compares builds where timings on shared cores drift.
# valgrind runs SHA-256 in software, which overweights hashing (the cursor signatures) against
# the CPU's SHA extensions.
#
#   bench/instructions.sh <request body JSON> <requests> <logbook binary>...
#
# Request bodies: side.sh keeps each scenario's as /tmp/bench-results/side-*/logbook-<s>.json.
# Needs valgrind, oha and the `seed --profile bench` database (DATABASE, default lb_bench).
set -euo pipefail
BODY=$1
N=$2
shift 2
URL="postgres://postgres@127.0.0.1:5432/${DATABASE:-lb_bench}?sslmode=disable"
PORT=${PORT:-18093}
OUT=$(mktemp -d /tmp/lb-instructions-XXXX)
key=$("$1" --database-url "$URL" keys create --tenant tenant-000 --role VIEWER 2>/dev/null | tail -1)
for bin in "$@"; do
  LOGBOOK_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.%p" \
    "$bin" --database-url "$URL" serve --bind "127.0.0.1:$PORT" --rate-limit 0 --workers 1 \
    --export-dir "$OUT/exports" >"$OUT/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
  load=(oha --no-tui -c 1 -m POST -H "Authorization: Bearer $key" -H 'content-type: application/json'
    -D "$BODY" "http://127.0.0.1:$PORT/graphql")
  "${load[@]}" -n 30 >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  "${load[@]}" -n "$N" >/dev/null
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  ir=$(grep -h '^summary:' "$OUT/cg.$pid.1" | awk '{print $2}')
  echo "$bin  instructions/request=$((ir / N))  (callgrind dump $OUT/cg.$pid.1)"
done
