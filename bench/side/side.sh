#!/usr/bin/env bash
# side.sh — side by side on Logbook's own database (lb_bench, see lb-setup.sh): Logbook vs PostGraphile v5 vs
# the SQL Logbook itself issues, run by pgbench (the ceiling). Same PostgreSQL, same data, same parameters;
# for each scenario and concurrency the three contenders run back to back (each warmed up first).
#   LOGBOOK_BIN=<release logbook> ./side.sh                      # a..f at c = 16 64, 10 s runs, 5 s warm-ups
#   ./side.sh --scenarios "a b" --concurrency 16 --duration 2 --warmup 1   # smoke
#   ./side.sh --header "Authorization: Bearer $KEY"             # this key (default: a new VIEWER key of the tenant)
#   ./side.sh --contenders "logbook sql"                        # any of: logbook v5 sql
# Scenarios (BENCHMARKS.md): a_newest, b_trace, c_deep, d_count, e_cost, f_panel. Documents:
#   scenarios/graphql/logbook/, scenarios/graphql/postgraphile-v5-lb/ (a missing document = no equivalent, n/a),
#   pgbench scripts: scenarios/sql-lb/ (captured from Logbook, see scenarios/sql-lb/README.md).
# Starts Logbook (`serve --bind 127.0.0.1:18080 --rate-limit 0`, REDIS_URL) and PostGraphile v5 (peer.sh, 127.0.0.1:5000,
# role lb_peer) itself and stops both (by PID) on exit. Every response / script is validated once before timing.
# Output: one line per run, then a markdown table (rps, p50, p99, Logbook/v5, Logbook/ceiling, server CPU per
# request from /proc/PID/stat, RSS and peak RSS from /proc/PID/status); all under /tmp/bench-results/side-<stamp>/.
# `./side_lib.py table FILE...` makes the table (medians) from several runs' summary.txt.
# Env: BENCH_DURATION (10), BENCH_WARMUP (5), BENCH_CONCURRENCY ("16 64"), LOAD_CPUS / OHA_THREADS / PGBENCH_THREADS /
#      BENCH_NICE (see env.sh), LB_SERVE_ARGS (extra `serve` flags, e.g. "--db-pool 64"), LOGBOOK_LOG,
#      LB_POOL (32, only for the connection check; pass --db-pool in LB_SERVE_ARGS to change it), PEER_POOL_SIZE (10),
#      SQL_DIR (the ceiling scripts, default scenarios/sql-lb), PGBENCH_MODE (prepared, as sqlx; or extended), SIDE_TIMEOUT (whole-script bound, 2400 s). Loopback only.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${BENCH_TIMEBOXED:-}" ]; then
  export BENCH_TIMEBOXED=1
  exec timeout -k 15 "${SIDE_TIMEOUT:-2400}" "$0" "$@"
fi
source "$HERE/lb-env.sh"

SCEN="${BENCH_SCENARIOS:-a b c d e f}"; CONC="$BENCH_CONCURRENCY"; DUR="$BENCH_DURATION"; WARM="$BENCH_WARMUP"
WHO="logbook v5 sql"; HEADER="${LB_HEADER:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --scenarios) SCEN="$2"; shift 2;; --concurrency) CONC="$2"; shift 2;; --duration) DUR="$2"; shift 2;;
    --warmup) WARM="$2"; shift 2;; --contenders) WHO="$2"; shift 2;; --header) HEADER="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
