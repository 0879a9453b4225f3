#!/usr/bin/env bash
# profile.sh — where the CPU goes for one console document under load: starts Logbook on lb_bench, runs wrk
# at c=16 for 14 s and records `perf record -a -g` (whole machine, so PostgreSQL is seen too) for 8 s of it,
# then prints the share per process and the hottest PostgreSQL symbols.
#   LOGBOOK_BIN=<release logbook> ./profile.sh h_facets_30d
# Needs lb-setup.sh's database, wrk and perf (root). Writes /tmp/bench-results/profile-<doc>.data.
set -euo pipefail
CONSOLE="$(cd "$(dirname "$0")" && pwd)"
SIDE="$(cd "$CONSOLE/../side" && pwd)"
HERE="$SIDE"
source "$SIDE/lb-env.sh"
DOC="${1:?a document name, e.g. h_facets_30d}"
file="$CONSOLE/$DOC.graphql"; [ -f "$file" ] || file="$SIDE/scenarios/graphql/logbook/$DOC.graphql"
OUT=/tmp/bench-results; mkdir -p "$OUT"
trap 'lb_stop >/dev/null 2>&1 || true' EXIT
FRAGMENT="$(lb_psql -tAc "SELECT substr(run_id, 6, 5) FROM llm_run_records WHERE tenant_id = '$LB_TENANT' ORDER BY created_at DESC LIMIT 1")"
lb_start >/dev/null
AUTH="Bearer $(lb_key)"
python3 - "$file" "$FRAGMENT" > "$OUT/profile-$DOC.json" <<'PY'
import json, sys
print(json.dumps({"query": open(sys.argv[1]).read().replace("RUN_ID_FRAGMENT", sys.argv[2])}))
PY
BODY_FILE="$OUT/profile-$DOC.json" AUTH="$AUTH" wrk -t2 -c16 -d14s -s "$CONSOLE/post.lua" --latency "$LB_URL" \
  > "$OUT/profile-$DOC.wrk.txt" &
sleep 3
perf record -a -g -F 499 -o "$OUT/profile-$DOC.data" -- sleep 8 >/dev/null 2>&1
wait
grep -E "Requests/sec|  50%" "$OUT/profile-$DOC.wrk.txt"
echo "-- CPU by process"
perf report -i "$OUT/profile-$DOC.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -E "^ +[0-9]" | head -6
echo "-- hottest PostgreSQL symbols"
perf report -i "$OUT/profile-$DOC.data" --no-children --comm postgres --sort sym --stdio -g none 2>/dev/null \
  | grep -E "^ +[0-9]" | head -12
