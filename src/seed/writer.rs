//! Batched, streaming inserts for the seeder.
//!
//! Generators run on blocking threads and push rows (`Vec<Value>`, one typed `sea_orm::Value`
//! per column) into a [`Sink`]. A sink buffers a batch per table and hands full batches over a
//! bounded channel to one async writer task, so memory stays bounded whatever the row count.
//! On PostgreSQL a batch is pre-encoded (on the generator thread) as `COPY … FROM STDIN` text and
//! sent with one `COPY` statement; elsewhere (SQLite) it becomes multi-row `INSERT`s inside one
//! transaction, under a gate that keeps SQLite to a single writer.
//!
//! A sink's tables are listed parents first: before a table's batch is sent, the batches of the
//! tables before it are sent, and the writer applies batches in order, so foreign keys (trace
//! steps → traces, snapshot aggregates → snapshots) always find their parent rows.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use indicatif::ProgressBar;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};
use tokio::sync::{mpsc, Mutex};

use crate::error::{AppError, AppResult};

/// A table the seeder writes: its name and the columns each row supplies, in order.
#[derive(Debug)]
pub(crate) struct TableDef {
    pub name: &'static str,
    pub columns: &'static [&'static str],
}

/// How batches reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// PostgreSQL `COPY … FROM STDIN` (text format).
    Copy,
    /// Multi-row `INSERT` statements in a transaction (any backend).
    Insert,
}

/// SQLite allows at most 32 766 bound variables per statement.
const MAX_VARIABLES: usize = 32_000;
/// Rows per multi-row INSERT statement, at most.
const MAX_ROWS_PER_STATEMENT: usize = 1_000;

pub(crate) type Row = Vec<Value>;

enum Payload {
    Copy(Vec<u8>),
    Rows(Vec<Row>),
}

struct Batch {
    table: usize,
    rows: u64,
    payload: Payload,
}

enum Buffer {
    Copy(Vec<u8>),
    Rows(Vec<Row>),
}

/// The generator side of one writer: per-table batch buffers and the channel to the writer.
pub(crate) struct Sink {
    tables: &'static [&'static TableDef],
    mode: Mode,
    batch_rows: usize,
    buffers: Vec<(Buffer, usize)>,
    tx: mpsc::Sender<Batch>,
}

impl Sink {
    /// Appends one row to `table` (an index into the sink's tables).
    pub fn push(&mut self, table: usize, row: Row) -> AppResult<()> {
        let def = self
            .tables
            .get(table)
            .ok_or_else(|| AppError::internal(format!("seed: no table #{table} in this sink")))?;
        if row.len() != def.columns.len() {
            return Err(AppError::internal(format!(
                "seed: {} row has {} values for {} columns",
                def.name,
                row.len(),
                def.columns.len()
            )));
        }
        let full = {
            let (buffer, count) = &mut self.buffers[table];
            match buffer {
                Buffer::Copy(bytes) => {
                    encode_copy_row(bytes, &row, def.name)?;
                    *count += 1;
                    *count >= self.batch_rows || bytes.len() >= 4 << 20
                }
                Buffer::Rows(rows) => {
                    rows.push(row);
                    *count += 1;
                    *count >= self.batch_rows
                }
            }
        };
        if full {
            self.flush(table)?;
        }
        Ok(())
    }

    /// Sends the pending batches of `table` and of every table before it (its parents).
    fn flush(&mut self, table: usize) -> AppResult<()> {
        for t in 0..=table {
            let (buffer, count) = &mut self.buffers[t];
            if *count == 0 {
                continue;
            }
            let payload = match buffer {
                Buffer::Copy(bytes) => Payload::Copy(std::mem::take(bytes)),
                Buffer::Rows(rows) => Payload::Rows(std::mem::take(rows)),
            };
            let batch = Batch {
                table: t,
                rows: *count as u64,
                payload,
            };
            *count = 0;
            self.tx
                .blocking_send(batch)
                .map_err(|_| AppError::internal("seed: the database writer stopped"))?;
        }
        Ok(())
    }

