//! Producer free text is redacted before it is stored on every write path that takes it
//! (docs/domain.md §12): audit action reasons and states (and the hash chain still verifies over
//! what is stored), mismatch reasons, details and resolution notes, and the client address and
//! user agent of evidence (the address loses its host part; a non-address is refused).

use logbook::auth::Role;
use serde_json::{json, Value};

use crate::audit_writes::assert_chain;
use crate::support::{error_code, fixed_time, insert_runs, make_runs, Backend, TestApp};
use crate::traces_reads::{insert_traces, trace};

const SECRET_EMAIL: &str = "alice.secret@example.com";
const BEARER: &str = "Bearer sk-live-0123456789abcdef0123";

/// Every string in `value`, at any depth, with map keys.
fn all_text(value: &Value) -> String {
    value.to_string()
}

fn assert_clean(value: &Value, what: &str) {
    let text = all_text(value);
    for secret in [
        SECRET_EMAIL,
        "sk-live-0123456789abcdef0123",
        "hunter2",
        "555-867-5309",
    ] {
        assert!(
            !text.contains(secret),
            "{what} still holds {secret}: {text}"
        );
    }
}

async fn audit_reasons_and_states_are_redacted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let input = json!({
        "eventType": "LIMIT_UPDATED", "entityType": "LIMIT", "entityId": "lim-1",
        "actorType": "HUMAN", "actorId": "alice",
        "actionReason": format!("approved by {SECRET_EMAIL}, call 555-867-5309"),
        "beforeState": { "value": 100, "owner": SECRET_EMAIL },
        "afterState": { "value": 200, "password": "hunter2",
                        "headers": { "note": BEARER }, "until": "2026-12-05T10:00:00Z" },
    });
    let entry = app
        .data(
            &ingest,
            "mutation($i: RecordAuditEventInput!) { recordAuditEvent(input: $i) {
               id actionReason beforeState afterState } }",
            json!({ "i": input }),
        )
        .await["recordAuditEvent"]
        .clone();
    assert_clean(&entry, "the returned entry");
    assert_eq!(entry["afterState"]["password"], json!("<REDACTED>"));
    assert_eq!(entry["afterState"]["value"], json!(200));
    assert_eq!(entry["afterState"]["until"], json!("2026-12-05T10:00:00Z"));
    assert!(entry["actionReason"]
        .as_str()
        .expect("reason")
        .starts_with("approved by <REDACTED_EMAIL>"));
    let read = app
        .data(
            &viewer,
            "query($id: ID!) { auditEntry(id: $id) { actionReason beforeState afterState } }",
            json!({ "id": entry["id"] }),
        )
        .await["auditEntry"]
        .clone();
    assert_clean(&read, "the stored entry");
    // The chain is hashed over the stored (redacted) entry, so it still verifies.
    assert_chain(&app, "acme", 1).await;
}

async fn mismatch_text_is_redacted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    insert_traces(app.db(), vec![trace("acme", "t1", "run-1", fixed_time())]).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let operator = app.key("acme", Role::Operator).await;
    let fields = "id reason details resolutionNote";
    let reported = app
        .data(
            &ingest,
            &format!(
                "mutation($i: ReportMismatchInput!) {{ reportMismatch(input: $i) {{ {fields} }} }}"
            ),
            json!({ "i": {
                "traceId": "t1", "stepIndex": 0,
                "reason": format!("diverged for {SECRET_EMAIL}"),
                "details": { "api_key": "abc", "prompt": format!("{BEARER} please"),
                             "list": [{ "password": "hunter2" }] },
            } }),
        )
        .await["reportMismatch"]
        .clone();
    assert_clean(&reported, "the reported mismatch");
    assert_eq!(reported["reason"], json!("diverged for <REDACTED_EMAIL>"));
    assert_eq!(reported["details"]["api_key"], json!("<REDACTED>"));
    let resolved = app
        .data(
            &operator,
            &format!(
                "mutation($id: ID!, $n: String) {{ resolveMismatch(id: $id, note: $n) {{ {fields} }} }}"
            ),
            json!({ "id": reported["id"], "n": "rang 555-867-5309, fixed" }),
        )
        .await["resolveMismatch"]
        .clone();
    assert_clean(&resolved, "the resolved mismatch");
    assert_eq!(
        resolved["resolutionNote"],
        json!("rang <REDACTED_PHONE>, fixed")
    );
}

const CAPTURE: &str = r#"mutation C($input: CaptureEvidenceInput!) {
  captureEvidence(input: $input) { failures { evidenceType } } }"#;

fn capture_input(ip: &str) -> Value {
    json!({
        "runId": "red-run-00000",
        "context": { "traceId": "trace_red-run-00000", "source": "SDK" },
        "environment": { "sdkMode": "INLINE", "clientIp": ip,
                         "clientUserAgent": format!("agent/1.0 ({SECRET_EMAIL})") },
    })
}

async fn evidence_client_address_and_agent_are_redacted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.key("acme", Role::Viewer).await;
    let mut runs = make_runs("acme", "red", 1, fixed_time());
    runs[0].id = "red-rec".into();
    insert_runs(app.db(), &runs).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let read = "query { llmRun(runId: \"red-run-00000\") {
        evidence { environment { clientIp clientUserAgent } } } }";

    // Not an address: refused, and nothing is captured.
    let refused = app
        .gql(
            Some(&ingest),
            CAPTURE,
            json!({ "input": capture_input("203.0.113.7, 10.0.0.1") }),
        )
        .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused:#}");
    assert_eq!(
        refused["errors"][0]["extensions"]["field"],
        json!("input.environment.clientIp")
    );
    let env = app.data(&viewer, read, json!({})).await;
    assert_eq!(env["llmRun"]["evidence"]["environment"], json!([]));

    let done = app
        .data(
            &ingest,
            CAPTURE,
            json!({ "input": capture_input("203.0.113.77") }),
        )
        .await;
    assert_eq!(done["captureEvidence"]["failures"], json!([]));
    let env = app.data(&viewer, read, json!({})).await["llmRun"]["evidence"]["environment"].clone();
    assert_eq!(
        env,
        json!([{ "clientIp": "203.0.113.0",
                 "clientUserAgent": "agent/1.0 (<REDACTED_EMAIL>)" }])
    );
}

crate::cases!(
    audit_reasons_and_states_are_redacted,
    mismatch_text_is_redacted,
    evidence_client_address_and_agent_are_redacted,
);
