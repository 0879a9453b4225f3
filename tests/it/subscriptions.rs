//! Subscriptions over WebSocket (`graphql-transport-ws`): live rows arrive in list order exactly
//! once, `after: cursor` replays what was missed and then continues live, filters and tenants
//! apply, events written through another server process arrive (Redis, PostgreSQL
//! LISTEN/NOTIFY, or in-process on SQLite), auth at `connection_init`, the init timeout, and the
//! per-process caps on connections and subscriptions (refused, then released on close).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use logbook::auth::{Role, TenantId};
use logbook::events::Topic;
use logbook::scalars::now;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{fixed_time, insert_runs, make_runs, Backend, TestApp};
use crate::traces_reads::{insert_steps, insert_traces, step, trace};

/// Long enough for a held row (settle delay) plus a missed notification (tick).
const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing more arrives" is watched: one tick plus the settle delay, with margin.
const QUIET: Duration = Duration::from_millis(3500);

pub(crate) const RUNS: &str = r#"
subscription Runs($filter: LlmRunFilter, $after: String) {
  llmRunAdded(filter: $filter, after: $after) { cursor node { recordId provider createdAt } }
}"#;

const LIST: &str = r#"
query List($filter: LlmRunFilter) {
  llmRuns(filter: $filter, first: 100) { edges { cursor node { recordId } } }
}"#;

/// A graphql-transport-ws client.
pub(crate) struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Opens a socket without `connection_init`; `header` goes on the upgrade request. A refused
    /// upgrade gives its status and JSON body.
    pub(crate) async fn open(app: &TestApp, header: Option<&str>) -> Result<Ws, (u16, Value)> {
        let url = format!("{}/graphql", app.base.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        if let Some(key) = header {
            headers.insert("Authorization", format!("Bearer {key}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, response)) => {
                assert_eq!(
                    response.headers()["sec-websocket-protocol"],
                    "graphql-transport-ws"
                );
                Ok(Ws { stream })
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response.body().clone().unwrap_or_default();
                Err((
                    response.status().as_u16(),
                    serde_json::from_slice(&body).unwrap_or(Value::Null),
                ))
            }
            Err(e) => panic!("websocket connect failed: {e}"),
        }
    }

    /// Connects and completes `connection_init`; `header` goes on the upgrade request.
    pub(crate) async fn connect(app: &TestApp, init: Value, header: Option<&str>) -> Ws {
        let mut ws = Ws::open(app, header).await.expect("upgrade");
        ws.send(json!({ "type": "connection_init", "payload": init }))
            .await;
        let ack = ws.message(WAIT).await.expect("connection_ack");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        ws
    }

    /// Sends `connection_init` with `key` (if any) in its payload.
    pub(crate) async fn init(&mut self, key: Option<&str>) {
        let payload = match key {
            Some(key) => json!({ "Authorization": format!("Bearer {key}") }),
            None => json!({}),
        };
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
    }

    /// The close code the server ends the socket with; a protocol message before it fails.
    pub(crate) async fn close_code(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("the server closes the socket");
            match frame {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) => panic!("closed without a code"),
                Some(Ok(Message::Text(text))) => panic!("expected a close, got {text}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("websocket error before the close frame: {e}"),
                None => panic!("the socket ended without a close frame"),
            }
        }
    }

    /// A `ping`/`pong` round trip: the server has handled every message sent before it (a
    /// refused `subscribe` answers with its `error` before the `pong`).
    pub(crate) async fn sync(&mut self) {
        self.send(json!({ "type": "ping" })).await;
        let pong = self.message(WAIT).await.expect("pong");
        assert_eq!(pong["type"], "pong", "{pong}");
    }

    /// Closes the socket with a close frame (the clean way).
    pub(crate) async fn close(mut self) {
        let _ = self.stream.close(None).await;
        while let Ok(Some(Ok(_))) =
            tokio::time::timeout(Duration::from_secs(2), self.stream.next()).await
        {}
    }

    /// Connects with the key in the `connection_init` payload.
    pub(crate) async fn with_key(app: &TestApp, key: &str) -> Ws {
        Ws::connect(
            app,
            json!({ "Authorization": format!("Bearer {key}") }),
            None,
        )
        .await
    }

    pub(crate) async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    pub(crate) async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({
            "id": id,
            "type": "subscribe",
            "payload": { "query": query, "variables": variables },
        }))
        .await;
    }

    /// The next protocol message within `wait` (answering pings on the way).
    pub(crate) async fn message(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(text.as_str()).unwrap();
                    match message["type"].as_str() {
                        Some("ping") => self.send(json!({ "type": "pong" })).await,
                        // Sent after a failed subscription's error; nothing to check.
                        Some("complete") => {}
                        _ => return Some(message),
                    }
                }
                Some(Ok(Message::Ping(_))) => {
                    let _ = self.stream.flush().await;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("websocket error: {e}"),
                None => return None,
            }
        }
    }

    /// The payloads of the next `n` `next` messages of subscription `id`, failing on an error.
    pub(crate) async fn take(&mut self, id: &str, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            let message = self
                .message(WAIT)
                .await
                .unwrap_or_else(|| panic!("only {} of {n} events arrived: {out:#?}", out.len()));
            assert_eq!(message["id"], id, "{message}");
            assert_eq!(message["type"], "next", "{message}");
            assert!(
                message["payload"].get("errors").is_none(),
                "unexpected errors: {message}"
            );
            out.push(message["payload"]["data"].clone());
        }
        out
    }

    /// Asserts no further message arrives for a while (nothing is delivered twice or late).
    pub(crate) async fn quiet(&mut self) {
        if let Some(message) = self.message(QUIET).await {
            panic!("unexpected message: {message}");
        }
    }

    /// The first error code sent for subscription `id` (as a `next` with errors or an `error`).
    pub(crate) async fn error_code(&mut self, id: &str) -> String {
        let message = self.message(WAIT).await.expect("an error message");
        assert_eq!(message["id"], id, "{message}");
        let errors = match message["type"].as_str() {
            Some("next") => message["payload"]["errors"].clone(),
            Some("error") => message["payload"].clone(),
            _ => panic!("expected an error: {message}"),
        };
        errors[0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code: {message}"))
            .to_owned()
    }
}

