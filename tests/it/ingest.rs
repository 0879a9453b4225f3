//! Ingestion: `startTrace` → `recordSteps` → `completeTrace`/`abortTrace`, with the seal
//! (checksum, root hash) computed from the stored steps; every trace transition allowed and
//! refused; batch rules (1000 per call, all-or-nothing, first write wins); tenant isolation and
//! roles; `recordLlmRun` and `recordSystemRecord`; redaction before storage; and one effect
//! for concurrent identical requests sharing an idempotency key.

use logbook::auth::Role;
use logbook::traces::hashing::{run_proof_root, step_hash, trace_signature};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};

use crate::support::{error_code, Backend, TestApp};

const START: &str = r#"
mutation Start($input: StartTraceInput!, $key: String) {
  startTrace(input: $input, idempotencyKey: $key) {
    id traceId runId correlationId status rootHash checksum seed isSynthetic syntheticScenarioId
    plan metadata completedAt
  }
}"#;

const RECORD: &str = r#"
mutation Record($traceId: String!, $steps: [TraceStepInput!]!, $key: String) {
  recordSteps(traceId: $traceId, steps: $steps, idempotencyKey: $key) {
    insertedStepIndexes alreadyPresentStepIndexes insertedCount
    steps { stepIndex skillName status level params outcomeData isSynthetic syntheticScenarioId }
    trace { traceId status summary { totalSteps } }
  }
}"#;

const COMPLETE: &str = r#"
mutation Complete($traceId: String!, $status: TraceCompletionStatus!, $metadata: JSON, $key: String) {
  completeTrace(traceId: $traceId, status: $status, metadata: $metadata, idempotencyKey: $key) {
    traceId status rootHash checksum metadata completedAt
  }
}"#;

const ABORT: &str = r#"
mutation Abort($traceId: String!, $reason: String!, $key: String) {
  abortTrace(traceId: $traceId, reason: $reason, idempotencyKey: $key) {
    traceId status rootHash checksum metadata completedAt
  }
}"#;

const READ: &str = r#"
query Read($traceId: String!, $first: Int, $after: String) {
  trace(traceId: $traceId) {
    traceId status rootHash checksum plan metadata
    summary { totalSteps successCount failureCount }
    steps(first: $first, after: $after) {
      totalCount
      nodes { stepIndex skillName status level params outcomeData determinismHash }
      pageInfo { hasNextPage endCursor }
    }
  }
}"#;

fn step(index: i32, skill: &str, status: &str) -> Value {
    json!({
        "stepIndex": index,
        "skillName": skill,
        "params": {"n": index, "temperature": 0.7},
        "status": status,
        "outcomeCategory": if status == "failure" { "PERMANENT" } else { "SUCCESS" },
        "costCents": 0.5,
        "durationMs": 12.0,
    })
}

fn steps(range: std::ops::Range<i32>) -> Value {
    Value::Array(
        range
            .map(|i| {
                let status = match i % 3 {
                    0 => "success",
                    1 => "retry",
                    _ => "failure",
                };
                step(i, "llm_invoke", status)
            })
            .collect(),
    )
}

async fn start(app: &TestApp, key: &str, input: Value) -> Value {
    app.data(key, START, json!({ "input": input })).await["startTrace"].clone()
}

async fn record(app: &TestApp, key: &str, trace_id: &str, steps: Value) -> Value {
    app.gql(
        Some(key),
        RECORD,
        json!({"traceId": trace_id, "steps": steps}),
    )
    .await
}

async fn complete(app: &TestApp, key: &str, trace_id: &str, status: &str) -> Value {
    app.gql(
        Some(key),
        COMPLETE,
        json!({"traceId": trace_id, "status": status, "metadata": {"duration_ms": 5}}),
    )
    .await
}

async fn abort(app: &TestApp, key: &str, trace_id: &str, reason: &str) -> Value {
    app.gql(
        Some(key),
        ABORT,
        json!({"traceId": trace_id, "reason": reason}),
    )
    .await
}

async fn total_steps(app: &TestApp, viewer: &str, trace_id: &str) -> i64 {
    let data = app
        .data(viewer, READ, json!({"traceId": trace_id, "first": 1}))
        .await;
    data["trace"]["summary"]["totalSteps"]
        .as_i64()
        .expect("totalSteps")
}

/// The seal the server must have computed (signature, root hash), from the same step values.
fn expected_seal(run_id: &str, range: std::ops::Range<i32>) -> (String, String) {
    let sent = steps(range);
    let sent = sent.as_array().expect("steps");
    let field = |s: &Value, name: &str| s[name].as_str().expect(name).to_owned();
    let hashes: Vec<String> = sent
        .iter()
        .map(|s| {
            step_hash(
                s["stepIndex"].as_i64().expect("index") as i32,
                &field(s, "skillName"),
                &s["params"],
                &field(s, "status"),
                &field(s, "outcomeCategory"),
                None,
                0,
            )
        })
        .collect();
    let chain: Vec<(i32, String, String)> = sent
        .iter()
        .map(|s| {
            (
                s["stepIndex"].as_i64().expect("index") as i32,
                field(s, "skillName"),
                field(s, "status"),
            )
        })
        .collect();
    let chain_refs: Vec<(i32, &str, &str)> = chain
        .iter()
        .map(|(i, k, st)| (*i, k.as_str(), st.as_str()))
        .collect();
    (
        trace_signature(&hashes),
        run_proof_root(run_id, &chain_refs),
    )
}

