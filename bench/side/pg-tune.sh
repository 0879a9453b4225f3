#!/usr/bin/env bash
# pg-tune.sh — applies the benchmark's PostgreSQL server settings (the same for every contender) without creating or
# loading any database, and restarts PostgreSQL when a setting needs it (shared_buffers, max_connections).
# side.sh needs max_connections above ~115 for pgbench at c=64 next to the servers' idle pools.
#   ./pg-tune.sh           # prints the settings before and after
# Runs psql as the postgres OS user (peer auth over the unix socket) and pg_ctlcluster: root or postgres.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/env.sh"
read -r PGVER PGCLUSTER PGCPORT _ < <(pg_lsclusters -h | awk -v p="$PGPORT" '$3 == p' | head -1)
[ -n "${PGVER:-}" ] || { echo "no PostgreSQL cluster on port $PGPORT (pg_lsclusters)" >&2; exit 1; }
show() { pg_admin -tAc "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings
  WHERE name IN ('shared_buffers','effective_cache_size','work_mem','maintenance_work_mem','random_page_cost','jit',
                 'max_connections','max_wal_size','checkpoint_timeout')"; }
echo "before: $(show)"
pg_admin <<'SQL'
ALTER SYSTEM SET max_connections = 200;
ALTER SYSTEM SET shared_buffers = '4GB';
ALTER SYSTEM SET effective_cache_size = '16GB';
ALTER SYSTEM SET work_mem = '16MB';
ALTER SYSTEM SET maintenance_work_mem = '1GB';
ALTER SYSTEM SET random_page_cost = 1.1;
ALTER SYSTEM SET jit = off;
ALTER SYSTEM SET max_wal_size = '8GB';
ALTER SYSTEM SET checkpoint_timeout = '30min';
SQL
pg_admin -tAc 'SELECT pg_reload_conf()' >/dev/null
sleep 1
if [ "$(pg_admin -tAc 'SELECT count(*) FROM pg_settings WHERE pending_restart')" != "0" ]; then
  echo "restarting PostgreSQL $PGVER/$PGCLUSTER to apply settings"
  pg_ctlcluster "$PGVER" "$PGCLUSTER" restart
  for _ in $(seq 60); do pg_isready -q -h /var/run/postgresql -p "$PGPORT" && break; sleep 1; done
fi
echo "after:  $(show)"
