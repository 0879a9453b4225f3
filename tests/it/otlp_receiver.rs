//! The OTLP/HTTP trace receiver, `POST /v1/traces` (docs/otlp.md), fed by the real Rust
//! OpenTelemetry SDK and its OTLP exporter (HTTP protobuf, and HTTP JSON with gzip): spans come
//! back through GraphQL as a sealed trace with ordered steps, an LLM run record with tokens
//! and cost from the price table, and an exception system record. Retried batches are stored
//! once; late spans of a sealed trace, bad bodies, wrong keys and an exhausted in-flight limit
//! get the OTLP answers. A captured payload of an OpenInference-instrumented OpenAI call
//! (`tests/it/data/`, made by `capture_openinference.py` there) is replayed as OTLP JSON.

use std::collections::HashMap;

use logbook::auth::Role;
use opentelemetry::trace::{Span as _, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use prost::Message;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};

use crate::retention::count;
use crate::support::{Backend, TestApp};

/// What the agent sent: the trace id and the LLM span's id, in hex.
struct Sent {
    trace_id: String,
    llm_span_id: String,
}

/// Runs a small agent on its own thread (the SDK's HTTP client blocks): a root span with three
/// children — a plan step, a GenAI call that records an exception, and a failing tool call —
/// each exported as it ends, so the root arrives last.
fn run_agent(endpoint: String, key: String, protocol: Protocol, gzip: bool) -> Sent {
    std::thread::spawn(move || {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(endpoint)
            .with_headers(HashMap::from([(
                "authorization".to_owned(),
                format!("Bearer {key}"),
            )]));
        if gzip {
            exporter = exporter.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        let exporter = exporter.build().expect("exporter");
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("agent-a").build())
            .build();
        let tracer = provider.tracer("agent");
        let root = tracer.start("agent-run");
        let trace_id = root.span_context().trace_id().to_string();
        let cx = opentelemetry::Context::current_with_span(root);
        let mut plan = tracer.start_with_context("plan", &cx);
        plan.set_attribute(KeyValue::new("plan.steps", 2));
        plan.set_attribute(KeyValue::new("api_key", "sk-should-not-be-stored"));
        plan.end();
        let mut llm = tracer.start_with_context("chat gpt-4o", &cx);
        let llm_span_id = llm.span_context().span_id().to_string();
        llm.set_attribute(KeyValue::new("gen_ai.system", "openai"));
        llm.set_attribute(KeyValue::new("gen_ai.request.model", "gpt-4o-2024-08-06"));
        llm.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", 1000));
        llm.set_attribute(KeyValue::new("gen_ai.usage.output_tokens", 500));
        llm.add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", "RateLimitError"),
                KeyValue::new("exception.message", "retrying for alice@example.com"),
            ],
        );
        llm.end();
        let mut tool = tracer.start_with_context("search", &cx);
        tool.set_attribute(KeyValue::new("tool.name", "search"));
        tool.set_status(Status::error("tool crashed"));
        tool.end();
        cx.span().end();
        provider.shutdown().expect("flush and shut down");
        Sent {
            trace_id,
            llm_span_id,
        }
    })
    .join()
    .expect("agent thread")
}

const READ: &str = r#"query($t: String!, $r: String!) {
  trace(traceId: $t) {
    traceId status agentId rootHash
    steps(first: 10) { nodes { stepIndex skillName status costCents params outcomeData idempotencyKey } }
  }
  llmRun(runId: $r) {
    runId traceId provider model inputTokens outputTokens costCents executionStatus
    trace { traceId }
  }
  systemRecords(first: 20) { nodes { eventType summary correlationId } }
}"#;

