//! The audit ledger: per tenant one hash chain (seq 1..n, strictly increasing created_at,
//! `prev_hash` = previous `entry_hash`, see `audit::chain`), its chain head, and the policy
//! activation audit of every policy created (plus the tenant's standing policies).
//!
//! Events follow the state conventions of docs/domain.md §4.2: create/approve/reject/
//! acknowledge/close/breach/signal events carry `after_state`; modify/update/resolve carry both;
//! retire carries `before_state`. Governance events about a run name it in the `run_id` column and
//! in `after_state.run_id`; incident events name real incidents opened by failed runs.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::runs::{self, RunStatus};
use super::synth::{self, big, f, i, oj, os, s, ts, Stream};
use super::writer::{Sink, TableDef};
use super::{Plan, TenantPlan};
use crate::audit::chain::{entry_hash, ChainFields, GENESIS_PREV_HASH, HASH_VERSION};
use crate::error::AppResult;

pub(crate) static LEDGER: TableDef = TableDef {
    name: "audit_ledger",
    columns: &[
        "id",
        "tenant_id",
        "seq",
        "event_type",
        "entity_type",
        "entity_id",
        "actor_type",
        "actor_id",
        "action_reason",
        "before_state",
        "after_state",
        "run_id",
        "correlation_id",
        "prev_hash",
        "entry_hash",
        "hash_version",
        "created_at",
    ],
};

pub(crate) static HEADS: TableDef = TableDef {
    name: "audit_chain_heads",
    columns: &["tenant_id", "seq", "entry_hash", "updated_at"],
};

pub(crate) static ACTIVATIONS: TableDef = TableDef {
    name: "policy_activation_audit",
    columns: &[
        "policy_id",
        "source_pattern_id",
        "source_recovery_id",
        "confidence_at_activation",
        "confidence_version",
        "approval_path",
        "loop_trace_id",
        "activated_at",
        "tenant_id",
        "created_at",
    ],
};

pub(crate) static TABLES: [&TableDef; 3] = [&LEDGER, &HEADS, &ACTIVATIONS];

/// The 18 canonical event types and their relative frequency.
const EVENTS: [(&str, f64); 18] = [
    ("PolicyRuleCreated", 3.0),
    ("PolicyRuleModified", 4.0),
    ("PolicyRuleRetired", 1.0),
    ("PolicyProposalApproved", 3.0),
    ("PolicyProposalRejected", 2.0),
    ("LimitCreated", 2.0),
    ("LimitUpdated", 3.0),
    ("LimitBreached", 14.0),
    ("LimitOverrideGranted", 2.0),
    ("LimitOverrideRevoked", 1.5),
    ("IncidentAcknowledged", 10.0),
    ("IncidentResolved", 8.0),
    ("IncidentManuallyClosed", 2.0),
    ("EmergencyOverrideActivated", 0.4),
    ("EmergencyOverrideDeactivated", 0.4),
    ("SignalAcknowledged", 18.0),
    ("SignalSuppressed", 9.0),
    ("SignalEscalated", 5.0),
];

const SIGNAL_TYPES: [&str; 5] = [
    "cost_spike",
    "error_rate",
    "latency_regression",
    "retry_storm",
    "policy_near_miss",
];

/// One ledger entry before it is chained.
struct Entry {
    event_type: &'static str,
    entity_type: &'static str,
    entity_id: String,
    actor_type: &'static str,
    actor_id: Option<String>,
    action_reason: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
    run_id: Option<String>,
}

