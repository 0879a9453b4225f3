#!/usr/bin/env bash
# Throughput of several logbook binaries on one request, alternating (BENCHMARKS.md, "Issue 13"):
# each binary serves `lb_bench` with 2 HTTP workers and `--rate-limit 0`; wrk warms it for 2 s,
# then measures SECONDS at CONC connections; ROUNDS rounds (default 3) of every binary in turn.
#
#   bench/throughput.sh <request body JSON file> <seconds> <connections> <logbook binary>...
#
# Needs wrk (Debian package `wrk`) and the `seed --profile bench` database (DATABASE, default
# lb_bench). Binaries of different schema versions cannot share one database: an older binary
# refuses to start after a newer one applied a migration it does not know.
set -euo pipefail
BODY=$1
SECS=$2
CONC=$3
shift 3
URL="postgres://postgres@127.0.0.1:5432/${DATABASE:-lb_bench}?sslmode=disable"
PORT=${PORT:-18094}
LUA=$(mktemp /tmp/lb-throughput-XXXX.lua)
cat >"$LUA" <<'LUA'
local f = io.open(os.getenv("BODY"), "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
LUA
KEY=$("$1" --database-url "$URL" keys create --tenant tenant-000 --role VIEWER 2>/dev/null | tail -1)
export BODY KEY
for round in $(seq "${ROUNDS:-3}"); do
  for bin in "$@"; do
    LOGBOOK_LOG=warn "$bin" --database-url "$URL" serve --bind "127.0.0.1:$PORT" --rate-limit 0 \
      --workers 2 --export-dir "$(dirname "$LUA")/lb-throughput-exports" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
    wrk -t 2 -c "$CONC" -d 2s -s "$LUA" "http://127.0.0.1:$PORT/graphql" >/dev/null
    rps=$(wrk -t 2 -c "$CONC" -d "${SECS}s" -s "$LUA" "http://127.0.0.1:$PORT/graphql" |
      awk '/Requests\/sec/ {print $2}')
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    echo "round $round $bin requests/s=$rps"
  done
done
rm -f "$LUA"