fn run_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e["llmRunAdded"]["node"]["recordId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Record ids in the live tail's order: `(created_at, id)` ascending.
fn tail_order(runs: &[logbook::runs::LlmRunSnapshot]) -> Vec<String> {
    let mut keyed: Vec<_> = runs.iter().map(|r| (r.created_at, r.id.clone())).collect();
    keyed.sort();
    keyed.into_iter().map(|(_, id)| id).collect()
}

async fn publish_runs(app: &TestApp, tenant: &str) {
    app.state
        .events
        .publish(Topic::LlmRuns, &TenantId::trusted(tenant))
        .await;
}

async fn runs_arrive_in_order_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    // Rows recorded before the subscription starts are not live events.
    insert_runs(app.db(), &make_runs("acme", "old", 3, fixed_time())).await;

    let mut ws = Ws::with_key(&app, &key).await;
    ws.subscribe("1", RUNS, json!({})).await;
    // Let the subscription take its starting position.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Six rows, two pairs sharing a timestamp (the id breaks the tie), the newest just now.
    // (Each batch is newer than everything before it: a row older than one already delivered
    // is the late-commit case the settle delay covers only for a second.)
    let first = make_runs("acme", "a", 6, now() - chrono::Duration::seconds(10));
    insert_runs(app.db(), &first).await;
    publish_runs(&app, "acme").await;
    let events = ws.take("1", 6).await;
    assert_eq!(run_ids(&events), tail_order(&first));

    let second = make_runs("acme", "b", 4, now());
    insert_runs(app.db(), &second).await;
    publish_runs(&app, "acme").await;
    let events = ws.take("1", 4).await;
    assert_eq!(run_ids(&events), tail_order(&second));
    ws.quiet().await;
}

async fn after_cursor_replays_then_continues(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let missed = make_runs("acme", "m", 5, now() - chrono::Duration::seconds(30));
    insert_runs(app.db(), &missed).await;
    let order = tail_order(&missed);

    // The list's cursor of the second-oldest row: the three newer rows were "missed".
    let list = app.data(&key, LIST, json!({})).await;
    let edges = list["llmRuns"]["edges"].as_array().unwrap().clone();
    let cursor_of =
        |id: &str| edges.iter().find(|e| e["node"]["recordId"] == id).unwrap()["cursor"].clone();
    let mut ws = Ws::with_key(&app, &key).await;
    ws.subscribe("r", RUNS, json!({ "after": cursor_of(&order[1]) }))
        .await;
    let replayed = ws.take("r", 3).await;
    assert_eq!(run_ids(&replayed), order[2..].to_vec());

    // Then live, with no duplicate of the replayed rows.
    let live = make_runs("acme", "l", 2, now());
    insert_runs(app.db(), &live).await;
    publish_runs(&app, "acme").await;
    let events = ws.take("r", 2).await;
    let live_order = tail_order(&live);
    assert_eq!(run_ids(&events), live_order);
    ws.quiet().await;

    // An event's own cursor resumes right after that event.
    let resume = events[0]["llmRunAdded"]["cursor"].clone();
    let mut again = Ws::with_key(&app, &key).await;
    again.subscribe("s", RUNS, json!({ "after": resume })).await;
    assert_eq!(run_ids(&again.take("s", 1).await), live_order[1..].to_vec());
    again.quiet().await;

    // A cursor of another filter, or garbage, is BAD_CURSOR.
    let mut bad = Ws::with_key(&app, &key).await;
    bad.subscribe(
        "x",
        RUNS,
        json!({ "filter": { "provider": "openai" }, "after": resume }),
    )
    .await;
    assert_eq!(bad.error_code("x").await, "BAD_CURSOR");
    bad.subscribe("y", RUNS, json!({ "after": "garbage" }))
        .await;
    assert_eq!(bad.error_code("y").await, "BAD_CURSOR");
}

