//! OpenTelemetry traces over OTLP: a real `serve` process with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! pointing at a fake collector (OTLP/HTTP, JSON encoding) sends one trace per request, parented
//! to the caller's `traceparent`: request → operation → resolver → SQL statement. The response's
//! `traceparent` names the request's span, nothing secret is exported, and background upkeep
//! sends no statement spans of its own.

use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config_file::{free_port, post_traced, start_serve, stop, viewer_key, write_config};
use crate::support::{fresh_database_url, Backend};

#[derive(Default)]
struct Collector {
    /// Every span received, with its resource's attributes under `resource`.
    spans: Mutex<Vec<Value>>,
    /// The raw bodies, to look for what must not be there.
    bodies: Mutex<Vec<String>>,
}

async fn receive_traces(
    body: actix_web::web::Bytes,
    collector: actix_web::web::Data<Collector>,
) -> actix_web::HttpResponse {
    let text = String::from_utf8_lossy(&body).into_owned();
    let export: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut spans = collector.spans.lock().expect("lock");
    for resource_spans in export["resourceSpans"].as_array().into_iter().flatten() {
        for scope in resource_spans["scopeSpans"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let mut span = span.clone();
                span["resource"] = resource_spans["resource"]["attributes"].clone();
                spans.push(span);
            }
        }
    }
    collector.bodies.lock().expect("lock").push(text);
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body("{}")
}

fn start_collector(
    collector: actix_web::web::Data<Collector>,
) -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
    crate::support::start_fake_endpoint(move |routes| {
        routes
            .app_data(collector.clone())
            .app_data(actix_web::web::PayloadConfig::new(16 << 20))
            .route("/v1/traces", actix_web::web::post().to(receive_traces));
    })
}

/// An attribute's value as text (string, integer or boolean).
fn attribute(span: &Value, key: &str) -> Option<String> {
    let found = span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?;
    let value = &found["value"];
    value["stringValue"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| value["intValue"].as_str().map(str::to_owned))
        .or_else(|| value["intValue"].as_i64().map(|n| n.to_string()))
        .or_else(|| value["boolValue"].as_bool().map(|b| b.to_string()))
}

fn by_id<'a>(spans: &'a [Value], id: &str) -> Option<&'a Value> {
    spans.iter().find(|s| s["spanId"] == id)
}

/// Whether `ancestor` is on `span`'s parent chain.
fn descends_from(spans: &[Value], span: &Value, ancestor: &Value) -> bool {
    let mut current = span;
    for _ in 0..32 {
        let Some(parent) = current["parentSpanId"].as_str().filter(|p| !p.is_empty()) else {
            return false;
        };
        if parent == ancestor["spanId"] {
            return true;
        }
        match by_id(spans, parent) {
            Some(next) => current = next,
            None => return false,
        }
    }
    false
}

