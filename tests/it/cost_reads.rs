//! `cost { … }`: breakdowns, summary, series and projection from the rollup (exact cents),
//! `unclassified` once, tenant isolation, `rebuild_rollups` ≡ incremental upserts, reads that
//! follow the rollup and never raw rows, budgets with batched spend, anomalies paging, bad input.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, Utc};
use entity::{cost_anomalies, cost_budgets, cost_daily_aggregates, feature_tags};
use logbook::auth::{Role, TenantId};
use logbook::cost::rollup::{rebuild_rollups, record_costs_atomic, NewCostRecord};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{json, Value};

use crate::support::{error_code, Backend, TestApp};

fn rec(
    model: &str,
    feature: Option<&str>,
    user: Option<&str>,
    cost_cents: f64,
    at: Option<DateTime<Utc>>,
) -> NewCostRecord {
    NewCostRecord {
        user_id: user.map(str::to_owned),
        feature_tag: feature.map(str::to_owned),
        model: model.to_owned(),
        input_tokens: 100,
        output_tokens: 10,
        cost_cents,
        created_at: at,
        ..Default::default()
    }
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Noon UTC `n` days before today.
fn days_ago(n: u64) -> DateTime<Utc> {
    (today() - Days::new(n))
        .and_hms_opt(12, 0, 0)
        .expect("noon")
        .and_utc()
}

async fn record(app: &TestApp, tenant: &str, rows: &[NewCostRecord]) -> Vec<String> {
    record_costs_atomic(app.db(), &TenantId::trusted(tenant), rows)
        .await
        .expect("record costs")
}

async fn add_feature_tag(
    app: &TestApp,
    tenant: &str,
    tag: &str,
    display: &str,
    budget: Option<i32>,
    active: bool,
    created_at: DateTime<Utc>,
) {
    feature_tags::ActiveModel {
        id: Set(format!("ft_{tenant}_{tag}")),
        tenant_id: Set(tenant.into()),
        tag: Set(tag.into()),
        display_name: Set(display.into()),
        description: Set(None),
        budget_cents: Set(budget),
        is_active: Set(active),
        created_at: Set(created_at),
        updated_at: Set(created_at),
    }
    .insert(app.db())
    .await
    .expect("feature tag");
}

#[expect(clippy::too_many_arguments, reason = "a test fixture")]
async fn add_budget(
    app: &TestApp,
    tenant: &str,
    id: &str,
    kind: &str,
    entity: &str,
    daily: Option<i32>,
    monthly: Option<i32>,
    active: bool,
) {
    let at = Utc::now();
    cost_budgets::ActiveModel {
        id: Set(id.into()),
        tenant_id: Set(tenant.into()),
        budget_type: Set(kind.into()),
        entity_id: Set(entity.into()),
        daily_limit_cents: Set(daily),
        monthly_limit_cents: Set(monthly),
        warn_threshold_pct: Set(80),
        hard_limit_enabled: Set(false),
        is_active: Set(active),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(app.db())
    .await
    .expect("budget");
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The standard fixture: tenant `acme` with two tags and costs today and three days ago,
/// tenant `other` with a large cost that `acme` must never see.
async fn fixture(app: &TestApp) {
    let long_ago = Utc::now() - Duration::days(400);
    add_feature_tag(
        app,
        "acme",
        "chat.reply",
        "Chat reply",
        Some(1000),
        true,
        long_ago,
    )
    .await;
    add_feature_tag(app, "acme", "search.query", "Search", None, false, long_ago).await;
    record(
        app,
        "acme",
        &[
            rec("gpt-4o", Some("chat.reply"), Some("u1"), 10.25, None),
            rec("gpt-4o", Some("chat.reply"), Some("u2"), 5.5, None),
            // inactive tag, missing tag and unknown tag: all `unclassified`
            rec("claude", Some("search.query"), Some("u1"), 2.25, None),
            rec("claude", None, None, 1.0, None),
            rec("claude", Some("unknown.tag"), Some("u3"), 0.5, None),
            rec(
                "gpt-4o",
                Some("chat.reply"),
                Some("u1"),
                100.0,
                Some(days_ago(3)),
            ),
        ],
    )
    .await;
    record(
        app,
        "other",
        &[rec("gpt-4o", Some("chat.reply"), Some("u1"), 1000.0, None)],
    )
    .await;
}

const BREAKDOWNS: &str = r#"
query($period: CostPeriod!) {
  cost {
    summary(period: $period) {
      period days totalCostCents totalInputTokens totalOutputTokens requestCount dailyAvgCents
      monthToDateCostCents budgetCents budgetUsedPct daysRemainingAtCurrentRate periodStart
      provenance { aggregation dataSource periodStart periodEnd periodDescription }
    }
    byModel(period: $period) { model totalCostCents requestCount pctOfTotal totalInputTokens totalOutputTokens }
    byFeature(period: $period) { featureTag displayName totalCostCents requestCount pctOfTotal budgetCents budgetUsedPct }
    byUser(period: $period) { userId totalCostCents requestCount pctOfTotal isAnomaly anomalyMessage }
  }
}"#;

fn rows(v: &Value) -> Vec<(String, f64, i64)> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|r| {
            let key = ["model", "featureTag", "userId"]
                .iter()
                .find_map(|k| r[*k].as_str())
                .expect("key")
                .to_owned();
            (
                key,
                f(&r["totalCostCents"]),
                r["requestCount"].as_i64().expect("count"),
            )
        })
        .collect()
}

fn pct_sum(v: &Value) -> f64 {
    v.as_array()
        .expect("list")
        .iter()
        .map(|r| f(&r["pctOfTotal"]))
        .sum()
}

async fn breakdowns_are_exact_sums_of_the_rollup(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    fixture(&app).await;

    let data = app.data(&key, BREAKDOWNS, json!({"period": "TODAY"})).await;
    let cost = &data["cost"];
    assert_eq!(
        rows(&cost["byModel"]),
        [("gpt-4o".into(), 15.75, 2), ("claude".into(), 3.75, 3)]
    );
    assert_eq!(cost["byModel"][0]["totalInputTokens"], "200");
    assert_eq!(cost["byModel"][1]["totalOutputTokens"], "30");
    assert!(close(
        f(&cost["byModel"][0]["pctOfTotal"]),
        15.75 / 19.5 * 100.0
    ));
    assert!(close(pct_sum(&cost["byModel"]), 100.0));

    // `unclassified` appears once, collecting the inactive, missing and unknown tags
    assert_eq!(
        rows(&cost["byFeature"]),
        [
            ("chat.reply".into(), 15.75, 2),
            ("unclassified".into(), 3.75, 3)
        ]
    );
    let chat = &cost["byFeature"][0];
    assert_eq!(chat["displayName"], "Chat reply");
    assert_eq!(f(&chat["budgetCents"]), 1000.0);
    assert!(close(f(&chat["budgetUsedPct"]), 1.575));
    assert_eq!(cost["byFeature"][1]["displayName"], Value::Null);
    assert_eq!(cost["byFeature"][1]["budgetUsedPct"], Value::Null);
    assert!(close(pct_sum(&cost["byFeature"]), 100.0));

    assert_eq!(
        rows(&cost["byUser"]),
        [
            ("u1".into(), 12.5, 2),
            ("u2".into(), 5.5, 1),
            ("anonymous".into(), 1.0, 1),
            ("u3".into(), 0.5, 1),
        ]
    );
    // mean 4.875: u1 (12.5) is above twice the mean
    assert_eq!(cost["byUser"][0]["isAnomaly"], true);
    assert_eq!(cost["byUser"][0]["anomalyMessage"], "Spending 2.6x average");
    assert_eq!(cost["byUser"][1]["isAnomaly"], false);
    assert_eq!(cost["byUser"][1]["anomalyMessage"], Value::Null);
    assert!(close(pct_sum(&cost["byUser"]), 100.0));

    let summary = &cost["summary"];
    assert_eq!(summary["period"], "TODAY");
    assert_eq!(summary["days"], 1);
    assert_eq!(f(&summary["totalCostCents"]), 19.5);
    assert_eq!(summary["requestCount"], 5);
    assert_eq!(summary["totalInputTokens"], "500");
    assert_eq!(summary["totalOutputTokens"], "50");
    assert_eq!(summary["budgetCents"], Value::Null);
    assert_eq!(summary["daysRemainingAtCurrentRate"], Value::Null);
    let start = format!("{}T00:00:00Z", today().format("%Y-%m-%d"));
    assert_eq!(summary["periodStart"], start.as_str());
    let provenance = &summary["provenance"];
    assert_eq!(provenance["dataSource"], "cost_daily_aggregates");
    assert_eq!(provenance["aggregation"], "SUM");
    assert_eq!(provenance["periodStart"], start.as_str());

    let data = app
        .data(&key, BREAKDOWNS, json!({"period": "LAST_7_DAYS"}))
        .await;
    let cost = &data["cost"];
    assert_eq!(
        rows(&cost["byModel"]),
        [("gpt-4o".into(), 115.75, 3), ("claude".into(), 3.75, 3)]
    );
    assert_eq!(f(&cost["summary"]["totalCostCents"]), 119.5);
    assert_eq!(f(&cost["summary"]["dailyAvgCents"]), 119.5 / 7.0);
    let same_month = (today() - Days::new(3)).month() == today().month();
    let mtd = if same_month { 119.5 } else { 19.5 };
    assert_eq!(f(&cost["summary"]["monthToDateCostCents"]), mtd);
    assert_eq!(cost["summary"]["days"], 7);

    // the other tenant sees only its own cost
    let other = app.key("other", Role::Viewer).await;
    let data = app
        .data(&other, BREAKDOWNS, json!({"period": "LAST_30_DAYS"}))
        .await;
    assert_eq!(
        rows(&data["cost"]["byModel"]),
        [("gpt-4o".into(), 1000.0, 1)]
    );
    // `chat.reply` is not registered for `other`, so its cost is unclassified there
    assert_eq!(
        rows(&data["cost"]["byFeature"]),
        [("unclassified".into(), 1000.0, 1)]
    );
    assert_eq!(f(&data["cost"]["summary"]["totalCostCents"]), 1000.0);
    app.stop().await;
}

async fn series_fills_missing_days_with_zero(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    fixture(&app).await;
    let query = r#"query($period: CostPeriod, $from: Date, $to: Date) {
      cost { series(period: $period, from: $from, to: $to) {
        granularity from to totalCostCents
        points { date totalCostCents requestCount totalInputTokens }
      } }
    }"#;
    let data = app
        .data(&key, query, json!({"period": "LAST_7_DAYS"}))
        .await;
    let series = &data["cost"]["series"];
    assert_eq!(series["granularity"], "DAY");
    let points = series["points"].as_array().expect("points");
    assert_eq!(points.len(), 7);
    let day = |n: u64| (today() - Days::new(n)).format("%Y-%m-%d").to_string();
    assert_eq!(series["from"], day(6).as_str());
    assert_eq!(series["to"], day(0).as_str());
    let values: Vec<(String, f64)> = points
        .iter()
        .map(|p| {
            (
                p["date"].as_str().expect("date").to_owned(),
                f(&p["totalCostCents"]),
            )
        })
        .collect();
    let expected: Vec<(String, f64)> = (0..7)
        .rev()
        .map(|n| {
            let cost = match n {
                0 => 19.5,
                3 => 100.0,
                _ => 0.0,
            };
            (day(n), cost)
        })
        .collect();
    assert_eq!(values, expected);
    assert_eq!(points[6]["requestCount"], 5);
    assert_eq!(points[0]["totalInputTokens"], "0");
    assert_eq!(f(&series["totalCostCents"]), 119.5);

    // an explicit range, including days before any data
    let data = app
        .data(&key, query, json!({"from": day(40), "to": day(2)}))
        .await;
    let series = &data["cost"]["series"];
    assert_eq!(series["points"].as_array().expect("points").len(), 39);
    assert_eq!(f(&series["totalCostCents"]), 100.0);

    // default: the last 30 days
    let data = app.data(&key, query, json!({})).await;
    assert_eq!(
        data["cost"]["series"]["points"]
            .as_array()
            .expect("points")
            .len(),
        30
    );
    app.stop().await;
}

