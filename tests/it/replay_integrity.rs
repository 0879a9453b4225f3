//! `replayWindow` (three sources merged inside ±30 s of the inflection point) and `integrity`
//! (the grading of docs/domain.md §8.3 with stored resolutions honoured), tenant-scoped, and their
//! batch loaders costing a constant number of statements.

use chrono::{DateTime, Duration, Utc};
use entity::{
    activity_evidence, audit_ledger, environment_evidence, evidence_capture_failures,
    integrity_evidence, policy_decisions, provider_evidence, system_records,
};
use logbook::auth::{Role, TenantId};
use sea_orm::{DatabaseConnection, EntityTrait, IntoActiveModel};
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, insert_runs, make_runs, Backend, TestApp};
use crate::traces_reads::{insert_steps, insert_traces, step, trace};

fn ts(at: DateTime<Utc>) -> String {
    logbook::scalars::format_utc(at)
}

/// One run record `run_id` of `tenant`, completed at `completed` (or still without completion).
async fn insert_run(
    db: &DatabaseConnection,
    tenant: &str,
    run_id: &str,
    started: DateTime<Utc>,
    completed: Option<DateTime<Utc>>,
) {
    let mut run = make_runs(tenant, run_id, 1, started).remove(0);
    run.id = format!("rec-{tenant}-{run_id}");
    run.run_id = run_id.to_owned();
    run.trace_id = None;
    run.started_at = started;
    run.completed_at = completed;
    insert_runs(db, &[run]).await;
}

fn system_record(id: &str, tenant: Option<&str>, at: DateTime<Utc>) -> system_records::Model {
    system_records::Model {
        id: id.to_owned(),
        tenant_id: tenant.map(str::to_owned),
        component: "worker".into(),
        event_type: "RESTART".into(),
        severity: "WARN".into(),
        summary: "worker restarted".into(),
        details: None,
        caused_by: Some("SYSTEM".into()),
        correlation_id: None,
        created_at: at,
    }
}

fn audit(
    id: &str,
    tenant: &str,
    seq: i64,
    event_type: &str,
    entity_type: &str,
    at: DateTime<Utc>,
) -> audit_ledger::Model {
    audit_ledger::Model {
        id: id.to_owned(),
        tenant_id: tenant.to_owned(),
        seq,
        event_type: event_type.to_owned(),
        entity_type: entity_type.to_owned(),
        entity_id: "e-1".into(),
        actor_type: "SYSTEM".into(),
        actor_id: None,
        action_reason: None,
        before_state: None,
        after_state: None,
        run_id: None,
        correlation_id: None,
        prev_hash: "0".repeat(64),
        entry_hash: format!("{:0>64}", seq),
        hash_version: 1,
        created_at: at,
    }
}

const WINDOW: &str = r#"
query Window($runId: String!) {
  replayWindow(runId: $runId) {
    runId traceId inflectionTimestamp inflectionSource windowStart windowEnd truncated
    events { source timestamp stepIndex action outcome recordId }
  }
}"#;