has() { case " $WHO " in *" $1 "*) return 0;; *) return 1;; esac; }
name() { case "$1" in a) echo a_newest;; b) echo b_trace;; c) echo c_deep;; d) echo d_count;; e) echo e_cost;; f) echo f_panel;; *) return 1;; esac; }
for s in $SCEN; do name "$s" >/dev/null || { echo "unknown scenario $s (a..f)" >&2; exit 2; }; done
LB_DOCS="$HERE/scenarios/graphql/logbook"; V5_DOCS="$HERE/scenarios/graphql/postgraphile-v5-lb"; SQL="${SQL_DIR:-$HERE/scenarios/sql-lb}"
LIB="$HERE/side_lib.py"
OHA="$(command -v oha || echo "$HOME/.cargo/bin/oha")"
[ -x "$OHA" ] || { echo "oha not found: cargo install oha --locked --version 1.16.0" >&2; exit 1; }
command -v pgbench >/dev/null || { echo "pgbench not found" >&2; exit 1; }
if has logbook; then [ -x "$LOGBOOK_BIN" ] || { echo "logbook binary not found ($LOGBOOK_BIN): set LOGBOOK_BIN" >&2; exit 1; }; fi
PIN=(); [ -n "${LOAD_CPUS:-}" ] && PIN=(taskset -c "$LOAD_CPUS")
MAXC="$(echo "$CONC" | tr ' ' '\n' | sort -n | tail -1)"
MODE="${PGBENCH_MODE:-prepared}"; case "$MODE" in prepared|extended) ;; *) echo "PGBENCH_MODE must be prepared or extended" >&2; exit 2;; esac

# ---------------------------------------------------------------- preflight: data, PostgreSQL settings
[ "$(lb_psql -tAc 'SELECT count(*) > 0 FROM llm_run_records' 2>/dev/null)" = t ] \
  || { echo "no data in $LB_DATABASE: run ./lb-setup.sh first" >&2; exit 1; }
