//! `captureEvidence`: evidence classes H/B/G/D and the J seal written in one transaction and
//! seen by `llmRun { integrity }`; the execution-context guard and other bad input; roles;
//! tenant isolation (same run id in two tenants); a database error is recorded as a capture
//! failure and reported, never swallowed; idempotency keys.

use entity::activity_evidence;
use logbook::auth::Role;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, insert_runs, make_runs, Backend, TestApp};

const CAPTURE: &str = r#"
mutation C($input: CaptureEvidenceInput!, $key: String) {
  captureEvidence(input: $input, idempotencyKey: $key) {
    runId
    captured { evidenceClass id stepIndex status }
    failures { evidenceType failureReason errorMessage resolution newlyRecorded }
    integrity { grade observedArtifacts }
  }
}"#;

const RUN: &str = r#"
query R($r: String!) {
  llmRun(runId: $r) {
    runId
    evidence { runId checksum }
    integrity {
      grade score explanation observedArtifacts missingArtifacts
      artifactCounts { artifact count }
      captureFailures { evidenceType failureReason resolution recordedResolution }
      sealedEvidence { status score }
    }
  }
}"#;

const RUN_ID: &str = "ev-run-00000";

async fn setup(app: &TestApp, tenant: &str, record_prefix: &str) {
    app.key(tenant, Role::Viewer).await; // creates the tenant
    let mut runs = make_runs(tenant, "ev", 1, fixed_time());
    runs[0].id = format!("{record_prefix}-rec");
    insert_runs(app.db(), &runs).await;
}

fn context() -> Value {
    json!({ "traceId": "trace_ev-run-00000", "source": "SDK" })
}

fn full_input() -> Value {
    json!({
        "runId": RUN_ID,
        "context": context(),
        "environment": { "sdkMode": "INLINE", "sdkVersion": "1.2.3", "environment": "PROD",
                         "telemetryDeliveryStatus": "SENT", "captureConfidenceScore": 0.9,
                         "activeFeatureFlags": ["a", "b"] },
        "activities": [
            { "stepIndex": 0, "skillId": "llm_invoke", "modelName": "gpt-4o", "prompt": "hello",
              "promptTokenLength": 1, "sensitivityClass": "INTERNAL" },
            { "stepIndex": 1, "skillId": "http_call", "modelName": "gpt-4o",
              "promptFingerprint": logbook::evidence::fingerprint("second"), "promptTokenLength": 3 }
        ],
        "providers": [
            { "stepIndex": 0, "providerName": "openai", "modelName": "gpt-4o",
              "inputTokens": 10, "outputTokens": 5, "providerHttpStatus": 200 }
        ],
        "policyDecisions": [
            { "policyType": "BUDGET", "decision": "GRANTED", "decisionConfidence": 1.0,
              "policiesEvaluated": ["p1"], "policyResults": "PASS", "thresholdsUsed": { "max": 10 } }
        ]
    })
}

fn count_of(integrity: &Value, artifact: &str) -> i64 {
    integrity["artifactCounts"]
        .as_array()
        .expect("present")
        .iter()
        .find(|c| c["artifact"] == json!(artifact))
        .map(|c| c["count"].as_i64().expect("present"))
        .unwrap_or(-1)
}

fn statuses(payload: &Value) -> Vec<(String, String)> {
    payload["captured"]
        .as_array()
        .expect("present")
        .iter()
        .map(|c| {
            (
                c["evidenceClass"].as_str().expect("present").to_owned(),
                c["status"].as_str().expect("present").to_owned(),
            )
        })
        .collect()
}

