//! `recordAuditEvent` and the per-tenant hash chain behind it: the rules of docs/domain.md §4.2
//! (each bad input named, nothing written), roles, idempotency, the read side over written entries,
//! and the chain under concurrent writers (in one process and across two) and under tampering.
//!
//! The chain check here is written from `docs/ledger.md`, not by calling the code under test.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::audit_ledger;
use logbook::audit::append::{append_committed, NewAuditEntry};
use logbook::audit::{ActorType, AuditEntityType, AuditEventType};
use logbook::auth::{Role, TenantId};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{error_code, Backend, TestApp};

const RECORD: &str = r#"
mutation($input: RecordAuditEventInput!, $key: String) {
  recordAuditEvent(input: $input, idempotencyKey: $key) {
    id recordId seq eventType entityType entityId actorType actorId actionReason
    beforeState afterState runId correlationId prevHash entryHash createdAt
  }
}"#;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical text of docs/ledger.md: a 15-element JSON array, no whitespace, object keys
/// sorted at every depth.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// `entry_hash` of one stored row, per docs/ledger.md (version 1).
fn expected_hash(row: &audit_ledger::Model) -> String {
    let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    let fields = Value::Array(vec![
        json!(row.tenant_id),
        json!(row.seq),
        json!(row.prev_hash),
        json!(row.id),
        json!(row.event_type),
        json!(row.entity_type),
        json!(row.entity_id),
        json!(row.actor_type),
        opt(&row.actor_id),
        opt(&row.action_reason),
        row.before_state.clone().unwrap_or(Value::Null),
        row.after_state.clone().unwrap_or(Value::Null),
        opt(&row.correlation_id),
        opt(&row.run_id),
        json!(row.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    ]);
    let mut hasher = Sha256::new();
    hasher.update(b"logbook-audit-v1");
    hasher.update([0u8]);
    hasher.update(canonical(&fields).as_bytes());
    hex::encode(hasher.finalize())
}

/// Checks one tenant's chain as stored; the error names the first bad entry.
fn check_chain(rows: &[audit_ledger::Model]) -> Result<(), String> {
    let mut prev = GENESIS.to_owned();
    let mut prev_at: Option<DateTime<Utc>> = None;
    for (i, row) in rows.iter().enumerate() {
        let name = format!("entry {} (seq {})", row.id, row.seq);
        if row.seq != i as i64 + 1 {
            return Err(format!("{name}: expected seq {}", i + 1));
        }
        if row.hash_version != 1 {
            return Err(format!("{name}: hash version {}", row.hash_version));
        }
        if row.prev_hash != prev {
            return Err(format!("{name}: prev_hash does not link"));
        }
        if expected_hash(row) != row.entry_hash {
            return Err(format!("{name}: entry_hash does not match its content"));
        }
        if prev_at.is_some_and(|at| row.created_at <= at) {
            return Err(format!("{name}: created_at does not increase"));
        }
        prev = row.entry_hash.clone();
        prev_at = Some(row.created_at);
    }
    Ok(())
}

async fn chain_rows(app: &TestApp, tenant: &str) -> Vec<audit_ledger::Model> {
    audit_ledger::Entity::find()
        .filter(audit_ledger::Column::TenantId.eq(tenant))
        .order_by_asc(audit_ledger::Column::Seq)
        .all(app.db())
        .await
        .expect("read ledger")
}

/// The chain of `tenant` holds exactly `n` entries and verifies; its head agrees.
pub(crate) async fn assert_chain(app: &TestApp, tenant: &str, n: usize) {
    let rows = chain_rows(app, tenant).await;
    assert_eq!(rows.len(), n, "entries of {tenant}");
    let seqs: HashSet<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs.len(), n, "no seq reused");
    if let Err(e) = check_chain(&rows) {
        panic!("chain of {tenant} broken: {e}");
    }
    let head = entity::audit_chain_heads::Entity::find_by_id(tenant.to_owned())
        .one(app.db())
        .await
        .expect("head")
        .expect("head row");
    assert_eq!(head.seq, n as i64);
    assert_eq!(head.entry_hash, rows.last().expect("rows").entry_hash);
}

