//! What a console reads of `llmRuns` besides the newest page: filters (ranges, any-of /
//! none-of, search), sorts with their cursors, facets, aggregates and histograms. Every figure
//! is compared with a brute-force reading of the same rows in Rust, and another tenant's runs
//! are in the database throughout so a leak shows as a wrong number.

use chrono::{DateTime, Duration, TimeZone, Utc};
use logbook::auth::Role;
use logbook::runs::{ExecutionStatus, LlmRunSnapshot, RunSource};
use serde_json::{json, Value};

use crate::support::{error_code, insert_runs, Backend, TestApp};

const PROVIDERS: [(&str, &str); 4] = [
    ("anthropic", "Claude-Sonnet-4"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("google", "gemini-2.5-pro"),
];

fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap()
}

/// `n` varied runs of `tenant` spread over about four days before the anchor: irregular gaps
/// (so hours and days are partly filled), every status and source, costs and tokens with ties,
/// some runs still running.
fn varied_runs(tenant: &str, n: usize, seed: u64) -> Vec<LlmRunSnapshot> {
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
            at -= Duration::seconds(next(1_200) as i64) + Duration::microseconds(next(999) as i64);
            let (provider, model) = PROVIDERS[next(4) as usize];
            let running = next(9) == 0;
            let started_at = at - Duration::milliseconds(next(90_000) as i64);
            let input_tokens = next(4_000) as i32;
            let output_tokens = next(1_500) as i32;
            let synthetic = next(5) == 0;
            LlmRunSnapshot {
                id: format!("{tenant}-rec-{i:04}"),
                tenant_id: tenant.to_owned(),
                run_id: format!("{tenant}_run_{i:04}"),
                trace_id: (next(3) > 0).then(|| format!("trace-{}", next(40))),
                provider: provider.to_owned(),
                model: model.to_owned(),
                prompt_hash: None,
                response_hash: None,
                input_tokens,
                output_tokens,
                cost_cents: next(50) as i32,
                execution_status: ExecutionStatus::ALL[next(4) as usize],
                started_at,
                completed_at: (!running).then_some(at),
                source: RunSource::ALL[next(5) as usize],
                is_synthetic: synthetic,
                synthetic_scenario_id: synthetic.then(|| format!("scenario-{}", next(3))),
                created_at: at,
                total_tokens: i64::from(input_tokens) + i64::from(output_tokens),
                duration_ms: logbook::runs::duration_ms(started_at, (!running).then_some(at)),
            }
        })
        .collect()
}

struct Fixture {
    app: TestApp,
    key: String,
    runs: Vec<LlmRunSnapshot>,
}

async fn fixture(backend: Backend) -> Fixture {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    app.key("globex", Role::Viewer).await;
    let runs = varied_runs("acme", 400, 7);
    insert_runs(app.db(), &runs).await;
    // Another tenant's runs, interleaved in time and with the same providers and models.
    insert_runs(app.db(), &varied_runs("globex", 150, 11)).await;
    Fixture { app, key, runs }
}

pub(crate) fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

pub(crate) fn int(value: &Value) -> i64 {
    match value {
        Value::String(s) => s.parse().expect("a BigInt"),
        other => other.as_i64().expect("an integer"),
    }
}

