//! Database connections: the embedded SQLite default and PostgreSQL for production. Both run the
//! same migrations; the secrets every server process must share live in `server_settings`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use entity::server_settings;
use migration::{Migrator, MigratorTrait};
use rand::RngCore;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, EntityTrait, Set};

use crate::error::{AppError, AppResult};

/// Where `logbook` keeps its data when no `DATABASE_URL` is given.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://logbook.db?mode=rwc";

#[derive(Debug, Clone)]
pub struct DbSettings {
    pub url: String,
    pub max_connections: u32,
    /// How long one statement may run (PostgreSQL's `statement_timeout`); `None` for commands
    /// that bulk-load or rewrite tables (`seed`, `migrate`, `traces archive`), whose single
    /// statements may rightly take longer than any request should.
    pub statement_timeout: Option<Duration>,
}

impl DbSettings {
    pub fn new(url: impl Into<String>) -> Self {
        DbSettings {
            url: url.into(),
            max_connections: 32,
            statement_timeout: Some(Duration::from_secs(10)),
        }
    }

    /// The same database for an operator's bulk command: no statement timeout.
    pub fn for_bulk_work(&self) -> Self {
        DbSettings {
            statement_timeout: None,
            ..self.clone()
        }
    }
}

/// The number of SQL statements this process sent (for tests that assert how many statements
/// an operation costs; `/metrics` has their durations, see `crate::telemetry`).
#[derive(Debug, Default)]
pub struct SqlStats {
    statements: AtomicU64,
}

impl SqlStats {
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }
}

/// Connects and installs the statement counter and metric.
pub async fn connect_counted(
    settings: &DbSettings,
) -> AppResult<(DatabaseConnection, Arc<SqlStats>)> {
    let mut db = connect(settings).await?;
    let stats = Arc::new(SqlStats::default());
    let sink = stats.clone();
    crate::telemetry::install();
    let [ok, error] = crate::telemetry::sql_statement_histograms();
    let system = match db.get_database_backend() {
        DbBackend::Postgres => "postgresql",
        DbBackend::Sqlite => "sqlite",
        _ => "other_sql",
    };
    db.set_metric_callback(move |info| {
        sink.statements.fetch_add(1, Ordering::Relaxed);
        let histogram = if info.failed { &error } else { &ok };
        histogram.record(info.elapsed.as_secs_f64());
        crate::otel::record_statement(system, &info.statement.sql, info.elapsed, info.failed);
    });
    Ok((db, stats))
}