async fn lifecycle_start_steps_complete_and_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // ADMIN writes and reads back what it wrote (INGEST keys get receipts only).
    let writer = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;

    let started = start(
        &app,
        &writer,
        json!({"runId": "run-1", "plan": [{"skill": "llm_invoke"}], "seed": "7"}),
    )
    .await;
    assert_eq!(started["traceId"], "trace_run-1");
    assert_eq!(started["runId"], "run-1");
    assert_eq!(started["correlationId"], "run-1");
    assert_eq!(started["status"], "RUNNING");
    assert_eq!(started["seed"], "7");
    assert!(started["rootHash"].is_null());
    assert!(started["completedAt"].is_null());

    // Two batches.
    let first = record(&app, &writer, "trace_run-1", steps(0..4)).await;
    assert!(first.get("errors").is_none(), "{first:#}");
    let first = &first["data"]["recordSteps"];
    assert_eq!(first["insertedStepIndexes"], json!([0, 1, 2, 3]));
    assert_eq!(first["alreadyPresentStepIndexes"], json!([]));
    assert_eq!(first["trace"]["summary"]["totalSteps"], 4);
    let levels: Vec<&str> = first["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["level"].as_str().expect("level"))
        .collect();
    assert_eq!(levels, ["INFO", "WARN", "ERROR", "INFO"]);
    let second = record(&app, &writer, "trace_run-1", steps(4..7)).await;
    assert_eq!(
        second["data"]["recordSteps"]["insertedCount"], 3,
        "{second:#}"
    );
    // Stored as sent: no outcome is SQL NULL (not a JSON null), and params keep their values.
    let stored = app
        .db()
        .query_one_raw(Statement::from_string(
            app.db().get_database_backend(),
            "SELECT COUNT(*) AS n FROM aos_trace_steps WHERE trace_id = 'trace_run-1' \
             AND outcome_data IS NULL AND duration_ms = 12.0 AND cost_cents = 0.5",
        ))
        .await
        .expect("count")
        .expect("a row")
        .try_get::<i64>("", "n")
        .expect("n");
    assert_eq!(stored, 7);

    let done = complete(&app, &writer, "trace_run-1", "COMPLETED").await;
    assert!(done.get("errors").is_none(), "{done:#}");
    let done = &done["data"]["completeTrace"];
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["metadata"], json!({"duration_ms": 5}));
    assert!(done["completedAt"].is_string());
    let (signature, root) = expected_seal("run-1", 0..7);
    assert_eq!(done["checksum"], signature.as_str());
    assert_eq!(done["rootHash"], root.as_str());

    // Readable by a viewer: the trace, its steps paged, by root hash.
    let page1 = app
        .data(&viewer, READ, json!({"traceId": "trace_run-1", "first": 4}))
        .await;
    let trace = &page1["trace"];
    assert_eq!(trace["status"], "COMPLETED");
    assert_eq!(trace["checksum"], signature.as_str());
    assert_eq!(trace["steps"]["totalCount"], 7);
    assert_eq!(trace["summary"]["successCount"], 3);
    assert_eq!(trace["summary"]["failureCount"], 2);
    assert_eq!(trace["steps"]["pageInfo"]["hasNextPage"], true);
    let after = trace["steps"]["pageInfo"]["endCursor"].clone();
    let page2 = app
        .data(
            &viewer,
            READ,
            json!({"traceId": "trace_run-1", "first": 4, "after": after}),
        )
        .await;
    let indexes: Vec<i64> = page2["trace"]["steps"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["stepIndex"].as_i64().expect("index"))
        .collect();
    assert_eq!(indexes, [4, 5, 6]);
    assert_eq!(page2["trace"]["steps"]["pageInfo"]["hasNextPage"], false);
    let by_root = app
        .data(
            &viewer,
            "query($h: String!) { traceByRootHash(rootHash: $h) { traceId } }",
            json!({"h": root}),
        )
        .await;
    assert_eq!(by_root["traceByRootHash"]["traceId"], "trace_run-1");

    // A replay of the same run with identical steps: parity and an equal root hash.
    start(
        &app,
        &writer,
        json!({"traceId": "replay-1", "runId": "run-1", "seed": 7}),
    )
    .await;
    for batch in [steps(0..4), steps(4..7)] {
        let body = record(&app, &writer, "replay-1", batch).await;
        assert!(body.get("errors").is_none(), "{body:#}");
    }
    complete(&app, &writer, "replay-1", "COMPLETED").await;
    // And one whose step 5 failed differently.
    start(
        &app,
        &writer,
        json!({"traceId": "replay-2", "runId": "run-1", "seed": 7}),
    )
    .await;
    let mut diverging = steps(0..7);
    diverging[5]["status"] = json!("success");
    record(&app, &writer, "replay-2", diverging).await;
    complete(&app, &writer, "replay-2", "FAILED").await;

    const COMPARE: &str = r#"query($l: String!, $r: String!) {
      compareTraces(left: $l, right: $r) {
        match summary leftRootHash rightRootHash
        parity { isParity leftSignature rightSignature divergenceStep divergenceReason }
      }
    }"#;
    let same = app
        .data(
            &viewer,
            COMPARE,
            json!({"l": "trace_run-1", "r": "replay-1"}),
        )
        .await;
    let same = &same["compareTraces"];
    assert_eq!(same["parity"]["isParity"], true, "{same:#}");
    assert_eq!(same["parity"]["leftSignature"], signature.as_str());
    assert_eq!(same["match"], true, "{same:#}");
    assert_eq!(same["leftRootHash"], same["rightRootHash"]);
    let differs = app
        .data(
            &viewer,
            COMPARE,
            json!({"l": "trace_run-1", "r": "replay-2"}),
        )
        .await;
    let parity = &differs["compareTraces"]["parity"];
    assert_eq!(parity["isParity"], false);
    assert_eq!(parity["divergenceStep"], 5);
    assert_eq!(parity["divergenceReason"], "status: failure vs success");
    app.stop().await;
}

