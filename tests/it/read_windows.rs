//! Tenant tiers' read windows (docs/api.md, "Read windows"): an OBSERVE tenant's lists answer
//! the last 7 days only, a GOVERN tenant's the last 365; every windowed connection reports the
//! window and whether it cut the request short; a range that ends before the window is refused;
//! every lookup by id or key of log data (root fields, `node`/`nodes`, the run-keyed reports,
//! inclusion proofs, subscriptions naming one object) answers a row outside the window as
//! NOT_FOUND, while nested links of a readable row are answered; subscription catch-up replays
//! nothing older than the window. (An unknown tier cannot be stored: the column's CHECK refuses
//! it; `read_window`'s unit tests cover reading one as the lowest.)

use chrono::{Duration, Utc};
use entity::{aos_trace_mismatches, log_exports};
use logbook::auth::{Role, TenantId};
use logbook::ids::{encode, NodeKind};
use logbook::scalars::format_utc;
use logbook::tenants::store as tenant_store;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
use serde_json::{json, Value};

use crate::audit_reads::{Entry, Ledger};
use crate::exports_reads::{insert as insert_exports, row as export_row};
use crate::mismatches_reads::mismatch;
use crate::subscriptions::Ws;
use crate::support::{error_code, insert_runs, make_runs, Backend, TestApp};
use crate::system_records::{insert_records, Rec};
use crate::traces_reads::{insert_steps, insert_traces, step, steps, trace};

const LISTS: &str = r#"
query Lists($runs: LlmRunFilter, $traces: TraceFilter) {
  llmRuns(filter: $runs, first: 50) {
    totalCount
    readWindow { tier from clamped }
    nodes { runId }
  }
  traces(filter: $traces, first: 50) {
    totalCount
    readWindow { tier from clamped }
    nodes { traceId }
  }
  activity(first: 50) { readWindow { tier clamped } }
}"#;

