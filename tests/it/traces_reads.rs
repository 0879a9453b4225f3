//! `traces`, `trace`, `traceByRunId`, `traceByRootHash`, `compareTraces` and `Trace.steps`:
//! filters with their `totalCount`, archived traces invisible, steps paged both ways, tenant
//! isolation, the field diff and parity of two traces, and nested fields that batch.
//! The fixture builders here are shared by the mismatch and replay/integrity tests.

use chrono::{DateTime, Duration, Utc};
use entity::{aos_trace_steps, aos_traces};
use logbook::auth::Role;
use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
};
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, Backend, TestApp};

/// A completed trace `trace_id` of `run_id`, recorded at `created_at`.
pub fn trace(
    tenant: &str,
    trace_id: &str,
    run_id: &str,
    created_at: DateTime<Utc>,
) -> aos_traces::Model {
    aos_traces::Model {
        id: format!("id-{trace_id}"),
        trace_id: trace_id.to_owned(),
        run_id: run_id.to_owned(),
        correlation_id: run_id.to_owned(),
        tenant_id: tenant.to_owned(),
        agent_id: Some("agent-a".into()),
        plan_id: None,
        seed: Some(42),
        frozen_timestamp: Some("2026-11-01T00:00:00Z".into()),
        root_hash: Some(format!("root-{trace_id}")),
        plan_hash: Some("plan-1".into()),
        schema_version: "1.1".into(),
        plan: json!([{"skill": "llm_invoke"}]),
        trace: json!({"steps": []}),
        metadata: Some(json!({"duration_ms": 12})),
        status: "completed".into(),
        started_at: created_at - Duration::seconds(10),
        completed_at: Some(created_at),
        created_at,
        stored_by: None,
        checksum: None,
        incident_id: None,
        is_synthetic: false,
        synthetic_scenario_id: None,
        archived_at: None,
        violation_step_index: None,
        violation_timestamp: None,
        violation_policy_id: None,
        violation_reason: None,
        replay_mode: None,
        replay_attempt_id: None,
        replay_artifact_version: None,
        trace_completeness_status: None,
    }
}

/// Step `index` of `trace_id`, recorded at `at`. Its `tenant_id` is left empty for
/// [`insert_steps`] to fill from the trace.
pub fn step(
    trace_id: &str,
    index: i32,
    skill: &str,
    status: &str,
    at: DateTime<Utc>,
) -> aos_trace_steps::Model {
    aos_trace_steps::Model {
        id: format!("{trace_id}-s{index:04}"),
        trace_id: trace_id.to_owned(),
        step_index: index,
        skill_id: skill.to_owned(),
        skill_name: skill.to_owned(),
        params: json!({"n": index, "temperature": 0.5}),
        status: status.to_owned(),
        outcome_category: if status == "failure" {
            "PERMANENT"
        } else {
            "SUCCESS"
        }
        .into(),
        outcome_code: None,
        outcome_data: Some(json!({"ok": true})),
        cost_cents: 1.5,
        duration_ms: 10.0,
        retry_count: 0,
        input_hash: None,
        output_hash: Some(format!("out-{index}")),
        rng_state_before: None,
        idempotency_key: None,
        replay_behavior: "execute".into(),
        timestamp: at,
        source: "engine".into(),
        level: if status == "failure" { "ERROR" } else { "INFO" }.into(),
        is_synthetic: false,
        synthetic_scenario_id: None,
        archived_at: None,
        tenant_id: String::new(),
    }
}

pub async fn insert_traces(db: &DatabaseConnection, traces: Vec<aos_traces::Model>) {
    aos_traces::Entity::insert_many(traces.into_iter().map(IntoActiveModel::into_active_model))
        .exec_without_returning(db)
        .await
        .expect("insert traces");
}