async fn capture_evidence_feeds_integrity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app, "acme", "acme").await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let before = app.data(&viewer, RUN, json!({ "r": RUN_ID })).await;
    assert_eq!(
        before["llmRun"]["integrity"]["observedArtifacts"],
        json!([])
    );

    let first = app
        .data(&ingest, CAPTURE, json!({ "input": full_input() }))
        .await["captureEvidence"]
        .clone();
    assert_eq!(first["failures"], json!([]));
    assert_eq!(
        statuses(&first),
        [
            ("ENVIRONMENT", "CREATED"),
            ("ACTIVITY", "CREATED"),
            ("ACTIVITY", "CREATED"),
            ("PROVIDER", "CREATED"),
            ("POLICY_DECISION", "CREATED"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // The raw prompt is fingerprinted, never stored.
    let stored = activity_evidence::Entity::find()
        .filter(activity_evidence::Column::StepIndex.eq(0))
        .one(app.db())
        .await
        .expect("present")
        .expect("present");
    assert_eq!(
        stored.prompt_fingerprint,
        logbook::evidence::fingerprint("hello")
    );
    assert_eq!(stored.evidence_source, "sdk");

    let run = app.data(&viewer, RUN, json!({ "r": RUN_ID })).await["llmRun"].clone();
    let integrity = &run["integrity"];
    assert_eq!(
        integrity["observedArtifacts"],
        json!([
            "ACTIVITY_EVIDENCE",
            "POLICY_DECISIONS",
            "PROVIDER_EVIDENCE",
            "ENVIRONMENT_EVIDENCE"
        ])
    );
    assert_eq!(count_of(integrity, "ACTIVITY_EVIDENCE"), 2);
    assert_eq!(integrity["grade"], json!("FAIL"));
    assert_eq!(
        integrity["explanation"],
        json!("Critical evidence missing: aos_traces, aos_trace_steps")
    );
    assert_eq!(integrity["sealedEvidence"], Value::Null);
    assert_eq!(run["evidence"]["runId"], json!(RUN_ID));

    // Second capture: the step's response is filled in, the environment kept, the run sealed.
    let second = app
        .data(
            &ingest,
            CAPTURE,
            json!({ "input": {
                "runId": RUN_ID, "context": context(), "seal": true,
                "environment": { "sdkMode": "ASYNC" },
                "activities": [{ "stepIndex": 0, "skillId": "llm_invoke", "modelName": "gpt-4o",
                                 "prompt": "hello", "promptTokenLength": 1, "response": "hi",
                                 "responseTokenLength": 1, "completionType": "FINAL" }]
            } }),
        )
        .await["captureEvidence"]
        .clone();
    assert_eq!(
        statuses(&second),
        [
            ("ENVIRONMENT", "UNCHANGED"),
            ("ACTIVITY", "UPDATED"),
            ("INTEGRITY", "CREATED"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let stored = activity_evidence::Entity::find()
        .filter(activity_evidence::Column::StepIndex.eq(0))
        .one(app.db())
        .await
        .expect("present")
        .expect("present");
    assert_eq!(
        stored.response_fingerprint.as_deref(),
        Some(logbook::evidence::fingerprint("hi").as_str())
    );
    assert_eq!(stored.completion_type.as_deref(), Some("final"));
    let run = app.data(&viewer, RUN, json!({ "r": RUN_ID })).await["llmRun"].clone();
    assert_eq!(
        run["integrity"]["sealedEvidence"]["status"],
        json!("FAILED"),
        "sealed inside the transaction, with what it saw: {run:#}"
    );
    assert!(
        (run["integrity"]["sealedEvidence"]["score"]
            .as_f64()
            .expect("present")
            - 4.0 / 6.0)
            .abs()
            < 1e-9
    );

    // Idempotency: the duplicate returns the first result; the decision is not inserted twice.
    let input = json!({ "runId": RUN_ID, "context": context(),
                        "policyDecisions": [{ "policyType": "RATE_LIMIT", "decision": "DENIED" }] });
    let k1 = app
        .data(&ingest, CAPTURE, json!({ "input": input, "key": "c1" }))
        .await;
    let k2 = app
        .data(&ingest, CAPTURE, json!({ "input": input, "key": "c1" }))
        .await;
    assert_eq!(
        k1["captureEvidence"]["captured"],
        k2["captureEvidence"]["captured"]
    );
    let run = app.data(&viewer, RUN, json!({ "r": RUN_ID })).await["llmRun"].clone();
    assert_eq!(count_of(&run["integrity"], "POLICY_DECISIONS"), 2);
    let conflict = app
        .gql(
            Some(&ingest),
            CAPTURE,
            json!({ "input": { "runId": RUN_ID, "seal": true }, "key": "c1" }),
        )
        .await;
    assert_eq!(error_code(&conflict), "IDEMPOTENCY_CONFLICT");
    app.stop().await;
}

async fn capture_evidence_guards_input_roles_and_tenants(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app, "acme", "acme").await;
    setup(&app, "beta", "beta").await;
    let ingest = app.key("acme", Role::Ingest).await;
    let ingest_b = app.key("beta", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let viewer_b = app.key("beta", Role::Viewer).await;
    let fp = logbook::evidence::fingerprint("x");
    let cases = [
        (
            json!({ "runId": RUN_ID, "environment": { "sdkMode": "API" } }),
            "input.context",
        ),
        (json!({ "runId": RUN_ID }), "input"),
        (json!({ "runId": "", "seal": true }), "input.runId"),
        (
            json!({ "runId": RUN_ID, "context": { "traceId": "t", "source": "SDK", "isSynthetic": true },
                    "environment": { "sdkMode": "API" } }),
            "input.context.syntheticScenarioId",
        ),
        (
            json!({ "runId": RUN_ID, "context": { "traceId": "", "source": "SDK" },
                    "environment": { "sdkMode": "API" } }),
            "input.context.traceId",
        ),
        (
            json!({ "runId": RUN_ID, "context": context(), "activities": [
                { "stepIndex": 0, "skillId": "s", "modelName": "m", "promptFingerprint": "XYZ",
                  "promptTokenLength": 1 }] }),
            "input.activities.0.promptFingerprint",
        ),
        (
            json!({ "runId": RUN_ID, "context": context(), "activities": [
                { "stepIndex": 0, "skillId": "s", "modelName": "m", "promptTokenLength": 1 }] }),
            "input.activities.0.promptFingerprint",
        ),
        (
            json!({ "runId": RUN_ID, "context": context(), "activities": [
                { "stepIndex": 0, "skillId": "s", "modelName": "m", "promptFingerprint": fp, "promptTokenLength": 1 },
                { "stepIndex": 0, "skillId": "s", "modelName": "m", "promptFingerprint": fp, "promptTokenLength": 1 }] }),
            "input.activities.1.stepIndex",
        ),
        (
            json!({ "runId": RUN_ID, "context": context(), "providers": [
                { "stepIndex": -1, "providerName": "p", "modelName": "m" }] }),
            "input.providers.0.stepIndex",
        ),
        (
            json!({ "runId": RUN_ID, "context": context(), "policyDecisions": [
                { "policyType": "BUDGET", "decision": "GRANTED", "decisionConfidence": 2.0 }] }),
            "input.policyDecisions.0.decisionConfidence",
        ),
        (
            json!({ "runId": RUN_ID, "failures": [
                { "artifact": "ACTIVITY_EVIDENCE", "failureReason": "Bad Reason" }] }),
            "input.failures.0.failureReason",
        ),
    ];
    for (input, field) in cases {
        let body = app
            .gql(Some(&ingest), CAPTURE, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"],
            json!(field),
            "{body:#}"
        );
    }
    let bad_enum = app
        .gql(
            Some(&ingest),
            CAPTURE,
            json!({ "input": { "runId": RUN_ID, "context": context(), "environment": { "sdkMode": "WARP" } } }),
        )
        .await;
    assert!(bad_enum["errors"].is_array());
    let missing = app
        .gql(
            Some(&ingest),
            CAPTURE,
            json!({ "input": { "runId": "no-such-run", "seal": true } }),
        )
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
    for role in [Role::Viewer, Role::Operator] {
        let key = app.key("acme", role).await;
        let body = app
            .gql(Some(&key), CAPTURE, json!({ "input": full_input() }))
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    let nothing = app.data(&viewer, RUN, json!({ "r": RUN_ID })).await;
    assert_eq!(
        nothing["llmRun"]["integrity"]["observedArtifacts"],
        json!([])
    );

    // Both tenants have a run `ev-run-00000`: each captures its own evidence, unaffected by
    // the other's rows (the keys are per tenant).
    let a = app
        .data(&ingest, CAPTURE, json!({ "input": full_input() }))
        .await;
    let b = app
        .data(&ingest_b, CAPTURE, json!({ "input": full_input() }))
        .await;
    assert_eq!(
        statuses(&b["captureEvidence"])
            .iter()
            .filter(|(_, s)| s == "CREATED")
            .count(),
        5,
        "{b:#}"
    );
    assert_ne!(
        a["captureEvidence"]["captured"][0]["id"],
        b["captureEvidence"]["captured"][0]["id"]
    );
    let ra = app.data(&viewer, RUN, json!({ "r": RUN_ID })).await;
    let rb = app.data(&viewer_b, RUN, json!({ "r": RUN_ID })).await;
    assert_eq!(count_of(&ra["llmRun"]["integrity"], "ACTIVITY_EVIDENCE"), 2);
    assert_eq!(count_of(&rb["llmRun"]["integrity"], "ACTIVITY_EVIDENCE"), 2);
    // A tenant without the run gets NOT_FOUND, like a missing run.
    let gamma = app.key("gamma", Role::Ingest).await;
    let body = app
        .gql(Some(&gamma), CAPTURE, json!({ "input": full_input() }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    app.stop().await;
}

async fn capture_errors_are_recorded_not_swallowed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    setup(&app, "acme", "acme").await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    // Make every provider_evidence insert fail at the database.
    match backend {
        Backend::Sqlite => {
            app.raw(
                "CREATE TRIGGER lb_test_boom BEFORE INSERT ON provider_evidence \
                 BEGIN SELECT RAISE(ABORT, 'provider store offline'); END",
            )
            .await
            .expect("present");
        }
        Backend::Postgres => {
            app.raw(
                "CREATE FUNCTION lb_test_boom() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'provider store offline'; END $$",
            )
            .await
            .expect("present");
            app.raw(
                "CREATE TRIGGER lb_test_boom BEFORE INSERT ON provider_evidence \
                 FOR EACH ROW EXECUTE FUNCTION lb_test_boom()",
            )
            .await
            .expect("present");
        }
    }
    let mut input = full_input();
    input["failures"] = json!([
        { "artifact": "ACTIVITY_EVIDENCE", "failureReason": "pre_attach", "errorMessage": "e".repeat(600) },
        { "artifact": "AOS_TRACES", "failureReason": "network_partition" }
    ]);
    let out =
        app.data(&ingest, CAPTURE, json!({ "input": input })).await["captureEvidence"].clone();
    let failures = out["failures"].as_array().expect("present");
    assert_eq!(failures.len(), 3, "{out:#}");
    assert_eq!(failures[0]["evidenceType"], json!("provider_evidence"));
    assert_eq!(failures[0]["failureReason"], json!("database_error"));
    assert_eq!(failures[0]["resolution"], json!("TRANSIENT"));
    assert!(
        failures[0]["errorMessage"]
            .as_str()
            .expect("present")
            .contains("provider store offline"),
        "{out:#}"
    );
    assert_eq!(failures[1]["resolution"], json!("PERMANENT"));
    assert_eq!(
        failures[1]["errorMessage"].as_str().expect("present").len(),
        500
    );
    assert_eq!(failures[2]["resolution"], json!("TRANSIENT"));
    // Everything else of the call was written, in the same transaction as the failure rows.
    assert!(statuses(&out).iter().all(|(c, _)| c != "PROVIDER"));
    assert_eq!(statuses(&out).len(), 4);

    let run = app.data(&viewer, RUN, json!({ "r": RUN_ID })).await["llmRun"].clone();
    let integrity = &run["integrity"];
    assert_eq!(count_of(integrity, "PROVIDER_EVIDENCE"), 0);
    assert_eq!(count_of(integrity, "ENVIRONMENT_EVIDENCE"), 1);
    let graded: Vec<(String, String, String)> = integrity["captureFailures"]
        .as_array()
        .expect("present")
        .iter()
        .map(|f| {
            (
                f["evidenceType"].as_str().expect("present").to_owned(),
                f["failureReason"].as_str().expect("present").to_owned(),
                f["resolution"].as_str().expect("present").to_owned(),
            )
        })
        .collect();
    assert!(graded.contains(&(
        "provider_evidence".into(),
        "database_error".into(),
        "TRANSIENT".into()
    )));
    // Activity evidence was captured anyway, so its pre_attach failure is superseded.
    assert!(graded.contains(&(
        "activity_evidence".into(),
        "pre_attach".into(),
        "SUPERSEDED".into()
    )));
    assert_eq!(integrity["grade"], json!("FAIL"));

    // The same (class, reason) again is kept once.
    let again = app
        .data(
            &ingest,
            CAPTURE,
            json!({ "input": { "runId": RUN_ID, "failures": [
                { "artifact": "AOS_TRACES", "failureReason": "network_partition" }] } }),
        )
        .await;
    assert_eq!(
        again["captureEvidence"]["failures"][0]["newlyRecorded"],
        json!(false)
    );
    let run = app.data(&viewer, RUN, json!({ "r": RUN_ID })).await["llmRun"].clone();
    assert_eq!(
        run["integrity"]["captureFailures"]
            .as_array()
            .expect("present")
            .len(),
        3
    );
    app.stop().await;
}

crate::cases!(
    capture_evidence_feeds_integrity,
    capture_evidence_guards_input_roles_and_tenants,
    capture_errors_are_recorded_not_swallowed,
);
