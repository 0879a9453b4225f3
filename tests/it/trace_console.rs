//! What a console reads of `traces` besides the newest page: filters (ranges, any-of / none-of,
//! search), sorts by start, step count and duration with cursors bound to them, facets,
//! aggregates and histograms. Every figure is compared with a brute-force reading of the same
//! rows in Rust, with another tenant's traces in the database throughout. Also: a trace sealed
//! through the API gets its step count, and the migration filled it for traces sealed before.

use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::aos_traces;
use logbook::auth::Role;
use serde_json::{json, Value};

use crate::run_console::{assert_stats, brute_stats, int, iso, time};
use crate::support::{error_code, Backend, TestApp};
use crate::traces_reads::{insert_traces, trace};

const AGENTS: [Option<&str>; 4] = [Some("planner"), Some("router"), Some("coder"), None];
const STATUSES: [&str; 4] = ["running", "completed", "failed", "aborted"];

fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap()
}

/// `n` varied traces of `tenant` over about two days before the anchor: every status (running
/// ones have no completion, step count or duration), agents with and without, synthetic ones,
/// step counts and durations with ties, and a violation reason on some.
fn varied_traces(tenant: &str, n: usize, seed: u64) -> Vec<aos_traces::Model> {
    let mut state = seed;
    let mut next = move |m: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % m
    };
    let mut at = anchor();
    (0..n)
        .map(|i| {
            at -= Duration::seconds(next(900) as i64) + Duration::microseconds(next(999) as i64);
            let status = STATUSES[next(4) as usize];
            let running = status == "running";
            let trace_id = format!("{tenant}-trace-{i:04}");
            let mut t = trace(tenant, &trace_id, &format!("{tenant}_run_{i:04}"), at);
            t.id = format!("{tenant}-rec-{i:04}");
            t.status = status.to_owned();
            t.agent_id = AGENTS[next(4) as usize].map(str::to_owned);
            t.started_at = at - Duration::milliseconds(next(60_000) as i64);
            t.completed_at = (!running).then(|| at + Duration::milliseconds(next(5_000) as i64));
            t.step_count = (!running).then(|| next(12) as i32);
            t.root_hash = None;
            t.is_synthetic = next(5) == 0;
            t.synthetic_scenario_id = t.is_synthetic.then(|| format!("scenario-{}", next(3)));
            t.incident_id = (next(10) == 0).then(|| format!("inc-{}", next(4)));
            t.violation_reason =
                (status == "failed" && next(2) == 0).then(|| "Budget Guard tripped".to_owned());
            t
        })
        .collect()
}

/// The duration the database generates: milliseconds, rounded half away from zero.
fn duration_ms(t: &aos_traces::Model) -> Option<i64> {
    logbook::runs::duration_ms(t.started_at, t.completed_at)
}

struct Fixture {
    app: TestApp,
    key: String,
    traces: Vec<aos_traces::Model>,
}

async fn fixture(backend: Backend) -> Fixture {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    app.key("globex", Role::Viewer).await;
    let traces = varied_traces("acme", 300, 5);
    insert_traces(app.db(), traces.clone()).await;
    // Another tenant's traces, interleaved in time, with the same agents and trace ids.
    let mut foreign = varied_traces("acme", 120, 9);
    for t in &mut foreign {
        t.tenant_id = "globex".into();
        t.id = format!("globex-{}", t.id);
    }
    insert_traces(app.db(), foreign).await;
    Fixture { app, key, traces }
}