/// The rollup rows of the database, without ids and timestamps, sorted.
async fn rollup_rows(
    app: &TestApp,
) -> Vec<(
    String,
    NaiveDate,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i32,
)> {
    let mut rows: Vec<_> = cost_daily_aggregates::Entity::find()
        .all(app.db())
        .await
        .expect("rollup")
        .into_iter()
        .map(|m| {
            (
                m.tenant_id,
                m.date,
                m.feature_tag,
                m.user_id,
                m.model,
                // cents × 4 is integral for every fixture value (quarters of a cent)
                (m.total_cost_cents * 4.0).round() as i64,
                m.total_input_tokens,
                m.total_output_tokens,
                m.request_count,
            )
        })
        .collect();
    rows.sort();
    rows
}

async fn rebuild_reproduces_the_incremental_rollup(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    fixture(&app).await;
    // several batches that hit the same rollup rows, across days and models
    for i in 0..5u64 {
        record(
            &app,
            "acme",
            &[
                rec(
                    "gpt-4o",
                    Some("chat.reply"),
                    Some("u1"),
                    0.25 * i as f64,
                    Some(days_ago(i)),
                ),
                rec("mistral", None, Some("u9"), 1.75, Some(days_ago(i * 7))),
                rec("mistral", None, None, 3.0, Some(days_ago(i * 7))),
            ],
        )
        .await;
    }
    let incremental = rollup_rows(&app).await;
    // total, feature, user and model grains: today's day total for acme is there
    assert!(incremental.iter().any(|r| r.0 == "acme"
        && r.1 == today()
        && r.2.is_empty()
        && r.3.is_empty()
        && r.4.is_empty()));

    let written = rebuild_rollups(app.db(), None).await.expect("rebuild all");
    assert_eq!(written as usize, incremental.len());
    assert_eq!(rollup_rows(&app).await, incremental);

    let written = rebuild_rollups(app.db(), Some(&TenantId::trusted("acme")))
        .await
        .expect("rebuild one tenant");
    assert!(written as usize > 0 && (written as usize) < incremental.len());
    assert_eq!(rollup_rows(&app).await, incremental);

    // raw rows loaded in bulk (NULL tag and user) count as unclassified / anonymous
    app.raw(&format!(
        "INSERT INTO cost_records (id, tenant_id, user_id, feature_tag, model, input_tokens, \
         output_tokens, cost_cents, is_retry, created_at) VALUES \
         ('cr_bulk1', 'bulk', NULL, NULL, 'gpt-4o', 1, 2, 2.5, false, '{}')",
        days_ago(1).format("%Y-%m-%dT%H:%M:%S+00:00")
    ))
    .await
    .expect("bulk row");
    rebuild_rollups(app.db(), Some(&TenantId::trusted("bulk")))
        .await
        .expect("rebuild bulk");
    let bulk: Vec<_> = rollup_rows(&app)
        .await
        .into_iter()
        .filter(|r| r.0 == "bulk")
        .map(|r| (r.2, r.3, r.4, r.5, r.8))
        .collect();
    assert_eq!(
        bulk,
        [
            (String::new(), String::new(), String::new(), 10, 1),
            (String::new(), String::new(), "gpt-4o".into(), 10, 1),
            (String::new(), "anonymous".into(), String::new(), 10, 1),
            ("unclassified".into(), String::new(), String::new(), 10, 1),
        ]
    );
    // rebuilding one tenant leaves the others' rows alone
    assert_eq!(
        rollup_rows(&app)
            .await
            .into_iter()
            .filter(|r| r.0 != "bulk")
            .collect::<Vec<_>>(),
        incremental
    );
    app.stop().await;
}