/// The brute-force reading of a filter (the JSON a test sends) over the runs.
fn keeps(filter: &Value, r: &LlmRunSnapshot) -> bool {
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
            .and_then(|v| v.as_str())
            .map(|s| time(&json!(s)))
    };
    let range = |name: &str, value: Option<i64>| match filter.get(name) {
        None => true,
        Some(r) => {
            let Some(v) = value else { return false };
            r.get("min").is_none_or(|m| v >= int(m)) && r.get("max").is_none_or(|m| v <= int(m))
        }
    };
    let status = r.execution_status.as_str().to_owned();
    let source = r.source.as_str().to_owned();
    let search_text = format!(
        "{} {} {} {} {}",
        r.run_id,
        r.model,
        r.provider,
        r.trace_id.clone().unwrap_or_default(),
        r.synthetic_scenario_id.clone().unwrap_or_default()
    )
    .to_lowercase();
    text("traceId").is_none_or(|t| r.trace_id.as_deref() == Some(t))
        && text("provider").is_none_or(|p| r.provider == p)
        && list("providerIn").is_none_or(|l| l.contains(&r.provider))
        && list("providerNotIn").is_none_or(|l| !l.contains(&r.provider))
        && list("modelIn").is_none_or(|l| l.contains(&r.model))
        && list("modelNotIn").is_none_or(|l| !l.contains(&r.model))
        && list("status").is_none_or(|l| l.contains(&status))
        && list("statusNotIn").is_none_or(|l| !l.contains(&status))
        && list("sourceIn").is_none_or(|l| l.contains(&source))
        && list("sourceNotIn").is_none_or(|l| !l.contains(&source))
        && filter
            .get("isSynthetic")
            .is_none_or(|v| v.as_bool() == Some(r.is_synthetic))
        && bound("createdAfter").is_none_or(|t| r.created_at >= t)
        && bound("createdBefore").is_none_or(|t| r.created_at <= t)
        && bound("startedAfter").is_none_or(|t| r.started_at >= t)
        && bound("startedBefore").is_none_or(|t| r.started_at <= t)
        && bound("completedAfter").is_none_or(|t| r.completed_at.is_some_and(|c| c >= t))
        && bound("completedBefore").is_none_or(|t| r.completed_at.is_some_and(|c| c <= t))
        && range("costCents", Some(r.cost_cents.into()))
        && range("inputTokens", Some(r.input_tokens.into()))
        && range("totalTokens", Some(r.total_tokens))
        && range("durationMs", r.duration_ms)
        && text("search").is_none_or(|s| search_text.contains(&s.to_lowercase()))
}

const PAGE: &str = r#"
query Page($filter: LlmRunFilter, $orderBy: LlmRunOrder, $first: Int, $after: String) {
  llmRuns(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    nodes { recordId }
    pageInfo { hasNextPage endCursor }
  }
}"#;

/// Every page of the list, in list order, and the `totalCount` each page reported.
async fn walk(f: &Fixture, filter: &Value, order: &Value, size: i32) -> (Vec<String>, i64) {
    let (mut ids, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let vars = json!({ "filter": filter, "orderBy": order, "first": size, "after": cursor });
        let data = f.app.data(&f.key, PAGE, vars).await;
        let connection = &data["llmRuns"];
        let total = connection["totalCount"].as_i64().expect("count");
        for node in connection["nodes"].as_array().expect("nodes") {
            ids.push(node["recordId"].as_str().unwrap().to_owned());
        }
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return (ids, total);
        }
        cursor = connection["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
        assert!(ids.len() <= f.runs.len(), "paging does not terminate");
    }
}

fn newest_first(runs: &[&LlmRunSnapshot]) -> Vec<String> {
    let mut rows: Vec<_> = runs.iter().map(|r| (r.created_at, r.id.clone())).collect();
    rows.sort_by(|a, b| b.cmp(a));
    rows.into_iter().map(|(_, id)| id).collect()
}

async fn filters_agree_with_a_brute_force_reading(backend: Backend) {
    let f = fixture(backend).await;
    let a = anchor();
    let filters = [
        json!({}),
        json!({ "providerIn": ["openai", "google"], "statusNotIn": ["FAILED"] }),
        json!({ "modelNotIn": ["gpt-4o"], "sourceIn": ["API", "SDK"], "isSynthetic": false }),
        json!({ "sourceNotIn": ["WORKER"], "provider": "openai" }),
        json!({ "costCents": { "min": 10, "max": 20 }, "totalTokens": { "min": "2500" } }),
        json!({ "inputTokens": { "max": 1000 }, "durationMs": { "min": 30000 } }),
        json!({ "startedAfter": iso(a - Duration::hours(30)), "startedBefore": iso(a - Duration::hours(6)) }),
        json!({ "completedAfter": iso(a - Duration::hours(50)) }),
        json!({ "createdAfter": iso(a - Duration::minutes(2000)), "createdBefore": iso(a - Duration::minutes(100)), "status": ["SUCCEEDED", "TIMEOUT"] }),
        json!({ "traceId": "trace-7" }),
        json!({ "search": "GPT-4O-m" }),
        json!({ "search": "run_01" }),
        json!({ "search": "scenario-2", "costCents": { "max": 25 } }),
        json!({ "search": "acme_run_0%" }),
    ];
    for filter in &filters {
        let expected = newest_first(
            &f.runs
                .iter()
                .filter(|r| keeps(filter, r))
                .collect::<Vec<_>>(),
        );
        let (ids, total) = walk(&f, filter, &Value::Null, 37).await;
        assert_eq!(ids, expected, "filter {filter}");
        assert_eq!(total as usize, expected.len(), "totalCount of {filter}");
    }
    // The literal `%` in the last search matches nothing; `_` is literal too.
    let literal = walk(&f, &json!({ "search": "acme_run_0%" }), &Value::Null, 50).await;
    assert_eq!(literal.1, 0);
    let underscore = walk(&f, &json!({ "search": "acme_run" }), &Value::Null, 100).await;
    assert_eq!(underscore.1, 400);
    f.app.stop().await;
}

