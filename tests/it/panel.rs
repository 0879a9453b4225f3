//! `panel(input)`: cross-slot consistency checks over HTTP (the rules themselves are unit-tested
//! in `src/panel`).

use logbook::auth::Role;
use serde_json::{json, Value};

use crate::support::{error_code, Backend, TestApp};

const CHECK: &str = r#"query($input: PanelInput!) {
  panel(input: $input) {
    panelId isConsistent
    violations { ruleId ruleName slots expected actual severity }
    warnings { ruleId }
  }
}"#;

async fn default_rules_and_duplicates(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let input = json!({
        "panelId": "overview",
        "slots": [
            {"slotId": "incidents", "slotContractId": "c.incidents",
             "outputSignals": {"active_incidents": 2, "highest_severity": "NONE", "active_runs": 3}},
            {"slotId": "health", "slotContractId": "c.health",
             "outputSignals": {"attention_required": false, "active_runs": 4,
                               "runs.by_status.running": 3, "at_risk_runs": 0, "system_state": "OK"}}
        ]
    });
    let data = app.data(&key, CHECK, json!({"input": input})).await;
    let panel = &data["panel"];
    assert_eq!(panel["panelId"], "overview");
    assert_eq!(panel["isConsistent"], false);
    assert_eq!(panel["warnings"], json!([]));
    let violations = panel["violations"].as_array().expect("violations");
    let ids: Vec<&str> = violations
        .iter()
        .map(|v| v["ruleId"].as_str().expect("id"))
        .collect();
    // duplicates first; CONS-003 holds with the first value of active_runs (3)
    assert_eq!(ids, ["CONS-DUP", "CONS-001", "CONS-004"]);
    assert_eq!(
        violations[0],
        json!({"ruleId": "CONS-DUP", "ruleName": "duplicate_signal_mismatch",
               "slots": ["incidents", "health"], "expected": "active_runs=3 (from incidents)",
               "actual": "active_runs=4 (from health)", "severity": "ERROR"})
    );
    assert_eq!(violations[1]["slots"], json!(["incidents", "health"]));
    assert_eq!(
        violations[1]["actual"],
        "active_incidents=2, attention_required=false"
    );
    assert_eq!(violations[2]["slots"], json!(["incidents"]));

    let consistent = json!({
        "panelId": "p", "slots": [{"slotId": "s", "slotContractId": "c",
        "outputSignals": {"active_incidents": 0, "attention_required": false}}]
    });
    let data = app.data(&key, CHECK, json!({"input": consistent})).await;
    assert_eq!(data["panel"]["isConsistent"], true);
    assert_eq!(data["panel"]["violations"], json!([]));
    app.stop().await;
}

async fn custom_rules_and_bad_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let input = json!({
        "panelId": "p",
        "slots": [{"slotId": "s", "slotContractId": "c",
                   "outputSignals": {"errors": 0, "healthy": false, "active_runs": 1}}],
        "rules": [{"ruleId": "R-1", "ruleName": "zero_errors_mean_healthy",
                   "signalA": "errors", "signalB": "healthy",
                   "condition": "signal_a == 0 implies signal_b == true"}]
    });
    let data = app.data(&key, CHECK, json!({"input": input})).await;
    let violations = &data["panel"]["violations"];
    assert_eq!(
        violations.as_array().expect("list").len(),
        1,
        "custom rules replace defaults"
    );
    assert_eq!(violations[0]["ruleId"], "R-1");
    assert_eq!(
        violations[0]["expected"],
        "signal_a == 0 implies signal_b == true"
    );
    assert_eq!(violations[0]["actual"], "errors=0, healthy=false");

    let not_object = json!({"panelId": "p", "slots": [
        {"slotId": "s", "slotContractId": "c", "outputSignals": [1, 2]}]});
    let body = app
        .gql(Some(&key), CHECK, json!({"input": not_object}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        "input.slots[0].outputSignals"
    );

    let body = app
        .gql(None, CHECK, json!({"input": {"panelId": "p", "slots": []}}))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    let ingest = app.key("acme", Role::Ingest).await;
    let body = app
        .gql(
            Some(&ingest),
            CHECK,
            json!({"input": {"panelId": "p", "slots": []}}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let _: Value = body;
    app.stop().await;
}

crate::cases!(default_rules_and_duplicates, custom_rules_and_bad_input);