async fn concurrent_writers_keep_the_rollup_exact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let long_ago = Utc::now() - Duration::days(400);
    add_feature_tag(&app, "acme", "chat.reply", "Chat", None, true, long_ago).await;
    let mut tasks = Vec::new();
    for w in 0..6 {
        let db = app.db().clone();
        tasks.push(tokio::spawn(async move {
            // every writer hits the same rollup rows, in a different order
            let mut rows: Vec<NewCostRecord> = (0..20)
                .map(|i| {
                    let model = ["a", "b", "c"][(i + w) % 3];
                    let tag = (i % 2 == 0).then_some("chat.reply");
                    rec(model, tag, Some(["u1", "u2"][i % 2]), 0.25, None)
                })
                .collect();
            if w % 2 == 1 {
                rows.reverse();
            }
            record_costs_atomic(&db, &TenantId::trusted("acme"), &rows)
                .await
                .map(|ids| ids.len())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join").expect("record"), 20);
    }
    let data = app.data(&key, BREAKDOWNS, json!({"period": "TODAY"})).await;
    let cost = &data["cost"];
    assert_eq!(f(&cost["summary"]["totalCostCents"]), 30.0);
    assert_eq!(cost["summary"]["requestCount"], 120);
    assert_eq!(
        rows(&cost["byModel"]),
        [
            ("a".into(), 10.0, 40),
            ("b".into(), 10.0, 40),
            ("c".into(), 10.0, 40)
        ]
    );
    assert_eq!(
        rows(&cost["byUser"]),
        [("u1".into(), 15.0, 60), ("u2".into(), 15.0, 60)]
    );
    assert_eq!(
        rows(&cost["byFeature"]),
        [
            ("chat.reply".into(), 15.0, 60),
            ("unclassified".into(), 15.0, 60)
        ]
    );
    app.stop().await;
}

async fn reads_follow_the_rollup_not_raw_rows(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    fixture(&app).await;
    // raw rows the rollup does not know about: invisible to every panel
    app.raw(&format!(
        "INSERT INTO cost_records (id, tenant_id, user_id, feature_tag, model, input_tokens, \
         output_tokens, cost_cents, is_retry, created_at) VALUES \
         ('cr_raw1', 'acme', 'u1', 'chat.reply', 'gpt-4o', 1, 1, 5000, false, '{}')",
        Utc::now().format("%Y-%m-%dT%H:%M:%S+00:00")
    ))
    .await
    .expect("raw row");
    // and a rollup edit the raw rows do not justify: every panel follows it
    let day = today().format("%Y-%m-%d").to_string();
    app.raw(&format!(
        "UPDATE cost_daily_aggregates SET total_cost_cents = 777 WHERE tenant_id = 'acme' \
         AND date = '{day}' AND feature_tag = '' AND user_id = '' AND model = ''"
    ))
    .await
    .expect("edit rollup");
    app.raw(&format!(
        "UPDATE cost_daily_aggregates SET total_cost_cents = 42 WHERE tenant_id = 'acme' \
         AND date = '{day}' AND feature_tag = '' AND user_id = '' AND model = 'claude'"
    ))
    .await
    .expect("edit rollup");
    let data = app.data(&key, BREAKDOWNS, json!({"period": "TODAY"})).await;
    let cost = &data["cost"];
    assert_eq!(f(&cost["summary"]["totalCostCents"]), 777.0);
    assert_eq!(
        rows(&cost["byModel"]),
        [("claude".into(), 42.0, 3), ("gpt-4o".into(), 15.75, 2)]
    );
    assert_eq!(
        rows(&cost["byFeature"]),
        [
            ("chat.reply".into(), 15.75, 2),
            ("unclassified".into(), 3.75, 3)
        ]
    );
    app.stop().await;
}

async fn projection_averages_every_lookback_day(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    add_budget(&app, "acme", "cb_t", "tenant", "", None, Some(10_000), true).await;
    record(
        &app,
        "acme",
        &[
            rec("m", None, None, 35.0, Some(days_ago(5))),
            rec("m", None, None, 70.0, Some(days_ago(1))),
            // today's cost is not part of the average (partial day)
            rec("m", None, None, 1_000.0, None),
        ],
    )
    .await;
    let query = r#"query($l: Int!, $f: Int!) { cost { projection(lookbackDays: $l, forecastDays: $f) {
        lookbackDays forecastDays lookbackFrom lookbackTo currentDailyAvgCents projectedTotalCents
        monthlyProjectionCents monthToDateCostCents budgetCents daysUntilBudgetExhausted trend } } }"#;
    let data = app.data(&key, query, json!({"l": 7, "f": 10})).await;
    let p = &data["cost"]["projection"];
    assert_eq!(
        f(&p["currentDailyAvgCents"]),
        15.0,
        "105 over 7 days, zeros included"
    );
    assert_eq!(f(&p["projectedTotalCents"]), 150.0);
    assert_eq!(f(&p["monthlyProjectionCents"]), 450.0);
    assert_eq!(p["trend"], "INCREASING");
    assert_eq!(
        p["lookbackFrom"],
        (today() - Days::new(7))
            .format("%Y-%m-%d")
            .to_string()
            .as_str()
    );
    assert_eq!(
        p["lookbackTo"],
        (today() - Days::new(1))
            .format("%Y-%m-%d")
            .to_string()
            .as_str()
    );
    let month = today().month();
    let mtd: f64 = [(5, 35.0), (1, 70.0), (0, 1_000.0)]
        .iter()
        .filter(|(n, _)| (today() - Days::new(*n)).month() == month)
        .map(|(_, c)| c)
        .sum();
    assert_eq!(f(&p["monthToDateCostCents"]), mtd);
    assert_eq!(f(&p["budgetCents"]), 10_000.0);
    assert!(close(
        f(&p["daysUntilBudgetExhausted"]),
        (10_000.0 - mtd) / 15.0
    ));

    let data = app.data(&key, query, json!({"l": 1, "f": 1})).await;
    let p = &data["cost"]["projection"];
    assert_eq!(f(&p["currentDailyAvgCents"]), 70.0);
    assert_eq!(p["trend"], "STABLE", "fewer than 4 days");
    app.stop().await;
}