async fn replay_window_merges_three_sources(backend: Backend) {
    let app = TestApp::spawn_for_counting(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let other_key = app.key("other", Role::Viewer).await;
    let t = fixed_time();
    insert_run(
        app.db(),
        "acme",
        "run-1",
        t - Duration::seconds(120),
        Some(t),
    )
    .await;
    insert_run(app.db(), "acme", "run-2", t + Duration::hours(1), None).await;
    insert_run(
        app.db(),
        "acme",
        "run-3",
        t - Duration::hours(5),
        Some(t - Duration::hours(4)),
    )
    .await;
    insert_run(
        app.db(),
        "other",
        "run-o",
        t - Duration::seconds(60),
        Some(t),
    )
    .await;

    // run-1's trace: steps before, inside and after the window.
    let mut v = trace("acme", "trace_run-2", "run-2", t + Duration::hours(2));
    v.violation_timestamp = Some(t + Duration::hours(1) + Duration::seconds(50));
    v.violation_step_index = Some(1);
    insert_traces(
        app.db(),
        vec![
            trace("acme", "trace_run-1", "run-1", t),
            v,
            trace("other", "trace_run-o", "run-o", t),
        ],
    )
    .await;
    insert_steps(
        app.db(),
        vec![
            step(
                "trace_run-1",
                0,
                "plan",
                "success",
                t - Duration::seconds(40),
            ),
            step(
                "trace_run-1",
                1,
                "llm_invoke",
                "success",
                t - Duration::seconds(10),
            ),
            step(
                "trace_run-1",
                2,
                "http_call",
                "failure",
                t + Duration::seconds(5),
            ),
            step(
                "trace_run-1",
                3,
                "late",
                "success",
                t + Duration::seconds(31),
            ),
            step("trace_run-o", 0, "foreign", "success", t),
            step(
                "trace_run-2",
                0,
                "v0",
                "success",
                t + Duration::hours(1) + Duration::seconds(45),
            ),
        ],
    )
    .await;
    system_records::Entity::insert_many(
        vec![
            system_record("sys-own", Some("acme"), t - Duration::seconds(20)),
            system_record("sys-global", None, t + Duration::seconds(1)),
            system_record("sys-foreign", Some("other"), t),
            system_record("sys-late", Some("acme"), t + Duration::seconds(45)),
        ]
        .into_iter()
        .map(IntoActiveModel::into_active_model),
    )
    .exec_without_returning(app.db())
    .await
    .expect("system records");
    audit_ledger::Entity::insert_many(
        vec![
            audit(
                "aud-rule",
                "acme",
                1,
                "PolicyRuleCreated",
                "POLICY_RULE",
                t - Duration::seconds(29),
            ),
            audit(
                "aud-limit",
                "acme",
                2,
                "LimitBreached",
                "LIMIT",
                t + Duration::seconds(30),
            ),
            audit(
                "aud-incident",
                "acme",
                3,
                "IncidentAcknowledged",
                "INCIDENT",
                t,
            ),
            audit("aud-foreign", "other", 1, "LimitBreached", "LIMIT", t),
        ]
        .into_iter()
        .map(IntoActiveModel::into_active_model),
    )
    .exec_without_returning(app.db())
    .await
    .expect("audit rows");

    let data = app.data(&key, WINDOW, json!({ "runId": "run-1" })).await;
    let w = &data["replayWindow"];
    assert_eq!(w["runId"], json!("run-1"));
    assert_eq!(w["traceId"], json!("trace_run-1"));
    assert_eq!(w["inflectionTimestamp"], json!(ts(t)));
    assert_eq!(w["inflectionSource"], json!("RUN_COMPLETED"));
    assert_eq!(w["windowStart"], json!(ts(t - Duration::seconds(30))));
    assert_eq!(w["windowEnd"], json!(ts(t + Duration::seconds(30))));
    assert_eq!(w["truncated"], json!(false));
    let events: Vec<(String, String, String)> = w["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["source"].as_str().expect("source").to_owned(),
                e["recordId"].as_str().expect("id").to_owned(),
                e["timestamp"].as_str().expect("ts").to_owned(),
            )
        })
        .collect();
    let want = [
        ("POLICY", "aud-rule", t - Duration::seconds(29)),
        ("SYSTEM", "sys-own", t - Duration::seconds(20)),
        ("LLM", "trace_run-1-s0001", t - Duration::seconds(10)),
        ("SYSTEM", "sys-global", t + Duration::seconds(1)),
        ("LLM", "trace_run-1-s0002", t + Duration::seconds(5)),
        ("POLICY", "aud-limit", t + Duration::seconds(30)),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(s, id, at)| (s.to_string(), id.to_string(), ts(*at)))
        .collect();
    assert_eq!(events, want);
    assert_eq!(
        w["events"][2],
        json!({ "source": "LLM", "timestamp": ts(t - Duration::seconds(10)), "stepIndex": 1,
                "action": "llm_invoke", "outcome": "SUCCESS", "recordId": "trace_run-1-s0001" })
    );
    assert_eq!(w["events"][1]["action"], json!("RESTART"));
    assert_eq!(w["events"][1]["outcome"], json!("WARN"));
    assert_eq!(w["events"][5]["action"], json!("LimitBreached"));
    assert_eq!(w["events"][5]["outcome"], json!("LIMIT"));

    // The trace's violation timestamp wins over the run's times.
    let data = app.data(&key, WINDOW, json!({ "runId": "run-2" })).await;
    let w = &data["replayWindow"];
    assert_eq!(w["inflectionSource"], json!("VIOLATION"));
    assert_eq!(
        w["inflectionTimestamp"],
        json!(ts(t + Duration::hours(1) + Duration::seconds(50)))
    );
    assert_eq!(w["events"][0]["recordId"], json!("trace_run-2-s0000"));
    // A run without a trace: still a window, no LLM events.
    let data = app.data(&key, WINDOW, json!({ "runId": "run-3" })).await;
    assert_eq!(data["replayWindow"]["traceId"], Value::Null);
    assert_eq!(data["replayWindow"]["events"], json!([]));

    // No run record, or another tenant's: NOT_FOUND.
    for run in ["run-o", "missing"] {
        let body = app.gql(Some(&key), WINDOW, json!({ "runId": run })).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{run}");
    }
    // The other tenant's window sees neither acme's audit rows nor its system records.
    let data = app
        .data(&other_key, WINDOW, json!({ "runId": "run-o" }))
        .await;
    let ids: Vec<&str> = data["replayWindow"]["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["recordId"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec![
            "trace_run-o-s0000",
            "sys-foreign",
            "aud-foreign",
            "sys-global"
        ]
    );

    // The batch loader: the same statements for one run as for three.
    let tenant = TenantId::trusted("acme");
    let mut costs = Vec::new();
    for runs in [
        vec!["run-1".to_owned()],
        vec!["run-1".into(), "run-2".into(), "run-3".into()],
    ] {
        let before = app.state.sql.statements();
        let windows = logbook::replay::store::replay_windows_for_runs(app.db(), &tenant, &runs)
            .await
            .expect("windows");
        costs.push(app.state.sql.statements() - before);
        assert_eq!(windows.len(), runs.len());
    }
    assert_eq!(costs[0], costs[1], "{costs:?}");
    app.stop().await;
}

