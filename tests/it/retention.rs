//! The retention job (`logbook::retention::run`, `logbook retention run`): old traces move to the
//! archive with their steps and leave every list, traces archived long enough leave the archive
//! with their steps, expired idempotency keys, replay outputs, export artefacts and the OTLP span
//! ids of traces no longer live are purged while fresh ones stay, each run is recorded, a second
//! run finds nothing, and on PostgreSQL a run skips while another process holds the lock.

use chrono::{Duration, Utc};
use logbook::auth::Role;
use logbook::config::RetentionSettings;
use logbook::retention::{run, RetentionCounts, RetentionOutcome};
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use serde_json::{json, Value};

use crate::exports_writes::{create, export_dir, fast, finished};
use crate::support::{insert_runs, make_runs, Backend, TestApp};
use crate::traces_reads::{insert_steps, insert_traces, steps, trace};

/// `SELECT COUNT(*) FROM <sql>`.
pub(crate) async fn count(app: &TestApp, sql: &str) -> i64 {
    let row = app
        .db()
        .query_one_raw(Statement::from_string(
            app.db().get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {sql}"),
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("n")
}

fn settings() -> RetentionSettings {
    RetentionSettings {
        batch: 2, // several transactions per kind
        ..RetentionSettings::default()
    }
}

async fn ran(app: &TestApp, dir: &std::path::Path) -> RetentionCounts {
    match run(app.db(), &settings(), dir, Utc::now())
        .await
        .expect("retention run")
    {
        RetentionOutcome::Ran { counts, .. } => counts,
        RetentionOutcome::Skipped => panic!("nothing holds the lock: the run must not skip"),
    }
}

const TRACES: &str = "query { traces(first: 50) { totalCount nodes { traceId } } }";

async fn archives_purges_records_and_runs_again_as_a_no_op(backend: Backend) {
    let dir = export_dir();
    let app = TestApp::spawn_with(backend, |c| fast(c, &dir)).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let operator = app.key("acme", Role::Operator).await;
    let now = Utc::now();

    // Traces: three past the archive age (one past the delete age as well), one recent.
    insert_traces(
        app.db(),
        vec![
            trace("acme", "t-old-1", "run-1", now - Duration::days(100)),
            trace("acme", "t-old-2", "run-2", now - Duration::days(120)),
            trace("acme", "t-ancient", "run-3", now - Duration::days(400)),
            trace("acme", "t-recent", "run-4", now - Duration::days(10)),
        ],
    )
    .await;
    for (id, at) in [
        ("t-old-1", now - Duration::days(100)),
        ("t-old-2", now - Duration::days(120)),
        ("t-ancient", now - Duration::days(400)),
        ("t-recent", now - Duration::days(10)),
    ] {
        insert_steps(app.db(), steps(id, 3, at)).await;
    }
    // The ancient one is past even GOVERN's read window already.
    let before = app.data(&viewer, TRACES, json!({})).await;
    assert_eq!(before["traces"]["totalCount"], json!(3));

    // Idempotency keys and replay outputs: one expired, one fresh each.
    let now_ms = now.timestamp_millis();
    for (key, expires) in [
        ("k-expired", now_ms - 1_000),
        ("k-fresh", now_ms + 3_600_000),
    ] {
        app.raw(&format!(
            "INSERT INTO idempotency_keys (tenant_id, idempotency_key, operation, request_hash, \
             status, response, created_at_ms, expires_at_ms) VALUES ('acme', '{key}', 'op', \
             'h', 'completed', NULL, {now_ms}, {expires})"
        ))
        .await
        .expect("idempotency key");
    }
    for (key, expires) in [
        ("r-expired", now_ms - 1_000),
        ("r-fresh", now_ms + 3_600_000),
    ] {
        app.raw(&format!(
            "INSERT INTO replay_outputs (tenant_id, replay_key, step_index, output_hash, output, \
             stored_at_ms, expires_at_ms) VALUES ('acme', '{key}', 0, 'h', '{{}}', {now_ms}, \
             {expires})"
        ))
        .await
        .expect("replay output");
    }

    // OTLP root spans: two of a trace about to be archived (a retried root with another id),
    // one of a trace already gone (its trace deleted some other way), one of the recent trace,
    // which stays.
    for (trace_id, span_id) in [
        ("t-old-1", "s1"),
        ("t-old-1", "s2"),
        ("t-gone", "s3"),
        ("t-recent", "s4"),
    ] {
        app.raw(&format!(
            "INSERT INTO otlp_root_spans (tenant_id, trace_id, span_id, failed, open, \
             end_unix_nano, received_at_ms) VALUES ('acme', '{trace_id}', '{span_id}', false, \
             false, 0, {now_ms})"
        ))
        .await
        .expect("otlp root span");
    }

    // Exports: two completed; one made to have finished 400 days ago.
    insert_runs(app.db(), &make_runs("acme", "a", 5, now)).await;
    let input = json!({ "scope": "LLM_RUNS", "format": "NDJSON" });
    let old_export = create(&app, &operator, input.clone()).await;
    let old = finished(&app, &operator, &old_export).await;
    let new_export = create(&app, &operator, input).await;
    let new = finished(&app, &operator, &new_export).await;
    assert_eq!(
        (old["status"].as_str(), new["status"].as_str()),
        (Some("COMPLETED"), Some("COMPLETED"))
    );
    let long_ago = (now - Duration::days(400)).timestamp_millis();
    app.raw(&format!(
        "UPDATE export_jobs SET finished_ms = {long_ago} WHERE export_id = '{old_export}'"
    ))
    .await
    .expect("age the export");
    let files_of = |id: &str| -> Vec<std::path::PathBuf> {
        let artefact = dir.join(format!("logbook-export-{id}.ndjson"));
        let mut manifest = artefact.clone().into_os_string();
        manifest.push(".manifest.json");
        vec![artefact, manifest.into()]
    };
    for file in files_of(&old_export).iter().chain(&files_of(&new_export)) {
        assert!(file.exists(), "{} written", file.display());
    }
    let download = |status: Value| {
        let path = status["downloadPath"]
            .as_str()
            .expect("downloadPath")
            .to_owned();
        let app = &app;
        let operator = operator.clone();
        async move {
            app.http
                .get(format!("{}{path}", app.base))
                .bearer_auth(operator)
                .send()
                .await
                .expect("download")
                .status()
                .as_u16()
        }
    };
    assert_eq!(download(old.clone()).await, 200);

    let counts = ran(&app, &dir).await;
    assert_eq!(
        counts,
        RetentionCounts {
            traces_archived: 3,
            steps_archived: 9,
            archived_traces_deleted: 1,
            archived_steps_deleted: 3,
            idempotency_keys_purged: 1,
            replay_outputs_purged: 1,
            export_artefacts_expired: 1,
            otlp_spans_purged: 3,
        }
    );

    // Traces: the recent one alone stays live; the two old ones are in the archive with their
    // steps; the ancient one is gone from both.
    let after = app.data(&viewer, TRACES, json!({})).await;
    assert_eq!(after["traces"]["totalCount"], json!(1));
    assert_eq!(after["traces"]["nodes"], json!([{ "traceId": "t-recent" }]));
    assert_eq!(count(&app, "aos_traces").await, 1);
    assert_eq!(count(&app, "aos_trace_steps").await, 3);
    assert_eq!(count(&app, "aos_traces_archive").await, 2);
    assert_eq!(
        count(
            &app,
            "aos_trace_steps_archive WHERE trace_id IN ('t-old-1', 't-old-2') AND tenant_id = 'acme'"
        )
        .await,
        6
    );
    assert_eq!(
        count(&app, "aos_traces_archive WHERE trace_id = 't-ancient'").await,
        0
    );
    assert_eq!(
        count(&app, "aos_trace_steps_archive WHERE trace_id = 't-ancient'").await,
        0
    );

    assert_eq!(count(&app, "otlp_root_spans").await, 1);
    assert_eq!(
        count(&app, "otlp_root_spans WHERE trace_id = 't-recent'").await,
        1
    );

    // Keys and outputs: the fresh ones stay.
    assert_eq!(
        count(&app, "idempotency_keys WHERE idempotency_key = 'k-fresh'").await,
        1
    );
    assert_eq!(
        count(&app, "idempotency_keys WHERE idempotency_key = 'k-expired'").await,
        0
    );
    assert_eq!(
        count(&app, "replay_outputs WHERE replay_key = 'r-fresh'").await,
        1
    );
    assert_eq!(
        count(&app, "replay_outputs WHERE replay_key = 'r-expired'").await,
        0
    );

    // Exports: the old one's files are deleted and its download is gone; the new one's stay.
    for file in files_of(&old_export) {
        assert!(!file.exists(), "{} deleted", file.display());
    }
    for file in files_of(&new_export) {
        assert!(file.exists(), "{} kept", file.display());
    }
    assert_eq!(download(old).await, 410);
    assert_eq!(download(new).await, 200);

    // The run is recorded with its counts.
    assert_eq!(
        count(
            &app,
            "retention_runs WHERE traces_archived = 3 AND steps_archived = 9 \
             AND archived_traces_deleted = 1 AND archived_steps_deleted = 3 \
             AND idempotency_keys_purged = 1 AND replay_outputs_purged = 1 \
             AND export_artefacts_expired = 1 AND otlp_spans_purged = 3 AND duration_ms >= 0"
        )
        .await,
        1
    );

    // Again: nothing is left to do, and that run is recorded too.
    assert_eq!(ran(&app, &dir).await, RetentionCounts::default());
    assert_eq!(count(&app, "retention_runs").await, 2);
    assert_eq!(count(&app, "aos_traces_archive").await, 2);
    assert_eq!(count(&app, "aos_trace_steps_archive").await, 6);
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server whose tenant acme has one trace, `t-old`, past the archive age; the export
/// directory; and the time it was made against.
async fn with_one_old_trace(
    backend: Backend,
) -> (TestApp, std::path::PathBuf, chrono::DateTime<Utc>) {
    let dir = export_dir();
    let app = TestApp::spawn(backend).await;
    app.key("acme", Role::Viewer).await;
    let now = Utc::now();
    insert_traces(
        app.db(),
        vec![trace("acme", "t-old", "run-1", now - Duration::days(100))],
    )
    .await;
    (app, dir, now)
}

async fn a_second_run_skips_while_another_process_holds_the_lock(backend: Backend) {
    let (app, dir, now) = with_one_old_trace(backend).await;
    // Another process is running the job: this one skips at once and touches nothing.
    let holder = app.db().begin().await.expect("begin");
    holder
        .execute_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext('logbook_retention'))",
        ))
        .await
        .expect("hold the retention lock");
    let skipped = run(app.db(), &settings(), &dir, now).await.expect("run");
    assert_eq!(skipped, RetentionOutcome::Skipped);
    assert_eq!(count(&app, "aos_traces").await, 1);
    assert_eq!(count(&app, "retention_runs").await, 0);
    holder.rollback().await.expect("release");
    // Released: the next run works.
    assert_eq!(ran(&app, &dir).await.traces_archived, 1);
    assert_eq!(count(&app, "aos_traces").await, 0);
    app.stop().await;
}

