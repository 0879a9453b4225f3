//! Trace retention: `logbook traces archive` and the library function behind it. Old traces
//! move to `aos_traces_archive` (through the archive-first triggers), their steps go with them,
//! every read stops seeing them, recent traces stay, and a second run moves nothing.

use chrono::{DateTime, Duration, Utc};
use entity::{aos_trace_steps, aos_traces, aos_traces_archive};
use logbook::auth::Role;
use logbook::traces::archive::{archive_traces, ArchiveOptions, BatchReport};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

use crate::support::{
    error_code, fixed_time, fresh_database_url, insert_runs, make_runs, Backend, TestApp,
};
use crate::traces_reads::{insert_steps, insert_traces, steps, trace};

async fn counts(app: &TestApp) -> (u64, u64, u64) {
    (
        aos_traces::Entity::find()
            .count(app.db())
            .await
            .expect("count"),
        aos_trace_steps::Entity::find()
            .count(app.db())
            .await
            .expect("count"),
        aos_traces_archive::Entity::find()
            .count(app.db())
            .await
            .expect("count"),
    )
}

fn options(now: DateTime<Utc>, tenant: Option<&str>, batch: u64) -> ArchiveOptions {
    ArchiveOptions {
        older_than_days: 90,
        tenant: tenant.map(Into::into),
        batch,
        now,
    }
}

/// The archived copy of a trace, as a row of the archive table.
fn archived_copy(t: &aos_traces::Model, at: DateTime<Utc>) -> aos_traces_archive::Model {
    let v = serde_json::to_value(t).expect("to json");
    let mut v: serde_json::Map<String, Value> = serde_json::from_value(v).expect("map");
    v.insert("moved_at".into(), serde_json::to_value(at).expect("time"));
    v.insert(
        "archived_at".into(),
        serde_json::to_value(at).expect("time"),
    );
    serde_json::from_value(Value::Object(v)).expect("archive model")
}

const READS: &str = r#"
query R($new: String!, $run: String!) {
  traces(first: 100) { totalCount nodes { traceId } }
  llmRun(runId: $run) { trace { traceId } }
  traceMismatches(first: 10) { nodes { traceId trace { traceId } } }
  live: trace(traceId: $new) { traceId }
}"#;

