//! `enforceReplayStep` (docs/domain.md §7.2): executed, skipped and checked steps,
//! `REPLAY_MISMATCH` with expected and actual hashes, tenant isolation, and a replay store shared
//! by two server processes (Redis on PostgreSQL, the database on SQLite).

use logbook::auth::Role;
use logbook::replay::enforce::hash_output;
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, Backend, TestApp};
use crate::traces_reads::{insert_steps, insert_traces, step, trace};

const ENFORCE: &str = r#"
mutation E($input: EnforceReplayStepInput!) {
  enforceReplayStep(input: $input) {
    traceId stepIndex behavior outcome executed skipped checked fromCache output outputHash
    expectedHash replayKey
  }
}"#;

fn original() -> Value {
    json!({"answer": 42, "text": "é"})
}

/// acme's `t1`: step 0 execute (key k0), 1 skip (k1), 2 check (k2, recorded hash of
/// `original()`), 3 check without key (recorded hash), 4 skip without key. `other` has a trace
/// whose step 0 reuses the key k1.
async fn setup(app: &TestApp) {
    let t0 = fixed_time();
    insert_traces(
        app.db(),
        vec![
            trace("acme", "t1", "run-1", t0),
            trace("other", "t-o", "run-o", t0),
        ],
    )
    .await;
    let spec: [(&str, Option<&str>, bool); 5] = [
        ("execute", Some("k0"), false),
        ("skip", Some("k1"), false),
        ("check", Some("k2"), true),
        ("check", None, true),
        ("skip", None, false),
    ];
    let mut rows = Vec::new();
    for (i, (behavior, key, hashed)) in spec.into_iter().enumerate() {
        let mut s = step("t1", i as i32, "llm_invoke", "success", t0);
        s.replay_behavior = behavior.into();
        s.idempotency_key = key.map(Into::into);
        s.output_hash = hashed.then(|| hash_output(&original()));
        rows.push(s);
    }
    let mut foreign = step("t-o", 0, "llm_invoke", "success", t0);
    foreign.replay_behavior = "skip".into();
    foreign.idempotency_key = Some("k1".into());
    rows.push(foreign);
    insert_steps(app.db(), rows).await;
}

async fn enforce(app: &TestApp, key: &str, input: Value) -> Value {
    app.data(key, ENFORCE, json!({ "input": input })).await["enforceReplayStep"].clone()
}

fn at(step: i32, output: Value) -> Value {
    json!({ "traceId": "t1", "stepIndex": step, "output": output })
}