async fn transitions_allowed_and_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // ADMIN writes and reads back what it wrote (INGEST keys get receipts only).
    let writer = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;

    // running → completed; then nothing more.
    start(&app, &writer, json!({"runId": "a"})).await;
    record(&app, &writer, "trace_a", steps(0..2)).await;
    let done = complete(&app, &writer, "trace_a", "COMPLETED").await;
    assert_eq!(
        done["data"]["completeTrace"]["status"], "COMPLETED",
        "{done:#}"
    );
    for body in [
        complete(&app, &writer, "trace_a", "COMPLETED").await,
        complete(&app, &writer, "trace_a", "FAILED").await,
        abort(&app, &writer, "trace_a", "late").await,
        record(&app, &writer, "trace_a", steps(2..3)).await,
    ] {
        assert_eq!(error_code(&body), "INVALID_TRANSITION", "{body:#}");
    }
    assert_eq!(total_steps(&app, &viewer, "trace_a").await, 2);
    let read = app
        .data(&viewer, READ, json!({"traceId": "trace_a", "first": 1}))
        .await;
    assert_eq!(read["trace"]["status"], "COMPLETED");

    // running → failed.
    start(&app, &writer, json!({"runId": "b"})).await;
    let failed = complete(&app, &writer, "trace_b", "FAILED").await;
    let failed = &failed["data"]["completeTrace"];
    assert_eq!(failed["status"], "FAILED");
    // No steps: the signature of an empty trace, no run proof.
    assert_eq!(failed["checksum"], trace_signature::<&str>(&[]).as_str());
    assert!(failed["rootHash"].is_null());
    assert_eq!(
        error_code(&abort(&app, &writer, "trace_b", "x").await),
        "INVALID_TRANSITION"
    );

    // running → aborted (steps kept and sealed); then nothing more.
    start(&app, &writer, json!({"runId": "c"})).await;
    record(&app, &writer, "trace_c", steps(0..3)).await;
    let aborted = abort(&app, &writer, "trace_c", "finalization_failed: boom").await;
    let aborted = &aborted["data"]["abortTrace"];
    assert_eq!(aborted["status"], "ABORTED");
    assert_eq!(
        aborted["metadata"]["abort_reason"],
        "finalization_failed: boom"
    );
    assert_eq!(aborted["rootHash"], expected_seal("c", 0..3).1.as_str());
    for body in [
        abort(&app, &writer, "trace_c", "again").await,
        complete(&app, &writer, "trace_c", "COMPLETED").await,
        record(&app, &writer, "trace_c", steps(3..4)).await,
    ] {
        assert_eq!(error_code(&body), "INVALID_TRANSITION", "{body:#}");
    }

    // Unknown traces.
    for body in [
        record(&app, &writer, "nope", steps(0..1)).await,
        complete(&app, &writer, "nope", "COMPLETED").await,
        abort(&app, &writer, "nope", "x").await,
    ] {
        assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
    }
    app.stop().await;
}

async fn batch_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // ADMIN writes and reads back what it wrote (INGEST keys get receipts only).
    let writer = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;
    start(&app, &writer, json!({"runId": "r"})).await;

    // 1001 steps: refused, nothing written.
    let body = record(&app, &writer, "trace_r", steps(0..1001)).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "steps");
    // Exactly 1000 is fine.
    let body = record(&app, &writer, "trace_r", steps(0..1000)).await;
    assert_eq!(
        body["data"]["recordSteps"]["insertedCount"], 1000,
        "{body:#}"
    );
    assert_eq!(total_steps(&app, &viewer, "trace_r").await, 1000);

    start(&app, &writer, json!({"runId": "s"})).await;
    // One bad step rejects the whole batch.
    let mut bad = steps(0..5);
    bad[3]["skillName"] = json!("");
    let body = record(&app, &writer, "trace_s", bad).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        "steps[3].skillName"
    );
    let mut negative = steps(0..2);
    negative[1]["costCents"] = json!(-1.0);
    let body = record(&app, &writer, "trace_s", negative).await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        "steps[1].costCents"
    );
    // Duplicate indexes within a batch.
    let mut dup = steps(0..3);
    dup[2]["stepIndex"] = json!(0);
    let body = record(&app, &writer, "trace_s", dup).await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        "steps[2].stepIndex"
    );
    // No stepIndex at all: refused (no default 0).
    let mut missing = steps(0..2);
    missing[1]
        .as_object_mut()
        .expect("object")
        .remove("stepIndex");
    let body = record(&app, &writer, "trace_s", missing).await;
    assert!(body["errors"].is_array(), "{body:#}");
    assert_eq!(total_steps(&app, &viewer, "trace_s").await, 0);

    // First write wins: a stored index keeps its first version.
    let body = record(
        &app,
        &writer,
        "trace_s",
        json!([step(0, "first", "success")]),
    )
    .await;
    assert_eq!(
        body["data"]["recordSteps"]["insertedStepIndexes"],
        json!([0])
    );
    let body = record(
        &app,
        &writer,
        "trace_s",
        json!([step(1, "second", "success"), step(0, "rewrite", "failure")]),
    )
    .await;
    let result = &body["data"]["recordSteps"];
    assert_eq!(result["insertedStepIndexes"], json!([1]), "{body:#}");
    assert_eq!(result["alreadyPresentStepIndexes"], json!([0]));
    assert_eq!(result["steps"][0]["skillName"], "first");
    assert_eq!(result["steps"][0]["status"], "success");
    assert_eq!(result["steps"][1]["skillName"], "second");
    let read = app
        .data(&viewer, READ, json!({"traceId": "trace_s", "first": 10}))
        .await;
    assert_eq!(read["trace"]["steps"]["nodes"][0]["skillName"], "first");
    assert_eq!(read["trace"]["steps"]["totalCount"], 2);
    app.stop().await;
}

