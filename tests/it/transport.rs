//! GraphQL over HTTP: GET and POST, media types and statuses, body limit, health and readiness.

use logbook::auth::Role;
use serde_json::{json, Value};

use crate::support::{error_code, redis_url, Backend, TestApp};

async fn get_and_post_and_media_types(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;

    let response = app
        .http
        .get(format!("{}/graphql", app.base))
        .query(&[("query", "{ viewer { role } }")])
        .bearer_auth(&key)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"]["viewer"]["role"], "VIEWER");

    // graphql-response+json: a document that does not parse is a 400.
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .header("accept", "application/graphql-response+json")
        .bearer_auth(&key)
        .json(&json!({ "query": "{ viewer { " }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/graphql-response+json"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    // The same with application/json: 200.
    let body = app.gql(Some(&key), "{ viewer { ", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");

    // Other methods.
    let response = app
        .http
        .put(format!("{}/graphql", app.base))
        .send()
        .await
        .expect("PUT");
    assert_eq!(response.status(), 405);

    // Body over 1 MiB.
    let huge = format!("{{ viewer {{ role }} }} #{}", "x".repeat(1024 * 1024 + 10));
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&key)
        .json(&json!({ "query": huge }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "PAYLOAD_TOO_LARGE");

    // Depth limits: data fields past 12; introspection past its own bound of 20 (the
    // standard introspection query is 15 deep).
    let deep = format!("{{ {} role {} }}", "viewer { ".repeat(13), "} ".repeat(13));
    let body = app.gql(Some(&key), &deep, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "{body:#}");
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(20),
        "} ".repeat(20)
    );
    let body = app.gql(Some(&key), &deep, json!({})).await;
    assert_eq!(error_code(&body), "QUERY_TOO_DEEP", "{body:#}");

    let page = app
        .http
        .get(format!("{}/graphiql", app.base))
        .send()
        .await
        .expect("graphiql");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("graphiql"));
    app.stop().await;
}

async fn health_and_readiness(backend: Backend) {
    let with_redis = backend == Backend::Postgres;
    let app = TestApp::spawn_with(backend, |config| {
        if with_redis {
            config.redis_url = Some(redis_url());
        }
    })
    .await;
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["database"], "ok");
    assert_eq!(
        body["redis"],
        if with_redis { "ok" } else { "not configured" }
    );
    app.stop().await;

    // A Redis nobody listens on: not ready, and the answer comes quickly.
    let app = TestApp::spawn_with(backend, |config| {
        config.redis_url = Some("redis://127.0.0.1:1".into())
    })
    .await;
    let started = std::time::Instant::now();
    let ready = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    app.stop().await;
}

crate::cases!(get_and_post_and_media_types, health_and_readiness);
