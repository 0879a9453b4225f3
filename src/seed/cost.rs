//! Cost intelligence: raw cost records (streamed in time order), and per tenant the tables
//! derived from them — exact daily aggregates (tenant, per feature, per user, per model; ''
//! for the levels not grouped on), daily and hourly snapshots with their aggregates, current
//! baselines, anomaly evaluations, anomalies (one planted spike per tenant, plus whatever the
//! noise and growth trigger), breach history, drift tracking, budgets and feature tags.
//! High-severity anomalies open an incident.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::runs::{self, MODELS};
use super::synth::{self, b, big, date, f, i, of, oi, oj, os, ots, s, ts, Stream};
use super::writer::{Sink, TableDef};
use super::{Plan, TenantPlan};
use crate::error::AppResult;

/// Feature tags: (tag, display name, description).
pub(crate) const FEATURES: [(&str, &str, &str); 12] = [
    (
        "support.triage",
        "Support triage",
        "Classifies and routes inbound tickets",
    ),
    (
        "support.reply_draft",
        "Reply drafting",
        "Drafts first responses for agents",
    ),
    (
        "billing.invoice_extract",
        "Invoice extraction",
        "Extracts line items from supplier invoices",
    ),
    (
        "search.semantic",
        "Semantic search",
        "Answers questions over the knowledge base",
    ),
    ("code.review", "Code review", "Reviews pull requests"),
    (
        "sales.lead_score",
        "Lead scoring",
        "Scores and enriches inbound leads",
    ),
    (
        "docs.summarize",
        "Document summaries",
        "Summarises long documents",
    ),
    (
        "ops.incident_digest",
        "Incident digest",
        "Writes incident timelines",
    ),
    (
        "legal.contract_review",
        "Contract review",
        "Flags risky contract clauses",
    ),
    ("data.cleanup", "Data cleanup", "Normalises CRM records"),
    (
        "hr.resume_screen",
        "Resume screening",
        "Screens applications against a rubric",
    ),
    (
        "marketing.copy_gen",
        "Marketing copy",
        "Generates campaign copy variants",
    ),
];

/// Rollup sentinels, as `crate::cost` writes them: records without a (known, active) feature tag
/// are stored as `unclassified`; records without a user roll up under `anonymous`.
const UNCLASSIFIED: &str = crate::cost::UNCLASSIFIED;
const ANONYMOUS: &str = crate::cost::ANONYMOUS;

pub(crate) static FEATURE_TAGS: TableDef = TableDef {
    name: "feature_tags",
    columns: &[
        "id",
        "tenant_id",
        "tag",
        "display_name",
        "description",
        "budget_cents",
        "is_active",
        "created_at",
        "updated_at",
    ],
};
pub(crate) static COST_RECORDS: TableDef = TableDef {
    name: "cost_records",
    columns: &[
        "id",
        "tenant_id",
        "user_id",
        "feature_tag",
        "request_id",
        "workflow_id",
        "skill_id",
        "model",
        "input_tokens",
        "output_tokens",
        "cost_cents",
        "is_retry",
        "created_at",
    ],
};
pub(crate) static BUDGETS: TableDef = TableDef {
    name: "cost_budgets",
    columns: &[
        "id",
        "tenant_id",
        "budget_type",
        "entity_id",
        "daily_limit_cents",
        "monthly_limit_cents",
        "warn_threshold_pct",
        "hard_limit_enabled",
        "is_active",
        "created_at",
        "updated_at",
    ],
};
pub(crate) static DAILY: TableDef = TableDef {
    name: "cost_daily_aggregates",
    columns: &[
        "id",
        "tenant_id",
        "date",
        "feature_tag",
        "user_id",
        "model",
        "total_cost_cents",
        "total_input_tokens",
        "total_output_tokens",
        "request_count",
        "created_at",
        "updated_at",
    ],
};
pub(crate) static SNAPSHOTS: TableDef = TableDef {
    name: "cost_snapshots",
    columns: &[
        "id",
        "tenant_id",
        "snapshot_type",
        "period_start",
        "period_end",
        "status",
        "version",
        "records_processed",
        "computation_ms",
        "error_message",
        "created_at",
        "completed_at",
    ],
};
pub(crate) static SNAPSHOT_AGGREGATES: TableDef = TableDef {
    name: "cost_snapshot_aggregates",
    columns: &[
        "id",
        "snapshot_id",
        "tenant_id",
        "entity_type",
        "entity_id",
        "total_cost_cents",
        "request_count",
        "total_input_tokens",
        "total_output_tokens",
        "avg_cost_per_request_cents",
        "avg_tokens_per_request",
        "baseline_7d_avg_cents",
        "baseline_30d_avg_cents",
        "deviation_from_7d_pct",
        "deviation_from_30d_pct",
        "created_at",
    ],
};
pub(crate) static BASELINES: TableDef = TableDef {
    name: "cost_snapshot_baselines",
    columns: &[
        "id",
        "tenant_id",
        "entity_type",
        "entity_id",
        "avg_daily_cost_cents",
        "stddev_daily_cost_cents",
        "avg_daily_requests",
        "max_daily_cost_cents",
        "min_daily_cost_cents",
        "window_days",
        "samples_count",
        "computed_at",
        "valid_until",
        "is_current",
        "last_snapshot_id",
    ],
};
pub(crate) static EVALUATIONS: TableDef = TableDef {
    name: "cost_anomaly_evaluations",
    columns: &[
        "id",
        "tenant_id",
        "snapshot_id",
        "entity_type",
        "entity_id",
        "current_value_cents",
        "baseline_value_cents",
        "threshold_pct",
        "deviation_pct",
        "triggered",
        "severity_computed",
        "anomaly_id",
        "evaluation_reason",
        "evaluated_at",
    ],
};
pub(crate) static ANOMALIES: TableDef = TableDef {
    name: "cost_anomalies",
    columns: &[
        "id",
        "tenant_id",
        "anomaly_type",
        "severity",
        "entity_type",
        "entity_id",
        "current_value_cents",
        "expected_value_cents",
        "deviation_pct",
        "threshold_pct",
        "message",
        "incident_id",
        "action_taken",
        "resolved",
        "resolved_at",
        "metadata",
        "detected_at",
        "snapshot_id",
        "baseline_id",
        "derived_cause",
        "breach_count",
    ],
};
pub(crate) static BREACHES: TableDef = TableDef {
    name: "cost_breach_history",
    columns: &[
        "id",
        "tenant_id",
        "entity_type",
        "entity_id",
        "breach_type",
        "breach_date",
        "deviation_pct",
        "current_value_cents",
        "baseline_value_cents",
        "created_at",
    ],
};
pub(crate) static DRIFT: TableDef = TableDef {
    name: "cost_drift_tracking",
    columns: &[
        "id",
        "tenant_id",
        "entity_type",
        "entity_id",
        "rolling_7d_avg_cents",
        "baseline_7d_avg_cents",
        "drift_pct",
        "drift_days_count",
        "first_drift_date",
        "last_check_date",
        "is_active",
        "created_at",
        "updated_at",
    ],
};