async fn sorts_page_in_their_order_with_cursors_bound_to_it(backend: Backend) {
    let f = fixture(backend).await;
    let filter = json!({ "providerNotIn": ["google"] });
    let kept: Vec<&LlmRunSnapshot> = f.runs.iter().filter(|r| keeps(&filter, r)).collect();
    type Key = fn(&LlmRunSnapshot) -> Option<i64>;
    let orders: [(&str, Key); 5] = [
        ("CREATED_AT", |r| Some(r.created_at.timestamp_micros())),
        ("STARTED_AT", |r| Some(r.started_at.timestamp_micros())),
        ("COST_CENTS", |r| Some(r.cost_cents.into())),
        ("TOTAL_TOKENS", |r| Some(r.total_tokens)),
        ("DURATION_MS", |r| r.duration_ms),
    ];
    for (field, key) in orders {
        for direction in ["DESC", "ASC"] {
            let mut rows: Vec<_> = kept
                .iter()
                .filter_map(|r| Some((key(r)?, r.id.clone())))
                .collect();
            rows.sort();
            if direction == "DESC" {
                rows.reverse();
            }
            let expected: Vec<String> = rows.into_iter().map(|(_, id)| id).collect();
            let order = json!({ "field": field, "direction": direction });
            let (ids, total) = walk(&f, &filter, &order, 23).await;
            assert_eq!(ids, expected, "order {field} {direction}");
            assert_eq!(
                total as usize,
                expected.len(),
                "totalCount in order {field}"
            );
        }
    }
    // The sort keys are fields of the node too (the plain and the resolver path agree).
    let data = f
        .app
        .data(
            &f.key,
            "{ llmRuns(orderBy: {field: DURATION_MS}, first: 5) { nodes { recordId totalTokens durationMs } } }",
            json!({}),
        )
        .await;
    for node in data["llmRuns"]["nodes"].as_array().unwrap() {
        let run = f.runs.iter().find(|r| r.id == node["recordId"]).unwrap();
        assert_eq!(int(&node["totalTokens"]), run.total_tokens);
        assert_eq!(Some(int(&node["durationMs"])), run.duration_ms);
    }
    // A cursor of one order is refused by another, and by the same order over another filter.
    let vars = json!({ "filter": filter, "orderBy": { "field": "COST_CENTS" }, "first": 5 });
    let data = f.app.data(&f.key, PAGE, vars).await;
    let cursor = data["llmRuns"]["pageInfo"]["endCursor"].clone();
    for (order, other_filter) in [
        (json!({ "field": "TOTAL_TOKENS" }), filter.clone()),
        (
            json!({ "field": "COST_CENTS", "direction": "ASC" }),
            filter.clone(),
        ),
        (json!({ "field": "COST_CENTS" }), json!({})),
    ] {
        let vars = json!({ "filter": other_filter, "orderBy": order, "first": 5, "after": cursor });
        let body = f.app.gql(Some(&f.key), PAGE, vars).await;
        assert_eq!(error_code(&body), "BAD_CURSOR", "{order}");
    }
    f.app.stop().await;
}

const VIEWS: &str = r#"
query Views($filter: LlmRunFilter, $asOf: DateTime, $fields: [LlmRunFacetField!]!, $limit: Int) {
  llmRuns(filter: $filter, asOf: $asOf) {
    totalCount
    facets(fields: $fields, limit: $limit) { field values { value count } otherCount }
    aggregate {
      count
      costCents { count sum avg min max p50 p95 }
      totalTokens { count sum avg min max p50 p95 }
      durationMs { count sum avg min max p50 p95 }
    }
  }
}"#;