async fn sdk_spans_become_a_trace_steps_a_run_and_a_record(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.otlp.prices.insert("gpt-4o".into(), (250.0, 1000.0));
    })
    .await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let endpoint = format!("{}/v1/traces", app.base);
    for (protocol, gzip) in [(Protocol::HttpBinary, false), (Protocol::HttpJson, true)] {
        let sent = run_agent(endpoint.clone(), ingest.clone(), protocol, gzip);
        let run_id = format!("{}-{}", sent.trace_id, sent.llm_span_id);
        let data = app
            .data(&viewer, READ, json!({ "t": sent.trace_id, "r": run_id }))
            .await;
        let trace = &data["trace"];
        // The tool failed, the root span did not: the trace completed.
        assert_eq!(
            trace["status"],
            json!("COMPLETED"),
            "{protocol:?}: {data:#}"
        );
        assert_eq!(trace["agentId"], json!("agent-a"));
        assert!(trace["rootHash"].is_string(), "sealed: {trace:#}");
        let steps = trace["steps"]["nodes"].as_array().expect("steps");
        let names: Vec<&str> = steps
            .iter()
            .map(|s| s["skillName"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["plan", "chat gpt-4o", "search"], "start order");
        assert_eq!(steps[0]["params"]["api_key"], json!("<REDACTED>"));
        assert_eq!(steps[0]["params"]["plan.steps"], json!(2));
        assert_eq!(steps[1]["costCents"], json!(0.75));
        assert_eq!(steps[2]["status"], json!("failure"));
        assert_eq!(
            steps[1]["idempotencyKey"],
            json!(format!("otel:{}:{}", sent.trace_id, sent.llm_span_id))
        );
        let run = &data["llmRun"];
        assert_eq!(
            run,
            &json!({ "runId": run_id, "provider": "openai", "model": "gpt-4o-2024-08-06",
                     "inputTokens": 1000, "outputTokens": 500, "costCents": 1,
                     "executionStatus": "SUCCEEDED", "traceId": sent.trace_id,
                     "trace": { "traceId": sent.trace_id } })
        );
        let records: Vec<&Value> = data["systemRecords"]["nodes"]
            .as_array()
            .expect("records")
            .iter()
            .filter(|r| r["correlationId"] == json!(sent.trace_id))
            .collect();
        assert_eq!(records.len(), 1, "{data:#}");
        assert_eq!(records[0]["eventType"], json!("ERROR"));
        let summary = records[0]["summary"].as_str().expect("summary");
        assert!(summary.contains("RateLimitError"), "{summary}");
        assert!(
            !summary.contains("alice@example.com"),
            "redacted: {summary}"
        );
    }
    app.stop().await;
}

fn span(trace: u8, id: u8, parent: Option<u8>, start_ms: u64, end_ms: u64) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: format!("span-{id}"),
        start_time_unix_nano: 1_760_000_000_000_000_000 + start_ms * 1_000_000,
        end_time_unix_nano: 1_760_000_000_000_000_000 + end_ms * 1_000_000,
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn post(app: &TestApp, key: Option<&str>, body: Vec<u8>) -> (u16, Option<String>, Vec<u8>) {
    let mut request = app
        .http
        .post(format!("{}/v1/traces", app.base))
        .header("content-type", "application/x-protobuf")
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("POST /v1/traces");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (
        status,
        retry_after,
        response.bytes().await.expect("body").to_vec(),
    )
}

fn rejected(body: &[u8]) -> i64 {
    ExportTraceServiceResponse::decode(body)
        .unwrap_or_else(|e| panic!("not a response ({e}): {:?}", String::from_utf8_lossy(body)))
        .partial_success
        .map_or(0, |p| p.rejected_spans)
}

async fn step_count(app: &TestApp, key: &str, trace_id: &str) -> (usize, Value) {
    let data = app
        .data(
            key,
            "query($t: String!) { trace(traceId: $t) { status steps(first: 50) { nodes { stepIndex } } } }",
            json!({ "t": trace_id }),
        )
        .await;
    let n = data["trace"]["steps"]["nodes"]
        .as_array()
        .expect("steps")
        .len();
    (n, data["trace"]["status"].clone())
}