pub(crate) static RECORD_TABLES: [&TableDef; 1] = [&COST_RECORDS];

const X_FEATURE_TAGS: usize = 0;
const X_BUDGETS: usize = 1;
const X_DAILY: usize = 2;
const X_SNAPSHOTS: usize = 3;
const X_SNAPSHOT_AGGREGATES: usize = 4;
const X_BASELINES: usize = 5;
const X_EVALUATIONS: usize = 6;
const X_ANOMALIES: usize = 7;
const X_BREACHES: usize = 8;
const X_DRIFT: usize = 9;
const X_INCIDENTS: usize = 10;

/// Snapshots before their aggregates and evaluations (foreign keys).
pub(crate) static EXTRA_TABLES: [&TableDef; 11] = [
    &FEATURE_TAGS,
    &BUDGETS,
    &DAILY,
    &SNAPSHOTS,
    &SNAPSHOT_AGGREGATES,
    &BASELINES,
    &EVALUATIONS,
    &ANOMALIES,
    &BREACHES,
    &DRIFT,
    &runs::INCIDENTS,
];

pub(crate) struct CostSinks {
    pub records: Sink,
    pub extras: Sink,
}

/// Aggregation level of a daily group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Tenant,
    Feature,
    User,
    Model,
}

#[derive(Debug, Clone, Copy)]
struct Agg {
    cost: f64,
    input: i64,
    output: i64,
    count: i64,
    retries: i64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

impl Agg {
    fn new(at: DateTime<Utc>) -> Agg {
        Agg {
            cost: 0.0,
            input: 0,
            output: 0,
            count: 0,
            retries: 0,
            first: at,
            last: at,
        }
    }

    fn add(&mut self, cost: f64, input: i64, output: i64, retry: bool, at: DateTime<Utc>) {
        self.cost += cost;
        self.input += input;
        self.output += output;
        self.count += 1;
        self.retries += i64::from(retry);
        self.first = self.first.min(at);
        self.last = self.last.max(at);
    }
}

type Key = (NaiveDate, Level, usize);

pub(crate) fn generate(plan: &Plan, mut sinks: CostSinks) -> AppResult<()> {
    for t in &plan.tenants {
        tenant(plan, t, &mut sinks)?;
    }
    sinks.records.finish()?;
    sinks.extras.finish()
}

fn midnight_of(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// The names of a tenant's groups.
struct Names<'a> {
    t: &'a TenantPlan,
}

impl Names<'_> {
    fn feature(&self, idx: usize) -> &'static str {
        self.t
            .features
            .get(idx)
            .map_or(UNCLASSIFIED, |&f| FEATURES[f].0)
    }

    fn entity(&self, level: Level, idx: usize) -> (&'static str, String) {
        match level {
            Level::Tenant => ("tenant", String::new()),
            Level::Feature => ("feature", self.feature(idx).to_owned()),
            Level::User => (
                "user",
                self.t
                    .users
                    .get(idx)
                    .cloned()
                    .unwrap_or_else(|| ANONYMOUS.to_owned()),
            ),
            Level::Model => ("model", MODELS.get(idx).map_or("", |m| m.name).to_owned()),
        }
    }
}