async fn budgets_carry_spend_from_one_statement(backend: Backend) {
    let app = TestApp::spawn_for_counting(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let long_ago = Utc::now() - Duration::days(400);
    add_feature_tag(&app, "acme", "chat.reply", "Chat", None, true, long_ago).await;
    add_budget(
        &app,
        "acme",
        "cb_1_tenant",
        "tenant",
        "",
        Some(100),
        Some(1_000),
        true,
    )
    .await;
    add_budget(
        &app,
        "acme",
        "cb_2_feature",
        "feature",
        "chat.reply",
        Some(10),
        None,
        true,
    )
    .await;
    add_budget(
        &app,
        "acme",
        "cb_3_user",
        "user",
        "u1",
        None,
        Some(50),
        true,
    )
    .await;
    add_budget(
        &app,
        "acme",
        "cb_4_off",
        "user",
        "u2",
        Some(1),
        Some(1),
        false,
    )
    .await;
    let earlier_this_month = today().day() > 1;
    let mut records = vec![
        rec("m", Some("chat.reply"), Some("u1"), 4.5, None),
        rec("m", None, Some("u2"), 2.0, None),
        // last month: in no monthly spend
        rec(
            "m",
            Some("chat.reply"),
            Some("u1"),
            900.0,
            Some(days_ago(u64::from(today().day()))),
        ),
    ];
    if earlier_this_month {
        records.push(rec(
            "m",
            Some("chat.reply"),
            Some("u1"),
            8.0,
            Some(days_ago(1)),
        ));
    }
    record(&app, "acme", &records).await;
    // another tenant's spend on the same entities is not counted
    record(
        &app,
        "other",
        &[rec("m", Some("chat.reply"), Some("u1"), 77.0, None)],
    )
    .await;

    let query = r#"{ cost { budgets(first: 50) { totalCount nodes {
        id budgetType entityId dailyLimitCents monthlyLimitCents currentDailySpendCents
        currentMonthlySpendCents dailyUsedPct monthlyUsedPct isActive } } } }"#;
    app.data(&key, "{ viewer { role } }", json!({})).await; // warm the key cache
    let before = app.state.sql.statements();
    let data = app.data(&key, query, json!({})).await;
    let statements = app.state.sql.statements() - before;
    let budgets = &data["cost"]["budgets"];
    assert_eq!(budgets["totalCount"], 3, "inactive budgets are not listed");
    let mut nodes: Vec<Value> = budgets["nodes"].as_array().expect("nodes").clone();
    nodes.sort_by_key(|n| n["id"].as_str().map(str::to_owned));
    let earlier = if earlier_this_month { 8.0 } else { 0.0 };
    let spend: Vec<(String, Value, f64, f64)> = nodes
        .iter()
        .map(|n| {
            (
                n["budgetType"].as_str().expect("type").to_owned(),
                n["entityId"].clone(),
                f(&n["currentDailySpendCents"]),
                f(&n["currentMonthlySpendCents"]),
            )
        })
        .collect();
    assert_eq!(
        spend,
        [
            ("TENANT".into(), Value::Null, 6.5, 6.5 + earlier),
            ("FEATURE".into(), json!("chat.reply"), 4.5, 4.5 + earlier),
            ("USER".into(), json!("u1"), 4.5, 4.5 + earlier),
        ]
    );
    assert_eq!(f(&nodes[0]["dailyUsedPct"]), 6.5);
    assert!(close(
        f(&nodes[0]["monthlyUsedPct"]),
        (6.5 + earlier) / 10.0
    ));
    assert_eq!(f(&nodes[1]["dailyUsedPct"]), 45.0);
    assert_eq!(nodes[1]["monthlyUsedPct"], Value::Null);

    // more budgets, same number of statements: the spend is batched
    for i in 0..5 {
        add_budget(
            &app,
            "acme",
            &format!("cb_9_{i}"),
            "user",
            &format!("x{i}"),
            Some(1),
            None,
            true,
        )
        .await;
    }
    let before = app.state.sql.statements();
    let data = app.data(&key, query, json!({})).await;
    assert_eq!(data["cost"]["budgets"]["totalCount"], 8);
    let more = app.state.sql.statements() - before;
    assert_eq!(
        more, statements,
        "spend is one statement for the whole page"
    );
    assert!(statements <= 3, "page + spend + count, got {statements}");
    app.stop().await;
}

