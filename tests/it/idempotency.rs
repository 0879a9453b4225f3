//! Exactly-once writes (`logbook::idempotency`), exercised directly and through GraphQL. The
//! key's record is written in the effect's own transaction, so the tests count effects both
//! ways: how often the effect ran (a counter) and what it left in the database (rows).
//! Concurrent duplicates, two server processes, a first attempt that fails, a Redis restart
//! and connections dropped under load must all end with one effect per key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use logbook::auth::{Role, TenantId};
use logbook::error::AppResult;
use logbook::idempotency::{self, Begun, Keyed};
use logbook::system::write::{record_system_record, NewSystemRecord};
use logbook::system::{SystemComponent, SystemEventType, SystemRecordSeverity};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};

use crate::support::{error_code, Backend, TestApp};

/// A keyed write whose effect inserts a system record summarised `summary`, counting how often
/// the effect runs; it sleeps inside its transaction so duplicates overlap it.
async fn counted(
    app: &TestApp,
    tenant: &str,
    key: &str,
    input: Value,
    effects: Arc<AtomicUsize>,
) -> AppResult<String> {
    let tenant = TenantId::trusted(tenant);
    let keyed = Keyed::optional("testWrite", Some(key.to_owned()), &input)?;
    match idempotency::begin::<String>(app.db(), &tenant, keyed.as_ref()).await? {
        Begun::Replayed(stored) => Ok(stored),
        Begun::Fresh(write) => {
            let n = effects.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            record_system_record(write.txn(), &tenant, record(key)).await?;
            let result = format!("attempt-{n}");
            write.commit(&result).await?;
            Ok(result)
        }
    }
}

fn record(summary: &str) -> NewSystemRecord {
    NewSystemRecord {
        component: SystemComponent::Api,
        event_type: SystemEventType::HealthCheck,
        severity: SystemRecordSeverity::Info,
        summary: summary.to_owned(),
        details: None,
        caused_by: None,
        correlation_id: None,
    }
}

