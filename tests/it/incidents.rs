//! `incidents` and `incident`: incidents as stored, filtered and keyset-paged, with the run that
//! opened each, the audit entries about it and the cost anomalies escalated to it, all in the
//! caller's tenant (another tenant has runs with the same run ids, and audit entries and
//! anomalies naming the caller's incident ids), and
//! batched: a page's nested fields cost the same statements whatever its size.

use chrono::{DateTime, Duration, Utc};
use entity::{cost_anomalies, incidents};
use logbook::auth::Role;
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use serde_json::{json, Value};

use crate::support::{
    error_code, fewest_statements, fixed_time, insert_runs, make_runs, Backend, TestApp,
};

pub(crate) fn incident(tenant: &str, i: usize, at: DateTime<Utc>) -> incidents::Model {
    let severity = ["critical", "high", "medium", "low"][i % 4];
    let status = ["open", "acknowledged", "resolved"][i % 3];
    incidents::Model {
        id: format!("{tenant}-inc-{i:02}"),
        tenant_id: tenant.to_owned(),
        title: format!("{tenant} incident {i}"),
        severity: severity.into(),
        status: status.into(),
        trigger_type: if i % 2 == 0 {
            "run_failure"
        } else {
            "budget_exceeded"
        }
        .into(),
        source_run_id: Some(format!("inc-run-{i:05}")),
        category: Some("EXECUTION_FAILURE".into()),
        description: None,
        error_code: Some("TIMEOUT".into()),
        error_message: None,
        lifecycle_state: ["ACTIVE", "ACKED", "RESOLVED"][i % 3].into(),
        cause_type: "LLM_RUN".into(),
        inflection_step_index: Some(2),
        inflection_timestamp: Some(at),
        started_at: at - Duration::minutes(5),
        ended_at: None,
        resolved_at: (status == "resolved").then_some(at),
        resolved_by: None,
        is_synthetic: false,
        synthetic_scenario_id: None,
        created_at: at,
        updated_at: at,
    }
}

pub(crate) async fn anomaly(
    app: &TestApp,
    tenant: &str,
    id: &str,
    incident: &str,
    at: DateTime<Utc>,
) {
    cost_anomalies::ActiveModel {
        id: Set(id.into()),
        tenant_id: Set(tenant.into()),
        anomaly_type: Set("ABSOLUTE_SPIKE".into()),
        severity: Set("HIGH".into()),
        entity_type: Set("tenant".into()),
        entity_id: Set(None),
        current_value_cents: Set(300.0),
        expected_value_cents: Set(100.0),
        deviation_pct: Set(200.0),
        threshold_pct: Set(140.0),
        message: Set(format!("{tenant} spike {id}")),
        incident_id: Set(Some(incident.into())),
        action_taken: Set(None),
        resolved: Set(false),
        resolved_at: Set(None),
        metadata: Set(None),
        detected_at: Set(at),
        snapshot_id: Set(None),
        baseline_id: Set(None),
        derived_cause: Set(None),
        breach_count: Set(1),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
        resolved_by: Set(None),
        resolution_note: Set(None),
    }
    .insert(app.db())
    .await
    .expect("anomaly");
}

const AUDIT: &str =
    r#"mutation($i: RecordAuditEventInput!) { recordAuditEvent(input: $i) { seq } }"#;

/// For `tenant`: `n` incidents of runs `inc-run-0000i`, an audit entry about each even one of
/// `about`'s incidents (ids are global, so another tenant names acme's), and two anomalies
/// escalated to `about`'s first incident.
async fn write_tenant(app: &TestApp, tenant: &str, n: usize, about: &str) {
    let admin = app.key(tenant, Role::Admin).await;
    let t0 = fixed_time();
    let mut runs = make_runs(tenant, "inc", n, t0);
    for r in &mut runs {
        r.id = format!("{tenant}-{}", r.id);
    }
    insert_runs(app.db(), &runs).await;
    for i in 0..n {
        incident(tenant, i, t0 - Duration::minutes(i as i64))
            .into_active_model()
            .insert(app.db())
            .await
            .expect("incident");
    }
    for i in (0..10).step_by(2) {
        let input = json!({ "eventType": "INCIDENT_ACKNOWLEDGED", "entityType": "INCIDENT",
                            "entityId": format!("{about}-inc-{i:02}"), "actorType": "HUMAN",
                            "actorId": format!("{tenant}-oncall"), "afterState": { "by": tenant } });
        app.data(&admin, AUDIT, json!({ "i": input })).await;
    }
    let first = format!("{about}-inc-00");
    anomaly(
        app,
        tenant,
        &format!("{tenant}-an-1"),
        &first,
        t0 - Duration::hours(2),
    )
    .await;
    anomaly(
        app,
        tenant,
        &format!("{tenant}-an-2"),
        &first,
        t0 - Duration::hours(1),
    )
    .await;
}