async fn filters_and_tenants_apply(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let acme = app.key("acme", Role::Viewer).await;
    let other = app.key("other", Role::Viewer).await;
    let mut ws = Ws::with_key(&app, &acme).await;
    ws.subscribe("f", RUNS, json!({ "filter": { "provider": "anthropic" } }))
        .await;
    ws.subscribe("all", RUNS, json!({})).await;
    let mut theirs = Ws::with_key(&app, &other).await;
    theirs.subscribe("t", RUNS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // make_runs alternates anthropic / openai.
    let mine = make_runs("acme", "mine", 4, now());
    let foreign = make_runs("other", "foreign", 2, now());
    insert_runs(app.db(), &mine).await;
    insert_runs(app.db(), &foreign).await;
    publish_runs(&app, "acme").await;
    publish_runs(&app, "other").await;

    // Per subscription: what matches, in order. Messages of the two acme subscriptions
    // interleave on one socket, so sort them out by id.
    let mut by_id: std::collections::HashMap<String, Vec<Value>> = Default::default();
    for _ in 0..6 {
        let message = ws.message(WAIT).await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        by_id
            .entry(message["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(message["payload"]["data"].clone());
    }
    let anthropic: Vec<_> = mine
        .iter()
        .filter(|r| r.provider == "anthropic")
        .cloned()
        .collect();
    assert_eq!(run_ids(&by_id["f"]), tail_order(&anthropic));
    assert_eq!(run_ids(&by_id["all"]), tail_order(&mine));
    ws.quiet().await;

    assert_eq!(run_ids(&theirs.take("t", 2).await), tail_order(&foreign));
    theirs.quiet().await;
}

/// Subscribe on one server, write through another sharing the database: PostgreSQL with Redis,
/// PostgreSQL alone (LISTEN/NOTIFY). SQLite has no cross-process bus (one process should serve
/// an embedded file): there the second server's write reaches the first on its periodic tick.
async fn events_cross_server_processes(backend: Backend) {
    let configs: Vec<fn(&mut logbook::config::Config)> = match backend {
        Backend::Postgres => vec![|_| {}, |c| c.redis_url = None],
        Backend::Sqlite => vec![|_| {}],
    };
    for adjust in configs {
        let first = TestApp::spawn_with(backend, adjust).await;
        let second = TestApp::spawn_on(backend, first.database_url(), adjust).await;
        let viewer = first.key("acme", Role::Viewer).await;
        let ingest = second.key("acme", Role::Ingest).await;
        let mut ws = Ws::with_key(&first, &viewer).await;
        ws.subscribe("1", RUNS, json!({})).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let heard_before = first.state.events.heard();

        let recorded = second
            .data(
                &ingest,
                r#"mutation($input: RecordLlmRunInput!) {
                     recordLlmRun(input: $input) { recordId }
                   }"#,
                json!({ "input": {
                    "runId": "run-x", "model": "claude-sonnet", "executionStatus": "SUCCEEDED",
                    "startedAt": now().to_rfc3339(),
                }}),
            )
            .await;
        let started = Instant::now();
        let events = ws.take("1", 1).await;
        assert_eq!(
            events[0]["llmRunAdded"]["node"]["recordId"],
            recorded["recordLlmRun"]["recordId"]
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        if backend == Backend::Postgres {
            // The wake-up came over the shared bus, not from a tick.
            assert!(
                first.state.events.heard() > heard_before,
                "the first server heard no notification"
            );
        }
        ws.quiet().await;
    }
}

async fn system_records_and_steps_arrive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let outsider = app.key("other", Role::Viewer).await;
    let start = now() - chrono::Duration::minutes(5);
    insert_traces(app.db(), vec![trace("acme", "tr-1", "run-1", start)]).await;
    insert_steps(
        app.db(),
        (0..3)
            .map(|i| step("tr-1", i, "s", "success", start))
            .collect(),
    )
    .await;

    let mut ws = Ws::with_key(&app, &key).await;
    ws.subscribe(
        "sys",
        r#"subscription { systemRecordAdded(filter: { severity: [WARN] }) {
             cursor node { summary severity } } }"#,
        json!({}),
    )
    .await;
    ws.subscribe(
        "steps",
        r#"subscription($t: String!, $after: String) { traceStepAdded(traceId: $t, after: $after) {
             cursor node { stepIndex } } }"#,
        json!({ "t": "tr-1" }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let record = |severity: &str, summary: &str| {
        json!({ "input": {
            "component": "WORKER", "eventType": "ERROR", "severity": severity, "summary": summary,
        }})
    };
    let mutation = r#"mutation($input: RecordSystemRecordInput!) {
        recordSystemRecord(input: $input) { summary } }"#;
    app.data(&ingest, mutation, record("INFO", "ignored")).await;
    app.data(&ingest, mutation, record("WARN", "disk low"))
        .await;
    insert_steps(
        app.db(),
        (3..5)
            .map(|i| step("tr-1", i, "s", "success", start))
            .collect(),
    )
    .await;
    app.state
        .events
        .publish(Topic::TraceSteps, &TenantId::trusted("acme"))
        .await;

    let mut sys = Vec::new();
    let mut steps = Vec::new();
    for _ in 0..3 {
        let message = ws.message(WAIT).await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        let data = message["payload"]["data"].clone();
        match message["id"].as_str() {
            Some("sys") => sys.push(data["systemRecordAdded"]["node"]["summary"].clone()),
            Some("steps") => steps.push(data["traceStepAdded"].clone()),
            _ => panic!("{message}"),
        }
    }
    assert_eq!(sys, vec![json!("disk low")]);
    let indexes: Vec<_> = steps
        .iter()
        .map(|s| s["node"]["stepIndex"].clone())
        .collect();
    assert_eq!(indexes, vec![json!(3), json!(4)]);
    ws.quiet().await;

    // Resume after step 3: step 4 again, then nothing.
    ws.subscribe(
        "again",
        r#"subscription($t: String!, $after: String) { traceStepAdded(traceId: $t, after: $after) {
             node { stepIndex } } }"#,
        json!({ "t": "tr-1", "after": steps[0]["cursor"] }),
    )
    .await;
    let resumed = ws.take("again", 1).await;
    assert_eq!(resumed[0]["traceStepAdded"]["node"]["stepIndex"], 4);

    // Another tenant's trace is NOT_FOUND.
    let mut theirs = Ws::with_key(&app, &outsider).await;
    theirs
        .subscribe(
            "t",
            r#"subscription { traceStepAdded(traceId: "tr-1") { cursor } }"#,
            json!({}),
        )
        .await;
    assert_eq!(theirs.error_code("t").await, "NOT_FOUND");
}

