#!/usr/bin/env bash
# Builds Logbook, serves it with --demo over a scratch SQLite file on a free port, runs the
# graphql-http audit against it (audit.mjs) and stops the server. Exit status: the audit's.
#
#   bench/graphql-http-audit/run.sh            # from the repository root
#   PORT=18090 bench/graphql-http-audit/run.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
port="${PORT:-18089}"
scratch="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

if [ ! -d "$here/node_modules" ]; then (cd "$here" && npm ci --no-audit --no-fund); fi
(cd "$root" && cargo build --quiet --bin logbook)
target="${CARGO_TARGET_DIR:-$root/target}"

"$target/debug/logbook" serve --demo \
  --database-url "sqlite://$scratch/audit.db?mode=rwc" \
  --export-dir "$scratch/exports" \
  --bind "127.0.0.1:$port" >"$scratch/stdout" 2>"$scratch/stderr" &
server_pid=$!

key=""
for _ in $(seq 1 300); do
  key="$(sed -n 's/.*ADMIN key (shown once): \(.*\)$/\1/p' "$scratch/stdout")"
  if [ -n "$key" ] && curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then cat "$scratch/stderr" >&2; exit 2; fi
  sleep 0.2
done
[ -n "$key" ] || { echo "the server printed no API key" >&2; cat "$scratch/stderr" >&2; exit 2; }

cd "$here"
LOGBOOK_API_KEY="$key" node audit.mjs "http://127.0.0.1:$port/graphql"
