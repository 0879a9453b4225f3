//! Cost intelligence: raw cost records (streamed in time order), and per tenant the tables
//! derived from them — exact daily aggregates (tenant, per feature, per user, per model; ''
//! for the levels not grouped on), daily and hourly snapshots with their aggregates, current
//! baselines, anomaly evaluations, anomalies (one planted spike per tenant, plus whatever the
//! noise and growth trigger), breach history, drift tracking, budgets and feature tags.
//! High-severity anomalies open an incident.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rand::Rng;

use super::runs::{self, MODELS};
use super::synth::{self, b, f, i, os, s, ts, Stream};
use super::writer::Sink;
use super::{Plan, TenantPlan};
use crate::error::AppResult;

mod derived;
mod tables;

pub(crate) use tables::{EXTRA_TABLES, RECORD_TABLES};

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
    derived::derive(plan, t, &names, &daily, &hourly, &mut sinks.extras)
}
