//! Request-level limits (docs/api.md §8, §9) that need shared state: the per-key rate limit in
//! complexity points per minute (with `RateLimit-*` headers), and automatic persisted queries. Both
//! are shared across server processes (Redis on the PostgreSQL cases, tables on SQLite).

use logbook::auth::Role;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{Backend, TestApp};

const VIEWER: &str = "{ viewer { tenantId role } }";

async fn post(app: &TestApp, key: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(key)
        .header("accept", "application/graphql-response+json")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> u64 {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Keeps a test's requests inside one rate-limit window (UTC minute).
async fn wait_for_fresh_window() {
    let second = chrono::Utc::now().timestamp().rem_euclid(60);
    if second > 45 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
}

async fn rate_limit_counts_points_across_processes(backend: Backend) {
    let limit = 12;
    let first = TestApp::spawn_with(backend, |c| c.limits.rate_limit_per_minute = limit).await;
    let second = TestApp::spawn_on(backend, first.database_url(), |c| {
        c.limits.rate_limit_per_minute = limit
    })
    .await;
    let key = first.key("acme", Role::Viewer).await;
    let other = first.key("globex", Role::Viewer).await;
    wait_for_fresh_window().await;

    let (status, headers, body) = post(&first, &key, json!({ "query": VIEWER })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "RateLimit-Limit"), limit);
    let cost = limit - header(&headers, "RateLimit-Remaining");
    assert!(cost >= 1, "a query costs its complexity");
    assert!(header(&headers, "RateLimit-Reset") <= 60);

    // Alternate processes: they draw on one window.
    let mut remaining = limit - cost;
    let mut apps = [&second, &first].into_iter().cycle();
    while remaining >= cost {
        let (status, headers, body) =
            post(apps.next().unwrap(), &key, json!({ "query": VIEWER })).await;
        assert_eq!(status, 200, "{body}");
        remaining -= cost;
        assert_eq!(header(&headers, "RateLimit-Remaining"), remaining);
    }
    let (status, headers, body) = post(&second, &key, json!({ "query": VIEWER })).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(body["data"], Value::Null, "a refused request runs nothing");
    assert!(headers.get("retry-after").is_some());
    // A refused request charges nothing, and other keys have their own window.
    assert_eq!(header(&headers, "RateLimit-Remaining"), remaining);
    let (status, _, _) = post(&first, &other, json!({ "query": VIEWER })).await;
    assert_eq!(status, 200);
    drop(apps);
    second.stop().await;
    first.stop().await;
}

/// Processes lease `limit / 64` points at a time from the shared window: one process's headers
/// stay exact, a second process sees the first one's lease as spent, and together they never
/// admit more than the limit nor leave more than a few requests' worth of it unused.
async fn rate_limit_leases_never_admit_past_the_limit(backend: Backend) {
    let limit = 64 * 20;
    let lease = limit / 64;
    let first = TestApp::spawn_with(backend, |c| c.limits.rate_limit_per_minute = limit).await;
    let second = TestApp::spawn_on(backend, first.database_url(), |c| {
        c.limits.rate_limit_per_minute = limit
    })
    .await;
    let key = first.key("acme", Role::Viewer).await;
    wait_for_fresh_window().await;

    let (_, headers, body) = post(&first, &key, json!({ "query": VIEWER })).await;
    let cost = limit - header(&headers, "RateLimit-Remaining");
    assert!(cost >= 1 && cost < lease, "{body}");
    // Spending the first lease and reserving the next one: exact to the point.
    let mut remaining = limit - cost;
    for _ in 0..(2 * lease / cost) {
        let (status, headers, body) = post(&first, &key, json!({ "query": VIEWER })).await;
        assert_eq!(status, 200, "{body}");
        remaining -= cost;
        assert_eq!(header(&headers, "RateLimit-Remaining"), remaining);
    }
    // The second process reserves after the first: the first one's unspent lease counts as used.
    let spent_by_first = limit - remaining;
    let leased_by_first = spent_by_first.div_ceil(lease) * lease;
    let (status, headers, body) = post(&second, &key, json!({ "query": VIEWER })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&headers, "RateLimit-Remaining"),
        limit - leased_by_first - cost,
        "the first process leased {leased_by_first} points"
    );
    let mut admitted = spent_by_first + cost;

    // Alternate until both processes refuse.
    let mut refused = [false, false];
    for turn in 0.. {
        assert!(turn < 4 * limit, "the limit never refused");
        let process = turn as usize % 2;
        let app = if process == 0 { &first } else { &second };
        let (status, _, body) = post(app, &key, json!({ "query": VIEWER })).await;
        match status {
            200 => {
                admitted += cost;
                refused[process] = false;
            }
            429 => {
                assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
                refused[process] = true;
            }
            other => panic!("{other}: {body}"),
        }
        if refused == [true, true] {
            break;
        }
    }
    assert!(admitted <= limit, "admitted {admitted} of {limit} points");
    // Both refuse only when the window has less than `cost` left and neither lease covers a
    // request, so at most three requests' worth of points go unused.
    assert!(
        admitted + 3 * cost > limit,
        "refused early: admitted {admitted} of {limit} points with leases of {lease}"
    );
    second.stop().await;
    first.stop().await;
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

async fn persisted_queries_register_once_for_every_process(backend: Backend) {
    let first = TestApp::spawn(backend).await;
    let second = TestApp::spawn_on(backend, first.database_url(), |_| {}).await;
    let key = first.key("acme", Role::Viewer).await;
    let hash = sha256(VIEWER);
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });

    let (_, _, body) = post(&first, &key, json!({ "extensions": persisted })).await;
    assert_eq!(
        body["errors"][0]["message"], "PersistedQueryNotFound",
        "{body}"
    );

    let (status, _, body) = post(
        &first,
        &key,
        json!({ "query": VIEWER, "extensions": persisted }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["viewer"]["tenantId"], "acme");

    // Hash only, on the other process, and over GET.
    let (status, _, body) = post(&second, &key, json!({ "extensions": persisted })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["viewer"]["role"], "VIEWER");
    let response = second
        .http
        .get(format!("{}/graphql", second.base))
        .bearer_auth(&key)
        .query(&[("extensions", persisted.to_string())])
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["tenantId"], "acme", "{body}");

    // A hash that does not match the text is refused and stores nothing.
    let wrong = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256("{ x }") } });
    let (status, _, body) = post(
        &first,
        &key,
        json!({ "query": VIEWER, "extensions": wrong }),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let (_, _, body) = post(&first, &key, json!({ "extensions": wrong })).await;
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    second.stop().await;
    first.stop().await;
}

crate::cases!(
    rate_limit_counts_points_across_processes,
    rate_limit_leases_never_admit_past_the_limit,
    persisted_queries_register_once_for_every_process
);