/// The brute-force reading of a filter (the JSON a test sends) over the traces.
fn keeps(filter: &Value, t: &aos_traces::Model) -> bool {
    let text = |name: &str| filter.get(name).and_then(Value::as_str);
    let list = |name: &str| {
        filter.get(name).and_then(Value::as_array).map(|values| {
            values
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
    };
    let bound = |name: &str| {
        filter
            .get(name)
            .and_then(Value::as_str)
            .map(|s| time(&json!(s)))
    };
    let range = |name: &str, value: Option<i64>| match filter.get(name) {
        None => true,
        Some(r) => {
            let Some(v) = value else { return false };
            r.get("min").is_none_or(|m| v >= int(m)) && r.get("max").is_none_or(|m| v <= int(m))
        }
    };
    let status = t.status.to_uppercase();
    let agent = t.agent_id.clone();
    let search_text = [
        Some(t.trace_id.clone()),
        Some(t.run_id.clone()),
        Some(t.correlation_id.clone()),
        t.agent_id.clone(),
        t.plan_id.clone(),
        t.incident_id.clone(),
        t.synthetic_scenario_id.clone(),
        t.violation_reason.clone(),
    ]
    .map(Option::unwrap_or_default)
    .join(" ")
    .to_lowercase();
    text("agentId").is_none_or(|a| agent.as_deref() == Some(a))
        && text("incidentId").is_none_or(|a| t.incident_id.as_deref() == Some(a))
        && list("agentIdIn").is_none_or(|l| agent.as_ref().is_some_and(|a| l.contains(a)))
        && list("agentIdNotIn").is_none_or(|l| agent.as_ref().is_none_or(|a| !l.contains(a)))
        && list("status").is_none_or(|l| l.contains(&status))
        && list("statusNotIn").is_none_or(|l| !l.contains(&status))
        && filter
            .get("isSynthetic")
            .is_none_or(|v| v.as_bool() == Some(t.is_synthetic))
        && bound("createdAfter").is_none_or(|b| t.created_at >= b)
        && bound("createdBefore").is_none_or(|b| t.created_at <= b)
        && bound("startedAfter").is_none_or(|b| t.started_at >= b)
        && bound("completedAfter").is_none_or(|b| t.completed_at.is_some_and(|c| c >= b))
        && bound("completedBefore").is_none_or(|b| t.completed_at.is_some_and(|c| c <= b))
        && range("stepCount", t.step_count.map(i64::from))
        && range("durationMs", duration_ms(t))
        && text("search").is_none_or(|s| search_text.contains(&s.to_lowercase()))
}

const PAGE: &str = r#"
query Page($filter: TraceFilter, $orderBy: TraceOrder, $first: Int, $after: String) {
  traces(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    nodes { traceId stepCount durationMs }
    pageInfo { hasNextPage endCursor }
  }
}"#;

/// Every page of the list, in list order (trace ids), and the `totalCount` pages reported.
async fn walk(f: &Fixture, filter: &Value, order: &Value, size: i32) -> (Vec<String>, i64) {
    let (mut ids, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let vars = json!({ "filter": filter, "orderBy": order, "first": size, "after": cursor });
        let data = f.app.data(&f.key, PAGE, vars).await;
        let connection = &data["traces"];
        let total = connection["totalCount"].as_i64().expect("count");
        for node in connection["nodes"].as_array().expect("nodes") {
            let id = node["traceId"].as_str().unwrap();
            let t = f
                .traces
                .iter()
                .find(|t| t.trace_id == id)
                .expect("a fixture trace");
            assert_eq!(
                node["stepCount"].as_i64(),
                t.step_count.map(i64::from),
                "{id}"
            );
            assert_eq!(
                node["durationMs"].as_str().map(|d| d.parse().unwrap()),
                duration_ms(t)
            );
            ids.push(id.to_owned());
        }
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return (ids, total);
        }
        cursor = connection["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
        assert!(ids.len() <= f.traces.len(), "paging does not terminate");
    }
}

async fn trace_filters_agree_with_a_brute_force_reading(backend: Backend) {
    let f = fixture(backend).await;
    let a = anchor();
    let filters = [
        json!({}),
        json!({ "agentIdIn": ["planner", "coder"], "statusNotIn": ["ABORTED"] }),
        json!({ "agentIdNotIn": ["router"], "isSynthetic": false }),
        json!({ "stepCount": { "min": 3, "max": 7 } }),
        json!({ "durationMs": { "min": "20000" }, "status": ["COMPLETED", "FAILED"] }),
        json!({ "completedAfter": iso(a - Duration::hours(20)), "completedBefore": iso(a - Duration::hours(4)) }),
        json!({ "startedAfter": iso(a - Duration::hours(30)), "createdBefore": iso(a - Duration::hours(2)) }),
        json!({ "incidentId": "inc-1" }),
        json!({ "search": "TRACE-01" }),
        json!({ "search": "budget guard" }),
        json!({ "search": "scenario-2", "stepCount": { "max": 8 } }),
        json!({ "search": "acme_run_0%" }),
    ];
    for filter in &filters {
        let mut expected: Vec<_> = f
            .traces
            .iter()
            .filter(|t| keeps(filter, t))
            .map(|t| (t.created_at, t.id.clone(), t.trace_id.clone()))
            .collect();
        expected.sort_by(|x, y| (y.0, &y.1).cmp(&(x.0, &x.1)));
        let expected: Vec<String> = expected.into_iter().map(|(_, _, id)| id).collect();
        let (ids, total) = walk(&f, filter, &Value::Null, 41).await;
        assert_eq!(ids, expected, "filter {filter}");
        assert_eq!(total as usize, expected.len(), "totalCount of {filter}");
    }
    // `%` and `_` are literal: the first matches nothing, the second every trace.
    assert_eq!(
        walk(&f, &json!({ "search": "acme_run_0%" }), &Value::Null, 50)
            .await
            .1,
        0
    );
    assert_eq!(
        walk(&f, &json!({ "search": "acme_run_" }), &Value::Null, 100)
            .await
            .1,
        300
    );
    f.app.stop().await;
}

async fn trace_sorts_page_in_their_order_with_cursors_bound_to_it(backend: Backend) {
    let f = fixture(backend).await;
    let filter = json!({ "agentIdNotIn": ["coder"] });
    let kept: Vec<&aos_traces::Model> = f.traces.iter().filter(|t| keeps(&filter, t)).collect();
    type Key = fn(&aos_traces::Model) -> Option<i64>;
    let orders: [(&str, Key); 4] = [
        ("CREATED_AT", |t| Some(t.created_at.timestamp_micros())),
        ("STARTED_AT", |t| Some(t.started_at.timestamp_micros())),
        ("STEP_COUNT", |t| t.step_count.map(i64::from)),
        ("DURATION_MS", duration_ms),
    ];
    for (field, key) in orders {
        for direction in ["DESC", "ASC"] {
            let mut rows: Vec<_> = kept
                .iter()
                .filter_map(|t| Some((key(t)?, t.id.clone(), t.trace_id.clone())))
                .collect();
            rows.sort();
            if direction == "DESC" {
                rows.reverse();
            }
            let expected: Vec<String> = rows.into_iter().map(|(_, _, id)| id).collect();
            let order = json!({ "field": field, "direction": direction });
            let (ids, total) = walk(&f, &filter, &order, 19).await;
            assert_eq!(ids, expected, "order {field} {direction}");
            assert_eq!(total as usize, expected.len(), "totalCount in {field}");
        }
    }
    let vars = json!({ "filter": filter, "orderBy": { "field": "STEP_COUNT" }, "first": 5 });
    let data = f.app.data(&f.key, PAGE, vars).await;
    let cursor = data["traces"]["pageInfo"]["endCursor"].clone();
    for (order, other_filter) in [
        (json!({ "field": "DURATION_MS" }), filter.clone()),
        (
            json!({ "field": "STEP_COUNT", "direction": "ASC" }),
            filter.clone(),
        ),
        (json!({ "field": "STEP_COUNT" }), json!({})),
    ] {
        let vars = json!({ "filter": other_filter, "orderBy": order, "first": 5, "after": cursor });
        let body = f.app.gql(Some(&f.key), PAGE, vars).await;
        assert_eq!(error_code(&body), "BAD_CURSOR", "{order}");
    }
    f.app.stop().await;
}

const VIEWS: &str = r#"
query Views($filter: TraceFilter, $asOf: DateTime, $fields: [TraceFacetField!]!, $limit: Int) {
  traces(filter: $filter, asOf: $asOf) {
    totalCount
    facets(fields: $fields, limit: $limit) { field values { value count } otherCount missingCount }
    aggregate {
      count
      stepCount { count sum avg min max p50 p95 }
      durationMs { count sum avg min max p50 p95 }
    }
  }
}"#;

fn facet_value(field: &str, t: &aos_traces::Model) -> Option<String> {
    match field {
        "STATUS" => Some(t.status.to_uppercase()),
        "AGENT_ID" => t.agent_id.clone(),
        "IS_SYNTHETIC" => Some(t.is_synthetic.to_string()),
        _ => t.synthetic_scenario_id.clone(),
    }
}

async fn trace_facets_and_aggregates_are_exact(backend: Backend) {
    let f = fixture(backend).await;
    let a = anchor();
    let cases = [
        (json!({}), None, 20),
        (json!({ "statusNotIn": ["RUNNING"] }), None, 2),
        (
            json!({ "createdAfter": iso(a - Duration::hours(30)), "search": "acme" }),
            Some(a - Duration::hours(3)),
            20,
        ),
        (
            json!({ "agentIdIn": ["router"], "stepCount": { "min": 1 } }),
            None,
            1,
        ),
    ];
    let fields = [
        "STATUS",
        "AGENT_ID",
        "IS_SYNTHETIC",
        "SYNTHETIC_SCENARIO_ID",
    ];
    for (filter, as_of, limit) in &cases {
        let rows: Vec<&aos_traces::Model> = f
            .traces
            .iter()
            .filter(|t| keeps(filter, t))
            .filter(|t| as_of.is_none_or(|at| t.created_at <= at))
            .collect();
        assert!(!rows.is_empty(), "{filter}: the case reads no traces");
        let vars =
            json!({ "filter": filter, "asOf": as_of.map(iso), "fields": fields, "limit": limit });
        let data = f.app.data(&f.key, VIEWS, vars).await;
        let connection = &data["traces"];
        assert_eq!(
            connection["totalCount"].as_i64().unwrap() as usize,
            rows.len()
        );
        for (facet, field) in connection["facets"].as_array().unwrap().iter().zip(fields) {
            let mut counts = std::collections::BTreeMap::<String, i64>::new();
            let mut missing = 0;
            for t in &rows {
                match facet_value(field, t) {
                    Some(v) => *counts.entry(v).or_default() += 1,
                    None => missing += 1,
                }
            }
            let mut values: Vec<_> = counts.into_iter().collect();
            values.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
            let rest = values.split_off((*limit as usize).min(values.len()));
            let got: Vec<(String, i64)> = facet["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (v["value"].as_str().unwrap().to_owned(), int(&v["count"])))
                .collect();
            assert_eq!(got, values, "{field} of {filter}");
            let other: i64 = rest.iter().map(|(_, n)| n).sum();
            assert_eq!(
                int(&facet["otherCount"]),
                other,
                "{field} other of {filter}"
            );
            assert_eq!(
                int(&facet["missingCount"]),
                missing,
                "{field} missing of {filter}"
            );
        }
        let aggregate = &connection["aggregate"];
        assert_eq!(int(&aggregate["count"]) as usize, rows.len());
        let steps = brute_stats(
            rows.iter()
                .filter_map(|t| t.step_count.map(i64::from))
                .collect(),
        );
        let durations = brute_stats(rows.iter().filter_map(|t| duration_ms(t)).collect());
        for (name, expected) in [("stepCount", steps), ("durationMs", durations)] {
            assert_stats(&aggregate[name], &expected, &format!("{name} of {filter}"));
        }
    }
    f.app.stop().await;
}

const HISTOGRAM: &str = r#"
query Chart($filter: TraceFilter, $field: TraceTimeField, $interval: HistogramInterval!,
            $from: DateTime!, $to: DateTime!, $tz: String) {
  traces(filter: $filter) {
    histogram(field: $field, interval: $interval, from: $from, to: $to, timeZone: $tz) {
      start end count costCents
    }
  }
}"#;

async fn trace_histograms_are_exact_and_zero_filled(backend: Backend) {
    let f = fixture(backend).await;
    let a = anchor();
    let cases = [
        (
            json!({}),
            "CREATED_AT",
            "HOUR",
            a - Duration::minutes(30 * 60 + 13),
            a + Duration::hours(2),
            None,
        ),
        (
            json!({ "agentIdIn": ["planner"] }),
            "STARTED_AT",
            "DAY",
            a - Duration::days(3),
            a,
            Some("Europe/Berlin"),
        ),
        (
            json!({ "stepCount": { "min": 2 } }),
            "COMPLETED_AT",
            "MINUTE",
            a - Duration::hours(6),
            a,
            None,
        ),
        (
            json!({}),
            "CREATED_AT",
            "HOUR",
            a - Duration::hours(20),
            a,
            Some("Asia/Kolkata"),
        ),
    ];
    for (filter, field, interval, from, to, tz) in &cases {
        let vars = json!({
            "filter": filter, "field": field, "interval": interval,
            "from": iso(*from), "to": iso(*to), "tz": tz,
        });
        let data = f.app.data(&f.key, HISTOGRAM, vars).await;
        let buckets = data["traces"]["histogram"].as_array().expect("buckets");
        let what = format!("{field} {interval} {filter} {tz:?}");
        assert_eq!(time(&buckets[0]["start"]), *from, "{what}");
        assert_eq!(time(&buckets[buckets.len() - 1]["end"]), *to, "{what}");
        let mut total = 0;
        for (i, bucket) in buckets.iter().enumerate() {
            if i > 0 {
                assert_eq!(buckets[i - 1]["end"], bucket["start"], "{what}");
            }
            assert!(bucket["costCents"].is_null(), "traces have no cost");
            let (start, end) = (time(&bucket["start"]), time(&bucket["end"]));
            let inside = f
                .traces
                .iter()
                .filter(|t| keeps(filter, t))
                .filter(|t| {
                    let at = match *field {
                        "STARTED_AT" => Some(t.started_at),
                        "COMPLETED_AT" => t.completed_at,
                        _ => Some(t.created_at),
                    };
                    at.is_some_and(|at| at >= start && at < end)
                })
                .count();
            assert_eq!(int(&bucket["count"]) as usize, inside, "{what} at {start}");
            total += inside;
        }
        assert!(total > 0, "{what}: the case reads no traces");
    }
    f.app.stop().await;
}

const START: &str =
    r#"mutation($id: String!) { startTrace(input: { traceId: $id, runId: $id }) { traceId } }"#;
const STEPS: &str = r#"mutation($id: String!) {
  recordSteps(traceId: $id, steps: [
    { stepIndex: 0, skillName: "s", status: "success", outcomeCategory: "SUCCESS" },
    { stepIndex: 1, skillName: "s", status: "failure", outcomeCategory: "PERMANENT" },
    { stepIndex: 2, skillName: "s", status: "success", outcomeCategory: "SUCCESS" }
  ]) { insertedStepIndexes }
}"#;
const COMPLETE: &str = r#"mutation($id: String!) {
  completeTrace(traceId: $id, status: COMPLETED) { status }
}"#;

async fn sealing_a_trace_fixes_its_step_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let writer = app.key("acme", Role::Ingest).await;
    let reader = app.key("acme", Role::Viewer).await;
    let id = json!({ "id": "sealed-1" });
    app.data(&writer, START, id.clone()).await;
    app.data(&writer, STEPS, id.clone()).await;
    let running = app
        .data(
            &reader,
            r#"{ trace(traceId: "sealed-1") { stepCount durationMs summary { totalSteps } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        running["trace"]["stepCount"],
        Value::Null,
        "running: no step count yet"
    );
    assert_eq!(running["trace"]["durationMs"], Value::Null);
    assert_eq!(running["trace"]["summary"]["totalSteps"], 3);
    app.data(&writer, COMPLETE, id.clone()).await;
    let sealed = app
        .data(
            &reader,
            r#"{ trace(traceId: "sealed-1") { stepCount durationMs } }"#,
            json!({}),
        )
        .await;
    assert_eq!(sealed["trace"]["stepCount"], 3);
    assert!(int(&sealed["trace"]["durationMs"]) >= 0);
    // The count is part of the sealed row: the immutability trigger refuses to change it.
    let refused = app
        .raw("UPDATE aos_traces SET step_count = 4 WHERE trace_id = 'sealed-1'")
        .await;
    assert!(
        refused.is_err(),
        "a sealed trace's step count cannot change"
    );
    let listed = app
        .data(
            &reader,
            r#"{ traces(filter: { stepCount: { min: 3, max: 3 } }) { nodes { traceId } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        listed["traces"]["nodes"],
        json!([{ "traceId": "sealed-1" }])
    );
    app.stop().await;
}

