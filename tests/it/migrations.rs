//! Migrations over existing data. `m20261204_000000_scope_trace_ids_by_tenant`: a database
//! migrated up to the migration before it gets traces, steps and an archived trace under the
//! old (global trace id) schema; then the rest is applied and the data, the new keys and the
//! triggers are checked, `down` is refused while a trace id is shared by two tenants, and works
//! (and `up` again) once it is not.

use chrono::Duration;
use entity::{aos_trace_steps, aos_traces, aos_traces_archive};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde_json::Value;

use crate::support::{empty_database_url, fixed_time, Backend};
use crate::traces_reads::{insert_traces, trace};

const SCOPE_TRACE_IDS: &str = "m20261204_000000_scope_trace_ids_by_tenant";

async fn exec(db: &DatabaseConnection, sql: &str) -> Result<u64, DbErr> {
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .map(|r| r.rows_affected())
}

/// A step row without `tenant_id`, for either schema (the new one fills it from `tenant`).
fn step_sql(tenant: Option<&str>, id: &str, trace_id: &str, index: i32) -> String {
    let (col, val) = match tenant {
        Some(t) => (", tenant_id", format!(", '{t}'")),
        None => ("", String::new()),
    };
    format!(
        "INSERT INTO aos_trace_steps (id, trace_id, step_index, skill_id, skill_name, params, \
         status, outcome_category, replay_behavior, timestamp{col}) VALUES ('{id}', \
         '{trace_id}', {index}, 'llm_invoke', 'llm_invoke', '{{\"n\": {index}}}', 'success', \
         'SUCCESS', 'execute', '2026-11-01T00:00:0{index}Z'{val})"
    )
}

/// A trace row without the columns later migrations add (`step_count`, and the generated
/// `duration_ms`), so it fits the schema before and after them.
fn old_schema_row(t: &aos_traces::Model) -> aos_traces::ActiveModel {
    let mut row = t.clone().into_active_model();
    row.step_count = sea_orm::NotSet;
    row.duration_ms = sea_orm::NotSet;
    row
}

/// The archived copy of a trace (the archive has the same columns plus `moved_at`).
fn archived_copy(t: &aos_traces::Model) -> aos_traces_archive::Model {
    let mut v: serde_json::Map<String, Value> =
        serde_json::from_value(serde_json::to_value(t).expect("to json")).expect("map");
    v.insert(
        "moved_at".into(),
        serde_json::to_value(t.created_at).expect("time"),
    );
    serde_json::from_value(Value::Object(v)).expect("archive model")
}

async fn archive(db: &DatabaseConnection, t: &aos_traces::Model) {
    let mut row = archived_copy(t).into_active_model();
    // Columns added after the schema these tests insert under.
    row.step_count = sea_orm::NotSet;
    row.duration_ms = sea_orm::NotSet;
    aos_traces_archive::Entity::insert(row)
        .exec_without_returning(db)
        .await
        .expect("archived copy");
}

/// (tenant, trace, step index, archived) of every step, in a stable order.
async fn step_rows(db: &DatabaseConnection) -> Vec<(String, String, i32, bool)> {
    let archived: Vec<String> = aos_trace_steps::Entity::find()
        .filter(aos_trace_steps::Column::ArchivedAt.is_not_null())
        .select_only()
        .column(aos_trace_steps::Column::Id)
        .into_tuple()
        .all(db)
        .await
        .expect("archived steps");
    aos_trace_steps::Entity::find()
        .select_only()
        .column(aos_trace_steps::Column::TenantId)
        .column(aos_trace_steps::Column::TraceId)
        .column(aos_trace_steps::Column::StepIndex)
        .column(aos_trace_steps::Column::Id)
        .order_by_asc(aos_trace_steps::Column::TenantId)
        .order_by_asc(aos_trace_steps::Column::TraceId)
        .order_by_asc(aos_trace_steps::Column::StepIndex)
        .into_tuple::<(String, String, i32, String)>()
        .all(db)
        .await
        .expect("steps")
        .into_iter()
        .map(|(tenant, trace, index, id)| (tenant, trace, index, archived.contains(&id)))
        .collect()
}