async fn execute_skip_and_check(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let operator = app.key("acme", Role::Operator).await;
    let viewer = app.key("acme", Role::Viewer).await;

    // execute: always runs, records the output, reports its hash.
    let r = enforce(&app, &ingest, at(0, json!({"a": 1}))).await;
    assert_eq!(r["outcome"], json!("EXECUTED"));
    assert_eq!(r["behavior"], json!("EXECUTE"));
    assert_eq!(
        (
            r["executed"].clone(),
            r["skipped"].clone(),
            r["checked"].clone()
        ),
        (json!(true), json!(false), json!(false))
    );
    assert_eq!(r["fromCache"], json!(false));
    assert_eq!(r["outputHash"], json!(hash_output(&json!({"a": 1}))));
    assert_eq!(r["replayKey"], json!("k0"));
    let r = enforce(&app, &ingest, at(0, json!({"a": 2}))).await;
    assert_eq!(r["outcome"], json!("EXECUTED"));
    assert_eq!(r["output"], json!({"a": 2}));

    // skip: the first time it runs, then the recorded output stands.
    let r = enforce(&app, &ingest, at(1, json!({"first": true}))).await;
    assert_eq!(r["outcome"], json!("EXECUTED"));
    assert_eq!(r["fromCache"], json!(false));
    let r = enforce(&app, &operator, at(1, json!({"second": true}))).await;
    assert_eq!(r["outcome"], json!("SKIPPED"));
    assert_eq!(r["skipped"], json!(true));
    assert_eq!(r["executed"], json!(false));
    assert_eq!(r["fromCache"], json!(true));
    assert_eq!(r["output"], json!({"first": true}));
    assert_eq!(r["outputHash"], json!(hash_output(&json!({"first": true}))));
    // An explicit behaviour overrides the recorded one.
    let mut input = at(1, json!({"third": true}));
    input["behavior"] = json!("EXECUTE");
    let r = enforce(&app, &ingest, input).await;
    assert_eq!(r["outcome"], json!("EXECUTED"));
    assert_eq!(r["behavior"], json!("EXECUTE"));

    // skip without a key cannot be honoured: it executes every time, recording nothing.
    for _ in 0..2 {
        let r = enforce(&app, &ingest, at(4, json!([1, 2]))).await;
        assert_eq!(r["outcome"], json!("EXECUTED"));
        assert_eq!(r["replayKey"], Value::Null);
    }

    // check: the same output matches the recorded hash (first executed, then from the store).
    let r = enforce(&app, &ingest, at(2, original())).await;
    assert_eq!(r["outcome"], json!("CHECKED"));
    assert_eq!(r["executed"], json!(true));
    assert_eq!(r["checked"], json!(true));
    assert_eq!(r["fromCache"], json!(false));
    assert_eq!(r["expectedHash"], json!(hash_output(&original())));
    let r = enforce(&app, &ingest, at(2, original())).await;
    assert_eq!(r["outcome"], json!("CHECKED"));
    assert_eq!(r["fromCache"], json!(true));
    assert_eq!(r["executed"], json!(false));
    assert_eq!(r["output"], original());

    // check: another output is REPLAY_MISMATCH with both hashes, with or without a key.
    for step in [2, 3] {
        let wrong = json!({"answer": 41, "text": "é"});
        let body = app
            .gql(
                Some(&ingest),
                ENFORCE,
                json!({ "input": at(step, wrong.clone()) }),
            )
            .await;
        assert_eq!(error_code(&body), "REPLAY_MISMATCH", "step {step}");
        let ext = &body["errors"][0]["extensions"];
        assert_eq!(ext["expected"], json!(hash_output(&original())));
        assert_eq!(ext["actual"], json!(hash_output(&wrong)));
        let message = body["errors"][0]["message"].as_str().expect("message");
        assert!(message.contains(&format!("step {step}")), "{message}");
    }
    let r = enforce(&app, &ingest, at(3, original())).await;
    assert_eq!(r["outcome"], json!("CHECKED"));

    // Roles, missing steps and other tenants' traces.
    let body = app
        .gql(Some(&viewer), ENFORCE, json!({ "input": at(0, json!(1)) }))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let body = app
        .gql(Some(&ingest), ENFORCE, json!({ "input": at(9, json!(1)) }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .gql(
            Some(&ingest),
            ENFORCE,
            json!({ "input": { "traceId": "t-o", "stepIndex": 0, "output": 1 } }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .gql(Some(&ingest), ENFORCE, json!({ "input": at(-1, json!(1)) }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        json!("input.stepIndex")
    );

    // Another tenant's step with the same key has its own record.
    let other = app.key("other", Role::Ingest).await;
    let input = json!({ "traceId": "t-o", "stepIndex": 0, "output": {"mine": 1} });
    let r = enforce(&app, &other, input.clone()).await;
    assert_eq!(r["outcome"], json!("EXECUTED"));
    let r = enforce(&app, &other, input).await;
    assert_eq!(r["outcome"], json!("SKIPPED"));
    assert_eq!(r["output"], json!({"mine": 1}));
}

async fn recorded_outputs_are_shared_across_processes(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    setup(&first).await;
    let ingest = first.key("acme", Role::Ingest).await;
    let second = TestApp::spawn_on(backend, first.database_url(), |_| {}).await;

    let r = enforce(&first, &ingest, at(1, json!({"from": "first"}))).await;
    assert_eq!(r["outcome"], json!("EXECUTED"));
    let r = enforce(&second, &ingest, at(1, json!({"from": "second"}))).await;
    assert_eq!(r["outcome"], json!("SKIPPED"));
    assert_eq!(r["output"], json!({"from": "first"}));

    // A check step recorded by the second process is verified from the store by the first.
    let r = enforce(&second, &ingest, at(2, original())).await;
    assert_eq!(r["fromCache"], json!(false));
    let r = enforce(&first, &ingest, at(2, original())).await;
    assert_eq!(r["outcome"], json!("CHECKED"));
    assert_eq!(r["fromCache"], json!(true));
    second.stop().await;
}

crate::cases!(
    execute_skip_and_check,
    recorded_outputs_are_shared_across_processes,
);