    /// Sends everything still buffered; the writer ends once every sink clone is finished.
    pub fn finish(mut self) -> AppResult<()> {
        if !self.buffers.is_empty() {
            self.flush(self.buffers.len() - 1)?;
        }
        Ok(())
    }

    /// Another generator-side handle on the same writer (own buffers, shared channel).
    pub fn fork(&self) -> Sink {
        Sink::with_sender(self.tables, self.mode, self.batch_rows, self.tx.clone())
    }

    fn with_sender(
        tables: &'static [&'static TableDef],
        mode: Mode,
        batch_rows: usize,
        tx: mpsc::Sender<Batch>,
    ) -> Sink {
        let buffers = tables
            .iter()
            .map(|_| {
                let buffer = match mode {
                    Mode::Copy => Buffer::Copy(Vec::new()),
                    Mode::Insert => Buffer::Rows(Vec::new()),
                };
                (buffer, 0)
            })
            .collect();
        Sink {
            tables,
            mode,
            batch_rows,
            buffers,
            tx,
        }
    }
}

/// The async side: applies batches in arrival order and counts rows per table.
pub(crate) struct Writer {
    db: DatabaseConnection,
    tables: &'static [&'static TableDef],
    rx: mpsc::Receiver<Batch>,
    gate: Arc<Mutex<()>>,
    bars: Vec<ProgressBar>,
}

/// Creates a sink and its writer. `bars` has one progress bar per table.
pub(crate) fn channel(
    db: &DatabaseConnection,
    tables: &'static [&'static TableDef],
    mode: Mode,
    gate: Arc<Mutex<()>>,
    bars: Vec<ProgressBar>,
) -> (Sink, Writer) {
    let (tx, rx) = mpsc::channel(2);
    let batch_rows = match mode {
        Mode::Copy => 10_000,
        Mode::Insert => 5_000,
    };
    let sink = Sink::with_sender(tables, mode, batch_rows, tx);
    let writer = Writer {
        db: db.clone(),
        tables,
        rx,
        gate,
        bars,
    };
    (sink, writer)
}

fn db_error(table: &str, err: impl std::fmt::Display) -> AppError {
    AppError::internal(format!("seed: writing {table}: {err}"))
}

impl Writer {
    /// Runs until every sink is dropped; returns `(table, rows written)` per table.
    pub async fn run(mut self) -> AppResult<Vec<(&'static str, u64)>> {
        let mut counts = vec![0u64; self.tables.len()];
        let mut copy_conn = None;
        while let Some(batch) = self.rx.recv().await {
            let def = self.tables[batch.table];
            let written = match batch.payload {
                Payload::Copy(bytes) => {
                    if copy_conn.is_none() {
                        let conn = self
                            .db
                            .get_postgres_connection_pool()
                            .acquire()
                            .await
                            .map_err(|e| db_error(def.name, e))?;
                        copy_conn = Some(conn);
                    }
                    let Some(conn) = copy_conn.as_mut() else {
                        return Err(AppError::internal("seed: no COPY connection"));
                    };
                    let sql = format!("COPY {} ({}) FROM STDIN", def.name, def.columns.join(", "));
                    let mut copy = conn
                        .copy_in_raw(&sql)
                        .await
                        .map_err(|e| db_error(def.name, e))?;
                    if let Err(e) = copy.send(bytes).await {
                        let _ = copy.abort("seed writer failed").await;
                        return Err(db_error(def.name, e));
                    }
                    copy.finish().await.map_err(|e| db_error(def.name, e))?
                }
                Payload::Rows(rows) => self.insert_rows(def, rows).await?,
            };
            if written != batch.rows {
                return Err(AppError::internal(format!(
                    "seed: {} batch of {} rows wrote {written}",
                    def.name, batch.rows
                )));
            }
            counts[batch.table] += written;
            if let Some(bar) = self.bars.get(batch.table) {
                bar.inc(written);
            }
        }
        Ok(self
            .tables
            .iter()
            .zip(counts)
            .map(|(def, n)| (def.name, n))
            .collect())
    }