async fn tenants_roles_and_trace_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let other = app.key("globex", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let operator = app.key("acme", Role::Operator).await;
    let admin = app.key("acme", Role::Admin).await;

    let first = start(&app, &admin, json!({"runId": "r1", "plan": []})).await;
    // Starting the same trace again returns it unchanged (idempotent start).
    let again = start(&app, &admin, json!({"runId": "r1", "plan": [{"x": 1}]})).await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["plan"], json!([]));
    // Without any id: `trace_` + 16 hex, run id = trace id.
    let generated = start(&app, &admin, json!({})).await;
    let generated_id = generated["traceId"].as_str().expect("traceId");
    assert_eq!(generated_id.len(), 22, "{generated_id}");
    assert!(generated_id.starts_with("trace_"));
    assert_eq!(generated["runId"], generated_id);

    // Another tenant cannot touch acme's trace: it does not exist for them.
    for body in [
        record(&app, &other, "trace_r1", steps(0..1)).await,
        complete(&app, &other, "trace_r1", "COMPLETED").await,
        abort(&app, &other, "trace_r1", "x").await,
    ] {
        assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
    }
    // Trace ids are unique per tenant: another tenant's trace id behaves like an unused one.
    trace_ids_are_per_tenant(&app, &admin, &other, &first, &generated).await;

    // Roles: INGEST and ADMIN write; VIEWER and OPERATOR may not.
    for key in [&viewer, &operator] {
        let body = app
            .gql(Some(key), START, json!({"input": {"runId": "r2"}}))
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");
        assert_eq!(
            error_code(&record(&app, key, "trace_r1", steps(0..1)).await),
            "FORBIDDEN"
        );
    }
    let body = app
        .gql(None, START, json!({"input": {"runId": "r2"}}))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    // INGEST writes and gets receipts; stored content needs a role that reads.
    let receipt = app
        .data(
            &ingest,
            "mutation { startTrace(input: {runId: \"r1\"}) { traceId status rootHash } }",
            json!({}),
        )
        .await;
    assert_eq!(receipt["startTrace"]["traceId"], "trace_r1");
    let body = app
        .gql(Some(&ingest), START, json!({"input": {"runId": "r1"}}))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");

    // Input rules.
    for (input, field) in [
        (json!({"runId": "has space"}), "input.runId"),
        (json!({"runId": "x".repeat(59)}), "input.runId"),
        (json!({"traceId": ""}), "input.traceId"),
        (
            json!({"runId": "r3", "plan": {"not": "a list"}}),
            "input.plan",
        ),
        (
            json!({"runId": "r3", "isSynthetic": true}),
            "input.syntheticScenarioId",
        ),
        (
            json!({"runId": "r3", "syntheticScenarioId": "s"}),
            "input.isSynthetic",
        ),
    ] {
        let body = app
            .gql(Some(&admin), START, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body:#}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{input}");
    }
    // Steps of a synthetic trace are synthetic, with its scenario.
    let synthetic = start(
        &app,
        &admin,
        json!({"runId": "syn", "isSynthetic": true, "syntheticScenarioId": "sc-1"}),
    )
    .await;
    assert_eq!(synthetic["isSynthetic"], true);
    let body = record(&app, &admin, "trace_syn", steps(0..2)).await;
    let recorded = &body["data"]["recordSteps"]["steps"];
    assert_eq!(recorded[0]["isSynthetic"], true, "{body:#}");
    assert_eq!(recorded[1]["syntheticScenarioId"], "sc-1");
    app.stop().await;
}

const PER_TENANT_READ: &str = r#"
query($t: String!, $r: String!) {
  trace(traceId: $t) {
    id status checksum summary { totalSteps }
    steps(first: 10) { totalCount nodes { stepIndex skillName } }
    last: steps(last: 1) { nodes { stepIndex skillName } }
  }
  traceByRunId(runId: $r) { id summary { totalSteps } }
  traces(filter: {runId: $r}) {
    totalCount
    nodes { id checksum summary { totalSteps } steps(first: 10) { nodes { skillName } } }
  }
  compareTraces(left: $t, right: $t) {
    match left { id } right { id } parity { leftSignature }
  }
  replayWindow(runId: $r) { traceId events { source action stepIndex } }
  integrity(runId: $r) { artifactCounts { artifact count } }
}"#;

