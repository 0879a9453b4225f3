//! Policy activations: `recordPolicyActivation` (insert, re-record keeping the first pattern,
//! recovery and trace, idempotency, a policy id of another tenant refused without touching it,
//! validation, roles), `policyActivations` (keyset pages both ways, filters and `totalCount`
//! against a brute-force model, `asOf` under re-records, tenant isolation) and the computed
//! confidence fields and `recoveryConfidence`.

use chrono::{DateTime, Duration, Utc};
use logbook::auth::Role;
use sea_orm::{ActiveModelTrait, NotSet, Set};
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, Backend, TestApp};

crate::cases!(
    record_and_rerecord,
    recording_is_idempotent,
    another_tenants_policy_id_is_refused,
    invalid_input_is_refused,
    recovery_confidence_grades,
    pages_filters_and_counts_match_brute_force,
    as_of_pages_a_stable_snapshot,
);

const FIELDS: &str = "id policyId sourcePatternId sourceRecoveryId confidenceAtActivation \
    confidenceVersion approvalPath approvalKind approvedBy loopTraceId activatedAt createdAt \
    confidenceBand confirmationLevel autoApplyAllowed";

fn record_doc() -> String {
    format!(
        "mutation R($input: RecordPolicyActivationInput!, $key: String) {{
           recordPolicyActivation(input: $input, idempotencyKey: $key) {{ {FIELDS} }} }}"
    )
}

fn node_doc() -> String {
    format!("query N($id: ID!) {{ node(id: $id) {{ ... on PolicyActivation {{ {FIELDS} }} }} }}")
}

