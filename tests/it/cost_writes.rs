//! Cost writes: `recordCost` (rollups stay equal to a recomputation, a batch is all or nothing),
//! `createFeatureTag`/`updateFeatureTag`, `upsertBudget` (one tenant budget), and
//! `detectCostAnomalies` (spike + budget warning, no duplicates on re-run), hard budgets refusing
//! `recordCost` (alone and under concurrent writers), and `acknowledgeCostAnomaly` /
//! `resolveCostAnomaly` — each checked through the `cost { … }` reads, with roles, tenant
//! isolation and idempotency keys.

use chrono::{Datelike, Days, Utc};
use logbook::auth::Role;
use serde_json::{json, Value};

use crate::support::{error_code, Backend, TestApp};

const RECORD: &str = r#"
mutation R($input: RecordCostInput!, $key: String) {
  recordCost(input: $input, idempotencyKey: $key) {
    recordCount totalCostCents reclassifiedCount
    records { id featureTag requestedFeatureTag costCents createdAt }
  }
}"#;

const SUMMARY: &str = r#"
query($p: CostPeriod!) {
  cost {
    summary(period: $p) { totalCostCents requestCount totalInputTokens totalOutputTokens monthlyLimitCents }
    byFeature(period: $p) { featureTag totalCostCents requestCount }
  }
}"#;

const CREATE_TAG: &str = r#"
mutation C($input: CreateFeatureTagInput!, $key: String) {
  createFeatureTag(input: $input, idempotencyKey: $key) { id tag displayName isActive budgetCents }
}"#;

const UPDATE_TAG: &str = r#"
mutation U($tag: String!, $input: UpdateFeatureTagInput!) {
  updateFeatureTag(tag: $tag, input: $input) { id tag displayName description isActive budgetCents }
}"#;

const BUDGET: &str = r#"
mutation B($input: UpsertBudgetInput!, $key: String) {
  upsertBudget(input: $input, idempotencyKey: $key) {
    id budgetType entityId dailyLimitCents monthlyLimitCents warnThresholdPct isActive
  }
}"#;

const DETECT: &str = r#"
mutation D($key: String) {
  detectCostAnomalies(idempotencyKey: $key) {
    day created updated
    anomalies { id anomalyType severity entityType entityId deviationPct message breachCount }
  }
}"#;

const ANOMALIES: &str = r#"
{ cost { anomalies(first: 100) { totalCount nodes { id anomalyType entityType entityId severity } } } }"#;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

fn rec(model: &str, tag: Option<&str>, user: Option<&str>, cents: f64) -> Value {
    json!({ "model": model, "featureTag": tag, "userId": user, "costCents": cents,
            "inputTokens": 100, "outputTokens": 7 })
}

/// Noon UTC `n` days ago, RFC 3339 (today: one minute ago, so it is never in the future).
fn days_ago(n: u64) -> String {
    if n == 0 {
        return (Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    }
    (Utc::now().date_naive() - Days::new(n))
        .and_hms_opt(12, 0, 0)
        .expect("noon")
        .and_utc()
        .to_rfc3339()
}

async fn record(app: &TestApp, key: &str, records: Vec<Value>) -> Value {
    app.data(key, RECORD, json!({ "input": { "records": records } }))
        .await["recordCost"]
        .clone()
}

async fn summary(app: &TestApp, key: &str, period: &str) -> Value {
    app.data(key, SUMMARY, json!({ "p": period })).await["cost"].clone()
}

async fn record_cost_keeps_rollups_exact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    app.data(
        &admin,
        CREATE_TAG,
        json!({ "input": { "tag": "chat.reply", "displayName": "Chat reply" } }),
    )
    .await;

    // Fractional cents that do not sum exactly in binary; three tag situations.
    let mut batch = Vec::new();
    for i in 0..60 {
        let cents = 0.0137 * f64::from(i) + 0.001;
        let tag = match i % 3 {
            0 => Some("chat.reply"),
            1 => Some("nope.unknown"),
            _ => None,
        };
        batch.push(rec(
            if i % 2 == 0 { "gpt-4o" } else { "claude" },
            tag,
            Some("u1"),
            cents,
        ));
    }
    let out = record(&app, &ingest, batch.clone()).await;
    assert_eq!(out["recordCount"], json!(60));
    assert_eq!(out["reclassifiedCount"], json!(20));
    let records = out["records"].as_array().expect("present");
    assert_eq!(records[0]["featureTag"], json!("chat.reply"));
    assert_eq!(records[1]["featureTag"], json!("unclassified"));
    assert_eq!(records[1]["requestedFeatureTag"], json!("nope.unknown"));
    assert_eq!(records[2]["featureTag"], json!("unclassified"));
    assert!(close(f(&records[5]["costCents"]), 0.0137 * 5.0 + 0.001));

    // A backfilled record three days ago counts in the 7-day period only.
    record(
        &app,
        &ingest,
        vec![json!({ "model": "gpt-4o", "costCents": 12.3456789, "createdAt": days_ago(3) })],
    )
    .await;

    let expected: f64 = batch.iter().map(|r| f(&r["costCents"])).sum();
    let today = summary(&app, &viewer, "TODAY").await;
    assert!(
        close(f(&today["summary"]["totalCostCents"]), expected),
        "{today:#} vs {expected}"
    );
    assert_eq!(today["summary"]["requestCount"], json!(60));
    assert_eq!(today["summary"]["totalInputTokens"], json!("6000"));
    let by_feature: Vec<(String, f64, i64)> = today["byFeature"]
        .as_array()
        .expect("present")
        .iter()
        .map(|r| {
            (
                r["featureTag"].as_str().expect("present").to_owned(),
                f(&r["totalCostCents"]),
                r["requestCount"].as_i64().expect("present"),
            )
        })
        .collect();
    assert_eq!(
        by_feature.len(),
        2,
        "unclassified appears once: {by_feature:?}"
    );
    let tagged: f64 = batch
        .iter()
        .filter(|r| r["featureTag"] == json!("chat.reply"))
        .map(|r| f(&r["costCents"]))
        .sum();
    for (tag, cost, n) in &by_feature {
        match tag.as_str() {
            "chat.reply" => {
                assert!(close(*cost, tagged));
                assert_eq!(*n, 20);
            }
            "unclassified" => {
                assert!(close(*cost, expected - tagged));
                assert_eq!(*n, 40);
            }
            other => panic!("unexpected tag {other}"),
        }
    }
    let week = summary(&app, &viewer, "LAST_7_DAYS").await;
    assert!(close(
        f(&week["summary"]["totalCostCents"]),
        expected + 12.3456789
    ));
    assert_eq!(week["summary"]["requestCount"], json!(61));

    // The rollup equals a recomputation from the raw rows.
    let raw = app
        .gql(
            Some(&viewer),
            "{ cost { series(period: LAST_7_DAYS) { totalCostCents } } }",
            json!({}),
        )
        .await;
    assert!(close(
        f(&raw["data"]["cost"]["series"]["totalCostCents"]),
        expected + 12.3456789
    ));
    let rows = logbook::cost::rollup::rebuild_rollups(
        app.db(),
        Some(&logbook::auth::TenantId::trusted("acme")),
    )
    .await
    .expect("rebuild");
    assert!(rows > 0);
    let rebuilt = summary(&app, &viewer, "LAST_7_DAYS").await;
    assert!(close(
        f(&rebuilt["summary"]["totalCostCents"]),
        f(&week["summary"]["totalCostCents"])
    ));
    assert_eq!(rebuilt["byFeature"], week["byFeature"]);
    app.stop().await;
}