fn facet_value(field: &str, r: &LlmRunSnapshot) -> String {
    match field {
        "PROVIDER" => r.provider.clone(),
        "MODEL" => r.model.clone(),
        "EXECUTION_STATUS" => r.execution_status.as_str().to_owned(),
        "SOURCE" => r.source.as_str().to_owned(),
        _ => r.is_synthetic.to_string(),
    }
}

/// The expected facet: values by count descending then value, cut at `limit`.
fn brute_facet(field: &str, rows: &[&LlmRunSnapshot], limit: usize) -> (Vec<(String, i64)>, i64) {
    let mut counts = std::collections::BTreeMap::<String, i64>::new();
    for r in rows {
        *counts.entry(facet_value(field, r)).or_default() += 1;
    }
    let mut values: Vec<_> = counts.into_iter().collect();
    values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let rest = values.split_off(limit.min(values.len()));
    (values, rest.iter().map(|(_, n)| n).sum())
}

pub(crate) fn brute_stats(values: Vec<i64>) -> Value {
    let mut sorted = values;
    sorted.sort();
    let n = sorted.len() as i64;
    if n == 0 {
        return json!({ "count": "0", "sum": null, "avg": null, "min": null, "max": null, "p50": null, "p95": null });
    }
    let rank = |p: f64| ((p * n as f64).ceil() as i64).max(1) as usize - 1;
    let sum: i64 = sorted.iter().sum();
    json!({
        "count": n.to_string(),
        "sum": sum.to_string(),
        "avg": sum as f64 / n as f64,
        "min": sorted[0].to_string(),
        "max": sorted[sorted.len() - 1].to_string(),
        "p50": sorted[rank(0.5)].to_string(),
        "p95": sorted[rank(0.95)].to_string(),
    })
}

pub(crate) fn assert_stats(got: &Value, expected: &Value, what: &str) {
    for name in ["count", "sum", "min", "max", "p50", "p95"] {
        assert_eq!(got[name], expected[name], "{what}.{name}");
    }
    match (got["avg"].as_f64(), expected["avg"].as_f64()) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{what}.avg {a} != {b}"),
        (a, b) => assert_eq!(a, b, "{what}.avg"),
    }
}

