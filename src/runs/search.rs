//! Text search over a run's short text fields: a case-insensitive substring of its run id,
//! model, provider, trace id or scenario id (docs/console.md). Both backends answer it from a
//! trigram index, never a scan of the tenant's runs: PostgreSQL from a `pg_trgm` GIN index on
//! the lowered fields, SQLite from the FTS5 trigram table `llm_run_search`, kept by triggers.

use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::DbBackend;

use crate::error::{AppError, AppResult};

/// A trigram index needs three characters to narrow anything.
pub const MIN_TERM: usize = 3;
pub const MAX_TERM: usize = 100;

/// The searched text of a run, exactly as the PostgreSQL index expression writes it.
const TEXT: &str = "lower(run_id || ' ' || model || ' ' || provider || ' ' || \
    coalesce(trace_id, '') || ' ' || coalesce(synthetic_scenario_id, ''))";

/// Checks a search term: `MIN_TERM..=MAX_TERM` characters, not only spaces.
pub fn check(field: &str, term: &str) -> AppResult<()> {
    let length = term.chars().count();
    if term.trim().is_empty() || !(MIN_TERM..=MAX_TERM).contains(&length) {
        return Err(AppError::bad_input(
            field,
            format!("`{field}` must be {MIN_TERM} to {MAX_TERM} characters"),
        ));
    }
    Ok(())
}

/// `term` with LIKE's wildcards and escape character escaped by `\`.
fn escaped(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The condition "the run's text contains `term`", ignoring case.
pub fn matches(backend: DbBackend, term: &str) -> SimpleExpr {
    match backend {
        DbBackend::Postgres => Expr::cust_with_values(
            format!("{TEXT} LIKE lower($1) ESCAPE '\\'"),
            [format!("%{}%", escaped(term))],
        ),
        // `?`, not `$n`: SQLite numbers `$n` parameters itself, apart from the query's other
        // placeholders. FTS5 takes no ESCAPE clause: the index lookup treats `%` and `_` in the term as
        // wildcards (a superset), and `instr` then keeps the exact matches.
        _ => Expr::cust_with_values(
            format!(
                "llm_run_records.rowid IN \
                 (SELECT rowid FROM llm_run_search WHERE body LIKE ?) \
                 AND instr({TEXT}, lower(?)) > 0"
            ),
            [format!("%{}%", term.replace('\\', "_")), term.to_owned()],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_literal_on_postgres() {
        assert_eq!(escaped("a%b_c\\d"), "a\\%b\\_c\\\\d");
    }

    #[test]
    fn terms_are_three_to_a_hundred_characters() {
        assert!(check("search", "gpt").is_ok());
        assert!(check("search", "gp").is_err());
        assert!(check("search", "   ").is_err());
        assert!(check("search", &"x".repeat(101)).is_err());
    }
}
