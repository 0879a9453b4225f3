//! Audit append throughput: one tenant's hash chain, `--concurrency` writers for `--seconds`.
//!
//!     # through GraphQL (`recordAuditEvent`), against a running server:
//!     cargo run --release --example audit_append -- graphql --url http://127.0.0.1:8080 \
//!         --key <INGEST key> [--concurrency 8] [--seconds 10]
//!     # directly against a database: `grouped` through the group commit the mutation uses
//!     # (`audit::group::AppendQueue`), `direct` one transaction per entry (`append_committed`):
//!     cargo run --release --example audit_append -- grouped|direct --database-url <URL> \
//!         [--tenant bench] [--concurrency 8] [--seconds 10]
//!
//! Prints appends/s and latency percentiles. Any error stops the run.

use std::time::{Duration, Instant};

use logbook::audit::append::{append_committed, NewAuditEntry};
use logbook::audit::{ActorType, AuditEntityType, AuditEventType};
use logbook::auth::TenantId;
use logbook::db::DbSettings;
use serde_json::{json, Value};

const RECORD: &str = "mutation($input: RecordAuditEventInput!) { \
    recordAuditEvent(input: $input) { seq } }";

struct Options {
    mode: String,
    url: String,
    key: String,
    database_url: String,
    tenant: String,
    concurrency: usize,
    seconds: u64,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        mode: args.next().unwrap_or_default(),
        url: "http://127.0.0.1:8080".into(),
        key: String::new(),
        database_url: String::new(),
        tenant: "bench".into(),
        concurrency: 8,
        seconds: 10,
    };
    let rest: Vec<String> = args.collect();
    for pair in rest.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--url" => o.url = value,
            "--key" => o.key = value,
            "--database-url" => o.database_url = value,
            "--tenant" => o.tenant = value,
            "--concurrency" => o.concurrency = value.parse().expect("--concurrency N"),
            "--seconds" => o.seconds = value.parse().expect("--seconds N"),
            other => panic!("unknown option {other}"),
        }
    }
    match o.mode.as_str() {
        "graphql" => assert!(!o.key.is_empty(), "--key <INGEST api key> is required"),
        "direct" | "grouped" => {
            assert!(!o.database_url.is_empty(), "--database-url is required")
        }
        _ => panic!("first argument: graphql, grouped or direct"),
    }
    o
}

fn input(worker: usize, i: u64) -> Value {
    json!({
        "eventType": "LIMIT_BREACHED", "entityType": "LIMIT", "entityId": format!("lim-{worker}"),
        "actorType": "SYSTEM", "afterState": { "worker": worker, "i": i, "observed": 120 },
    })
}

fn entry(tenant: &str, worker: usize, i: u64) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: TenantId::trusted(tenant),
        event_type: AuditEventType::LimitBreached,
        entity_type: AuditEntityType::Limit,
        entity_id: format!("lim-{worker}"),
        actor_type: ActorType::System,
        actor_id: None,
        reason: None,
        before_state: None,
        after_state: Some(json!({ "worker": worker, "i": i, "observed": 120 })),
        run_id: None,
        correlation_id: None,
    }
}

#[tokio::main]
async fn main() {
    let o = std::sync::Arc::new(options());
    let queue = std::sync::Arc::new(logbook::audit::group::AppendQueue::default());
    let db = if o.mode != "graphql" {
        let db = logbook::db::connect(&DbSettings::new(o.database_url.clone()))
            .await
            .expect("connect");
        logbook::db::migrate(&db).await.expect("migrate");
        logbook::tenants::store::ensure_tenant(&db, &o.tenant, &o.tenant, "GOVERN")
            .await
            .expect("tenant");
        Some(db)
    } else {
        None
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..o.concurrency {
        let (o, db, http, queue) = (o.clone(), db.clone(), http.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let at = Instant::now();
                match &db {
                    Some(db) if o.mode == "grouped" => {
                        queue
                            .append(db, entry(&o.tenant, w, i), None)
                            .await
                            .unwrap_or_else(|e| panic!("append: {e:?}"));
                    }
                    Some(db) => {
                        append_committed(db, entry(&o.tenant, w, i))
                            .await
                            .unwrap_or_else(|e| panic!("append: {e:?}"));
                    }
                    None => {
                        let body: Value = http
                            .post(format!("{}/graphql", o.url))
                            .bearer_auth(&o.key)
                            .json(
                                &json!({ "query": RECORD, "variables": { "input": input(w, i) } }),
                            )
                            .send()
                            .await
                            .expect("POST /graphql")
                            .json()
                            .await
                            .expect("JSON body");
                        assert!(body.get("errors").is_none(), "{body}");
                    }
                }
                latencies.push(at.elapsed());
                i += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{} appends ({} mode, {} writers) in {:.1} s: {:.0} appends/s; latency p50 {:?} p95 {:?} p99 {:?}",
        all.len(),
        o.mode,
        o.concurrency,
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.95),
        pct(0.99),
    );
}