/// Rows the effect left for `summary`.
async fn rows(app: &TestApp, summary: &str) -> i64 {
    let b = app.db().get_database_backend();
    let sql = format!(
        "SELECT COUNT(*) AS n FROM system_records WHERE summary = '{}'",
        summary.replace('\'', "''")
    );
    let row = app
        .db()
        .query_one_raw(Statement::from_string(b, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

async fn concurrent_duplicates_have_one_effect(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let effects = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (app, effects) = (app.clone(), effects.clone());
        tasks.push(tokio::spawn(async move {
            counted(&app, "acme", "k-1", json!({"a": 1}), effects).await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().expect("every duplicate succeeds"));
    }
    assert_eq!(effects.load(Ordering::SeqCst), 1, "exactly one effect");
    assert_eq!(rows(&app, "k-1").await, 1);
    assert!(results.iter().all(|r| r == "attempt-0"), "{results:?}");

    // Later duplicate: the stored first result, still no new effect.
    let again = counted(&app, "acme", "k-1", json!({"a": 1}), effects.clone()).await;
    assert_eq!(again.unwrap(), "attempt-0");
    assert_eq!(effects.load(Ordering::SeqCst), 1);

    // Same key in another tenant is another key.
    let other = counted(&app, "globex", "k-1", json!({"a": 1}), effects.clone()).await;
    assert_eq!(other.unwrap(), "attempt-1");
    assert_eq!(rows(&app, "k-1").await, 2);
    Arc::into_inner(app).unwrap().stop().await;
}

async fn other_input_or_operation_conflicts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let effects = Arc::new(AtomicUsize::new(0));
    counted(&app, "acme", "k-2", json!({"a": 1}), effects.clone())
        .await
        .unwrap();
    let err = counted(&app, "acme", "k-2", json!({"a": 2}), effects.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "IDEMPOTENCY_CONFLICT");
    let tenant = TenantId::trusted("acme");
    let keyed = Keyed::optional("otherWrite", Some("k-2".into()), &json!({"a": 1})).unwrap();
    let other_operation = idempotency::begin::<String>(app.db(), &tenant, keyed.as_ref()).await;
    assert_eq!(
        other_operation.err().map(|e| e.code()),
        Some("IDEMPOTENCY_CONFLICT")
    );
    let empty = Keyed::optional("testWrite", Some(String::new()), &json!({}));
    assert_eq!(empty.err().map(|e| e.code()), Some("BAD_USER_INPUT"));
    assert_eq!(effects.load(Ordering::SeqCst), 1);
    assert_eq!(rows(&app, "k-2").await, 1);
    app.stop().await;
}

/// A first attempt whose effect ran but never committed (an error, a crash, a dropped
/// connection: its transaction rolls back) leaves neither its effect nor its key behind.
async fn an_uncommitted_attempt_leaves_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tenant = TenantId::trusted("acme");
    let input = json!({"a": 1});
    let keyed = Keyed::optional("testWrite", Some("k-3".into()), &input).unwrap();
    match idempotency::begin::<String>(app.db(), &tenant, keyed.as_ref())
        .await
        .unwrap()
    {
        Begun::Fresh(write) => {
            record_system_record(write.txn(), &tenant, record("k-3"))
                .await
                .unwrap();
            drop(write); // no commit
        }
        Begun::Replayed(_) => panic!("a fresh key"),
    }
    assert_eq!(rows(&app, "k-3").await, 0, "the effect rolled back");
    // Right away, not after a lease: the retry runs the effect.
    let effects = Arc::new(AtomicUsize::new(0));
    let retry = counted(&app, "acme", "k-3", input, effects.clone()).await;
    assert_eq!(retry.unwrap(), "attempt-0");
    assert_eq!(rows(&app, "k-3").await, 1);
    app.stop().await;
}

async fn two_processes_share_the_keys(backend: Backend) {
    let first = Arc::new(TestApp::spawn(backend).await);
    let second = Arc::new(TestApp::spawn_on(backend, first.database_url(), |_| {}).await);
    let effects = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let effects = effects.clone();
        tasks.push(tokio::spawn(async move {
            counted(&app, "acme", "k-4", json!({"a": 1}), effects).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "attempt-0");
    }
    assert_eq!(effects.load(Ordering::SeqCst), 1);
    assert_eq!(rows(&first, "k-4").await, 1);
    let err = counted(&second, "acme", "k-4", json!({"a": 9}), effects.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "IDEMPOTENCY_CONFLICT");
    Arc::into_inner(second).unwrap().stop().await;
    Arc::into_inner(first).unwrap().stop().await;
}

/// Keys live in the database, so Redis being down does not stop keyed writes.
async fn redis_down_does_not_stop_keyed_writes(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.redis_url = Some("redis://127.0.0.1:1".into());
    })
    .await;
    let effects = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let result = counted(&app, "acme", "k-5", json!({"a": 1}), effects.clone()).await;
        assert_eq!(result.unwrap(), "attempt-0");
    }
    assert_eq!(effects.load(Ordering::SeqCst), 1);
    assert_eq!(rows(&app, "k-5").await, 1);
    app.stop().await;
}

const AUDIT: &str = r#"
mutation A($input: RecordAuditEventInput!, $key: String) {
  recordAuditEvent(input: $input, idempotencyKey: $key) { recordId seq }
}"#;

fn audit_input(entity: &str) -> Value {
    json!({
        "eventType": "LIMIT_CREATED",
        "entityType": "LIMIT",
        "entityId": entity,
        "actorType": "HUMAN",
        "actorId": "alice",
        "afterState": { "limit_id": entity, "value": 100 },
    })
}