/// A tenant of `tier` with runs and traces `days` ago (one each), and a viewer key.
async fn tenant(app: &TestApp, id: &str, tier: &str, days: &[i64]) -> String {
    tenant_store::ensure_tenant(app.db(), id, id, tier)
        .await
        .expect("tenant");
    // At the precision the backends store (a tail's keyset compares the stored time exactly).
    let now = logbook::scalars::now();
    for d in days {
        let at = now - Duration::days(*d);
        let mut runs = make_runs(id, &format!("{id}-d{d}"), 1, at);
        runs[0].trace_id = None;
        insert_runs(app.db(), &runs).await;
        let trace_id = format!("{id}-t{d}");
        insert_traces(
            app.db(),
            vec![trace(id, &trace_id, &format!("{id}-d{d}-run-00000"), at)],
        )
        .await;
        insert_steps(app.db(), steps(&trace_id, 2, at)).await;
    }
    app.key(id, Role::Viewer).await
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = list["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n[field].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

async fn lists_answer_the_tiers_window_and_say_so(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let observe = tenant(&app, "obs", "OBSERVE", &[1, 10]).await;
    let govern = tenant(&app, "gov", "GOVERN", &[1, 100, 300, 400]).await;

    // OBSERVE: the last 7 days only, and the answer says it was cut.
    let seen = app.data(&observe, LISTS, json!({})).await;
    assert_eq!(ids(&seen["llmRuns"], "runId"), ["obs-d1-run-00000"]);
    assert_eq!(seen["llmRuns"]["totalCount"], json!(1));
    assert_eq!(ids(&seen["traces"], "traceId"), ["obs-t1"]);
    assert_eq!(seen["traces"]["totalCount"], json!(1));
    for list in ["llmRuns", "traces"] {
        assert_eq!(seen[list]["readWindow"]["tier"], json!("OBSERVE"));
        assert_eq!(seen[list]["readWindow"]["clamped"], json!(true));
        let from = chrono::DateTime::parse_from_rfc3339(
            seen[list]["readWindow"]["from"].as_str().expect("from"),
        )
        .expect("a time");
        let expected = Utc::now() - Duration::days(7);
        assert!(
            (from.with_timezone(&Utc) - expected).num_seconds().abs() < 60,
            "{from}"
        );
    }
    assert_eq!(
        seen["activity"]["readWindow"],
        json!({ "tier": "OBSERVE", "clamped": true })
    );

    // GOVERN: a year.
    let seen = app.data(&govern, LISTS, json!({})).await;
    assert_eq!(
        ids(&seen["llmRuns"], "runId"),
        [
            "gov-d1-run-00000",
            "gov-d100-run-00000",
            "gov-d300-run-00000"
        ]
    );
    assert_eq!(
        ids(&seen["traces"], "traceId"),
        ["gov-t1", "gov-t100", "gov-t300"]
    );
    assert_eq!(seen["traces"]["readWindow"]["tier"], json!("GOVERN"));

    // A lower bound inside the window: nothing cut, nothing reported.
    let inside = format_utc(Utc::now() - Duration::days(2));
    let seen = app
        .data(
            &observe,
            LISTS,
            json!({ "runs": { "createdAfter": inside }, "traces": { "createdAfter": inside } }),
        )
        .await;
    assert_eq!(seen["llmRuns"]["readWindow"]["clamped"], json!(false));
    assert_eq!(seen["traces"]["readWindow"]["clamped"], json!(false));
    assert_eq!(ids(&seen["traces"], "traceId"), ["obs-t1"]);

    // A lower bound before it: clamped, and said so.
    let before = format_utc(Utc::now() - Duration::days(20));
    let seen = app
        .data(
            &observe,
            LISTS,
            json!({ "runs": { "createdAfter": before }, "traces": { "createdAfter": before } }),
        )
        .await;
    assert_eq!(seen["llmRuns"]["readWindow"]["clamped"], json!(true));
    assert_eq!(seen["llmRuns"]["totalCount"], json!(1));

    // The views over the same filter read the same rows.
    let views = app
        .data(
            &observe,
            "{ llmRuns { facets(fields: [PROVIDER]) { values { count } otherCount } \
               aggregate { count } } }",
            json!({}),
        )
        .await;
    let runs = &views["llmRuns"];
    assert_eq!(runs["aggregate"]["count"], json!("1"), "{views:#}");
    let faceted: i64 = runs["facets"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| {
            v["count"]
                .as_str()
                .and_then(|c| c.parse::<i64>().ok())
                .expect("count")
        })
        .sum();
    assert_eq!(faceted, 1, "{views:#}");
    let facets = app
        .data(
            &observe,
            "{ traceSteps(first: 10) { totalCount readWindow { clamped } } }",
            json!({}),
        )
        .await;
    assert_eq!(facets["traceSteps"]["totalCount"], json!(2));
    assert_eq!(facets["traceSteps"]["readWindow"]["clamped"], json!(true));
    app.stop().await;
}

async fn a_range_before_the_window_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let observe = tenant(&app, "obs", "OBSERVE", &[1, 10]).await;
    let govern = tenant(&app, "gov", "GOVERN", &[1, 10]).await;
    let ended = format_utc(Utc::now() - Duration::days(9));
    for (doc, vars) in [
        (
            "query($f: LlmRunFilter) { llmRuns(filter: $f) { totalCount } }",
            json!({ "f": { "createdBefore": ended } }),
        ),
        (
            "query($f: TraceFilter) { traces(filter: $f) { totalCount } }",
            json!({ "f": { "createdBefore": ended } }),
        ),
        (
            "query($at: DateTime) { llmRuns(asOf: $at) { totalCount } }",
            json!({ "at": ended }),
        ),
    ] {
        let body = app.gql(Some(&observe), doc, vars.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{doc}: {body:#}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("read window")),
            "{body:#}"
        );
        // Inside GOVERN's window, the same range is an ordinary question.
        let body = app.gql(Some(&govern), doc, vars).await;
        assert!(body.get("errors").is_none(), "{doc}: {body:#}");
    }
    app.stop().await;
}

async fn lookups_by_id_outside_the_window_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let observe = tenant(&app, "obs", "OBSERVE", &[1, 10]).await;
    let doc = "query($r: String!, $t: String!) { llmRun(runId: $r) { runId } trace(traceId: $t) { traceId } }";
    let inside = app
        .data(
            &observe,
            doc,
            json!({ "r": "obs-d1-run-00000", "t": "obs-t1" }),
        )
        .await;
    assert_eq!(inside["llmRun"]["runId"], json!("obs-d1-run-00000"));
    assert_eq!(inside["trace"]["traceId"], json!("obs-t1"));
    for (doc, vars) in [
        (
            "query($r: String!) { llmRun(runId: $r) { runId } }",
            json!({ "r": "obs-d10-run-00000" }),
        ),
        (
            "query($t: String!) { trace(traceId: $t) { traceId } }",
            json!({ "t": "obs-t10" }),
        ),
    ] {
        let body = app.gql(Some(&observe), doc, vars).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{doc}: {body:#}");
    }
    app.stop().await;
}

/// An OBSERVE tenant (7 days) with rows of every windowed kind inside its window (1 and 2 days
/// old) and outside it (10 days old); its viewer key. Runs, traces and steps as [`tenant`]
/// makes them; audit entries `obs-e0001` (outside) and `obs-e0002` (inside) about LIMIT
/// `limit-1`; exports `exp-old` (requested outside, completed inside: an export's time is its
/// request) and `exp-new`; system records `sys-old`, the system-wide `sys-wide-old` and
/// `sys-new`; mismatches `m-old` (outside) and `m-new` (inside, reported on the old trace
/// `obs-t10`); steps under idempotency key `k-old` (outside only) and `k-both` (outside on
/// `obs-t10`, then inside on `obs-t1`).
async fn every_kind(app: &TestApp) -> String {
    let key = tenant(app, "obs", "OBSERVE", &[1, 2, 10]).await;
    let now = logbook::scalars::now();
    let (new, old) = (now - Duration::days(1), now - Duration::days(10));
    let mut ledger = Ledger::new("obs");
    ledger.push(Entry::new("LimitBreached", "LIMIT", "limit-1", old));
    ledger.push(Entry::new("LimitBreached", "LIMIT", "limit-1", new));
    ledger.insert(app).await;
    insert_exports(
        app,
        vec![
            export_row("obs", "exp-old", 0, "llm_runs", "csv", None, "pending", old),
            export_row(
                "obs",
                "exp-old",
                1,
                "llm_runs",
                "csv",
                None,
                "completed",
                new,
            ),
            export_row("obs", "exp-new", 0, "llm_runs", "csv", None, "pending", new),
        ],
    )
    .await;
    let record = |id: &str, tenant: Option<&'static str>, at| Rec {
        id: id.to_owned(),
        tenant,
        component: "worker",
        event_type: "ERROR",
        severity: "WARN",
        correlation_id: None,
        created_at: at,
    };
    insert_records(
        app,
        &[
            record("sys-old", Some("obs"), old),
            record("sys-wide-old", None, old),
            record("sys-new", Some("obs"), new),
        ],
    )
    .await;
    aos_trace_mismatches::Entity::insert_many(
        [
            mismatch("obs", "m-old", "obs-t10", old, false),
            mismatch("obs", "m-new", "obs-t10", new, false),
        ]
        .into_iter()
        .map(IntoActiveModel::into_active_model),
    )
    .exec_without_returning(app.db())
    .await
    .expect("insert mismatches");
    let keyed = |trace_id: &str, index: i32, key: &str, at| {
        let mut s = step(trace_id, index, "llm_invoke", "success", at);
        s.idempotency_key = Some(key.to_owned());
        s
    };
    insert_steps(
        app.db(),
        vec![
            keyed("obs-t10", 10, "k-old", old),
            keyed("obs-t10", 11, "k-both", old),
            keyed("obs-t1", 10, "k-both", new),
        ],
    )
    .await;
    key
}

fn gid(kind: NodeKind, record_id: &str) -> String {
    encode(kind, record_id).0
}

/// Each lookup by id or key, with a row inside the window (answered) and one outside
/// (`NOT_FOUND`, as for another tenant's row; every one of these lookups is `NOT_FOUND` for an
/// absent row).
async fn every_lookup_outside_the_window_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = every_kind(&app).await;
    let id = "query($id: String!)";
    let node = "query($id: ID!) { node(id: $id) { id } }";
    // (document, answer path, an id inside, the ids outside)
    let lookups: Vec<(String, &str, String, Vec<String>)> = vec![
        (
            format!("{id} {{ traceByRunId(runId: $id) {{ traceId }} }}"),
            "traceByRunId",
            "obs-d1-run-00000".into(),
            vec!["obs-d10-run-00000".into()],
        ),
        (
            format!("{id} {{ traceByRootHash(rootHash: $id) {{ traceId }} }}"),
            "traceByRootHash",
            "root-obs-t1".into(),
            vec!["root-obs-t10".into()],
        ),
        (
            format!("{id} {{ traceStepByIdempotencyKey(idempotencyKey: $id) {{ traceId }} }}"),
            "traceStepByIdempotencyKey",
            "k-both".into(),
            vec!["k-old".into()],
        ),
        (
            "query($id: ID!) { auditEntry(id: $id) { recordId } }".into(),
            "auditEntry",
            "obs-e0002".into(),
            vec!["obs-e0001".into(), gid(NodeKind::AuditEntry, "obs-e0001")],
        ),
        (
            "query($id: ID!) { logExport(id: $id) { exportId } }".into(),
            "logExport",
            "exp-new".into(),
            vec!["exp-old".into(), gid(NodeKind::LogExport, "exp-old")],
        ),
        (
            "query($id: ID!) { systemRecord(id: $id) { recordId } }".into(),
            "systemRecord",
            "sys-new".into(),
            vec!["sys-old".into(), "sys-wide-old".into()],
        ),
        (
            format!("{id} {{ replayWindow(runId: $id) {{ runId }} }}"),
            "replayWindow",
            "obs-d1-run-00000".into(),
            vec!["obs-d10-run-00000".into()],
        ),
        (
            format!("{id} {{ integrity(runId: $id) {{ runId }} }}"),
            "integrity",
            "obs-d1-run-00000".into(),
            vec!["obs-d10-run-00000".into()],
        ),
        (
            "query($id: ID!) { ledger { inclusionProof(entryId: $id) { entry { recordId } } } }"
                .into(),
            "ledger",
            "obs-e0002".into(),
            vec!["obs-e0001".into()],
        ),
        (
            node.into(),
            "node",
            gid(NodeKind::Trace, "id-obs-t1"),
            vec![gid(NodeKind::Trace, "id-obs-t10")],
        ),
        (
            node.into(),
            "node",
            gid(NodeKind::AuditEntry, "obs-e0002"),
            vec![gid(NodeKind::AuditEntry, "obs-e0001")],
        ),
        (
            node.into(),
            "node",
            gid(NodeKind::LlmRun, "obs-d1-rec-00000"),
            vec![gid(NodeKind::LlmRun, "obs-d10-rec-00000")],
        ),
        (
            node.into(),
            "node",
            gid(NodeKind::LogExport, "exp-new"),
            vec![gid(NodeKind::LogExport, "exp-old")],
        ),
        (
            node.into(),
            "node",
            gid(NodeKind::SystemRecord, "sys-new"),
            vec![
                gid(NodeKind::SystemRecord, "sys-old"),
                gid(NodeKind::SystemRecord, "sys-wide-old"),
            ],
        ),
        (
            node.into(),
            "node",
            gid(NodeKind::TraceMismatch, "m-new"),
            vec![gid(NodeKind::TraceMismatch, "m-old")],
        ),
    ];
    for (doc, path, inside, outside) in &lookups {
        let seen = app.data(&key, doc, json!({ "id": inside })).await;
        assert!(seen[*path].is_object(), "{doc} {inside}: {seen:#}");
        for id in outside {
            let body = app.gql(Some(&key), doc, json!({ "id": id })).await;
            assert_eq!(error_code(&body), "NOT_FOUND", "{doc} {id}: {body:#}");
            // (`ledger` is non-null: the error nulls the whole answer.)
            assert!(body["data"][*path].is_null(), "{body:#}");
        }
    }
    // The key's first step inside the window answers, not the older one under the same key.
    let step = app
        .data(
            &key,
            "{ traceStepByIdempotencyKey(idempotencyKey: \"k-both\") { traceId stepIndex } }",
            json!({}),
        )
        .await;
    assert_eq!(
        step["traceStepByIdempotencyKey"],
        json!({ "traceId": "obs-t1", "stepIndex": 10 })
    );

    // compareTraces: either side outside is as if absent.
    let compare =
        "query($l: String!, $r: String!) { compareTraces(left: $l, right: $r) { match } }";
    let seen = app
        .data(&key, compare, json!({ "l": "obs-t1", "r": "obs-t2" }))
        .await;
    assert!(seen["compareTraces"]["match"].is_boolean(), "{seen:#}");
    for (l, r) in [
        ("obs-t1", "obs-t10"),
        ("obs-t10", "obs-t2"),
        ("obs-t10", "obs-t10"),
    ] {
        let body = app
            .gql(Some(&key), compare, json!({ "l": l, "r": r }))
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{l} {r}: {body:#}");
    }

    // nodes(ids:): null with an error for the one outside, in order.
    let seen = app
        .gql(
            Some(&key),
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            json!({ "ids": [gid(NodeKind::Trace, "id-obs-t1"), gid(NodeKind::Trace, "id-obs-t10")] }),
        )
        .await;
    assert_eq!(
        seen["data"]["nodes"],
        json!([{ "id": gid(NodeKind::Trace, "id-obs-t1") }, null]),
        "{seen:#}"
    );

    // auditEntityHistory is the entity's entries inside the window, and says it was cut.
    let history = app
        .data(
            &key,
            "{ auditEntityHistory(entityType: LIMIT, entityId: \"limit-1\") { \
               totalCount readWindow { tier clamped } nodes { recordId } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        history["auditEntityHistory"],
        json!({
            "totalCount": 1,
            "readWindow": { "tier": "OBSERVE", "clamped": true },
            "nodes": [{ "recordId": "obs-e0002" }],
        }),
        "{history:#}"
    );

    // Nested links of a readable row are answered, whatever their age: the mismatch inside the
    // window names the trace outside it.
    let nested = app
        .data(
            &key,
            "query($id: ID!) { node(id: $id) { ... on TraceMismatch { trace { traceId } } } }",
            json!({ "id": gid(NodeKind::TraceMismatch, "m-new") }),
        )
        .await;
    assert_eq!(nested["node"]["trace"]["traceId"], json!("obs-t10"));

    // A GOVERN tenant's same-aged rows are all answered: the window, not the age, decides.
    let govern = tenant(&app, "gov", "GOVERN", &[10]).await;
    let seen = app
        .data(
            &govern,
            "{ traceByRunId(runId: \"gov-d10-run-00000\") { traceId } \
               traceByRootHash(rootHash: \"root-gov-t10\") { traceId } }",
            json!({}),
        )
        .await;
    assert_eq!(seen["traceByRunId"]["traceId"], json!("gov-t10"));
    assert_eq!(seen["traceByRootHash"]["traceId"], json!("gov-t10"));
    app.stop().await;
}

/// Subscriptions read no further back than the lists: catching up after a cursor older than the
/// window replays only the rows inside it, and a subscription naming one object outside the
/// window (`traceStepAdded`, `exportProgress`) is NOT_FOUND.
async fn subscriptions_replay_nothing_outside_the_window(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = tenant(&app, "obs", "OBSERVE", &[1, 10, 20]).await;
    let old = logbook::scalars::now() - Duration::days(10);
    insert_exports(
        &app,
        vec![export_row(
            "obs", "exp-old", 0, "llm_runs", "csv", None, "pending", old,
        )],
    )
    .await;
    // A cursor the window would not hand out any more (a client may have kept one): the
    // unwindowed list's cursor of the 20-day-old run.
    let page = logbook::pagination::page::<logbook::runs::store::RunList>(
        app.db(),
        &app.state.cursors,
        &TenantId::trusted("obs"),
        &logbook::runs::RunFilter::default(),
        &logbook::pagination::PageRequest::new(Some(10), None, None, None, None),
    )
    .await
    .expect("page");
    let (cursor, _) = page
        .edges
        .iter()
        .find(|(_, run)| run.id == "obs-d20-rec-00000")
        .expect("the oldest run")
        .clone();

    let mut ws = Ws::with_key(&app, &key).await;
    ws.subscribe("r", crate::subscriptions::RUNS, json!({ "after": cursor }))
        .await;
    let replayed = ws.take("r", 1).await;
    assert_eq!(
        replayed[0]["llmRunAdded"]["node"]["recordId"],
        json!("obs-d1-rec-00000"),
        "the 10-day-old run is not replayed"
    );
    ws.quiet().await;

    ws.subscribe(
        "s",
        "subscription($t: String!) { traceStepAdded(traceId: $t) { cursor } }",
        json!({ "t": "obs-t10" }),
    )
    .await;
    assert_eq!(ws.error_code("s").await, "NOT_FOUND");
    ws.subscribe(
        "e",
        "subscription($id: ID!) { exportProgress(id: $id) { exportId } }",
        json!({ "id": "exp-old" }),
    )
    .await;
    assert_eq!(ws.error_code("e").await, "NOT_FOUND");
    app.stop().await;
}

/// An export of a list reads no further back than the list: an OBSERVE tenant's export of its
/// runs holds only the last 7 days, and a range before the window is refused at `createExport`.
async fn exports_answer_the_window_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    tenant(&app, "obs", "OBSERVE", &[1, 2, 10, 40]).await;
    let operator = app.key("obs", Role::Operator).await;
    let id = crate::exports_writes::create(
        &app,
        &operator,
        json!({ "scope": "LLM_RUNS", "format": "NDJSON" }),
    )
    .await;
    let done = crate::exports_writes::finished(&app, &operator, &id).await;
    assert_eq!(done["status"], json!("COMPLETED"), "{done:#}");
    assert_eq!(
        done["rowCount"],
        json!("2"),
        "only the runs of the last 7 days"
    );
    let body = crate::exports_writes::download(&app, &operator, &id).await;
    let text = String::from_utf8(body).expect("NDJSON");
    assert!(
        text.contains("obs-d1-") && text.contains("obs-d2-"),
        "{text}"
    );
    assert!(
        !text.contains("obs-d10-") && !text.contains("obs-d40-"),
        "{text}"
    );

    // Once the export's request is older than the window, it and its files are as absent as
    // another tenant's: `logExport` is NOT_FOUND, the file routes 404.
    // (Export rows are immutable: the trigger is set aside for the test's own backdating.)
    let requested = logbook::scalars::now() - Duration::days(8);
    match backend {
        Backend::Postgres => app
            .raw("ALTER TABLE log_exports DISABLE TRIGGER ALL")
            .await
            .expect("disable"),
        Backend::Sqlite => app
            .raw("DROP TRIGGER IF EXISTS trg_log_exports_immutable_update")
            .await
            .expect("drop trigger"),
    };
    log_exports::Entity::update_many()
        .col_expr(log_exports::Column::CreatedAt, Expr::value(requested))
        .filter(log_exports::Column::ExportId.eq(id.as_str()))
        .exec(app.db())
        .await
        .expect("backdate the export");
    if backend == Backend::Postgres {
        app.raw("ALTER TABLE log_exports ENABLE TRIGGER ALL")
            .await
            .expect("enable");
    }
    let body = app
        .gql(
            Some(&operator),
            "query($id: ID!) { logExport(id: $id) { exportId } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
    for file in ["download", "manifest"] {
        let r = app
            .http
            .get(format!("{}/exports/{id}/{file}", app.base))
            .bearer_auth(&operator)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 404, "{file}");
    }

    let before = format_utc(Utc::now() - Duration::days(20));
    let refused = app
        .gql(
            Some(&operator),
            "mutation($i: CreateExportInput!) { createExport(input: $i) { exportId } }",
            json!({ "i": { "scope": "LLM_RUNS", "format": "NDJSON",
                           "filter": { "llmRuns": { "createdBefore": before } } } }),
        )
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused:#}");
    assert_eq!(
        refused["errors"][0]["extensions"]["field"],
        json!("input.filter.createdBefore")
    );
    app.stop().await;
}

crate::cases!(
    exports_answer_the_window_too,
    lists_answer_the_tiers_window_and_say_so,
    a_range_before_the_window_is_refused,
    lookups_by_id_outside_the_window_are_not_found,
    every_lookup_outside_the_window_is_not_found,
    subscriptions_replay_nothing_outside_the_window,
);
