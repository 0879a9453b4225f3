//! The idempotency store behind every write mutation (`logbook::idempotency::once`), exercised
//! directly: PostgreSQL cases use Redis (the production shape), SQLite cases the
//! `idempotency_keys` table. Effects are counted with a shared counter, so "exactly one effect"
//! is observed, not inferred. The mutations' own tests check the same through GraphQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use logbook::auth::TenantId;
use logbook::error::{AppError, AppResult};
use logbook::idempotency::once;
use serde_json::json;

use crate::support::{Backend, TestApp};

/// Runs `once` with an effect that counts itself, sleeps a little (so duplicates overlap the
/// first attempt) and returns a value unique to the attempt.
async fn counted(
    app: &TestApp,
    tenant: &str,
    key: &str,
    input: serde_json::Value,
    effects: Arc<AtomicUsize>,
) -> AppResult<String> {
    let tenant = TenantId::trusted(tenant);
    once(
        &app.state,
        &tenant,
        "testWrite",
        Some(key),
        &input,
        || async move {
            let n = effects.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(format!("attempt-{n}"))
        },
    )
    .await
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
    assert!(results.iter().all(|r| r == "attempt-0"), "{results:?}");

    // Later duplicate: the stored first result, still no new effect.
    let again = counted(&app, "acme", "k-1", json!({"a": 1}), effects.clone()).await;
    assert_eq!(again.unwrap(), "attempt-0");
    assert_eq!(effects.load(Ordering::SeqCst), 1);

    // Same key in another tenant is another key.
    let other = counted(&app, "globex", "k-1", json!({"a": 1}), effects.clone()).await;
    assert_eq!(other.unwrap(), "attempt-1");
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
    let err = once(
        &app.state,
        &tenant,
        "otherWrite",
        Some("k-2"),
        &json!({"a": 1}),
        || async { Ok::<_, AppError>(1) },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "IDEMPOTENCY_CONFLICT");
    let err = once(
        &app.state,
        &tenant,
        "testWrite",
        Some(""),
        &json!({}),
        || async { Ok::<_, AppError>(1) },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "BAD_USER_INPUT");
    assert_eq!(effects.load(Ordering::SeqCst), 1);
    app.stop().await;
}

async fn a_failed_first_attempt_can_be_retried(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tenant = TenantId::trusted("acme");
    let input = json!({"a": 1});
    let first = once(
        &app.state,
        &tenant,
        "testWrite",
        Some("k-3"),
        &input,
        || async { Err::<String, _>(AppError::Unavailable("downstream failed".into())) },
    )
    .await;
    assert_eq!(first.unwrap_err().code(), "UNAVAILABLE");
    // Right away, not after a TTL (5 #11): the retry runs the effect.
    let retry = once(
        &app.state,
        &tenant,
        "testWrite",
        Some("k-3"),
        &input,
        || async { Ok::<_, AppError>("done".to_owned()) },
    )
    .await;
    assert_eq!(retry.unwrap(), "done");
    app.stop().await;
}

async fn two_processes_share_the_store(backend: Backend) {
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
    let err = counted(&second, "acme", "k-4", json!({"a": 9}), effects.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "IDEMPOTENCY_CONFLICT");
    Arc::into_inner(second).unwrap().stop().await;
    Arc::into_inner(first).unwrap().stop().await;
}

/// Redis configured but down: a keyed write is refused before its effect runs.
async fn redis_down_refuses_keyed_writes(backend: Backend) {
    if backend != Backend::Postgres {
        return; // the SQLite cases run without Redis
    }
    let app = TestApp::spawn_with(backend, |config| {
        config.redis_url = Some("redis://127.0.0.1:1".into());
    })
    .await;
    let effects = Arc::new(AtomicUsize::new(0));
    let err = counted(&app, "acme", "k-5", json!({"a": 1}), effects.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAVAILABLE");
    assert_eq!(
        effects.load(Ordering::SeqCst),
        0,
        "no effect without a claim"
    );
    app.stop().await;
}

crate::cases!(
    concurrent_duplicates_have_one_effect,
    other_input_or_operation_conflicts,
    a_failed_first_attempt_can_be_retried,
    two_processes_share_the_store,
    redis_down_refuses_keyed_writes
);