async fn retries_are_stored_once_and_late_spans_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let trace_id = "07".repeat(16);

    // Two children, delivered twice (an exporter's retry): stored once, the trace still open.
    let children = request(vec![
        span(7, 2, Some(1), 10, 20),
        span(7, 3, Some(1), 30, 40),
    ]);
    for _ in 0..2 {
        let (status, _, body) = post(&app, Some(&ingest), children.clone()).await;
        assert_eq!(status, 200, "{:?}", String::from_utf8_lossy(&body));
        assert_eq!(rejected(&body), 0);
    }
    assert_eq!(
        step_count(&app, &viewer, &trace_id).await,
        (2, json!("RUNNING"))
    );
    // The root, ending last, seals it; a retried root changes nothing.
    let root = request(vec![span(7, 1, None, 0, 50)]);
    for _ in 0..2 {
        let (status, _, body) = post(&app, Some(&ingest), root.clone()).await;
        assert_eq!((status, rejected(&body)), (200, 0));
    }
    assert_eq!(
        step_count(&app, &viewer, &trace_id).await,
        (2, json!("COMPLETED"))
    );
    // A late child of the sealed trace is refused in partialSuccess; a span with a zero id
    // next to a good span of another trace is refused alone.
    let mut zero = span(8, 1, None, 0, 5);
    zero.span_id = vec![0; 8];
    let (status, _, body) = post(
        &app,
        Some(&ingest),
        request(vec![
            span(7, 4, Some(1), 60, 70),
            zero,
            span(9, 1, None, 0, 5),
        ]),
    )
    .await;
    assert_eq!((status, rejected(&body)), (200, 2));
    assert_eq!(step_count(&app, &viewer, &trace_id).await.0, 2);
    assert_eq!(
        step_count(&app, &viewer, &"09".repeat(16)).await.1,
        json!("COMPLETED")
    );
    // Spans of an archived trace id are refused; a new trace of the same request is stored.
    app.db()
        .execute_unprepared(&format!(
            "UPDATE aos_traces SET archived_at = '2026-11-02T00:00:00Z' WHERE trace_id = '{}'",
            "09".repeat(16)
        ))
        .await
        .expect("archive trace 09");
    let (status, _, body) = post(
        &app,
        Some(&ingest),
        request(vec![span(9, 2, Some(1), 1, 2), span(10, 1, None, 0, 5)]),
    )
    .await;
    assert_eq!((status, rejected(&body)), (200, 1));
    assert_eq!(
        step_count(&app, &viewer, &"0a".repeat(16)).await.1,
        json!("COMPLETED")
    );

    // Keys and bodies.
    assert_eq!(post(&app, None, root.clone()).await.0, 401);
    assert_eq!(post(&app, Some(&viewer), root.clone()).await.0, 403);
    assert_eq!(
        post(&app, Some(&ingest), b"not protobuf".to_vec()).await.0,
        400
    );
    let other = app.key("other", Role::Viewer).await;
    let leak = app
        .gql(
            Some(&other),
            "query($t: String!) { trace(traceId: $t) { traceId } }",
            json!({ "t": trace_id }),
        )
        .await;
    assert_eq!(crate::support::error_code(&leak), "NOT_FOUND");
    app.stop().await;
}

async fn over_the_in_flight_limit_is_429_with_retry_after(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.otlp.max_in_flight_per_key = 0;
    })
    .await;
    let ingest = app.key("acme", Role::Ingest).await;
    let (status, retry_after, _) =
        post(&app, Some(&ingest), request(vec![span(5, 1, None, 0, 5)])).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("1")));
    app.stop().await;
}

