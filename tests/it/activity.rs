//! `activity`: one newest-first stream of a tenant's runs, visible system records, audit entries
//! and trace starts and ends. Every page walk is compared with a brute-force merge of the same
//! rows (ties across kinds at one instant included), with another tenant's rows at the same
//! instants throughout; plus filters, `asOf`, cursors bound to the filter, bad input and the
//! statement bound.

use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::system_records;
use logbook::auth::Role;
use sea_orm::{EntityTrait, Set};
use serde_json::{json, Value};

use crate::audit_reads::{Entry, Ledger};
use crate::run_console::iso;
use crate::support::{error_code, fewest_statements, insert_runs, make_runs, Backend, TestApp};
use crate::traces_reads::{insert_traces, trace};

fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap()
}

/// One expected item: (time, kind rank, row id) orders the feed; (kind, subject id) is what a
/// client sees.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Item {
    at: DateTime<Utc>,
    rank: u8,
    row: String,
    kind: &'static str,
    subject: String,
    run: Option<String>,
}

const KINDS: [&str; 5] = [
    "LLM_RUN",
    "SYSTEM_RECORD",
    "AUDIT_ENTRY",
    "TRACE_STARTED",
    "TRACE_ENDED",
];

fn item(at: DateTime<Utc>, rank: u8, row: &str, subject: &str, run: Option<&str>) -> Item {
    Item {
        at,
        rank,
        row: row.to_owned(),
        kind: KINDS[rank as usize],
        subject: subject.to_owned(),
        run: run.map(str::to_owned),
    }
}

/// Writes one tenant's rows (`None`: the system-wide records only) and returns its items.
async fn seed(app: &TestApp, tenant: &str) -> Vec<Item> {
    let a = anchor();
    let mut items = Vec::new();
    // 30 runs over the last ~30 seconds, some sharing an instant.
    let runs = make_runs(tenant, tenant, 30, a);
    insert_runs(app.db(), &runs).await;
    for r in &runs {
        items.push(item(r.created_at, 0, &r.id, &r.run_id, Some(&r.run_id)));
    }
    // System records at instants that runs also have; some correlated with a run.
    let records: Vec<system_records::ActiveModel> = (0..12)
        .map(|i| {
            let at = runs[i * 2].created_at;
            let correlation = (i % 3 == 0).then(|| runs[i].run_id.clone());
            let id = format!("{tenant}-sys-{i:02}");
            items.push(item(at, 1, &id, &id, correlation.as_deref()));
            system_records::ActiveModel {
                id: Set(id),
                tenant_id: Set(Some(tenant.to_owned())),
                component: Set("worker".into()),
                event_type: Set("ERROR".into()),
                severity: Set("WARN".into()),
                summary: Set("worker restarted".into()),
                details: Set(None),
                caused_by: Set(None),
                correlation_id: Set(correlation),
                created_at: Set(at),
            }
        })
        .collect();
    system_records::Entity::insert_many(records)
        .exec_without_returning(app.db())
        .await
        .expect("insert system records");
    // Audit entries, oldest first in the chain.
    let mut ledger = Ledger::new(tenant);
    for i in (0..10).rev() {
        let at = runs[i * 3].created_at - Duration::milliseconds(500 * (i % 2) as i64);
        let mut entry = Entry::new("LimitCreated", "LIMIT", &format!("lim-{i}"), at);
        entry.run_id = (i % 2 == 0).then(|| runs[i].run_id.clone());
        let run = entry.run_id.clone();
        let id = ledger.push(entry);
        items.push(item(at, 2, &id, &id, run.as_deref()));
    }
    ledger.insert(app).await;
    // Traces: every one starts; two of three have ended (one ending at a run's instant).
    let traces: Vec<_> = (0..9)
        .map(|i| {
            let run = &runs[i * 3];
            let trace_id = format!("{tenant}-trace-{i}");
            let mut t = trace(tenant, &trace_id, &run.run_id, run.created_at);
            t.id = format!("{tenant}-tr-{i}");
            items.push(item(t.created_at, 3, &t.id, &trace_id, Some(&run.run_id)));
            if i % 3 == 2 {
                t.status = "running".into();
                t.completed_at = None;
                t.root_hash = None;
            } else {
                let done = runs[i].created_at + Duration::seconds(i as i64);
                t.completed_at = Some(done);
                items.push(item(done, 4, &t.id, &trace_id, Some(&run.run_id)));
            }
            t
        })
        .collect();
    insert_traces(app.db(), traces).await;
    items
}

const FEED: &str = r#"
query Feed($filter: ActivityFilter, $asOf: DateTime, $first: Int, $after: String) {
  activity(filter: $filter, asOf: $asOf, first: $first, after: $after) {
    totalCount
    edges {
      cursor
      node {
        kind at
        subject {
          __typename
          ... on LlmRun { runId }
          ... on SystemRecord { recordId }
          ... on AuditEntry { recordId }
          ... on Trace { traceId }
        }
      }
    }
    pageInfo { hasNextPage endCursor hasPreviousPage }
  }
}"#;