fn tenant(plan: &Plan, t: &TenantPlan, sinks: &mut CostSinks) -> AppResult<()> {
    let mut rng = plan.keys.rng(Stream::Cost, t.index as u64);
    let names = Names { t };
    let n_features = t.features.len();
    let feature_weights = synth::zipf_weights(n_features, 0.9);
    let user_weights = synth::zipf_weights(t.users.len(), 1.1);
    let model_weights: Vec<f64> = MODELS.iter().map(|m| m.weight).collect();
    let anchor_day = plan.anchor.date_naive();
    // The planted spike: one feature costs five times as much on one recent day.
    let spike_day = anchor_day - Duration::days(rng.random_range(2..16));
    let spike_feature = rng.random_range(0..n_features.clamp(1, 3));

    let mut daily: BTreeMap<Key, Agg> = BTreeMap::new();
    let mut hourly: BTreeMap<DateTime<Utc>, Agg> = BTreeMap::new();
    let hourly_from = plan.anchor - Duration::hours(26);
    let n = t.cost;
    for k in 0..n {
        let jitter: f64 = rng.random();
        let at = plan.time.nth(k, n, jitter);
        let model_idx = synth::weighted_index(&mut rng, &model_weights);
        let model = &MODELS[model_idx];
        let feature_idx = if synth::chance(&mut rng, 0.05) {
            n_features
        } else {
            synth::weighted_index(&mut rng, &feature_weights)
        };
        let user_idx =
            synth::chance(&mut rng, 0.9).then(|| synth::weighted_index(&mut rng, &user_weights));
        let input = synth::lognormal(&mut rng, 1_500.0, 0.9, 20.0, 100_000.0) as i64;
        let output = synth::lognormal(&mut rng, 280.0, 0.8, 1.0, 12_000.0) as i64;
        let retry = synth::chance(&mut rng, 0.03);
        let mut cost = runs::cost_cents(model, input, output);
        if at.date_naive() == spike_day && feature_idx == spike_feature {
            cost *= 5.0;
        }
        let cost = synth::round_to(cost, 6);
        let workflow = synth::chance(&mut rng, 0.3).then(|| {
            let k_run = k.saturating_mul(t.runs) / n.max(1);
            plan.keys
                .run_id(t.global(k_run.min(t.runs.saturating_sub(1))))
        });
        sinks.records.push(
            0,
            vec![
                s(format!("cr_{}", synth::hex_id(&mut rng, 8))),
                s(t.id.clone()),
                os(user_idx.and_then(|u| t.users.get(u).cloned())),
                os(Some(names.feature(feature_idx))),
                os(Some(format!("req_{}", synth::hex_id(&mut rng, 12)))),
                os(workflow),
                os(Some("llm_invoke")),
                s(model.name),
                i(input as i32),
                i(output as i32),
                f(cost),
                b(retry),
                ts(at),
            ],
        )?;
        let day = at.date_naive();
        let mut add = |key: Key| {
            daily
                .entry(key)
                .or_insert_with(|| Agg::new(at))
                .add(cost, input, output, retry, at);
        };
        add((day, Level::Tenant, 0));
        add((day, Level::Feature, feature_idx));
        add((day, Level::User, user_idx.unwrap_or(t.users.len())));
        add((day, Level::Model, model_idx));
        if at >= hourly_from {
            let hour =
                synth::midnight(at) + Duration::hours(i64::from(chrono::Timelike::hour(&at)));
            hourly
                .entry(hour)
                .or_insert_with(|| Agg::new(at))
                .add(cost, input, output, retry, at);
        }
    }
    derived(plan, t, &names, &daily, &hourly, &mut sinks.extras)
}