/// A trace row under the schema before `m20261205_030000_trace_console_reads`.
fn old_trace_sql(trace_id: &str, status: &str) -> String {
    format!(
        "INSERT INTO aos_traces (id, trace_id, run_id, correlation_id, tenant_id, schema_version, \
         plan, trace, status, started_at, completed_at, created_at, is_synthetic) VALUES \
         ('id-{trace_id}', '{trace_id}', 'r', 'r', 'acme', '1.1', '[]', '{{}}', '{status}', \
         '2026-11-01T00:00:00+00:00', {completed}, '2026-11-01T00:00:02+00:00', false)",
        // As both backends store times (SQLite: RFC 3339 text with an offset).
        completed = if status == "running" {
            "NULL"
        } else {
            "'2026-11-01T00:00:01.500+00:00'"
        },
    )
}

async fn the_migration_counts_the_steps_of_traces_sealed_before_it(backend: Backend) {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder, Statement};
    let url = crate::support::empty_database_url(backend).await;
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
        .position(|n| n == "m20261205_030000_trace_console_reads")
        .expect("migration registered");
    Migrator::up(&db, Some(before as u32))
        .await
        .expect("up to the one before");
    let exec = |sql: String| {
        let db = db.clone();
        async move {
            db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .expect("old-schema row");
        }
    };
    // Sealed with 3 live steps and an archived one; sealed without steps; running with 2.
    for (trace_id, status) in [("t-1", "completed"), ("t-2", "failed"), ("t-3", "running")] {
        exec(old_trace_sql(trace_id, status)).await;
    }
    for (trace_id, index, archived) in [
        ("t-1", 0, false),
        ("t-1", 1, false),
        ("t-1", 2, false),
        ("t-1", 3, true),
        ("t-3", 0, false),
        ("t-3", 1, false),
    ] {
        exec(format!(
            "INSERT INTO aos_trace_steps (id, trace_id, step_index, skill_id, skill_name, params, \
             status, outcome_category, replay_behavior, timestamp, tenant_id, archived_at) VALUES \
             ('{trace_id}-{index}', '{trace_id}', {index}, 's', 's', '{{}}', 'success', 'SUCCESS', \
             'execute', '2026-11-01T00:00:00Z', 'acme', {})",
            if archived {
                "'2026-11-02T00:00:00Z'"
            } else {
                "NULL"
            }
        ))
        .await;
    }
    Migrator::up(&db, None).await.expect("the rest");
    let rows: Vec<(String, Option<i32>, Option<i64>)> = aos_traces::Entity::find()
        .order_by_asc(aos_traces::Column::TraceId)
        .all(&db)
        .await
        .expect("traces")
        .into_iter()
        .map(|t| (t.trace_id, t.step_count, t.duration_ms))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("t-1".to_owned(), Some(3), Some(1500)),
            ("t-2".to_owned(), Some(0), Some(1500)),
            ("t-3".to_owned(), None, None),
        ]
    );
    // The trigger came back: a sealed trace's count cannot change.
    let changed = db
        .execute_raw(Statement::from_string(
            db.get_database_backend(),
            "UPDATE aos_traces SET step_count = 9 WHERE trace_id = 't-1'".to_owned(),
        ))
        .await;
    assert!(changed.is_err(), "the immutability trigger is back");
    // Down through this migration (and any later one), then up again.
    let ours = (names.len() - before) as u32;
    Migrator::down(&db, Some(ours)).await.expect("down");
    Migrator::up(&db, None).await.expect("up again");
    db.close().await.expect("close");
}

