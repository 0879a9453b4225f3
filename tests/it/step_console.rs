//! `traceSteps`, the tenant's steps across its traces: every filter, the keyset order by step
//! time, facets, aggregates and histograms, compared with a brute-force reading of the same steps, with
//! another tenant's steps (same trace ids, skills and times) in the database throughout; and
//! `TraceStep.trace`, batched.

use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::aos_trace_steps;
use logbook::auth::Role;
use serde_json::{json, Value};

use crate::log_console::{generator, Views, Window};
use crate::run_console::{assert_stats, brute_stats, int, iso, time};
use crate::support::{error_code, fewest_statements, Backend, TestApp};
use crate::traces_reads::{insert_steps, insert_traces, step, trace};

fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap()
}

const SKILLS: [&str; 4] = ["search", "summarize", "call_api", "plan"];
const STATUSES: [(&str, &str, &str); 4] = [
    ("success", "INFO", "SUCCESS"),
    ("retry", "WARN", "TRANSIENT"),
    ("failure", "ERROR", "PERMANENT"),
    ("skipped", "INFO", "SKIPPED"),
];
const SOURCES: [&str; 3] = ["engine", "external", "replay"];

/// Steps of 40 traces of `tenant`, spread over about two days before the anchor.
fn varied_steps(tenant: &str, seed: u64) -> Vec<aos_trace_steps::Model> {
    let mut next = generator(seed);
    let mut steps = Vec::new();
    for t in 0..40 {
        let trace_id = format!("trace-{t:02}");
        let mut at = anchor() - Duration::minutes(70 * t);
        for i in 0..next(9) as i32 {
            at += Duration::seconds(next(300) as i64) + Duration::microseconds(next(999) as i64);
            let (status, level, outcome) = STATUSES[next(4) as usize];
            let mut s = step(&trace_id, i, SKILLS[next(4) as usize], status, at);
            s.id = format!("{tenant}-{trace_id}-s{i}");
            s.tenant_id = tenant.to_owned();
            s.level = level.to_owned();
            s.outcome_category = outcome.to_owned();
            s.source = SOURCES[next(3) as usize].to_owned();
            s.is_synthetic = next(5) == 0;
            s.duration_ms = next(5_000) as f64 + 0.25;
            s.cost_cents = next(40) as f64 / 4.0;
            s.retry_count = next(3) as i32;
            steps.push(s);
        }
    }
    steps
}

struct Fixture {
    app: TestApp,
    key: String,
    steps: Vec<aos_trace_steps::Model>,
}

async fn fixture(backend: Backend) -> Fixture {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    app.key("globex", Role::Viewer).await;
    let traces = |tenant: &str| {
        (0..40)
            .map(|t| {
                let id = format!("trace-{t:02}");
                let mut row = trace(tenant, &id, &format!("{tenant}-run-{t:02}"), anchor());
                row.id = format!("{tenant}-{id}");
                row
            })
            .collect()
    };
    insert_traces(app.db(), traces("acme")).await;
    insert_traces(app.db(), traces("globex")).await;
    let steps = varied_steps("acme", 7);
    insert_steps(app.db(), steps.clone()).await;
    insert_steps(app.db(), varied_steps("globex", 7)).await;
    Fixture { app, key, steps }
}

fn list(filter: &Value, name: &str) -> Option<Vec<String>> {
    filter.get(name).and_then(Value::as_array).map(|values| {
        values
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    })
}

