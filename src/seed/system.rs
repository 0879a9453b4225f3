//! System records (system-wide ones with a NULL tenant, and per-tenant ones, some correlated
//! with a failed run through `correlation_id = run_id`) and log exports (append-only lifecycle
//! rows sharing an `export_id`: pending, running, then completed or failed).

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::runs::{self, RunStatus};
use super::synth::{self, j, oj, os, ots, s, ts, Stream};
use super::writer::{Sink, TableDef};
use super::{Plan, TenantPlan};
use crate::error::AppResult;

pub(crate) static SYSTEM_RECORDS: TableDef = TableDef {
    name: "system_records",
    columns: &[
        "id",
        "tenant_id",
        "component",
        "event_type",
        "severity",
        "summary",
        "details",
        "caused_by",
        "correlation_id",
        "created_at",
    ],
};

pub(crate) static LOG_EXPORTS: TableDef = TableDef {
    name: "log_exports",
    columns: &[
        "id",
        "export_id",
        "tenant_id",
        "scope",
        "run_id",
        "requested_by",
        "format",
        "origin",
        "source_component",
        "correlation_id",
        "checksum",
        "status",
        "delivered_at",
        "filter",
        "row_count",
        "byte_size",
        "manifest_sha256",
        "error",
        "created_at",
    ],
};

pub(crate) static TABLES: [&TableDef; 2] = [&SYSTEM_RECORDS, &LOG_EXPORTS];

/// (component, event_type, severity, caused_by, weight) of system-wide events.
const WIDE_EVENTS: [(&str, &str, &str, &str, f64); 9] = [
    ("worker", "STARTUP", "INFO", "SYSTEM", 0.18),
    ("worker", "SHUTDOWN", "INFO", "SYSTEM", 0.14),
    ("worker", "RESTART", "WARN", "AUTOMATION", 0.08),
    ("api", "STARTUP", "INFO", "SYSTEM", 0.12),
    ("api", "DEPLOY", "INFO", "AUTOMATION", 0.12),
    ("migration", "MIGRATION", "INFO", "AUTOMATION", 0.05),
    ("db", "ERROR", "CRITICAL", "SYSTEM", 0.04),
    ("scheduler", "HEALTH_CHECK", "INFO", "SYSTEM", 0.22),
    ("scheduler", "CONFIG_CHANGE", "WARN", "HUMAN", 0.05),
];

/// Per-tenant events.
const TENANT_EVENTS: [(&str, &str, &str, &str, f64); 8] = [
    ("worker", "ERROR", "WARN", "SYSTEM", 0.30),
    ("worker", "ERROR", "CRITICAL", "SYSTEM", 0.06),
    ("worker", "RESTART", "WARN", "AUTOMATION", 0.08),
    ("auth", "AUTH_CHANGE", "WARN", "HUMAN", 0.10),
    ("api", "CONFIG_CHANGE", "INFO", "HUMAN", 0.10),
    ("scheduler", "HEALTH_CHECK", "INFO", "SYSTEM", 0.26),
    ("api", "ERROR", "WARN", "SYSTEM", 0.06),
    ("db", "ERROR", "CRITICAL", "SYSTEM", 0.04),
];

pub(crate) fn generate(plan: &Plan, mut sink: Sink) -> AppResult<()> {
    system_wide(plan, &mut sink)?;
    for t in &plan.tenants {
        tenant_records(plan, t, &mut sink)?;
        exports(plan, t, &mut sink)?;
    }
    sink.finish()
}

fn version(rng: &mut ChaCha8Rng, at: DateTime<Utc>) -> String {
    format!("2026.{}.{}", at.format("%m%d"), rng.random_range(0..4))
}