async fn requests_are_traced_over_otlp(backend: Backend) {
    let collector = actix_web::web::Data::new(Collector::default());
    let (addr, collector_handle) = start_collector(collector.clone());
    let url = fresh_database_url(backend).await;
    let key = viewer_key(&url);
    let port = free_port();
    let file = write_config(
        &format!("otel-{}.toml", backend.name()),
        &format!("bind = \"127.0.0.1:{port}\"\n"),
    );
    let endpoint = format!("http://{addr}");
    let (mut server, base) = start_serve(
        &url,
        &file,
        port,
        Stdio::null(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "logbook-under-test"),
        ],
    )
    .await;

    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let (echoed, body) = post_traced(
        &base,
        &key,
        &format!("00-{caller_trace}-{caller_span}-01"),
        None,
        json!({
            "query": "query NewestRuns { llmRuns(first: 5) { totalCount nodes { id } } }",
            "operationName": "NewestRuns",
        }),
    )
    .await;
    assert_eq!(body["data"]["llmRuns"]["totalCount"], 0, "{body:#}");

    // Wait for the request's span (the batch goes out every 100 ms), then stop the server: the
    // spans still queued are flushed on the way out.
    for _ in 0..100 {
        let arrived = collector
            .spans
            .lock()
            .expect("lock")
            .iter()
            .any(|s| s["name"] == "graphql");
        if arrived {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Long enough for the revocation poll and other upkeep to run their statements.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(stop(&mut server).await.success());
    collector_handle.stop(true).await;

    let spans = collector.spans.lock().expect("lock").clone();
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    let request = spans
        .iter()
        .find(|s| s["name"] == "graphql")
        .unwrap_or_else(|| panic!("no request span in {names:?}"));
    assert_eq!(request["traceId"], caller_trace, "{request:#}");
    assert_eq!(request["parentSpanId"], caller_span, "{request:#}");
    assert_eq!(request["kind"], 2, "a server span: {request:#}");
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("200"),
        "{request:#}"
    );
    assert_eq!(
        attribute(request, "request_id").map(|id| id.len()),
        Some(36),
        "the request id (a UUID) is on the span: {request:#}"
    );
    let service = request["resource"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["key"] == "service.name"))
        .map(|a| a["value"]["stringValue"].clone());
    assert_eq!(service, Some(json!("logbook-under-test")), "{request:#}");
    // The echo names this very span.
    let request_span = request["spanId"].as_str().expect("span id");
    assert_eq!(echoed, format!("00-{caller_trace}-{request_span}-01"));

    let operation = spans
        .iter()
        .find(|s| s["name"] == "query NewestRuns")
        .unwrap_or_else(|| panic!("no operation span in {names:?}"));
    assert_eq!(
        operation["parentSpanId"], request["spanId"],
        "{operation:#}"
    );
    assert_eq!(
        attribute(operation, "graphql.operation.type").as_deref(),
        Some("query")
    );
    let resolver = spans
        .iter()
        .find(|s| s["name"] == "Query.llmRuns")
        .unwrap_or_else(|| panic!("no resolver span in {names:?}"));
    assert_eq!(
        resolver["parentSpanId"], operation["spanId"],
        "{resolver:#}"
    );
    assert_eq!(
        attribute(resolver, "graphql.field.path").as_deref(),
        Some("llmRuns")
    );
    // Scalars get no span of their own.
    assert!(
        !names.iter().any(|n| n.ends_with(".totalCount")),
        "{names:?}"
    );

    let system = match backend {
        Backend::Postgres => "postgresql",
        Backend::Sqlite => "sqlite",
    };
    let statements: Vec<&Value> = spans
        .iter()
        .filter(|s| attribute(s, "db.system").as_deref() == Some(system))
        .collect();
    let sql = |s: &Value| attribute(s, "db.statement").unwrap_or_default();
    let listing = statements
        .iter()
        .find(|s| sql(s).contains("llm_run") && descends_from(&spans, s, resolver))
        .unwrap_or_else(|| panic!("no llm_run statement under the resolver in {names:?}"));
    assert_eq!(listing["traceId"], caller_trace);
    assert_eq!(listing["kind"], 3, "a client span: {listing:#}");
    assert!(
        sql(listing).contains('?') || sql(listing).contains('$'),
        "bound parameters, not values: {listing:#}"
    );
    // Background upkeep (the key revocation poll, the export worker) runs outside any request:
    // its statements are not exported as traces of their own.
    for statement in &statements {
        assert!(
            descends_from(&spans, statement, request),
            "a statement span outside the request: {statement:#}"
        );
    }
    // Nothing secret leaves the process: not the key, not a query's text.
    for body in collector.bodies.lock().expect("lock").iter() {
        assert!(!body.contains(&key), "the API key was exported");
        assert!(!body.contains("totalCount"), "the document was exported");
    }
}

/// An exporter that cannot be built as configured stops the process at start, with the reason,
/// instead of serving without the traces its operator asked for.
async fn an_unsupported_protocol_refuses_to_start(_backend: Backend) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logbook"))
        .arg("print-schema")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .output()
        .expect("run logbook");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");
}

crate::cases!(
    requests_are_traced_over_otlp,
    [sqlite] an_unsupported_protocol_refuses_to_start
);