/// The lifecycle tails: traces started and ended through the API, mismatches reported, cost
/// anomalies detected (written directly, then announced), each in order and exactly once,
/// filtered, resumable from a cursor, and never another tenant's.
async fn lifecycle_tails_arrive(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let theirs = app.key("other", Role::Ingest).await;
    let mut ws = Ws::with_key(&app, &key).await;
    ws.subscribe(
        "started",
        r#"subscription { traceStarted(filter: { agentIdNotIn: ["skip"] }) {
             cursor node { traceId status } } }"#,
        json!({}),
    )
    .await;
    ws.subscribe(
        "ended",
        "subscription { traceEnded { cursor node { traceId status stepCount } } }",
        json!({}),
    )
    .await;
    ws.subscribe(
        "mismatch",
        r#"subscription { traceMismatchReported(filter: { reasonNotIn: ["noise"] }) {
             cursor node { traceId reason trace { traceId } } } }"#,
        json!({}),
    )
    .await;
    ws.subscribe(
        "anomaly",
        "subscription { costAnomalyDetected { cursor node { message } } }",
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let start = r#"mutation($id: String!, $agent: String) {
        startTrace(input: { traceId: $id, runId: $id, agentId: $agent }) { traceId } }"#;
    let complete =
        r#"mutation($id: String!) { completeTrace(traceId: $id, status: COMPLETED) { status } }"#;
    let abort = r#"mutation($id: String!) { abortTrace(traceId: $id, reason: "stop") { status } }"#;
    let report = r#"mutation($id: String!, $reason: String!) {
        reportMismatch(input: { traceId: $id, reason: $reason }) { mismatchId } }"#;
    for (id, agent) in [("t-1", "a"), ("t-skip", "skip"), ("t-2", "a")] {
        app.data(&ingest, start, json!({ "id": id, "agent": agent }))
            .await;
    }
    app.data(&theirs, start, json!({ "id": "t-theirs", "agent": "a" }))
        .await;
    app.data(&ingest, complete, json!({ "id": "t-1" })).await;
    app.data(&ingest, abort, json!({ "id": "t-2" })).await;
    app.data(&theirs, complete, json!({ "id": "t-theirs" }))
        .await;
    app.data(&ingest, report, json!({ "id": "t-1", "reason": "noise" }))
        .await;
    app.data(
        &ingest,
        report,
        json!({ "id": "t-1", "reason": "hash_mismatch" }),
    )
    .await;
    app.data(
        &theirs,
        report,
        json!({ "id": "t-theirs", "reason": "hash_mismatch" }),
    )
    .await;
    for (tenant, id) in [("acme", "an-1"), ("other", "an-theirs")] {
        crate::incidents::anomaly(&app, tenant, id, "inc-1", now()).await;
        app.state
            .events
            .publish(Topic::CostAnomalies, &TenantId::trusted(tenant))
            .await;
    }

    let mut by_id: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for _ in 0..(2 + 2 + 1 + 1) {
        let message = ws.message(WAIT).await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        let id = message["id"].as_str().unwrap().to_owned();
        by_id
            .entry(id)
            .or_default()
            .push(message["payload"]["data"].clone());
    }
    let field = |id: &str, root: &str, f: &str| -> Vec<Value> {
        by_id[id]
            .iter()
            .map(|d| d[root]["node"][f].clone())
            .collect()
    };
    assert_eq!(
        field("started", "traceStarted", "traceId"),
        [json!("t-1"), json!("t-2")]
    );
    assert_eq!(
        field("ended", "traceEnded", "traceId"),
        [json!("t-1"), json!("t-2")]
    );
    assert_eq!(
        field("ended", "traceEnded", "status"),
        [json!("COMPLETED"), json!("ABORTED")]
    );
    assert_eq!(
        field("mismatch", "traceMismatchReported", "reason"),
        [json!("hash_mismatch")]
    );
    assert_eq!(
        by_id["mismatch"][0]["traceMismatchReported"]["node"]["trace"]["traceId"],
        "t-1"
    );
    assert_eq!(
        field("anomaly", "costAnomalyDetected", "message"),
        [json!("acme spike an-1")]
    );
    ws.quiet().await;

    // Resuming the ended tail after the first end gives the second again, then nothing.
    ws.subscribe(
        "again",
        r#"subscription($after: String) { traceEnded(after: $after) { node { traceId } } }"#,
        json!({ "after": by_id["ended"][0]["traceEnded"]["cursor"] }),
    )
    .await;
    let resumed = ws.take("again", 1).await;
    assert_eq!(resumed[0]["traceEnded"]["node"]["traceId"], "t-2");
    ws.quiet().await;
}