fn summary(
    rng: &mut ChaCha8Rng,
    component: &str,
    event: &str,
    at: DateTime<Utc>,
) -> (String, serde_json::Value) {
    let host = format!("{component}-{}", rng.random_range(1..9));
    match event {
        "STARTUP" => (
            format!("{component} started on {host}"),
            json!({"host": host, "version": version(rng, at), "pid": rng.random_range(1000..65000)}),
        ),
        "SHUTDOWN" => (
            format!("{component} on {host} shut down gracefully"),
            json!({"host": host, "drained_jobs": rng.random_range(0..40)}),
        ),
        "RESTART" => (
            format!("{component} on {host} restarted after a failed liveness probe"),
            json!({"host": host, "exit_code": 137, "restarts_24h": rng.random_range(1..5)}),
        ),
        "DEPLOY" => {
            let v = version(rng, at);
            (
                format!("deployed {component} {v}"),
                json!({"version": v, "replicas": rng.random_range(2..8)}),
            )
        }
        "MIGRATION" => {
            let n = rng.random_range(100..200);
            (
                format!("applied migration {n:04}"),
                json!({"migration": format!("{n:04}_schema_update"), "duration_ms": rng.random_range(40..4000)}),
            )
        }
        "AUTH_CHANGE" => (
            (*synth::pick(
                rng,
                &[
                    "API key rotated",
                    "API key revoked",
                    "SSO group mapping changed",
                    "new OPERATOR key created",
                ],
            ))
            .to_owned(),
            json!({"key_prefix": format!("lbk_{}", synth::hex_id(rng, 3))}),
        ),
        "CONFIG_CHANGE" => (
            (*synth::pick(
                rng,
                &[
                    "retry policy updated",
                    "default model changed",
                    "trace sampling rate changed",
                    "worker concurrency raised",
                ],
            ))
            .to_owned(),
            json!({"setting": *synth::pick(rng, &["retry.max_attempts", "llm.default_model", "trace.sampling_rate", "worker.concurrency"])}),
        ),
        "HEALTH_CHECK" => (
            format!("{component} health check passed"),
            json!({"latency_ms": rng.random_range(1..80), "checks": ["db", "redis", "queue"]}),
        ),
        _ => {
            let (text, code) = *synth::pick(
                rng,
                &[
                    ("tool call failed: upstream returned 502", "UPSTREAM_502"),
                    ("LLM provider overloaded (529)", "PROVIDER_OVERLOADED"),
                    ("database connection pool exhausted", "POOL_EXHAUSTED"),
                    ("step exceeded its timeout", "STEP_TIMEOUT"),
                    ("out of memory while parsing tool output", "OOM"),
                ],
            );
            (
                format!("{component}: {text}"),
                json!({"host": host, "error_code": code}),
            )
        }
    }
}

fn system_wide(plan: &Plan, sink: &mut Sink) -> AppResult<()> {
    let mut rng = plan.keys.rng(Stream::SystemWide, 0);
    let n = plan.system_wide;
    let weights: Vec<f64> = WIDE_EVENTS.iter().map(|e| e.4).collect();
    for k in 0..n {
        let jitter: f64 = rng.random();
        let at = plan.time.nth(k, n, jitter);
        let (component, event, severity, caused_by, _) =
            WIDE_EVENTS[synth::weighted_index(&mut rng, &weights)];
        let (text, details) = summary(&mut rng, component, event, at);
        sink.push(
            0,
            vec![
                s(synth::uuid(&mut rng)),
                os(None::<String>),
                s(component),
                s(event),
                s(severity),
                s(text),
                oj(Some(details)),
                os(Some(caused_by)),
                os(None::<String>),
                ts(at),
            ],
        )?;
    }
    Ok(())
}

fn tenant_records(plan: &Plan, t: &TenantPlan, sink: &mut Sink) -> AppResult<()> {
    let mut rng = plan.keys.rng(Stream::System, t.index as u64);
    let n = t.system;
    let weights: Vec<f64> = TENANT_EVENTS.iter().map(|e| e.4).collect();
    for k in 0..n {
        let jitter: f64 = rng.random();
        let at = plan.time.nth(k, n, jitter);
        let (component, event, severity, caused_by, _) =
            TENANT_EVENTS[synth::weighted_index(&mut rng, &weights)];
        let (text, mut details) = summary(&mut rng, component, event, at);
        // Worker errors usually belong to a run that failed just before.
        let run = if component == "worker" && synth::chance(&mut rng, 0.8) {
            runs::find_run_before(plan, t, at, 100, |r| r.status != RunStatus::Succeeded)
        } else {
            None
        };
        let at = match &run {
            Some(r) => plan
                .time
                .cap(r.created_at + Duration::milliseconds(rng.random_range(1..500))),
            None => at,
        };
        if let (Some(r), Some(map)) = (&run, details.as_object_mut()) {
            map.insert("run_id".into(), json!(r.run_id));
        }
        sink.push(
            0,
            vec![
                s(synth::uuid(&mut rng)),
                s(t.id.clone()),
                s(component),
                s(event),
                s(severity),
                s(text),
                oj(Some(details)),
                os(Some(caused_by)),
                os(run.map(|r| r.run_id)),
                ts(at),
            ],
        )?;
    }
    Ok(())
}