const LIST: &str = "query L($f: PolicyActivationFilter, $first: Int, $after: String, $last: Int,
    $before: String, $asOf: DateTime) {
  policyActivations(filter: $f, first: $first, after: $after, last: $last, before: $before,
                    asOf: $asOf) {
    totalCount
    edges { cursor node { policyId } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  } }";

fn input(policy: &str, pattern: &str, confidence: f64, approval: &str) -> Value {
    json!({
        "policyId": policy,
        "sourcePatternId": pattern,
        "sourceRecoveryId": format!("{pattern}-recovery"),
        "confidence": confidence,
        "approvalPath": approval,
        "loopTraceId": format!("{pattern}-loop"),
    })
}

async fn record(app: &TestApp, key: &str, input: Value, idem: Option<&str>) -> Value {
    app.gql(
        Some(key),
        &record_doc(),
        json!({ "input": input, "key": idem }),
    )
    .await
}

async fn count_rows(app: &TestApp) -> usize {
    use sea_orm::EntityTrait;
    entity::policy_activation_audit::Entity::find()
        .all(app.db())
        .await
        .unwrap()
        .len()
}

async fn stored(app: &TestApp, policy: &str) -> entity::policy_activation_audit::Model {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    entity::policy_activation_audit::Entity::find()
        .filter(entity::policy_activation_audit::Column::PolicyId.eq(policy))
        .one(app.db())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no row for {policy}"))
}

async fn record_and_rerecord(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ingest = app.key("acme", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;

    let first = record(&app, &ingest, input("pol-1", "pat-a", 0.9, "auto"), None).await;
    let first = &first["data"]["recordPolicyActivation"];
    assert_eq!(first["policyId"], "pol-1", "{first}");
    assert_eq!(first["confidenceVersion"], "CONFIDENCE_V1");
    assert_eq!(first["confidenceAtActivation"], 0.9);
    assert_eq!(first["approvalKind"], "AUTO");
    assert_eq!(first["approvedBy"], Value::Null);
    assert_eq!(first["confidenceBand"], "STRONG_MATCH");
    assert_eq!(first["confirmationLevel"], 0);
    assert_eq!(first["autoApplyAllowed"], true);
    assert_eq!(first["activatedAt"], first["createdAt"]);

    // The same tenant again, with other sources: only confidence, approval and time move.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = app
        .data(
            &ingest,
            &record_doc(),
            json!({ "input": {
                "policyId": "pol-1",
                "sourcePatternId": "pat-b",
                "sourceRecoveryId": "rec-b",
                "confidence": 0.6,
                "approvalPath": "human:user-7",
                "loopTraceId": "loop-b",
            } }),
        )
        .await;
    let again = &again["recordPolicyActivation"];
    assert_eq!(again["sourcePatternId"], "pat-a", "{again}");
    assert_eq!(again["sourceRecoveryId"], "pat-a-recovery");
    assert_eq!(again["loopTraceId"], "pat-a-loop");
    assert_eq!(again["confidenceVersion"], "CONFIDENCE_V1");
    assert_eq!(again["confidenceAtActivation"], 0.6);
    assert_eq!(again["approvalPath"], "human:user-7");
    assert_eq!(again["approvalKind"], "HUMAN");
    assert_eq!(again["approvedBy"], "user-7");
    assert_eq!(again["confidenceBand"], "WEAK_MATCH");
    assert_eq!(again["confirmationLevel"], 1);
    assert_eq!(again["autoApplyAllowed"], false);
    assert_eq!(again["createdAt"], first["createdAt"]);
    assert_eq!(again["id"], first["id"]);
    let moved = |v: &Value| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    assert!(moved(&again["activatedAt"]) > moved(&first["activatedAt"]));

    // What is stored is what the reads show.
    let row = stored(&app, "pol-1").await;
    assert_eq!(row.tenant_id, "acme");
    assert_eq!(row.source_pattern_id, "pat-a");
    assert_eq!(row.approval_path, "human:user-7");
    assert_eq!(count_rows(&app).await, 1);
    let node = app
        .data(&viewer, &node_doc(), json!({ "id": first["id"] }))
        .await;
    assert_eq!(&node["node"], again, "node(id) answers the stored row");
    let list = app.data(&viewer, LIST, json!({})).await;
    assert_eq!(list["policyActivations"]["totalCount"], 1);

    // A threshold approval of a novel confidence.
    let low = app
        .data(
            &ingest,
            &record_doc(),
            json!({ "input": input("pol-2", "pat-c", 0.3, "threshold") }),
        )
        .await;
    let low = &low["recordPolicyActivation"];
    assert_eq!(low["approvalKind"], "THRESHOLD");
    assert_eq!(low["confidenceBand"], "NOVEL");
    assert_eq!(low["confirmationLevel"], 2);

    // Roles: INGEST may record and read back its receipt, not the sources a re-record keeps
    // (the first writer's content); VIEWER and OPERATOR may not record.
    let writer = app.key("acme", Role::Ingest).await;
    let receipt = app
        .data(
            &writer,
            "mutation R($input: RecordPolicyActivationInput!) { recordPolicyActivation(input: $input) {
               id policyId confidenceAtActivation approvalPath activatedAt confidenceBand
               confirmationLevel autoApplyAllowed } }",
            json!({ "input": input("pol-3", "pat-d", 0.5, "auto") }),
        )
        .await;
    assert_eq!(receipt["recordPolicyActivation"]["confidenceBand"], "NOVEL");
    let content = record(&app, &writer, input("pol-3", "pat-d", 0.5, "auto"), None).await;
    assert_eq!(error_code(&content), "FORBIDDEN", "{content}");
    for role in [Role::Viewer, Role::Operator] {
        let key = app.key("acme", role).await;
        let refused = record(&app, &key, input("pol-4", "pat-e", 0.5, "auto"), None).await;
        assert_eq!(error_code(&refused), "FORBIDDEN", "{role:?}");
    }
    assert_eq!(count_rows(&app).await, 3);
    assert_eq!(stored(&app, "pol-3").await.tenant_id, "acme");
    app.stop().await;
}

async fn recording_is_idempotent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ingest = app.key("acme", Role::Admin).await;
    let one = input("pol-idem", "pat-a", 0.7, "auto");

    let first = record(&app, &ingest, one.clone(), Some("k-1")).await;
    assert!(first.get("errors").is_none(), "{first}");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let replay = record(&app, &ingest, one.clone(), Some("k-1")).await;
    // The first result itself: a second run would have moved `activatedAt`.
    assert_eq!(replay, first);
    let first_at = first["data"]["recordPolicyActivation"]["activatedAt"]
        .as_str()
        .unwrap()
        .parse::<DateTime<Utc>>()
        .unwrap();
    assert_eq!(stored(&app, "pol-idem").await.activated_at, first_at);

    // Same key, other input: refused, nothing written.
    let other = record(
        &app,
        &ingest,
        input("pol-idem", "pat-a", 0.95, "auto"),
        Some("k-1"),
    )
    .await;
    assert_eq!(error_code(&other), "IDEMPOTENCY_CONFLICT");
    assert_eq!(stored(&app, "pol-idem").await.confidence_at_activation, 0.7);

    // Without a key, the same input re-records (and moves the time).
    let fresh = record(&app, &ingest, one.clone(), None).await;
    assert_ne!(
        fresh["data"]["recordPolicyActivation"]["activatedAt"],
        first["data"]["recordPolicyActivation"]["activatedAt"]
    );
    assert_eq!(count_rows(&app).await, 1);
    app.stop().await;
}