async fn record_cost_batch_is_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let cases = [
        (rec("m", None, None, -1.0), "input.records.1.costCents"),
        (
            json!({ "model": "m", "costCents": 1.0, "inputTokens": -5 }),
            "input.records.1.inputTokens",
        ),
        (
            json!({ "model": "m", "costCents": 1.0, "outputTokens": -5 }),
            "input.records.1.outputTokens",
        ),
        (
            json!({ "model": "", "costCents": 1.0 }),
            "input.records.1.model",
        ),
        (
            json!({ "model": "m", "costCents": 1.0, "createdAt": "2001-01-01T00:00:00Z" }),
            "input.records.1.createdAt",
        ),
        (
            json!({ "model": "m", "costCents": 1.0, "featureTag": "x".repeat(129) }),
            "input.records.1.featureTag",
        ),
    ];
    for (bad, field) in cases {
        let body = app
            .gql(
                Some(&ingest),
                RECORD,
                json!({ "input": { "records": [rec("m", None, None, 1.0), bad, rec("m", None, None, 2.0)] } }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
        assert_eq!(body["errors"][0]["extensions"]["field"], json!(field));
    }
    let empty = app
        .gql(Some(&ingest), RECORD, json!({ "input": { "records": [] } }))
        .await;
    assert_eq!(
        empty["errors"][0]["extensions"]["field"],
        json!("input.records")
    );
    let too_many: Vec<Value> = (0..1001).map(|_| rec("m", None, None, 1.0)).collect();
    let body = app
        .gql(
            Some(&ingest),
            RECORD,
            json!({ "input": { "records": too_many } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        json!("input.records")
    );
    // A wrongly typed enum-free field is refused by the schema.
    let body = app
        .gql(
            Some(&ingest),
            RECORD,
            json!({ "input": { "records": [{ "model": "m", "costCents": "lots" }] } }),
        )
        .await;
    assert!(body["errors"].is_array(), "{body:#}");

    let s = summary(&app, &viewer, "LAST_30_DAYS").await;
    assert_eq!(
        s["summary"]["requestCount"],
        json!(0),
        "nothing was written"
    );

    // Roles: only INGEST and ADMIN record cost.
    for role in [Role::Viewer, Role::Operator] {
        let key = app.key("acme", role).await;
        let body = app
            .gql(
                Some(&key),
                RECORD,
                json!({ "input": { "records": [rec("m", None, None, 1.0)] } }),
            )
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    let admin = app.key("acme", Role::Admin).await;
    record(&app, &admin, vec![rec("m", None, None, 1.0)]).await;
    app.stop().await;
}

async fn record_cost_idempotency_and_isolation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin_a = app.key("acme", Role::Admin).await;
    let ingest_a = app.key("acme", Role::Ingest).await;
    let ingest_b = app.key("beta", Role::Ingest).await;
    let viewer_a = app.key("acme", Role::Viewer).await;
    let viewer_b = app.key("beta", Role::Viewer).await;
    app.data(
        &admin_a,
        CREATE_TAG,
        json!({ "input": { "tag": "chat.reply", "displayName": "Chat" } }),
    )
    .await;
    let input = json!({ "records": [rec("m", Some("chat.reply"), None, 1.25), rec("m", None, Some("u"), 2.5)] });
    let first = app
        .data(&ingest_a, RECORD, json!({ "input": input, "key": "k-1" }))
        .await;
    let again = app
        .data(&ingest_a, RECORD, json!({ "input": input, "key": "k-1" }))
        .await;
    assert_eq!(first, again, "a duplicate returns the first result");
    let other = app
        .gql(
            Some(&ingest_a),
            RECORD,
            json!({ "input": { "records": [rec("m", None, None, 9.0)] }, "key": "k-1" }),
        )
        .await;
    assert_eq!(error_code(&other), "IDEMPOTENCY_CONFLICT");
    let a = summary(&app, &viewer_a, "TODAY").await;
    assert_eq!(a["summary"]["requestCount"], json!(2));
    assert!(close(f(&a["summary"]["totalCostCents"]), 3.75));

    // Tenant B: its own key space, its own tags (A's tag is unknown to B), its own totals.
    let b = app
        .data(&ingest_b, RECORD, json!({ "input": input, "key": "k-1" }))
        .await;
    assert_ne!(b, first);
    assert_eq!(
        b["recordCost"]["records"][0]["featureTag"],
        json!("unclassified")
    );
    let sb = summary(&app, &viewer_b, "TODAY").await;
    assert_eq!(sb["summary"]["requestCount"], json!(2));
    let sa = summary(&app, &viewer_a, "TODAY").await;
    assert_eq!(sa["summary"]["requestCount"], json!(2));
    app.stop().await;
}

async fn feature_tags_create_and_update(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let admin_b = app.key("beta", Role::Admin).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let created = app
        .data(
            &admin,
            CREATE_TAG,
            json!({ "input": { "tag": "search.query", "displayName": "Search", "budgetCents": 500 }, "key": "t1" }),
        )
        .await["createFeatureTag"]
        .clone();
    assert!(created["id"].as_str().expect("present").starts_with("ft_"));
    assert_eq!(created["budgetCents"], json!(500.0));
    let replay = app
        .data(
            &admin,
            CREATE_TAG,
            json!({ "input": { "tag": "search.query", "displayName": "Search", "budgetCents": 500 }, "key": "t1" }),
        )
        .await["createFeatureTag"]
        .clone();
    assert_eq!(replay["id"], created["id"]);
    let dup = app
        .gql(
            Some(&admin),
            CREATE_TAG,
            json!({ "input": { "tag": "search.query", "displayName": "Again" } }),
        )
        .await;
    assert_eq!(error_code(&dup), "BAD_USER_INPUT");
    assert_eq!(dup["errors"][0]["extensions"]["field"], json!("input.tag"));
    for (input, field) in [
        (json!({ "tag": "nodot", "displayName": "x" }), "input.tag"),
        (json!({ "tag": ".x", "displayName": "x" }), "input.tag"),
        (
            json!({ "tag": "a.b", "displayName": "" }),
            "input.displayName",
        ),
        (
            json!({ "tag": "a.b", "displayName": "x", "budgetCents": -1 }),
            "input.budgetCents",
        ),
    ] {
        let body = app
            .gql(Some(&admin), CREATE_TAG, json!({ "input": input }))
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["field"],
            json!(field),
            "{body:#}"
        );
    }
    for key in [&ingest, &viewer] {
        let body = app
            .gql(
                Some(key),
                CREATE_TAG,
                json!({ "input": { "tag": "a.b", "displayName": "x" } }),
            )
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        let body = app
            .gql(
                Some(key),
                UPDATE_TAG,
                json!({ "tag": "search.query", "input": { "isActive": false } }),
            )
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    // Another tenant cannot see or change it; B can create the same tag for itself.
    let body = app
        .gql(
            Some(&admin_b),
            UPDATE_TAG,
            json!({ "tag": "search.query", "input": { "isActive": false } }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    app.data(
        &admin_b,
        CREATE_TAG,
        json!({ "input": { "tag": "search.query", "displayName": "B's" } }),
    )
    .await;

    let updated = app
        .data(
            &admin,
            UPDATE_TAG,
            json!({ "tag": "search.query", "input": { "displayName": "Search v2", "description": "d", "budgetCents": null, "isActive": false } }),
        )
        .await["updateFeatureTag"]
        .clone();
    assert_eq!(updated["displayName"], json!("Search v2"));
    assert_eq!(updated["description"], json!("d"));
    assert_eq!(updated["budgetCents"], Value::Null);
    assert_eq!(updated["isActive"], json!(false));
    let none = app
        .gql(
            Some(&admin),
            UPDATE_TAG,
            json!({ "tag": "search.query", "input": {} }),
        )
        .await;
    assert_eq!(none["errors"][0]["extensions"]["field"], json!("input"));
    let missing = app
        .gql(
            Some(&admin),
            UPDATE_TAG,
            json!({ "tag": "no.such", "input": { "isActive": true } }),
        )
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");

    let list = app
        .data(
            &viewer,
            "{ cost { active: featureTags { totalCount } all: featureTags(includeInactive: true) { nodes { tag displayName isActive } } } }",
            json!({}),
        )
        .await;
    assert_eq!(list["cost"]["active"]["totalCount"], json!(0));
    assert_eq!(
        list["cost"]["all"]["nodes"],
        json!([{ "tag": "search.query", "displayName": "Search v2", "isActive": false }])
    );
    // An inactive tag no longer classifies cost.
    let out = record(
        &app,
        &ingest,
        vec![rec("m", Some("search.query"), None, 1.0)],
    )
    .await;
    assert_eq!(out["records"][0]["featureTag"], json!("unclassified"));
    app.stop().await;
}

async fn upsert_budget_keeps_one_per_entity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let admin_b = app.key("beta", Role::Admin).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let operator = app.key("acme", Role::Operator).await;
    let first = app
        .data(
            &admin,
            BUDGET,
            json!({ "input": { "budgetType": "TENANT", "dailyLimitCents": 100, "monthlyLimitCents": 2000 } }),
        )
        .await["upsertBudget"]
        .clone();
    assert!(first["id"].as_str().expect("present").starts_with("cb_"));
    assert_eq!(first["entityId"], Value::Null);
    let second = app
        .data(
            &admin,
            BUDGET,
            json!({ "input": { "budgetType": "TENANT", "dailyLimitCents": 300, "warnThresholdPct": 70 }, "key": "b1" }),
        )
        .await["upsertBudget"]
        .clone();
    assert_eq!(second["id"], first["id"], "the tenant budget is unique");
    assert_eq!(second["dailyLimitCents"], json!(300.0));
    assert_eq!(second["monthlyLimitCents"], Value::Null);
    assert_eq!(second["warnThresholdPct"], json!(70));
    let replay = app
        .data(
            &admin,
            BUDGET,
            json!({ "input": { "budgetType": "TENANT", "dailyLimitCents": 300, "warnThresholdPct": 70 }, "key": "b1" }),
        )
        .await["upsertBudget"]
        .clone();
    assert_eq!(replay, second);
    app.data(
        &admin,
        BUDGET,
        json!({ "input": { "budgetType": "FEATURE", "entityId": "chat.reply", "monthlyLimitCents": 50 } }),
    )
    .await;
    let list = app
        .data(
            &viewer,
            "{ cost { budgets { totalCount nodes { id budgetType entityId dailyLimitCents } } summary { monthlyLimitCents } } }",
            json!({}),
        )
        .await;
    assert_eq!(list["cost"]["budgets"]["totalCount"], json!(2));
    let tenant_rows: Vec<&Value> = list["cost"]["budgets"]["nodes"]
        .as_array()
        .expect("present")
        .iter()
        .filter(|b| b["budgetType"] == json!("TENANT"))
        .collect();
    assert_eq!(tenant_rows.len(), 1);
    assert_eq!(tenant_rows[0]["dailyLimitCents"], json!(300.0));

    for (input, field) in [
        (json!({ "budgetType": "FEATURE" }), "input.entityId"),
        (
            json!({ "budgetType": "TENANT", "entityId": "x" }),
            "input.entityId",
        ),
        (
            json!({ "budgetType": "TENANT", "warnThresholdPct": 150 }),
            "input.warnThresholdPct",
        ),
        (
            json!({ "budgetType": "USER", "entityId": "u", "dailyLimitCents": -1 }),
            "input.dailyLimitCents",
        ),
    ] {
        let body = app
            .gql(Some(&admin), BUDGET, json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
        assert_eq!(body["errors"][0]["extensions"]["field"], json!(field));
    }
    let bad_enum = app
        .gql(
            Some(&admin),
            BUDGET,
            json!({ "input": { "budgetType": "GALAXY" } }),
        )
        .await;
    assert!(bad_enum["errors"].is_array());
    let forbidden = app
        .gql(
            Some(&operator),
            BUDGET,
            json!({ "input": { "budgetType": "TENANT" } }),
        )
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    // Tenant B sees none of A's budgets; its own tenant budget is a different row.
    let b = app
        .data(
            &admin_b,
            BUDGET,
            json!({ "input": { "budgetType": "TENANT", "dailyLimitCents": 1 } }),
        )
        .await;
    assert_ne!(b["upsertBudget"]["id"], first["id"]);
    let viewer_b = app.key("beta", Role::Viewer).await;
    let lb = app
        .data(&viewer_b, "{ cost { budgets { totalCount } } }", json!({}))
        .await;
    assert_eq!(lb["cost"]["budgets"]["totalCount"], json!(1));
    app.stop().await;
}

fn anomaly_keys(list: &Value) -> Vec<(String, String, Value)> {
    let mut keys: Vec<(String, String, Value)> = list
        .as_array()
        .expect("present")
        .iter()
        .map(|a| {
            (
                a["anomalyType"].as_str().expect("present").to_owned(),
                a["entityType"].as_str().expect("present").to_owned(),
                a["entityId"].clone(),
            )
        })
        .collect();
    keys.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    keys
}

async fn detect_cost_anomalies_is_idempotent_per_day(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let operator = app.key("acme", Role::Operator).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let operator_b = app.key("beta", Role::Operator).await;
    app.data(
        &admin,
        CREATE_TAG,
        json!({ "input": { "tag": "chat.reply", "displayName": "Chat" } }),
    )
    .await;
    // 100 cents a day 3..=10 days ago, 300 yesterday and today: a two-day spike (ratio 3).
    let mut rows = Vec::new();
    for n in 0..=10u64 {
        let cents = match n {
            0 | 1 => 300.0,
            2 => continue,
            _ => 100.0,
        };
        rows.push(
            json!({ "model": "gpt-4o", "featureTag": "chat.reply", "userId": "u1",
                          "costCents": cents, "createdAt": days_ago(n) }),
        );
    }
    record(&app, &ingest, rows).await;
    // Today 300 of a 350 daily limit: 85.7 % ≥ the 80 % warning threshold.
    daily_budget_of_350(&app, &admin).await;

    for key in [&viewer, &ingest] {
        let body = app.gql(Some(key), DETECT, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    let first = app.data(&operator, DETECT, json!({})).await["detectCostAnomalies"].clone();
    let found = anomaly_keys(&first["anomalies"]);
    let expect = |t: &str, e: &str, id: Value| (t.to_owned(), e.to_owned(), id);
    for wanted in [
        expect("ABSOLUTE_SPIKE", "TENANT", Value::Null),
        expect("ABSOLUTE_SPIKE", "USER", json!("u1")),
        expect("ABSOLUTE_SPIKE", "FEATURE", json!("chat.reply")),
        expect("BUDGET_WARNING", "TENANT", Value::Null),
    ] {
        assert!(found.contains(&wanted), "{wanted:?} not in {found:?}");
    }
    let spike = first["anomalies"]
        .as_array()
        .expect("present")
        .iter()
        .find(|a| a["anomalyType"] == json!("ABSOLUTE_SPIKE") && a["entityType"] == json!("TENANT"))
        .expect("present");
    assert_eq!(spike["severity"], json!("HIGH"));
    assert_eq!(spike["breachCount"], json!(2));
    assert!(close(f(&spike["deviationPct"]), 200.0), "{spike:#}");
    assert_eq!(first["created"], json!(found.len()));

    let listed = app.data(&viewer, ANOMALIES, json!({})).await;
    assert_eq!(
        listed["cost"]["anomalies"]["totalCount"],
        json!(found.len())
    );
    assert_eq!(anomaly_keys(&listed["cost"]["anomalies"]["nodes"]), found);

    // Same day again: updated in place, nothing new.
    let second = app.data(&admin, DETECT, json!({})).await["detectCostAnomalies"].clone();
    assert_eq!(second["created"], json!(0));
    assert_eq!(second["updated"], json!(found.len()));
    let ids = |v: &Value| {
        let mut ids: Vec<String> = v
            .as_array()
            .expect("present")
            .iter()
            .map(|a| a["id"].as_str().expect("present").to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&second["anomalies"]), ids(&first["anomalies"]));
    let again = app.data(&viewer, ANOMALIES, json!({})).await;
    assert_eq!(again["cost"]["anomalies"]["totalCount"], json!(found.len()));

    // Idempotency key: the duplicate returns the first result.
    let k1 = app.data(&operator, DETECT, json!({ "key": "d1" })).await;
    let k2 = app.data(&operator, DETECT, json!({ "key": "d1" })).await;
    assert_eq!(k1, k2);

    // Tenant B has no cost: nothing found, and A's anomalies stay invisible to it.
    let b = app.data(&operator_b, DETECT, json!({})).await["detectCostAnomalies"].clone();
    assert_eq!(b["anomalies"], json!([]));
    let lb = app.data(&operator_b, ANOMALIES, json!({})).await;
    assert_eq!(lb["cost"]["anomalies"]["totalCount"], json!(0));
    app.stop().await;
}

/// Whether `body` is the hard-budget refusal of `budget` over `period`.
fn assert_budget_exceeded(body: &Value, budget: &Value, period: &str) {
    assert_eq!(error_code(body), "INVALID_TRANSITION", "{body:#}");
    let ext = &body["errors"][0]["extensions"];
    assert_eq!(ext["reason"], json!("BUDGET_EXCEEDED"), "{body:#}");
    assert_eq!(&ext["budgetId"], budget, "{body:#}");
    assert_eq!(ext["period"], json!(period), "{body:#}");
    assert_eq!(body["data"], Value::Null, "{body:#}");
}

async fn hard_budgets_refuse_cost_and_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let tenant = app
        .data(
            &admin,
            BUDGET,
            json!({ "input": { "budgetType": "TENANT", "dailyLimitCents": 1000, "hardLimitEnabled": true } }),
        )
        .await["upsertBudget"]["id"]
        .clone();
    record(&app, &ingest, vec![rec("m", None, Some("u1"), 600.0)]).await;

    // 600 + 500 > 1000: refused, and nothing of the batch is written (its first record fits).
    let body = app
        .gql(
            Some(&ingest),
            RECORD,
            json!({ "input": { "records": [rec("m", None, None, 100.0), rec("m", None, None, 400.0)] } }),
        )
        .await;
    assert_budget_exceeded(&body, &tenant, "DAILY");
    let ext = &body["errors"][0]["extensions"];
    assert!(close(f(&ext["limitCents"]), 1000.0) && close(f(&ext["spendCents"]), 1100.0));
    let today = summary(&app, &viewer, "TODAY").await;
    assert!(
        close(f(&today["summary"]["totalCostCents"]), 600.0),
        "{today:#}"
    );
    assert_eq!(today["summary"]["requestCount"], json!(1));

    // A refused key is not consumed: once the limit allows it, the same key runs.
    let batch = json!({ "input": { "records": [rec("m", None, None, 450.0)] }, "key": "hard-1" });
    let body = app.gql(Some(&ingest), RECORD, batch.clone()).await;
    assert_budget_exceeded(&body, &tenant, "DAILY");
    app.data(
        &admin,
        BUDGET,
        json!({ "input": { "budgetType": "TENANT", "dailyLimitCents": 1050, "hardLimitEnabled": true } }),
    )
    .await;
    let first = app.data(&ingest, RECORD, batch.clone()).await;
    assert_eq!(first["recordCost"]["recordCount"], json!(1));
    assert_eq!(app.data(&ingest, RECORD, batch).await, first, "a duplicate");
    // Exactly at the limit is allowed; a fraction of a cent past it is not.
    let at_limit = summary(&app, &viewer, "TODAY").await;
    assert!(close(f(&at_limit["summary"]["totalCostCents"]), 1050.0));
    let body = app
        .gql(
            Some(&ingest),
            RECORD,
            json!({ "input": { "records": [rec("m", None, None, 0.01)] } }),
        )
        .await;
    assert_budget_exceeded(&body, &tenant, "DAILY");
    // Zero cost adds nothing to the budget; cost on an earlier day is outside the daily limit.
    record(&app, &ingest, vec![rec("m", None, None, 0.0)]).await;
    let earlier = json!({ "model": "m", "costCents": 5000.0, "createdAt": days_ago(1) });
    record(&app, &ingest, vec![earlier]).await;
    // A monthly limit counts that earlier day when it is in this month.
    let same_month = days_ago(1)[..7] == days_ago(0)[..7];
    app.data(
        &admin,
        BUDGET,
        json!({ "input": { "budgetType": "TENANT", "dailyLimitCents": 100000, "monthlyLimitCents": 6100, "hardLimitEnabled": true } }),
    )
    .await;
    let body = app
        .gql(
            Some(&ingest),
            RECORD,
            json!({ "input": { "records": [rec("m", None, None, 60.0)] } }),
        )
        .await;
    if same_month {
        assert_budget_exceeded(&body, &tenant, "MONTHLY");
    } else {
        assert!(body.get("errors").is_none(), "{body:#}");
    }
    // With the hard flag off the same budget no longer refuses anything.
    app.data(
        &admin,
        BUDGET,
        json!({ "input": { "budgetType": "TENANT", "dailyLimitCents": 1, "hardLimitEnabled": false } }),
    )
    .await;
    record(&app, &ingest, vec![rec("m", None, None, 60.0)]).await;

    // Feature and user budgets count only their entity's records; inactive ones nothing.
    let admin_b = app.key("beta", Role::Admin).await;
    let ingest_b = app.key("beta", Role::Ingest).await;
    app.data(
        &admin_b,
        CREATE_TAG,
        json!({ "input": { "tag": "chat.reply", "displayName": "Chat" } }),
    )
    .await;
    let feature = app
        .data(
            &admin_b,
            BUDGET,
            json!({ "input": { "budgetType": "FEATURE", "entityId": "chat.reply", "dailyLimitCents": 100, "hardLimitEnabled": true } }),
        )
        .await["upsertBudget"]["id"]
        .clone();
    let user = app
        .data(
            &admin_b,
            BUDGET,
            json!({ "input": { "budgetType": "USER", "entityId": "u7", "monthlyLimitCents": 50, "hardLimitEnabled": true } }),
        )
        .await["upsertBudget"]["id"]
        .clone();
    record(
        &app,
        &ingest_b,
        vec![rec("m", Some("chat.reply"), None, 90.0)],
    )
    .await;
    let body = app
        .gql(
            Some(&ingest_b),
            RECORD,
            json!({ "input": { "records": [rec("m", Some("chat.reply"), None, 20.0)] } }),
        )
        .await;
    assert_budget_exceeded(&body, &feature, "DAILY");
    // The same cost under an unknown tag counts as `unclassified`, not against the feature.
    record(
        &app,
        &ingest_b,
        vec![rec("m", Some("nope.tag"), None, 20.0)],
    )
    .await;
    record(&app, &ingest_b, vec![rec("m", None, Some("u7"), 50.0)]).await;
    let body = app
        .gql(
            Some(&ingest_b),
            RECORD,
            json!({ "input": { "records": [rec("m", None, Some("u7"), 1.0)] } }),
        )
        .await;
    assert_budget_exceeded(&body, &user, "MONTHLY");
    record(&app, &ingest_b, vec![rec("m", None, Some("u8"), 500.0)]).await;
    app.data(
        &admin_b,
        BUDGET,
        json!({ "input": { "budgetType": "FEATURE", "entityId": "chat.reply", "dailyLimitCents": 100, "hardLimitEnabled": true, "isActive": false } }),
    )
    .await;
    record(
        &app,
        &ingest_b,
        vec![rec("m", Some("chat.reply"), None, 20.0)],
    )
    .await;
    // Tenant acme's hard budgets never refuse beta's cost, nor the reverse.
    let beta = summary(&app, &app.key("beta", Role::Viewer).await, "TODAY").await;
    assert!(
        close(
            f(&beta["summary"]["totalCostCents"]),
            90.0 + 20.0 + 50.0 + 500.0 + 20.0
        ),
        "{beta:#}"
    );
    app.stop().await;
}

async fn hard_budget_holds_under_concurrent_writers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    app.data(
        &admin,
        CREATE_TAG,
        json!({ "input": { "tag": "chat.reply", "displayName": "Chat" } }),
    )
    .await;
    let budget = app
        .data(
            &admin,
            BUDGET,
            json!({ "input": { "budgetType": "TENANT", "monthlyLimitCents": 1000, "hardLimitEnabled": true } }),
        )
        .await["upsertBudget"]["id"]
        .clone();
    // A soft feature budget next to it: locked by nobody, refused by nobody.
    app.data(
        &admin,
        BUDGET,
        json!({ "input": { "budgetType": "FEATURE", "entityId": "chat.reply", "dailyLimitCents": 1 } }),
    )
    .await;
    // 40 writers of 100 cents each (two records of 50) against a 1000-cent monthly limit,
    // spread over up to five days of this month: writers of different days upsert different
    // rollup rows, so only the budget lock keeps two of them from both passing the limit.
    let days_this_month = u64::from(Utc::now().date_naive().day()).min(5);
    let calls = (0..40u64).map(|i| {
        let tag = (i % 2 == 0).then_some("chat.reply");
        let at = days_ago(i % days_this_month);
        let records = vec![
            json!({ "model": "m", "featureTag": tag, "userId": format!("u{}", i % 3),
                    "costCents": 50.0, "createdAt": at }),
            json!({ "model": "m", "costCents": 50.0, "createdAt": at }),
        ];
        app.gql(
            Some(&ingest),
            RECORD,
            json!({ "input": { "records": records } }),
        )
    });
    let bodies = futures_util::future::join_all(calls).await;
    let mut accepted = 0;
    for body in &bodies {
        if body.get("errors").is_some() {
            assert_budget_exceeded(body, &budget, "MONTHLY");
        } else {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 10, "exactly the writers that fit under the limit");
    let week = summary(&app, &viewer, "LAST_7_DAYS").await;
    assert!(
        close(f(&week["summary"]["totalCostCents"]), 1000.0),
        "{week:#}"
    );
    assert_eq!(week["summary"]["requestCount"], json!(20));
    let listed = app
        .data(
            &viewer,
            "{ cost { budgets { nodes { budgetType currentMonthlySpendCents } } } }",
            json!({}),
        )
        .await;
    for b in listed["cost"]["budgets"]["nodes"]
        .as_array()
        .expect("present")
    {
        if b["budgetType"] == json!("TENANT") {
            assert!(close(f(&b["currentMonthlySpendCents"]), 1000.0), "{b:#}");
        }
    }
    app.stop().await;
}

const ACK: &str = r#"
mutation A($id: ID!, $key: String) {
  acknowledgeCostAnomaly(id: $id, idempotencyKey: $key) {
    id status resolved acknowledgedAt acknowledgedBy resolvedAt resolvedBy resolutionNote
  }
}"#;

const RESOLVE: &str = r#"
mutation R($id: ID!, $note: String, $key: String) {
  resolveCostAnomaly(id: $id, note: $note, idempotencyKey: $key) {
    id status resolved acknowledgedAt acknowledgedBy resolvedAt resolvedBy resolutionNote
  }
}"#;

async fn cost_anomalies_are_acknowledged_then_resolved(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let operator = app.key("acme", Role::Operator).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let operator_b = app.key("beta", Role::Operator).await;
    // The spike and budget warning of `detect_cost_anomalies_is_idempotent_per_day`.
    spike(&app, &ingest).await;
    daily_budget_of_350(&app, &admin).await;
    app.data(&operator, DETECT, json!({})).await;
    let listed = app
        .data(
            &viewer,
            "{ cost { anomalies(first: 10) { nodes { id status } } } }",
            json!({}),
        )
        .await;
    let nodes = listed["cost"]["anomalies"]["nodes"]
        .as_array()
        .expect("present")
        .clone();
    assert!(nodes.len() >= 3, "{listed:#}");
    assert!(
        nodes.iter().all(|n| n["status"] == json!("OPEN")),
        "{listed:#}"
    );
    let id = |i: usize| nodes[i]["id"].as_str().expect("present").to_owned();
    let (a, b, c) = (id(0), id(1), id(2));

    for key in [&viewer, &ingest] {
        let body = app.gql(Some(key), ACK, json!({ "id": a })).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");
        let body = app.gql(Some(key), RESOLVE, json!({ "id": a })).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");
    }
    // Another tenant's anomaly is answered like a missing one.
    for id in [a.as_str(), "ca_0000000000000000"] {
        for (query, vars) in [
            (ACK, json!({ "id": id })),
            (RESOLVE, json!({ "id": id, "note": "x" })),
        ] {
            let body = app.gql(Some(&operator_b), query, vars).await;
            assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
            assert_eq!(body["errors"][0]["message"], json!("CostAnomaly not found"));
        }
    }

    // OPEN → ACKNOWLEDGED → RESOLVED.
    let acked =
        app.data(&operator, ACK, json!({ "id": a })).await["acknowledgeCostAnomaly"].clone();
    assert_eq!(acked["status"], json!("ACKNOWLEDGED"));
    assert_eq!(acked["resolved"], json!(false));
    assert!(acked["acknowledgedBy"]
        .as_str()
        .expect("present")
        .starts_with("key:"));
    assert!(acked["acknowledgedAt"].is_string());
    let body = app.gql(Some(&admin), ACK, json!({ "id": a })).await;
    assert_eq!(error_code(&body), "INVALID_TRANSITION", "{body:#}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .expect("message")
        .contains("already acknowledged"));
    let resolved = app
        .data(
            &admin,
            RESOLVE,
            json!({ "id": a, "note": "capacity test, expected" }),
        )
        .await["resolveCostAnomaly"]
        .clone();
    assert_eq!(resolved["status"], json!("RESOLVED"));
    assert_eq!(resolved["resolved"], json!(true));
    assert_eq!(resolved["resolutionNote"], json!("capacity test, expected"));
    assert_eq!(resolved["acknowledgedBy"], acked["acknowledgedBy"]);
    assert_ne!(
        resolved["resolvedBy"], acked["acknowledgedBy"],
        "another key resolved it"
    );
    // Resolving again, or acknowledging a resolved one: refused, the first resolution stays.
    let body = app
        .gql(
            Some(&operator),
            RESOLVE,
            json!({ "id": a, "note": "again" }),
        )
        .await;
    assert_eq!(error_code(&body), "INVALID_TRANSITION", "{body:#}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .expect("message")
        .contains("already resolved"));
    let body = app.gql(Some(&operator), ACK, json!({ "id": a })).await;
    assert_eq!(error_code(&body), "INVALID_TRANSITION", "{body:#}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .expect("message")
        .contains("is resolved"));

    // OPEN → RESOLVED directly, under an idempotency key.
    let vars = json!({ "id": b, "note": "dup", "key": "res-1" });
    let first = app.data(&operator, RESOLVE, vars.clone()).await;
    assert_eq!(first["resolveCostAnomaly"]["status"], json!("RESOLVED"));
    assert_eq!(first["resolveCostAnomaly"]["acknowledgedAt"], Value::Null);
    assert_eq!(
        app.data(&operator, RESOLVE, vars).await,
        first,
        "a duplicate"
    );
    let body = app
        .gql(
            Some(&operator),
            RESOLVE,
            json!({ "id": b, "note": "other", "key": "res-1" }),
        )
        .await;
    assert_eq!(error_code(&body), "IDEMPOTENCY_CONFLICT", "{body:#}");

    let long = "x".repeat(2001);
    let body = app
        .gql(Some(&operator), RESOLVE, json!({ "id": c, "note": long }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert_eq!(body["errors"][0]["extensions"]["field"], json!("note"));

    // C acknowledged; a detection re-run the same day updates it in place and keeps it so.
    app.data(&operator, ACK, json!({ "id": c })).await;
    app.data(&operator, DETECT, json!({})).await;
    let all = app
        .data(
            &viewer,
            "{ cost { open: anomalies(first: 50) { totalCount nodes { id status } }
                      all: anomalies(first: 50, filter: {includeResolved: true}) { totalCount nodes { id status resolutionNote } } } }",
            json!({}),
        )
        .await;
    let status_of = |list: &Value, id: &str| {
        list["nodes"]
            .as_array()
            .expect("present")
            .iter()
            .find(|n| n["id"] == json!(id))
            .map(|n| n["status"].clone())
    };
    let open = &all["cost"]["open"];
    assert_eq!(
        status_of(open, &a),
        None,
        "resolved anomalies are not listed by default"
    );
    assert_eq!(status_of(open, &b), None);
    assert_eq!(status_of(open, &c), Some(json!("ACKNOWLEDGED")));
    let every = &all["cost"]["all"];
    assert_eq!(status_of(every, &a), Some(json!("RESOLVED")));
    assert_eq!(status_of(every, &b), Some(json!("RESOLVED")));
    app.stop().await;
}

const DETECT_ESCALATE: &str = r#"
mutation D($escalate: Boolean!) {
  detectCostAnomalies(escalate: $escalate) {
    created updated
    escalated { anomalyId incidentId }
    anomalies { id anomalyType entityType severity incidentId actionTaken }
  }
}"#;

async fn high_anomalies_are_escalated_to_incidents_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let operator = app.key("acme", Role::Operator).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let viewer_b = app.key("beta", Role::Viewer).await;
    spike(&app, &ingest).await;
    // 300 of 350: a MEDIUM budget warning next to the HIGH spikes.
    daily_budget_of_350(&app, &admin).await;
    let incidents = async || {
        app.data(&viewer, "{ incidents { totalCount } }", json!({}))
            .await["incidents"]["totalCount"]
            .clone()
    };
    assert_eq!(incidents().await, json!(0));

    // Without escalation nothing is opened.
    let off = app
        .data(&operator, DETECT_ESCALATE, json!({ "escalate": false }))
        .await["detectCostAnomalies"]
        .clone();
    assert_eq!(off["escalated"], json!([]));
    let all = off["anomalies"].as_array().expect("present").clone();
    assert!(all.iter().all(|a| a["incidentId"].is_null()), "{off:#}");
    assert_eq!(incidents().await, json!(0));

    // With it, every HIGH anomaly opens one incident, linked both ways.
    let on = app
        .data(&operator, DETECT_ESCALATE, json!({ "escalate": true }))
        .await["detectCostAnomalies"]
        .clone();
    let high: Vec<&Value> = on["anomalies"]
        .as_array()
        .expect("present")
        .iter()
        .filter(|a| a["severity"] == json!("HIGH"))
        .collect();
    assert!(high.len() >= 3, "tenant, user and model spikes: {on:#}");
    assert_eq!(
        on["escalated"].as_array().expect("present").len(),
        high.len()
    );
    for anomaly in on["anomalies"].as_array().expect("present") {
        if anomaly["severity"] == json!("HIGH") {
            assert!(anomaly["incidentId"].is_string(), "{anomaly:#}");
            assert_eq!(anomaly["actionTaken"], json!("ESCALATED_TO_INCIDENT"));
        } else {
            assert!(anomaly["incidentId"].is_null(), "{anomaly:#}");
        }
    }
    assert!(on["anomalies"]
        .as_array()
        .expect("present")
        .iter()
        .any(|a| a["anomalyType"] == json!("BUDGET_WARNING") && a["severity"] == json!("MEDIUM")));
    assert_eq!(incidents().await, json!(high.len()));
    let pair = &on["escalated"][0];
    let incident = app
        .data(
            &viewer,
            "query($i: String!) { incident(incidentId: $i) { incidentId severity status lifecycleState triggerType category causeType costAnomalies { id incidentId } } }",
            json!({ "i": pair["incidentId"] }),
        )
        .await["incident"]
        .clone();
    assert_eq!(incident["severity"], json!("HIGH"));
    assert_eq!(incident["status"], json!("OPEN"));
    assert_eq!(incident["triggerType"], json!("cost_anomaly"));
    assert_eq!(incident["category"], json!("cost"));
    assert_eq!(incident["causeType"], json!("SYSTEM"));
    assert_eq!(
        incident["costAnomalies"],
        json!([{ "id": pair["anomalyId"], "incidentId": pair["incidentId"] }])
    );

    // The same day again: the anomalies are updated in place and keep their incidents.
    let again = app
        .data(&operator, DETECT_ESCALATE, json!({ "escalate": true }))
        .await["detectCostAnomalies"]
        .clone();
    assert_eq!(again["created"], json!(0));
    assert_eq!(again["escalated"], json!([]));
    assert_eq!(incidents().await, json!(high.len()));
    // Another tenant cannot read the incident.
    let body = app
        .gql(
            Some(&viewer_b),
            "query($i: String!) { incident(incidentId: $i) { incidentId } }",
            json!({ "i": pair["incidentId"] }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
    app.stop().await;
}

/// A tenant budget of 350 cents a day: today's 300 of the spike is a budget warning (85.7 % ≥
/// the 80 % threshold).
async fn daily_budget_of_350(app: &TestApp, admin: &str) {
    app.data(
        admin,
        BUDGET,
        json!({ "input": { "budgetType": "TENANT", "dailyLimitCents": 350 } }),
    )
    .await;
}

/// The spike fixture (300 cents today and yesterday over a 100-cent baseline) for one tenant.
async fn spike(app: &TestApp, ingest: &str) {
    let rows: Vec<Value> = (0..=10u64)
        .filter(|n| *n != 2)
        .map(|n| {
            let cents = if n <= 1 { 300.0 } else { 100.0 };
            json!({ "model": "gpt-4o", "userId": "u1", "costCents": cents, "createdAt": days_ago(n) })
        })
        .collect();
    record(app, ingest, rows).await;
}

async fn scheduled_sweep_runs_in_one_process_at_a_time(backend: Backend) {
    use logbook::cost::anomaly_detect::{sweep, SweepOutcome};
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};

    let app = TestApp::spawn(backend).await;
    let ingest_a = app.key("acme", Role::Ingest).await;
    let ingest_b = app.key("beta", Role::Ingest).await;
    let viewer_a = app.key("acme", Role::Viewer).await;
    spike(&app, &ingest_a).await;
    spike(&app, &ingest_b).await;
    let count = async || {
        app.data(&viewer_a, ANOMALIES, json!({})).await["cost"]["anomalies"]["totalCount"]
            .as_i64()
            .expect("count")
    };
    if let Backend::Postgres = backend {
        // Another process is sweeping: this one skips at once and evaluates nothing.
        let holder = app.db().begin().await.expect("begin");
        holder
            .execute_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtext('cost_detect_sweep'))",
            ))
            .await
            .expect("hold the sweep lock");
        let skipped = sweep(&app.state, Utc::now(), true).await.expect("sweep");
        assert_eq!(skipped, SweepOutcome::Skipped);
        assert_eq!(count().await, 0);
        holder.rollback().await.expect("release");
    }
    let SweepOutcome::Ran {
        tenants,
        created,
        updated,
        escalated,
    } = sweep(&app.state, Utc::now(), true).await.expect("sweep")
    else {
        panic!("the lock is free: the sweep must run");
    };
    assert_eq!(tenants, 2);
    assert_eq!(updated, 0);
    assert!(
        created >= 6 && escalated >= 6,
        "{created} created, {escalated} escalated"
    );
    assert_eq!(
        count().await * 2,
        created as i64,
        "both tenants, the same anomalies each"
    );
    // The next round re-evaluates the day: updates in place, nothing new, nothing re-escalated.
    let again = sweep(&app.state, Utc::now(), true).await.expect("sweep");
    assert_eq!(
        again,
        SweepOutcome::Ran {
            tenants: 2,
            created: 0,
            updated: created,
            escalated: 0
        }
    );
    app.stop().await;
}

/// With `cost_anomaly_sweep` set (the CLI's `--cost-anomaly-interval`), the server sweeps by
/// itself: the spike becomes anomalies and incidents with no `detectCostAnomalies` call.
async fn the_server_sweeps_on_its_timer(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.cost_anomaly_sweep = Some(std::time::Duration::from_millis(300));
    })
    .await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    spike(&app, &ingest).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let found = app.data(&viewer, ANOMALIES, json!({})).await["cost"]["anomalies"]
            ["totalCount"]
            .as_i64()
            .expect("count");
        if found > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no sweep ran within 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    app.stop().await;
}

crate::cases!(
    the_server_sweeps_on_its_timer,
    record_cost_keeps_rollups_exact,
    record_cost_batch_is_all_or_nothing,
    record_cost_idempotency_and_isolation,
    feature_tags_create_and_update,
    upsert_budget_keeps_one_per_entity,
    detect_cost_anomalies_is_idempotent_per_day,
    hard_budgets_refuse_cost_and_write_nothing,
    hard_budget_holds_under_concurrent_writers,
    cost_anomalies_are_acknowledged_then_resolved,
    high_anomalies_are_escalated_to_incidents_once,
    scheduled_sweep_runs_in_one_process_at_a_time,
);