/// `traceMismatchResolved` delivers each of the tenant's resolutions once, in resolution order,
/// never another tenant's, and resumes after an event's cursor.
async fn mismatch_resolutions_arrive_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let ops = [
        app.key("acme", Role::Operator).await,
        app.key("other", Role::Operator).await,
    ];
    let tail = r#"subscription($after: String) {
        traceMismatchResolved(filter: { reasonNotIn: ["noise"] }, after: $after) {
          cursor node { mismatchId reason resolvedBy resolutionNote } } }"#;
    let mut ws = Ws::with_key(&app, &key).await;
    ws.subscribe("resolved", tail, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let start =
        r#"mutation($id: String!) { startTrace(input: { traceId: $id, runId: $id }) { traceId } }"#;
    let report = r#"mutation($id: String!, $reason: String!) {
        reportMismatch(input: { traceId: $id, reason: $reason }) { mismatchId } }"#;
    let resolve =
        r#"mutation($id: ID!, $note: String) { resolveMismatch(id: $id, note: $note) { status } }"#;
    let mut ids: Vec<Vec<String>> = Vec::new();
    for tenant in ["acme", "other"] {
        let k = &app.key(tenant, Role::Ingest).await;
        app.data(k, start, json!({ "id": "t-1" })).await;
        let mut mine = Vec::new();
        for reason in ["hash_mismatch", "noise", "missing_step"] {
            let d = app
                .data(k, report, json!({ "id": "t-1", "reason": reason }))
                .await;
            mine.push(
                d["reportMismatch"]["mismatchId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        ids.push(mine);
    }
    // acme resolves its third, then its first and second (noise: filtered out); other resolves
    // all of its own.
    for i in [2, 0, 1] {
        app.data(
            &ops[0],
            resolve,
            json!({ "id": ids[0][i], "note": format!("fixed {i}") }),
        )
        .await;
        app.data(&ops[1], resolve, json!({ "id": ids[1][i] })).await;
    }
    let events = ws.take("resolved", 2).await;
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            let n = &e["traceMismatchResolved"]["node"];
            (
                n["mismatchId"].as_str().unwrap(),
                n["resolutionNote"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (ids[0][2].as_str(), "fixed 2"),
            (ids[0][0].as_str(), "fixed 0")
        ]
    );
    ws.quiet().await;

    // Resolving again is refused and delivers nothing more.
    let again = app
        .gql(Some(&ops[0]), resolve, json!({ "id": ids[0][2] }))
        .await;
    assert_eq!(
        crate::support::error_code(&again),
        "INVALID_TRANSITION",
        "{again}"
    );
    ws.quiet().await;

    // An event's cursor resumes after it.
    let mut resumed = Ws::with_key(&app, &key).await;
    let after = events[0]["traceMismatchResolved"]["cursor"].clone();
    resumed
        .subscribe("r", tail, json!({ "after": after }))
        .await;
    let next = resumed.take("r", 1).await;
    assert_eq!(
        next[0]["traceMismatchResolved"]["node"]["mismatchId"],
        ids[0][0]
    );
    resumed.quiet().await;
}

const ACTIVITY: &str = r#"
subscription Activity($filter: ActivityFilter, $after: String) {
  activityAdded(filter: $filter, after: $after) {
    cursor node { kind at subject { ... on LlmRun { runId } ... on Trace { traceId } } }
  }
}"#;

/// (kind, run or trace id) of `activityAdded` events.
fn activity_items(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            let node = &e["activityAdded"]["node"];
            let subject = &node["subject"];
            let id = subject["runId"].as_str().or(subject["traceId"].as_str());
            (
                node["kind"].as_str().unwrap().to_owned(),
                id.unwrap().to_owned(),
            )
        })
        .collect()
}