const LIST: &str = r#"
query L($filter: IncidentListFilter, $first: Int, $after: String) {
  incidents(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id incidentId title severity status lifecycleState causeType triggerType sourceRunId
      sourceRun { runId recordId }
      auditEntries { entityId actorId eventType }
      costAnomalies { message incidentId }
    }
  }
}"#;

async fn incidents_are_listed_with_their_run_audit_and_anomalies(backend: Backend) {
    let app = TestApp::spawn_for_counting(backend).await;
    write_tenant(&app, "acme", 10, "acme").await;
    // globex's entries and anomalies name acme's incident ids: acme must not see them.
    write_tenant(&app, "globex", 3, "acme").await;
    let viewer = app.key("acme", Role::Viewer).await;

    // Every page, newest first.
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let data = app
            .data(&viewer, LIST, json!({ "first": 4, "after": cursor }))
            .await;
        let connection = &data["incidents"];
        assert_eq!(connection["totalCount"], 10);
        for node in connection["nodes"].as_array().unwrap() {
            seen.push(node.clone());
        }
        if !connection["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        cursor = connection["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    let ids: Vec<&str> = seen
        .iter()
        .map(|n| n["incidentId"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("acme-inc-{i:02}")).collect();
    assert_eq!(ids, expected);
    for (i, node) in seen.iter().enumerate() {
        assert_eq!(
            node["title"],
            format!("acme incident {i}"),
            "acme's, not globex's"
        );
        assert_eq!(
            node["severity"],
            ["CRITICAL", "HIGH", "MEDIUM", "LOW"][i % 4]
        );
        assert_eq!(node["status"], ["OPEN", "ACKNOWLEDGED", "RESOLVED"][i % 3]);
        assert_eq!(
            node["lifecycleState"],
            ["ACTIVE", "ACKED", "RESOLVED"][i % 3]
        );
        assert_eq!(node["causeType"], "LLM_RUN");
        let run_id = format!("inc-run-{i:05}");
        assert_eq!(node["sourceRun"]["runId"], run_id.as_str());
        assert_eq!(
            node["sourceRun"]["recordId"],
            format!("acme-inc-rec-{i:05}")
        );
        let audit = node["auditEntries"].as_array().unwrap();
        if i % 2 == 0 {
            assert_eq!(audit.len(), 1, "{i}");
            assert_eq!(audit[0]["actorId"], "acme-oncall");
            assert_eq!(audit[0]["entityId"], format!("acme-inc-{i:02}"));
        } else {
            assert!(audit.is_empty());
        }
        let anomalies: Vec<&Value> = node["costAnomalies"].as_array().unwrap().iter().collect();
        if i == 0 {
            let messages: Vec<&str> = anomalies
                .iter()
                .map(|a| a["message"].as_str().unwrap())
                .collect();
            assert_eq!(messages, ["acme spike acme-an-2", "acme spike acme-an-1"]);
        } else {
            assert!(anomalies.is_empty());
        }
    }

    // Filters, and `incident` / `node` by id.
    let data = app
        .data(
            &viewer,
            LIST,
            json!({ "filter": { "severity": ["CRITICAL", "LOW"], "status": ["OPEN"] } }),
        )
        .await;
    let ids: Vec<&str> = data["incidents"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["incidentId"].as_str().unwrap())
        .collect();
    // Open: 0, 3, 6, 9; critical or low: 0, 3, 4, 7, 8.
    assert_eq!(ids, ["acme-inc-00", "acme-inc-03"]);
    let data = app
        .data(
            &viewer,
            r#"{ incident(incidentId: "acme-inc-03") { id title } }"#,
            json!({}),
        )
        .await;
    let id = data["incident"]["id"].clone();
    let node = app
        .data(
            &viewer,
            "query($id: ID!) { node(id: $id) { ... on Incident { incidentId title } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        node["node"],
        json!({ "incidentId": "acme-inc-03", "title": "acme incident 3" })
    );
    // Another tenant's incident is missing, like one that does not exist.
    for id in ["globex-inc-00", "acme-inc-99"] {
        let query = format!(r#"{{ incident(incidentId: "{id}") {{ id }} }}"#);
        let missing = app.gql(Some(&viewer), &query, json!({})).await;
        assert_eq!(error_code(&missing), "NOT_FOUND", "{id}");
    }

    // Batched: a page of 2 and a page of 10 cost the same statements.
    let statements = |first: i32| fewest_statements(&app, &viewer, LIST, json!({ "first": first }));
    let (small, large) = (statements(2).await, statements(10).await);
    eprintln!("SQL statements for incidents: 2 → {small}, 10 → {large}");
    assert!(
        large <= small,
        "incident statements grow with the page: {small} → {large}"
    );
    app.stop().await;
}

crate::cases!(incidents_are_listed_with_their_run_audit_and_anomalies);