/// Inserts the steps; a step without a `tenant_id` gets the tenant of the one trace with its
/// trace id (trace ids are unique per tenant: when several tenants have it, the fixture must
/// name the tenant itself).
pub async fn insert_steps(db: &DatabaseConnection, mut steps: Vec<aos_trace_steps::Model>) {
    let mut tenants: HashMap<String, String> = HashMap::new();
    for step in steps.iter_mut().filter(|s| s.tenant_id.is_empty()) {
        if !tenants.contains_key(&step.trace_id) {
            let owners: Vec<String> = aos_traces::Entity::find()
                .filter(aos_traces::Column::TraceId.eq(step.trace_id.as_str()))
                .select_only()
                .column(aos_traces::Column::TenantId)
                .into_tuple()
                .all(db)
                .await
                .expect("trace owners");
            assert_eq!(
                owners.len(),
                1,
                "step of trace {}: set its tenant_id ({owners:?})",
                step.trace_id
            );
            tenants.insert(step.trace_id.clone(), owners[0].clone());
        }
        step.tenant_id = tenants[&step.trace_id].clone();
    }
    for chunk in steps.chunks(200) {
        aos_trace_steps::Entity::insert_many(
            chunk
                .iter()
                .cloned()
                .map(IntoActiveModel::into_active_model),
        )
        .exec_without_returning(db)
        .await
        .expect("insert steps");
    }
}

/// `n` steps `0..n` of `trace_id`, one second apart from `start`; every fourth fails.
pub fn steps(trace_id: &str, n: i32, start: DateTime<Utc>) -> Vec<aos_trace_steps::Model> {
    (0..n)
        .map(|i| {
            let status = if i % 4 == 3 { "failure" } else { "success" };
            step(
                trace_id,
                i,
                &format!("skill_{}", i % 3),
                status,
                start + Duration::seconds(i as i64),
            )
        })
        .collect()
}

fn ts(at: DateTime<Utc>) -> String {
    logbook::scalars::format_utc(at)
}

