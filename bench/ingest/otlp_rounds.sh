#!/usr/bin/env bash
# OTLP ingest, before and after, alternating (BENCHMARKS.md, "OTLP ingest").
#
#   bench/ingest/otlp_rounds.sh ROUNDS SECONDS LLM_EVERY BINARY...
#
# For each round and each binary: a fresh PostgreSQL database, `logbook migrate`, an INGEST key,
# `logbook serve` on 127.0.0.1:18472 with Redis, a 5 s warm-up of the same load, then ANALYZE
# (the first autoanalyze of a fresh database comes only after a minute; until then the planner
# has no statistics and the steps' foreign-key check scans the tenant's traces, so a cold
# database measures the planner, not the server), then `otlp_bench.py` at c=8 with 512-span
# requests for SECONDS. Prints one line per run: throughput, latency, and CPU time per 1000 spans
# (whole machine and server process).
set -euo pipefail
rounds=$1 seconds=$2 llm_every=$3
shift 3
here="$(cd "$(dirname "$0")" && pwd)"
export PGHOST=127.0.0.1 PGUSER=postgres
port=18472
for round in $(seq "$rounds"); do
  for bin in "$@"; do
    db="lb_otlp_round"
    dropdb --if-exists "$db" >/dev/null 2>&1
    createdb "$db"
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
    "$bin" migrate >/dev/null 2>&1
    key=$("$bin" keys create --tenant bench --role INGEST 2>/dev/null | tail -1)
    REDIS_URL=redis://127.0.0.1:6379 "$bin" serve --bind "127.0.0.1:$port" --rate-limit 0 \
      >/tmp/otlp_rounds_serve.log 2>&1 &
    server=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    python3 "$here/otlp_bench.py" "$port" "$key" 8 5 512 "$llm_every" >/dev/null
    psql -d "$db" -qc "ANALYZE"
    echo "round $round $bin: $(OTLP_BENCH_SERVER_PID=$server \
      python3 "$here/otlp_bench.py" "$port" "$key" 8 "$seconds" 512 "$llm_every")"
    kill "$server"; wait "$server" 2>/dev/null || true
  done
done
dropdb --if-exists lb_otlp_round >/dev/null 2>&1