read -r MAXCONN RESERVED SB NOW < <(lb_psql -tA -F ' ' -c "SELECT current_setting('max_connections'),
  current_setting('superuser_reserved_connections'), current_setting('shared_buffers'),
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')")
NEED=$(( ${LB_POOL:-32} + ${PEER_POOL_SIZE:-10} + MAXC + NOW + 3 ))   # pgbench's c next to both servers' idle pools
if has sql && [ "$NEED" -gt $(( MAXCONN - RESERVED )) ]; then
  echo "PostgreSQL max_connections=$MAXCONN is too low for pgbench c=$MAXC next to the servers' pools" \
       "(Logbook ${LB_POOL:-32}, PostGraphile ${PEER_POOL_SIZE:-10}) and the $NOW connections open now: need ~$NEED." >&2
  echo "apply the anchor server settings first: ./pg-tune.sh (restarts PostgreSQL)" >&2; exit 1
fi
[ "$SB" = 4GB ] || echo "note: shared_buffers=$SB (the anchor configuration is 4GB: ./pg-tune.sh)"

bench_quiet_check
bench_renice_pg
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="/tmp/bench-results/side-$STAMP"; mkdir -p "$OUT"
python3 "$LIB" params "$OUT/params.json"

# ---------------------------------------------------------------- servers (stopped on exit, by PID)
LB_PID=""; V5_PID=""; STARTED_LB=0; STARTED_V5=0
cleanup() {
  [ "$STARTED_LB" = 1 ] && lb_stop || true
  [ "$STARTED_V5" = 1 ] && "$HERE/peer.sh" stop || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if has logbook; then
  STARTED_LB=1; echo -n "side: "; lb_start
  [ -n "$HEADER" ] || HEADER="Authorization: Bearer $(lb_key)"
fi
if has v5; then
  STARTED_V5=1; DATABASE_URL="$LB_PEER_DATABASE_URL" "$HERE/peer.sh" start --v5
  V5_PID="$(pgrep -P "$(cat /tmp/bench-peer.pid)" -x node | head -1)"
fi
HDR=(); [ -n "$HEADER" ] && HDR=(-H "$HEADER")

# ---------------------------------------------------------------- request bodies, cursors, validation
if has logbook; then
  if [[ " $SCEN " == *" c "* ]]; then
    LB_CURSOR="$(URL="$LB_URL" HEADER="$HEADER" PARAMS="$OUT/params.json" "$LB_DOCS/cursor.sh")"
  fi
  for s in $SCEN; do python3 "$LIB" body "$LB_DOCS/$(name "$s").graphql" "$OUT/params.json" "${LB_CURSOR:-}" > "$OUT/logbook-$s.json"; done
fi
if has v5; then
  if [[ " $SCEN " == *" c "* ]]; then
    python3 "$LIB" body "$V5_DOCS/probe_cursor.graphql" "$OUT/params.json" > "$OUT/v5-probe.json"
    V5_CURSOR="$(curl -sS --max-time 30 -H 'Content-Type: application/json' --data-binary @"$OUT/v5-probe.json" "$PEER_URL" \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); assert "errors" not in d, d; e=d["data"]["llmRunRecords"]["edges"][0]
assert e["node"]["rowId"] == json.load(open(sys.argv[1]))["cur_id"], e; print(e["cursor"])' "$OUT/params.json")"
  fi
  for s in $SCEN; do
    if [ -f "$V5_DOCS/$(name "$s").graphql" ]; then
      python3 "$LIB" body "$V5_DOCS/$(name "$s").graphql" "$OUT/params.json" "${V5_CURSOR:-}" > "$OUT/v5-$s.json"
    fi
  done
fi

echo "side: servers: logbook pool 32 + one worker per core unless LB_SERVE_ARGS says otherwise (${LB_SERVE_ARGS:-defaults}); postgraphile v5 pool ${PEER_POOL_SIZE:-10}"
echo "side: $(nproc) cpus; PostgreSQL $(lb_psql -tAc 'SHOW server_version' | awk '{print $1}') (shared_buffers=$SB max_connections=$MAXCONN jit=$(lb_psql -tAc 'SHOW jit')); oha $("$OHA" --version | awk '{print $2}') threads=${OHA_THREADS:-1}; pgbench -M $MODE -j ${PGBENCH_THREADS:-2}; pin=${LOAD_CPUS:-none} nice=${BENCH_NICE:-none}; ${DUR}s runs, ${WARM}s warm-up; out $OUT"
check() {  # <label> <scenario name> <command...>: one line; a failed check aborts the run
  local label="$1" n="$2" out; shift 2
  if ! out="$("$@" 2>&1)"; then echo "  check $label $n FAILED: $(echo "$out" | tail -3)" >&2; exit 1; fi
  printf '  check %-19s %-9s %s\n' "$label" "$n" "$out"
}
post() {  # <url> <body> <response file> [header args...]
  local url="$1" body="$2" resp="$3"; shift 3
  curl -sS --max-time 30 -H 'Content-Type: application/json' "$@" --data-binary @"$body" "$url" > "$resp"
}
for s in $SCEN; do
  n="$(name "$s")"
  if has logbook; then
    post "$LB_URL" "$OUT/logbook-$s.json" "$OUT/logbook-$s.response.json" "${HDR[@]}"
    check logbook "$n" python3 "$LIB" validate "$s" "$OUT/logbook-$s.response.json" "$OUT/params.json"
  fi
  if has v5; then
    if [ -f "$OUT/v5-$s.json" ]; then
      post "$PEER_URL" "$OUT/v5-$s.json" "$OUT/v5-$s.response.json"
      check postgraphile-v5-lb "$n" python3 "$LIB" validate "$s" "$OUT/v5-$s.response.json" "$OUT/params.json"
    else
      check postgraphile-v5-lb "$n" echo "n/a: no equivalent document (scenarios/graphql/postgraphile-v5-lb/README.md)"
    fi
  fi
  if has sql; then check "raw-sql-lb/$MODE" "$n" python3 "$LIB" check-sql "$s" "$SQL/$n.sql" "$OUT/params.json"; fi
done

# ---------------------------------------------------------------- runs
run_http() {  # <label> <url> <body> <c> <seconds> <json out> [header args...]
  local label="$1" url="$2" body="$3" c="$4" secs="$5" out="$6"; shift 6
  timeout -k 5 $(( secs + 30 )) "${NICE[@]}" "${PIN[@]}" "$OHA" -z "${secs}s" -c "$c" --no-tui --worker-threads "${OHA_THREADS:-1}" \
    -m POST -H 'Content-Type: application/json' "$@" -D "$body" --output-format json "$url" > "$out"
}
run_pg() {  # <scenario> <c> <seconds> <outprefix> [log]
  local f="$SQL/$(name "$1").sql" log=() vars=()
  [ "${5:-}" = log ] && log=(-l --sampling-rate="${PGBENCH_SAMPLE:-0.2}" --log-prefix="$4")
  mapfile -d '' vars < <(python3 "$LIB" pgvars "$OUT/params.json" "$f")
  timeout -k 5 $(( $3 + 60 )) "${NICE[@]}" "${PIN[@]}" pgbench -n -M "$MODE" -c "$2" -j "${PGBENCH_THREADS:-2}" -T "$3" \
      "${log[@]}" "${vars[@]}" -f "$f" > "$4.out" 2>&1 \
    || { echo "pgbench cannot run $(name "$1"); its ceiling is n/a:" >&2; tail -3 "$4.out" | cut -c1-300 >&2; return 1; }
}
one_run() {  # <contender> <scenario> <c> <warm|run>
  local who="$1" s="$2" c="$3" mode="$4" n; n="$(name "$2")"
  local secs="$DUR"; [ "$mode" = warm ] && secs="$WARM"
  local pre="$OUT/$who-$n-c$c"; [ "$mode" = warm ] && pre="$OUT/$who-$n-warmup"
  case "$who" in
    logbook) [ "$mode" = warm ] && { run_http logbook "$LB_URL" "$OUT/logbook-$s.json" "$MAXC" "$secs" "$pre.json" "${HDR[@]}"; return; } ;;
    v5) [ -f "$OUT/v5-$s.json" ] || return 0
        [ "$mode" = warm ] && { run_http v5 "$PEER_URL" "$OUT/v5-$s.json" "$MAXC" "$secs" "$pre.json"; return; } ;;
    sql) [ -f "$OUT/sql-$s.failed" ] && return 0
         [ "$mode" = warm ] && { run_pg "$s" "$MAXC" "$secs" "$pre" || touch "$OUT/sql-$s.failed"; return 0; } ;;
  esac
  python3 "$LIB" snap "$OUT/cpu.before"
  case "$who" in
    logbook) run_http logbook "$LB_URL" "$OUT/logbook-$s.json" "$c" "$secs" "$pre.json" "${HDR[@]}" ;;
    v5) run_http v5 "$PEER_URL" "$OUT/v5-$s.json" "$c" "$secs" "$pre.json" ;;
    sql) run_pg "$s" "$c" "$secs" "$pre" log || { touch "$OUT/sql-$s.failed"; return 0; } ;;
  esac
  python3 "$LIB" snap "$OUT/cpu.after"
  local spid; case "$who" in logbook) spid="$LB_PID";; v5) spid="$V5_PID";; sql) spid="";; esac
  python3 "$LIB" cpu "$OUT/cpu.before" "$OUT/cpu.after" "$spid" "$pre.cpu.json" $LB_PID $V5_PID
  local fc line label; fc="$(python3 "$LIB" foreign "$pre.cpu.json")"
  case "$who" in
    logbook) label=logbook;; v5) label=postgraphile-v5-lb;; sql) label="raw-sql-lb/$MODE";;
  esac
  label="$(printf '%-19s %-9s c=%-3d %ss' "$label" "$n" "$c" "$DUR")"
  case "$who" in
    sql) line="$(python3 "$LIB" pgbench "$label" "$pre")" ;;
    *) line="$(python3 "$LIB" oha "$label" "$pre.json" "$pre.cpu.json")" ;;
  esac || { echo "no summary for $label (raw output: $pre.*)" >&2; exit 1; }
  echo "$line  $fc" | tee -a "$OUT/summary.txt"
}
for s in $SCEN; do
  first=1
  for c in $CONC; do
    for who in logbook v5 sql; do
      has "$who" || continue
      [ "$first" = 1 ] && one_run "$who" "$s" "$c" warm
      one_run "$who" "$s" "$c" run
    done
    first=0
  done
done
echo
python3 "$LIB" table "$OUT/summary.txt" | tee "$OUT/table.md"
echo
echo "side: summary lines, table, oha JSON, pgbench logs, request bodies and responses in $OUT"