fn derived(
    plan: &Plan,
    t: &TenantPlan,
    names: &Names<'_>,
    daily: &BTreeMap<Key, Agg>,
    hourly: &BTreeMap<DateTime<Utc>, Agg>,
    sink: &mut Sink,
) -> AppResult<()> {
    let mut rng = plan.keys.rng(Stream::CostExtras, t.index as u64);
    let created = plan.time.cap(plan.time.start + Duration::hours(2));

    // Feature tags.
    let mut feature_budget = BTreeMap::new();
    for (k, &fi) in t.features.iter().enumerate() {
        let (tag, display, description) = FEATURES[fi];
        let budget = (k < 3).then(|| rng.random_range(20..400) * 1_000);
        if let Some(cents) = budget {
            feature_budget.insert(k, cents);
        }
        let updated = plan
            .time
            .cap(created + Duration::days(rng.random_range(0..60)));
        sink.push(
            X_FEATURE_TAGS,
            vec![
                s(format!("ft_{}", synth::hex_id(&mut rng, 8))),
                s(t.id.clone()),
                s(tag),
                s(display),
                os(Some(description)),
                oi(budget),
                b(true),
                ts(created),
                ts(updated),
            ],
        )?;
    }
    // A retired tag no record uses any more.
    if let Some((tag, display, description)) = FEATURES
        .iter()
        .enumerate()
        .find(|(fi, _)| !t.features.contains(fi))
        .map(|(_, f)| *f)
    {
        sink.push(
            X_FEATURE_TAGS,
            vec![
                s(format!("ft_{}", synth::hex_id(&mut rng, 8))),
                s(t.id.clone()),
                s(tag),
                s(display),
                os(Some(description)),
                oi(None),
                b(false),
                ts(created),
                ts(plan
                    .time
                    .cap(created + Duration::days(rng.random_range(1..30)))),
            ],
        )?;
    }

    // Exact daily aggregates.
    for (&(day, level, idx), agg) in daily {
        let (_, entity) = names.entity(level, idx);
        let (feature, user, model) = match level {
            Level::Tenant => ("", "", ""),
            Level::Feature => (entity.as_str(), "", ""),
            Level::User => ("", entity.as_str(), ""),
            Level::Model => ("", "", entity.as_str()),
        };
        sink.push(
            X_DAILY,
            vec![
                s(format!("cda_{}", synth::hex_id(&mut rng, 8))),
                s(t.id.clone()),
                date(day),
                s(feature),
                s(user),
                s(model),
                f(synth::round_to(agg.cost, 6)),
                big(agg.input),
                big(agg.output),
                i(agg.count.min(i64::from(i32::MAX)) as i32),
                ts(agg.first),
                ts(agg.last),
            ],
        )?;
    }

    // Days whose daily snapshot had run by the anchor (computed 00:05-00:15 the next day).
    let anchor_day = plan.anchor.date_naive();
    let complete: Vec<NaiveDate> = (1..=30)
        .rev()
        .map(|back| anchor_day - Duration::days(back))
        .filter(|d| midnight_of(*d) + Duration::days(1) + Duration::minutes(15) <= plan.anchor)
        .filter(|d| midnight_of(*d) >= plan.time.start)
        .collect();
    let day_cost = |d: NaiveDate, level: Level, idx: usize| daily.get(&(d, level, idx)).copied();
    let window_avg = |d: NaiveDate, level: Level, idx: usize, days: i64| -> Option<f64> {
        let values: Vec<f64> = (1..=days)
            .filter_map(|back| day_cost(d - Duration::days(back), level, idx).map(|a| a.cost))
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / days as f64)
    };
    let entities: Vec<(Level, usize)> = std::iter::once((Level::Tenant, 0))
        .chain((0..=t.features.len()).map(|fi| (Level::Feature, fi)))
        .chain((0..MODELS.len()).map(|m| (Level::Model, m)))
        .collect();

    // Baseline ids (window 7) per entity, drawn up front so anomalies can name them.
    let baseline_ids: BTreeMap<(Level, usize, i32), String> = entities
        .iter()
        .flat_map(|&(l, idx)| [(l, idx, 7), (l, idx, 30)])
        .map(|key| (key, format!("csb_{}", synth::hex_id(&mut rng, 8))))
        .collect();

    // Daily snapshots, aggregates, evaluations, anomalies, breaches.
    let mut streak: BTreeMap<(Level, usize), i32> = BTreeMap::new();
    let mut last_snapshot: Option<(String, DateTime<Utc>)> = None;
    for &d in &complete {
        let start = midnight_of(d);
        let end = start + Duration::days(1);
        let snapshot_id = format!("cs_{}", synth::hex_id(&mut rng, 8));
        let done_at = plan
            .time
            .cap(end + Duration::minutes(5) + Duration::seconds(rng.random_range(0..300)));
        let records = day_cost(d, Level::Tenant, 0).map_or(0, |a| a.count);
        let computation_ms = rng.random_range(40..2_500);
        sink.push(
            X_SNAPSHOTS,
            vec![
                s(snapshot_id.clone()),
                s(t.id.clone()),
                s("daily"),
                ts(start),
                ts(end),
                s("complete"),
                i(1),
                oi(Some(records.min(i64::from(i32::MAX)) as i32)),
                oi(Some(computation_ms)),
                os(None::<String>),
                ts(plan.time.cap(end + Duration::minutes(5))),
                ots(Some(done_at)),
            ],
        )?;
        for &(level, idx) in &entities {
            let Some(agg) = day_cost(d, level, idx) else {
                continue;
            };
            let (entity_type, entity_id) = names.entity(level, idx);
            let b7 = window_avg(d, level, idx, 7);
            let b30 = window_avg(d, level, idx, 30);
            let dev = |base: Option<f64>| {
                base.filter(|b| *b > 0.0)
                    .map(|b| synth::round_to((agg.cost - b) / b * 100.0, 2))
            };
            sink.push(
                X_SNAPSHOT_AGGREGATES,
                vec![
                    s(format!("csa_{}", synth::hex_id(&mut rng, 8))),
                    s(snapshot_id.clone()),
                    s(t.id.clone()),
                    s(entity_type),
                    s(entity_id.clone()),
                    f(synth::round_to(agg.cost, 6)),
                    i(agg.count.min(i64::from(i32::MAX)) as i32),
                    big(agg.input),
                    big(agg.output),
                    of(Some(synth::round_to(agg.cost / agg.count.max(1) as f64, 6))),
                    of(Some(synth::round_to(
                        (agg.input + agg.output) as f64 / agg.count.max(1) as f64,
                        2,
                    ))),
                    of(b7.map(|v| synth::round_to(v, 6))),
                    of(b30.map(|v| synth::round_to(v, 6))),
                    of(dev(b7)),
                    of(dev(b30)),
                    ts(done_at),
                ],
            )?;
            // Anomaly evaluation for the tenant and each feature.
            if !matches!(level, Level::Tenant | Level::Feature) {
                continue;
            }
            // Like the detector, skip entities too small to judge (under 3 requests a day).
            let base_requests = (1..=7)
                .filter_map(|back| day_cost(d - Duration::days(back), level, idx))
                .map(|a| a.count)
                .sum::<i64>();
            let Some(baseline) = b7.filter(|b| *b > 0.0 && base_requests >= 21) else {
                continue;
            };
            let deviation = synth::round_to((agg.cost - baseline) / baseline * 100.0, 2);
            let triggered = deviation >= 200.0;
            let severity = triggered.then_some(if deviation >= 400.0 {
                "HIGH"
            } else if deviation >= 300.0 {
                "MEDIUM"
            } else {
                "LOW"
            });
            let run_length = streak.entry((level, idx)).or_insert(0);
            *run_length = if triggered { *run_length + 1 } else { 0 };
            let breach_count = *run_length;
            let anomaly_id = triggered.then(|| format!("ca_{}", synth::hex_id(&mut rng, 8)));
            let evaluated_at = plan
                .time
                .cap(done_at + Duration::milliseconds(rng.random_range(5..900)));
            sink.push(
                X_EVALUATIONS,
                vec![
                    s(format!("cae_{}", synth::hex_id(&mut rng, 8))),
                    s(t.id.clone()),
                    os(Some(snapshot_id.clone())),
                    s(entity_type),
                    os((level != Level::Tenant).then(|| entity_id.clone())),
                    f(synth::round_to(agg.cost, 6)),
                    f(synth::round_to(baseline, 6)),
                    f(200.0),
                    f(deviation),
                    b(triggered),
                    os(severity),
                    os(anomaly_id.clone()),
                    os(Some(if triggered {
                        format!("spend {deviation:.0}% above the 7-day average (threshold 200%)")
                    } else {
                        "within threshold".to_owned()
                    })),
                    ts(evaluated_at),
                ],
            )?;
            let (Some(anomaly_id), Some(severity)) = (anomaly_id, severity) else {
                continue;
            };
            let count_base = base_requests as f64 / 7.0;
            let count_ratio = agg.count as f64 / count_base.max(1.0);
            let cause = if agg.retries * 5 > agg.count {
                "RETRY_LOOP"
            } else if count_ratio >= 2.0 {
                if level == Level::Feature {
                    "FEATURE_SURGE"
                } else {
                    "TRAFFIC_GROWTH"
                }
            } else if count_ratio < 1.5 {
                "PROMPT_GROWTH"
            } else {
                "UNKNOWN"
            };
            let label = if level == Level::Tenant {
                "tenant spend".to_owned()
            } else {
                format!("spend on {entity_id}")
            };
            let message = format!(
                "Daily {label} was {:.0}% of its 7-day average ({:.2} vs {:.2} cents)",
                agg.cost / baseline * 100.0,
                agg.cost,
                baseline
            );
            let incident =
                (severity == "HIGH").then(|| format!("inc_{}", synth::hex_id(&mut rng, 8)));
            let resolved =
                plan.anchor - evaluated_at > Duration::days(2) && synth::chance(&mut rng, 0.7);
            let resolved_at = resolved.then(|| {
                plan.time
                    .cap(evaluated_at + Duration::hours(rng.random_range(2..40)))
            });
            sink.push(
                X_ANOMALIES,
                vec![
                    s(anomaly_id.clone()),
                    s(t.id.clone()),
                    s("ABSOLUTE_SPIKE"),
                    s(severity),
                    s(entity_type),
                    os((level != Level::Tenant).then(|| entity_id.clone())),
                    f(synth::round_to(agg.cost, 6)),
                    f(synth::round_to(baseline, 6)),
                    f(deviation),
                    f(200.0),
                    s(message.clone()),
                    os(incident.clone()),
                    os(Some(if incident.is_some() { "incident_created" } else { "notified" })),
                    b(resolved),
                    ots(resolved_at),
                    oj(Some(json!({"date": d.to_string(), "requests": agg.count, "request_ratio": synth::round_to(count_ratio, 3)}))),
                    ts(evaluated_at),
                    os(Some(snapshot_id.clone())),
                    os(baseline_ids.get(&(level, idx, 7)).cloned()),
                    os(Some(cause)),
                    i(breach_count.max(1)),
                ],
            )?;
            sink.push(
                X_BREACHES,
                vec![
                    s(format!("bh_{}", synth::hex_id(&mut rng, 8))),
                    s(t.id.clone()),
                    s(entity_type),
                    s(entity_id.clone()),
                    s("ABSOLUTE_SPIKE"),
                    date(d),
                    f(deviation),
                    f(synth::round_to(agg.cost, 6)),
                    f(synth::round_to(baseline, 6)),
                    ts(evaluated_at),
                ],
            )?;
            if let Some(incident_id) = incident {
                cost_incident(
                    plan,
                    &mut rng,
                    t,
                    &incident_id,
                    &message,
                    evaluated_at,
                    resolved_at,
                    sink,
                )?;
            }
        }
        last_snapshot = Some((snapshot_id, done_at));
    }

    // Hourly snapshots of the last full hours (tenant level only).
    for (&hour, agg) in hourly {
        let end = hour + Duration::hours(1);
        if hour < plan.anchor - Duration::hours(24) || end + Duration::minutes(2) > plan.anchor {
            continue;
        }
        let snapshot_id = format!("cs_{}", synth::hex_id(&mut rng, 8));
        let failed = synth::chance(&mut rng, 0.02);
        let at = plan
            .time
            .cap(end + Duration::seconds(rng.random_range(10..110)));
        sink.push(
            X_SNAPSHOTS,
            vec![
                s(snapshot_id.clone()),
                s(t.id.clone()),
                s("hourly"),
                ts(hour),
                ts(end),
                s(if failed { "failed" } else { "complete" }),
                i(1),
                oi((!failed).then(|| agg.count.min(i64::from(i32::MAX)) as i32)),
                oi(Some(rng.random_range(5..400))),
                os(failed.then_some("canceling statement due to statement timeout")),
                ts(at),
                ots(Some(at)),
            ],
        )?;
        if failed {
            continue;
        }
        sink.push(
            X_SNAPSHOT_AGGREGATES,
            vec![
                s(format!("csa_{}", synth::hex_id(&mut rng, 8))),
                s(snapshot_id),
                s(t.id.clone()),
                s("tenant"),
                s(""),
                f(synth::round_to(agg.cost, 6)),
                i(agg.count.min(i64::from(i32::MAX)) as i32),
                big(agg.input),
                big(agg.output),
                of(Some(synth::round_to(agg.cost / agg.count.max(1) as f64, 6))),
                of(Some(synth::round_to(
                    (agg.input + agg.output) as f64 / agg.count.max(1) as f64,
                    2,
                ))),
                of(None),
                of(None),
                of(None),
                of(None),
                ts(at),
            ],
        )?;
    }

    // Current baselines (7 and 30 days) per entity, plus yesterday's superseded tenant baseline.
    let computed_at = last_snapshot.as_ref().map_or(
        plan.time.cap(plan.anchor - Duration::hours(1)),
        |(_, at)| *at,
    );
    let last_day = complete.last().copied();
    if let Some(last_day) = last_day {
        for &(level, idx) in &entities {
            let (entity_type, entity_id) = names.entity(level, idx);
            for window in [7i64, 30] {
                let values: Vec<(f64, i64)> = (0..window)
                    .filter_map(|back| day_cost(last_day - Duration::days(back), level, idx))
                    .map(|a| (a.cost, a.count))
                    .collect();
                if values.is_empty() {
                    continue;
                }
                let mean = values.iter().map(|v| v.0).sum::<f64>() / window as f64;
                let var =
                    values.iter().map(|v| (v.0 - mean).powi(2)).sum::<f64>() / values.len() as f64;
                let max = values.iter().map(|v| v.0).fold(f64::MIN, f64::max);
                let min = values.iter().map(|v| v.0).fold(f64::MAX, f64::min);
                let requests = values.iter().map(|v| v.1).sum::<i64>() as f64 / window as f64;
                let id = baseline_ids
                    .get(&(level, idx, window as i32))
                    .cloned()
                    .unwrap_or_default();
                sink.push(
                    X_BASELINES,
                    vec![
                        s(id),
                        s(t.id.clone()),
                        s(entity_type),
                        s(entity_id.clone()),
                        f(synth::round_to(mean, 6)),
                        of(Some(synth::round_to(var.sqrt(), 6))),
                        f(synth::round_to(requests, 3)),
                        of(Some(synth::round_to(max, 6))),
                        of(Some(synth::round_to(min, 6))),
                        i(window as i32),
                        i(values.len() as i32),
                        ts(computed_at),
                        ts(computed_at + Duration::days(1)),
                        b(true),
                        os(last_snapshot.as_ref().map(|(id, _)| id.clone())),
                    ],
                )?;
                if level == Level::Tenant && window == 7 {
                    sink.push(
                        X_BASELINES,
                        vec![
                            s(format!("csb_{}", synth::hex_id(&mut rng, 8))),
                            s(t.id.clone()),
                            s("tenant"),
                            s(""),
                            f(synth::round_to(mean * 0.97, 6)),
                            of(Some(synth::round_to(var.sqrt(), 6))),
                            f(synth::round_to(requests * 0.98, 3)),
                            of(Some(synth::round_to(max, 6))),
                            of(Some(synth::round_to(min, 6))),
                            i(7),
                            i(values.len() as i32),
                            ts(plan.time.cap(computed_at - Duration::days(1))),
                            ts(computed_at),
                            b(false),
                            os(None::<String>),
                        ],
                    )?;
                }
            }
        }
    }

    // Drift: last 7 days against the 7 before, per feature.
    if let Some(last_day) = last_day {
        let avg = |level: Level, idx: usize, from: i64| -> f64 {
            (from..from + 7)
                .filter_map(|back| day_cost(last_day - Duration::days(back), level, idx))
                .map(|a| a.cost)
                .sum::<f64>()
                / 7.0
        };
        for fi in 0..=t.features.len() {
            let rolling = avg(Level::Feature, fi, 0);
            let base = avg(Level::Feature, fi, 7);
            if base <= 0.0 {
                continue;
            }
            let drift = (rolling - base) / base * 100.0;
            if drift < 30.0 {
                continue;
            }
            let days = rng.random_range(1..=7);
            let entity = names.feature(fi).to_owned();
            sink.push(
                X_DRIFT,
                vec![
                    s(format!("dt_{}", synth::hex_id(&mut rng, 8))),
                    s(t.id.clone()),
                    s("feature"),
                    s(entity.clone()),
                    f(synth::round_to(rolling, 6)),
                    f(synth::round_to(base, 6)),
                    f(synth::round_to(drift, 2)),
                    i(days),
                    date(last_day - Duration::days(i64::from(days) - 1)),
                    date(last_day),
                    b(true),
                    ts(plan.time.cap(
                        midnight_of(last_day - Duration::days(i64::from(days) - 1))
                            + Duration::days(1)
                            + Duration::minutes(6),
                    )),
                    ts(computed_at),
                ],
            )?;
            if drift >= 50.0 && days >= 3 {
                let id = format!("ca_{}", synth::hex_id(&mut rng, 8));
                sink.push(
                    X_ANOMALIES,
                    vec![
                        s(id),
                        s(t.id.clone()),
                        s("SUSTAINED_DRIFT"),
                        s(if drift >= 100.0 { "HIGH" } else { "MEDIUM" }),
                        s("feature"),
                        os(Some(entity.clone())),
                        f(synth::round_to(rolling, 6)),
                        f(synth::round_to(base, 6)),
                        f(synth::round_to(drift, 2)),
                        f(50.0),
                        s(format!("Spend on {entity} has run {drift:.0}% above its previous 7-day average for {days} days")),
                        os(None::<String>),
                        os(Some("notified")),
                        b(false),
                        ots(None),
                        oj(Some(json!({"drift_days": days}))),
                        ts(computed_at),
                        os(last_snapshot.as_ref().map(|(id, _)| id.clone())),
                        os(baseline_ids.get(&(Level::Feature, fi, 7)).cloned()),
                        os(Some(if synth::chance(&mut rng, 0.5) { "FEATURE_SURGE" } else { "TRAFFIC_GROWTH" })),
                        i(days),
                    ],
                )?;
                sink.push(
                    X_BREACHES,
                    vec![
                        s(format!("bh_{}", synth::hex_id(&mut rng, 8))),
                        s(t.id.clone()),
                        s("feature"),
                        s(entity),
                        s("SUSTAINED_DRIFT"),
                        date(last_day),
                        f(synth::round_to(drift, 2)),
                        f(synth::round_to(rolling, 6)),
                        f(synth::round_to(base, 6)),
                        ts(computed_at),
                    ],
                )?;
            }
        }
    }

    // Budgets: the tenant, its top features and users, sized around recent spend.
    let last30 = |level: Level, idx: usize| -> f64 {
        complete
            .iter()
            .filter_map(|d| day_cost(*d, level, idx))
            .map(|a| a.cost)
            .sum()
    };
    let mut budget_rows = vec![("tenant", String::new(), last30(Level::Tenant, 0))];
    for (&k, _) in feature_budget.iter().take(3) {
        budget_rows.push((
            "feature",
            names.feature(k).to_owned(),
            last30(Level::Feature, k),
        ));
    }
    for u in 0..t.users.len().min(2) {
        budget_rows.push(("user", t.users[u].clone(), last30(Level::User, u)));
    }
    for (kind, entity, spend) in budget_rows {
        let factor = rng.random_range(0.9..1.4);
        let monthly = ((spend * factor).round() as i64).clamp(100, i64::from(i32::MAX)) as i32;
        let warn = *synth::pick(&mut rng, &[75, 80, 80, 90]);
        let hard = synth::chance(&mut rng, 0.3);
        let updated = plan
            .time
            .cap(created + Duration::days(rng.random_range(0..80)));
        sink.push(
            X_BUDGETS,
            vec![
                s(format!("cb_{}", synth::hex_id(&mut rng, 8))),
                s(t.id.clone()),
                s(kind),
                s(entity.clone()),
                oi(Some((monthly / 25).max(10))),
                oi(Some(monthly)),
                i(warn),
                b(hard),
                b(true),
                ts(created),
                ts(updated),
            ],
        )?;
        if kind != "tenant" || spend <= 0.0 {
            continue;
        }
        let used = spend / f64::from(monthly) * 100.0;
        if used < f64::from(warn) {
            continue;
        }
        let exceeded = used >= 100.0;
        sink.push(
            X_ANOMALIES,
            vec![
                s(format!("ca_{}", synth::hex_id(&mut rng, 8))),
                s(t.id.clone()),
                s(if exceeded {
                    "BUDGET_EXCEEDED"
                } else {
                    "BUDGET_WARNING"
                }),
                s(if exceeded { "HIGH" } else { "MEDIUM" }),
                s("tenant"),
                os(None::<String>),
                f(synth::round_to(spend, 6)),
                f(f64::from(monthly)),
                f(synth::round_to(used - 100.0, 2)),
                f(f64::from(warn)),
                s(format!(
                    "30-day spend is {used:.0}% of the monthly budget of {monthly} cents"
                )),
                os(None::<String>),
                os(Some(if hard && exceeded {
                    "hard_limit_enforced"
                } else {
                    "budget_alert_sent"
                })),
                b(false),
                ots(None),
                oj(Some(json!({"budget_used_pct": synth::round_to(used, 2)}))),
                ts(computed_at),
                os(last_snapshot.as_ref().map(|(id, _)| id.clone())),
                os(None::<String>),
                os(Some("UNKNOWN")),
                i(1),
            ],
        )?;
    }
    Ok(())
}