async fn facets_and_aggregates_are_exact(backend: Backend) {
    let f = fixture(backend).await;
    let a = anchor();
    // Windows with partial hours at both edges (rollups plus edge rows), whole days, open
    // sides, `asOf`, and filters the rollups cannot answer (rows only).
    let cases = [
        (json!({}), None),
        (
            json!({ "createdAfter": iso(a - Duration::minutes(3 * 1440 + 17)), "createdBefore": iso(a - Duration::minutes(95)) }),
            None,
        ),
        (
            json!({ "createdAfter": iso(a - Duration::hours(36)), "providerIn": ["openai"], "statusNotIn": ["ABORTED"] }),
            Some(a - Duration::minutes(61)),
        ),
        (
            json!({ "createdBefore": iso(a - Duration::minutes(1441)), "isSynthetic": false, "sourceNotIn": ["API"] }),
            None,
        ),
        (
            json!({ "createdAfter": iso(a - Duration::minutes(50)), "createdBefore": iso(a - Duration::minutes(10)) }),
            None,
        ),
        // October and November less the end of November after 10:20 on the 20th (which
        // holds runs): month rows, subtracted days, hours and minutes.
        (
            json!({ "createdAfter": "2026-10-01T00:00:00Z", "createdBefore": "2026-11-20T10:20:00Z", "modelNotIn": ["gpt-4o"] }),
            None,
        ),
        (json!({ "costCents": { "min": 5 }, "search": "gpt" }), None),
        (
            json!({ "durationMs": { "max": 40000 }, "createdAfter": iso(a - Duration::hours(40)) }),
            None,
        ),
    ];
    let fields = [
        "PROVIDER",
        "MODEL",
        "EXECUTION_STATUS",
        "SOURCE",
        "IS_SYNTHETIC",
    ];
    for (filter, as_of) in &cases {
        let rows: Vec<&LlmRunSnapshot> = f
            .runs
            .iter()
            .filter(|r| keeps(filter, r) && as_of.is_none_or(|t| r.created_at <= t))
            .collect();
        let vars =
            json!({ "filter": filter, "asOf": as_of.map(iso), "fields": fields, "limit": 3 });
        let data = f.app.data(&f.key, VIEWS, vars).await;
        let connection = &data["llmRuns"];
        assert_eq!(
            connection["totalCount"].as_i64().unwrap() as usize,
            rows.len()
        );
        for facet in connection["facets"].as_array().unwrap() {
            let field = facet["field"].as_str().unwrap();
            let (values, other) = brute_facet(field, &rows, 3);
            let got: Vec<(String, i64)> = facet["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (v["value"].as_str().unwrap().to_owned(), int(&v["count"])))
                .collect();
            assert_eq!(got, values, "facet {field} of {filter}");
            assert_eq!(
                int(&facet["otherCount"]),
                other,
                "otherCount {field} of {filter}"
            );
        }
        let aggregate = &connection["aggregate"];
        assert_eq!(int(&aggregate["count"]) as usize, rows.len());
        let what = format!("{filter}");
        let cost = brute_stats(rows.iter().map(|r| r.cost_cents.into()).collect());
        assert_stats(&aggregate["costCents"], &cost, &format!("costCents {what}"));
        let tokens = brute_stats(rows.iter().map(|r| r.total_tokens).collect());
        assert_stats(
            &aggregate["totalTokens"],
            &tokens,
            &format!("totalTokens {what}"),
        );
        let durations = brute_stats(rows.iter().filter_map(|r| r.duration_ms).collect());
        assert_stats(
            &aggregate["durationMs"],
            &durations,
            &format!("durationMs {what}"),
        );
    }
    // Asked together, `totalCount` is the facets' sum: one statement for both, no page read.
    let both = r#"query($f: LlmRunFilter) {
        llmRuns(filter: $f) { totalCount facets(fields: [MODEL]) { values { count } } } }"#;
    let window = json!({ "createdAfter": iso(a - Duration::minutes(3 * 1440 + 17)), "createdBefore": iso(a - Duration::minutes(95)) });
    let before = f.app.state.sql.statements();
    let data = f.app.data(&f.key, both, json!({ "f": window })).await;
    assert_eq!(f.app.state.sql.statements() - before, 1, "{data}");
    let facet_sum: i64 = data["llmRuns"]["facets"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| int(&v["count"]))
        .sum();
    let expected = f.runs.iter().filter(|r| keeps(&window, r)).count() as i64;
    assert_eq!(int(&data["llmRuns"]["totalCount"]), expected);
    assert_eq!(facet_sum, expected);
    // Folding the PostgreSQL deltas changes no figure (SQLite keeps one row per key).
    if backend == Backend::Postgres {
        logbook::runs::rollups::compact(f.app.db())
            .await
            .expect("compact");
        let vars = json!({ "filter": {}, "fields": ["MODEL"], "limit": 10 });
        let data = f.app.data(&f.key, VIEWS, vars).await;
        let all: Vec<&LlmRunSnapshot> = f.runs.iter().collect();
        let (values, _) = brute_facet("MODEL", &all, 10);
        let got: Vec<(String, i64)> = data["llmRuns"]["facets"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["value"].as_str().unwrap().to_owned(), int(&v["count"])))
            .collect();
        assert_eq!(got, values, "facets after compaction");
    }
    f.app.stop().await;
}

const HISTOGRAM: &str = r#"
query Histogram($filter: LlmRunFilter, $field: LlmRunTimeField, $interval: HistogramInterval!, $from: DateTime!, $to: DateTime!, $tz: String) {
  llmRuns(filter: $filter) {
    histogram(field: $field, interval: $interval, from: $from, to: $to, timeZone: $tz) {
      start end count costCents
    }
  }
}"#;