/// `activityAdded` merges the runs and trace starts and ends of its filter, in feed order,
/// never another tenant's; its cursors are the `activity` list's, both ways.
async fn activity_tail_merges_its_parts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let theirs = app.key("other", Role::Ingest).await;
    let filter = json!({ "kinds": ["LLM_RUN", "TRACE_STARTED", "TRACE_ENDED"] });
    let mut ws = Ws::with_key(&app, &key).await;
    ws.subscribe("live", ACTIVITY, json!({ "filter": filter }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let start = r#"mutation($id: String!) {
        startTrace(input: { traceId: $id, runId: $id }) { traceId } }"#;
    let complete =
        r#"mutation($id: String!) { completeTrace(traceId: $id, status: COMPLETED) { status } }"#;
    let record = r#"mutation($id: String!) { recordLlmRun(input: { runId: $id, provider: "openai",
        model: "gpt-4o", executionStatus: SUCCEEDED, startedAt: "2026-11-01T00:00:00Z",
        source: WORKER }) { recordId } }"#;
    for k in [&ingest, &theirs] {
        app.data(k, start, json!({ "id": "t-1" })).await;
        app.data(k, record, json!({ "id": "r-1" })).await;
        app.data(k, complete, json!({ "id": "t-1" })).await;
    }
    let events = ws.take("live", 3).await;
    let expected = [
        ("TRACE_STARTED", "t-1"),
        ("LLM_RUN", "r-1"),
        ("TRACE_ENDED", "t-1"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, id)| (k.to_string(), id.to_string()))
        .collect();
    assert_eq!(activity_items(&events), expected);
    ws.quiet().await;

    // An event's cursor resumes after it.
    let mut again = Ws::with_key(&app, &key).await;
    let after = events[0]["activityAdded"]["cursor"].clone();
    again
        .subscribe("r", ACTIVITY, json!({ "filter": filter, "after": after }))
        .await;
    assert_eq!(activity_items(&again.take("r", 2).await), expected[1..]);
    again.quiet().await;

    // The feed's own newest cursor: nothing after it until the next run.
    let page = app
        .data(
            &key,
            "query($f: ActivityFilter) { activity(filter: $f, first: 1) { edges { cursor } } }",
            json!({ "f": filter }),
        )
        .await;
    let newest = page["activity"]["edges"][0]["cursor"].clone();
    let mut from_page = Ws::with_key(&app, &key).await;
    from_page
        .subscribe("p", ACTIVITY, json!({ "filter": filter, "after": newest }))
        .await;
    app.data(&ingest, record, json!({ "id": "r-2" })).await;
    let next = from_page.take("p", 1).await;
    assert_eq!(
        activity_items(&next),
        [("LLM_RUN".to_owned(), "r-2".to_owned())]
    );
    // And an event's cursor pages the feed on (older items, newest first).
    let older = app
        .data(
            &key,
            "query($f: ActivityFilter, $c: String) { activity(filter: $f, after: $c) { nodes { kind } } }",
            json!({ "f": filter, "c": next[0]["activityAdded"]["cursor"] }),
        )
        .await;
    let kinds: Vec<&str> = older["activity"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["TRACE_ENDED", "LLM_RUN", "TRACE_STARTED"]);
    from_page.quiet().await;

    // A cursor of another filter is BAD_CURSOR.
    let mut bad = Ws::with_key(&app, &key).await;
    bad.subscribe(
        "x",
        ACTIVITY,
        json!({ "filter": { "kinds": ["LLM_RUN"] }, "after": after }),
    )
    .await;
    assert_eq!(bad.error_code("x").await, "BAD_CURSOR");
}

