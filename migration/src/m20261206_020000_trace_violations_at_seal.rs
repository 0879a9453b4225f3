//! A trace's violation (`violation_step_index`, `violation_timestamp`, `violation_policy_id`,
//! `violation_reason`) may be recorded when the trace is sealed (`completeTrace`, `abortTrace`;
//! docs/writes.md): the immutability trigger now lets a completion set each of them once, from
//! NULL, like the root hash and the step count. Before, only the seed could write them.
//!
//! The violation reason is part of a trace's searched text. PostgreSQL's trigram index is on an
//! expression and follows the row; SQLite's FTS5 table was kept by insert and delete triggers
//! alone (the searched columns never changed), so an update trigger now rewrites a row's text
//! when its reason is set.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::common::{backend, exec};
use crate::m20261127_000007_create_aos_traces::{
    install_update_trigger, sqlite_update_trigger, TraceShape,
};
use crate::m20261205_030000_trace_console_reads::{shape_columns, sqlite_search_text, SET_ONCE};

#[derive(DeriveMigrationName)]
pub struct Migration;

const VIOLATION: [&str; 4] = [
    "violation_step_index",
    "violation_timestamp",
    "violation_policy_id",
    "violation_reason",
];

const SQLITE_SEARCH_UPDATE: &str = concat!(
    "CREATE TRIGGER aos_trace_search_update AFTER UPDATE OF violation_reason ON aos_traces
        WHEN NEW.violation_reason IS NOT OLD.violation_reason BEGIN
        UPDATE aos_trace_search SET body = ",
    sqlite_search_text!("NEW."),
    " WHERE rowid = NEW.rowid; END"
);

/// Installs the UPDATE trigger for a set of set-once columns. On SQLite the drop and the create
/// go in one batch: as two statements the create failed with "already exists" (as in
/// `m20261205_030000_trace_console_reads`'s down).
async fn install(manager: &SchemaManager<'_>, set_once: &[&str]) -> Result<(), DbErr> {
    let columns = shape_columns();
    let shape = TraceShape {
        columns: &columns,
        set_once,
    };
    match backend(manager)? {
        DbBackend::Postgres => install_update_trigger(manager, &shape).await,
        _ => {
            exec(
                manager,
                &format!(
                    "DROP TRIGGER trg_aos_traces_prevent_update;\n{}",
                    sqlite_update_trigger(&shape)
                ),
            )
            .await
        }
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let set_once: Vec<&str> = SET_ONCE.iter().chain(VIOLATION.iter()).copied().collect();
        install(manager, &set_once).await?;
        if backend(manager)? != DbBackend::Postgres {
            exec(manager, SQLITE_SEARCH_UPDATE).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if backend(manager)? != DbBackend::Postgres {
            exec(manager, "DROP TRIGGER aos_trace_search_update").await?;
        }
        install(manager, SET_ONCE).await
    }
}