/// A child that ends after the root keeps the trace open when the root arrives; once no span
/// arrives for the quiet period, the trace is sealed, failed as its root span was.
async fn a_quiet_trace_is_sealed_after_the_quiet_period(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.otlp.seal_after = std::time::Duration::from_millis(1500);
    })
    .await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let mut root = span(6, 1, None, 0, 50);
    root.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
        message: "agent gave up".into(),
        code: 2,
    });
    let (status, _, _) = post(
        &app,
        Some(&ingest),
        request(vec![root, span(6, 2, Some(1), 10, 80)]),
    )
    .await;
    assert_eq!(status, 200);
    let trace_id = "06".repeat(16);
    assert_eq!(
        step_count(&app, &viewer, &trace_id).await,
        (1, json!("RUNNING"))
    );
    // A child arriving later restarts the quiet period: the open root's arrival time moves.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let before = chrono::Utc::now().timestamp_millis();
    let (status, _, body) = post(
        &app,
        Some(&ingest),
        request(vec![span(6, 3, Some(1), 20, 90)]),
    )
    .await;
    assert_eq!((status, rejected(&body)), (200, 0));
    let received = app
        .state
        .db
        .query_one_raw(Statement::from_string(
            app.state.db.get_database_backend(),
            "SELECT received_at_ms FROM otlp_root_spans WHERE open",
        ))
        .await
        .expect("select")
        .expect("the open root")
        .try_get::<i64>("", "received_at_ms")
        .expect("received_at_ms");
    assert!(received >= before, "{received} < {before}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, status) = step_count(&app, &viewer, &trace_id).await;
        if status == json!("FAILED") {
            break;
        }
        assert_eq!(status, json!("RUNNING"));
        assert!(
            std::time::Instant::now() < deadline,
            "not sealed within 15 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    app.stop().await;
}

/// Posts like an exporter: a 503 (two SQLite processes contending for the one writer) or a
/// 429 is retried after a pause; anything else is the answer.
async fn deliver(app: &TestApp, key: &str, body: Vec<u8>) -> (u16, Option<String>, Vec<u8>) {
    for _ in 0..100 {
        let answer = post(app, Some(key), body.clone()).await;
        if !matches!(answer.0, 429 | 503) {
            return answer;
        }
        assert_eq!(answer.1.as_deref(), Some("1"), "Retry-After");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("still refused after 100 attempts");
}

/// An exporter retrying at two server processes at once: each span is stored once, and the
/// steps are numbered without a gap or a collision.
async fn concurrent_deliveries_to_two_processes_store_each_span_once(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let second = TestApp::spawn_on(backend, first.database_url(), |_| {}).await;
    let ingest = first.key("acme", Role::Ingest).await;
    let viewer = first.key("acme", Role::Viewer).await;
    let batches: Vec<Vec<u8>> = (0..4u8)
        .map(|b| {
            request(
                (0..5u8)
                    .map(|i| span(4, 10 + b * 5 + i, Some(1), u64::from(b * 5 + i), 100))
                    .collect(),
            )
        })
        .collect();
    let mut sends = Vec::new();
    for round in 0..3 {
        for batch in &batches {
            let app = if round % 2 == 0 { &first } else { &second };
            sends.push(deliver(app, &ingest, batch.clone()));
            let other = if round % 2 == 0 { &second } else { &first };
            sends.push(deliver(other, &ingest, batch.clone()));
        }
    }
    for (status, _, body) in futures_util::future::join_all(sends).await {
        assert_eq!((status, rejected(&body)), (200, 0));
    }
    let data = first
        .data(
            &viewer,
            "query($t: String!) { trace(traceId: $t) { steps(first: 50) { nodes { stepIndex skillName } } } }",
            json!({ "t": "04".repeat(16) }),
        )
        .await;
    let steps = data["trace"]["steps"]["nodes"].as_array().expect("steps");
    let indexes: Vec<i64> = steps
        .iter()
        .map(|s| s["stepIndex"].as_i64().expect("index"))
        .collect();
    assert_eq!(indexes, (0..20).collect::<Vec<i64>>(), "{data:#}");
    let mut names: Vec<&str> = steps
        .iter()
        .map(|s| s["skillName"].as_str().expect("name"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 20, "each span once");
    second.stop().await;
    first.stop().await;
}

/// Moves every `*UnixNano` time of an OTLP JSON document by `shift` nanoseconds, so a captured
/// payload is as recent as the test (its times are strings, as OTLP JSON writes 64-bit ints).
fn shift_times(value: &mut Value, shift: i128) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(t) if key.ends_with("UnixNano") => {
                        let moved = t.parse::<i128>().expect("a time") + shift;
                        *t = moved.to_string();
                    }
                    other => shift_times(other, shift),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| shift_times(v, shift)),
        _ => {}
    }
}