/// Each tenant's view of its own `trace_r1` (run `r1`): its id, and the skill names of its
/// steps as every read path returns them.
async fn own_view(app: &TestApp, key: &str, id: &Value, skills: &[&str]) {
    let data = app
        .data(key, PER_TENANT_READ, json!({"t": "trace_r1", "r": "r1"}))
        .await;
    let n = skills.len() as i64;
    let names = |nodes: &Value| -> Vec<String> {
        nodes
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["skillName"].as_str().expect("skillName").to_owned())
            .collect()
    };
    let trace = &data["trace"];
    assert_eq!(trace["id"], *id, "{data:#}");
    assert_eq!(trace["summary"]["totalSteps"], n, "{data:#}");
    assert_eq!(trace["steps"]["totalCount"], n, "{data:#}");
    assert_eq!(names(&trace["steps"]["nodes"]), skills, "{data:#}");
    assert_eq!(names(&trace["last"]["nodes"]), skills[skills.len() - 1..]);
    assert_eq!(data["traceByRunId"]["id"], *id);
    assert_eq!(data["traceByRunId"]["summary"]["totalSteps"], n);
    assert_eq!(data["traces"]["totalCount"], 1, "{data:#}");
    let listed = &data["traces"]["nodes"][0];
    assert_eq!(listed["id"], *id);
    assert_eq!(listed["summary"]["totalSteps"], n);
    assert_eq!(names(&listed["steps"]["nodes"]), skills);
    let compared = &data["compareTraces"];
    assert_eq!(compared["match"], true);
    assert_eq!(compared["left"]["id"], *id);
    assert_eq!(compared["right"]["id"], *id);
    // The signature over the steps compareTraces read is the trace's own checksum.
    assert_eq!(compared["parity"]["leftSignature"], trace["checksum"]);
    let window = &data["replayWindow"];
    assert_eq!(window["traceId"], "trace_r1");
    let llm: Vec<&str> = window["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["source"] == "LLM")
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(llm, skills, "{data:#}");
    let counted = data["integrity"]["artifactCounts"]
        .as_array()
        .expect("counts")
        .iter()
        .find(|c| c["artifact"] == "AOS_TRACE_STEPS")
        .map(|c| c["count"].clone());
    assert_eq!(counted, Some(json!(n)), "{data:#}");
}

/// acme (`mine`) has `trace_r1` (run r1) and a generated trace id; globex (`theirs`) starts
/// the same ids, writes its own steps under the same step indexes, completes its trace, and
/// each tenant reads back only its own trace and steps on every path.
async fn trace_ids_are_per_tenant(
    app: &TestApp,
    mine: &str,
    theirs: &str,
    first: &Value,
    generated: &Value,
) {
    let acme_steps = json!([
        step(0, "acme_only", "success"),
        step(1, "acme_only", "failure")
    ]);
    let body = record(app, mine, "trace_r1", acme_steps).await;
    assert_eq!(
        body["data"]["recordSteps"]["insertedStepIndexes"],
        json!([0, 1]),
        "{body:#}"
    );

    let own = start(app, theirs, json!({"runId": "r1", "plan": [{"g": 1}]})).await;
    assert_eq!(own["traceId"], "trace_r1");
    assert_ne!(own["id"], first["id"]);
    assert_eq!(own["plan"], json!([{"g": 1}]));
    assert_eq!(own["status"], "RUNNING");
    // Restarting it returns globex's trace unchanged, as for any tenant's own trace id.
    let again = start(app, theirs, json!({"runId": "r1", "plan": []})).await;
    assert_eq!(again["id"], own["id"]);
    assert_eq!(again["plan"], json!([{"g": 1}]));
    // An explicit trace id another tenant holds is free too.
    let generated_id = generated["traceId"].as_str().expect("traceId");
    let explicit = start(app, theirs, json!({"traceId": generated_id})).await;
    assert_eq!(explicit["traceId"], generated_id);
    assert_ne!(explicit["id"], generated["id"]);

    // The same step indexes acme holds are new for globex.
    let body = record(app, theirs, "trace_r1", steps(0..5)).await;
    let recorded = &body["data"]["recordSteps"];
    assert_eq!(
        recorded["insertedStepIndexes"],
        json!([0, 1, 2, 3, 4]),
        "{body:#}"
    );
    assert_eq!(recorded["alreadyPresentStepIndexes"], json!([]));
    assert_eq!(recorded["steps"][0]["skillName"], "llm_invoke");
    // The seal covers exactly globex's five steps.
    let done = app
        .data(
            theirs,
            COMPLETE,
            json!({"traceId": "trace_r1", "status": "COMPLETED"}),
        )
        .await;
    let (signature, root) = expected_seal("r1", 0..5);
    assert_eq!(done["completeTrace"]["checksum"], signature);
    assert_eq!(done["completeTrace"]["rootHash"], root);

    // Both record run r1 with that trace (for the replay window and the integrity report).
    let now = logbook::scalars::format_utc(chrono::Utc::now());
    for key in [mine, theirs] {
        let mut input = run_input("r1");
        input["startedAt"] = json!(now);
        input["completedAt"] = json!(now);
        app.data(key, RECORD_RUN, json!({ "input": input })).await;
    }

    own_view(app, mine, &first["id"], &["acme_only", "acme_only"]).await;
    own_view(app, theirs, &own["id"], &["llm_invoke"; 5]).await;
    // acme's trace is still running: globex's completion did not touch it.
    let data = app
        .data(mine, READ, json!({"traceId": "trace_r1", "first": 1}))
        .await;
    assert_eq!(data["trace"]["status"], "RUNNING");
}

const RECORD_RUN: &str = r#"
mutation Run($input: RecordLlmRunInput!, $key: String) {
  recordLlmRun(input: $input, idempotencyKey: $key) {
    id recordId runId traceId provider model inputTokens outputTokens costCents
    executionStatus source isSynthetic startedAt completedAt
  }
}"#;

const RECORD_SYSTEM: &str = r#"
mutation Sys($input: RecordSystemRecordInput!, $key: String) {
  recordSystemRecord(input: $input, idempotencyKey: $key) {
    id recordId tenantId isSystemWide component eventType severity summary details causedBy
    correlationId
  }
}"#;