fn subject_id(subject: &Value) -> String {
    ["runId", "recordId", "traceId"]
        .iter()
        .find_map(|f| subject[*f].as_str())
        .expect("a subject id")
        .to_owned()
}

/// Every page forward: (kind, subject id) in feed order, and the `totalCount` pages reported.
async fn walk(app: &TestApp, key: &str, vars: &Value, size: i32) -> (Vec<(String, String)>, i64) {
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let mut v = vars.clone();
        v["first"] = json!(size);
        v["after"] = json!(cursor);
        let data = app.data(key, FEED, v).await;
        let connection = &data["activity"];
        let total = connection["totalCount"].as_i64().expect("count");
        for edge in connection["edges"].as_array().unwrap() {
            let node = &edge["node"];
            seen.push((
                node["kind"].as_str().unwrap().to_owned(),
                subject_id(&node["subject"]),
            ));
        }
        assert_eq!(connection["pageInfo"]["hasPreviousPage"], false);
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return (seen, total);
        }
        cursor = connection["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
        assert!(seen.len() < 10_000, "paging does not terminate");
    }
}

/// Which items a case keeps.
type Keep = Box<dyn Fn(&Item) -> bool + Send + Sync>;

fn expected(items: &[Item], keep: impl Fn(&Item) -> bool) -> Vec<(String, String)> {
    let mut kept: Vec<&Item> = items.iter().filter(|i| keep(i)).collect();
    kept.sort_by(|a, b| b.cmp(a));
    kept.iter()
        .map(|i| (i.kind.to_owned(), i.subject.clone()))
        .collect()
}

async fn the_feed_merges_every_kind_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    app.key("globex", Role::Viewer).await;
    let items = seed(&app, "acme").await;
    seed(&app, "globex").await;
    let a = anchor();
    let cases: Vec<(Value, Keep)> = vec![
        (json!({}), Box::new(|_| true)),
        (
            json!({ "filter": { "kinds": ["TRACE_ENDED", "LLM_RUN", "TRACE_ENDED"] } }),
            Box::new(|i| i.rank == 4 || i.rank == 0),
        ),
        (
            json!({ "filter": { "runId": "acme-run-00006" } }),
            Box::new(|i| i.run.as_deref() == Some("acme-run-00006")),
        ),
        (
            json!({ "filter": { "after": iso(a - Duration::seconds(20)), "before": iso(a - Duration::seconds(5)) } }),
            Box::new(move |i| {
                i.at >= a - Duration::seconds(20) && i.at <= a - Duration::seconds(5)
            }),
        ),
        (
            json!({ "asOf": iso(a - Duration::seconds(9)), "filter": { "kinds": ["AUDIT_ENTRY", "SYSTEM_RECORD", "TRACE_STARTED"] } }),
            Box::new(move |i| i.at <= a - Duration::seconds(9) && (1..=3).contains(&i.rank)),
        ),
    ];
    for (vars, keep) in &cases {
        let want = expected(&items, keep);
        assert!(want.len() > 2, "{vars}: the case reads too little");
        for size in [1, 4, 50] {
            let (got, total) = walk(&app, &key, vars, size).await;
            assert_eq!(got, want, "{vars} by {size}");
            assert_eq!(total as usize, want.len(), "totalCount of {vars}");
        }
    }
    // Ties across kinds exist in the fixture, so the kind order was exercised.
    let mut instants: Vec<_> = items.iter().map(|i| (i.at, i.rank)).collect();
    instants.sort();
    assert!(
        instants
            .windows(2)
            .any(|w| w[0].0 == w[1].0 && w[0].1 != w[1].1),
        "no instant holds two kinds"
    );
    app.stop().await;
}

async fn activity_cursors_input_and_statements(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let other = app.key("globex", Role::Viewer).await;
    seed(&app, "acme").await;
    seed(&app, "globex").await;
    let data = app.data(&key, FEED, json!({ "first": 3 })).await;
    let cursor = data["activity"]["pageInfo"]["endCursor"].clone();
    // Bound to the filter and the tenant.
    let body = app
        .gql(
            Some(&key),
            FEED,
            json!({ "first": 3, "after": cursor, "filter": { "kinds": ["LLM_RUN"] } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR");
    let body = app
        .gql(Some(&other), FEED, json!({ "first": 3, "after": cursor }))
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR");
    for vars in [
        json!({ "filter": { "kinds": [] } }),
        json!({ "first": 0 }),
        json!({ "first": 101 }),
    ] {
        let body = app.gql(Some(&key), FEED, vars.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{vars}");
    }
    // Five kinds: one position read and one count per kind, and one row read per kind shown
    // (trace starts and ends share one), whatever the page size. Pages of 80 and 100 both hold
    // every kind of the 67 items seeded per tenant.
    let statements = |first: i32| fewest_statements(&app, &key, FEED, json!({ "first": first }));
    let (small, large) = (statements(80).await, statements(100).await);
    assert!(
        large <= small,
        "activity statements grow with the page: {small} → {large}"
    );
    assert!(large <= 16, "activity costs {large} statements");
    app.stop().await;
}

crate::cases!(
    the_feed_merges_every_kind_newest_first,
    activity_cursors_input_and_statements,
);