fn keeps(filter: &Value, s: &aos_trace_steps::Model) -> bool {
    let any =
        |name: &str, value: &str| list(filter, name).is_none_or(|l| l.iter().any(|v| v == value));
    let none =
        |name: &str, value: &str| list(filter, name).is_none_or(|l| !l.iter().any(|v| v == value));
    let bound = |name: &str| filter.get(name).map(time);
    let range = |name: &str, value: f64| match filter.get(name) {
        None => true,
        Some(r) => {
            r.get("min").is_none_or(|m| value >= int(m) as f64)
                && r.get("max").is_none_or(|m| value <= int(m) as f64)
        }
    };
    filter
        .get("traceId")
        .is_none_or(|t| t.as_str() == Some(s.trace_id.as_str()))
        && any("level", &s.level)
        && none("levelNotIn", &s.level)
        && any("status", &s.status)
        && none("statusNotIn", &s.status)
        && any("skillName", &s.skill_name)
        && none("skillNameNotIn", &s.skill_name)
        && any("outcomeCategory", &s.outcome_category)
        && none("outcomeCategoryNotIn", &s.outcome_category)
        && any("source", &s.source.to_uppercase())
        && filter
            .get("isSynthetic")
            .is_none_or(|v| v.as_bool() == Some(s.is_synthetic))
        && bound("timestampAfter").is_none_or(|b| s.timestamp >= b)
        && bound("timestampBefore").is_none_or(|b| s.timestamp <= b)
        && range("durationMs", s.duration_ms)
        && range("costCents", s.cost_cents)
        && range("retryCount", f64::from(s.retry_count))
}