    async fn insert_rows(&self, def: &TableDef, rows: Vec<Row>) -> AppResult<u64> {
        let backend = self.db.get_database_backend();
        let per_statement =
            (MAX_VARIABLES / def.columns.len().max(1)).clamp(1, MAX_ROWS_PER_STATEMENT);
        let _guard = self.gate.lock().await;
        let txn = self.db.begin().await?;
        let mut written = 0;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Row> = rows.by_ref().take(per_statement).collect();
            let n = chunk.len();
            let sql = insert_sql(backend, def, n);
            let values: Vec<Value> = chunk.into_iter().flatten().collect();
            let result = txn
                .execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
            written += result.rows_affected();
        }
        txn.commit().await?;
        Ok(written)
    }
}

/// `INSERT INTO t (cols) VALUES (...), (...)` with `rows` rows of placeholders.
pub(crate) fn insert_sql(backend: DbBackend, def: &TableDef, rows: usize) -> String {
    let cols = def.columns.len();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        def.name,
        def.columns.join(", ")
    );
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match backend {
                DbBackend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// Appends `text` escaped for the COPY text format.
fn push_copy_text(out: &mut Vec<u8>, text: &str) {
    for &b in text.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
}

pub(crate) fn copy_timestamp(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

fn copy_date(date: &NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// Encodes one row as a COPY text line.
fn encode_copy_row(out: &mut Vec<u8>, row: &[Value], table: &str) -> AppResult<()> {
    use std::io::Write;
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        let written = match value {
            Value::Bool(Some(b)) => {
                out.push(if *b { b't' } else { b'f' });
                Ok(())
            }
            Value::Int(Some(n)) => write!(out, "{n}"),
            Value::BigInt(Some(n)) => write!(out, "{n}"),
            Value::Double(Some(f)) if f.is_finite() => write!(out, "{f}"),
            Value::String(Some(s)) => {
                push_copy_text(out, s);
                Ok(())
            }
            Value::Json(Some(j)) => {
                push_copy_text(out, &j.to_string());
                Ok(())
            }
            Value::ChronoDateTimeUtc(Some(t)) => {
                out.extend_from_slice(copy_timestamp(t).as_bytes());
                Ok(())
            }
            Value::ChronoDate(Some(d)) => {
                out.extend_from_slice(copy_date(d).as_bytes());
                Ok(())
            }
            Value::Bool(None)
            | Value::Int(None)
            | Value::BigInt(None)
            | Value::Double(None)
            | Value::String(None)
            | Value::Json(None)
            | Value::ChronoDateTimeUtc(None)
            | Value::ChronoDate(None) => {
                out.extend_from_slice(b"\\N");
                Ok(())
            }
            other => {
                return Err(AppError::internal(format!(
                    "seed: {table} column #{i}: unsupported value {other:?}"
                )))
            }
        };
        written.map_err(|e| AppError::internal(format!("seed: encoding {table}: {e}")))?;
    }
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn copy_text_escapes_and_nulls() {
        let at = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .unwrap_or_default();
        let row = vec![
            Value::String(Some("a\tb\\c\nd".into())),
            Value::String(None),
            Value::Bool(Some(true)),
            Value::Int(Some(-3)),
            Value::Double(Some(0.1)),
            Value::Json(Some(Box::new(serde_json::json!({"k": "x\ny"})))),
            Value::ChronoDateTimeUtc(Some(at)),
        ];
        let mut out = Vec::new();
        assert!(encode_copy_row(&mut out, &row, "t").is_ok());
        assert_eq!(
            String::from_utf8_lossy(&out),
            "a\\tb\\\\c\\nd\t\\N\tt\t-3\t0.1\t{\"k\":\"x\\\\ny\"}\t2026-01-02 03:04:05.000000+00\n"
        );
    }

    #[test]
    fn insert_sql_numbers_postgres_placeholders() {
        static T: TableDef = TableDef {
            name: "t",
            columns: &["a", "b"],
        };
        assert_eq!(
            insert_sql(DbBackend::Postgres, &T, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            insert_sql(DbBackend::Sqlite, &T, 1),
            "INSERT INTO t (a, b) VALUES (?, ?)"
        );
    }
}