fn limit_created(entity: &str) -> Value {
    json!({
        "eventType": "LIMIT_CREATED", "entityType": "LIMIT", "entityId": entity,
        "actorType": "HUMAN", "actorId": "alice",
        "afterState": { "limit_id": entity, "value": 100 },
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            base.as_object_mut().expect("object").remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

async fn ledger_count(app: &TestApp) -> usize {
    audit_ledger::Entity::find()
        .all(app.db())
        .await
        .expect("count")
        .len()
}

async fn bad_inputs_are_named_and_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Ingest).await;
    let base = limit_created("lim-1");
    let cases: Vec<(Value, &str)> = vec![
        (
            with(base.clone(), json!({ "entityType": "SIGNAL" })),
            "input.entityType",
        ),
        // Only the export worker anchors manifests; a client cannot forge one.
        (
            with(
                base.clone(),
                json!({ "eventType": "EXPORT_COMPLETED", "entityType": "EXPORT" }),
            ),
            "input.eventType",
        ),
        (
            with(
                base.clone(),
                json!({ "eventType": "INCIDENT_ACKNOWLEDGED" }),
            ),
            "input.entityType",
        ),
        (
            with(base.clone(), json!({ "afterState": null })),
            "input.afterState",
        ),
        (
            with(base.clone(), json!({ "beforeState": { "value": 1 } })),
            "input.beforeState",
        ),
        (
            with(base.clone(), json!({ "eventType": "LIMIT_UPDATED" })),
            "input.beforeState",
        ),
        (
            with(
                base.clone(),
                json!({ "eventType": "POLICY_RULE_RETIRED", "entityType": "POLICY_RULE",
                        "beforeState": { "status": "ACTIVE" }, "actionReason": "superseded" }),
            ),
            "input.afterState",
        ),
        (
            with(
                base.clone(),
                json!({ "eventType": "POLICY_RULE_RETIRED", "entityType": "POLICY_RULE",
                        "afterState": null, "beforeState": { "status": "ACTIVE" } }),
            ),
            "input.actionReason",
        ),
        (
            with(base.clone(), json!({ "actorId": null })),
            "input.actorId",
        ),
        (
            with(
                base.clone(),
                json!({ "actorType": "AGENT", "actorId": null }),
            ),
            "input.actorId",
        ),
        (
            with(base.clone(), json!({ "actorId": "  " })),
            "input.actorId",
        ),
        (
            with(base.clone(), json!({ "entityId": "" })),
            "input.entityId",
        ),
        (
            with(base.clone(), json!({ "entityId": "x".repeat(65) })),
            "input.entityId",
        ),
        (
            with(base.clone(), json!({ "afterState": [1, 2] })),
            "input.afterState",
        ),
        (
            with(base.clone(), json!({ "actionReason": "" })),
            "input.actionReason",
        ),
        (
            json!({
                "eventType": "SIGNAL_SUPPRESSED", "entityType": "SIGNAL", "entityId": "sig-1",
                "actorType": "HUMAN", "actorId": "bob",
                "afterState": { "suppressed_until": "2100-01-01T00:00:00Z" },
            }),
            "input.actionReason",
        ),
        (
            json!({
                "eventType": "SIGNAL_SUPPRESSED", "entityType": "SIGNAL", "entityId": "sig-1",
                "actorType": "HUMAN", "actorId": "bob", "actionReason": "noise",
                "afterState": { "suppressed_until": "next tuesday" },
            }),
            "input.afterState",
        ),
    ];
    for (input, field) in cases {
        let body = app.gql(Some(&key), RECORD, json!({ "input": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"],
            json!(field),
            "{input}"
        );
        assert!(body["data"].is_null(), "{input}");
    }
    // Values outside the enums are refused by GraphQL itself.
    for change in [
        json!({ "eventType": "LimitCreated" }),
        json!({ "eventType": "LIMIT_DELETED" }),
        json!({ "entityType": "DECISION" }),
        json!({ "actorType": "ROBOT" }),
    ] {
        let input = with(base.clone(), change);
        let body = app.gql(Some(&key), RECORD, json!({ "input": input })).await;
        assert!(body["errors"].is_array(), "{input}: {body}");
        assert!(body["data"].is_null(), "{input}");
    }
    assert_eq!(ledger_count(&app).await, 0, "nothing written");
    // The same input, valid, is accepted.
    let data = app.data(&key, RECORD, json!({ "input": base })).await;
    assert_eq!(data["recordAuditEvent"]["seq"], json!(1));
    assert_chain(&app, "acme", 1).await;
}

async fn roles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let input = limit_created("lim-1");
    for role in [Role::Viewer, Role::Operator] {
        let key = app.key("acme", role).await;
        let body = app.gql(Some(&key), RECORD, json!({ "input": input })).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{role:?}");
    }
    let body = app.gql(None, RECORD, json!({ "input": input })).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert_eq!(ledger_count(&app).await, 0);
    for (n, role) in [Role::Ingest, Role::Admin].into_iter().enumerate() {
        let key = app.key("acme", role).await;
        let data = app.data(&key, RECORD, json!({ "input": input })).await;
        assert_eq!(data["recordAuditEvent"]["seq"], json!(n + 1), "{role:?}");
    }
    // Tenants have separate chains; the tenant is the key's.
    let other = app.key("other", Role::Ingest).await;
    let data = app.data(&other, RECORD, json!({ "input": input })).await;
    assert_eq!(data["recordAuditEvent"]["seq"], json!(1));
    assert_eq!(data["recordAuditEvent"]["prevHash"], json!(GENESIS));
    assert_chain(&app, "acme", 2).await;
    assert_chain(&app, "other", 1).await;
}

async fn every_event_group(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Ingest).await;
    let inputs = [
        json!({
            "eventType": "POLICY_RULE_MODIFIED", "entityType": "POLICY_RULE", "entityId": "pol-1",
            "actorType": "HUMAN", "actorId": "alice", "actionReason": "too many false positives",
            "beforeState": { "mode": "enforce", "version": 1 },
            "afterState": { "mode": "monitor", "version": 2 },
            "correlationId": "corr-1",
        }),
        json!({
            "eventType": "POLICY_PROPOSAL_APPROVED", "entityType": "POLICY_PROPOSAL",
            "entityId": "prop-1", "actorType": "AGENT", "actorId": "policy-proposer",
            "afterState": { "status": "APPROVED", "run_id": "run-7" },
        }),
        json!({
            "eventType": "LIMIT_BREACHED", "entityType": "LIMIT", "entityId": "lim-1",
            "actorType": "SYSTEM", "afterState": { "observed": 120, "value": 100 },
            "runId": "run-8",
        }),
        json!({
            "eventType": "LIMIT_OVERRIDE_GRANTED", "entityType": "LIMIT", "entityId": "lim-1",
            "actorType": "HUMAN", "actorId": "bob", "actionReason": "quarter-end batch",
            "afterState": { "override_value": 200, "active": true },
        }),
        json!({
            "eventType": "INCIDENT_RESOLVED", "entityType": "INCIDENT", "entityId": "inc-1",
            "actorType": "HUMAN", "actorId": "carol", "actionReason": "provider recovered",
            "beforeState": { "status": "acknowledged", "source_run_id": "run-9" },
            "afterState": { "status": "resolved", "source_run_id": "run-9" },
        }),
        json!({
            "eventType": "EMERGENCY_OVERRIDE_ACTIVATED", "entityType": "POLICY_RULE",
            "entityId": "eo-1", "actorType": "HUMAN", "actorId": "dave",
            "actionReason": "production outage",
            "afterState": { "active": true, "unicode": "Grüße ✓", "nested": { "b": [1.5, null], "a": "x\"y" } },
        }),
        json!({
            "eventType": "SIGNAL_ESCALATED", "entityType": "SIGNAL", "entityId": "sig-1",
            "actorType": "SYSTEM", "afterState": { "escalated": true, "severity": "HIGH" },
        }),
    ];
    let mut prev = GENESIS.to_owned();
    for (i, input) in inputs.iter().enumerate() {
        let data = app.data(&key, RECORD, json!({ "input": input })).await;
        let e = &data["recordAuditEvent"];
        assert_eq!(e["seq"], json!(i + 1), "{input}");
        assert_eq!(e["eventType"], input["eventType"]);
        assert_eq!(e["entityType"], input["entityType"]);
        assert_eq!(e["entityId"], input["entityId"]);
        assert_eq!(e["actorType"], input["actorType"]);
        assert_eq!(e["actorId"], input["actorId"]);
        assert_eq!(e["actionReason"], input["actionReason"]);
        assert_eq!(e["beforeState"], input["beforeState"]);
        assert_eq!(e["afterState"], input["afterState"]);
        assert_eq!(e["correlationId"], input["correlationId"]);
        assert_eq!(e["prevHash"], json!(prev));
        prev = e["entryHash"].as_str().expect("hash").to_owned();
    }
    // The run is the given one, else the one the states name.
    let rows = chain_rows(&app, "acme").await;
    let runs: Vec<Option<&str>> = rows.iter().map(|r| r.run_id.as_deref()).collect();
    assert_eq!(
        runs,
        vec![
            None,
            Some("run-7"),
            Some("run-8"),
            None,
            Some("run-9"),
            None,
            None
        ]
    );
    assert_chain(&app, "acme", inputs.len()).await;
}

async fn idempotent_by_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Ingest).await;
    let input = limit_created("lim-1");
    let vars = json!({ "input": input, "key": "k-1" });
    let first = app.data(&key, RECORD, vars.clone()).await;
    let again = app.data(&key, RECORD, vars).await;
    assert_eq!(
        first["recordAuditEvent"]["recordId"],
        again["recordAuditEvent"]["recordId"]
    );
    assert_eq!(first["recordAuditEvent"], again["recordAuditEvent"]);
    let other = with(input.clone(), json!({ "entityId": "lim-2" }));
    let body = app
        .gql(Some(&key), RECORD, json!({ "input": other, "key": "k-1" }))
        .await;
    assert_eq!(error_code(&body), "IDEMPOTENCY_CONFLICT", "{body}");
    // Without a key, every call appends.
    app.data(&key, RECORD, json!({ "input": input })).await;
    assert_chain(&app, "acme", 2).await;
}