fn run_input(run_id: &str) -> Value {
    json!({
        "runId": run_id,
        "traceId": format!("trace_{run_id}"),
        "model": "claude-sonnet-4-5",
        "inputTokens": 1200,
        "outputTokens": 300,
        "costCents": 42,
        "executionStatus": "SUCCEEDED",
        "startedAt": "2026-11-27T10:00:00Z",
        "completedAt": "2026-11-27T10:00:05Z",
    })
}

async fn llm_runs_and_system_records(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // ADMIN writes and reads back what it wrote (INGEST keys get receipts only).
    let writer = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let other_viewer = app.key("globex", Role::Viewer).await;

    let run = app
        .data(&writer, RECORD_RUN, json!({"input": run_input("run-9")}))
        .await;
    let run = &run["recordLlmRun"];
    assert_eq!(run["runId"], "run-9");
    assert_eq!(run["provider"], "anthropic");
    assert_eq!(run["costCents"], 42);
    assert_eq!(run["source"], "API");
    assert_eq!(run["executionStatus"], "SUCCEEDED");
    let read = app
        .data(
            &viewer,
            "query { llmRun(runId: \"run-9\") { recordId provider inputTokens } }",
            json!({}),
        )
        .await;
    assert_eq!(read["llmRun"]["recordId"], run["recordId"]);
    let hidden = app
        .gql(
            Some(&other_viewer),
            "query { llmRun(runId: \"run-9\") { recordId } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&hidden), "NOT_FOUND");

    // A second record for the run is refused; bad inputs name their field.
    let dup = app
        .gql(
            Some(&writer),
            RECORD_RUN,
            json!({"input": run_input("run-9")}),
        )
        .await;
    assert_eq!(error_code(&dup), "BAD_USER_INPUT");
    assert_eq!(dup["errors"][0]["extensions"]["field"], "input.runId");
    for (patch, field) in [
        (json!({"costCents": -1}), "input.costCents"),
        (json!({"inputTokens": -5}), "input.inputTokens"),
        (json!({"promptHash": "abc"}), "input.promptHash"),
        (
            json!({"completedAt": "2026-11-27T09:00:00Z"}),
            "input.completedAt",
        ),
        (json!({"isSynthetic": true}), "input.syntheticScenarioId"),
        (json!({"model": ""}), "input.model"),
    ] {
        let mut input = run_input("run-bad");
        for (k, v) in patch.as_object().expect("patch") {
            input[k] = v.clone();
        }
        let body = app
            .gql(Some(&writer), RECORD_RUN, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{patch}: {body:#}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{patch}");
    }
    assert_eq!(
        error_code(
            &app.gql(
                Some(&viewer),
                RECORD_RUN,
                json!({"input": run_input("run-v")})
            )
            .await
        ),
        "FORBIDDEN"
    );

    // System records belong to the key's tenant.
    let record = app
        .data(
            &writer,
            RECORD_SYSTEM,
            json!({"input": {
                "component": "WORKER",
                "eventType": "RESTART",
                "severity": "WARN",
                "summary": "worker restarted after OOM",
                "details": {"attempt": 2},
                "causedBy": "AUTOMATION",
                "correlationId": "run-9",
            }}),
        )
        .await;
    let record = &record["recordSystemRecord"];
    assert_eq!(record["tenantId"], "acme");
    assert_eq!(record["isSystemWide"], false);
    assert_eq!(record["details"], json!({"attempt": 2}));
    let id = record["id"].as_str().expect("id");
    let q = "query($id: ID!) { node(id: $id) { ... on SystemRecord { summary } } }";
    let seen = app.data(&viewer, q, json!({ "id": id })).await;
    assert_eq!(seen["node"]["summary"], "worker restarted after OOM");
    let hidden = app.gql(Some(&other_viewer), q, json!({ "id": id })).await;
    assert_eq!(error_code(&hidden), "NOT_FOUND", "{hidden:#}");
    for (input, field) in [
        (
            json!({"component": "API", "eventType": "DEPLOY", "severity": "INFO", "summary": " "}),
            "input.summary",
        ),
        (
            json!({"component": "API", "eventType": "DEPLOY", "severity": "INFO", "summary": "x", "details": [1]}),
            "input.details",
        ),
    ] {
        let body = app
            .gql(Some(&writer), RECORD_SYSTEM, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field);
    }
    app.stop().await;
}

async fn redaction_before_storage(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // ADMIN writes and reads back what it wrote (INGEST keys get receipts only).
    let writer = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let secrets = [
        "hunter2",
        "tok-123-secret",
        "alice@example.com",
        "4111 1111 1111 1111",
        "123-45-6789",
        "AKIAIOSFODNN7EXAMPLE",
        "abc.def.ghi-bearer",
        "deep@example.org",
        "meta-secret-value",
        "+1 415 555 0100",
    ];
    let mut deep = json!({"contact": "deep@example.org"});
    for _ in 0..40 {
        deep = json!({ "level": deep });
    }
    start(
        &app,
        &writer,
        json!({"runId": "red", "plan": [{"skill": "email", "to": "alice@example.com",
               "user_password": "hunter2"}]}),
    )
    .await;
    let body = record(
        &app,
        &writer,
        "trace_red",
        json!([{
            "stepIndex": 0,
            "skillName": "http_call",
            "status": "success",
            "outcomeCategory": "SUCCESS",
            "params": {
                "apiToken": "tok-123-secret",
                "Authorization": "Bearer abc.def.ghi-bearer",
                "note": "card 4111 1111 1111 1111, ssn 123-45-6789, call +1 415 555 0100",
                "aws": "AKIAIOSFODNN7EXAMPLE",
                "deep": deep,
                "max_tokens": 1024,
            },
            "outcomeData": {"reply": "sent to alice@example.com"},
        }]),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    app.gql(
        Some(&writer),
        COMPLETE,
        json!({"traceId": "trace_red", "status": "COMPLETED",
               "metadata": {"clientSecret": "meta-secret-value", "duration_ms": 3}}),
    )
    .await;
    let read = app
        .data(&viewer, READ, json!({"traceId": "trace_red", "first": 10}))
        .await;
    let text = read.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let params = &read["trace"]["steps"]["nodes"][0]["params"];
    assert_eq!(params["apiToken"], "<REDACTED>");
    assert_eq!(params["Authorization"], "<REDACTED>");
    assert_eq!(params["max_tokens"], 1024);
    assert_eq!(
        params["note"],
        "card <REDACTED_CARD>, ssn <REDACTED_SSN>, call <REDACTED_PHONE>"
    );
    assert_eq!(read["trace"]["plan"][0]["user_password"], "<REDACTED>");
    assert_eq!(read["trace"]["metadata"]["duration_ms"], 3);

    // System records: summary and details.
    let record = app
        .data(
            &writer,
            RECORD_SYSTEM,
            json!({"input": {
                "component": "AUTH", "eventType": "AUTH_CHANGE", "severity": "INFO",
                "summary": "key rotated by alice@example.com",
                "details": {"new_password": "hunter2", "by": "alice@example.com"},
            }}),
        )
        .await;
    let text = record.to_string();
    for secret in ["hunter2", "alice@example.com"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_eq!(
        record["recordSystemRecord"]["summary"],
        "key rotated by <REDACTED_EMAIL>"
    );
    // Abort reasons too.
    start(&app, &writer, json!({"runId": "red2"})).await;
    let aborted = abort(&app, &writer, "trace_red2", "failed for bob@example.com").await;
    assert_eq!(
        aborted["data"]["abortTrace"]["metadata"]["abort_reason"],
        "failed for <REDACTED_EMAIL>"
    );
    app.stop().await;
}

/// 20 concurrent identical requests with one idempotency key: one effect, one result.
async fn concurrent_identical_requests_one_effect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // ADMIN writes and reads back what it wrote (INGEST keys get receipts only).
    let writer = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;

    // startTrace without ids generates a fresh trace id per effect.
    let starts = (0..20).map(|_| {
        app.gql(
            Some(&writer),
            START,
            json!({"input": {"agentId": "a1"}, "key": "start-1"}),
        )
    });
    let bodies = futures_util::future::join_all(starts).await;
    let mut ids: Vec<String> = bodies
        .iter()
        .map(|b| {
            b["data"]["startTrace"]["traceId"]
                .as_str()
                .unwrap_or_else(|| panic!("{b:#}"))
                .to_owned()
        })
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one trace for one key: {ids:?}");
    let count = app
        .data(&viewer, "query { traces { totalCount } }", json!({}))
        .await;
    assert_eq!(count["traces"]["totalCount"], 1);
    let trace_id = ids[0].clone();

    // recordSteps: every caller gets the first result (all three steps inserted).
    let records = (0..20).map(|_| {
        app.gql(
            Some(&writer),
            RECORD,
            json!({"traceId": trace_id, "steps": steps(0..3), "key": "steps-1"}),
        )
    });
    for body in futures_util::future::join_all(records).await {
        let result = &body["data"]["recordSteps"];
        assert_eq!(result["insertedStepIndexes"], json!([0, 1, 2]), "{body:#}");
        assert_eq!(result["alreadyPresentStepIndexes"], json!([]), "{body:#}");
    }
    assert_eq!(total_steps(&app, &viewer, &trace_id).await, 3);
    // Same key, other input.
    let body = app
        .gql(
            Some(&writer),
            RECORD,
            json!({"traceId": trace_id, "steps": steps(0..4), "key": "steps-1"}),
        )
        .await;
    assert_eq!(error_code(&body), "IDEMPOTENCY_CONFLICT", "{body:#}");

    // recordLlmRun: a duplicate run id would be refused, a duplicate request is not.
    let runs = (0..20).map(|_| {
        app.gql(
            Some(&writer),
            RECORD_RUN,
            json!({"input": run_input("run-c"), "key": "run-1"}),
        )
    });
    let mut record_ids: Vec<String> = futures_util::future::join_all(runs)
        .await
        .iter()
        .map(|b| {
            b["data"]["recordLlmRun"]["recordId"]
                .as_str()
                .unwrap_or_else(|| panic!("{b:#}"))
                .to_owned()
        })
        .collect();
    record_ids.dedup();
    assert_eq!(record_ids.len(), 1);

    // completeTrace: the duplicate gets the first result, not INVALID_TRANSITION.
    let completes = (0..20).map(|_| {
        app.gql(
            Some(&writer),
            COMPLETE,
            json!({"traceId": trace_id, "status": "COMPLETED", "key": "done-1"}),
        )
    });
    for body in futures_util::future::join_all(completes).await {
        assert_eq!(
            body["data"]["completeTrace"]["status"], "COMPLETED",
            "{body:#}"
        );
    }
    app.stop().await;
}

const SEAL_WITH_VIOLATION: &str = r#"
mutation Seal($traceId: String!, $violation: TraceViolationInput, $key: String) {
  completeTrace(traceId: $traceId, status: FAILED, violation: $violation, idempotencyKey: $key) {
    traceId status violation { stepIndex timestamp policyId reason }
  }
}"#;

const ABORT_WITH_VIOLATION: &str = r#"
mutation Abort($traceId: String!, $violation: TraceViolationInput) {
  abortTrace(traceId: $traceId, reason: "stopped", violation: $violation) {
    traceId status violation { stepIndex timestamp policyId reason }
  }
}"#;

const VIOLATION_READS: &str = r#"
query Reads($traceId: String!, $runId: String!, $search: String!) {
  trace(traceId: $traceId) {
    violation { stepIndex timestamp policyId reason }
    steps(first: 10) { nodes { stepIndex timestamp } }
  }
  traces(first: 10, filter: { search: $search }) { nodes { traceId } }
  replayWindow(runId: $runId) { inflectionTimestamp inflectionSource }
}"#;

async fn violations_are_recorded_when_a_trace_is_sealed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // An ADMIN key writes: the violation is stored content, which an INGEST key's receipts leave
    // out.
    let ingest = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let seal = |trace_id: &str, violation: Value| {
        let vars = json!({ "traceId": trace_id, "violation": violation });
        let (app, ingest) = (&app, &ingest);
        async move { app.gql(Some(ingest), SEAL_WITH_VIOLATION, vars).await }
    };

    // Bad violations are refused and write nothing: the trace stays running.
    start(&app, &ingest, json!({"runId": "viol"})).await;
    let r = record(&app, &ingest, "trace_viol", steps(0..4)).await;
    assert!(r.get("errors").is_none(), "{r}");
    for bad in [
        json!({}),
        json!({ "stepIndex": 9 }),
        json!({ "stepIndex": -1 }),
        json!({ "policyId": "has spaces" }),
        json!({ "reason": "x".repeat(513) }),
    ] {
        let body = seal("trace_viol", bad.clone()).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }
    let data = app
        .data(
            &viewer,
            READ,
            json!({ "traceId": "trace_viol", "first": 1 }),
        )
        .await;
    assert_eq!(
        data["trace"]["status"], "RUNNING",
        "a refused seal wrote nothing"
    );

    // Sealed with a violation at step 2: its time is the step's, its reason redacted.
    let violation = json!({
        "stepIndex": 2,
        "policyId": "pol-budget-7",
        "reason": "over budget, tell alice@example.com",
    });
    let body = seal("trace_viol", violation.clone()).await;
    let sealed = &body["data"]["completeTrace"];
    assert_eq!(sealed["status"], "FAILED", "{body}");
    assert_eq!(sealed["violation"]["stepIndex"], 2);
    assert_eq!(sealed["violation"]["policyId"], "pol-budget-7");
    let reason = sealed["violation"]["reason"].as_str().expect("reason");
    assert!(reason.starts_with("over budget"), "{reason}");
    assert!(
        !reason.contains("alice@example.com"),
        "not redacted: {reason}"
    );

    // A second seal is an invalid transition, even one naming another violation.
    let again = seal("trace_viol", json!({ "stepIndex": 1 })).await;
    assert_eq!(error_code(&again), "INVALID_TRANSITION", "{again}");

    // What reads the violation sees it: the trace, its search text, the run's replay window.
    app.data(&ingest, RECORD_RUN, json!({ "input": run_input("viol") }))
        .await;
    let vars = json!({ "traceId": "trace_viol", "runId": "viol", "search": "budget" });
    let data = app.data(&viewer, VIOLATION_READS, vars).await;
    let step_two = data["trace"]["steps"]["nodes"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["stepIndex"] == 2)
        .expect("step 2")["timestamp"]
        .clone();
    assert_eq!(data["trace"]["violation"]["timestamp"], step_two);
    assert_eq!(data["trace"]["violation"], sealed["violation"]);
    assert_eq!(
        data["traces"]["nodes"],
        json!([{ "traceId": "trace_viol" }]),
        "the violation reason is searchable"
    );
    assert_eq!(data["replayWindow"]["inflectionSource"], "VIOLATION");
    assert_eq!(data["replayWindow"]["inflectionTimestamp"], step_two);

    // Aborted with a policy and an explicit time, no step.
    start(&app, &ingest, json!({"runId": "viol2"})).await;
    let at = "2026-11-27T10:00:03.25Z";
    let body = app
        .gql(
            Some(&ingest),
            ABORT_WITH_VIOLATION,
            json!({ "traceId": "trace_viol2",
                    "violation": { "policyId": "pol-9", "timestamp": at } }),
        )
        .await;
    let aborted = &body["data"]["abortTrace"];
    assert_eq!(aborted["status"], "ABORTED", "{body}");
    assert_eq!(
        aborted["violation"],
        json!({ "stepIndex": null, "timestamp": "2026-11-27T10:00:03.250Z", "policyId": "pol-9", "reason": null })
    );
    // Without a violation, none is recorded.
    start(&app, &ingest, json!({"runId": "plain"})).await;
    let body = abort(&app, &ingest, "trace_plain", "done").await;
    assert!(body.get("errors").is_none(), "{body}");
    let data = app
        .data(
            &viewer,
            VIOLATION_READS,
            json!({ "traceId": "trace_plain", "runId": "viol", "search": "zzzzz" }),
        )
        .await;
    assert_eq!(data["trace"]["violation"], Value::Null);
    app.stop().await;
}

crate::cases!(
    lifecycle_start_steps_complete_and_read,
    transitions_allowed_and_refused,
    batch_rules,
    tenants_roles_and_trace_ids,
    llm_runs_and_system_records,
    redaction_before_storage,
    concurrent_identical_requests_one_effect,
    violations_are_recorded_when_a_trace_is_sealed,
);