async fn keys_over_websocket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let ingest = app.key("acme", Role::Ingest).await;

    // No key, or a key that resolves to nothing: closed with 4403 at `connection_init`.
    let mut anonymous = Ws::open(&app, None).await.unwrap();
    anonymous.init(None).await;
    assert_eq!(anonymous.close_code().await, 4403);
    let mut forged = Ws::open(&app, None).await.unwrap();
    forged.init(Some("lbk_not-a-key")).await;
    assert_eq!(forged.close_code().await, 4403);
    let mut forged_header = Ws::open(&app, Some("lbk_not-a-key")).await.unwrap();
    forged_header.init(None).await;
    assert_eq!(forged_header.close_code().await, 4403);

    let mut writer = Ws::with_key(&app, &ingest).await;
    writer.subscribe("1", RUNS, json!({})).await;
    assert_eq!(writer.error_code("1").await, "FORBIDDEN");

    // Validation errors carry codes over WebSocket as over HTTP.
    let mut invalid = Ws::with_key(&app, &viewer).await;
    invalid
        .subscribe(
            "1",
            "subscription { llmRunAdded { noSuchField } }",
            json!({}),
        )
        .await;
    assert_eq!(invalid.error_code("1").await, "BAD_USER_INPUT");
    invalid
        .subscribe(
            "2",
            "subscription { llmRunAdded(first: 5) { cursor } }",
            json!({}),
        )
        .await;
    assert_eq!(invalid.error_code("2").await, "BAD_USER_INPUT");

    // The upgrade request's Authorization header works too.
    let mut by_header = Ws::connect(&app, json!({}), Some(&viewer)).await;
    by_header.subscribe("1", RUNS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = make_runs("acme", "h", 1, now());
    insert_runs(app.db(), &runs).await;
    publish_runs(&app, "acme").await;
    assert_eq!(run_ids(&by_header.take("1", 1).await), tail_order(&runs));
}

/// Polls `check` until it holds (slots are released by the server's connection task, a moment
/// after the client side goes away).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn init_authenticates_and_times_out(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.subscriptions.init_timeout = Duration::from_millis(800);
    })
    .await;
    let viewer = app.key("acme", Role::Viewer).await;
    let admission = app.server.sockets.clone();

    // A `subscribe` before `connection_init` closes the socket (4401) without being executed:
    // an invalid query would otherwise be answered with a validation error.
    let mut early = Ws::open(&app, Some(&viewer)).await.unwrap();
    early
        .subscribe(
            "1",
            "subscription { llmRunAdded { noSuchField } }",
            json!({}),
        )
        .await;
    assert_eq!(early.close_code().await, 4401);
    // So does one sent after a refused `connection_init`: nothing after it is read.
    let mut refused = Ws::open(&app, None).await.unwrap();
    refused.init(None).await;
    refused.subscribe("1", RUNS, json!({})).await;
    assert_eq!(refused.close_code().await, 4403);

    // No `connection_init` within the timeout: 4408, even while the client pings.
    let started = Instant::now();
    let mut idle = Ws::open(&app, None).await.unwrap();
    idle.sync().await;
    assert_eq!(idle.close_code().await, 4408);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // An initialised socket outlives the timeout and serves.
    let mut ready = Ws::with_key(&app, &viewer).await;
    ready.subscribe("1", RUNS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let runs = make_runs("acme", "t", 1, now());
    insert_runs(app.db(), &runs).await;
    publish_runs(&app, "acme").await;
    assert_eq!(run_ids(&ready.take("1", 1).await), tail_order(&runs));
    // A second `connection_init` is a protocol error (4429).
    ready.init(Some(&viewer)).await;
    assert_eq!(ready.close_code().await, 4429);
    eventually("every socket released", || admission.connections() == 0).await;
}

