//! Immutable tables refuse UPDATE and DELETE in the database itself, and the refusal reaches
//! clients as `IMMUTABLE_RECORD`.

use logbook::error::AppError;

use crate::support::{fixed_time, insert_runs, make_runs, Backend, TestApp};

async fn assert_immutable(app: &TestApp, sql: &str) {
    let err = app.raw(sql).await.expect_err(sql);
    let mapped = AppError::from(err);
    assert_eq!(mapped.code(), "IMMUTABLE_RECORD", "{sql}: {mapped:?}");
}

async fn run_records_refuse_update_and_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let _ = app.key("acme", logbook::auth::Role::Viewer).await;
    insert_runs(app.db(), &make_runs("acme", "r", 2, fixed_time())).await;
    assert_immutable(
        &app,
        "UPDATE llm_run_records SET cost_cents = 0 WHERE id = 'r-rec-00000'",
    )
    .await;
    assert_immutable(&app, "DELETE FROM llm_run_records WHERE id = 'r-rec-00000'").await;
    let remaining = app.raw("SELECT 1 FROM llm_run_records").await;
    assert!(remaining.is_ok());
    app.stop().await;
}

async fn system_and_audit_rows_refuse_update_and_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let _ = app.key("acme", logbook::auth::Role::Viewer).await;
    let t = "'2026-11-01T12:00:00Z'";
    app.raw(&format!(
        "INSERT INTO system_records (id, tenant_id, component, event_type, severity, summary, created_at) \
         VALUES ('s1', NULL, 'worker', 'STARTUP', 'INFO', 'worker started', {t})"
    ))
    .await
    .expect("insert system record");
    assert_immutable(
        &app,
        "UPDATE system_records SET summary = 'x' WHERE id = 's1'",
    )
    .await;
    assert_immutable(&app, "DELETE FROM system_records WHERE id = 's1'").await;

    app.raw(&format!(
        "INSERT INTO audit_ledger (id, tenant_id, seq, prev_hash, entry_hash, hash_version, event_type, entity_type, entity_id, actor_type, created_at) \
         VALUES ('a1', 'acme', 1, '{zero}', '{one}', 1, 'LimitCreated', 'LIMIT', 'limit-1', 'SYSTEM', {t})",
        zero = "0".repeat(64),
        one = "1".repeat(64)
    ))
    .await
    .expect("insert audit row");
    assert_immutable(
        &app,
        "UPDATE audit_ledger SET actor_id = 'mallory' WHERE id = 'a1'",
    )
    .await;
    assert_immutable(&app, "DELETE FROM audit_ledger WHERE id = 'a1'").await;
    app.stop().await;
}

crate::cases!(
    run_records_refuse_update_and_delete,
    system_and_audit_rows_refuse_update_and_delete
);