/// A Redis server of this test's own on a free port, so it can be killed and restarted
/// without disturbing other tests.
struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        PrivateRedis { port, child }
    }

    async fn ready(&self) {
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the private redis-server did not start");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A write acknowledged before Redis restarts (losing everything it held) is neither lost nor
/// doubled by a retry with the same key.
async fn a_redis_restart_loses_no_key(backend: Backend) {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut redis = PrivateRedis::start(port);
    redis.ready().await;
    let url = redis.url();
    let app = TestApp::spawn_with(backend, |config| config.redis_url = Some(url)).await;
    let key = app.key("acme", Role::Ingest).await;
    let variables = json!({ "input": audit_input("p-1"), "key": "restart-1" });
    let first = app.data(&key, AUDIT, variables.clone()).await;

    redis.kill();
    let mut redis = PrivateRedis::start(port);
    redis.ready().await;

    let retry = app.data(&key, AUDIT, variables).await;
    assert_eq!(retry, first, "the retry gets the first entry back");
    let b = app.db().get_database_backend();
    let n: i64 = app
        .db()
        .query_one_raw(Statement::from_string(
            b,
            "SELECT COUNT(*) AS n FROM audit_ledger WHERE entity_id = 'p-1'".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    assert_eq!(n, 1, "one audit entry");
    redis.kill();
    app.stop().await;
}

const RUN: &str = r#"
mutation R($input: RecordLlmRunInput!, $key: String) {
  recordLlmRun(input: $input, idempotencyKey: $key) { recordId runId }
}"#;

/// Writers retry keyed writes (audit appends and LLM runs) while every connection of the server
/// is killed again and again (`pg_terminate_backend`): each answer is a success or
/// `UNAVAILABLE` (never `INTERNAL`: a write that committed is never reported as failed), and at
/// the end every key's effect exists exactly once, the one its answer named.
async fn dropped_connections_lose_or_double_nothing(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let key = app.key("acme", Role::Admin).await;
    let database = app
        .database_url()
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .unwrap()
        .to_owned();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let admin = sea_orm::Database::connect(crate::support::admin_url())
                .await
                .unwrap();
            let mut kills = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let sql = format!(
                    "SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
                     WHERE datname = '{database}' AND pid <> pg_backend_pid()"
                );
                if let Ok(Some(row)) = admin
                    .query_one_raw(Statement::from_string(sea_orm::DbBackend::Postgres, sql))
                    .await
                {
                    kills += row.try_get::<i64>("", "n").unwrap_or(0) as u64;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            let _ = admin.close().await;
            kills
        })
    };
    let unavailable = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (app, key, unavailable) = (app.clone(), key.clone(), unavailable.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..15 {
                let entity = format!("drop-{w}-{i}");
                let run = i % 2 == 1;
                let (document, variables) = if run {
                    let input = json!({
                        "runId": entity,
                        "model": "gpt-4o",
                        "executionStatus": "SUCCEEDED",
                        "startedAt": "2026-11-01T00:00:00Z",
                    });
                    (
                        RUN,
                        json!({ "input": input, "key": format!("key-{entity}") }),
                    )
                } else {
                    let input = audit_input(&entity);
                    (
                        AUDIT,
                        json!({ "input": input, "key": format!("key-{entity}") }),
                    )
                };
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let body = app.gql(Some(&key), document, variables.clone()).await;
                    if body.get("errors").is_none() {
                        acknowledged.push((entity, body["data"].clone()));
                        break;
                    }
                    let code = error_code(&body).to_owned();
                    assert_eq!(code, "UNAVAILABLE", "{body:#}");
                    unavailable.fetch_add(1, Ordering::SeqCst);
                    assert!(tokio::time::Instant::now() < deadline, "no progress");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    let kills = killer.await.unwrap();
    assert!(kills > 0, "the test killed no connection");
    eprintln!(
        "dropped connections: {kills} killed, {} UNAVAILABLE answers retried",
        unavailable.load(Ordering::SeqCst)
    );
    // Every acknowledged write is there once, and its answer was its entry.
    let b = app.db().get_database_backend();
    for (entity, data) in &acknowledged {
        let (sql, answered) = match data.get("recordLlmRun") {
            Some(run) => (
                format!(
                    "SELECT COUNT(*) AS n, MIN(id) AS id FROM llm_run_records \
                     WHERE run_id = '{entity}'"
                ),
                run["recordId"].clone(),
            ),
            None => (
                format!(
                    "SELECT COUNT(*) AS n, MIN(id) AS id FROM audit_ledger \
                     WHERE entity_id = '{entity}'"
                ),
                data["recordAuditEvent"]["recordId"].clone(),
            ),
        };
        let row = app
            .db()
            .query_one_raw(Statement::from_string(b, sql))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 1, "{entity}");
        assert_eq!(
            row.try_get::<String>("", "id").unwrap(),
            answered.as_str().unwrap(),
            "{entity}"
        );
    }
    assert_eq!(acknowledged.len(), 60);
    Arc::into_inner(app).unwrap().stop().await;
}

crate::cases!(
    concurrent_duplicates_have_one_effect,
    other_input_or_operation_conflicts,
    an_uncommitted_attempt_leaves_nothing,
    two_processes_share_the_keys,
    redis_down_does_not_stop_keyed_writes,
    a_redis_restart_loses_no_key,
    [postgres] dropped_connections_lose_or_double_nothing,
);