async fn histograms_are_exact_and_zero_filled(backend: Backend) {
    let f = fixture(backend).await;
    let a = anchor();
    let cases = [
        // Rollup-backed: UTC hours, a window with partial edge hours.
        (
            json!({}),
            "CREATED_AT",
            "HOUR",
            a - Duration::minutes(30 * 60 + 13),
            a + Duration::hours(2),
            None,
        ),
        // Days in Berlin (hour-aligned boundaries), filtered on rollup keys.
        (
            json!({ "providerIn": ["openai"] }),
            "CREATED_AT",
            "DAY",
            a - Duration::days(5),
            a,
            Some("Europe/Berlin"),
        ),
        // Half-hour zone: read from rows by the minute.
        (
            json!({}),
            "CREATED_AT",
            "HOUR",
            a - Duration::hours(20),
            a,
            Some("Asia/Kolkata"),
        ),
        // Minutes, a filter the rollups cannot answer, another timestamp.
        (
            json!({ "costCents": { "max": 30 } }),
            "STARTED_AT",
            "MINUTE",
            a - Duration::hours(8),
            a - Duration::hours(1),
            None,
        ),
        (
            json!({ "createdAfter": iso(a - Duration::minutes(1500)) }),
            "CREATED_AT",
            "HOUR",
            a - Duration::hours(30),
            a,
            None,
        ),
        (
            json!({}),
            "COMPLETED_AT",
            "DAY",
            a - Duration::days(6),
            a,
            None,
        ),
    ];
    for (filter, field, interval, from, to, tz) in &cases {
        let vars = json!({
            "filter": filter, "field": field, "interval": interval,
            "from": iso(*from), "to": iso(*to), "tz": tz,
        });
        let data = f.app.data(&f.key, HISTOGRAM, vars).await;
        let buckets = data["llmRuns"]["histogram"].as_array().expect("buckets");
        let what = format!("{field} {interval} {filter} {tz:?}");
        // Contiguous from `from` to `to`, one per interval (zero-filled).
        assert_eq!(time(&buckets[0]["start"]), *from, "{what}");
        assert_eq!(time(&buckets[buckets.len() - 1]["end"]), *to, "{what}");
        for pair in buckets.windows(2) {
            assert_eq!(pair[0]["end"], pair[1]["start"], "{what}");
        }
        let mut total = 0;
        for bucket in buckets {
            let (start, end) = (time(&bucket["start"]), time(&bucket["end"]));
            let inside: Vec<&LlmRunSnapshot> = f
                .runs
                .iter()
                .filter(|r| keeps(filter, r))
                .filter(|r| {
                    let at = match *field {
                        "STARTED_AT" => Some(r.started_at),
                        "COMPLETED_AT" => r.completed_at,
                        _ => Some(r.created_at),
                    };
                    at.is_some_and(|t| t >= start && t < end)
                })
                .collect();
            assert_eq!(
                int(&bucket["count"]) as usize,
                inside.len(),
                "{what} at {start}"
            );
            let cost: i64 = inside.iter().map(|r| i64::from(r.cost_cents)).sum();
            assert_eq!(int(&bucket["costCents"]), cost, "{what} cost at {start}");
            total += inside.len();
        }
        assert!(total > 0, "{what}: the case reads no runs");
    }
    f.app.stop().await;
}

async fn bad_console_arguments_are_bad_user_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let a = anchor();
    let bad = [
        (
            json!({ "search": "ab" }),
            "HOUR",
            a - Duration::hours(1),
            None,
        ),
        (
            json!({ "costCents": { "min": 5, "max": 4 } }),
            "HOUR",
            a - Duration::hours(1),
            None,
        ),
        (
            json!({ "providerIn": [] }),
            "HOUR",
            a - Duration::hours(1),
            None,
        ),
        (
            json!({}),
            "HOUR",
            a - Duration::hours(1),
            Some("Mars/Olympus"),
        ),
        (json!({}), "MINUTE", a - Duration::days(30), None),
        (json!({}), "HOUR", a + Duration::hours(1), None),
    ];
    for (filter, interval, from, tz) in bad {
        let vars = json!({
            "filter": filter, "interval": interval, "from": iso(from), "to": iso(a), "tz": tz,
        });
        let body = app.gql(Some(&key), HISTOGRAM, vars).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    }
    for limit in [0, 101] {
        let vars = json!({ "fields": ["MODEL"], "limit": limit });
        let body = app.gql(Some(&key), VIEWS, vars).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "limit {limit}");
    }
    app.stop().await;
}

crate::cases!(
    filters_agree_with_a_brute_force_reading,
    sorts_page_in_their_order_with_cursors_bound_to_it,
    facets_and_aggregates_are_exact,
    histograms_are_exact_and_zero_filled,
    bad_console_arguments_are_bad_user_input,
);
