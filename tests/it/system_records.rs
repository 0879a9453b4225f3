//! `systemRecords` and `systemRecord`: a tenant sees its own rows plus the system-wide ones and
//! never another tenant's; paging, filters with their `totalCount`, `scope`, `asOf`, bad input;
//! the batched per-run read behind `LlmRun.systemRecords`.

use std::collections::HashSet;

use async_graphql::dataloader::Loader;
use chrono::{DateTime, Duration, Utc};
use entity::system_records;
use logbook::auth::{Role, TenantId};
use sea_orm::{EntityTrait, Set};
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, Backend, TestApp};

const PAGE: &str = r#"
query Page($filter: SystemRecordFilter, $first: Int, $after: String, $last: Int, $before: String, $asOf: DateTime) {
  systemRecords(filter: $filter, first: $first, after: $after, last: $last, before: $before, asOf: $asOf) {
    totalCount
    edges { cursor node { id recordId tenantId isSystemWide component eventType severity summary details causedBy correlationId createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"#;

/// A row to insert.
pub struct Rec {
    pub id: String,
    pub tenant: Option<&'static str>,
    pub component: &'static str,
    pub event_type: &'static str,
    pub severity: &'static str,
    pub correlation_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_records(app: &TestApp, rows: &[Rec]) {
    let models = rows.iter().map(|r| system_records::ActiveModel {
        id: Set(r.id.clone()),
        tenant_id: Set(r.tenant.map(str::to_owned)),
        component: Set(r.component.to_owned()),
        event_type: Set(r.event_type.to_owned()),
        severity: Set(r.severity.to_owned()),
        summary: Set(format!("summary of {}", r.id)),
        details: Set(Some(json!({ "n": r.id }))),
        caused_by: Set(Some("SYSTEM".to_owned())),
        correlation_id: Set(r.correlation_id.clone()),
        created_at: Set(r.created_at),
    });
    system_records::Entity::insert_many(models)
        .exec_without_returning(app.db())
        .await
        .expect("insert system records");
}

const COMPONENTS: [&str; 3] = ["worker", "api", "db"];
const EVENTS: [&str; 3] = ["STARTUP", "ERROR", "DEPLOY"];
const SEVERITIES: [&str; 3] = ["INFO", "WARN", "CRITICAL"];

/// `n` rows, newest first from `newest`, every third pair sharing a timestamp.
fn make(prefix: &str, tenant: Option<&'static str>, n: usize, newest: DateTime<Utc>) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            id: format!("{prefix}-{i:04}"),
            tenant,
            component: COMPONENTS[i % 3],
            event_type: EVENTS[(i / 2) % 3],
            severity: SEVERITIES[(i / 3) % 3],
            correlation_id: (i % 4 == 0).then(|| format!("run-{}", i % 8)),
            created_at: newest - Duration::seconds((i - i % 3 / 2) as i64),
        })
        .collect()
}

/// Ids of `rows` in list order (newest first, ties by id descending).
fn ordered<'a>(rows: impl Iterator<Item = &'a Rec>) -> Vec<String> {
    let mut keyed: Vec<(DateTime<Utc>, String)> =
        rows.map(|r| (r.created_at, r.id.clone())).collect();
    keyed.sort_by(|a, b| b.cmp(a));
    keyed.into_iter().map(|(_, id)| id).collect()
}

pub fn ids_of(connection: &Value, field: &str) -> Vec<String> {
    connection["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"][field].as_str().expect("id").to_owned())
        .collect()
}

/// A list query: the document, its root field and the node field that identifies a row.
pub struct List {
    pub query: &'static str,
    pub root: &'static str,
    pub field: &'static str,
}

const RECORDS: List = List {
    query: PAGE,
    root: "systemRecords",
    field: "recordId",
};

/// Pages a whole list forward or backward with `size`-row pages; returns the identifying
/// field of each node in list order, checking no node repeats.
pub async fn walk(
    app: &TestApp,
    key: &str,
    list: &List,
    size: i32,
    forward: bool,
    mut vars: Value,
) -> Vec<String> {
    let (query, root, field) = (list.query, list.root, list.field);
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        if forward {
            vars["first"] = json!(size);
            vars["after"] = json!(cursor);
        } else {
            vars["last"] = json!(size);
            vars["before"] = json!(cursor);
        }
        let data = app.data(key, query, vars.clone()).await;
        let connection = &data[root];
        let mut ids = ids_of(connection, field);
        assert!(ids.len() <= size as usize);
        let info = &connection["pageInfo"];
        if forward {
            seen.append(&mut ids);
            if !info["hasNextPage"].as_bool().expect("bool") {
                break;
            }
            cursor = info["endCursor"].as_str().map(str::to_owned);
        } else {
            ids.append(&mut seen);
            seen = ids;
            if !info["hasPreviousPage"].as_bool().expect("bool") {
                break;
            }
            cursor = info["startCursor"].as_str().map(str::to_owned);
        }
        assert!(seen.len() < 10_000, "paging does not terminate");
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a node was repeated");
    seen
}

async fn system_wide_rows_are_shared_and_tenants_isolated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let acme = app.key("acme", Role::Viewer).await;
    let other = app.key("other", Role::Viewer).await;
    let t = fixed_time();
    let mine = make("acme", Some("acme"), 5, t);
    let theirs = make("other", Some("other"), 4, t);
    let shared = make("sys", None, 3, t - Duration::seconds(1));
    for rows in [&mine, &theirs, &shared] {
        insert_records(&app, rows).await;
    }

    let all = app.data(&acme, PAGE, json!({ "first": 100 })).await;
    assert_eq!(all["systemRecords"]["totalCount"], json!(8));
    assert_eq!(
        ids_of(&all["systemRecords"], "recordId"),
        ordered(mine.iter().chain(shared.iter()))
    );
    let node = &all["systemRecords"]["edges"][0]["node"];
    assert_eq!(node["tenantId"], "acme");
    assert_eq!(node["isSystemWide"], false);
    assert_eq!(node["component"], "WORKER");
    assert_eq!(node["causedBy"], "SYSTEM");
    assert_eq!(node["details"], json!({ "n": node["recordId"] }));
    assert!(node["createdAt"].as_str().expect("time").ends_with('Z'));

    for (scope, want) in [
        ("TENANT_ONLY", ordered(mine.iter())),
        ("SYSTEM_WIDE_ONLY", ordered(shared.iter())),
        ("ALL", ordered(mine.iter().chain(shared.iter()))),
    ] {
        let data = app
            .data(&acme, PAGE, json!({ "filter": { "scope": scope } }))
            .await;
        assert_eq!(ids_of(&data["systemRecords"], "recordId"), want, "{scope}");
        assert_eq!(data["systemRecords"]["totalCount"], json!(want.len()));
    }
    let data = app.data(&other, PAGE, json!({})).await;
    assert_eq!(
        ids_of(&data["systemRecords"], "recordId"),
        ordered(theirs.iter().chain(shared.iter()))
    );
    let system_node = data["systemRecords"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["isSystemWide"] == json!(true))
        .expect("a system-wide row")
        .clone();
    assert_eq!(system_node["tenantId"], Value::Null);

    // Lookups: by record id and by global id; system-wide rows for anyone, other tenants' never.
    let lookup = "query($id: ID!) { systemRecord(id: $id) { id recordId isSystemWide } }";
    let node_q = "query($id: ID!) { node(id: $id) { id ... on SystemRecord { recordId } } }";
    for id in [system_node["recordId"].clone(), system_node["id"].clone()] {
        let data = app.data(&acme, lookup, json!({ "id": id })).await;
        assert_eq!(data["systemRecord"]["recordId"], system_node["recordId"]);
    }
    let data = app
        .data(&acme, node_q, json!({ "id": system_node["id"] }))
        .await;
    assert_eq!(data["node"]["recordId"], system_node["recordId"]);
    let theirs_node = data_of_first(&app, &other, "TENANT_ONLY").await;
    for id in [theirs_node["recordId"].clone(), theirs_node["id"].clone()] {
        let body = app.gql(Some(&acme), lookup, json!({ "id": id })).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
        assert_eq!(body["data"]["systemRecord"], Value::Null);
    }
    let body = app
        .gql(Some(&acme), node_q, json!({ "id": theirs_node["id"] }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let missing = app
        .gql(Some(&acme), lookup, json!({ "id": "no-such-record" }))
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
    assert_eq!(
        missing["errors"][0]["message"], body["errors"][0]["message"],
        "another tenant's record looks exactly like a missing one"
    );
    app.stop().await;
}

async fn data_of_first(app: &TestApp, key: &str, scope: &str) -> Value {
    let data = app
        .data(
            key,
            PAGE,
            json!({ "filter": { "scope": scope }, "first": 1 }),
        )
        .await;
    data["systemRecords"]["edges"][0]["node"].clone()
}

async fn paging_filters_and_total_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let _ = app.key("other", Role::Viewer).await;
    let t = fixed_time();
    let mine = make("acme", Some("acme"), 45, t);
    let shared = make("sys", None, 20, t - Duration::milliseconds(500));
    let theirs = make("other", Some("other"), 15, t);
    for rows in [&mine, &shared, &theirs] {
        insert_records(&app, rows).await;
    }
    let visible: Vec<&Rec> = mine.iter().chain(shared.iter()).collect();

    for forward in [true, false] {
        let seen = walk(&app, &key, &RECORDS, 7, forward, json!({})).await;
        assert_eq!(seen, ordered(visible.iter().copied()), "forward={forward}");
    }

    let after = t - Duration::seconds(30);
    let filter = json!({
        "severity": ["CRITICAL", "WARN", "WARN"],
        "component": ["WORKER", "DB"],
        "createdAfter": logbook::scalars::format_utc(after),
    });
    let want = ordered(visible.iter().copied().filter(|r| {
        matches!(r.severity, "CRITICAL" | "WARN")
            && matches!(r.component, "worker" | "db")
            && r.created_at >= after
    }));
    assert!(want.len() > 3);
    let data = app
        .data(&key, PAGE, json!({ "filter": filter, "first": 2 }))
        .await;
    assert_eq!(data["systemRecords"]["totalCount"], json!(want.len()));
    let seen = walk(&app, &key, &RECORDS, 3, true, json!({ "filter": filter })).await;
    assert_eq!(seen, want);

    let before = t - Duration::seconds(10);
    let filter =
        json!({ "eventType": ["ERROR"], "createdBefore": logbook::scalars::format_utc(before) });
    let want = ordered(
        visible
            .iter()
            .copied()
            .filter(|r| r.event_type == "ERROR" && r.created_at <= before),
    );
    let data = app
        .data(&key, PAGE, json!({ "filter": filter, "first": 100 }))
        .await;
    assert_eq!(ids_of(&data["systemRecords"], "recordId"), want);
    assert_eq!(data["systemRecords"]["totalCount"], json!(want.len()));

    let data = app
        .data(
            &key,
            PAGE,
            json!({ "filter": { "correlationId": "run-4" }, "first": 100 }),
        )
        .await;
    let want = ordered(
        visible
            .iter()
            .copied()
            .filter(|r| r.correlation_id.as_deref() == Some("run-4")),
    );
    assert!(!want.is_empty());
    assert_eq!(ids_of(&data["systemRecords"], "recordId"), want);

    // asOf hides later rows, in the page and in totalCount.
    let as_of = t - Duration::seconds(20);
    let want = ordered(visible.iter().copied().filter(|r| r.created_at <= as_of));
    let data = app
        .data(
            &key,
            PAGE,
            json!({ "asOf": logbook::scalars::format_utc(as_of), "first": 100 }),
        )
        .await;
    assert_eq!(ids_of(&data["systemRecords"], "recordId"), want);
    assert_eq!(data["systemRecords"]["totalCount"], json!(want.len()));

    // Bad input: page size, a cursor of another filter, scope or list.
    let body = app.gql(Some(&key), PAGE, json!({ "first": 101 })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "first");
    let data = app.data(&key, PAGE, json!({ "first": 3 })).await;
    let cursor = data["systemRecords"]["pageInfo"]["endCursor"].clone();
    let body = app
        .gql(
            Some(&key),
            PAGE,
            json!({ "first": 3, "after": cursor, "filter": { "scope": "TENANT_ONLY" } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR");
    let runs = app
        .gql(
            Some(&key),
            "query($after: String) { llmRuns(first: 3, after: $after) { totalCount } }",
            json!({ "after": cursor }),
        )
        .await;
    assert_eq!(
        error_code(&runs),
        "BAD_CURSOR",
        "a systemRecords cursor in llmRuns"
    );
    let body = app
        .gql(Some(&key), PAGE, json!({ "first": 3, "after": "garbage" }))
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR");
    app.stop().await;
}

async fn records_for_runs_are_batched(backend: Backend) {
    let app = TestApp::spawn_for_counting(backend).await;
    let _ = app.key("acme", Role::Viewer).await;
    let t = fixed_time();
    let mut rows = Vec::new();
    for i in 0..55 {
        rows.push(Rec {
            id: format!("busy-{i:03}"),
            tenant: Some("acme"),
            component: "worker",
            event_type: "ERROR",
            severity: "WARN",
            correlation_id: Some("run-busy".into()),
            created_at: t - Duration::seconds(i),
        });
    }
    for (id, tenant) in [
        ("quiet-own", Some("acme")),
        ("quiet-sys", None),
        ("quiet-theirs", Some("other")),
    ] {
        rows.push(Rec {
            id: id.into(),
            tenant,
            component: "api",
            event_type: "RESTART",
            severity: "INFO",
            correlation_id: Some("run-quiet".into()),
            created_at: if tenant.is_none() {
                t
            } else {
                t - Duration::seconds(1)
            },
        });
    }
    insert_records(&app, &rows).await;

    let tenant = TenantId::trusted("acme");
    let runs: Vec<String> = ["run-busy", "run-quiet", "run-none"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let before = app.state.sql.statements();
    let found = logbook::system::store::system_records_for_runs(app.db(), &tenant, &runs)
        .await
        .expect("batched read");
    assert_eq!(
        app.state.sql.statements() - before,
        1,
        "one statement for all runs"
    );
    let busy: Vec<&str> = found["run-busy"].iter().map(|r| r.id.as_str()).collect();
    let want: Vec<String> = (0..50).map(|i| format!("busy-{i:03}")).collect();
    assert_eq!(busy, want, "newest 50, newest first");
    let quiet: Vec<&str> = found["run-quiet"].iter().map(|r| r.id.as_str()).collect();
    assert_eq!(quiet, vec!["quiet-sys", "quiet-own"]);
    assert!(found["run-none"].is_empty());

    let loader = logbook::system::graphql::SystemRecordsByRun::new(app.db().clone(), tenant);
    let loaded = loader.load(&runs).await.expect("loader");
    assert_eq!(loaded.len(), 3);
    assert_eq!(loaded["run-quiet"].len(), 2);
    app.stop().await;
}

crate::cases!(
    system_wide_rows_are_shared_and_tenants_isolated,
    paging_filters_and_total_count,
    records_for_runs_are_batched,
);
