#!/usr/bin/env bash
# What the rate limiter costs (BENCHMARKS.md, "Rate limiter"): a_newest (newest 50 runs, 18
# fields) through one server process, alternating, round after round, between servers started
#   off     --rate-limit 0
#   redis   a limit the load never reaches, counters in Redis
#   db      the same limit without Redis, counters in `rate_limit_windows`
# and, with BEFORE_BIN set, the same two limited cases on that binary (e.g. a build from before a
# change) on BEFORE_DATABASE (default: the same database; give it a copy made with
# `CREATE DATABASE … TEMPLATE lb_bench` when the newer binary adds migrations the older one does
# not know), so before and after are measured in one sitting on the same data. Prints requests/s and
# server CPU per request (utime + stime of the server process, from /proc) for each run.
#
#   LOGBOOK_BIN=… [BEFORE_BIN=…] bench/ratelimit.sh [ROUNDS] [SECONDS] [CONCURRENCY]
#
# Needs the `seed --profile bench` database (DATABASE, default lb_bench, on 127.0.0.1:5432), Redis
# on 127.0.0.1:6379 and oha (`cargo install oha --locked --version 1.16.0`).
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-5}
CONC=${3:-16}
BIN=${LOGBOOK_BIN:-${CARGO_TARGET_DIR:-target}/profiling/logbook}
DATABASE=${DATABASE:-lb_bench}
URL="postgres://postgres@127.0.0.1:5432/$DATABASE?sslmode=disable"
BEFORE_URL="postgres://postgres@127.0.0.1:5432/${BEFORE_DATABASE:-$DATABASE}?sslmode=disable"
REDIS=redis://127.0.0.1:6379
PORT=${PORT:-18090}
LIMIT=1000000000000 # points per minute: never reached, so every request is charged and served
OHA=$(command -v oha || echo "$HOME/.cargo/bin/oha")
QUERY='{ llmRuns(first: 50) { nodes { id recordId runId traceId provider model promptHash responseHash inputTokens outputTokens costCents executionStatus startedAt completedAt source isSynthetic syntheticScenarioId createdAt } pageInfo { endCursor hasNextPage } } }'
BODY=$(python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1]}))' "$QUERY")
new_key() { "$1" --database-url "$2" keys create --tenant tenant-000 --role VIEWER 2>/dev/null | tail -1; }
HZ=$(getconf CLK_TCK)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # <label> <binary> <database URL> <key> <serve args…>
  local label=$1 bin=$2 url=$3 key=$4
  shift 4
  LOGBOOK_LOG=warn "$bin" --database-url "$url" serve --bind "127.0.0.1:$PORT" "$@" \
    --export-dir /tmp/lb-ratelimit-exports >/tmp/lb-ratelimit.log 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  local oha=("$OHA" --no-tui -c "$CONC" -m POST -H "Authorization: Bearer $key" \
    -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$PORT/graphql")
  "${oha[@]}" -z 2s >/dev/null # warm-up
  local before after
  before=$(ticks $pid)
  "${oha[@]}" -z "${SECS}s" --output-format json >/tmp/lb-ratelimit.json
  after=$(ticks $pid)
  kill $pid
  wait $pid 2>/dev/null || true
  python3 - "$label" "$before" "$after" "$HZ" <<'PY'
import json, sys
label, before, after, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
d = json.load(open("/tmp/lb-ratelimit.json"))
codes = d.get("statusCodeDistribution") or {}
ok, other = codes.get("200", 0), sum(v for k, v in codes.items() if k != "200")
cpu_ms = 1000 * (after - before) / hz / ok if ok else float("nan")
print(f"{label:<12} rps={ok / d['summary']['total']:8.1f}  cpu/req={cpu_ms:.3f} ms  "
      f"p50={1000 * d['latencyPercentiles']['p50']:.2f} ms  non200={other}")
PY
}

KEY=$(new_key "$BIN" "$URL")
if [ -n "${BEFORE_BIN:-}" ]; then BEFORE_KEY=$(new_key "$BEFORE_BIN" "$BEFORE_URL"); fi
for round in $(seq "$ROUNDS"); do
  echo "round $round (c=$CONC, ${SECS}s)"
  run off "$BIN" "$URL" "$KEY" --redis-url "$REDIS" --rate-limit 0
  run redis "$BIN" "$URL" "$KEY" --redis-url "$REDIS" --rate-limit $LIMIT
  run db "$BIN" "$URL" "$KEY" --rate-limit $LIMIT
  if [ -n "${BEFORE_BIN:-}" ]; then
    run before-off "$BEFORE_BIN" "$BEFORE_URL" "$BEFORE_KEY" --redis-url "$REDIS" --rate-limit 0
    run before-redis "$BEFORE_BIN" "$BEFORE_URL" "$BEFORE_KEY" --redis-url "$REDIS" --rate-limit $LIMIT
    run before-db "$BEFORE_BIN" "$BEFORE_URL" "$BEFORE_KEY" --rate-limit $LIMIT
  fi
done