async fn add_anomaly(
    app: &TestApp,
    tenant: &str,
    id: &str,
    kind: &str,
    severity: &str,
    resolved: bool,
    detected_at: DateTime<Utc>,
) {
    cost_anomalies::ActiveModel {
        id: Set(id.into()),
        tenant_id: Set(tenant.into()),
        anomaly_type: Set(kind.into()),
        severity: Set(severity.into()),
        entity_type: Set("tenant".into()),
        entity_id: Set(None),
        current_value_cents: Set(150.5),
        expected_value_cents: Set(100.0),
        deviation_pct: Set(50.5),
        threshold_pct: Set(140.0),
        message: Set(format!("{kind} {id}")),
        incident_id: Set(None),
        action_taken: Set(None),
        resolved: Set(resolved),
        resolved_at: Set(resolved.then_some(detected_at)),
        metadata: Set(Some(json!({"lookback_days": 14}))),
        detected_at: Set(detected_at),
        snapshot_id: Set(None),
        baseline_id: Set(None),
        derived_cause: Set(Some("UNKNOWN".into())),
        breach_count: Set(2),
        acknowledged_at: Set(None),
        acknowledged_by: Set(None),
        resolved_by: Set(None),
        resolution_note: Set(None),
    }
    .insert(app.db())
    .await
    .expect("anomaly");
}