pub async fn connect(settings: &DbSettings) -> AppResult<DatabaseConnection> {
    let mut options = ConnectOptions::new(settings.url.clone());
    if let Some(timeout) = settings.statement_timeout {
        options.statement_timeout(timeout);
    }
    options
        .max_connections(settings.max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // sqlx prepares every statement. After five runs PostgreSQL may switch a prepared
        // statement to a generic plan, blind to the bound tenant, times and ids; on the bench data
        // that turned the 30-day facets' index ranges into long filtered scans (57 req/s with
        // generic plans, 286 with custom ones; BENCHMARKS.md "Console reads"). Planning each
        // execution costs far less than a wrong plan.
        .map_sqlx_postgres_opts(|opts| opts.options([("plan_cache_mode", "force_custom_plan")]))
        .map_sqlx_sqlite_opts(|opts| {
            // WAL lets readers run beside the single writer; the busy timeout queues writers
            // instead of failing them with SQLITE_BUSY.
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    Database::connect(options)
        .await
        .map_err(|e| AppError::Unavailable(format!("cannot connect to the database: {e}")))
}

/// Applies pending migrations and logs one line saying how many (sea-orm-migration's own
/// per-migration lines are filtered to warnings by the binary's default log filter). Returns
/// the names of the migrations that were pending, in the order applied (`serve` records them,
/// `crate::system::lifecycle`).
///
/// On SQLite the migrations run over one connection of their own. Most SQLite migrations run
/// outside a transaction, statement by statement, and over a pool two statements may go to two
/// connections. Now and then the suite saw a `CREATE TRIGGER` fail with "already exists" right
/// after its `DROP TRIGGER` succeeded, or a column added twice; a second connection still
/// reading from before the first one's schema change fits that, and one connection rules it
/// out whatever the cause.
pub async fn migrate(db: &DatabaseConnection) -> AppResult<Vec<String>> {
    if db.get_database_backend() == DbBackend::Sqlite {
        let options = (*db.get_sqlite_connection_pool().connect_options()).clone();
        let single = sea_orm::sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| AppError::Unavailable(format!("cannot connect to the database: {e}")))?;
        let single = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(single);
        let applied = apply_migrations(&single).await;
        let _ = single.close().await;
        return applied;
    }
    apply_migrations(db).await
}

async fn apply_migrations(db: &DatabaseConnection) -> AppResult<Vec<String>> {
    let pending: Vec<String> = Migrator::get_pending_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    Migrator::up(db, None).await?;
    if !pending.is_empty() {
        tracing::info!(applied = pending.len(), "database migrated");
    }
    Ok(pending)
}

pub fn is_postgres(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// Returns the named secret, creating it (32 random bytes, hex) on first use. Every server
/// process sharing the database gets the same value, so cursors signed by one verify on another.
pub async fn shared_secret(db: &DatabaseConnection, name: &str) -> AppResult<Vec<u8>> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let candidate = server_settings::ActiveModel {
        name: Set(name.to_owned()),
        value: Set(hex::encode(bytes)),
        created_at: Set(crate::scalars::now()),
    };
    // Insert-if-absent, then read: concurrent first starts agree on whichever row won.
    server_settings::Entity::insert(candidate)
        .on_conflict_do_nothing_on([server_settings::Column::Name])
        .exec(db)
        .await?;
    let row = server_settings::Entity::find_by_id(name.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| AppError::internal(format!("server setting {name} vanished")))?;
    hex::decode(&row.value)
        .map_err(|e| AppError::internal(format!("server setting {name} is not hex: {e}")))
}

/// The `n`-th (1-based) bind parameter of a raw statement: `$n` on PostgreSQL, `?n` on SQLite.
pub fn param(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    }
}

/// Takes `pg_try_advisory_xact_lock(hashtext(key))` in `txn`: whether this transaction now
/// holds the lock, released when it ends (a crashed process's connection releases it too).
/// Never waits. Always true on SQLite, which has no such lock; callers say what serialises
/// them there.
pub async fn try_advisory_xact_lock(
    txn: &sea_orm::DatabaseTransaction,
    key: &str,
) -> AppResult<bool> {
    use sea_orm::ConnectionTrait;
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(true);
    }
    let row = txn
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock(hashtext($1)) AS locked",
            [key.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<bool>("", "locked")?,
        None => false,
    })
}

/// PostgreSQL's bulk insert: `rows` go in as one JSON text parameter, an array with one array
/// of cells per row, unpacked by `jsonb_array_elements` and read by position and cast to each
/// column's type, so the statement's text is the same for any number of rows. A multi-row
/// `VALUES` has one parameter per cell and a text per row count: each count is a new prepared
/// statement to parse and plan, and every execution builds an expression per cell (for 64
/// steps, 1 600); BENCHMARKS.md, "OTLP ingest, second sitting". Rows as arrays rather than
/// objects unpacked by `jsonb_populate_recordset`: the parameter carries no column names, and
/// PostgreSQL neither sorts each row's keys nor looks each column up by name, which took a
/// third off the cost of unpacking 64 steps (BENCHMARKS.md, "OTLP ingest, fifth sitting").
///
/// The columns are those `rows[0]` sets (every row must set the same ones); `tail` follows the
/// `SELECT` (`ON CONFLICT …`, `RETURNING …`). Returns the rows `RETURNING` answers. PostgreSQL
/// only: SQLite has no `jsonb_array_elements`, and its `VALUES` is cheap in-process.
pub async fn insert_rows_as_json<A>(
    conn: &impl sea_orm::ConnectionTrait,
    rows: Vec<A>,
    tail: &str,
) -> AppResult<Vec<sea_orm::QueryResult>>
where
    A: sea_orm::ActiveModelTrait,
{
    use sea_orm::{ActiveValue, ColumnTrait, EntityName, IdenStatic, Iterable};
    type Column<A> = <<A as sea_orm::ActiveModelTrait>::Entity as sea_orm::EntityTrait>::Column;
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Vec<Column<A>> = Column::<A>::iter()
        .filter(|c| !matches!(first.get(*c), ActiveValue::NotSet))
        .collect();
    let cells = columns
        .iter()
        .enumerate()
        .map(|(i, c)| cell_sql(i, c.def().get_column_type(), c.as_str()))
        .collect::<AppResult<Vec<_>>>()?
        .join(", ");
    // The JSON text is written directly: building a `serde_json::Value` tree first (a map with
    // owned keys per row) cost as much as the rest of the server's work on a step.
    let mut json: Vec<u8> = vec![b'['];
    for (i, row) in rows.iter().enumerate() {
        json.extend_from_slice(if i == 0 { b"[" } else { b",[" });
        for (j, column) in columns.iter().enumerate() {
            if j > 0 {
                json.push(b',');
            }
            let cell = match row.get(*column) {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => json_cell(&v),
                ActiveValue::NotSet => serde_json::Value::Null,
            };
            serde_json::to_writer(&mut json, &cell).map_err(AppError::internal)?;
        }
        json.push(b']');
    }
    json.push(b']');
    let json = String::from_utf8(json).map_err(AppError::internal)?;
    let table = A::Entity::default().table_name().to_owned();
    let names = columns
        .iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO \"{table}\" ({names}) SELECT {cells} \
         FROM jsonb_array_elements($1::jsonb) AS row_cells {tail}"
    );
    let statement =
        sea_orm::Statement::from_sql_and_values(DbBackend::Postgres, sql, [json.into()]);
    Ok(conn.query_all_raw(statement).await?)
}

