//! Helpers shared by the migrations: CHECK expressions, index builders and the
//! backend-specific (PostgreSQL / SQLite) trigger DDL.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// `col IN ('a', 'b', ...)` for a CHECK constraint. A NULL value passes the
/// check (SQL three-valued logic), so the same expression serves nullable columns.
pub fn in_set(col: &'static str, values: &[&'static str]) -> Expr {
    Expr::col(col).is_in(values.iter().copied())
}

/// `'a', 'b', 'c'`: the values of a SQL `IN (...)` list (fixed identifiers, not user input).
pub fn quoted_list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Column of an index: `name` ascending, or `-name` descending.
fn index_col(spec: &'static str) -> IndexColumn {
    match spec.strip_prefix('-') {
        Some(name) => (name, IndexOrder::Desc).into(),
        None => spec.into(),
    }
}

/// `CREATE INDEX name ON table (cols...)`; a column written `-col` is descending.
pub fn index(
    name: &'static str,
    table: &'static str,
    cols: &[&'static str],
) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for c in cols {
        stmt.col(index_col(c));
    }
    stmt
}

/// `CREATE UNIQUE INDEX name ON table (cols...)`.
pub fn unique_index(
    name: &'static str,
    table: &'static str,
    cols: &[&'static str],
) -> IndexCreateStatement {
    let mut stmt = index(name, table, cols);
    stmt.unique();
    stmt
}

/// Create every index in `indexes`.
pub async fn create_indexes(
    manager: &SchemaManager<'_>,
    indexes: Vec<IndexCreateStatement>,
) -> Result<(), DbErr> {
    for stmt in indexes {
        manager.create_index(stmt).await?;
    }
    Ok(())
}

/// `DROP TABLE IF EXISTS` for each table, in the given order.
pub async fn drop_tables(
    manager: &SchemaManager<'_>,
    tables: &[&'static str],
) -> Result<(), DbErr> {
    for t in tables {
        manager
            .drop_table(Table::drop().table(*t).if_exists().to_owned())
            .await?;
    }
    Ok(())
}

/// Run raw SQL (one statement).
pub async fn exec(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager.get_connection().execute_unprepared(sql).await?;
    Ok(())
}

/// Runs `postgres` or `sqlite`, whichever matches the connection, in order.
pub async fn exec_for_backend(
    manager: &SchemaManager<'_>,
    postgres: &[&str],
    sqlite: &[&str],
) -> Result<(), DbErr> {
    let statements = match backend(manager)? {
        DbBackend::Postgres => postgres,
        _ => sqlite,
    };
    for sql in statements {
        exec(manager, sql).await?;
    }
    Ok(())
}

/// The migrations only target PostgreSQL and SQLite.
pub fn backend(manager: &SchemaManager<'_>) -> Result<DbBackend, DbErr> {
    match manager.get_database_backend() {
        b @ (DbBackend::Postgres | DbBackend::Sqlite) => Ok(b),
        other => Err(DbErr::Migration(format!(
            "unsupported database backend {other:?}: Logbook supports PostgreSQL and SQLite"
        ))),
    }
}

/// Install the "no UPDATE, no DELETE" triggers on `table`.
///
/// Error text: `<table> is immutable: UPDATE not allowed` / `... DELETE not allowed`.
/// PostgreSQL: one plpgsql function `<table>_immutable()` and one row trigger
/// `trg_<table>_immutable` (BEFORE UPDATE OR DELETE). SQLite: two triggers
/// `trg_<table>_immutable_update` / `trg_<table>_immutable_delete`.
pub async fn create_immutable_triggers(
    manager: &SchemaManager<'_>,
    table: &str,
) -> Result<(), DbErr> {
    match backend(manager)? {
        DbBackend::Postgres => {
            exec(
                manager,
                &format!(
                    "CREATE OR REPLACE FUNCTION {table}_immutable() RETURNS trigger \
                     LANGUAGE plpgsql AS $$\n\
                     BEGIN\n\
                     \x20   RAISE EXCEPTION '{table} is immutable: % not allowed', TG_OP;\n\
                     END;\n\
                     $$"
                ),
            )
            .await?;
            exec(
                manager,
                &format!(
                    "CREATE TRIGGER trg_{table}_immutable BEFORE UPDATE OR DELETE ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION {table}_immutable()"
                ),
            )
            .await
        }
        _ => {
            for op in ["UPDATE", "DELETE"] {
                let lower = op.to_ascii_lowercase();
                exec(
                    manager,
                    &format!(
                        "CREATE TRIGGER trg_{table}_immutable_{lower} BEFORE {op} ON {table} \
                         BEGIN SELECT RAISE(ABORT, '{table} is immutable: {op} not allowed'); END"
                    ),
                )
                .await?;
            }
            Ok(())
        }
    }
}

/// Reverse of [`create_immutable_triggers`].
pub async fn drop_immutable_triggers(
    manager: &SchemaManager<'_>,
    table: &str,
) -> Result<(), DbErr> {
    match backend(manager)? {
        DbBackend::Postgres => {
            exec(
                manager,
                &format!("DROP TRIGGER IF EXISTS trg_{table}_immutable ON {table}"),
            )
            .await?;
            exec(
                manager,
                &format!("DROP FUNCTION IF EXISTS {table}_immutable()"),
            )
            .await
        }
        _ => {
            exec(
                manager,
                &format!("DROP TRIGGER IF EXISTS trg_{table}_immutable_update"),
            )
            .await?;
            exec(
                manager,
                &format!("DROP TRIGGER IF EXISTS trg_{table}_immutable_delete"),
            )
            .await
        }
    }
}

/// `NEW."c" IS NOT DISTINCT FROM OLD."c" AND ...` (PostgreSQL) or
/// `NEW."c" IS OLD."c" AND ...` (SQLite): NULL-safe "column unchanged" test.
pub fn unchanged(backend: DbBackend, cols: &[&str]) -> String {
    let op = match backend {
        DbBackend::Postgres => "IS NOT DISTINCT FROM",
        _ => "IS",
    };
    cols.iter()
        .map(|c| format!("NEW.\"{c}\" {op} OLD.\"{c}\""))
        .collect::<Vec<_>>()
        .join("\n      AND ")
}

/// `NEW."c" IS NOT DISTINCT FROM OLD."c"` for a single column, or the SQLite form.
pub fn same(backend: DbBackend, col: &str) -> String {
    unchanged(backend, &[col])
}

/// `a.c1 = OLD.c1 AND a.c2 = OLD.c2`: the row of `alias` with the same key as the trigger's
/// OLD row.
pub fn key_match(alias: &str, key: &[&str]) -> String {
    key.iter()
        .map(|c| format!("{alias}.{c} = OLD.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Microseconds since the epoch of a stored RFC 3339 time (`2026-11-03T10:00:00.123456+00:00`,
/// with 0, 3, 6 or 9 fraction digits): whole seconds from `strftime`, the fraction from the
/// text. `julianday` would round every time to the millisecond first, and a duration would then
/// differ from PostgreSQL's by one.
macro_rules! sqlite_micros {
    ($column:literal) => {
        concat!(
            "(CAST(strftime('%s', substr(",
            $column,
            ", 1, 19)) AS INTEGER) * 1000000 + ",
            "CAST(round(CAST('0' || substr(",
            $column,
            ", 20, length(",
            $column,
            ") - 25) AS REAL) * 1000000) AS INTEGER))"
        )
    };
}
pub(crate) use sqlite_micros;