/// A page of steps, each read as (trace id, step index).
const PAGE_BY_INDEX: &str = r#"
query Page($filter: TraceStepFilter, $first: Int, $after: String, $last: Int, $before: String) {
  traceSteps(filter: $filter, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { node { traceId stepIndex } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"#;

/// Every page of the list forward, as `traceId#stepIndex`.
async fn walk_steps(f: &Fixture, filter: &Value) -> Vec<String> {
    let (mut keys, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let vars = json!({ "filter": filter, "first": 37, "after": cursor });
        let data = f.app.data(&f.key, PAGE_BY_INDEX, vars).await;
        let connection = &data["traceSteps"];
        for edge in connection["edges"].as_array().expect("edges") {
            let node = &edge["node"];
            keys.push(format!(
                "{}#{}",
                node["traceId"].as_str().unwrap(),
                node["stepIndex"]
            ));
        }
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return keys;
        }
        cursor = connection["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
        assert!(keys.len() <= f.steps.len(), "paging does not terminate");
    }
}

fn expected(f: &Fixture, filter: &Value) -> Vec<String> {
    let mut rows: Vec<_> = f
        .steps
        .iter()
        .filter(|s| keeps(filter, s))
        .map(|s| {
            (
                s.timestamp,
                s.id.clone(),
                format!("{}#{}", s.trace_id, s.step_index),
            )
        })
        .collect();
    rows.sort_by(|x, y| (y.0, &y.1).cmp(&(x.0, &x.1)));
    rows.into_iter().map(|(_, _, key)| key).collect()
}

async fn step_filters_agree_with_a_brute_force_reading(backend: Backend) {
    let f = fixture(backend).await;
    let a = anchor();
    let filters = [
        json!({}),
        json!({ "level": ["ERROR", "WARN"] }),
        json!({ "levelNotIn": ["INFO"], "skillName": ["search", "plan"] }),
        json!({ "statusNotIn": ["success"], "outcomeCategoryNotIn": ["SKIPPED"] }),
        json!({ "outcomeCategory": ["PERMANENT"], "source": ["EXTERNAL", "REPLAY"] }),
        json!({ "skillNameNotIn": ["call_api"], "isSynthetic": true }),
        json!({ "traceId": "trace-07" }),
        json!({ "timestampAfter": iso(a - Duration::hours(20)), "timestampBefore": iso(a - Duration::hours(5)) }),
        json!({ "durationMs": { "min": 1000, "max": 3000 }, "retryCount": { "max": 1 } }),
        json!({ "costCents": { "min": 5 }, "status": ["failure", "retry"] }),
    ];
    for filter in &filters {
        let expected = expected(&f, filter);
        assert!(!expected.is_empty(), "{filter} matches no fixture step");
        assert_eq!(walk_steps(&f, filter).await, expected, "filter {filter}");
        let data = f
            .app
            .data(
                &f.key,
                PAGE_BY_INDEX,
                json!({ "filter": filter, "first": 1 }),
            )
            .await;
        assert_eq!(
            int(&data["traceSteps"]["totalCount"]) as usize,
            expected.len(),
            "totalCount of {filter}"
        );
    }
    // Backward paging meets the same list.
    let filter = json!({ "level": ["ERROR"] });
    let (mut keys, mut cursor) = (Vec::<String>::new(), None::<String>);
    loop {
        let vars = json!({ "filter": filter, "last": 11, "before": cursor });
        let data = f.app.data(&f.key, PAGE_BY_INDEX, vars).await;
        let connection = &data["traceSteps"];
        let mut page: Vec<String> = connection["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}#{}",
                    e["node"]["traceId"].as_str().unwrap(),
                    e["node"]["stepIndex"]
                )
            })
            .collect();
        page.append(&mut keys);
        keys = page;
        if !connection["pageInfo"]["hasPreviousPage"].as_bool().unwrap() {
            break;
        }
        cursor = connection["pageInfo"]["startCursor"]
            .as_str()
            .map(str::to_owned);
        assert!(keys.len() <= f.steps.len(), "paging does not terminate");
    }
    assert_eq!(keys, expected(&f, &filter), "backward");
    f.app.stop().await;
}

const VIEWS: &str = r#"
query Views($filter: TraceStepFilter, $fields: [TraceStepFacetField!]!, $limit: Int,
            $interval: HistogramInterval!, $from: DateTime!, $to: DateTime!, $tz: String) {
  traceSteps(filter: $filter, first: 1) {
    totalCount
    facets(fields: $fields, limit: $limit) { field values { value count } otherCount }
    histogram(interval: $interval, from: $from, to: $to, timeZone: $tz) { start end count }
  }
}"#;

fn facet_value(field: &str, s: &aos_trace_steps::Model) -> String {
    match field {
        "LEVEL" => s.level.clone(),
        "STATUS" => s.status.clone(),
        "SKILL_NAME" => s.skill_name.clone(),
        "OUTCOME_CATEGORY" => s.outcome_category.clone(),
        _ => s.source.to_uppercase(),
    }
}

async fn step_facets_and_histograms_are_exact(backend: Backend) {
    let f = fixture(backend).await;
    let a = anchor();
    let fields = [
        "LEVEL",
        "STATUS",
        "SKILL_NAME",
        "OUTCOME_CATEGORY",
        "SOURCE",
    ];
    let cases = [
        (
            json!({}),
            20,
            "HOUR",
            a - Duration::hours(50),
            a + Duration::hours(1),
            None,
        ),
        (
            json!({ "levelNotIn": ["INFO"] }),
            2,
            "MINUTE",
            a - Duration::hours(12),
            a,
            None,
        ),
        (
            json!({ "skillName": ["search"] }),
            3,
            "DAY",
            a - Duration::days(3),
            a + Duration::days(1),
            Some("Europe/Berlin"),
        ),
    ];
    let views = Views {
        app: &f.app,
        key: &f.key,
        query: VIEWS,
        root: "traceSteps",
        fields: &fields,
    };
    for (filter, limit, interval, from, to, tz) in cases {
        let rows: Vec<&aos_trace_steps::Model> =
            f.steps.iter().filter(|s| keeps(&filter, s)).collect();
        let times: Vec<DateTime<Utc>> = rows.iter().map(|s| s.timestamp).collect();
        let value = |field: &str, s: &aos_trace_steps::Model| Some(facet_value(field, s));
        let window = Window {
            interval,
            from,
            to,
            tz,
            field: None,
        };
        views
            .check(&filter, limit, &window, &rows, value, &times)
            .await;
    }
    let body = f
        .app
        .gql(
            Some(&f.key),
            VIEWS,
            json!({ "filter": { "retryCount": { "min": 3, "max": 1 } }, "fields": ["LEVEL"],
                    "interval": "HOUR", "from": iso(a - Duration::hours(1)), "to": iso(a) }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    f.app.stop().await;
}

const AGGREGATE: &str = r#"
query Aggregate($filter: TraceStepFilter, $asOf: DateTime) {
  traceSteps(filter: $filter, asOf: $asOf, first: 1) {
    totalCount
    aggregate {
      count
      durationMs { count sum avg min max p50 p95 }
      costCents { count sum avg min max p50 p95 }
      retryCount { count sum avg min max p50 p95 }
    }
  }
}"#;

/// Stats of fractional values as the server answers them. The fixture's values are multiples of
/// a quarter, so their sums are exact in doubles and compare equal.
fn brute_fractional(values: Vec<f64>) -> Value {
    let mut sorted = values;
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return json!({ "count": "0", "sum": null, "avg": null, "min": null, "max": null, "p50": null, "p95": null });
    }
    let rank = |p: f64| ((p * n as f64).ceil() as usize).max(1) - 1;
    let sum: f64 = sorted.iter().sum();
    json!({
        "count": n.to_string(),
        "sum": sum,
        "avg": sum / n as f64,
        "min": sorted[0],
        "max": sorted[n - 1],
        "p50": sorted[rank(0.5)],
        "p95": sorted[rank(0.95)],
    })
}

async fn step_aggregates_are_exact(backend: Backend) {
    let f = fixture(backend).await;
    let a = anchor();
    let cases = [
        (json!({}), None),
        (json!({ "level": ["ERROR", "WARN"] }), None),
        (
            json!({ "skillName": ["search"], "durationMs": { "min": 1000 } }),
            Some(a - Duration::hours(10)),
        ),
        (json!({ "traceId": "trace-07" }), None),
        // Nothing matches: every stat but the counts is null.
        (json!({ "traceId": "no-such-trace" }), None),
    ];
    for (filter, as_of) in cases {
        let rows: Vec<&aos_trace_steps::Model> = f
            .steps
            .iter()
            .filter(|s| keeps(&filter, s) && as_of.is_none_or(|at| s.timestamp <= at))
            .collect();
        let vars = json!({ "filter": filter, "asOf": as_of.map(iso) });
        let data = f.app.data(&f.key, AGGREGATE, vars).await;
        let got = &data["traceSteps"]["aggregate"];
        let what = format!("{filter} asOf {as_of:?}");
        assert_eq!(got["count"], json!(rows.len().to_string()), "{what}");
        assert_eq!(
            data["traceSteps"]["totalCount"].as_i64(),
            Some(rows.len() as i64),
            "{what}"
        );
        let durations = rows.iter().map(|s| s.duration_ms).collect();
        let costs = rows.iter().map(|s| s.cost_cents).collect();
        let retries = rows.iter().map(|s| i64::from(s.retry_count)).collect();
        for (name, expected) in [
            ("durationMs", brute_fractional(durations)),
            ("costCents", brute_fractional(costs)),
        ] {
            assert_stats(&got[name], &expected, &format!("{what}: {name}"));
        }
        assert_stats(&got["retryCount"], &brute_stats(retries), &what);
    }
    f.app.stop().await;
}

const WITH_TRACES: &str = r#"
query($first: Int) {
  traceSteps(first: $first, filter: { level: [ERROR] }) {
    nodes { traceId stepIndex trace { traceId runId } }
  }
}"#;

async fn a_step_links_to_its_trace_in_one_batch(backend: Backend) {
    let f = fixture(backend).await;
    let data = f
        .app
        .data(&f.key, WITH_TRACES, json!({ "first": 50 }))
        .await;
    let nodes = data["traceSteps"]["nodes"].as_array().unwrap();
    assert!(nodes.len() > 5);
    for node in nodes {
        assert_eq!(node["trace"]["traceId"], node["traceId"]);
        let run = format!("acme-run-{}", &node["traceId"].as_str().unwrap()[6..]);
        assert_eq!(
            node["trace"]["runId"],
            run.as_str(),
            "acme's trace, not globex's"
        );
    }
    let statements =
        |first: i32| fewest_statements(&f.app, &f.key, WITH_TRACES, json!({ "first": first }));
    let (small, large) = (statements(2).await, statements(50).await);
    assert!(
        large <= small,
        "TraceStep.trace grows with the page: {small} → {large}"
    );
    f.app.stop().await;
}

crate::cases!(
    step_filters_agree_with_a_brute_force_reading,
    step_facets_and_histograms_are_exact,
    step_aggregates_are_exact,
    a_step_links_to_its_trace_in_one_batch,
);