async fn caps_refuse_and_release(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.subscriptions.max_connections = 5;
        c.subscriptions.max_connections_per_key = 3;
        c.subscriptions.max_subscriptions_per_connection = 2;
        c.subscriptions.max_subscriptions_per_key = 3;
    })
    .await;
    let key = app.key("acme", Role::Viewer).await;
    let digest = logbook::auth::digest_key(&key);
    let admission = app.server.sockets.clone();
    let usage = || admission.usage(&digest);

    // Per connection: the third subscription is refused with an `error` for its id, and the
    // connection stays open.
    let mut a = Ws::with_key(&app, &key).await;
    a.subscribe("1", RUNS, json!({})).await;
    a.subscribe("2", RUNS, json!({})).await;
    a.subscribe("3", RUNS, json!({})).await;
    let refused = a.message(WAIT).await.expect("an error message");
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "3");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    a.sync().await;
    assert_eq!(usage(), (1, 2));
    // Completing one frees its slot.
    a.send(json!({ "id": "1", "type": "complete" })).await;
    a.subscribe("3", RUNS, json!({})).await;
    a.sync().await;
    assert_eq!(usage(), (1, 2));

    // Per key, over its connections: a second connection gets one more, then RATE_LIMITED.
    let mut b = Ws::with_key(&app, &key).await;
    b.subscribe("1", RUNS, json!({})).await;
    b.sync().await;
    b.subscribe("2", RUNS, json!({})).await;
    assert_eq!(b.error_code("2").await, "RATE_LIMITED");
    b.sync().await;
    assert_eq!(usage(), (2, 3));
    // An abrupt disconnect (no close frame) releases the connection and its subscriptions.
    drop(a);
    eventually("a's slots released", || usage() == (1, 1)).await;
    b.subscribe("2", RUNS, json!({})).await;
    b.sync().await;
    assert_eq!(usage(), (1, 2));

    // Connections per key: the key in the payload is refused after `connection_init` (4429),
    // the key in the upgrade's header before the upgrade (HTTP 429, RATE_LIMITED).
    let c = Ws::with_key(&app, &key).await;
    let d = Ws::connect(&app, json!({}), Some(&key)).await;
    let mut e = Ws::open(&app, None).await.unwrap();
    e.init(Some(&key)).await;
    assert_eq!(e.close_code().await, 4429);
    let (status, body) = Ws::open(&app, Some(&key)).await.err().expect("refused");
    assert_eq!(status, 429);
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
    // A clean close frees the slot: the key connects again.
    c.close().await;
    eventually("c's slot released", || usage().0 == 2).await;
    let c = Ws::with_key(&app, &key).await;

    // Connections per process (5): b, c, d and two sockets not yet initialised.
    let waiting: Vec<Ws> = vec![
        Ws::open(&app, None).await.unwrap(),
        Ws::open(&app, None).await.unwrap(),
    ];
    let (status, body) = Ws::open(&app, None).await.err().expect("refused");
    assert_eq!(status, 429);
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    drop(waiting);
    eventually("the waiting sockets released", || {
        admission.connections() == 3
    })
    .await;

    // The refusals left b's subscriptions serving.
    let runs = make_runs("acme", "cap", 1, now());
    insert_runs(app.db(), &runs).await;
    publish_runs(&app, "acme").await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let message = b.message(WAIT).await.expect("an event");
        assert_eq!(message["type"], "next", "{message}");
        got.push(message["id"].as_str().unwrap().to_owned());
        assert_eq!(
            run_ids(&[message["payload"]["data"].clone()]),
            tail_order(&runs)
        );
    }
    got.sort();
    assert_eq!(got, ["1", "2"]);
    drop((b, c, d));
    eventually("every slot released", || {
        admission.connections() == 0 && usage() == (0, 0)
    })
    .await;
}

async fn serves_after_many_connects_and_disconnects(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let digest = logbook::auth::digest_key(&key);
    let admission = app.server.sockets.clone();
    for round in 0..6 {
        let sockets = (0..25).map(|n| {
            let (app, key) = (&app, key.clone());
            async move {
                match n % 3 {
                    // Subscribed, then gone without a close frame.
                    0 => {
                        let mut ws = Ws::with_key(app, &key).await;
                        ws.subscribe("1", RUNS, json!({})).await;
                        ws.subscribe("2", RUNS, json!({})).await;
                        ws.sync().await;
                    }
                    // Subscribed, then closed cleanly.
                    1 => {
                        let mut ws = Ws::with_key(app, &key).await;
                        ws.subscribe("1", RUNS, json!({})).await;
                        ws.sync().await;
                        ws.close().await;
                    }
                    // Refused at `connection_init`.
                    _ => {
                        let mut ws = Ws::open(app, None).await.unwrap();
                        ws.init(Some("lbk_not-a-key")).await;
                        assert_eq!(ws.close_code().await, 4403);
                    }
                }
            }
        });
        futures_util::future::join_all(sockets).await;
        eventually(&format!("round {round} released"), || {
            admission.connections() == 0 && admission.usage(&digest) == (0, 0)
        })
        .await;
    }
    // Still serving.
    let mut ws = Ws::with_key(&app, &key).await;
    ws.subscribe("1", RUNS, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = make_runs("acme", "after", 2, now());
    insert_runs(app.db(), &runs).await;
    publish_runs(&app, "acme").await;
    assert_eq!(run_ids(&ws.take("1", 2).await), tail_order(&runs));
}

crate::cases!(
    runs_arrive_in_order_exactly_once,
    after_cursor_replays_then_continues,
    filters_and_tenants_apply,
    events_cross_server_processes,
    system_records_and_steps_arrive,
    lifecycle_tails_arrive,
    activity_tail_merges_its_parts,
    mismatch_resolutions_arrive_once,
    keys_over_websocket,
    init_authenticates_and_times_out,
    caps_refuse_and_release,
    serves_after_many_connects_and_disconnects,
);
