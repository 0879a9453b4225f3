//! Hostile requests that used to kill, stall or confuse the server, each kept as a regression
//! test: a list literal nested ~1 800 deep (a stack overflow in the parser aborted the process,
//! over POST, GET and WebSocket alike), a chain of doubling fragments (minutes of validation
//! CPU), NUL characters in lookup arguments (they reached PostgreSQL: INTERNAL), and variables
//! that are not valid `DateTime`/`BigInt` values (INTERNAL with HTTP 200). After each, the
//! server must still answer.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use logbook::auth::Role;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{error_code, Backend, TestApp};

/// `{ llmRuns(first: [[[…1…]]]) { totalCount } }`, `depth` brackets deep (~4 KB at 1 800).
fn deep_literal(depth: usize) -> String {
    format!(
        "{{ llmRuns(first: {}1{}) {{ totalCount }} }}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// `levels` fragments, each spreading the next twice: 2^levels expansions.
fn fragment_bomb(levels: usize) -> String {
    let mut text = String::from("query { ...F0 }\n");
    for i in 0..levels {
        text.push_str(&format!(
            "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    text.push_str(&format!(
        "fragment F{levels} on Query {{ viewer {{ role }} }}\n"
    ));
    text
}

async fn still_serving(app: &TestApp, key: &str) {
    let data = app.data(key, "{ viewer { role } }", json!({})).await;
    assert_eq!(data["viewer"]["role"], "VIEWER");
}

async fn post(app: &TestApp, key: &str, query: &str, accept: &str) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(key)
        .header("accept", accept)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// The `extensions.code` of a WebSocket answer: an `error` message's payload, or a `next`
/// message's errors (async-graphql answers request errors with `next` + `complete`).
fn ws_code(message: &Value) -> &str {
    let errors = match message["type"].as_str() {
        Some("error") => &message["payload"],
        _ => &message["payload"]["errors"],
    };
    errors[0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {message}"))
}

/// One operation over `graphql-transport-ws`: the first message answering it.
async fn over_websocket(app: &TestApp, key: &str, query: &str) -> Value {
    let url = format!("{}/graphql", app.base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut stream, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send = |message: Value| Message::text(message.to_string());
    stream
        .send(send(json!({
            "type": "connection_init",
            "payload": { "Authorization": format!("Bearer {key}") },
        })))
        .await
        .unwrap();
    stream
        .send(send(json!({
            "id": "1",
            "type": "subscribe",
            "payload": { "query": query },
        })))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("an answer over WebSocket")
            .expect("the socket stays open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            let message: Value = serde_json::from_str(text.as_str()).unwrap();
            if message["id"] == "1" {
                return message;
            }
        }
    }
}

async fn deep_literals_are_refused_on_every_transport(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let deep = deep_literal(1_800);

    let (status, body) = post(&app, &key, &deep, "application/json").await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "{body:#}");
    assert!(body.get("data").is_none());

    let (status, body) = post(&app, &key, &deep, "application/graphql-response+json").await;
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), "QUERY_TOO_DEEP");

    let response = app
        .http
        .get(format!("{}/graphql", app.base))
        .query(&[("query", deep.as_str())])
        .bearer_auth(&key)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "QUERY_TOO_DEEP");

    let message = over_websocket(&app, &key, &deep).await;
    assert_eq!(ws_code(&message), "QUERY_TOO_DEEP", "{message}");

    // Without a key nothing is parsed at all.
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .json(&json!({ "query": deep }))
        .send()
        .await
        .expect("POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    still_serving(&app, &key).await;
    app.stop().await;
}

/// Thirty doubling fragments: 2^30 expansions for a validator that expands them, answered
/// from a linear measure instead. The bound is a liveness check (the old server needed minutes),
/// not a speed target.
async fn fragment_bombs_do_not_stall(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    for levels in [27, 30] {
        let started = std::time::Instant::now();
        let (_, body) = post(&app, &key, &fragment_bomb(levels), "application/json").await;
        assert!(
            matches!(error_code(&body), "QUERY_TOO_DEEP" | "QUERY_TOO_COMPLEX"),
            "{body:#}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "stalled");
    }
    // The same over WebSocket.
    let message = over_websocket(&app, &key, &fragment_bomb(30)).await;
    assert!(
        matches!(ws_code(&message), "QUERY_TOO_DEEP" | "QUERY_TOO_COMPLEX"),
        "{message}"
    );
    still_serving(&app, &key).await;
    app.stop().await;
}

/// A NUL character never reaches the database: the argument is refused at the door.
async fn nul_in_arguments_is_bad_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Admin).await;
    let nul = "run\u{0}1";
    for (query, variables) in [
        (
            "query($v: String!) { llmRun(runId: $v) { id } }",
            json!({ "v": nul }),
        ),
        (
            "query($v: String!) { trace(traceId: $v) { id } }",
            json!({ "v": nul }),
        ),
        (
            "query($v: String!) { traceByRunId(runId: $v) { id } }",
            json!({ "v": nul }),
        ),
        (
            "query($v: ID!) { node(id: $v) { id } }",
            json!({ "v": nul }),
        ),
        (
            "query($v: String!) { signalFeedback(fingerprint: $v) { fingerprint } }",
            json!({ "v": nul }),
        ),
        ("{ llmRun(runId: \"a\\u0000b\") { id } }", json!({})),
        (
            "query($f: LlmRunFilter) { llmRuns(filter: $f) { totalCount } }",
            json!({ "f": { "model": [nul] } }),
        ),
        (
            "mutation($v: String!) { startTrace(input: {traceId: $v}) { traceId } }",
            json!({ "v": nul }),
        ),
    ] {
        let body = app.gql(Some(&key), query, variables).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body:#}");
    }
    app.stop().await;
}

/// A variable that is not a valid scalar is a request error: `BAD_USER_INPUT`, and 400 under
/// `application/graphql-response+json`, with no `data`.
async fn invalid_scalar_variables_are_request_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Admin).await;
    for (query, variables) in [
        (
            "query($at: DateTime) { llmRuns(asOf: $at) { totalCount } }",
            json!({ "at": "yesterday" }),
        ),
        (
            "query($at: DateTime) { llmRuns(asOf: $at) { totalCount } }",
            json!({ "at": 12 }),
        ),
        (
            "mutation($s: BigInt) { startTrace(input: {runId: \"r\", seed: $s}) { traceId } }",
            json!({ "s": "12x" }),
        ),
        (
            "mutation($s: BigInt) { startTrace(input: {runId: \"r\", seed: $s}) { traceId } }",
            json!({ "s": "99999999999999999999" }),
        ),
        ("{ llmRuns(first: 2147483648) { totalCount } }", json!({})),
    ] {
        let response = app
            .http
            .post(format!("{}/graphql", app.base))
            .bearer_auth(&key)
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query} {variables}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
        assert!(body.get("data").is_none(), "{body:#}");
    }
    app.stop().await;
}

crate::cases!(
    deep_literals_are_refused_on_every_transport,
    fragment_bombs_do_not_stall,
    nul_in_arguments_is_bad_input,
    invalid_scalar_variables_are_request_errors,
);