async fn another_tenants_policy_id_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.key("alpha", Role::Admin).await;
    let a_viewer = app.key("alpha", Role::Viewer).await;
    let b = app.key("beta", Role::Admin).await;
    let b_admin = app.key("beta", Role::Admin).await;

    let mine = record(
        &app,
        &a,
        input("pol-shared", "alpha-pattern", 0.9, "human:alice"),
        None,
    )
    .await;
    let mine = mine["data"]["recordPolicyActivation"].clone();
    let before = stored(&app, "pol-shared").await;
    record(
        &app,
        &a,
        input("pol-other", "alpha-pattern-2", 0.2, "auto"),
        None,
    )
    .await;

    let mut messages = Vec::new();
    for (policy, key) in [("pol-shared", Some("b-key")), ("pol-other", None)] {
        let taken = record(
            &app,
            &b_admin,
            input(policy, "beta-pattern", 0.1, "threshold"),
            key,
        )
        .await;
        assert_eq!(error_code(&taken), "BAD_USER_INPUT", "{taken}");
        assert_eq!(taken["errors"][0]["extensions"]["field"], "input.policyId");
        assert_eq!(taken["data"], Value::Null);
        let text = taken.to_string();
        for secret in ["alpha", "alice", "0.9", "0.2"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        messages.push(taken["errors"][0]["message"].clone());
    }
    // The same words for every taken id: nothing of the row shows.
    assert_eq!(messages[0], messages[1]);

    // A's row is untouched, column by column.
    assert_eq!(stored(&app, "pol-shared").await, before);
    let node = app
        .data(&a_viewer, &node_doc(), json!({ "id": mine["id"] }))
        .await;
    assert_eq!(node["node"], mine);

    // B sees nothing of A's, and its refused key was not spent (the write rolled back).
    let b_viewer = app.key("beta", Role::Viewer).await;
    let none = app
        .gql(Some(&b_viewer), &node_doc(), json!({ "id": mine["id"] }))
        .await;
    assert_eq!(error_code(&none), "NOT_FOUND");
    let list = app
        .data(
            &b_viewer,
            LIST,
            json!({ "f": { "policyId": "pol-shared" } }),
        )
        .await;
    assert_eq!(list["policyActivations"]["totalCount"], 0);
    let retried = record(
        &app,
        &b,
        input("pol-beta", "beta-pattern", 0.1, "threshold"),
        Some("b-key"),
    )
    .await;
    assert!(retried.get("errors").is_none(), "{retried}");
    assert_eq!(count_rows(&app).await, 3);
    app.stop().await;
}

async fn invalid_input_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ingest = app.key("acme", Role::Admin).await;
    let long = "x".repeat(65);
    let fine = "x".repeat(64);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "confidence below 0",
            json!({"confidence": -0.01}),
            "input.confidence",
        ),
        (
            "confidence above 1",
            json!({"confidence": 1.0001}),
            "input.confidence",
        ),
        (
            "unknown approval",
            json!({"approvalPath": "manual"}),
            "input.approvalPath",
        ),
        (
            "approval case",
            json!({"approvalPath": "AUTO"}),
            "input.approvalPath",
        ),
        (
            "human without user",
            json!({"approvalPath": "human:"}),
            "input.approvalPath",
        ),
        (
            "human blank user",
            json!({"approvalPath": "human:  "}),
            "input.approvalPath",
        ),
        (
            "approval too long",
            json!({"approvalPath": format!("human:{}", "u".repeat(123))}),
            "input.approvalPath",
        ),
        (
            "policy id too long",
            json!({"policyId": long}),
            "input.policyId",
        ),
        ("policy id empty", json!({"policyId": ""}), "input.policyId"),
        (
            "policy id characters",
            json!({"policyId": "pol 1"}),
            "input.policyId",
        ),
        (
            "pattern too long",
            json!({"sourcePatternId": long}),
            "input.sourcePatternId",
        ),
        (
            "recovery too long",
            json!({"sourceRecoveryId": long}),
            "input.sourceRecoveryId",
        ),
        (
            "loop trace too long",
            json!({"loopTraceId": long}),
            "input.loopTraceId",
        ),
    ];
    for (label, patch, field) in cases {
        let mut body = input("pol-v", "pat-v", 0.5, "auto");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let answer = record(&app, &ingest, body, None).await;
        assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{label}: {answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["field"], field,
            "{label}: {answer}"
        );
    }
    assert_eq!(count_rows(&app).await, 0);

    // The edges that are allowed: 0, 1, 64-character ids, a 128-character approval path.
    for (n, (confidence, approval)) in [
        (0.0, "auto".to_owned()),
        (1.0, format!("human:{}", "u".repeat(122))),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = input(&format!("{}{n}", &fine[..63]), &fine, confidence, &approval);
        body["sourceRecoveryId"] = json!(fine);
        body["loopTraceId"] = json!(fine);
        let ok = record(&app, &ingest, body, None).await;
        assert!(ok.get("errors").is_none(), "{confidence}: {ok}");
    }
    assert_eq!(count_rows(&app).await, 2);
    app.stop().await;
}