#[expect(clippy::too_many_arguments)]
fn cost_incident(
    plan: &Plan,
    rng: &mut ChaCha8Rng,
    t: &TenantPlan,
    id: &str,
    message: &str,
    at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    sink: &mut Sink,
) -> AppResult<()> {
    let acked = resolved_at.is_none() && plan.anchor - at > Duration::hours(4);
    let (status, lifecycle) = match (resolved_at, acked) {
        (Some(_), _) => ("resolved", "RESOLVED"),
        (None, true) => ("acknowledged", "ACKED"),
        _ => ("open", "ACTIVE"),
    };
    let updated = resolved_at.unwrap_or_else(|| {
        if acked {
            plan.time
                .cap(at + Duration::minutes(rng.random_range(5..180)))
        } else {
            at
        }
    });
    sink.push(
        X_INCIDENTS,
        vec![
            s(id.to_owned()),
            s(t.id.clone()),
            s("Cost spike detected"),
            s("high"),
            s(status),
            s("cost_anomaly"),
            os(None::<String>),
            os(Some("COST_ANOMALY")),
            os(Some(message.to_owned())),
            os(Some("COST_SPIKE")),
            os(None::<String>),
            s(lifecycle),
            s("SYSTEM"),
            oi(None),
            ots(None),
            ts(at),
            ots(resolved_at),
            ots(resolved_at),
            os(resolved_at.map(|_| synth::pick(rng, &t.users).clone())),
            b(false),
            os(None::<String>),
            ts(at),
            ts(updated),
        ],
    )
}