/// Mutable per-tenant governance state the events act on.
struct State {
    policies: Vec<(String, String, i64, &'static str)>,
    limits: Vec<(String, &'static str, i64)>,
    overrides: Vec<(String, i64)>,
    emergency: Option<(String, DateTime<Utc>)>,
    signals: Vec<(String, &'static str)>,
}

pub(crate) fn generate(plan: &Plan, mut sink: Sink) -> AppResult<()> {
    for t in &plan.tenants {
        tenant(plan, t, &mut sink)?;
    }
    sink.finish()
}

fn tenant(plan: &Plan, t: &TenantPlan, sink: &mut Sink) -> AppResult<()> {
    let mut rng = plan.keys.rng(Stream::Audit, t.index as u64);
    // Activation rows of the standing policies, at the start of the window.
    for (j, (policy_id, _)) in t.policies.iter().enumerate() {
        let at = plan
            .time
            .cap(plan.time.start + Duration::minutes(5 * j as i64 + 1));
        activation(&mut rng, t, policy_id, "HUMAN", at, None, sink)?;
    }
    let mut state = State {
        policies: t
            .policies
            .iter()
            .map(|(id, name)| (id.clone(), (*name).to_owned(), 1, "enforce"))
            .collect(),
        limits: t.limits.clone(),
        overrides: Vec::new(),
        emergency: None,
        signals: Vec::new(),
    };
    let n = t.audit;
    // Spread one of each event type over the chain so every type appears.
    let coverage: Vec<u64> = if n >= EVENTS.len() as u64 {
        (0..EVENTS.len() as u64)
            .map(|e| ((2 * e + 1) * n) / (2 * EVENTS.len() as u64))
            .collect()
    } else {
        Vec::new()
    };
    let weights: Vec<f64> = EVENTS.iter().map(|(_, w)| *w).collect();
    let mut prev_hash = GENESIS_PREV_HASH.to_owned();
    let mut last_at: Option<DateTime<Utc>> = None;
    for index in 0..n {
        let jitter: f64 = rng.random();
        let mut at = plan.time.nth(index, n, jitter);
        if let Some(last) = last_at {
            if at <= last {
                at = last + Duration::microseconds(1);
            }
        }
        last_at = Some(at);
        let mut event = match coverage.iter().position(|&p| p == index) {
            Some(e) => EVENTS[e].0,
            None => EVENTS[synth::weighted_index(&mut rng, &weights)].0,
        };
        // Incident events need an incident opened before them; before the tenant's first
        // one, operators acknowledge signals instead.
        let incident_run = if event.starts_with("Incident") {
            let found = runs::find_run_before(plan, t, at, u64::MAX, |r| {
                r.incident && r.created_at + Duration::minutes(1) <= at
            });
            if found.is_none() {
                event = "SignalAcknowledged";
            }
            found
        } else {
            None
        };
        let entry = build(plan, t, &mut rng, &mut state, event, at, incident_run, sink)?;
        let id = synth::uuid(&mut rng);
        let correlation =
            synth::chance(&mut rng, 0.3).then(|| format!("corr_{}", synth::hex_id(&mut rng, 8)));
        let seq = index as i64 + 1;
        let hash = entry_hash(&ChainFields {
            tenant_id: &t.id,
            seq,
            prev_hash: &prev_hash,
            id: &id,
            event_type: entry.event_type,
            entity_type: entry.entity_type,
            entity_id: &entry.entity_id,
            actor_type: entry.actor_type,
            actor_id: entry.actor_id.as_deref(),
            action_reason: entry.action_reason.as_deref(),
            before_state: entry.before.as_ref(),
            after_state: entry.after.as_ref(),
            correlation_id: correlation.as_deref(),
            run_id: entry.run_id.as_deref(),
            created_at: at,
        });
        sink.push(
            0,
            vec![
                s(id),
                s(t.id.clone()),
                big(seq),
                s(entry.event_type),
                s(entry.entity_type),
                s(entry.entity_id),
                s(entry.actor_type),
                os(entry.actor_id),
                os(entry.action_reason),
                oj(entry.before),
                oj(entry.after),
                os(entry.run_id),
                os(correlation),
                s(prev_hash.clone()),
                s(hash.clone()),
                i(HASH_VERSION),
                ts(at),
            ],
        )?;
        prev_hash = hash;
    }
    if let Some(at) = last_at {
        sink.push(
            1,
            vec![s(t.id.clone()), big(n as i64), s(prev_hash), ts(at)],
        )?;
    }
    Ok(())
}

fn activation(
    rng: &mut ChaCha8Rng,
    t: &TenantPlan,
    policy_id: &str,
    actor_type: &str,
    at: DateTime<Utc>,
    loop_trace: Option<String>,
    sink: &mut Sink,
) -> AppResult<()> {
    let confidence = synth::round_to(rng.random_range(0.6..0.9), 2);
    let path = match actor_type {
        "AGENT" if confidence >= 0.85 => "auto".to_owned(),
        "AGENT" => "threshold".to_owned(),
        _ => format!("human:{}", synth::pick(rng, &t.users)),
    };
    sink.push(
        2,
        vec![
            s(policy_id.to_owned()),
            s(format!("pat_{}", synth::hex_id(rng, 8))),
            os(synth::chance(rng, 0.6).then(|| format!("rec_{}", synth::hex_id(rng, 8)))),
            f(confidence),
            s("CONFIDENCE_V1"),
            s(path),
            os(loop_trace),
            ts(at),
            s(t.id.clone()),
            ts(at),
        ],
    )
}

fn human(rng: &mut ChaCha8Rng, t: &TenantPlan) -> (&'static str, Option<String>) {
    ("HUMAN", Some(synth::pick(rng, &t.users).clone()))
}

/// Draws the content of one event and updates the governance state.
#[expect(clippy::too_many_arguments)]
fn build(
    plan: &Plan,
    t: &TenantPlan,
    rng: &mut ChaCha8Rng,
    st: &mut State,
    event: &'static str,
    at: DateTime<Utc>,
    incident_run: Option<runs::RunCore>,
    sink: &mut Sink,
) -> AppResult<Entry> {
    let mut e = Entry {
        event_type: event,
        entity_type: "POLICY_RULE",
        entity_id: String::new(),
        actor_type: "SYSTEM",
        actor_id: None,
        action_reason: None,
        before: None,
        after: None,
        run_id: None,
    };
    match event {
        "PolicyRuleCreated" => {
            let id = format!("pol_{}", synth::hex_id(rng, 8));
            let name = format!(
                "{} ({})",
                synth::pick(rng, &super::POLICY_NAMES),
                synth::pick(rng, &t.agents)
            );
            let agent = synth::chance(rng, 0.3);
            (e.actor_type, e.actor_id) = if agent {
                ("AGENT", Some("policy-proposer".to_owned()))
            } else {
                human(rng, t)
            };
            e.action_reason =
                (!agent).then(|| "new control requested by security review".to_owned());
            e.entity_id = id.clone();
            e.after = Some(json!({
                "policy_id": id, "name": name, "mode": "enforce", "version": 1, "status": "ACTIVE",
                "rule_type": *synth::pick(rng, &["content_filter", "budget", "rate_limit", "capability"]),
            }));
            let loop_trace = runs::find_run_before(plan, t, at, 10, |r| r.traced)
                .map(|r| format!("trace_{}", r.run_id));
            activation(rng, t, &id, e.actor_type, at, loop_trace, sink)?;
            st.policies.push((id, name, 1, "enforce"));
        }
        "PolicyRuleModified" => {
            let k = rng.random_range(0..st.policies.len().max(1));
            let fresh = (
                format!("pol_{}", synth::hex_id(rng, 8)),
                "Legacy rule".to_owned(),
                1,
                "monitor",
            );
            let (id, name, version, mode) = st.policies.get(k).cloned().unwrap_or(fresh);
            let new_mode = if mode == "enforce" {
                "monitor"
            } else {
                "enforce"
            };
            (e.actor_type, e.actor_id) = human(rng, t);
            e.action_reason = Some(format!(
                "switch to {new_mode} after review of false positives"
            ));
            e.entity_id = id.clone();
            e.before = Some(
                json!({"policy_id": id, "name": name, "mode": mode, "version": version, "status": "ACTIVE"}),
            );
            e.after = Some(
                json!({"policy_id": id, "name": name, "mode": new_mode, "version": version + 1, "status": "ACTIVE"}),
            );
            if let Some(p) = st.policies.get_mut(k) {
                p.2 += 1;
                p.3 = new_mode;
            }
        }
        "PolicyRuleRetired" => {
            let k = rng.random_range(0..st.policies.len().max(1));
            let (id, name, version, mode) = if st.policies.len() > 3 {
                st.policies.remove(k)
            } else {
                (
                    format!("pol_{}", synth::hex_id(rng, 8)),
                    "Legacy rule".to_owned(),
                    1,
                    "monitor",
                )
            };
            (e.actor_type, e.actor_id) = human(rng, t);
            e.action_reason = Some("superseded by a tenant-wide rule".to_owned());
            e.entity_id = id.clone();
            e.before = Some(
                json!({"policy_id": id, "name": name, "mode": mode, "version": version, "status": "ACTIVE"}),
            );
        }
        "PolicyProposalApproved" | "PolicyProposalRejected" => {
            let approved = event == "PolicyProposalApproved";
            let run = runs::find_run_before(plan, t, at, 200, |r| r.status != RunStatus::Succeeded);
            let id = format!("prop_{}", synth::hex_id(rng, 8));
            e.entity_type = "POLICY_PROPOSAL";
            e.entity_id = id.clone();
            (e.actor_type, e.actor_id) = human(rng, t);
            e.action_reason = Some(if approved {
                "pattern recurs; approve the proposed guardrail".to_owned()
            } else {
                "too broad; would block legitimate refunds".to_owned()
            });
            e.run_id = run.as_ref().map(|r| r.run_id.clone());
            e.after = Some(json!({
                "proposal_id": id,
                "status": if approved { "APPROVED" } else { "REJECTED" },
                "proposed_rule": *synth::pick(rng, &super::POLICY_NAMES),
                "confidence": synth::round_to(rng.random_range(0.55..0.95), 2),
                "occurrences": rng.random_range(1..6),
                "run_id": e.run_id,
            }));
        }
        "LimitCreated" => {
            let (kind, value) = *synth::pick(rng, &super::LIMIT_KINDS);
            let id = format!("lim_{}", synth::hex_id(rng, 8));
            (e.actor_type, e.actor_id) = human(rng, t);
            e.entity_type = "LIMIT";
            e.entity_id = id.clone();
            e.after = Some(
                json!({"limit_id": id, "limit_type": kind, "value": value, "scope": "agent", "agent_id": *synth::pick(rng, &t.agents)}),
            );
            st.limits.push((id, kind, value));
        }
        "LimitUpdated" => {
            let k = rng.random_range(0..st.limits.len().max(1));
            let (id, kind, value) = st.limits.get(k).cloned().unwrap_or_else(|| {
                (
                    format!("lim_{}", synth::hex_id(rng, 8)),
                    "tokens_per_run",
                    100_000,
                )
            });
            let new_value =
                (value as f64 * *synth::pick(rng, &[0.5, 0.8, 1.25, 1.5, 2.0])).round() as i64;
            (e.actor_type, e.actor_id) = human(rng, t);
            e.action_reason = Some("adjusted to last month's p95 usage".to_owned());
            e.entity_type = "LIMIT";
            e.entity_id = id.clone();
            e.before = Some(json!({"limit_id": id, "limit_type": kind, "value": value}));
            e.after = Some(json!({"limit_id": id, "limit_type": kind, "value": new_value}));
            if let Some(l) = st.limits.get_mut(k) {
                l.2 = new_value;
            }
        }
        "LimitBreached" => {
            let (id, kind, value) = synth::pick(rng, &st.limits).clone();
            let run = runs::find_run_before(plan, t, at, 50, |r| r.status != RunStatus::Succeeded)
                .or_else(|| runs::run_before(plan, t, at));
            e.entity_type = "LIMIT";
            e.entity_id = id.clone();
            e.actor_id = Some("limit-enforcer".to_owned());
            e.run_id = run.as_ref().map(|r| r.run_id.clone());
            e.after = Some(json!({
                "limit_id": id, "limit_type": kind, "value": value,
                "observed": value + 1 + (value / 10).max(1) * rng.random_range(0..5),
                "action": *synth::pick(rng, &["halt", "warn", "throttle"]),
                "run_id": e.run_id,
            }));
        }
        "LimitOverrideGranted" => {
            let (id, kind, value) = synth::pick(rng, &st.limits).clone();
            let override_value = value * 2;
            (e.actor_type, e.actor_id) = human(rng, t);
            e.action_reason = Some("quarter-end batch needs headroom".to_owned());
            e.entity_type = "LIMIT";
            e.entity_id = id.clone();
            e.after = Some(json!({
                "limit_id": id, "limit_type": kind, "override_value": override_value, "active": true,
                "expires_at": synth::iso(at + Duration::days(rng.random_range(1..8))),
                "granted_to": *synth::pick(rng, &t.agents),
            }));
            st.overrides.push((id, override_value));
        }
        "LimitOverrideRevoked" => {
            let (id, override_value) = st.overrides.pop().unwrap_or_else(|| {
                let (id, _, value) = synth::pick(rng, &st.limits).clone();
                (id, value * 2)
            });
            (e.actor_type, e.actor_id) = human(rng, t);
            e.action_reason = Some("batch finished early".to_owned());
            e.entity_type = "LIMIT";
            e.entity_id = id.clone();
            e.before =
                Some(json!({"limit_id": id, "override_value": override_value, "active": true}));
            e.after =
                Some(json!({"limit_id": id, "override_value": override_value, "active": false}));
        }
        "IncidentAcknowledged" | "IncidentResolved" | "IncidentManuallyClosed" => {
            let run = incident_run;
            let incident = run.as_ref().map_or_else(
                || format!("inc_{}", synth::hex_id(rng, 8)),
                |r| plan.keys.incident_id(r.global),
            );
            (e.actor_type, e.actor_id) = human(rng, t);
            e.entity_type = "INCIDENT";
            e.entity_id = incident.clone();
            e.run_id = run.as_ref().map(|r| r.run_id.clone());
            let base = |status: &str| json!({"incident_id": incident, "status": status, "source_run_id": e.run_id, "run_id": e.run_id});
            match event {
                "IncidentAcknowledged" => {
                    e.action_reason = Some("investigating".to_owned());
                    e.after = Some(base("acknowledged"));
                }
                "IncidentResolved" => {
                    e.action_reason = Some(
                        (*synth::pick(
                            rng,
                            &[
                                "provider recovered; replayed failed runs",
                                "rotated the expired API credential",
                                "raised the per-run budget for this agent",
                            ],
                        ))
                        .to_owned(),
                    );
                    e.before = Some(base("acknowledged"));
                    e.after = Some(base("resolved"));
                }
                _ => {
                    e.action_reason = Some("duplicate of an earlier incident".to_owned());
                    e.after = Some(base("resolved"));
                }
            }
        }
        "EmergencyOverrideActivated" => {
            let id = format!("eo_{}", synth::hex_id(rng, 8));
            (e.actor_type, e.actor_id) = human(rng, t);
            e.action_reason = Some("production outage: suspend blocking policies".to_owned());
            e.entity_id = id.clone();
            e.after = Some(json!({
                "override_id": id, "active": true, "scope": "tenant",
                "policies_suspended": rng.random_range(1..6),
                "expires_at": synth::iso(at + Duration::hours(rng.random_range(1..12))),
            }));
            st.emergency = Some((id, at));
        }
        "EmergencyOverrideDeactivated" => {
            let (id, since) = st.emergency.take().unwrap_or_else(|| {
                (
                    format!("eo_{}", synth::hex_id(rng, 8)),
                    at - Duration::hours(2),
                )
            });
            (e.actor_type, e.actor_id) = human(rng, t);
            e.action_reason = Some("outage resolved".to_owned());
            e.entity_id = id.clone();
            e.before = Some(json!({"override_id": id, "active": true}));
            e.after = Some(
                json!({"override_id": id, "active": false, "active_seconds": (at - since).num_seconds()}),
            );
        }
        _ => {
            // Signal feedback: a recent signal, or a new one.
            let (fingerprint, kind) = if !st.signals.is_empty() && synth::chance(rng, 0.6) {
                synth::pick(rng, &st.signals).clone()
            } else {
                let signal = (
                    format!("sig_{}", synth::hex_id(rng, 8)),
                    *synth::pick(rng, &SIGNAL_TYPES),
                );
                st.signals.push(signal.clone());
                if st.signals.len() > 64 {
                    st.signals.remove(0);
                }
                signal
            };
            (e.actor_type, e.actor_id) = human(rng, t);
            e.entity_type = "SIGNAL";
            e.entity_id = fingerprint.clone();
            e.after = Some(match event {
                "SignalSuppressed" => {
                    e.action_reason = Some("known issue; fix scheduled".to_owned());
                    json!({
                        "fingerprint": fingerprint, "signal_type": kind, "suppressed": true,
                        "suppressed_until": synth::iso(at + Duration::hours(rng.random_range(4..336))),
                    })
                }
                "SignalEscalated" => {
                    e.action_reason = Some("customer-facing impact".to_owned());
                    json!({
                        "fingerprint": fingerprint, "signal_type": kind, "escalated": true,
                        "escalated_to": *synth::pick(rng, &["oncall-primary", "platform-team", "security"]),
                        "severity": *synth::pick(rng, &["HIGH", "MEDIUM"]),
                    })
                }
                _ => json!({"fingerprint": fingerprint, "signal_type": kind, "acknowledged": true}),
            });
        }
    }
    Ok(e)
}