/// Entries written by the mutation feed `signalFeedback` and `auditEntityHistory`.
async fn reads_see_written_entries(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ingest = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    let signal = |event: &str, actor: &str, after: Value, reason: Option<&str>| {
        json!({
            "eventType": event, "entityType": "SIGNAL", "entityId": "sig-42",
            "actorType": "HUMAN", "actorId": actor, "afterState": after, "actionReason": reason,
        })
    };
    for input in [
        signal(
            "SIGNAL_ACKNOWLEDGED",
            "alice",
            json!({ "acknowledged": true }),
            None,
        ),
        signal(
            "SIGNAL_ACKNOWLEDGED",
            "bob",
            json!({ "acknowledged": true }),
            None,
        ),
        signal(
            "SIGNAL_SUPPRESSED",
            "carol",
            json!({ "suppressed_until": "2100-01-01T00:00:00Z" }),
            Some("known issue"),
        ),
        limit_created("lim-1"),
    ] {
        app.data(&ingest, RECORD, json!({ "input": input })).await;
    }
    let feedback = app
        .data(
            &viewer,
            "query($fp: String!) { signalFeedback(fingerprint: $fp) { acknowledged acknowledgedBy suppressed suppressedBy suppressedUntil suppressionActive escalated } }",
            json!({ "fp": "sig-42" }),
        )
        .await;
    assert_eq!(
        feedback["signalFeedback"],
        json!({
            "acknowledged": true, "acknowledgedBy": "bob", "suppressed": true,
            "suppressedBy": "carol", "suppressedUntil": "2100-01-01T00:00:00Z",
            "suppressionActive": true, "escalated": false,
        })
    );
    let history = app
        .data(
            &viewer,
            "query { auditEntityHistory(entityType: SIGNAL, entityId: \"sig-42\") { totalCount nodes { seq eventType actorId } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        history["auditEntityHistory"],
        json!({ "totalCount": 3, "nodes": [
            { "seq": 3, "eventType": "SIGNAL_SUPPRESSED", "actorId": "carol" },
            { "seq": 2, "eventType": "SIGNAL_ACKNOWLEDGED", "actorId": "bob" },
            { "seq": 1, "eventType": "SIGNAL_ACKNOWLEDGED", "actorId": "alice" },
        ]})
    );
    let list = app
        .data(
            &viewer,
            "query { auditEntries(first: 10) { totalCount nodes { seq } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        list["auditEntries"]["nodes"],
        json!([{ "seq": 4 }, { "seq": 3 }, { "seq": 2 }, { "seq": 1 }]),
        "newest first is seq order"
    );
}