/// Evidence rows for `run_id`: one per listed class letter (B, D, G, H) plus trace (T) and
/// steps (S).
async fn evidence(app: &TestApp, tenant: &str, run_id: &str, classes: &str) {
    let db = app.db();
    let at = fixed_time();
    if classes.contains('B') {
        activity_evidence::Entity::insert(
            activity_evidence::Model {
                id: format!("ae-{run_id}-0"),
                tenant_id: tenant.into(),
                run_id: run_id.into(),
                step_index: 0,
                skill_id: "llm_invoke".into(),
                model_name: "claude".into(),
                prompt_fingerprint: "f".repeat(64),
                prompt_token_length: 10,
                prompt_template_id: None,
                prompt_template_version: None,
                response_fingerprint: None,
                response_token_length: None,
                completion_type: None,
                sensitivity_class: None,
                redaction_status: None,
                provider_safety_flags: None,
                evidence_source: "worker".into(),
                is_synthetic: false,
                synthetic_scenario_id: None,
                created_at: at,
            }
            .into_active_model(),
        )
        .exec_without_returning(db)
        .await
        .expect("B");
    }
    if classes.contains('D') {
        for n in 0..2 {
            policy_decisions::Entity::insert(
                policy_decisions::Model {
                    id: format!("pd-{run_id}-budget-{n}"),
                    tenant_id: tenant.into(),
                    run_id: run_id.into(),
                    policy_type: "budget".into(),
                    policy_rule_id: None,
                    policy_version: None,
                    decision: "GRANTED".into(),
                    decision_reason: None,
                    decision_confidence: None,
                    policies_evaluated: None,
                    policy_results: None,
                    evaluation_order: None,
                    thresholds_used: None,
                    customer_guardrail_result: None,
                    provider_moderation_result: None,
                    decision_reason_codes: None,
                    approval_request_id: None,
                    required_approval_level: None,
                    current_approval_level: None,
                    evaluated_by: None,
                    evaluated_at: at,
                    is_synthetic: false,
                    synthetic_scenario_id: None,
                    created_at: at,
                }
                .into_active_model(),
            )
            .exec_without_returning(db)
            .await
            .expect("D");
        }
    }
    if classes.contains('G') {
        provider_evidence::Entity::insert(
            provider_evidence::Model {
                id: format!("pe-{run_id}-0"),
                tenant_id: tenant.into(),
                run_id: run_id.into(),
                step_index: 0,
                provider_name: "anthropic".into(),
                provider_request_id: None,
                model_name: "claude".into(),
                model_version: None,
                input_tokens: Some(1),
                output_tokens: Some(1),
                cache_read_tokens: Some(0),
                cache_creation_tokens: Some(0),
                total_tokens: Some(2),
                api_version: None,
                endpoint: None,
                provider_latency_ms: None,
                provider_http_status: Some(200),
                provider_error_code: None,
                provider_retry_count: Some(0),
                provider_safety_signals: None,
                requested_at: at,
                responded_at: Some(at),
                is_synthetic: false,
                synthetic_scenario_id: None,
                created_at: at,
            }
            .into_active_model(),
        )
        .exec_without_returning(db)
        .await
        .expect("G");
    }
    if classes.contains('H') {
        environment_evidence::Entity::insert(
            environment_evidence::Model {
                id: format!("ee-{run_id}"),
                tenant_id: tenant.into(),
                run_id: run_id.into(),
                sdk_mode: "inline".into(),
                sdk_version: None,
                environment: Some("prod".into()),
                telemetry_enabled: Some(true),
                telemetry_delivery_status: None,
                trace_sampling_rate: Some(1.0),
                metrics_enabled: Some(true),
                client_ip: None,
                client_user_agent: None,
                client_origin: None,
                active_feature_flags: None,
                debug_mode: Some(false),
                dry_run: Some(false),
                capture_confidence_score: None,
                firewall_proxy_detected: None,
                is_synthetic: false,
                synthetic_scenario_id: None,
                created_at: at,
            }
            .into_active_model(),
        )
        .exec_without_returning(db)
        .await
        .expect("H");
    }
    if classes.contains('T') {
        let trace_id = format!("trace_{run_id}");
        insert_traces(db, vec![trace(tenant, &trace_id, run_id, at)]).await;
        if classes.contains('S') {
            insert_steps(db, vec![step(&trace_id, 0, "llm_invoke", "success", at)]).await;
        }
    }
}

