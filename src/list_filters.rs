//! Pieces every console list filter shares (docs/console.md): inclusive numeric ranges, "any of"
//! / "none of" value lists, the sort direction, case-insensitive substring search over a
//! table's short text fields (a trigram index on both backends), and full-text word search over
//! its long text (a `tsvector` column on PostgreSQL, an FTS5 word table on SQLite).

use async_graphql::{Enum, InputObject};
use sea_orm::sea_query::{Condition, Expr, SimpleExpr};
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, Select};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult};
use crate::scalars::BigInt;

/// An inclusive integer range; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntRange {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl IntRange {
    pub fn contains(&self, value: i64) -> bool {
        self.min.is_none_or(|lo| value >= lo) && self.max.is_none_or(|hi| value <= hi)
    }
}

/// An inclusive range; either end may be left open.
#[derive(Debug, Clone, Copy, Default, InputObject)]
#[graphql(name = "IntRange")]
pub struct IntRangeInput {
    pub min: Option<BigInt>,
    pub max: Option<BigInt>,
}

/// The direction of a list order; ties are broken by record id in the same direction.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderDirection {
    #[default]
    Desc,
    Asc,
}

/// The most values one "any of" / "none of" list may hold.
pub const MAX_FILTER_VALUES: usize = 100;

/// Checks an "any of" / "none of" list of text values (1 to [`MAX_FILTER_VALUES`]); sorted and
/// without duplicates, so equal filters serialize (and bind cursors) alike.
pub fn text_set(field: &str, values: Option<Vec<String>>) -> AppResult<Option<Vec<String>>> {
    let Some(mut values) = values else {
        return Ok(None);
    };
    if values.is_empty() || values.len() > MAX_FILTER_VALUES {
        return Err(AppError::bad_input(
            field,
            format!("`{field}` takes 1 to {MAX_FILTER_VALUES} values"),
        ));
    }
    values.sort();
    values.dedup();
    Ok(Some(values))
}

/// Checks a range input: `min` not above `max`.
pub fn range(field: &str, range: Option<IntRangeInput>) -> AppResult<Option<IntRange>> {
    let Some(IntRangeInput { min, max }) = range else {
        return Ok(None);
    };
    let (min, max) = (min.map(|v| v.0), max.map(|v| v.0));
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(AppError::bad_input(
                field,
                format!("`{field}.min` is above `max`"),
            ));
        }
    }
    Ok(Some(IntRange { min, max }))
}

/// Narrows `select` to the rows whose columns lie in the given ranges (a NULL lies in none).
pub fn within_ranges<E: EntityTrait, C: ColumnTrait>(
    mut select: Select<E>,
    ranges: impl IntoIterator<Item = (C, Option<IntRange>)>,
) -> Select<E> {
    for (column, range) in ranges {
        let Some(IntRange { min, max }) = range else {
            continue;
        };
        if let Some(min) = min {
            select = select.filter(column.gte(min));
        }
        if let Some(max) = max {
            select = select.filter(column.lte(max));
        }
    }
    select
}

/// Narrows `select` to rows whose column is one of `any_of` and none of `none_of`. A row without
/// a value (NULL) is in no "any of" list and kept by every "none of" list.
pub fn within_sets<E: EntityTrait, C: ColumnTrait>(
    mut select: Select<E>,
    column: C,
    any_of: Option<&[String]>,
    none_of: Option<&[String]>,
) -> Select<E> {
    if let Some(values) = any_of {
        select = select.filter(column.is_in(values.iter().map(String::as_str)));
    }
    if let Some(values) = none_of {
        select = select.filter(
            Condition::any()
                .add(column.is_null())
                .add(column.is_not_in(values.iter().map(String::as_str))),
        );
    }
    select
}

/// The stored values of a closed set's members, for [`within_sets`].
pub fn stored_values<T: Copy>(
    values: &Option<Vec<T>>,
    as_str: fn(T) -> &'static str,
) -> Option<Vec<String>> {
    values
        .as_ref()
        .map(|v| v.iter().map(|&x| as_str(x).to_owned()).collect())
}

/// A trigram index needs three characters to narrow anything.
pub const MIN_TERM: usize = 3;
pub const MAX_TERM: usize = 100;

/// Checks a search term: `MIN_TERM..=MAX_TERM` characters, not only spaces.
pub fn check_term(field: &str, term: &str) -> AppResult<()> {
    let length = term.chars().count();
    if term.trim().is_empty() || !(MIN_TERM..=MAX_TERM).contains(&length) {
        return Err(AppError::bad_input(
            field,
            format!("`{field}` must be {MIN_TERM} to {MAX_TERM} characters"),
        ));
    }
    Ok(())
}

/// A table's searchable text and the indexes that answer a substring of it: on PostgreSQL a
/// `pg_trgm` GIN index on exactly `text` (the query must repeat the indexed expression), on
/// SQLite an FTS5 trigram table keyed by the table's rowid and kept by triggers.
pub struct TextSearch {
    /// The table searched (qualifies `rowid` on SQLite).
    pub table: &'static str,
    /// The lowered, space-joined text, as the PostgreSQL index expression writes it.
    pub text: &'static str,
    /// The SQLite FTS5 trigram table.
    pub fts_table: &'static str,
}