fn direct_entry(tenant: &str, writer: usize, i: usize) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: TenantId::trusted(tenant),
        event_type: AuditEventType::LimitBreached,
        entity_type: AuditEntityType::Limit,
        entity_id: format!("lim-{writer}"),
        actor_type: ActorType::System,
        actor_id: None,
        reason: None,
        before_state: None,
        after_state: Some(json!({ "writer": writer, "i": i })),
        run_id: None,
        correlation_id: Some(format!("w{writer}")),
    }
}

async fn gql_append(app: &TestApp, key: &str, writer: usize, i: usize) {
    let input = json!({
        "eventType": "LIMIT_BREACHED", "entityType": "LIMIT", "entityId": format!("lim-{writer}"),
        "actorType": "SYSTEM", "afterState": { "writer": writer, "i": i },
    });
    let body = app.gql(Some(key), RECORD, json!({ "input": input })).await;
    assert!(body.get("errors").is_none(), "writer {writer} #{i}: {body}");
}

/// 8 writers append to one tenant at once, one through GraphQL, seven directly through the
/// app's state (sharing its group commit): the chain stays gapless and verifies.
async fn concurrent_writers_keep_one_chain(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let key = app.key("acme", Role::Ingest).await;
    let per_writer = match backend {
        Backend::Postgres => 1000,
        Backend::Sqlite => 100,
    };
    let writers = 8;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let app = app.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let began = std::time::Instant::now();
            for i in 0..per_writer {
                if w == 0 {
                    gql_append(&app, &key, w, i).await;
                } else {
                    app.services
                        .audit_appends
                        .append(app.db(), direct_entry("acme", w, i), None)
                        .await
                        .unwrap_or_else(|e| panic!("writer {w} #{i}: {e:?}"));
                }
            }
            let how = if w == 0 { "GraphQL" } else { "direct" };
            eprintln!("writer {w} ({how}) done after {:?}", began.elapsed());
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let total = writers * per_writer;
    eprintln!(
        "{}: {total} appends by {writers} writers in {:?}",
        backend.name(),
        started.elapsed()
    );
    assert_chain(&app, "acme", total).await;
    // Each writer's own entries are in its order.
    let rows = chain_rows(&app, "acme").await;
    for w in 0..writers {
        let order: Vec<i64> = rows
            .iter()
            .filter_map(|r| r.after_state.as_ref())
            .filter(|s| s["writer"] == json!(w))
            .map(|s| s["i"].as_i64().expect("i"))
            .collect();
        assert_eq!(
            order,
            (0..per_writer as i64).collect::<Vec<_>>(),
            "writer {w}"
        );
    }
}

