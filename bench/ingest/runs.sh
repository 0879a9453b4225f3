#!/usr/bin/env bash
# runs.sh — recordLlmRun throughput on the bench database (wrk, unique run ids), in a tenant of
# its own so the console documents' data stays as seeded:
#   LOGBOOK_BIN=<release logbook> bench/ingest/runs.sh [--concurrency 16] [--duration 10]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SIDE="$(cd "$HERE/../side" && pwd)"
export LB_TENANT="${RUNS_TENANT:-tenant-ingest}"
HERE_SAVED="$HERE"
HERE="$SIDE"
source "$SIDE/lb-env.sh"
HERE="$HERE_SAVED"
C=16; D=10
while [ $# -gt 0 ]; do
  case "$1" in --concurrency) C="$2"; shift 2;; --duration) D="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;; esac
done
trap 'lb_stop || true' EXIT
lb_start
KEY="$("$LOGBOOK_BIN" --database-url "$LB_DATABASE_URL" keys create --tenant "$LB_TENANT" --role INGEST 2>/dev/null | tail -1)"
export AUTH="Bearer $KEY"
RUN_PREFIX="w$(date +%s)" wrk -t2 -c"$C" -d2s -s "$HERE/runs.lua" "$LB_URL" > /dev/null   # warm-up
RUN_PREFIX="r$(date +%s)" wrk -t2 -c"$C" -d"${D}s" --latency -s "$HERE/runs.lua" "$LB_URL" 2>/tmp/runs-ingest-errors.txt
echo "errors logged: $(wc -l < /tmp/runs-ingest-errors.txt)"