async fn bad_settings_are_refused_before_anything_is_touched(backend: Backend) {
    let (app, dir, now) = with_one_old_trace(backend).await;
    let bad = RetentionSettings {
        delete_after_days: 30,
        ..RetentionSettings::default()
    };
    let err = run(app.db(), &bad, &dir, now).await.expect_err("refused");
    assert_eq!(err.code(), "BAD_USER_INPUT");
    assert_eq!(count(&app, "aos_traces").await, 1);
    assert_eq!(count(&app, "retention_runs").await, 0);
    app.stop().await;
}

/// `logbook retention run` prints each count, and a second run finds nothing.
async fn the_cli_prints_the_counts(backend: Backend) {
    let (app, dir, now) = with_one_old_trace(backend).await;
    insert_steps(app.db(), steps("t-old", 2, now - Duration::days(100))).await;
    let dir_arg = dir.to_string_lossy().into_owned();
    let run = || {
        let out = crate::cli::logbook(
            &app.database_url(),
            &["retention", "run", "--export-dir", &dir_arg],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let first = run();
    assert!(first.contains("traces archived: 1\n"), "{first}");
    assert!(first.contains("steps archived: 2\n"), "{first}");
    assert!(first.contains("idempotency keys purged: 0\n"), "{first}");
    assert!(first.contains("export artefacts expired: 0\n"), "{first}");
    let second = run();
    assert!(second.contains("traces archived: 0\n"), "{second}");
    assert_eq!(count(&app, "retention_runs").await, 2);
    // Bad settings stop the command before it connects.
    let out = crate::cli::logbook(
        &app.database_url(),
        &["retention", "run", "--retention-delete-days", "30"],
    );
    assert!(!out.status.success());
    app.stop().await;
}

/// `serve --retention-interval`: the server runs the job on its own.
async fn the_server_runs_it_on_a_timer(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.retention.interval = Some(std::time::Duration::from_millis(200));
    })
    .await;
    app.key("acme", Role::Viewer).await;
    insert_traces(
        app.db(),
        vec![trace(
            "acme",
            "t-old",
            "run-1",
            Utc::now() - Duration::days(100),
        )],
    )
    .await;
    for _ in 0..50 {
        // A run is recorded once all its work is done.
        if count(&app, "retention_runs").await >= 1 {
            assert_eq!(count(&app, "aos_traces_archive").await, 1);
            assert_eq!(count(&app, "aos_traces").await, 0);
            app.stop().await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the timer did not run the job");
}

crate::cases!(
    archives_purges_records_and_runs_again_as_a_no_op,
    [postgres] a_second_run_skips_while_another_process_holds_the_lock,
    bad_settings_are_refused_before_anything_is_touched,
    the_cli_prints_the_counts,
    the_server_runs_it_on_a_timer,
);