const EXPORT_SCOPES: [(&str, f64); 8] = [
    ("llm_runs", 0.3),
    ("audit", 0.2),
    ("system_records", 0.08),
    ("traces", 0.1),
    ("run_bundle", 0.15),
    ("trace_bundle", 0.07),
    ("incident_bundle", 0.05),
    ("compliance", 0.05),
];

fn exports(plan: &Plan, t: &TenantPlan, sink: &mut Sink) -> AppResult<()> {
    let mut rng = plan.keys.rng(Stream::Exports, t.index as u64);
    let n = t.exports;
    for k in 0..n {
        let jitter: f64 = rng.random();
        let requested = plan.time.nth(k, n, jitter);
        let scope = *synth::weighted(&mut rng, &EXPORT_SCOPES);
        let run = match scope {
            "run_bundle" => runs::run_before(plan, t, requested),
            "trace_bundle" => runs::find_run_before(plan, t, requested, 20, |r| r.traced),
            _ => None,
        };
        let format = match scope {
            "run_bundle" | "trace_bundle" | "incident_bundle" | "compliance" => "zip",
            _ => *synth::pick(&mut rng, &["ndjson", "ndjson", "csv", "json"]),
        };
        let origin = *synth::weighted(&mut rng, &[("HUMAN", 0.6), ("SYSTEM", 0.3), ("AGENT", 0.1)]);
        let requested_by = match origin {
            "HUMAN" => synth::pick(&mut rng, &t.users).clone(),
            "AGENT" => format!("agent:{}", synth::pick(&mut rng, &t.agents)),
            _ => "scheduler".to_owned(),
        };
        let export_id = synth::uuid(&mut rng);
        let correlation = format!("corr_{}", synth::hex_id(&mut rng, 8));
        let filter = json!({
            "from": synth::iso(requested - Duration::days(rng.random_range(1..31))),
            "to": synth::iso(requested),
            "run_id": run.as_ref().map(|r| r.run_id.clone()),
        });
        let failed = synth::chance(&mut rng, 0.08);
        let started = plan
            .time
            .cap(requested + Duration::milliseconds(rng.random_range(50..900)));
        let finished = plan
            .time
            .cap(started + Duration::milliseconds(rng.random_range(300..60_000)));
        let rows = rng.random_range(10..200_000i64);
        let bytes = rows * rng.random_range(180..900);
        let states: [(&str, DateTime<Utc>); 3] = [
            ("pending", requested),
            ("running", started),
            (if failed { "failed" } else { "completed" }, finished),
        ];
        for (status, at) in states {
            let done = status == "completed";
            sink.push(
                1,
                vec![
                    s(synth::uuid(&mut rng)),
                    s(export_id.clone()),
                    s(t.id.clone()),
                    s(scope),
                    os(run.as_ref().map(|r| r.run_id.clone())),
                    s(requested_by.clone()),
                    s(format),
                    s(origin),
                    s("LogExportService"),
                    os(Some(correlation.clone())),
                    os(done.then(|| synth::digest(&mut rng))),
                    s(status),
                    ots(done.then_some(at)),
                    j(filter.clone()),
                    synth::obig(done.then_some(rows)),
                    synth::obig(done.then_some(bytes)),
                    os(done.then(|| synth::digest(&mut rng))),
                    os((status == "failed").then_some("statement timeout while streaming rows")),
                    ts(at),
                ],
            )?;
        }
    }
    Ok(())
}