impl TextSearch {
    /// The condition "the row's text contains `term`", ignoring case; `%`, `_` and `\` are
    /// literal.
    pub fn matches(&self, backend: DbBackend, term: &str) -> SimpleExpr {
        let TextSearch {
            table,
            text,
            fts_table,
        } = self;
        match backend {
            DbBackend::Postgres => Expr::cust_with_values(
                format!("{text} LIKE lower($1) ESCAPE '\\'"),
                [format!("%{}%", escaped(term))],
            ),
            // `?`, not `$n`: SQLite numbers `$n` parameters itself, apart from the query's
            // other placeholders. FTS5 takes no ESCAPE clause: the index lookup treats `%` and
            // `_` in the term as wildcards (a superset), and `instr` then keeps the exact
            // matches.
            _ => Expr::cust_with_values(
                format!(
                    "{table}.rowid IN (SELECT rowid FROM {fts_table} WHERE body LIKE ?) \
                     AND instr({text}, lower(?)) > 0"
                ),
                [format!("%{}%", term.replace('\\', "_")), term.to_owned()],
            ),
        }
    }
}

/// The most words one full-text query may hold.
pub const MAX_WORDS: usize = 16;

/// One word of a full-text query: lower-case letters and digits; `prefix` when it ended in `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Word {
    pub text: String,
    pub prefix: bool,
}

/// Parses a full-text query: words are runs of letters and digits (anything else separates
/// them), matched whole and ignoring case; a word written with a trailing `*` matches as a
/// prefix. Every word must occur. 1 to [`MAX_WORDS`] words, at most [`MAX_TERM`] characters.
pub fn words(field: &str, query: &str) -> AppResult<Vec<Word>> {
    let bad = |why: &str| AppError::bad_input(field, format!("`{field}` {why}"));
    if query.chars().count() > MAX_TERM {
        return Err(bad(&format!("is longer than {MAX_TERM} characters")));
    }
    let mut out: Vec<Word> = Vec::new();
    let mut current = String::new();
    for c in query.chars() {
        if c.is_alphanumeric() {
            current.extend(c.to_lowercase());
            continue;
        }
        if !current.is_empty() {
            out.push(Word {
                text: std::mem::take(&mut current),
                prefix: c == '*',
            });
        }
    }
    if !current.is_empty() {
        out.push(Word {
            text: current,
            prefix: false,
        });
    }
    if out.is_empty() {
        return Err(bad("names no word (letters or digits)"));
    }
    if out.len() > MAX_WORDS {
        return Err(bad(&format!("holds more than {MAX_WORDS} words")));
    }
    Ok(out)
}

/// A table's long text and the word indexes that answer a full-text query on it: on
/// PostgreSQL a stored `tsvector` column (generated, `simple` configuration, no stemming or
/// stop words) with a GIN index, on SQLite an FTS5 table with the `unicode61` tokenizer keyed
/// by the table's rowid and kept by triggers.
pub struct WordSearch {
    /// The table searched (qualifies `rowid` on SQLite).
    pub table: &'static str,
    /// The PostgreSQL `tsvector` column.
    pub column: &'static str,
    /// The SQLite FTS5 table.
    pub fts_table: &'static str,
}

impl WordSearch {
    /// The condition "the row's text holds every word of `words`".
    pub fn matches(&self, backend: DbBackend, words: &[Word]) -> SimpleExpr {
        match backend {
            // Quoted lexemes are taken as written (already lower case, letters and digits
            // only), so the query cannot inject tsquery operators.
            DbBackend::Postgres => {
                let query: Vec<String> = words
                    .iter()
                    .map(|w| format!("'{}'{}", w.text, if w.prefix { ":*" } else { "" }))
                    .collect();
                Expr::cust_with_values(
                    format!("{} @@ CAST($1 AS tsquery)", self.column),
                    [query.join(" & ")],
                )
            }
            _ => {
                let query: Vec<String> = words
                    .iter()
                    .map(|w| format!("\"{}\"{}", w.text, if w.prefix { "*" } else { "" }))
                    .collect();
                Expr::cust_with_values(
                    format!(
                        "{}.rowid IN (SELECT rowid FROM {fts} WHERE {fts} MATCH ?)",
                        self.table,
                        fts = self.fts_table
                    ),
                    [query.join(" ")],
                )
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_literal_on_postgres() {
        assert_eq!(escaped("a%b_c\\d"), "a\\%b\\_c\\\\d");
    }

    #[test]
    fn terms_are_three_to_a_hundred_characters() {
        assert!(check_term("search", "gpt").is_ok());
        assert!(check_term("search", "gp").is_err());
        assert!(check_term("search", "   ").is_err());
        assert!(check_term("search", &"x".repeat(101)).is_err());
    }

    #[test]
    fn full_text_queries_are_words_of_letters_and_digits() {
        let parsed = words("text", "Disk-FULL on eu_west* 'héllo'").unwrap();
        let texts: Vec<(&str, bool)> = parsed.iter().map(|w| (w.text.as_str(), w.prefix)).collect();
        assert_eq!(
            texts,
            [
                ("disk", false),
                ("full", false),
                ("on", false),
                ("eu", false),
                ("west", true),
                ("héllo", false)
            ]
        );
        assert!(words("text", " *-* ").is_err());
        assert!(words("text", &"a ".repeat(17)).is_err());
        assert!(words("text", &"a".repeat(101)).is_err());
    }

    #[test]
    fn ranges_are_inclusive_and_open_ended() {
        let r = IntRange {
            min: Some(2),
            max: None,
        };
        assert!(r.contains(2) && r.contains(1_000) && !r.contains(1));
        assert!(range(
            "r",
            Some(IntRangeInput {
                min: Some(BigInt(3)),
                max: Some(BigInt(2)),
            })
        )
        .is_err());
    }
}