/// Two server processes over one database append to one tenant at once.
async fn two_processes_keep_one_chain(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let second = TestApp::spawn_on(backend, first.database_url(), |_| {}).await;
    let key = first.key("acme", Role::Ingest).await;
    let per_writer = match backend {
        Backend::Postgres => 200,
        Backend::Sqlite => 50,
    };
    let apps = std::sync::Arc::new([first, second]);
    let mut tasks = Vec::new();
    // One more writer appends without group commit, one transaction per entry.
    let solo = {
        let apps = apps.clone();
        tokio::spawn(async move {
            for i in 0..per_writer / 2 {
                append_committed(apps[1].db(), direct_entry("acme", 4, i))
                    .await
                    .unwrap_or_else(|e| panic!("solo writer #{i}: {e:?}"));
            }
        })
    };
    for w in 0..4 {
        let apps = apps.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                gql_append(&apps[w % 2], &key, w, i).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    solo.await.expect("solo writer");
    let total = 4 * per_writer + per_writer / 2;
    assert_chain(&apps[0], "acme", total).await;
    // The second process sees the same chain head as the first.
    let viewer = apps[1].key("acme", Role::Viewer).await;
    let data = apps[1]
        .data(
            &viewer,
            "query { auditEntries(first: 1) { nodes { seq } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["auditEntries"]["nodes"][0]["seq"], json!(total));
}

/// A row changed behind the trigger's back is found, and named.
async fn tampering_is_detected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Ingest).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let input = with(limit_created(&format!("lim-{i}")), json!({}));
        let data = app.data(&key, RECORD, json!({ "input": input })).await;
        ids.push(
            data["recordAuditEvent"]["recordId"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    assert_chain(&app, "acme", 6).await;
    // The trigger refuses the change…
    let update = format!(
        "UPDATE audit_ledger SET actor_id = 'mallory' WHERE id = '{}'",
        ids[3]
    );
    assert!(
        app.raw(&update).await.is_err(),
        "the trigger refuses updates"
    );
    // …so disable it, as an attacker with table rights would.
    match backend {
        Backend::Postgres => {
            app.raw("ALTER TABLE audit_ledger DISABLE TRIGGER trg_audit_ledger_immutable")
                .await
                .expect("disable trigger");
        }
        Backend::Sqlite => {
            app.raw("DROP TRIGGER trg_audit_ledger_immutable_update")
                .await
                .expect("drop trigger");
        }
    }
    assert_eq!(app.raw(&update).await.expect("tamper"), 1);
    let rows = chain_rows(&app, "acme").await;
    let err = check_chain(&rows).expect_err("tampering detected");
    assert!(err.contains(&ids[3]), "names the tampered entry: {err}");
    assert!(err.contains("seq 4"), "{err}");
}

crate::cases!(
    bad_inputs_are_named_and_write_nothing,
    roles,
    every_event_group,
    idempotent_by_key,
    reads_see_written_entries,
    concurrent_writers_keep_one_chain,
    two_processes_keep_one_chain,
    tampering_is_detected,
);
