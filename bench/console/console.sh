#!/usr/bin/env bash
# console.sh — latency of the console reads (docs/console.md) on the bench data, beside the newest page:
# for each document here, p50/p99 and throughput at concurrency C (wrk, `--latency`), then the plan of every
# statement the document issues (auto_explain on lb_bench for one request, EXPLAIN ANALYZE BUFFERS).
#   LOGBOOK_BIN=<release logbook> ./console.sh [--concurrency 16] [--duration 10] [--docs "a_newest g_search_id ..."]
# Needs lb-setup.sh's database, wrk, and read access to PostgreSQL's log. Bounded: 900 s.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${BENCH_TIMEBOXED:-}" ]; then
  export BENCH_TIMEBOXED=1
  exec timeout -k 10 "${CONSOLE_TIMEOUT:-900}" "$0" "$@"
fi
CONSOLE="$HERE"
HERE="$(cd "$CONSOLE/../side" && pwd)"
SIDE="$HERE"
source "$HERE/lb-env.sh"   # lb_start, lb_stop, lb_key, lb_psql and the bench database's settings
HERE="$CONSOLE"
C=16; D=10; DOCS="a_newest g_search_id g_search_model h_facets_30d i_histogram_30d j_sort_cost"
while [ $# -gt 0 ]; do
  case "$1" in --concurrency) C="$2"; shift 2;; --duration) D="$2"; shift 2;; --docs) DOCS="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;; esac
done
[ -x "$LOGBOOK_BIN" ] || { echo "logbook binary not found ($LOGBOOK_BIN): set LOGBOOK_BIN" >&2; exit 1; }
LOGFILE="$(pg_lsclusters -h | awk -v p="$PGPORT" '$3 == p {print $7; exit}')"
OUT="/tmp/bench-results/console-$(date -u +%Y%m%dT%H%M%SZ)"; mkdir -p "$OUT"
cleanup() {
  lb_psql -c "ALTER DATABASE \"$LB_DATABASE\" RESET session_preload_libraries" \
    -c "ALTER DATABASE \"$LB_DATABASE\" RESET auto_explain.log_min_duration" \
    -c "ALTER DATABASE \"$LB_DATABASE\" RESET auto_explain.log_analyze" \
    -c "ALTER DATABASE \"$LB_DATABASE\" RESET auto_explain.log_buffers" >/dev/null 2>&1 || true
  lb_stop || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A run id fragment of the hot tenant that few runs contain (5 characters of its newest run's id).
FRAGMENT="$(lb_psql -tAc "SELECT substr(run_id, 6, 5) FROM llm_run_records WHERE tenant_id = '$LB_TENANT' ORDER BY created_at DESC LIMIT 1")"
lb_start
AUTH="Bearer $(lb_key)"
echo "| document | p50 ms | p99 ms | req/s | errors |"
echo "|---|---|---|---|---|"
for doc in $DOCS; do
  file="$HERE/$doc.graphql"   # the baseline, a_newest, is side.sh's own document
  [ -f "$file" ] || file="$SIDE/scenarios/graphql/logbook/$doc.graphql"
  python3 - "$file" "$FRAGMENT" > "$OUT/$doc.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read().replace("RUN_ID_FRAGMENT", sys.argv[2])
print(json.dumps({"query": text}))
PY
  check="$(curl -sS --max-time 30 -H 'Content-Type: application/json' -H "Authorization: $AUTH" --data-binary @"$OUT/$doc.json" "$LB_URL")"
  echo "$check" > "$OUT/$doc.response.json"
  if echo "$check" | grep -q '"errors"'; then echo "$doc: $check" >&2; exit 1; fi
  BODY_FILE="$OUT/$doc.json" AUTH="$AUTH" wrk -t2 -c"$C" -d2s -s "$HERE/post.lua" "$LB_URL" >/dev/null   # warm-up
  BODY_FILE="$OUT/$doc.json" AUTH="$AUTH" wrk -t2 -c"$C" -d"${D}s" --latency -s "$HERE/post.lua" "$LB_URL" > "$OUT/$doc.wrk"
  python3 - "$doc" "$OUT/$doc.wrk" <<'PY'
import re, sys
text = open(sys.argv[2]).read()
def ms(label):
    m = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\s*$" % label, text, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"| {sys.argv[1]} | {ms('50%'):.2f} | {ms('99%'):.2f} | {rps:.0f} | {errors.group(1) if errors else 0} |")
PY
done
# Plans: one request per document with auto_explain logging every statement's plan.
lb_stop
lb_psql -c "ALTER DATABASE \"$LB_DATABASE\" SET session_preload_libraries = 'auto_explain'" \
  -c "ALTER DATABASE \"$LB_DATABASE\" SET auto_explain.log_min_duration = 0" \
  -c "ALTER DATABASE \"$LB_DATABASE\" SET auto_explain.log_analyze = on" \
  -c "ALTER DATABASE \"$LB_DATABASE\" SET auto_explain.log_buffers = on" >/dev/null
lb_start >/dev/null
for doc in $DOCS; do
  lb_psql -tAc "SELECT 'MARK $doc start'" >/dev/null
  curl -sS --max-time 30 -H 'Content-Type: application/json' -H "Authorization: $AUTH" --data-binary @"$OUT/$doc.json" "$LB_URL" >/dev/null
  sleep 0.5
  lb_psql -tAc "SELECT 'MARK $doc end'" >/dev/null
done
sleep 1
cp "$LOGFILE" "$OUT/postgres.log" 2>/dev/null || true
echo
echo "plans (every statement a document issued, auto_explain): $OUT/plans.txt"
python3 - "$LOGFILE" "$OUT/plans.txt" $DOCS <<'PY'
import sys, re
log, out, docs = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(log, errors="replace").read()
with open(out, "w") as f:
    for d in docs:
        a = text.rfind(f"MARK {d} start"); b = text.find(f"MARK {d} end", a)
        part = text[a:b]
        plans = re.findall(r"duration: ([\d.]+) ms  plan:\n(.*?)(?=\n\S|\Z)", part, re.S)
        f.write(f"== {d}: {len(plans)} statements\n")
        print(f"== {d}: {len(plans)} statements with plans")
        for dur, plan in plans:
            f.write(f"-- {dur} ms\n{plan}\n")
            keep = [l.strip() for l in plan.splitlines() if re.search(r"Scan|Sort|Aggregate|Limit|Rows Removed|Buffers", l)]
            print(f"   {dur} ms: " + " | ".join(keep[:6])[:400])
PY
