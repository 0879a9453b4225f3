//! Text search over a run's short text fields: a case-insensitive substring of its run id,
//! model, provider, trace id or scenario id (docs/console.md). Both backends answer it from a
//! trigram index, never a scan of the tenant's runs: PostgreSQL from a `pg_trgm` GIN index on
//! the lowered fields, SQLite from the FTS5 trigram table `llm_run_search`, kept by triggers
//! (migration `m20261205_000000_run_console_reads`).

use crate::list_filters::TextSearch;

pub const RUN_SEARCH: TextSearch = TextSearch {
    table: "llm_run_records",
    text: "lower(run_id || ' ' || model || ' ' || provider || ' ' || \
        coalesce(trace_id, '') || ' ' || coalesce(synthetic_scenario_id, ''))",
    fts_table: "llm_run_search",
};