async fn anomalies_page_and_filter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Operator).await;
    let base = logbook::scalars::now() - Duration::hours(1);
    let kinds = ["ABSOLUTE_SPIKE", "BUDGET_WARNING", "BUDGET_EXCEEDED"];
    let severities = ["LOW", "MEDIUM", "HIGH"];
    for i in 0..12i64 {
        add_anomaly(
            &app,
            "acme",
            &format!("ca_{i:02}"),
            kinds[i as usize % 3],
            severities[i as usize / 4 % 3],
            i % 4 == 3,
            // two per timestamp, so ties are broken by id
            base - Duration::minutes(i / 2),
        )
        .await;
    }
    add_anomaly(
        &app,
        "other",
        "ca_other",
        "ABSOLUTE_SPIKE",
        "HIGH",
        false,
        base,
    )
    .await;

    let query = r#"query($filter: CostAnomalyFilter, $first: Int, $after: String) {
      cost { anomalies(filter: $filter, first: $first, after: $after) {
        totalCount
        nodes { id anomalyType severity entityType entityId currentValueCents message resolved
                derivedCause breachCount metadata detectedAt }
        pageInfo { hasNextPage endCursor }
      } }
    }"#;
    let ids = |v: &Value| -> Vec<String> {
        v["cost"]["anomalies"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["id"].as_str().expect("id").to_owned())
            .collect()
    };
    // default: unresolved only, newest first, ties by id descending
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = app
            .data(&key, query, json!({"first": 4, "after": after}))
            .await;
        assert_eq!(data["cost"]["anomalies"]["totalCount"], 9);
        seen.extend(ids(&data));
        let info = &data["cost"]["anomalies"]["pageInfo"];
        if !info["hasNextPage"].as_bool().expect("bool") {
            break;
        }
        after = info["endCursor"].as_str().map(str::to_owned);
    }
    let expected: Vec<String> = [1, 0, 2, 5, 4, 6, 9, 8, 10]
        .iter()
        .map(|i| format!("ca_{i:02}"))
        .collect();
    assert_eq!(seen, expected);

    let data = app
        .data(
            &key,
            query,
            json!({"filter": {"includeResolved": true}, "first": 100}),
        )
        .await;
    assert_eq!(data["cost"]["anomalies"]["totalCount"], 12);
    let node = &data["cost"]["anomalies"]["nodes"][0];
    assert_eq!(node["id"], "ca_01");
    assert_eq!(node["anomalyType"], "BUDGET_WARNING");
    assert_eq!(node["entityType"], "TENANT");
    assert_eq!(node["entityId"], Value::Null);
    assert_eq!(f(&node["currentValueCents"]), 150.5);
    assert_eq!(node["derivedCause"], "UNKNOWN");
    assert_eq!(node["metadata"], json!({"lookback_days": 14}));

    let data = app
        .data(
            &key,
            query,
            json!({"filter": {"severity": ["HIGH", "MEDIUM"], "anomalyType": ["ABSOLUTE_SPIKE"]}}),
        )
        .await;
    // spikes are i % 3 == 0: 0, 3 (resolved), 6, 9; MEDIUM/HIGH are i ≥ 4
    assert_eq!(ids(&data), ["ca_06", "ca_09"]);
    assert_eq!(data["cost"]["anomalies"]["totalCount"], 2);

    let since = (base - Duration::minutes(1)).to_rfc3339();
    let data = app
        .data(&key, query, json!({"filter": {"since": since}}))
        .await;
    assert_eq!(ids(&data), ["ca_01", "ca_00", "ca_02"]);

    // a cursor is bound to its filter
    let first = app.data(&key, query, json!({"first": 2})).await;
    let cursor = first["cost"]["anomalies"]["pageInfo"]["endCursor"].clone();
    let body = app
        .gql(
            Some(&key),
            query,
            json!({"first": 2, "after": cursor, "filter": {"includeResolved": true}}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR");

    // the other tenant sees only its own
    let other = app.key("other", Role::Viewer).await;
    let data = app.data(&other, query, json!({})).await;
    assert_eq!(ids(&data), ["ca_other"]);
    app.stop().await;
}

async fn feature_tags_and_access(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Admin).await;
    let t0 = Utc::now() - Duration::days(3);
    add_feature_tag(&app, "acme", "chat.reply", "Chat", Some(500), true, t0).await;
    add_feature_tag(
        &app,
        "acme",
        "search.query",
        "Search",
        None,
        false,
        t0 + Duration::hours(1),
    )
    .await;
    add_feature_tag(&app, "other", "other.tag", "Other", None, true, t0).await;
    let query = r#"query($all: Boolean!) { cost { featureTags(includeInactive: $all) {
        totalCount nodes { tag displayName budgetCents isActive } } } }"#;
    let data = app.data(&key, query, json!({"all": false})).await;
    assert_eq!(
        data["cost"]["featureTags"],
        json!({"totalCount": 1, "nodes": [
            {"tag": "chat.reply", "displayName": "Chat", "budgetCents": 500.0, "isActive": true}
        ]})
    );
    let data = app.data(&key, query, json!({"all": true})).await;
    let tags: Vec<&str> = data["cost"]["featureTags"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["tag"].as_str().expect("tag"))
        .collect();
    assert_eq!(tags, ["search.query", "chat.reply"], "newest first");

    let summary = "{ cost { summary { totalCostCents } } }";
    let body = app.gql(None, summary, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    let ingest = app.key("acme", Role::Ingest).await;
    let body = app.gql(Some(&ingest), summary, json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    // a tenant without any cost gets zeros, not errors
    let empty = app.key("empty", Role::Viewer).await;
    let data = app
        .data(&empty, BREAKDOWNS, json!({"period": "LAST_30_DAYS"}))
        .await;
    assert_eq!(f(&data["cost"]["summary"]["totalCostCents"]), 0.0);
    assert_eq!(data["cost"]["byModel"], json!([]));
    app.stop().await;
}

async fn bad_input_names_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let field = |body: &Value| body["errors"][0]["extensions"]["field"].clone();
    for (query, name) in [
        (
            "{ cost { projection(lookbackDays: 0) { trend } } }",
            "lookbackDays",
        ),
        (
            "{ cost { projection(forecastDays: 31) { trend } } }",
            "forecastDays",
        ),
        (
            r#"{ cost { series(period: TODAY, from: "2026-01-01", to: "2026-01-02") { from } } }"#,
            "period",
        ),
        (
            r#"{ cost { series(from: "2026-01-05", to: "2026-01-02") { from } } }"#,
            "to",
        ),
        (r#"{ cost { series(from: "2026-01-05") { from } } }"#, "to"),
        (
            r#"{ cost { series(from: "2020-01-01", to: "2026-01-02") { from } } }"#,
            "from",
        ),
        ("{ cost { anomalies(first: 101) { totalCount } } }", "first"),
    ] {
        let body = app.gql(Some(&key), query, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body:#}");
        assert_eq!(field(&body), name, "{query}: {body:#}");
    }
    // writes validate too
    let err = record_costs_atomic(
        app.db(),
        &TenantId::trusted("acme"),
        &[rec("m", None, None, -1.0, None)],
    )
    .await
    .expect_err("negative cost");
    assert_eq!(err.code(), "BAD_USER_INPUT");
    // and a refused batch writes nothing
    assert!(cost_daily_aggregates::Entity::find()
        .filter(cost_daily_aggregates::Column::TenantId.eq("acme"))
        .order_by_asc(cost_daily_aggregates::Column::Date)
        .all(app.db())
        .await
        .expect("rollup")
        .is_empty());
    app.stop().await;
}

const TOP_K: &str = r#"
query($p: CostPeriod, $from: Date, $to: Date, $limit: Int) {
  cost {
    byModel(period: $p, from: $from, to: $to, limit: $limit) { model totalCostCents requestCount pctOfTotal }
    byFeature(period: $p, from: $from, to: $to, limit: $limit) { featureTag totalCostCents requestCount pctOfTotal }
    byUser(period: $p, from: $from, to: $to, limit: $limit) { userId totalCostCents requestCount pctOfTotal isAnomaly }
  }
}"#;

async fn breakdowns_take_top_k_and_custom_days(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    fixture(&app).await;
    let day = |n: u64| (today() - Days::new(n)).format("%Y-%m-%d").to_string();

    // The largest `limit` groups; shares and the user mean still count every group.
    let data = app
        .data(&key, TOP_K, json!({ "p": "TODAY", "limit": 2 }))
        .await;
    let cost = &data["cost"];
    assert_eq!(
        rows(&cost["byUser"]),
        [("u1".into(), 12.5, 2), ("u2".into(), 5.5, 1)]
    );
    assert!(close(
        f(&cost["byUser"][0]["pctOfTotal"]),
        12.5 / 19.5 * 100.0
    ));
    assert_eq!(
        cost["byUser"][0]["isAnomaly"], true,
        "mean of all four users"
    );
    assert_eq!(rows(&cost["byModel"]).len(), 2);
    let data = app.data(&key, TOP_K, json!({ "limit": 1 })).await;
    let cost = &data["cost"];
    assert_eq!(rows(&cost["byModel"]), [("gpt-4o".into(), 15.75, 2)]);
    assert!(close(
        f(&cost["byModel"][0]["pctOfTotal"]),
        15.75 / 19.5 * 100.0
    ));
    assert_eq!(rows(&cost["byFeature"]), [("chat.reply".into(), 15.75, 2)]);
    assert_eq!(rows(&cost["byUser"]), [("u1".into(), 12.5, 2)]);

    // Custom inclusive days: only the record three days ago; three days ago to today: both.
    let data = app
        .data(&key, TOP_K, json!({ "from": day(3), "to": day(3) }))
        .await;
    assert_eq!(
        rows(&data["cost"]["byModel"]),
        [("gpt-4o".into(), 100.0, 1)]
    );
    assert_eq!(
        rows(&data["cost"]["byFeature"]),
        [("chat.reply".into(), 100.0, 1)]
    );
    assert!(close(f(&data["cost"]["byModel"][0]["pctOfTotal"]), 100.0));
    let data = app
        .data(&key, TOP_K, json!({ "from": day(3), "to": day(0) }))
        .await;
    assert_eq!(
        rows(&data["cost"]["byModel"]),
        [("gpt-4o".into(), 115.75, 3), ("claude".into(), 3.75, 3)]
    );
    let data = app
        .data(&key, TOP_K, json!({ "from": day(2), "to": day(1) }))
        .await;
    assert_eq!(data["cost"]["byModel"], json!([]));
    // The other tenant's cost on those days is never in it.
    let other = app.key("other", Role::Viewer).await;
    let data = app
        .data(&other, TOP_K, json!({ "from": day(3), "to": day(3) }))
        .await;
    assert_eq!(data["cost"]["byModel"], json!([]));

    let field = |body: &Value| body["errors"][0]["extensions"]["field"].clone();
    for (vars, name) in [
        (json!({ "limit": 0 }), "limit"),
        (json!({ "limit": 101 }), "limit"),
        (
            json!({ "p": "TODAY", "from": day(1), "to": day(0) }),
            "period",
        ),
        (json!({ "from": day(0), "to": day(1) }), "to"),
        (json!({ "from": day(1) }), "to"),
        (json!({ "to": day(1) }), "from"),
        (json!({ "from": day(400), "to": day(0) }), "from"),
    ] {
        for breakdown in ["byModel", "byFeature", "byUser"] {
            let query = format!(
                "query($p: CostPeriod, $from: Date, $to: Date, $limit: Int) {{ cost {{ \
                 {breakdown}(period: $p, from: $from, to: $to, limit: $limit) {{ totalCostCents }} }} }}"
            );
            let body = app.gql(Some(&key), &query, vars.clone()).await;
            assert_eq!(
                error_code(&body),
                "BAD_USER_INPUT",
                "{breakdown} {vars}: {body:#}"
            );
            assert_eq!(field(&body), name, "{breakdown} {vars}: {body:#}");
        }
    }
    app.stop().await;
}

async fn inactive_budgets_are_listed_on_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    add_budget(&app, "acme", "cb_1_on", "tenant", "", Some(100), None, true).await;
    add_budget(&app, "acme", "cb_2_off", "user", "u1", Some(5), None, false).await;
    add_budget(
        &app,
        "other",
        "cb_3_other",
        "user",
        "u9",
        Some(5),
        None,
        false,
    )
    .await;
    record(&app, "acme", &[rec("m", None, Some("u1"), 3.0, None)]).await;
    let query = r#"query($all: Boolean!, $after: String) { cost { budgets(includeInactive: $all, first: 1, after: $after) {
        totalCount edges { cursor node { id isActive currentDailySpendCents } } } } }"#;

    let active = app.data(&key, query, json!({ "all": false })).await["cost"]["budgets"].clone();
    assert_eq!(active["totalCount"], 1);
    assert_eq!(active["edges"][0]["node"]["id"], "cb_1_on");
    let all = app.data(&key, query, json!({ "all": true })).await["cost"]["budgets"].clone();
    assert_eq!(
        all["totalCount"], 2,
        "the other tenant's inactive budget is not listed"
    );
    let first = &all["edges"][0];
    let cursor = first["cursor"].as_str().expect("cursor").to_owned();
    let second = app
        .data(&key, query, json!({ "all": true, "after": cursor }))
        .await["cost"]["budgets"]
        .clone();
    let mut listed = vec![first["node"].clone(), second["edges"][0]["node"].clone()];
    listed.sort_by_key(|n| n["id"].as_str().map(str::to_owned));
    assert_eq!(
        listed,
        [
            json!({ "id": "cb_1_on", "isActive": true, "currentDailySpendCents": 3.0 }),
            json!({ "id": "cb_2_off", "isActive": false, "currentDailySpendCents": 3.0 }),
        ]
    );
    // A cursor of the list with inactive budgets is not one of the active list.
    let body = app
        .gql(Some(&key), query, json!({ "all": false, "after": cursor }))
        .await;
    assert_eq!(error_code(&body), "BAD_CURSOR", "{body:#}");
    app.stop().await;
}

crate::cases!(
    breakdowns_are_exact_sums_of_the_rollup,
    series_fills_missing_days_with_zero,
    rebuild_reproduces_the_incremental_rollup,
    concurrent_writers_keep_the_rollup_exact,
    reads_follow_the_rollup_not_raw_rows,
    projection_averages_every_lookback_day,
    budgets_carry_spend_from_one_statement,
    anomalies_page_and_filter,
    feature_tags_and_access,
    bad_input_names_the_field,
    breakdowns_take_top_k_and_custom_days,
    inactive_budgets_are_listed_on_request,
);
