//! `logExports` and `logExport`: one node per export (its request row, its latest state and
//! its history), stable paging while exports progress, status filters at `asOf`, tenancy; the
//! batched reads behind `LlmRun.exports` and `LogExport.job`; the console's filters, facets and
//! histogram, compared with a brute-force reading of generated exports.

use async_graphql::dataloader::Loader;
use chrono::{DateTime, Duration, Utc};
use entity::log_exports;
use logbook::auth::{Role, TenantId};
use sea_orm::{EntityTrait, Set};
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, insert_runs, make_runs, Backend, TestApp};
use crate::system_records::{ids_of, walk, List};

const PAGE: &str = r#"
query Page($filter: LogExportFilter, $first: Int, $after: String, $last: Int, $before: String, $asOf: DateTime) {
  logExports(filter: $filter, first: $first, after: $after, last: $last, before: $before, asOf: $asOf) {
    totalCount
    edges { cursor node {
      id exportId scope format runId requestedBy origin sourceComponent filter requestedAt
      status updatedAt checksum rowCount byteSize manifestSha256 error deliveredAt
      history { recordId status recordedAt }
    } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"#;

const EXPORTS: List = List {
    query: PAGE,
    root: "logExports",
    field: "exportId",
};

/// Appends one state row of an export.
#[expect(clippy::too_many_arguments, reason = "one row's columns")]
pub fn row(
    tenant: &str,
    export_id: &str,
    n: usize,
    scope: &str,
    format: &str,
    run_id: Option<&str>,
    status: &str,
    at: DateTime<Utc>,
) -> log_exports::ActiveModel {
    let done = status == "completed";
    log_exports::ActiveModel {
        id: Set(format!("{export_id}-r{n}")),
        export_id: Set(export_id.to_owned()),
        tenant_id: Set(tenant.to_owned()),
        scope: Set(scope.to_owned()),
        run_id: Set(run_id.map(str::to_owned)),
        requested_by: Set("user-1".to_owned()),
        format: Set(format.to_owned()),
        origin: Set("HUMAN".to_owned()),
        source_component: Set("LogExportService".to_owned()),
        correlation_id: Set(None),
        checksum: Set(done.then(|| format!("sha256:{export_id}"))),
        status: Set(status.to_owned()),
        delivered_at: Set(done.then_some(at)),
        filter: Set(Some(json!({ "provider": "openai" }))),
        row_count: Set(done.then_some(5_000_000_000)),
        byte_size: Set(done.then_some(1234)),
        manifest_sha256: Set(done.then(|| "ab".repeat(32))),
        error: Set((status == "failed").then(|| "disk full".to_owned())),
        created_at: Set(at),
    }
}

pub async fn insert(app: &TestApp, rows: Vec<log_exports::ActiveModel>) {
    log_exports::Entity::insert_many(rows)
        .exec_without_returning(app.db())
        .await
        .expect("insert log export rows");
}

async fn one_node_per_export_with_latest_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let other = app.key("other", Role::Viewer).await;
    let t = fixed_time();
    let s = Duration::seconds;
    insert(
        &app,
        vec![
            // e1 requested first, completed last (its rows interleave with e2's and e3's).
            row("acme", "e1", 0, "llm_runs", "csv", None, "pending", t),
            row(
                "acme",
                "e2",
                0,
                "audit",
                "json",
                Some("run-1"),
                "pending",
                t + s(1),
            ),
            row(
                "acme",
                "e1",
                1,
                "llm_runs",
                "csv",
                None,
                "running",
                t + s(2),
            ),
            row(
                "acme",
                "e3",
                0,
                "system_records",
                "ndjson",
                None,
                "pending",
                t + s(3),
            ),
            row(
                "acme",
                "e2",
                1,
                "audit",
                "json",
                Some("run-1"),
                "failed",
                t + s(4),
            ),
            row(
                "acme",
                "e1",
                2,
                "llm_runs",
                "csv",
                None,
                "completed",
                t + s(10),
            ),
            row("other", "x1", 0, "audit", "zip", None, "pending", t + s(5)),
        ],
    )
    .await;

    let data = app.data(&key, PAGE, json!({})).await;
    let list = &data["logExports"];
    assert_eq!(list["totalCount"], json!(3));
    assert_eq!(
        ids_of(list, "exportId"),
        vec!["e3", "e2", "e1"],
        "newest request first"
    );
    let e1 = &list["edges"][2]["node"];
    assert_eq!(e1["status"], "COMPLETED");
    assert_eq!(e1["scope"], "LLM_RUNS");
    assert_eq!(e1["format"], "CSV");
    assert_eq!(e1["origin"], "HUMAN");
    assert_eq!(e1["filter"], json!({ "provider": "openai" }));
    assert_eq!(e1["requestedAt"], json!(logbook::scalars::format_utc(t)));
    assert_eq!(
        e1["updatedAt"],
        json!(logbook::scalars::format_utc(t + s(10)))
    );
    assert_eq!(e1["deliveredAt"], e1["updatedAt"]);
    assert_eq!(e1["checksum"], "sha256:e1");
    assert_eq!(e1["rowCount"], "5000000000");
    assert_eq!(e1["byteSize"], "1234");
    let states: Vec<&str> = e1["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["status"].as_str().expect("status"))
        .collect();
    assert_eq!(states, vec!["PENDING", "RUNNING", "COMPLETED"]);
    let e2 = &list["edges"][1]["node"];
    assert_eq!(e2["status"], "FAILED");
    assert_eq!(e2["error"], "disk full");
    assert_eq!(e2["runId"], "run-1");
    assert_eq!(e2["checksum"], Value::Null);
    assert_eq!(list["edges"][0]["node"]["status"], "PENDING");

    // Status filters match the current status; with asOf, the status at that instant.
    let status_of = |filter: Value, as_of: Option<DateTime<Utc>>| {
        let vars = json!({ "filter": filter, "asOf": as_of.map(logbook::scalars::format_utc) });
        let app = &app;
        let key = &key;
        async move {
            let data = app.data(key, PAGE, vars).await;
            let list = &data["logExports"];
            let ids = ids_of(list, "exportId");
            assert_eq!(list["totalCount"], json!(ids.len()));
            let statuses: Vec<String> = list["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"]["status"].as_str().expect("status").to_owned())
                .collect();
            (ids, statuses)
        }
    };
    let (ids, _) = status_of(json!({ "status": ["COMPLETED"] }), None).await;
    assert_eq!(ids, vec!["e1"]);
    let (ids, _) = status_of(json!({ "status": ["PENDING", "RUNNING"] }), None).await;
    assert_eq!(ids, vec!["e3"]);
    let (ids, statuses) = status_of(json!({ "status": ["RUNNING"] }), Some(t + s(5))).await;
    assert_eq!(ids, vec!["e1"], "at t+5 e1 was running");
    assert_eq!(statuses, vec!["RUNNING"]);
    let (ids, statuses) = status_of(json!({}), Some(t + s(3))).await;
    assert_eq!(ids, vec!["e3", "e2", "e1"]);
    assert_eq!(statuses, vec!["PENDING", "PENDING", "RUNNING"]);
    let (ids, _) = status_of(
        json!({ "scope": ["AUDIT", "LLM_RUNS"], "format": ["JSON"] }),
        None,
    )
    .await;
    assert_eq!(ids, vec!["e2"]);
    let (ids, _) = status_of(json!({ "runId": "run-1" }), None).await;
    assert_eq!(ids, vec!["e2"]);
    let (ids, _) = status_of(
        json!({ "createdAfter": logbook::scalars::format_utc(t + s(1)), "createdBefore": logbook::scalars::format_utc(t + s(2)) }),
        None,
    )
    .await;
    assert_eq!(ids, vec!["e2"], "the time bounds apply to the request time");

    // Lookups by export id and by global id; another tenant's export is NOT_FOUND.
    let lookup = "query($id: ID!) { logExport(id: $id) { id exportId status history { status } } }";
    let data = app.data(&key, lookup, json!({ "id": "e1" })).await;
    assert_eq!(data["logExport"]["status"], "COMPLETED");
    let global = data["logExport"]["id"].clone();
    let data = app.data(&key, lookup, json!({ "id": global })).await;
    assert_eq!(data["logExport"]["exportId"], "e1");
    let data = app
        .data(
            &key,
            "query($id: ID!) { node(id: $id) { ... on LogExport { exportId } } }",
            json!({ "id": global }),
        )
        .await;
    assert_eq!(data["node"]["exportId"], "e1");
    let their_global =
        app.data(&other, lookup, json!({ "id": "x1" })).await["logExport"]["id"].clone();
    for id in [json!("x1"), their_global.clone()] {
        let body = app.gql(Some(&key), lookup, json!({ "id": id })).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
    }
    let body = app
        .gql(
            Some(&key),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": their_global }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    app.stop().await;
}

async fn paging_is_stable_while_exports_progress(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let t = fixed_time();
    let mut rows = Vec::new();
    let mut want = Vec::new();
    for i in 0..25 {
        let id = format!("exp-{i:02}");
        // Pairs of exports share a request time: the id breaks the tie.
        let at = t + Duration::seconds((i / 2) as i64);
        rows.push(row("acme", &id, 0, "audit", "json", None, "pending", at));
        if i % 3 > 0 {
            rows.push(row(
                "acme",
                &id,
                1,
                "audit",
                "json",
                None,
                "running",
                at + Duration::seconds(100),
            ));
        }
        if i % 3 > 1 {
            rows.push(row(
                "acme",
                &id,
                2,
                "audit",
                "json",
                None,
                "completed",
                at + Duration::seconds(200),
            ));
        }
        want.push((at, format!("{id}-r0"), id));
    }
    insert(&app, rows).await;
    want.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    let want: Vec<String> = want.into_iter().map(|(_, _, id)| id).collect();
    for forward in [true, false] {
        let seen = walk(&app, &key, &EXPORTS, 4, forward, json!({})).await;
        assert_eq!(seen, want, "forward={forward}");
    }

    // New states of exports already listed do not move them between pages.
    let data = app.data(&key, PAGE, json!({ "first": 5 })).await;
    let first_page = ids_of(&data["logExports"], "exportId");
    let cursor = data["logExports"]["pageInfo"]["endCursor"].clone();
    insert(
        &app,
        vec![row(
            "acme",
            &want[10],
            9,
            "audit",
            "json",
            None,
            "failed",
            t + Duration::seconds(900),
        )],
    )
    .await;
    let data = app
        .data(&key, PAGE, json!({ "first": 100, "after": cursor }))
        .await;
    let rest = ids_of(&data["logExports"], "exportId");
    assert_eq!([first_page, rest].concat(), want);

    let completed = want.iter().filter(|id| {
        let i: usize = id[4..].parse().expect("n");
        i % 3 > 1 && id.as_str() != want[10]
    });
    let data = app
        .data(
            &key,
            PAGE,
            json!({ "filter": { "status": ["COMPLETED"] }, "first": 1 }),
        )
        .await;
    assert_eq!(data["logExports"]["totalCount"], json!(completed.count()));

    // Bad input.
    let body = app.gql(Some(&key), PAGE, json!({ "first": 101 })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let body = app
        .gql(
            Some(&key),
            PAGE,
            json!({ "first": 2, "after": cursor, "filter": { "status": ["FAILED"] } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR");
    let body = app
        .gql(
            Some(&key),
            "query($after: String) { systemRecords(first: 2, after: $after) { totalCount } }",
            json!({ "after": cursor }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        "BAD_CURSOR",
        "a logExports cursor in systemRecords"
    );
    app.stop().await;
}

async fn exports_for_runs_are_batched(backend: Backend) {
    let app = TestApp::spawn_for_counting(backend).await;
    let _ = app.key("acme", Role::Viewer).await;
    let _ = app.key("other", Role::Viewer).await;
    let t = fixed_time();
    let s = Duration::seconds;
    insert(
        &app,
        vec![
            row(
                "acme",
                "a1",
                0,
                "run_bundle",
                "zip",
                Some("run-1"),
                "pending",
                t,
            ),
            row(
                "acme",
                "a1",
                1,
                "run_bundle",
                "zip",
                Some("run-1"),
                "completed",
                t + s(5),
            ),
            row(
                "acme",
                "a2",
                0,
                "llm_runs",
                "json",
                Some("run-1"),
                "pending",
                t + s(1),
            ),
            row(
                "acme",
                "a3",
                0,
                "run_bundle",
                "zip",
                Some("run-2"),
                "pending",
                t + s(2),
            ),
            row("acme", "a4", 0, "audit", "json", None, "pending", t + s(3)),
            row(
                "other",
                "o1",
                0,
                "run_bundle",
                "zip",
                Some("run-1"),
                "pending",
                t,
            ),
        ],
    )
    .await;
    let tenant = TenantId::trusted("acme");
    let runs: Vec<String> = ["run-1", "run-2", "run-3"].map(str::to_owned).to_vec();
    let before = app.state.sql.statements();
    let found = logbook::exports::store::exports_for_runs(app.db(), &tenant, &runs)
        .await
        .expect("batched read");
    assert_eq!(
        app.state.sql.statements() - before,
        1,
        "one statement for all runs"
    );
    let run1: Vec<(&str, &str)> = found["run-1"]
        .iter()
        .map(|e| (e.request.export_id.as_str(), e.latest().status.as_str()))
        .collect();
    assert_eq!(run1, vec![("a2", "pending"), ("a1", "completed")]);
    assert_eq!(found["run-2"].len(), 1);
    assert!(found["run-3"].is_empty());

    let loader = logbook::exports::graphql::ExportsByRun::new(app.db().clone(), tenant);
    let loaded = loader.load(&runs).await.expect("loader");
    assert_eq!(loaded["run-1"].len(), 2);
    app.stop().await;
}

const JOBS_PAGE: &str = r#"
query Jobs($first: Int) {
  logExports(first: $first) {
    edges { node { exportId status job { state stage attempt maxAttempts rowsWritten asOf } } }
  }
}"#;

const CREATE: &str = r#"
mutation Create($input: CreateExportInput!) { createExport(input: $input) { exportId } }"#;

/// `LogExport.job` is batched: a page of exports with their jobs costs the same number of
/// statements whatever its size, and each job is read under its export's tenant.
async fn export_jobs_are_batched(backend: Backend) {
    let app = TestApp::spawn_for_counting(backend).await;
    let key = app.key("acme", Role::Operator).await;
    let other = app.key("other", Role::Operator).await;
    let create = |key: String| {
        let app = &app;
        async move {
            let data = app
                .data(
                    &key,
                    CREATE,
                    json!({ "input": { "scope": "LLM_RUNS", "format": "NDJSON" } }),
                )
                .await;
            data["createExport"]["exportId"]
                .as_str()
                .expect("exportId")
                .to_owned()
        }
    };
    let mut mine = Vec::new();
    for _ in 0..6 {
        mine.push(create(key.clone()).await);
    }
    let theirs = create(other.clone()).await;

    // The tenant's first list read also reads its tier (`read_window::TierCache`): not measured.
    app.data(&key, JOBS_PAGE, json!({ "first": 1 })).await;
    let mut counts = Vec::new();
    for first in [1, 2, 6] {
        let before = app.state.sql.statements();
        let data = app.data(&key, JOBS_PAGE, json!({ "first": first })).await;
        counts.push(app.state.sql.statements() - before);
        let edges = data["logExports"]["edges"].as_array().expect("edges");
        assert_eq!(edges.len(), first as usize, "{data:#}");
        for edge in edges {
            let node = &edge["node"];
            assert!(
                mine.iter()
                    .any(|id| id == node["exportId"].as_str().unwrap()),
                "{node:#}"
            );
            assert_eq!(node["job"]["state"], "QUEUED", "{node:#}");
            assert_eq!(node["job"]["stage"], "QUEUED", "{node:#}");
            assert_eq!(node["job"]["attempt"], 0, "{node:#}");
        }
    }
    assert!(
        counts.windows(2).all(|w| w[0] == w[1]),
        "statements per page of 1, 2 and 6 exports with their jobs: {counts:?}"
    );

    // The loader reads each job under its export's tenant: asking for another tenant's export
    // under this tenant finds nothing.
    let loader = logbook::exports::graphql::JobsByExport::new(app.db().clone());
    let keys = vec![
        ("acme".to_owned(), mine[0].clone()),
        ("acme".to_owned(), theirs.clone()),
        ("other".to_owned(), theirs.clone()),
        ("other".to_owned(), mine[1].clone()),
    ];
    let before = app.state.sql.statements();
    let loaded = loader.load(&keys).await.expect("loader");
    assert_eq!(
        app.state.sql.statements() - before,
        2,
        "one statement per tenant"
    );
    assert_eq!(loaded.len(), 2, "only each tenant's own jobs");
    assert_eq!(loaded[&keys[0]].tenant_id, "acme");
    assert_eq!(loaded[&keys[2]].tenant_id, "other");
    app.stop().await;
}

const SUBJECTS: &str = r#"
query Subjects($first: Int) {
  logExports(first: $first) {
    nodes {
      scope
      subject {
        __typename
        ... on LlmRun { runId recordId }
        ... on Trace { traceId runId }
        ... on Incident { incidentId title }
      }
    }
  }
}"#;

/// `LogExport.subject` resolves a bundle's run, trace or incident in the caller's tenant (the
/// other tenant has the same ids), is null for a list export, and is batched: a page of four
/// bundles and one of eight cost the same statements.
async fn bundle_subjects_resolve_in_the_callers_tenant(backend: Backend) {
    use sea_orm::IntoActiveModel;
    let app = TestApp::spawn_for_counting(backend).await;
    let operators = [
        app.key("acme", Role::Operator).await,
        app.key("other", Role::Operator).await,
    ];
    for tenant in ["acme", "other"] {
        let ingest = app.key(tenant, Role::Ingest).await;
        insert_runs(app.db(), &make_runs(tenant, tenant, 2, fixed_time())).await;
        for i in 0..2 {
            let run_id = format!("{tenant}-run-{i:05}");
            app.data(
                &ingest,
                "mutation($i: StartTraceInput!) { startTrace(input: $i) { traceId } }",
                json!({ "i": { "traceId": format!("t-{i}"), "runId": run_id } }),
            )
            .await;
            let incident = crate::incidents::incident(tenant, i, fixed_time());
            sea_orm::ActiveModelTrait::insert(incident.into_active_model(), app.db())
                .await
                .expect("incident");
        }
    }
    let key = &operators[0];
    app.data(
        key,
        CREATE,
        json!({ "input": { "scope": "LLM_RUNS", "format": "NDJSON" } }),
    )
    .await;
    // Oldest first: each kind twice, interleaved, so any four newest hold every kind.
    let mut expected = Vec::new();
    for i in 0..2 {
        let run = format!("acme-run-{i:05}");
        let incident = format!("acme-inc-{i:02}");
        for input in [
            json!({ "scope": "RUN_BUNDLE", "format": "ZIP", "runId": run }),
            json!({ "scope": "TRACE_BUNDLE", "format": "ZIP", "traceId": format!("t-{i}") }),
            json!({ "scope": "INCIDENT_BUNDLE", "format": "ZIP", "incidentId": incident }),
            json!({ "scope": "COMPLIANCE", "format": "ZIP", "incidentId": incident }),
        ] {
            app.data(key, CREATE, json!({ "input": input })).await;
        }
        expected.push(
            json!({ "__typename": "LlmRun", "runId": run, "recordId": format!("acme-rec-{i:05}") }),
        );
        expected.push(json!({ "__typename": "Trace", "traceId": format!("t-{i}"), "runId": run }));
        let title = format!("acme incident {i}");
        expected.push(json!({ "__typename": "Incident", "incidentId": incident, "title": title }));
        expected.push(json!({ "__typename": "Incident", "incidentId": incident, "title": title }));
    }
    expected.reverse();

    // The tenant's first list read also reads its tier (`read_window::TierCache`): not measured.
    app.data(key, SUBJECTS, json!({ "first": 1 })).await;
    let mut counts = Vec::new();
    for first in [4, 8] {
        let before = app.state.sql.statements();
        let data = app.data(key, SUBJECTS, json!({ "first": first })).await;
        counts.push(app.state.sql.statements() - before);
        let subjects: Vec<Value> = data["logExports"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["subject"].clone())
            .collect();
        assert_eq!(subjects, expected[..first].to_vec(), "{data:#}");
    }
    assert_eq!(counts[0], counts[1], "statements for 4 and 8 subjects");
    let all = app.data(key, SUBJECTS, json!({ "first": 20 })).await;
    let nodes = all["logExports"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 9);
    assert_eq!(nodes[8]["scope"], "LLM_RUNS");
    assert_eq!(nodes[8]["subject"], Value::Null, "a list export has none");
    app.stop().await;
}

const SCOPES: [&str; 4] = ["llm_runs", "audit", "traces", "compliance"];
const FORMATS: [&str; 3] = ["json", "csv", "zip"];
const ORIGINS: [&str; 3] = ["HUMAN", "SYSTEM", "AGENT"];
const REQUESTERS: [&str; 3] = ["user-1", "user-2", "scheduler"];

/// One generated export: its request's fields and its states (status, time), oldest first.
struct Generated {
    export_id: String,
    scope: &'static str,
    format: &'static str,
    origin: &'static str,
    requested_by: &'static str,
    states: Vec<(&'static str, DateTime<Utc>)>,
}

impl Generated {
    fn requested_at(&self) -> DateTime<Utc> {
        self.states[0].1
    }

    /// The status at `as_of` (now when `None`); `None` before the request.
    fn status_at(&self, as_of: Option<DateTime<Utc>>) -> Option<&'static str> {
        self.states
            .iter()
            .rev()
            .find(|(_, at)| as_of.is_none_or(|t| *at <= t))
            .map(|(status, _)| *status)
    }
}

/// 48 exports spread over three days before the fixed time, each pending, then for most
/// running, then completed or failed.
fn generated(seed: u64) -> Vec<Generated> {
    let mut next = crate::log_console::generator(seed);
    let start = fixed_time() - Duration::days(3);
    (0..48)
        .map(|i| {
            let requested = start + Duration::minutes(90 * i + next(60) as i64);
            let mut states = vec![("pending", requested)];
            let mut at = requested;
            if next(5) > 0 {
                at += Duration::minutes(1 + next(30) as i64);
                states.push(("running", at));
                if next(4) > 0 {
                    at += Duration::minutes(1 + next(200) as i64);
                    states.push((if next(3) == 0 { "failed" } else { "completed" }, at));
                }
            }
            Generated {
                export_id: format!("x{i:02}"),
                scope: SCOPES[next(4) as usize],
                format: FORMATS[next(3) as usize],
                origin: ORIGINS[next(3) as usize],
                requested_by: REQUESTERS[next(3) as usize],
                states,
            }
        })
        .collect()
}

fn rows_of(tenant: &str, exports: &[Generated]) -> Vec<log_exports::ActiveModel> {
    let mut rows = Vec::new();
    for e in exports {
        for (n, (status, at)) in e.states.iter().enumerate() {
            let mut r = row(
                tenant,
                &e.export_id,
                n,
                e.scope,
                e.format,
                None,
                status,
                *at,
            );
            r.id = Set(format!("{tenant}-{}-r{n}", e.export_id));
            r.origin = Set(e.origin.to_owned());
            r.requested_by = Set(e.requested_by.to_owned());
            rows.push(r);
        }
    }
    rows
}

/// Whether an export passes `filter` at `as_of`, read from the filter's JSON.
fn export_kept(filter: &Value, e: &Generated, as_of: Option<DateTime<Utc>>) -> bool {
    let names = |name: &str| -> Option<Vec<String>> {
        filter[name]
            .as_array()
            .map(|l| l.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
    };
    let any = |name: &str, v: &str| names(name).is_none_or(|l| l.iter().any(|x| x == v));
    let none = |name: &str, v: &str| names(name).is_none_or(|l| !l.iter().any(|x| x == v));
    let Some(status) = e.status_at(as_of) else {
        return false;
    };
    let (scope, format) = (e.scope.to_uppercase(), e.format.to_uppercase());
    let status = status.to_uppercase();
    let bound = |name: &str| {
        filter[name]
            .as_str()
            .map(|t| DateTime::parse_from_rfc3339(t).unwrap().to_utc())
    };
    any("scope", &scope)
        && none("scopeNotIn", &scope)
        && any("format", &format)
        && none("formatNotIn", &format)
        && any("status", &status)
        && none("statusNotIn", &status)
        && any("requestedBy", e.requested_by)
        && none("requestedByNotIn", e.requested_by)
        && any("origin", e.origin)
        && bound("createdAfter").is_none_or(|t| e.requested_at() >= t)
        && bound("createdBefore").is_none_or(|t| e.requested_at() <= t)
}

const CONSOLE: &str = r#"
query Console($filter: LogExportFilter, $asOf: DateTime, $first: Int, $after: String,
              $fields: [LogExportFacetField!]!, $limit: Int,
              $interval: HistogramInterval!, $from: DateTime!, $to: DateTime!, $tz: String) {
  logExports(filter: $filter, asOf: $asOf, first: $first, after: $after) {
    totalCount
    nodes { exportId status }
    pageInfo { hasNextPage endCursor }
    facets(fields: $fields, limit: $limit) { field values { value count } otherCount }
    histogram(interval: $interval, from: $from, to: $to, timeZone: $tz) { start end count }
  }
}"#;

const EXPORT_FIELDS: [&str; 5] = ["SCOPE", "FORMAT", "STATUS", "ORIGIN", "REQUESTED_BY"];

async fn export_filters_facets_and_histograms_are_exact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    app.key("other", Role::Viewer).await;
    let exports = generated(11);
    insert(&app, rows_of("acme", &exports)).await;
    // Another tenant with the same export ids, other fields and other times.
    let mut theirs = generated(12);
    for e in &mut theirs {
        for state in &mut e.states {
            state.1 += Duration::minutes(7);
        }
    }
    insert(&app, rows_of("other", &theirs)).await;

    let t = fixed_time();
    let iso = logbook::scalars::format_utc;
    let cases = [
        (json!({}), None),
        (
            json!({ "scope": ["LLM_RUNS", "AUDIT"], "formatNotIn": ["ZIP"] }),
            None,
        ),
        (
            json!({ "statusNotIn": ["COMPLETED"], "requestedBy": ["user-1", "user-2"] }),
            None,
        ),
        (
            json!({ "requestedByNotIn": ["user-1"], "origin": ["SYSTEM", "AGENT"] }),
            None,
        ),
        (
            json!({ "status": ["RUNNING", "PENDING"] }),
            Some(t - Duration::hours(30)),
        ),
        (
            json!({ "scopeNotIn": ["COMPLIANCE"], "format": ["CSV", "JSON"],
                 "createdAfter": iso(t - Duration::hours(50)), "createdBefore": iso(t - Duration::hours(10)) }),
            None,
        ),
        (json!({}), Some(t - Duration::hours(40))),
    ];
    for (filter, as_of) in cases {
        let mut kept: Vec<&Generated> = exports
            .iter()
            .filter(|e| export_kept(&filter, e, as_of))
            .collect();
        kept.sort_by_key(|e| std::cmp::Reverse(e.requested_at()));
        assert!(!kept.is_empty(), "{filter} keeps no export");
        let what = format!("{filter} asOf {as_of:?}");
        let (from, to) = (t - Duration::days(4), t + Duration::hours(1));
        // Walk the pages; each carries the same views.
        let (mut seen, mut after) = (Vec::<(String, String)>::new(), None::<String>);
        loop {
            let vars = json!({
                "filter": filter, "asOf": as_of.map(iso), "first": 7, "after": after,
                "fields": EXPORT_FIELDS, "limit": 2, "interval": "HOUR",
                "from": iso(from), "to": iso(to),
            });
            let data = app.data(&key, CONSOLE, vars).await;
            let list = &data["logExports"];
            assert_eq!(list["totalCount"], json!(kept.len()), "{what}");
            for node in list["nodes"].as_array().unwrap() {
                let id = node["exportId"].as_str().unwrap().to_owned();
                seen.push((id, node["status"].as_str().unwrap().to_owned()));
            }
            if after.is_none() {
                check_export_views(list, &kept, as_of, from, to, &what);
            }
            if !list["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                break;
            }
            after = list["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
        let expected: Vec<(String, String)> = kept
            .iter()
            .map(|e| {
                let status = e.status_at(as_of).unwrap().to_uppercase();
                (e.export_id.clone(), status)
            })
            .collect();
        assert_eq!(seen, expected, "{what}");
    }

    // Day buckets in a zone, and bad input.
    let vars = json!({
        "fields": ["SCOPE"], "interval": "DAY", "tz": "America/New_York",
        "from": iso(t - Duration::days(4)), "to": iso(t),
    });
    let data = app.data(&key, CONSOLE, vars).await;
    let counted: i64 = data["logExports"]["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| crate::run_console::int(&b["count"]))
        .sum();
    let in_window = exports
        .iter()
        .filter(|e| e.requested_at() >= t - Duration::days(4) && e.requested_at() < t)
        .count();
    assert_eq!(counted as usize, in_window, "day buckets in New York");
    for vars in [
        json!({ "fields": [], "interval": "HOUR", "from": iso(t - Duration::hours(1)), "to": iso(t) }),
        json!({ "filter": { "requestedBy": [] }, "fields": ["SCOPE"], "interval": "HOUR",
                "from": iso(t - Duration::hours(1)), "to": iso(t) }),
        json!({ "fields": ["SCOPE"], "interval": "MINUTE", "from": iso(t - Duration::days(3)), "to": iso(t) }),
    ] {
        let body = app.gql(Some(&key), CONSOLE, vars).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }
    app.stop().await;
}

/// Checks one page's facets and hourly histogram against the exports the filter keeps.
fn check_export_views(
    list: &Value,
    kept: &[&Generated],
    as_of: Option<DateTime<Utc>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    what: &str,
) {
    let value = |field: &str, e: &Generated| -> String {
        match field {
            "SCOPE" => e.scope.to_uppercase(),
            "FORMAT" => e.format.to_uppercase(),
            "STATUS" => e.status_at(as_of).unwrap().to_uppercase(),
            "ORIGIN" => e.origin.to_owned(),
            _ => e.requested_by.to_owned(),
        }
    };
    let facets = list["facets"].as_array().unwrap();
    assert_eq!(facets.len(), EXPORT_FIELDS.len());
    for (facet, field) in facets.iter().zip(EXPORT_FIELDS) {
        let mut counts = std::collections::BTreeMap::<String, i64>::new();
        for e in kept {
            *counts.entry(value(field, e)).or_default() += 1;
        }
        let mut values: Vec<(String, i64)> = counts.into_iter().collect();
        values.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        let rest = values.split_off(2.min(values.len()));
        let got: Vec<(String, i64)> = facet["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let n = crate::run_console::int(&v["count"]);
                (v["value"].as_str().unwrap().to_owned(), n)
            })
            .collect();
        assert_eq!(facet["field"], field);
        assert_eq!(got, values, "{field} of {what}");
        let other: i64 = rest.iter().map(|(_, n)| n).sum();
        assert_eq!(
            crate::run_console::int(&facet["otherCount"]),
            other,
            "{what}"
        );
    }
    let buckets = list["histogram"].as_array().unwrap();
    assert_eq!(buckets.len(), (to - from).num_hours() as usize, "{what}");
    for b in buckets {
        let start = DateTime::parse_from_rfc3339(b["start"].as_str().unwrap())
            .unwrap()
            .to_utc();
        let end = start + Duration::hours(1);
        let n = kept
            .iter()
            .filter(|e| e.requested_at() >= start && e.requested_at() < end)
            .count();
        assert_eq!(
            crate::run_console::int(&b["count"]) as usize,
            n,
            "{what} at {start}"
        );
    }
}

crate::cases!(
    one_node_per_export_with_latest_state,
    bundle_subjects_resolve_in_the_callers_tenant,
    paging_is_stable_while_exports_progress,
    exports_for_runs_are_batched,
    export_jobs_are_batched,
    export_filters_facets_and_histograms_are_exact,
);