async fn recovery_confidence_grades(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let doc =
        "query Q($s: Boolean!, $n: Int!) { recoveryConfidence(strongMatch: $s, occurrences: $n) {
        version baseConfidence occurrenceCount boostApplied finalConfidence band confirmationLevel
        autoApplyAllowed } }";
    let expect = [
        (true, 1, 0.7, 0.0, 0.7, "WEAK_MATCH", 1, false),
        (true, 2, 0.7, 0.1, 0.8, "WEAK_MATCH", 1, false),
        (true, 3, 0.7, 0.2, 0.9, "STRONG_MATCH", 0, true),
        (true, 9, 0.7, 0.2, 0.9, "STRONG_MATCH", 0, true),
        (false, 0, 0.5, 0.0, 0.5, "NOVEL", 2, false),
        (false, 2, 0.5, 0.1, 0.6, "WEAK_MATCH", 1, false),
        (false, 3, 0.5, 0.2, 0.7, "WEAK_MATCH", 1, false),
    ];
    for (strong, n, base, boost, fin, band, level, auto) in expect {
        let d = app.data(&viewer, doc, json!({ "s": strong, "n": n })).await;
        assert_eq!(
            d["recoveryConfidence"],
            json!({
                "version": "CONFIDENCE_V1", "baseConfidence": base, "occurrenceCount": n,
                "boostApplied": boost, "finalConfidence": fin, "band": band,
                "confirmationLevel": level, "autoApplyAllowed": auto,
            }),
            "strong {strong}, {n} occurrences"
        );
    }
    let bad = app
        .gql(Some(&viewer), doc, json!({ "s": true, "n": -1 }))
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
    assert_eq!(bad["errors"][0]["extensions"]["field"], "occurrences");
    let ingest = app.key("acme", Role::Ingest).await;
    let refused = app
        .gql(Some(&ingest), doc, json!({ "s": true, "n": 3 }))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    app.stop().await;
}

/// One stored activation as the brute-force model sees it.
#[derive(Clone, Debug)]
struct Row {
    tenant: String,
    policy: String,
    pattern: String,
    confidence: f64,
    approval: String,
    created: DateTime<Utc>,
    activated: DateTime<Utc>,
}

async fn insert(app: &TestApp, rows: &[Row]) {
    for r in rows {
        entity::policy_activation_audit::ActiveModel {
            id: NotSet,
            policy_id: Set(r.policy.clone()),
            source_pattern_id: Set(r.pattern.clone()),
            source_recovery_id: Set(None),
            confidence_at_activation: Set(r.confidence),
            confidence_version: Set("CONFIDENCE_V1".into()),
            approval_path: Set(r.approval.clone()),
            loop_trace_id: Set(None),
            activated_at: Set(r.activated),
            tenant_id: Set(r.tenant.clone()),
            created_at: Set(r.created),
        }
        .insert(app.db())
        .await
        .unwrap();
    }
}