async fn a_captured_openinference_call_is_replayed(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config
            .otlp
            .prices
            .insert("gpt-4o-mini".into(), (100_000.0, 200_000.0));
    })
    .await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let mut payload: Value =
        serde_json::from_str(include_str!("data/openinference_chat.otlp.json")).expect("JSON");
    let root_start: i128 = payload["resourceSpans"][0]["scopeSpans"][1]["spans"][0]
        ["startTimeUnixNano"]
        .as_str()
        .expect("root start")
        .parse()
        .expect("time");
    let now = i128::from(chrono::Utc::now().timestamp_nanos_opt().expect("now"));
    shift_times(&mut payload, now - 60_000_000_000 - root_start);
    let response = app
        .http
        .post(format!("{}/v1/traces", app.base))
        .bearer_auth(&ingest)
        .json(&payload)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = response.json().await.expect("JSON answer");
    assert_eq!(answer.get("partialSuccess"), None, "{answer:#}");

    let trace_id = "dc0410d4fa10720cdd1f131e7b2bcb2a";
    let run_id = format!("{trace_id}-8760636847864003");
    let data = app
        .data(&viewer, READ, json!({ "t": trace_id, "r": run_id }))
        .await;
    assert_eq!(data["trace"]["status"], json!("COMPLETED"), "{data:#}");
    assert_eq!(data["trace"]["agentId"], json!("capital-agent"));
    let steps = data["trace"]["steps"]["nodes"].as_array().expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["skillName"], json!("ChatCompletion"));
    assert_eq!(
        steps[0]["params"]["llm.output_messages.0.message.content"],
        json!("Paris.")
    );
    // 21 input tokens at 100 000 cents and 3 output tokens at 200 000 cents per million.
    assert_eq!(steps[0]["costCents"], json!(2.7));
    assert_eq!(
        data["llmRun"],
        json!({ "runId": run_id, "traceId": trace_id, "provider": "openai",
                "model": "gpt-4o-mini-2024-07-18", "inputTokens": 21, "outputTokens": 3,
                "costCents": 3, "executionStatus": "SUCCEEDED",
                "trace": { "traceId": trace_id } })
    );
    app.stop().await;
}

/// One request holding a single trace of 4 000 spans, every child a GenAI call: more rows than
/// one statement may bind (a step has about 25 columns), so the receiver must split its inserts;
/// then one of 10 000 root spans of one trace, and one of 1 500 traces.
async fn a_trace_larger_than_one_statement_is_stored_whole(backend: Backend) {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue as Kv};
    let app = TestApp::spawn(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    const CHILDREN: u64 = 3_999;
    let attribute = |key: &str, value: any_value::Value| Kv {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
    };
    let mut spans = vec![span(5, 1, None, 0, CHILDREN + 10)];
    for i in 0..CHILDREN {
        let mut child = span(5, 1, Some(1), i, i + 1);
        child.span_id = (i + 2).to_be_bytes().to_vec();
        child.attributes = vec![
            attribute(
                "gen_ai.system",
                any_value::Value::StringValue("openai".into()),
            ),
            attribute(
                "gen_ai.request.model",
                any_value::Value::StringValue("gpt-4o".into()),
            ),
            attribute("gen_ai.usage.input_tokens", any_value::Value::IntValue(3)),
            attribute("gen_ai.usage.output_tokens", any_value::Value::IntValue(2)),
        ];
        spans.push(child);
    }
    let (status, _, body) = post(&app, Some(&ingest), request(spans)).await;
    assert_eq!(status, 200, "{:?}", String::from_utf8_lossy(&body));
    assert_eq!(rejected(&body), 0);
    let trace_id = "05".repeat(16);
    let data = app
        .data(
            &viewer,
            "query($t: String!) {
               trace(traceId: $t) { status stepCount }
               llmRuns(filter: { traceId: $t }, first: 1) { totalCount }
             }",
            json!({ "t": trace_id }),
        )
        .await;
    assert_eq!(data["trace"]["status"], "COMPLETED", "{data:#}");
    assert_eq!(data["trace"]["stepCount"], CHILDREN);
    assert_eq!(data["llmRuns"]["totalCount"], CHILDREN);

    // Root spans too go in by the thousand: 10 000 parentless spans of one trace are more cells
    // than one statement may bind on either database.
    const ROOTS: u64 = 10_000;
    let roots = (0..ROOTS)
        .map(|i| {
            let mut root = span(7, 1, None, i, i + 1);
            root.span_id = (i + 1).to_be_bytes().to_vec();
            root
        })
        .collect();
    let (status, _, body) = post(&app, Some(&ingest), request(roots)).await;
    assert_eq!(status, 200, "{:?}", String::from_utf8_lossy(&body));
    assert_eq!(rejected(&body), 0);
    let stored = count(
        &app,
        &format!("otlp_root_spans WHERE trace_id = '{}'", "07".repeat(16)),
    )
    .await;
    assert_eq!(stored, ROOTS as i64);

    // Many traces in one request: more than one transaction's worth, and more trace rows than
    // one statement may bind on SQLite. Each is stored and sealed.
    const TRACES: u128 = 1_500;
    let singles = (0..TRACES)
        .map(|i| {
            let mut root = span(9, 1, None, 0, 1);
            root.trace_id = (0x1000 + i).to_be_bytes().to_vec();
            root
        })
        .collect();
    let (status, _, body) = post(&app, Some(&ingest), request(singles)).await;
    assert_eq!(status, 200, "{:?}", String::from_utf8_lossy(&body));
    assert_eq!(rejected(&body), 0);
    let sealed = count(&app, "aos_traces WHERE status = 'completed'").await;
    assert_eq!(sealed, 2 + TRACES as i64, "every trace stored and sealed");
    app.stop().await;
}

