-- (d) d_count: the SQL Logbook issues for scenarios/graphql/logbook/d_count.graphql
-- (llmRuns { totalCount }), 1 statement(s), captured from PostgreSQL's statement log by
-- lb-capture-sql.sh. pgbench binds the :variables (side.sh passes them from side_lib.py params) as
-- parameters of prepared statements, as Logbook (sqlx) does. After the first (root) statement,
-- Logbook runs its DataLoaders' statements concurrently on several connections; pgbench runs
-- them one after the other, in sorted order. IN lists are sets: values in variable order.
SELECT CAST(COALESCE(SUM(runs), 0) AS BIGINT) AS "runs" FROM "llm_run_day_counts" WHERE "llm_run_day_counts"."tenant_id" = :tenant LIMIT :n1;