/// 27 rows of `acme` (pairs sharing a creation time, confidences on the band edges, the three
/// approval kinds, three patterns) and 4 of `other`.
fn rows() -> Vec<Row> {
    let t0 = fixed_time();
    let confidences = [0.85, 0.6, 0.599, 0.9, 0.849, 0.3, 1.0, 0.0, 0.61];
    let approvals = ["auto", "threshold", "human:ann", "human:bob"];
    let mut out = Vec::new();
    for i in 0..27i64 {
        let created = t0 - Duration::seconds(i / 2 * 10);
        out.push(Row {
            tenant: "acme".into(),
            policy: format!("pol-{:02}", (i * 7) % 27),
            pattern: format!("pat-{}", i % 3),
            confidence: confidences[i as usize % confidences.len()],
            approval: approvals[i as usize % approvals.len()].into(),
            created,
            activated: created + Duration::seconds((i % 5) * 7),
        });
    }
    for i in 0..4i64 {
        out.push(Row {
            tenant: "other".into(),
            policy: format!("other-{i}"),
            pattern: "pat-0".into(),
            confidence: 0.9,
            approval: "auto".into(),
            created: t0 - Duration::seconds(i),
            activated: t0,
        });
    }
    out
}

fn band(c: f64) -> &'static str {
    if c >= 0.85 {
        "STRONG_MATCH"
    } else if c >= 0.6 {
        "WEAK_MATCH"
    } else {
        "NOVEL"
    }
}

fn kind(a: &str) -> &'static str {
    if a.starts_with("human:") {
        "HUMAN"
    } else if a == "auto" {
        "AUTO"
    } else {
        "THRESHOLD"
    }
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// What `policyActivations(filter)` must list for `acme`, in order.
fn expected(rows: &[Row], filter: &Value, as_of: Option<DateTime<Utc>>) -> Vec<String> {
    let has = |k: &str| filter.get(k).filter(|v| !v.is_null());
    let t = |k: &str| has(k).map(|v| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap());
    let any = |k: &str, value: &str| {
        has(k).is_none_or(|v| v.as_array().unwrap().iter().any(|x| x == value))
    };
    let mut out: Vec<&Row> = rows
        .iter()
        .filter(|r| r.tenant == "acme")
        .filter(|r| as_of.is_none_or(|at| r.created <= at))
        .filter(|r| has("policyId").is_none_or(|v| v == r.policy.as_str()))
        .filter(|r| has("sourcePatternId").is_none_or(|v| v == r.pattern.as_str()))
        .filter(|r| {
            has("approvedBy").is_none_or(|v| format!("human:{}", v.as_str().unwrap()) == r.approval)
        })
        .filter(|r| any("approvalKind", kind(&r.approval)))
        .filter(|r| any("band", band(r.confidence)))
        .filter(|r| t("activatedAfter").is_none_or(|at| r.activated >= at))
        .filter(|r| t("activatedBefore").is_none_or(|at| r.activated <= at))
        .filter(|r| t("createdAfter").is_none_or(|at| r.created >= at))
        .filter(|r| t("createdBefore").is_none_or(|at| r.created <= at))
        .collect();
    out.sort_by(|a, b| (b.created, &b.policy).cmp(&(a.created, &a.policy)));
    out.into_iter().map(|r| r.policy.clone()).collect()
}