/// A trace that arrives whole, its root ending last, is sealed on arrival in the same number of
/// statements whatever its size, and leaves no open root for the quiet-period sealer; the
/// traces of one request share their statements, but for one seal `UPDATE` each.
async fn a_whole_trace_is_sealed_on_arrival_in_a_fixed_number_of_statements(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    // The key's first use reads it; the counted requests find it cached.
    let warm = request(vec![span(3, 1, None, 0, 5)]);
    assert_eq!(post(&app, Some(&ingest), warm).await.0, 200);
    let whole = |trace: u8, children: u64| {
        let mut spans = vec![span(trace, 1, None, 0, children + 10)];
        for i in 0..children {
            let mut child = span(trace, 1, Some(1), i, i + 1);
            child.span_id = (i + 2).to_be_bytes().to_vec();
            spans.push(child);
        }
        spans
    };
    let mut counts = Vec::new();
    for traces in [
        vec![(4u8, 3u64)],
        vec![(6, 60)],
        vec![(7, 20), (8, 20), (9, 20)],
    ] {
        let spans = traces.iter().flat_map(|(t, c)| whole(*t, *c)).collect();
        let before = app.state.sql.statements();
        let (status, _, body) = post(&app, Some(&ingest), request(spans)).await;
        assert_eq!((status, rejected(&body)), (200, 0));
        counts.push(app.state.sql.statements() - before);
        for (trace, children) in traces {
            let trace_id = format!("{trace:02x}").repeat(16);
            let (steps, status) = step_count(&app, &viewer, &trace_id).await;
            assert_eq!(
                (steps as u64, status),
                (children.min(50), json!("COMPLETED"))
            );
        }
    }
    assert_eq!(
        counts[0], counts[1],
        "statements grow with the trace: {counts:?}"
    );
    assert!(
        counts[0] <= 7,
        "a whole trace costs {} statements",
        counts[0]
    );
    assert_eq!(
        counts[2],
        counts[0] + 2,
        "three traces in one request share their statements but for the seals: {counts:?}"
    );
    let open = count(&app, "otlp_root_spans WHERE open").await;
    assert_eq!(open, 0, "a root sealed on arrival is stored closed");
    let roots = count(&app, "otlp_root_spans").await;
    assert_eq!(
        roots, 6,
        "one row per trace: its root; child spans are their steps"
    );
    app.stop().await;
}

crate::cases!(
    a_whole_trace_is_sealed_on_arrival_in_a_fixed_number_of_statements,
    a_trace_larger_than_one_statement_is_stored_whole,
    a_captured_openinference_call_is_replayed,
    concurrent_deliveries_to_two_processes_store_each_span_once,
    a_quiet_trace_is_sealed_after_the_quiet_period,
    sdk_spans_become_a_trace_steps_a_run_and_a_record,
    retries_are_stored_once_and_late_spans_refused,
    over_the_in_flight_limit_is_429_with_retry_after,
);