/// The schema of the three trace tables, as text: tables, columns, keys, indexes and trigger
/// code (a down migration must restore exactly what was there).
async fn trace_schema(db: &DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            "SELECT c.table_name || '.' || c.column_name || ' ' || c.data_type || \
               coalesce('(' || c.character_maximum_length || ')', '') || ' ' || c.is_nullable || \
               ' ' || coalesce(c.column_default, '') || ' #' || c.ordinal_position AS item \
             FROM information_schema.columns c \
             WHERE c.table_name IN ('aos_traces', 'aos_trace_steps', 'aos_traces_archive') \
             UNION ALL SELECT conrelid::regclass::text || ' ' || conname || ' ' || \
               pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid::regclass::text IN ('aos_traces', 'aos_trace_steps', 'aos_traces_archive') \
             UNION ALL SELECT indexdef FROM pg_indexes \
             WHERE tablename IN ('aos_traces', 'aos_trace_steps', 'aos_traces_archive') \
             UNION ALL SELECT tgname || ' ' || pg_get_triggerdef(t.oid) || ' ' || \
               pg_get_functiondef(t.tgfoid) FROM pg_trigger t \
             WHERE NOT t.tgisinternal \
               AND t.tgrelid::regclass::text IN ('aos_traces', 'aos_trace_steps') \
             ORDER BY 1"
        }
        _ => {
            "SELECT type || ' ' || name || ' ' || coalesce(sql, '') AS item FROM sqlite_master \
             WHERE tbl_name IN ('aos_traces', 'aos_trace_steps', 'aos_traces_archive') \
             ORDER BY 1"
        }
    };
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .expect("schema")
    .iter()
    .map(|row| row.try_get::<String>("", "item").expect("item"))
    .collect()
}

fn refused(result: Result<u64, DbErr>, what: &str) -> String {
    match result {
        Ok(n) => panic!("{what}: accepted ({n} rows)"),
        Err(e) => e.to_string(),
    }
}

