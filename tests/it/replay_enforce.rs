//! `enforceReplayStep` (docs/domain.md §7.2): executed, skipped and checked steps,
//! `REPLAY_MISMATCH` with expected and actual hashes, tenant isolation, and a replay store shared
//! by two server processes (Redis on PostgreSQL, the database on SQLite); `enforceTrace` (a
//! whole trace in step order with its totals, all or nothing) and `traceStepByIdempotencyKey`.

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

const ENFORCE_TRACE: &str = r#"
mutation T($input: EnforceTraceInput!) {
  enforceTrace(input: $input) {
    traceId totalSteps executed skipped checked
    steps { stepIndex outcome executed skipped checked fromCache output outputHash }
  }
}"#;

fn whole(outputs: [Option<Value>; 5]) -> Value {
    let steps: Vec<Value> = outputs
        .into_iter()
        .enumerate()
        .map(|(i, o)| match o {
            Some(o) => json!({ "stepIndex": i, "output": o }),
            None => json!({ "stepIndex": i }),
        })
        .collect();
    json!({ "traceId": "t1", "steps": steps })
}

fn outcomes(result: &Value) -> Vec<String> {
    result["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["outcome"].as_str().expect("outcome").to_owned())
        .collect()
}

async fn replay_outputs(app: &TestApp) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    entity::replay_outputs::Entity::find()
        .count(app.db())
        .await
        .expect("count")
}

async fn enforce_trace_runs_every_step_in_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let run = |input: Value| {
        let app = &app;
        let ingest = &ingest;
        async move {
            app.data(ingest, ENFORCE_TRACE, json!({ "input": input }))
                .await["enforceTrace"]
                .clone()
        }
    };

    // First pass: nothing recorded yet, so every step runs; the two CHECK steps match.
    let first = run(whole([
        Some(json!({"a": 1})),
        Some(json!({"from": "first"})),
        Some(original()),
        Some(original()),
        Some(json!("plain")),
    ]))
    .await;
    assert_eq!(
        outcomes(&first),
        ["EXECUTED", "EXECUTED", "CHECKED", "CHECKED", "EXECUTED"]
    );
    assert_eq!(
        [
            &first["totalSteps"],
            &first["executed"],
            &first["skipped"],
            &first["checked"]
        ],
        [&json!(5), &json!(5), &json!(0), &json!(2)]
    );
    assert_eq!(replay_outputs(&app).await, 3, "keys k0, k1 and k2 recorded");

    // Second pass: the SKIP step with a recorded output needs no output and answers from the
    // store; the keyed CHECK step verifies against the store without running.
    let second = run(whole([
        Some(json!({"a": 2})),
        None,
        Some(original()),
        Some(original()),
        Some(json!("plain")),
    ]))
    .await;
    assert_eq!(
        outcomes(&second),
        ["EXECUTED", "SKIPPED", "CHECKED", "CHECKED", "EXECUTED"]
    );
    assert_eq!(second["steps"][1]["output"], json!({"from": "first"}));
    assert_eq!(second["steps"][1]["fromCache"], json!(true));
    assert_eq!(second["steps"][2]["fromCache"], json!(true));
    assert_eq!(
        [&second["executed"], &second["skipped"], &second["checked"]],
        [&json!(3), &json!(1), &json!(2)]
    );
}

async fn enforce_trace_is_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let other = app.key("other", Role::Ingest).await;
    let call = |key: &str, input: Value| {
        let app = &app;
        let key = key.to_owned();
        async move {
            app.gql(Some(&key), ENFORCE_TRACE, json!({ "input": input }))
                .await
        }
    };
    let good = || {
        whole([
            Some(json!(1)),
            Some(json!(2)),
            Some(original()),
            Some(original()),
            Some(json!(5)),
        ])
    };

    // Step 3's output differs from its recorded hash: the whole call fails, naming step 3, and
    // the outputs of steps 0 to 2 are not recorded either.
    let mut bad = good();
    bad["steps"][3]["output"] = json!("different");
    let body = call(&ingest, bad).await;
    assert_eq!(error_code(&body), "REPLAY_MISMATCH", "{body:#}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .expect("message")
        .contains("step 3"));
    assert_eq!(replay_outputs(&app).await, 0);

    let field = |body: &Value| body["errors"][0]["extensions"]["field"].clone();
    // Not every step named.
    let mut partial = good();
    partial["steps"].as_array_mut().expect("steps").remove(2);
    let body = call(&ingest, partial).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(field(&body), json!("input.steps"));
    // Out of order.
    let mut swapped = good();
    swapped["steps"].as_array_mut().expect("steps").swap(0, 1);
    let body = call(&ingest, swapped).await;
    assert_eq!(field(&body), json!("input.steps.1.stepIndex"));
    // An EXECUTE step without its output.
    let mut silent = good();
    silent["steps"][0] = json!({ "stepIndex": 0 });
    let body = call(&ingest, silent).await;
    assert_eq!(field(&body), json!("input.steps.0.output"));
    assert_eq!(replay_outputs(&app).await, 0);
    // Readers may not enforce; another tenant's trace is not found.
    assert_eq!(error_code(&call(&viewer, good()).await), "FORBIDDEN");
    assert_eq!(error_code(&call(&other, good()).await), "NOT_FOUND");

    let done = call(&ingest, good()).await;
    assert_eq!(
        done["data"]["enforceTrace"]["totalSteps"],
        json!(5),
        "{done:#}"
    );
}

async fn step_by_idempotency_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app).await;
    let acme = app.key("acme", Role::Viewer).await;
    let other = app.key("other", Role::Viewer).await;
    let doc = "query($k: String!) { traceStepByIdempotencyKey(idempotencyKey: $k) {
        traceId stepIndex status replayBehavior outputHash } }";
    let found = app.data(&acme, doc, json!({ "k": "k2" })).await;
    assert_eq!(
        found["traceStepByIdempotencyKey"],
        json!({ "traceId": "t1", "stepIndex": 2, "status": "success",
                "replayBehavior": "CHECK", "outputHash": hash_output(&original()) })
    );
    // The same key in another tenant names that tenant's step only.
    let theirs = app.data(&other, doc, json!({ "k": "k1" })).await;
    assert_eq!(theirs["traceStepByIdempotencyKey"]["traceId"], json!("t-o"));
    let mine = app.data(&acme, doc, json!({ "k": "k1" })).await;
    assert_eq!(mine["traceStepByIdempotencyKey"]["traceId"], json!("t1"));
    let missing = app.gql(Some(&other), doc, json!({ "k": "k2" })).await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
    let empty = app.gql(Some(&acme), doc, json!({ "k": "" })).await;
    assert_eq!(error_code(&empty), "BAD_USER_INPUT");
}

crate::cases!(
    execute_skip_and_check,
    recorded_outputs_are_shared_across_processes,
    enforce_trace_runs_every_step_in_order,
    enforce_trace_is_all_or_nothing,
    step_by_idempotency_key,
);