async fn failure(
    app: &TestApp,
    tenant: &str,
    run_id: &str,
    evidence_type: &str,
    reason: &str,
    resolution: &str,
) {
    evidence_capture_failures::Entity::insert(
        evidence_capture_failures::Model {
            id: format!("ecf-{run_id}-{evidence_type}-{reason}"),
            tenant_id: tenant.into(),
            run_id: run_id.into(),
            evidence_type: evidence_type.into(),
            failure_reason: reason.into(),
            error_message: Some("boom".into()),
            resolution: resolution.into(),
            created_at: fixed_time(),
        }
        .into_active_model(),
    )
    .exec_without_returning(app.db())
    .await
    .expect("failure");
}

const INTEGRITY: &str = r#"
query Integrity($runId: String!) {
  integrity(runId: $runId) {
    runId state grade legacyStatus score explanation
    expectedArtifacts observedArtifacts missingArtifacts
    artifactCounts { artifact count }
    missingReasons { artifact reason }
    captureFailures { evidenceType artifact failureReason errorMessage resolution recordedResolution }
    sealedEvidence { status score }
  }
}"#;

async fn integrity_grading(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let _ = app.key("other", Role::Viewer).await;
    let t = fixed_time();
    let runs = [
        "all",
        "no-h",
        "permanent",
        "superseded",
        "required-only",
        "nothing",
        "transient",
    ];
    for run in runs {
        insert_run(app.db(), "acme", run, t, Some(t)).await;
    }
    insert_run(app.db(), "other", "foreign", t, Some(t)).await;

    evidence(&app, "acme", "all", "BDGHTS").await;
    evidence(&app, "acme", "no-h", "BDGTS").await;
    evidence(&app, "acme", "permanent", "DGHTS").await;
    failure(
        &app,
        "acme",
        "permanent",
        "activity_evidence",
        "pre_attach",
        "permanent",
    )
    .await;
    evidence(&app, "acme", "superseded", "BDGHTS").await;
    failure(
        &app,
        "acme",
        "superseded",
        "provider_evidence",
        "provider_timeout",
        "transient",
    )
    .await;
    evidence(&app, "acme", "required-only", "HTS").await;
    evidence(&app, "acme", "transient", "DGHTS").await;
    failure(
        &app,
        "acme",
        "transient",
        "activity_evidence",
        "network_partition",
        "transient",
    )
    .await;
    // Another tenant's evidence under the same run id never counts.
    evidence(&app, "other", "nothing", "BDGH").await;
    evidence(&app, "other", "foreign", "BDGHTS").await;
    integrity_evidence::Entity::insert(
        integrity_evidence::Model {
            id: "ie-all".into(),
            tenant_id: "acme".into(),
            run_id: "all".into(),
            expected_artifacts: json!([]),
            expected_artifact_schema: None,
            observed_artifacts: json!([]),
            missing_artifacts: None,
            missing_reasons: None,
            integrity_score: 1.0,
            integrity_status: "VALID".into(),
            verification_method: Some("evidence_table_scan".into()),
            verification_timestamp: Some(t),
            divergence_details: None,
            recovery_action: None,
            coverage_metrics: None,
            is_synthetic: false,
            synthetic_scenario_id: None,
            created_at: t,
        }
        .into_active_model(),
    )
    .exec_without_returning(app.db())
    .await
    .expect("seal");

    let report = |run: &'static str| {
        let app = &app;
        let key = &key;
        async move { app.data(key, INTEGRITY, json!({ "runId": run })).await["integrity"].clone() }
    };

    let all = report("all").await;
    assert_eq!(all["grade"], json!("PASS"));
    assert_eq!(all["state"], json!("SEALED"));
    assert_eq!(all["legacyStatus"], json!("VALID"));
    assert_eq!(all["score"], json!(1.0));
    assert_eq!(all["explanation"], json!("All evidence present (6/6)"));
    assert_eq!(
        all["expectedArtifacts"],
        json!([
            "ACTIVITY_EVIDENCE",
            "POLICY_DECISIONS",
            "PROVIDER_EVIDENCE",
            "ENVIRONMENT_EVIDENCE",
            "AOS_TRACES",
            "AOS_TRACE_STEPS"
        ])
    );
    assert_eq!(all["observedArtifacts"], all["expectedArtifacts"]);
    assert_eq!(all["missingArtifacts"], json!([]));
    assert_eq!(
        all["artifactCounts"][1],
        json!({ "artifact": "POLICY_DECISIONS", "count": 2 })
    );
    assert_eq!(
        all["sealedEvidence"],
        json!({ "status": "VALID", "score": 1.0 })
    );

    let no_h = report("no-h").await;
    assert_eq!(no_h["grade"], json!("FAIL"));
    assert_eq!(no_h["legacyStatus"], json!("FAILED"));
    assert_eq!(no_h["missingArtifacts"], json!(["ENVIRONMENT_EVIDENCE"]));
    assert_eq!(
        no_h["missingReasons"],
        json!([{ "artifact": "ENVIRONMENT_EVIDENCE", "reason": "no_records_found" }])
    );
    assert_eq!(
        no_h["explanation"],
        json!("Critical evidence missing: environment_evidence")
    );
    assert_eq!(no_h["sealedEvidence"], Value::Null);

    // A permanent failure of a missing class fails the run (the stored resolution counts).
    let permanent = report("permanent").await;
    assert_eq!(permanent["grade"], json!("FAIL"));
    assert_eq!(
        permanent["missingReasons"],
        json!([{ "artifact": "ACTIVITY_EVIDENCE", "reason": "pre_attach" }])
    );
    assert_eq!(
        permanent["captureFailures"],
        json!([{ "evidenceType": "activity_evidence", "artifact": "ACTIVITY_EVIDENCE", "failureReason": "pre_attach",
                 "errorMessage": "boom", "resolution": "PERMANENT", "recordedResolution": "PERMANENT" }])
    );
    // The same class missing with a transient failure only warns.
    let transient = report("transient").await;
    assert_eq!(transient["grade"], json!("WARN"));
    assert_eq!(
        transient["explanation"],
        json!("1 evidence types missing; 1 capture failures recorded")
    );

    // A failure whose class was captured anyway is superseded, and still warns.
    let superseded = report("superseded").await;
    assert_eq!(superseded["grade"], json!("WARN"));
    assert_eq!(superseded["legacyStatus"], json!("DEGRADED"));
    assert_eq!(
        superseded["captureFailures"][0]["resolution"],
        json!("SUPERSEDED")
    );
    assert_eq!(
        superseded["captureFailures"][0]["recordedResolution"],
        json!("TRANSIENT")
    );
    assert_eq!(
        superseded["explanation"],
        json!("1 capture failures recorded")
    );

    // Only the required classes: score 0.5 → WARN.
    let required = report("required-only").await;
    assert_eq!(required["grade"], json!("WARN"));
    assert_eq!(required["score"], json!(0.5));
    assert_eq!(required["explanation"], json!("3 evidence types missing"));

    // Nothing of acme's (the other tenant's rows under the same run id do not count).
    let nothing = report("nothing").await;
    assert_eq!(nothing["grade"], json!("FAIL"));
    assert_eq!(nothing["score"], json!(0.0));
    assert_eq!(
        nothing["explanation"],
        json!("Critical evidence missing: environment_evidence, aos_traces, aos_trace_steps")
    );

    for run in ["foreign", "missing"] {
        let body = app
            .gql(Some(&key), INTEGRITY, json!({ "runId": run }))
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{run}");
    }

    // The batch function: two statements (the counts in one UNION ALL, the capture failures and
    // the seals in another) for 1 run as for 7.
    let tenant = TenantId::trusted("acme");
    let mut costs = Vec::new();
    for ids in [
        vec!["all".to_owned()],
        runs.iter().map(|r| r.to_string()).collect(),
    ] {
        let before = app.state.sql.statements();
        let reports = logbook::integrity::store::integrity_for_runs(app.db(), &tenant, &ids)
            .await
            .expect("reports");
        costs.push(app.state.sql.statements() - before);
        assert_eq!(reports.len(), ids.len());
    }
    assert_eq!(costs, vec![2, 2]);
    app.stop().await;
}

crate::cases!(replay_window_merges_three_sources, integrity_grading);
