//! API keys: who the caller is, what a missing or bad key gets, roles, and tenant isolation.

use logbook::auth::Role;
use serde_json::json;

use crate::support::{error_code, fixed_time, insert_runs, make_runs, Backend, TestApp};

async fn viewer_names_tenant_and_role(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Operator).await;
    let data = app
        .data(
            &key,
            "{ viewer { tenantId tenantName role tier } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["viewer"],
        json!({ "tenantId": "acme", "tenantName": "acme", "role": "OPERATOR", "tier": "GOVERN" })
    );
    app.stop().await;
}

async fn missing_or_bad_keys_are_unauthenticated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let _ = app.key("acme", Role::Viewer).await;
    for key in [None, Some("lbk_not-a-real-key"), Some("")] {
        let body = app.gql(key, "{ llmRuns { totalCount } }", json!({})).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{key:?}: {body:#}");
    }
    // Not a bearer scheme.
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .header("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
        .json(&json!({ "query": "{ viewer { role } }" }))
        .send()
        .await
        .expect("post");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    // Nothing is parsed for a caller without a key, introspection included (the SDL is public
    // at /schema.graphql).
    let body = app
        .gql(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    assert!(body.get("data").is_none(), "{body:#}");
    app.stop().await;
}

async fn ingest_keys_cannot_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Ingest).await;
    let body = app
        .gql(Some(&key), "{ llmRuns { totalCount } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    app.stop().await;
}

async fn another_tenants_run_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let acme = app.key("acme", Role::Admin).await;
    let globex = app.key("globex", Role::Admin).await;
    insert_runs(app.db(), &make_runs("acme", "a", 5, fixed_time())).await;
    insert_runs(app.db(), &make_runs("globex", "g", 2, fixed_time())).await;

    let data = app
        .data(
            &acme,
            r#"{ llmRun(runId: "a-run-00000") { id } }"#,
            json!({}),
        )
        .await;
    let node_id = data["llmRun"]["id"].clone();

    let by_run = app
        .gql(
            Some(&globex),
            r#"{ llmRun(runId: "a-run-00000") { id } }"#,
            json!({}),
        )
        .await;
    let missing = app
        .gql(
            Some(&globex),
            r#"{ llmRun(runId: "no-such-run") { id } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_code(&by_run), "NOT_FOUND");
    assert_eq!(
        by_run["errors"][0]["message"], missing["errors"][0]["message"],
        "indistinguishable from missing"
    );
    assert_eq!(by_run["data"]["llmRun"], serde_json::Value::Null);

    let by_node = app
        .gql(
            Some(&globex),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": node_id }),
        )
        .await;
    assert_eq!(error_code(&by_node), "NOT_FOUND");

    let list = app
        .data(
            &globex,
            "{ llmRuns { totalCount nodes { runId } } }",
            json!({}),
        )
        .await;
    assert_eq!(list["llmRuns"]["totalCount"], 2);
    for node in list["llmRuns"]["nodes"].as_array().expect("nodes") {
        assert!(node["runId"].as_str().expect("runId").starts_with("g-"));
    }
    app.stop().await;
}

crate::cases!(
    viewer_names_tenant_and_role,
    missing_or_bad_keys_are_unauthenticated,
    ingest_keys_cannot_read,
    another_tenants_run_is_not_found,
);