/// Every page forward (`first: size`) and every page backward (`last: size`): the ids in list
/// order each way, and the `totalCount` each page reported.
async fn page_through(
    app: &TestApp,
    key: &str,
    filter: &Value,
    as_of: Option<DateTime<Utc>>,
    size: i64,
) -> (Vec<String>, Vec<String>, Vec<i64>) {
    let as_of = as_of.map(rfc);
    let ids = |d: &Value| -> Vec<String> {
        d["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["policyId"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut counts = Vec::new();
    let mut forward = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let vars = json!({ "f": filter, "first": size, "after": after, "asOf": as_of });
        let d = app.data(key, LIST, vars).await["policyActivations"].clone();
        counts.push(d["totalCount"].as_i64().unwrap());
        forward.extend(ids(&d));
        if !d["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = d["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let mut backward = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let vars = json!({ "f": filter, "last": size, "before": before, "asOf": as_of });
        let d = app.data(key, LIST, vars).await["policyActivations"].clone();
        counts.push(d["totalCount"].as_i64().unwrap());
        let mut page = ids(&d);
        page.append(&mut backward);
        backward = page;
        if !d["pageInfo"]["hasPreviousPage"].as_bool().unwrap() {
            break;
        }
        before = d["pageInfo"]["startCursor"].as_str().map(str::to_owned);
    }
    (forward, backward, counts)
}

async fn pages_filters_and_counts_match_brute_force(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let data = rows();
    insert(&app, &data).await;
    let t0 = fixed_time();
    let filters = [
        json!({}),
        json!({ "sourcePatternId": "pat-1" }),
        json!({ "policyId": "pol-07" }),
        json!({ "approvalKind": ["HUMAN"] }),
        json!({ "approvalKind": ["THRESHOLD", "AUTO", "AUTO"] }),
        json!({ "approvedBy": "ann" }),
        json!({ "band": ["STRONG_MATCH"] }),
        json!({ "band": ["WEAK_MATCH"] }),
        json!({ "band": ["NOVEL", "STRONG_MATCH"] }),
        json!({ "activatedAfter": rfc(t0 - Duration::seconds(60)), "activatedBefore": rfc(t0) }),
        json!({ "createdBefore": rfc(t0 - Duration::seconds(30)), "approvalKind": ["AUTO", "HUMAN"] }),
        json!({ "sourcePatternId": "pat-0", "band": ["WEAK_MATCH", "NOVEL"] }),
        json!({ "sourcePatternId": "no-such-pattern" }),
    ];
    for filter in &filters {
        let want = expected(&data, filter, None);
        let (forward, backward, counts) = page_through(&app, &viewer, filter, None, 4).await;
        assert_eq!(forward, want, "forward, filter {filter}");
        assert_eq!(backward, want, "backward, filter {filter}");
        assert!(
            counts.iter().all(|c| *c == want.len() as i64),
            "totalCount {counts:?} for {} rows, filter {filter}",
            want.len()
        );
    }
    // The whole tenant: 27 rows, none of `other`'s.
    assert_eq!(expected(&data, &json!({}), None).len(), 27);

    // A cursor is bound to its tenant and filter.
    let page = app.data(&viewer, LIST, json!({ "first": 2 })).await;
    let cursor = page["policyActivations"]["pageInfo"]["endCursor"].clone();
    let other = app.key("other", Role::Viewer).await;
    let foreign = app
        .gql(Some(&other), LIST, json!({ "first": 2, "after": cursor }))
        .await;
    assert_eq!(error_code(&foreign), "BAD_CURSOR");
    let refiltered = app
        .gql(
            Some(&viewer),
            LIST,
            json!({ "first": 2, "after": cursor, "f": { "band": ["NOVEL"] } }),
        )
        .await;
    assert_eq!(error_code(&refiltered), "BAD_CURSOR");
    let other_list = app.data(&other, LIST, json!({})).await;
    assert_eq!(other_list["policyActivations"]["totalCount"], 4);
    app.stop().await;
}

async fn as_of_pages_a_stable_snapshot(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let ingest = app.key("acme", Role::Admin).await;
    let data = rows();
    insert(&app, &data).await;
    let as_of = fixed_time() - Duration::seconds(20);
    let want = expected(&data, &json!({}), Some(as_of));
    assert!(want.len() > 10 && want.len() < 27, "{}", want.len());

    // Page the snapshot by 5; between pages, re-record every listed row and add new ones.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut round = 0;
    loop {
        let vars = json!({ "first": 5, "after": after, "asOf": rfc(as_of) });
        let d = app.data(&viewer, LIST, vars).await["policyActivations"].clone();
        assert_eq!(d["totalCount"], want.len(), "round {round}");
        for e in d["edges"].as_array().unwrap() {
            let policy = e["node"]["policyId"].as_str().unwrap().to_owned();
            let again = record(
                &app,
                &ingest,
                input(&policy, "pat-x", 0.95, "threshold"),
                None,
            )
            .await;
            assert!(again.get("errors").is_none(), "{again}");
            seen.push(policy);
        }
        let new = record(
            &app,
            &ingest,
            input(&format!("new-{round}"), "pat-x", 0.5, "auto"),
            None,
        )
        .await;
        assert!(new.get("errors").is_none(), "{new}");
        round += 1;
        if !d["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = d["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(
        seen, want,
        "re-records neither move nor hide a row of the snapshot"
    );

    // Without `asOf` the new rows come first; re-recorded ones kept their place.
    let (all, _, _) = page_through(&app, &viewer, &json!({}), None, 50).await;
    assert_eq!(all.len(), 27 + round);
    assert!(
        all[..round].iter().all(|p| p.starts_with("new-")),
        "{all:?}"
    );
    assert_eq!(&all[round..], expected(&data, &json!({}), None).as_slice());

    // `activatedAfter` follows the latest activation: every re-recorded row now matches.
    let since = app
        .data(
            &viewer,
            LIST,
            json!({ "f": { "activatedAfter": rfc(Utc::now() - Duration::minutes(10)) } }),
        )
        .await;
    assert_eq!(since["policyActivations"]["totalCount"], want.len() + round);
    app.stop().await;
}
