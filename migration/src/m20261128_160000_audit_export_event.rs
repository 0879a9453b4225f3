//! A dedicated audit event for exports: `ExportCompleted` on entity type `EXPORT`. The export
//! worker anchors each manifest's sha256 in the ledger with it (issue 6), so the ledger's proofs
//! cover exports without borrowing a signal event. Widens the two CHECK constraints of
//! `audit_ledger`; existing rows are untouched.
//!
//! PostgreSQL alters the constraints in place. SQLite cannot alter a CHECK, so the table is
//! rebuilt the documented way (create the new table, copy, drop, rename) with its indexes and
//! immutability triggers recreated from their stored SQL. `DROP TABLE` does not fire triggers.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::common::{backend, exec, quoted_list};
use crate::m20261127_000005_create_audit_ledger::{ENTITY_TYPES, EVENT_TYPES};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "audit_ledger";

fn with(values: &[&'static str], extra: &'static str) -> Vec<&'static str> {
    let mut all = values.to_vec();
    all.push(extra);
    all
}

/// The event and entity type lists before (`widen == false`) or after this migration.
fn lists(widen: bool) -> (Vec<&'static str>, Vec<&'static str>) {
    if widen {
        (
            with(EVENT_TYPES, "ExportCompleted"),
            with(ENTITY_TYPES, "EXPORT"),
        )
    } else {
        (EVENT_TYPES.to_vec(), ENTITY_TYPES.to_vec())
    }
}

async fn postgres(manager: &SchemaManager<'_>, widen: bool) -> Result<(), DbErr> {
    // The inline column CHECKs got generated names; find them by what they constrain.
    exec(
        manager,
        "DO $$ DECLARE c record; BEGIN \
           FOR c IN SELECT conname FROM pg_constraint \
             WHERE conrelid = 'audit_ledger'::regclass AND contype = 'c' \
               AND (pg_get_constraintdef(oid) LIKE '%event_type%' \
                 OR pg_get_constraintdef(oid) LIKE '%entity_type%') \
           LOOP EXECUTE format('ALTER TABLE audit_ledger DROP CONSTRAINT %I', c.conname); \
           END LOOP; END $$",
    )
    .await?;
    let (events, entities) = lists(widen);
    exec(
        manager,
        &format!(
            "ALTER TABLE {TABLE} \
             ADD CONSTRAINT ck_audit_ledger_event_type CHECK (event_type IN ({})), \
             ADD CONSTRAINT ck_audit_ledger_entity_type CHECK (entity_type IN ({}))",
            quoted_list(&events),
            quoted_list(&entities)
        ),
    )
    .await
}

async fn sqlite(manager: &SchemaManager<'_>, widen: bool) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!(
                "SELECT type, sql FROM sqlite_master WHERE tbl_name = '{TABLE}' AND sql IS NOT NULL"
            ),
        ))
        .await?;
    let mut table_sql = None;
    let mut dependents = Vec::new();
    for row in rows {
        let kind: String = row.try_get("", "type")?;
        let sql: String = row.try_get("", "sql")?;
        if kind == "table" {
            table_sql = Some(sql);
        } else {
            dependents.push(sql);
        }
    }
    let table_sql = table_sql.ok_or_else(|| DbErr::Migration(format!("{TABLE} is missing")))?;
    let (old_events, old_entities) = lists(!widen);
    let (new_events, new_entities) = lists(widen);
    let mut rebuilt = table_sql.clone();
    for (col, old, new) in [
        ("event_type", &old_events, &new_events),
        ("entity_type", &old_entities, &new_entities),
    ] {
        let from = format!("CHECK (\"{col}\" IN ({}))", quoted_list(old));
        let to = format!("CHECK (\"{col}\" IN ({}))", quoted_list(new));
        if !rebuilt.contains(&from) {
            return Err(DbErr::Migration(format!(
                "{TABLE}: the {col} CHECK is not the expected one; refusing to rebuild"
            )));
        }
        rebuilt = rebuilt.replacen(&from, &to, 1);
    }
    let rebuilt = rebuilt.replacen(
        &format!("CREATE TABLE \"{TABLE}\""),
        &format!("CREATE TABLE \"{TABLE}_rebuilt\""),
        1,
    );
    exec(manager, &rebuilt).await?;
    exec(
        manager,
        &format!("INSERT INTO \"{TABLE}_rebuilt\" SELECT * FROM \"{TABLE}\""),
    )
    .await?;
    exec(manager, &format!("DROP TABLE \"{TABLE}\"")).await?;
    exec(
        manager,
        &format!("ALTER TABLE \"{TABLE}_rebuilt\" RENAME TO \"{TABLE}\""),
    )
    .await?;
    for sql in dependents {
        exec(manager, &sql).await?;
    }
    Ok(())
}

async fn apply(manager: &SchemaManager<'_>, widen: bool) -> Result<(), DbErr> {
    match backend(manager)? {
        DbBackend::Postgres => postgres(manager, widen).await,
        _ => sqlite(manager, widen).await,
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on SQLite too: the rebuild must run on one connection (another pooled
    /// connection's cached schema would still hold the dropped table's indexes) and must not
    /// be left half done.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        apply(manager, true).await
    }

    /// Fails (by the CHECK) while `ExportCompleted` entries exist: they cannot be dropped from
    /// an append-only ledger.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        apply(manager, false).await
    }
}