async fn archives_old_traces_and_hides_them_from_every_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let now = fixed_time();
    let old = now - Duration::days(100);
    let recent = now - Duration::days(10);

    // acme: three old traces (one soft-archived already, one behind a run record), one recent;
    // other: two old, one recent; zeta: one old whose trace_id is already in the archive.
    let runs = make_runs("acme", "old", 1, old);
    insert_runs(app.db(), &runs).await;
    let run_trace = runs[0].trace_id.clone().expect("trace id");
    let mut soft = trace("acme", "a-old-3", "run-a3", old + Duration::hours(2));
    soft.archived_at = Some(old + Duration::days(1));
    let dup = trace("zeta", "z-old-dup", "run-z", old);
    let all = vec![
        trace("acme", &run_trace, &runs[0].run_id, old),
        trace("acme", "a-old-2", "run-a2", old + Duration::hours(1)),
        soft,
        trace("acme", "a-new-1", "run-a-new", recent),
        trace("other", "o-old-1", "run-o1", old),
        trace("other", "o-old-2", "run-o2", old + Duration::hours(1)),
        trace("other", "o-new-1", "run-o-new", recent),
        dup.clone(),
    ];
    let ids: Vec<String> = all.iter().map(|t| t.trace_id.clone()).collect();
    insert_traces(app.db(), all).await;
    for id in &ids {
        insert_steps(app.db(), steps(id, 3, old)).await;
    }
    aos_traces_archive::Entity::insert(archived_copy(&dup, old).into_active_model())
        .exec_without_returning(app.db())
        .await
        .expect("pre-archived copy");
    let body = app
        .gql(
            Some(&ingest),
            "mutation($t: String!) { reportMismatch(input: {traceId: $t, reason: \"hash_mismatch\"}) { mismatchId } }",
            json!({ "t": run_trace }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    assert_eq!(counts(&app).await, (8, 24, 1));

    let vars = json!({ "new": "a-new-1", "run": runs[0].run_id });
    let before = app.data(&viewer, READS, vars.clone()).await;
    assert_eq!(before["traces"]["totalCount"], json!(3)); // the soft-archived one is hidden already
    assert_eq!(before["llmRun"]["trace"]["traceId"], json!(run_trace));
    let by_root = app
        .data(
            &viewer,
            "query($r: String!) { traceByRootHash(rootHash: $r) { traceId } }",
            json!({ "r": format!("root-{run_trace}") }),
        )
        .await;
    assert_eq!(by_root["traceByRootHash"]["traceId"], json!(run_trace));

    // One tenant, two per batch: acme's three old traces move in two batches.
    let mut seen: Vec<(u64, BatchReport)> = Vec::new();
    let report = archive_traces(app.db(), &options(now, Some("acme"), 2), |n, b| {
        seen.push((n, b))
    })
    .await
    .expect("archive acme");
    assert_eq!(report.traces_archived, 3);
    assert_eq!(report.steps_removed, 9);
    assert_eq!(report.batches, 2);
    assert_eq!(report.conflicts, 0);
    assert_eq!(report.cutoff, now - Duration::days(90));
    assert_eq!(
        seen,
        vec![
            (
                1,
                BatchReport {
                    traces: 2,
                    steps: 6
                }
            ),
            (
                2,
                BatchReport {
                    traces: 1,
                    steps: 3
                }
            )
        ]
    );
    assert_eq!(counts(&app).await, (5, 15, 4));

    // Gone from every read; the recent trace stays.
    let after = app.data(&viewer, READS, vars).await;
    assert_eq!(after["traces"]["totalCount"], json!(1));
    assert_eq!(after["traces"]["nodes"], json!([{ "traceId": "a-new-1" }]));
    assert_eq!(after["llmRun"]["trace"], Value::Null);
    assert_eq!(after["live"]["traceId"], json!("a-new-1"));
    assert_eq!(
        after["traceMismatches"]["nodes"],
        json!([{ "traceId": run_trace, "trace": null }])
    );
    for (doc, vars) in [
        (
            "query($t: String!) { trace(traceId: $t) { traceId } }",
            json!({ "t": run_trace }),
        ),
        (
            "query($t: String!) { traceByRunId(runId: $t) { traceId } }",
            json!({ "t": runs[0].run_id }),
        ),
        (
            "query($t: String!) { traceByRootHash(rootHash: $t) { traceId } }",
            json!({ "t": format!("root-{run_trace}") }),
        ),
        (
            "query($t: String!) { compareTraces(left: $t, right: \"a-new-1\") { match } }",
            json!({ "t": run_trace }),
        ),
        (
            "query($t: String!) { trace(traceId: $t) { traceId } }",
            json!({ "t": "a-old-2" }),
        ),
    ] {
        let body = app.gql(Some(&viewer), doc, vars).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{doc}");
    }
    // The archive copy keeps the trace's content and records the move; a soft-archived trace
    // keeps its original archived_at.
    let copy = aos_traces_archive::Entity::find_by_id(("a-old-3".to_owned(), "acme".to_owned()))
        .one(app.db())
        .await
        .expect("read")
        .expect("archived copy");
    assert_eq!(copy.archived_at, Some(old + Duration::days(1)));
    assert_eq!(copy.tenant_id, "acme");
    assert_eq!(copy.root_hash.as_deref(), Some("root-a-old-3"));
    let copy = aos_traces_archive::Entity::find_by_id(("a-old-2".to_owned(), "acme".to_owned()))
        .one(app.db())
        .await
        .expect("read")
        .expect("archived copy");
    assert_eq!(copy.archived_at, Some(copy.moved_at));
    assert_eq!(copy.plan, json!([{"skill": "llm_invoke"}]));

    // Every tenant: other's two old traces move; zeta's stays (its id is archived already).
    let report = archive_traces(app.db(), &options(now, None, 500), |_, _| {})
        .await
        .expect("archive all");
    assert_eq!(
        (report.traces_archived, report.steps_removed, report.batches),
        (2, 6, 1)
    );
    assert_eq!(report.conflicts, 1);
    assert_eq!(counts(&app).await, (3, 9, 6));
    let mut live: Vec<String> = aos_traces::Entity::find()
        .all(app.db())
        .await
        .expect("read")
        .into_iter()
        .map(|t| t.trace_id)
        .collect();
    live.sort();
    assert_eq!(live, vec!["a-new-1", "o-new-1", "z-old-dup"]);
    assert_eq!(
        aos_trace_steps::Entity::find()
            .filter(aos_trace_steps::Column::TraceId.eq("o-old-1"))
            .count(app.db())
            .await
            .expect("count"),
        0
    );

    // Again: nothing to do.
    let report = archive_traces(app.db(), &options(now, None, 500), |_, _| {})
        .await
        .expect("archive again");
    assert_eq!(
        (report.traces_archived, report.steps_removed, report.batches),
        (0, 0, 0)
    );
    assert_eq!(counts(&app).await, (3, 9, 6));

    // Refused options.
    let mut bad = options(now, None, 500);
    bad.older_than_days = 0;
    assert!(archive_traces(app.db(), &bad, |_, _| {}).await.is_err());
    assert!(archive_traces(app.db(), &options(now, None, 0), |_, _| {})
        .await
        .is_err());
}

async fn cli_archives_and_prints_counts(backend: Backend) {
    let url = fresh_database_url(backend).await;
    let app = TestApp::spawn_on(backend, url.clone(), |_| {}).await;
    let now = Utc::now();
    insert_traces(
        app.db(),
        vec![
            trace("acme", "cli-old", "run-old", now - Duration::days(200)),
            trace("acme", "cli-new", "run-new", now - Duration::days(1)),
        ],
    )
    .await;
    insert_steps(app.db(), steps("cli-old", 4, now - Duration::days(200))).await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_logbook"))
            .args(args)
            .env("DATABASE_URL", &url)
            .env_remove("REDIS_URL")
            .output()
            .expect("run logbook")
    };
    let out = run(&["traces", "archive", "--older-than", "90", "--batch", "10"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("batch 1: archived 1 traces, removed 4 steps"),
        "{stdout}"
    );
    assert!(
        stdout.contains("archived 1 traces (4 steps removed)"),
        "{stdout}"
    );
    assert_eq!(counts(&app).await, (1, 0, 1));
    let out = run(&["traces", "archive", "--older-than", "90"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("archived 0 traces"));
    let out = run(&["traces", "archive", "--older-than", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--older-than"));
    app.stop().await;
}

/// Trace ids are unique per tenant, and so is the archive's key: a tenant whose trace id another
/// tenant already archived moves its own trace all the same; only its own archived copy is a
/// conflict. The delete trigger checks the archive on (tenant, trace id) too.
async fn archive_keys_are_per_tenant(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = fixed_time();
    let old = now - Duration::days(100);
    let zeta = trace("zeta", "shared", "run-z", old);
    let mut other = trace("other", "shared", "run-o", old);
    other.id = "id-other-shared".into();
    insert_traces(app.db(), vec![zeta.clone(), other]).await;
    let mut rows = steps("shared", 3, old);
    for row in &mut rows {
        row.tenant_id = "zeta".into();
    }
    let mut other_rows = steps("shared", 2, old);
    for row in &mut other_rows {
        row.id = format!("other-{}", row.id);
        row.tenant_id = "other".into();
    }
    rows.extend(other_rows);
    insert_steps(app.db(), rows).await;
    aos_traces_archive::Entity::insert(archived_copy(&zeta, old).into_active_model())
        .exec_without_returning(app.db())
        .await
        .expect("zeta's archived copy");

    // Another tenant's archived copy does not let zeta's live trace be deleted.
    let refused = app
        .raw("DELETE FROM aos_traces WHERE tenant_id = 'other' AND trace_id = 'shared'")
        .await
        .expect_err("other's trace is not archived");
    assert!(
        refused.to_string().contains("S6_IMMUTABILITY_VIOLATION"),
        "{refused}"
    );

    let report = archive_traces(app.db(), &options(now, None, 500), |_, _| {})
        .await
        .expect("archive");
    assert_eq!(
        (
            report.traces_archived,
            report.steps_removed,
            report.conflicts
        ),
        (1, 2, 1)
    );
    assert_eq!(counts(&app).await, (1, 3, 2));
    let live = aos_traces::Entity::find()
        .one(app.db())
        .await
        .expect("read")
        .expect("zeta's trace stays");
    assert_eq!(
        (live.tenant_id.as_str(), live.trace_id.as_str()),
        ("zeta", "shared")
    );
    let copy = aos_traces_archive::Entity::find_by_id(("shared".to_owned(), "other".to_owned()))
        .one(app.db())
        .await
        .expect("read")
        .expect("other's archived copy");
    assert_eq!(copy.run_id, "run-o");
    app.stop().await;
}

crate::cases!(
    archives_old_traces_and_hides_them_from_every_read,
    cli_archives_and_prints_counts,
    archive_keys_are_per_tenant,
);
