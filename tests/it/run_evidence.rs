//! Captured evidence read back under `LlmRun.evidence`: environment, activity, provider and
//! policy decision rows as `captureEvidence` stored them, in the caller's tenant only (another
//! tenant captured evidence for the same run id), and batched: a page of runs costs the same
//! statements whatever its size.

use logbook::auth::Role;
use serde_json::{json, Value};

use crate::support::{fewest_statements, fixed_time, insert_runs, make_runs, Backend, TestApp};

const CAPTURE: &str = r#"
mutation C($input: CaptureEvidenceInput!) { captureEvidence(input: $input) { runId } }"#;

const PAGE: &str = r#"
query P($first: Int) {
  llmRuns(first: $first) {
    nodes {
      runId
      evidence {
        runId
        environment { runId sdkMode sdkVersion environment activeFeatureFlags captureConfidenceScore }
        activities { stepIndex skillId modelName promptFingerprint promptTokenLength sensitivityClass evidenceSource }
        providers { stepIndex providerName modelName inputTokens outputTokens providerHttpStatus requestedAt }
        policyDecisions { policyType decision decisionConfidence policiesEvaluated policyResults thresholdsUsed }
      }
    }
  }
}"#;

/// Evidence for `run_id` whose values name `tag`, so another tenant's rows would show.
fn capture_input(run_id: &str, tag: &str, steps: i32) -> Value {
    let activities: Vec<Value> = (0..steps)
        .rev()
        .map(|i| {
            json!({ "stepIndex": i, "skillId": format!("skill-{tag}"), "modelName": "gpt-4o",
                    "prompt": format!("{tag} prompt {i}"), "promptTokenLength": 10 + i,
                    "sensitivityClass": "INTERNAL" })
        })
        .collect();
    json!({
        "runId": run_id,
        "context": { "traceId": format!("trace_{run_id}"), "source": "SDK" },
        "environment": { "sdkMode": "INLINE", "sdkVersion": format!("1.0-{tag}"),
                         "environment": "PROD", "activeFeatureFlags": [tag],
                         "captureConfidenceScore": 0.75 },
        "activities": activities,
        "providers": [
            { "stepIndex": 0, "providerName": "openai", "modelName": "gpt-4o",
              "inputTokens": 100, "outputTokens": steps, "providerHttpStatus": 200 }
        ],
        "policyDecisions": [
            { "policyType": "BUDGET", "decision": "GRANTED", "decisionConfidence": 1.0,
              "policiesEvaluated": [format!("p-{tag}")], "policyResults": "PASS",
              "thresholdsUsed": { "max": steps } }
        ]
    })
}

async fn captured_evidence_is_read_back_per_run_and_tenant(backend: Backend) {
    let app = TestApp::spawn_for_counting(backend).await;
    let acme = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let globex = app.key("globex", Role::Admin).await;
    let t0 = fixed_time();
    insert_runs(app.db(), &make_runs("acme", "ev", 14, t0)).await;
    let mut theirs = make_runs("globex", "ev", 1, t0);
    theirs[0].id = "globex-ev-rec".into();
    insert_runs(app.db(), &theirs).await;
    // acme: evidence for the first 12 runs (run i with i % 3 + 1 steps); globex: for run 0.
    for i in 0..12 {
        let run_id = format!("ev-run-{i:05}");
        let input = capture_input(&run_id, "acme", i % 3 + 1);
        app.data(&acme, CAPTURE, json!({ "input": input })).await;
    }
    let input = capture_input("ev-run-00000", "globex", 5);
    app.data(&globex, CAPTURE, json!({ "input": input })).await;

    let data = app.data(&viewer, PAGE, json!({ "first": 14 })).await;
    let nodes = data["llmRuns"]["nodes"].as_array().expect("runs");
    assert_eq!(nodes.len(), 14);
    for node in nodes {
        let run_id = node["runId"].as_str().unwrap();
        let i: i32 = run_id.trim_start_matches("ev-run-").parse().unwrap();
        let evidence = &node["evidence"];
        if i >= 12 {
            for kind in ["environment", "activities", "providers", "policyDecisions"] {
                assert_eq!(evidence[kind], json!([]), "{run_id} has no {kind}");
            }
            continue;
        }
        let steps = i % 3 + 1;
        assert_eq!(
            evidence["environment"],
            // As stored: capture keeps the SDK mode and environment in lower case.
            json!([{ "runId": run_id, "sdkMode": "inline", "sdkVersion": "1.0-acme",
                     "environment": "prod", "activeFeatureFlags": ["acme"],
                     "captureConfidenceScore": 0.75 }]),
            "{run_id}"
        );
        let activities = evidence["activities"].as_array().unwrap();
        assert_eq!(activities.len() as i32, steps, "{run_id}");
        for (index, activity) in activities.iter().enumerate() {
            // In step order, though captured in reverse.
            assert_eq!(activity["stepIndex"], index, "{run_id}");
            assert_eq!(activity["skillId"], "skill-acme");
            assert_eq!(activity["promptTokenLength"], 10 + index);
            assert_eq!(
                activity["promptFingerprint"],
                logbook::evidence::fingerprint(&format!("acme prompt {index}")),
                "the prompt is stored as its fingerprint"
            );
            assert_eq!(activity["evidenceSource"], "sdk");
        }
        assert_eq!(evidence["providers"][0]["outputTokens"], steps);
        assert_eq!(evidence["providers"][0]["providerHttpStatus"], 200);
        assert_eq!(
            evidence["policyDecisions"],
            json!([{ "policyType": "budget", "decision": "GRANTED", "decisionConfidence": 1.0,
                     "policiesEvaluated": ["p-acme"], "policyResults": "pass",
                     "thresholdsUsed": { "max": steps } }]),
            "{run_id}"
        );
    }
    // globex sees its own evidence for the same run id.
    let globex_viewer = app.key("globex", Role::Viewer).await;
    let data = app.data(&globex_viewer, PAGE, json!({ "first": 5 })).await;
    let evidence = &data["llmRuns"]["nodes"][0]["evidence"];
    assert_eq!(evidence["activities"].as_array().unwrap().len(), 5);
    assert_eq!(evidence["environment"][0]["sdkVersion"], "1.0-globex");

    // Batched: the statements do not grow with the page.
    let statements = |first: i32| fewest_statements(&app, &viewer, PAGE, json!({ "first": first }));
    let (small, large) = (statements(2).await, statements(14).await);
    eprintln!("SQL statements for evidence: 2 runs → {small}, 14 runs → {large}");
    assert!(
        large <= small,
        "evidence statements grow with the page: {small} → {large}"
    );
    app.stop().await;
}

crate::cases!(captured_evidence_is_read_back_per_run_and_tenant);
