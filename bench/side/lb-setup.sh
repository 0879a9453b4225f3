#!/usr/bin/env bash
# lb-setup.sh — Logbook's own benchmark database for side.sh: creates `lb_bench`, loads BENCHMARKS.md's data
# set with `logbook seed --profile bench` (it migrates first; ~3 min), VACUUM ANALYZE, and a read-only
# role `lb_peer` for PostGraphile. Idempotent: skips the seed when the database already has runs.
#   LOGBOOK_BIN=<release logbook binary> ./lb-setup.sh
# Env: LOGBOOK_BIN (default: `logbook` on PATH, else $CARGO_TARGET_DIR/release/logbook, else
#      ../target/release/logbook), LB_DATABASE (lb_bench), LB_ANCHOR (2026-11-27T00:00:00Z),
#      LB_PEER_ROLE / LB_PEER_PASSWORD (lb_peer / lb_peer). Bounded: killed after LB_SETUP_TIMEOUT (1200 s).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${BENCH_TIMEBOXED:-}" ]; then
  export BENCH_TIMEBOXED=1
  exec timeout -k 10 "${LB_SETUP_TIMEOUT:-1200}" "$0" "$@"
fi
source "$HERE/lb-env.sh"

T0=$(date +%s)
if [ "$(lb_admin -tAc "SELECT count(*) FROM pg_database WHERE datname = '$LB_DATABASE'")" = 0 ]; then
  lb_admin -c "CREATE DATABASE \"$LB_DATABASE\""
fi
runs="$(lb_psql -tAc "SELECT count(*) FROM llm_run_records" 2>/dev/null || echo 0)"
if [ "$runs" = 0 ]; then
  [ -x "$LOGBOOK_BIN" ] || { echo "logbook binary not found ($LOGBOOK_BIN): build it (cargo build --release) and set LOGBOOK_BIN" >&2; exit 1; }
  echo "lb-setup: seeding $LB_DATABASE (profile bench, anchor $LB_ANCHOR); ~3 min"
  "$LOGBOOK_BIN" --database-url "$LB_DATABASE_URL" seed --profile bench --anchor "$LB_ANCHOR" --no-progress
  lb_psql -c "VACUUM ANALYZE"
else
  echo "lb-setup: $LB_DATABASE already holds $runs runs; not seeding"
fi
lb_admin -d "$LB_DATABASE" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$LB_PEER_ROLE') THEN CREATE ROLE "$LB_PEER_ROLE" LOGIN; END IF;
END \$\$;
ALTER ROLE "$LB_PEER_ROLE" LOGIN PASSWORD '$LB_PEER_PASSWORD';
GRANT CONNECT ON DATABASE "$LB_DATABASE" TO "$LB_PEER_ROLE";
GRANT USAGE ON SCHEMA public TO "$LB_PEER_ROLE";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO "$LB_PEER_ROLE";
SQL
lb_psql -tAc "SELECT 'lb-setup: ' || pg_size_pretty(pg_database_size(current_database())) || ', '
  || (SELECT count(*) FROM llm_run_records) || ' runs, '
  || (SELECT count(*) FROM aos_traces) || ' traces, '
  || (SELECT count(*) FROM aos_trace_steps) || ' steps; hottest tenant '
  || (SELECT tenant_id || ' (' || count(*) || ' runs)' FROM llm_run_records GROUP BY tenant_id ORDER BY count(*) DESC LIMIT 1)"
echo "lb-setup: done in $(( $(date +%s) - T0 )) s"