async fn bad_trace_console_arguments_are_bad_user_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let a = anchor();
    for (filter, interval, from) in [
        (json!({ "search": "ab" }), "HOUR", a - Duration::hours(1)),
        (
            json!({ "stepCount": { "min": 5, "max": 4 } }),
            "HOUR",
            a - Duration::hours(1),
        ),
        (json!({ "agentIdIn": [] }), "HOUR", a - Duration::hours(1)),
        (json!({}), "MINUTE", a - Duration::days(30)),
    ] {
        let vars =
            json!({ "filter": filter, "interval": interval, "from": iso(from), "to": iso(a) });
        let body = app.gql(Some(&key), HISTOGRAM, vars).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }
    let vars = json!({ "fields": [], "limit": 5 });
    let body = app.gql(Some(&key), VIEWS, vars).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "no facet fields");
    app.stop().await;
}

crate::cases!(
    trace_filters_agree_with_a_brute_force_reading,
    trace_sorts_page_in_their_order_with_cursors_bound_to_it,
    trace_facets_and_aggregates_are_exact,
    trace_histograms_are_exact_and_zero_filled,
    sealing_a_trace_fixes_its_step_count,
    the_migration_counts_the_steps_of_traces_sealed_before_it,
    bad_trace_console_arguments_are_bad_user_input,
);