async fn scope_trace_ids_keeps_data_and_rekeys(backend: Backend) {
    let url = empty_database_url(backend).await;
    // One connection, as `db::migrate` migrates SQLite (see there): a pooled connection's
    // stale read snapshot can miss another's schema change.
    let settings = logbook::db::DbSettings {
        max_connections: 1,
        ..logbook::db::DbSettings::new(url)
    };
    let db = logbook::db::connect(&settings).await.expect("connect");
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let before = names
        .iter()
        .position(|n| n == SCOPE_TRACE_IDS)
        .expect("migration registered");
    // This migration and any later one.
    let ours = (names.len() - before) as u32;
    Migrator::up(&db, Some(before as u32))
        .await
        .expect("up to the previous migration");
    let old_schema = trace_schema(&db).await;

    // The old schema: acme's traces t-1 (3 steps, one archived) and t-2 (1 step), and t-old,
    // moved to the archive.
    let t0 = fixed_time() - Duration::days(3);
    let old = trace("acme", "t-old", "run-old", t0);
    insert_traces(
        &db,
        vec![
            trace("acme", "t-1", "run-1", t0),
            trace("acme", "t-2", "run-2", t0 + Duration::hours(1)),
            old.clone(),
        ],
    )
    .await;
    for (id, trace_id, index) in [("s1", "t-1", 0), ("s2", "t-1", 1), ("s3", "t-1", 2)] {
        exec(&db, &step_sql(None, id, trace_id, index))
            .await
            .expect("old step");
    }
    exec(&db, &step_sql(None, "s4", "t-2", 0))
        .await
        .expect("old step");
    exec(
        &db,
        "UPDATE aos_trace_steps SET archived_at = '2026-11-02T00:00:00Z' WHERE id = 's3'",
    )
    .await
    .expect("archive a step");
    archive(&db, &old).await;
    exec(&db, "DELETE FROM aos_traces WHERE trace_id = 't-old'")
        .await
        .expect("delete an archived trace");
    // Under the old schema another tenant cannot have t-1.
    let mut theirs = trace("globex", "t-1", "run-g", t0);
    theirs.id = "id-globex-t-1".into();
    let result = aos_traces::Entity::insert(theirs.clone().into_active_model())
        .exec_without_returning(&db)
        .await;
    assert!(result.is_err(), "global trace ids before the migration");

    Migrator::up(&db, None).await.expect("the rest");
    assert!(old_schema.len() > 20, "{old_schema:#?}");
    assert_ne!(trace_schema(&db).await, old_schema);

    // Every row kept; steps carry their trace's tenant.
    assert_eq!(
        step_rows(&db).await,
        vec![
            ("acme".into(), "t-1".into(), 0, false),
            ("acme".into(), "t-1".into(), 1, false),
            ("acme".into(), "t-1".into(), 2, true),
            ("acme".into(), "t-2".into(), 0, false),
        ]
    );
    let traces: Vec<String> = aos_traces::Entity::find()
        .order_by_asc(aos_traces::Column::TraceId)
        .all(&db)
        .await
        .expect("traces")
        .into_iter()
        .map(|t| format!("{}/{}/{}", t.tenant_id, t.trace_id, t.run_id))
        .collect();
    assert_eq!(traces, vec!["acme/t-1/run-1", "acme/t-2/run-2"]);
    let copy = aos_traces_archive::Entity::find_by_id(("t-old".to_owned(), "acme".to_owned()))
        .one(&db)
        .await
        .expect("read")
        .expect("archived copy kept");
    assert_eq!(copy.run_id, "run-old");

    // Another tenant may now have t-1, with its own step 0; the step key is per tenant.
    insert_traces(&db, vec![theirs.clone()]).await;
    exec(&db, &step_sql(Some("globex"), "g1", "t-1", 0))
        .await
        .expect("globex's step 0 of t-1");
    let e = refused(
        exec(&db, &step_sql(Some("acme"), "dup", "t-1", 0)).await,
        "a second (acme, t-1, 0)",
    );
    assert!(e.to_lowercase().contains("unique"), "{e}");
    let e = refused(
        exec(&db, &step_sql(Some("globex"), "orphan", "t-2", 0)).await,
        "a step of globex's t-2 (no such trace)",
    );
    assert!(e.to_lowercase().contains("foreign key"), "{e}");
    let e = refused(
        aos_traces::Entity::insert(old_schema_row(&aos_traces::Model {
            id: "id-globex-t-1-again".into(),
            ..theirs.clone()
        }))
        .exec_without_returning(&db)
        .await
        .map(|_| 0),
        "a second (globex, t-1)",
    );
    assert!(e.to_lowercase().contains("unique"), "{e}");

    // Triggers: a step's tenant cannot change, not even along with an archival (globex has
    // t-1 and no step 1, so neither key refuses it); archiving a step still works.
    let e = refused(
        exec(
            &db,
            "UPDATE aos_trace_steps SET tenant_id = 'globex', \
             archived_at = '2026-11-03T00:00:00Z' WHERE id = 's2'",
        )
        .await,
        "moving a step to another tenant",
    );
    assert!(e.contains("S6_IMMUTABILITY_VIOLATION"), "{e}");
    exec(
        &db,
        "UPDATE aos_trace_steps SET archived_at = '2026-11-03T00:00:00Z' WHERE id = 's4'",
    )
    .await
    .expect("archiving a step");
    let e = refused(
        exec(&db, "DELETE FROM aos_trace_steps WHERE id = 's1'").await,
        "deleting a step of a live trace",
    );
    assert!(e.contains("S6_IMMUTABILITY_VIOLATION"), "{e}");

    // The archive is keyed per tenant, and a trace's DELETE looks for its own tenant's copy.
    archive(&db, &theirs).await;
    let e = refused(
        exec(
            &db,
            "DELETE FROM aos_traces WHERE tenant_id = 'acme' AND trace_id = 't-1'",
        )
        .await,
        "deleting acme's t-1 while only globex's t-1 is archived",
    );
    assert!(e.contains("S6_IMMUTABILITY_VIOLATION"), "{e}");
    let mut their_old = old.clone();
    their_old.tenant_id = "globex".into();
    archive(&db, &their_old).await;

    // Down is refused while trace ids are shared, and changes nothing.
    let e = Migrator::down(&db, Some(ours))
        .await
        .expect_err("down with shared trace ids");
    assert!(e.to_string().contains("used by 2 tenants"), "{e}");
    assert_eq!(step_rows(&db).await.len(), 5);

    // Once no trace id is shared, down restores global trace ids, and up works again.
    exec(
        &db,
        "DELETE FROM aos_traces WHERE tenant_id = 'globex' AND trace_id = 't-1'",
    )
    .await
    .expect("delete globex's archived t-1 (its step goes with it)");
    exec(
        &db,
        "DELETE FROM aos_traces_archive WHERE tenant_id = 'globex'",
    )
    .await
    .expect("drop globex's archive rows");
    // The refused down above undid the later migrations before it stopped at this one (each
    // migration's down commits on its own), so count what is still applied from here on.
    let still_applied = Migrator::get_applied_migrations(&db)
        .await
        .expect("applied migrations")
        .iter()
        .filter(|m| m.name() >= SCOPE_TRACE_IDS)
        .count() as u32;
    assert!(
        still_applied >= 1 && still_applied <= ours,
        "{still_applied} of {ours}"
    );
    Migrator::down(&db, Some(still_applied))
        .await
        .expect("down");
    assert_eq!(
        trace_schema(&db).await,
        old_schema,
        "down restores the old schema"
    );
    let e = refused(
        exec(&db, &step_sql(Some("acme"), "s9", "t-2", 1)).await,
        "a step with tenant_id after down",
    );
    assert!(e.contains("tenant_id"), "{e}");
    let result = aos_traces::Entity::insert(old_schema_row(&theirs))
        .exec_without_returning(&db)
        .await;
    let e = refused(result.map(|_| 0), "globex's t-1 after down");
    assert!(e.to_lowercase().contains("unique"), "{e}");
    Migrator::up(&db, None).await.expect("up again");
    assert_eq!(step_rows(&db).await.len(), 4);
    aos_traces::Entity::insert(old_schema_row(&theirs))
        .exec_without_returning(&db)
        .await
        .expect("globex's t-1 after up again");
    let _ = db.close().await;
}

crate::cases!(scope_trace_ids_keeps_data_and_rekeys);
