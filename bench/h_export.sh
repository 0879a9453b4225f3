#!/usr/bin/env bash
# h_export (BENCHMARKS.md, "Scenarios and targets"): an NDJSON export of one tenant's LLM runs
# (default 1 000 000 rows) through a release server on PostgreSQL: rows/s of the export job
# (database → file, keyset batches), bytes/s and rows/s of the download stream, and the server's RSS
# growth during both.
#
#   bench/h_export.sh [ROWS]      (needs PostgreSQL on 127.0.0.1:5432, user postgres)
set -euo pipefail
ROWS=${1:-1000000}
BIN=${LOGBOOK_BIN:-${CARGO_TARGET_DIR:-target}/release/logbook}
DB=lbx_bench_export
ADMIN='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'
URL="postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable"
DIR=$(mktemp -d /tmp/lbx-bench-XXXX)
PORT=${PORT:-18431}

psql "$ADMIN" -qc "drop database if exists $DB with (force)" -c "create database $DB"
"$BIN" --database-url "$URL" migrate 2>/dev/null
KEY=$("$BIN" --database-url "$URL" keys create --tenant bench --role OPERATOR | tail -1)
echo "loading $ROWS runs..."
psql "$URL" -qc "
insert into llm_run_records (id, tenant_id, run_id, trace_id, provider, model, prompt_hash,
  response_hash, input_tokens, output_tokens, cost_cents, execution_status, started_at,
  completed_at, source, is_synthetic, synthetic_scenario_id, created_at)
select 'rec-' || g, 'bench', 'run-' || g, 'trace_run-' || g,
  case when g % 3 = 0 then 'openai' else 'anthropic' end,
  case when g % 3 = 0 then 'gpt-4o' else 'claude-sonnet-4' end,
  md5(g::text) || md5((g + 1)::text), md5((g * 7)::text) || md5((g * 7 + 1)::text),
  100 + g % 900, 20 + g % 400, g % 50,
  (array['SUCCEEDED','FAILED','ABORTED','TIMEOUT'])[1 + g % 4],
  timestamptz '2026-01-01' + g * interval '1 second' - interval '3 seconds',
  timestamptz '2026-01-01' + g * interval '1 second',
  'WORKER', g % 10 = 0, case when g % 10 = 0 then 'scenario-1' end,
  timestamptz '2026-01-01' + g * interval '1 second'
from generate_series(1, $ROWS) g" -c "analyze llm_run_records"

LOGBOOK_LOG=warn "$BIN" --database-url "$URL" serve --bind 127.0.0.1:$PORT --export-dir "$DIR" --db-pool 16 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
sampler() { local max=0; while kill -0 $PID 2>/dev/null; do r=$(rss); ((r > max)) && max=$r; echo $max > "$DIR/.max"; sleep 0.05; done; }
gql() { curl -sf -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
  "http://127.0.0.1:$PORT/graphql" -d "$1"; }

BASE=$(rss)
sampler & SAMPLER=$!
T0=$(date +%s.%N)
ID=$(gql '{"query":"mutation { createExport(input: {scope: LLM_RUNS, format: NDJSON}) { exportId } }"}' \
  | sed -E 's/.*"exportId":"([^"]+)".*/\1/')
while :; do
  S=$(gql "{\"query\":\"{ logExport(id: \\\"$ID\\\") { status rowCount byteSize checksum } }\"}")
  case "$S" in *COMPLETED*|*FAILED*) break;; esac
  sleep 0.05
done
T1=$(date +%s.%N)
JOB_MAX=$(cat "$DIR/.max")
echo "$S"
curl -sf -H "Authorization: Bearer $KEY" -o "$DIR/out.ndjson" "http://127.0.0.1:$PORT/exports/$ID/download"
T2=$(date +%s.%N)
kill $SAMPLER 2>/dev/null || true
DL_MAX=$(cat "$DIR/.max")
LINES=$(wc -l < "$DIR/out.ndjson")
BYTES=$(stat -c %s "$DIR/out.ndjson")
awk -v rows="$LINES" -v bytes="$BYTES" -v t0="$T0" -v t1="$T1" -v t2="$T2" -v base="$BASE" \
    -v jm="$JOB_MAX" -v dm="$DL_MAX" 'BEGIN {
  printf "rows %d, artefact %.1f MB\n", rows, bytes / 1e6;
  printf "export job (create -> completed): %.2f s, %.0f rows/s\n", t1 - t0, rows / (t1 - t0);
  printf "download stream: %.2f s, %.0f rows/s, %.0f MB/s\n", t2 - t1, rows / (t2 - t1), bytes / 1e6 / (t2 - t1);
  printf "server RSS: %.1f MB before, max %.1f MB during the job (+%.1f), max %.1f MB during the download (+%.1f)\n",
    base / 1024, jm / 1024, (jm - base) / 1024, dm / 1024, (dm - base) / 1024;
}'