const LIST: &str = r#"
query List($filter: TraceFilter, $first: Int, $after: String, $last: Int, $before: String, $asOf: DateTime) {
  traces(filter: $filter, first: $first, after: $after, last: $last, before: $before, asOf: $asOf) {
    totalCount
    nodes { traceId }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"#;

fn trace_ids(connection: &Value) -> Vec<String> {
    connection["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["traceId"].as_str().expect("traceId").to_owned())
        .collect()
}

async fn walk_traces(app: &TestApp, key: &str, filter: Value, forward: bool) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let vars = if forward {
            json!({ "filter": filter, "first": 4, "after": cursor })
        } else {
            json!({ "filter": filter, "last": 4, "before": cursor })
        };
        let data = app.data(key, LIST, vars).await;
        let mut ids = trace_ids(&data["traces"]);
        let info = &data["traces"]["pageInfo"];
        if forward {
            seen.append(&mut ids);
            if !info["hasNextPage"].as_bool().expect("bool") {
                break;
            }
            cursor = info["endCursor"].as_str().map(str::to_owned);
        } else {
            ids.append(&mut seen);
            seen = ids;
            if !info["hasPreviousPage"].as_bool().expect("bool") {
                break;
            }
            cursor = info["startCursor"].as_str().map(str::to_owned);
        }
        assert!(seen.len() < 1000, "paging does not terminate");
    }
    seen
}

async fn list_filters_paging_and_archived(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let _ = app.key("other", Role::Viewer).await;
    let t0 = fixed_time();
    let mut rows = Vec::new();
    for i in 0..12 {
        let mut t = trace(
            "acme",
            &format!("t{i:02}"),
            &format!("run-{i:02}"),
            t0 - Duration::seconds(i * 60),
        );
        t.status = ["completed", "failed", "aborted", "running"][i as usize % 4].into();
        if t.status == "running" {
            t.completed_at = None;
        }
        t.agent_id = Some(if i % 2 == 0 { "agent-a" } else { "agent-b" }.into());
        t.seed = Some(if i < 3 { 7_000_000_000 } else { 42 });
        t.is_synthetic = i % 5 == 0;
        t.synthetic_scenario_id = t.is_synthetic.then(|| "sc-1".into());
        t.plan_hash = Some(format!("plan-{}", i % 3));
        rows.push(t);
    }
    // Archived traces are never returned.
    let mut archived = trace("acme", "archived-1", "run-arch", t0 - Duration::seconds(30));
    archived.archived_at = Some(t0);
    rows.push(archived);
    rows.push(trace("other", "foreign-1", "run-00", t0));
    insert_traces(app.db(), rows).await;

    let all: Vec<String> = (0..12).map(|i| format!("t{i:02}")).collect();
    assert_eq!(walk_traces(&app, &key, Value::Null, true).await, all);
    assert_eq!(walk_traces(&app, &key, Value::Null, false).await, all);
    let data = app.data(&key, LIST, json!({ "first": 3 })).await;
    assert_eq!(data["traces"]["totalCount"], json!(12));

    let count = |filter: Value| {
        let app = &app;
        let key = &key;
        async move {
            let data = app
                .data(key, LIST, json!({ "filter": filter, "first": 100 }))
                .await;
            let ids = trace_ids(&data["traces"]);
            assert_eq!(
                data["traces"]["totalCount"],
                json!(ids.len()),
                "totalCount uses the filter"
            );
            ids
        }
    };
    assert_eq!(
        count(json!({ "status": ["COMPLETED"] })).await,
        vec!["t00", "t04", "t08"]
    );
    assert_eq!(
        count(json!({ "status": ["FAILED", "ABORTED"] }))
            .await
            .len(),
        6
    );
    assert_eq!(
        count(json!({ "agentId": "agent-b", "status": ["RUNNING"] })).await,
        vec!["t03", "t07", "t11"]
    );
    assert_eq!(
        count(json!({ "seed": "7000000000" })).await,
        vec!["t00", "t01", "t02"]
    );
    assert_eq!(count(json!({ "rootHash": "root-t05" })).await, vec!["t05"]);
    assert_eq!(
        count(json!({ "planHash": "plan-1" })).await,
        vec!["t01", "t04", "t07", "t10"]
    );
    assert_eq!(
        count(json!({ "isSynthetic": true })).await,
        vec!["t00", "t05", "t10"]
    );
    assert_eq!(count(json!({ "runId": "run-00" })).await, vec!["t00"]);
    assert_eq!(
        count(json!({ "runId": "run-arch" })).await,
        Vec::<String>::new()
    );
    // startedAt = createdAt - 10 s; both bounds inclusive.
    let started = |i: i64| ts(t0 - Duration::seconds(i * 60 + 10));
    assert_eq!(
        count(json!({ "startedAfter": started(4), "startedBefore": started(2) })).await,
        vec!["t02", "t03", "t04"]
    );
    // asOf hides traces recorded later.
    let data = app
        .data(
            &key,
            LIST,
            json!({ "first": 100, "asOf": ts(t0 - Duration::seconds(600)) }),
        )
        .await;
    assert_eq!(data["traces"]["totalCount"], json!(2));
    // A cursor of another filter is refused.
    let data = app.data(&key, LIST, json!({ "first": 2 })).await;
    let cursor = data["traces"]["pageInfo"]["endCursor"].clone();
    let body = app
        .gql(
            Some(&key),
            LIST,
            json!({ "first": 2, "after": cursor, "filter": { "agentId": "agent-a" } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR");

    // Seeds outside 32 bits come back whole.
    let data = app
        .data(
            &key,
            r#"{ trace(traceId: "t01") { seed status } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        data["trace"],
        json!({ "seed": "7000000000", "status": "FAILED" })
    );
    for lookup in [
        r#"{ trace(traceId: "archived-1") { traceId } }"#,
        r#"{ traceByRunId(runId: "run-arch") { traceId } }"#,
        r#"{ traceByRootHash(rootHash: "root-archived-1") { traceId } }"#,
    ] {
        let body = app.gql(Some(&key), lookup, json!({})).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{lookup}");
    }
    app.stop().await;
}

const STEPS: &str = r#"
query Steps($traceId: String!, $first: Int, $after: String, $last: Int, $before: String) {
  trace(traceId: $traceId) {
    steps(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      edges { cursor node { stepIndex status level } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}"#;

fn step_indexes(connection: &Value) -> Vec<i64> {
    connection["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["stepIndex"].as_i64().expect("index"))
        .collect()
}

async fn steps_page_both_ways(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let t0 = fixed_time();
    insert_traces(
        app.db(),
        vec![
            trace("acme", "t1", "run-1", t0),
            trace("acme", "t2", "run-2", t0),
        ],
    )
    .await;
    let mut rows = steps("t1", 30, t0 - Duration::seconds(60));
    // Unknown statuses are kept as they are.
    rows[5].status = "mystery".into();
    // Inserted out of order on purpose.
    rows.reverse();
    insert_steps(app.db(), rows).await;
    insert_steps(app.db(), steps("t2", 3, t0)).await;

    for forward in [true, false] {
        let mut seen: Vec<i64> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let vars = if forward {
                json!({ "traceId": "t1", "first": 7, "after": cursor })
            } else {
                json!({ "traceId": "t1", "last": 7, "before": cursor })
            };
            let data = app.data(&key, STEPS, vars).await;
            let connection = &data["trace"]["steps"];
            assert_eq!(connection["totalCount"], json!(30));
            let mut page = step_indexes(connection);
            assert!(page.len() <= 7);
            let info = &connection["pageInfo"];
            pages += 1;
            if forward {
                seen.append(&mut page);
                if !info["hasNextPage"].as_bool().expect("bool") {
                    break;
                }
                cursor = info["endCursor"].as_str().map(str::to_owned);
            } else {
                page.append(&mut seen);
                seen = page;
                if !info["hasPreviousPage"].as_bool().expect("bool") {
                    break;
                }
                cursor = info["startCursor"].as_str().map(str::to_owned);
            }
            assert!(pages < 10);
        }
        assert_eq!(seen, (0..30).collect::<Vec<i64>>(), "forward={forward}");
        assert_eq!(pages, 5);
    }

    // A middle page knows both neighbours.
    let data = app
        .data(&key, STEPS, json!({ "traceId": "t1", "first": 7 }))
        .await;
    let after = data["trace"]["steps"]["pageInfo"]["endCursor"].clone();
    let data = app
        .data(
            &key,
            STEPS,
            json!({ "traceId": "t1", "first": 7, "after": after }),
        )
        .await;
    let connection = &data["trace"]["steps"];
    assert_eq!(step_indexes(connection), (7..14).collect::<Vec<i64>>());
    assert_eq!(connection["pageInfo"]["hasPreviousPage"], json!(true));
    assert_eq!(connection["pageInfo"]["hasNextPage"], json!(true));
    assert_eq!(connection["edges"][0]["node"]["status"], json!("failure"));
    assert_eq!(connection["edges"][0]["node"]["level"], json!("ERROR"));

    // Up to 1000 per page (a lean selection, to stay within the complexity budget).
    const LEAN: &str = r#"query($first: Int) { trace(traceId: "t1") { steps(first: $first) { nodes { stepIndex status } } } }"#;
    let data = app.data(&key, LEAN, json!({ "first": 1000 })).await;
    let nodes = &data["trace"]["steps"]["nodes"];
    assert_eq!(nodes.as_array().expect("nodes").len(), 30);
    assert_eq!(nodes[5]["status"], json!("mystery"));
    let body = app.gql(Some(&key), LEAN, json!({ "first": 1001 })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["field"], json!("first"));
    // A cursor of one trace's steps is refused on another's.
    let body = app
        .gql(
            Some(&key),
            STEPS,
            json!({ "traceId": "t2", "first": 2, "after": after }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR");

    // Summary aggregated in SQL; checksum = determinism signature of the steps.
    let data = app
        .data(
            &key,
            r#"{ trace(traceId: "t1") { checksum summary { totalSteps successCount failureCount totalCostCents totalDurationMs } } }"#,
            json!({}),
        )
        .await;
    let stored: Vec<logbook::traces::StepSnapshot> = {
        let mut rows = steps("t1", 30, t0 - Duration::seconds(60));
        rows[5].status = "mystery".into();
        rows.into_iter()
            .map(|m| logbook::traces::StepSnapshot {
                id: m.id,
                trace_id: m.trace_id,
                step_index: m.step_index,
                skill_id: m.skill_id,
                skill_name: m.skill_name,
                params: m.params,
                status: m.status,
                outcome_category: m.outcome_category,
                outcome_code: m.outcome_code,
                outcome_data: m.outcome_data,
                cost_cents: m.cost_cents,
                duration_ms: m.duration_ms,
                retry_count: m.retry_count,
                input_hash: None,
                output_hash: None,
                rng_state_before: None,
                idempotency_key: None,
                replay_behavior: logbook::traces::ReplayBehavior::Execute,
                timestamp: m.timestamp,
                source: logbook::traces::StepSource::Engine,
                level: logbook::traces::StepLevel::Info,
                is_synthetic: false,
                synthetic_scenario_id: None,
            })
            .collect()
    };
    assert_eq!(
        data["trace"],
        json!({
            "checksum": logbook::traces::determinism_signature(&stored),
            "summary": { "totalSteps": 30, "successCount": 22, "failureCount": 7, "totalCostCents": 45.0, "totalDurationMs": 300.0 }
        })
    );
    app.stop().await;
}

async fn lookups_and_tenant_isolation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let other_key = app.key("other", Role::Viewer).await;
    let t0 = fixed_time();
    let mut newer = trace("acme", "t-new", "run-1", t0);
    newer.root_hash = Some("shared-root".into());
    newer.violation_step_index = Some(2);
    newer.violation_timestamp = Some(t0 - Duration::seconds(3));
    newer.violation_policy_id = Some("pol-1".into());
    newer.violation_reason = Some("budget".into());
    newer.replay_mode = Some("TRACE_ONLY".into());
    let mut older = trace("acme", "t-old", "run-1", t0 - Duration::seconds(60));
    older.root_hash = Some("shared-root".into());
    let foreign = trace("other", "t-foreign", "run-f", t0);
    insert_traces(app.db(), vec![newer, older, foreign]).await;

    const FIELDS: &str =
        "id traceId runId violation { stepIndex timestamp policyId reason } replayMode";
    let by_id = app
        .data(
            &key,
            &format!(r#"{{ trace(traceId: "t-old") {{ {FIELDS} }} }}"#),
            json!({}),
        )
        .await;
    assert_eq!(by_id["trace"]["traceId"], json!("t-old"));
    assert_eq!(by_id["trace"]["violation"], Value::Null);
    let by_run = app
        .data(
            &key,
            &format!(r#"{{ traceByRunId(runId: "run-1") {{ {FIELDS} }} }}"#),
            json!({}),
        )
        .await;
    assert_eq!(
        by_run["traceByRunId"]["traceId"],
        json!("t-new"),
        "the newest of the run"
    );
    assert_eq!(
        by_run["traceByRunId"]["violation"],
        json!({ "stepIndex": 2, "timestamp": ts(t0 - Duration::seconds(3)), "policyId": "pol-1", "reason": "budget" })
    );
    assert_eq!(by_run["traceByRunId"]["replayMode"], json!("TRACE_ONLY"));
    let by_hash = app
        .data(
            &key,
            r#"{ traceByRootHash(rootHash: "shared-root") { traceId } }"#,
            json!({}),
        )
        .await;
    assert_eq!(by_hash["traceByRootHash"]["traceId"], json!("t-new"));

    // node(id) round trip, and the same id is NOT_FOUND for another tenant.
    let id = by_id["trace"]["id"].clone();
    let node = app
        .data(
            &key,
            "query($id: ID!) { node(id: $id) { id ... on Trace { traceId } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(node["node"]["traceId"], json!("t-old"));
    let body = app
        .gql(
            Some(&other_key),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");

    for lookup in [
        r#"{ trace(traceId: "t-foreign") { traceId } }"#,
        r#"{ traceByRunId(runId: "run-f") { traceId } }"#,
        r#"{ traceByRootHash(rootHash: "root-t-foreign") { traceId } }"#,
        r#"{ trace(traceId: "missing") { traceId } }"#,
    ] {
        let body = app.gql(Some(&key), lookup, json!({})).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{lookup}");
        assert_eq!(body["errors"][0]["message"], json!("Trace not found"));
    }
    let data = app
        .data(
            &other_key,
            r#"{ trace(traceId: "t-foreign") { traceId } }"#,
            json!({}),
        )
        .await;
    assert_eq!(data["trace"]["traceId"], json!("t-foreign"));
    app.stop().await;
}

const COMPARE: &str = r#"
query Compare($left: String!, $right: String!) {
  compareTraces(left: $left, right: $right) {
    match leftRootHash rightRootHash summary
    differences { field left right }
    parity { isParity leftSignature rightSignature divergenceStep divergenceReason }
    left { traceId } right { traceId }
  }
}"#;

async fn compare_traces_identical_and_differing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let _ = app.key("other", Role::Viewer).await;
    let t0 = fixed_time();
    let mut a = trace("acme", "a", "run-a", t0);
    let mut b = trace("acme", "b", "run-b", t0);
    a.root_hash = Some("same".into());
    b.root_hash = Some("same".into());
    let mut c = trace("acme", "c", "run-c", t0);
    c.seed = Some(7);
    insert_traces(app.db(), vec![a, b, c, trace("other", "x", "run-x", t0)]).await;
    insert_steps(app.db(), steps("a", 5, t0)).await;
    // b: the same steps at other times (timestamps, cost and duration are not hashed).
    let mut b_steps = steps("b", 5, t0 + Duration::seconds(100));
    for s in &mut b_steps {
        s.cost_cents = 9.0;
    }
    insert_steps(app.db(), b_steps).await;
    // c: step 2 runs another skill with another status, and one step fewer.
    let mut c_steps = steps("c", 4, t0);
    c_steps[2].skill_name = "other_skill".into();
    c_steps[2].status = "retry".into();
    insert_steps(app.db(), c_steps).await;

    let same = app
        .data(&key, COMPARE, json!({ "left": "a", "right": "b" }))
        .await;
    let same = &same["compareTraces"];
    assert_eq!(same["match"], json!(true));
    assert_eq!(same["differences"], json!([]));
    assert_eq!(
        same["summary"],
        json!("Traces are deterministically identical")
    );
    assert_eq!(same["parity"]["isParity"], json!(true));
    assert_eq!(
        same["parity"]["leftSignature"],
        same["parity"]["rightSignature"]
    );
    assert_eq!(same["parity"]["divergenceStep"], Value::Null);
    assert_eq!(same["left"]["traceId"], json!("a"));

    let diff = app
        .data(&key, COMPARE, json!({ "left": "a", "right": "c" }))
        .await;
    let diff = &diff["compareTraces"];
    assert_eq!(diff["match"], json!(false));
    assert_eq!(diff["leftRootHash"], json!("same"));
    assert_eq!(diff["rightRootHash"], json!("root-c"));
    assert_eq!(
        diff["differences"],
        json!([
            { "field": "root_hash", "left": "same", "right": "root-c" },
            { "field": "seed", "left": "42", "right": "7" },
            { "field": "step_count", "left": "5", "right": "4" },
            { "field": "step[2].skill_name", "left": "skill_2", "right": "other_skill" },
        ])
    );
    assert_eq!(
        diff["summary"],
        json!("Traces differ in 4 field(s): root_hash, seed, step_count and 1 more")
    );
    assert_eq!(diff["parity"]["isParity"], json!(false));
    assert_eq!(diff["parity"]["divergenceStep"], json!(2));
    assert_eq!(
        diff["parity"]["divergenceReason"],
        json!("skill: skill_2 vs other_skill; status: success vs retry")
    );

    // Another tenant's trace is NOT_FOUND on either side, like a missing one.
    for (left, right) in [("a", "x"), ("x", "a"), ("a", "missing")] {
        let body = app
            .gql(Some(&key), COMPARE, json!({ "left": left, "right": right }))
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{left} vs {right}");
        assert_eq!(body["errors"][0]["message"], json!("Trace not found"));
    }
    app.stop().await;
}

const NESTED: &str = r#"
query Nested($first: Int) {
  traces(first: $first) {
    nodes {
      traceId checksum
      summary { totalSteps failureCount totalCostCents }
      steps(first: 3) { totalCount nodes { stepIndex } pageInfo { hasNextPage } }
      last: steps(last: 2) { nodes { stepIndex } pageInfo { hasPreviousPage } }
    }
  }
}"#;

async fn nested_fields_are_batched(backend: Backend) {
    // No export worker or rate-limit writes: their statements would land in the count.
    let app = TestApp::spawn_for_counting(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let t0 = fixed_time();
    let rows: Vec<_> = (0..20)
        .map(|i| {
            trace(
                "acme",
                &format!("t{i:02}"),
                &format!("run-{i:02}"),
                t0 - Duration::seconds(i),
            )
        })
        .collect();
    insert_traces(app.db(), rows).await;
    for i in 0..20 {
        insert_steps(app.db(), steps(&format!("t{i:02}"), 5, t0)).await;
    }
    // Warm the key cache.
    let _ = app.data(&key, NESTED, json!({ "first": 1 })).await;

    let mut costs = Vec::new();
    for first in [2, 20] {
        let before = app.state.sql.statements();
        let data = app.data(&key, NESTED, json!({ "first": first })).await;
        costs.push(app.state.sql.statements() - before);
        let nodes = data["traces"]["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), first as usize);
        for node in nodes {
            assert_eq!(
                node["summary"],
                json!({ "totalSteps": 5, "failureCount": 1, "totalCostCents": 7.5 })
            );
            assert_eq!(node["steps"]["totalCount"], json!(5));
            assert_eq!(
                node["steps"]["nodes"],
                json!([{ "stepIndex": 0 }, { "stepIndex": 1 }, { "stepIndex": 2 }])
            );
            assert_eq!(node["steps"]["pageInfo"]["hasNextPage"], json!(true));
            assert_eq!(
                node["last"]["nodes"],
                json!([{ "stepIndex": 3 }, { "stepIndex": 4 }])
            );
            assert_eq!(node["last"]["pageInfo"]["hasPreviousPage"], json!(true));
        }
    }
    // Page, summaries, all steps (checksum), the two edge pages; a summary may be fetched in a
    // second batch when `totalCount` asks while the first is in flight. Never one per trace.
    assert!(
        costs.iter().all(|c| *c <= 6),
        "statements must not grow with the page: {costs:?}"
    );
    app.stop().await;
}

crate::cases!(
    list_filters_paging_and_archived,
    steps_page_both_ways,
    lookups_and_tenant_isolation,
    compare_traces_identical_and_differing,
    nested_fields_are_batched,
);