/// The SQL that reads cell `i` of a row of [`insert_rows_as_json`] as a value of `column_type`.
/// JSON columns take the cell as it is, a JSON `null` being SQL `NULL` as for every other type;
/// the rest take its text (`->>`, `NULL` for `null`) through their type's input function.
fn cell_sql(i: usize, column_type: &sea_orm::ColumnType, name: &str) -> AppResult<String> {
    use sea_orm::ColumnType as T;
    let cast = match column_type {
        T::Json | T::JsonBinary => {
            return Ok(format!("NULLIF(row_cells -> {i}, 'null'::jsonb)"));
        }
        T::String(_) | T::Char(_) | T::Text => "text",
        T::TinyInteger | T::SmallInteger => "int2",
        T::Integer => "int4",
        T::BigInteger => "int8",
        T::Float => "float4",
        T::Double => "float8",
        T::Decimal(_) | T::Money(_) => "numeric",
        T::Boolean => "bool",
        T::TimestampWithTimeZone => "timestamptz",
        T::Timestamp | T::DateTime => "timestamp",
        T::Date => "date",
        T::Time => "time",
        T::Uuid => "uuid",
        T::Binary(_) | T::VarBinary(_) | T::Blob => "bytea",
        other => {
            return Err(AppError::internal(format!(
                "bulk insert: column {name} has a type it does not read ({other:?})"
            )))
        }
    };
    Ok(format!("(row_cells ->> {i})::{cast}"))
}

/// A cell as [`cell_sql`] reads it back into its column's type: instants as
/// RFC 3339 text with microseconds (PostgreSQL's precision), bytes as bytea hex text, everything
/// else as sea-query renders it in JSON.
fn json_cell(value: &sea_orm::Value) -> serde_json::Value {
    use chrono::SecondsFormat;
    match value {
        sea_orm::Value::ChronoDateTimeUtc(Some(at)) => {
            serde_json::Value::String(at.to_rfc3339_opts(SecondsFormat::Micros, true))
        }
        sea_orm::Value::ChronoDateTimeWithTimeZone(Some(at)) => {
            serde_json::Value::String(at.to_rfc3339_opts(SecondsFormat::Micros, true))
        }
        // bytea's hex input format (sea-query would assume UTF-8 and panic on anything else).
        sea_orm::Value::Bytes(Some(bytes)) => {
            serde_json::Value::String(format!("\\x{}", hex::encode(bytes)))
        }
        other => sea_orm::sea_query::sea_value_to_json_value(other),
    }
}

/// Lets PostgreSQL reuse generic plans for the rest of `txn`: `SET LOCAL plan_cache_mode =
/// auto`, undoing the session's `force_custom_plan` ([`connect`]) until the transaction ends.
/// For write transactions that insert many rows: each row's foreign-key check is a prepared
/// query, and forced custom plans re-plan it for every row (about 70 µs each against a table
/// with many indexes, which was a quarter of PostgreSQL's time in OTLP ingest; BENCHMARKS.md,
/// "OTLP ingest"). Those checks are unique-key lookups, whose generic plan is the custom one.
/// No-op on SQLite.
pub async fn reuse_plans(txn: &sea_orm::DatabaseTransaction) -> AppResult<()> {
    use sea_orm::ConnectionTrait;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared("SET LOCAL plan_cache_mode = auto")
            .await?;
    }
    Ok(())
}
