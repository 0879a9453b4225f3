//! Trusted documents (`serve --trusted-documents`): only listed operations run, by hash or by
//! text; a list with a wrong hash or a document that does not validate stops the server.

use logbook::auth::Role;
use logbook::config::Config;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{error_code, fresh_database_url, redis_url, run_context, Backend, TestApp};

const VIEWER: &str = "query Viewer { viewer { role tenantId } }";
const RUNS: &str = "query Runs($n: Int!) { llmRuns(first: $n) { totalCount } }";

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let path = run_context().sqlite_dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

async fn by_hash(app: &TestApp, key: &str, hash: &str, variables: Value) -> Value {
    app.http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(key)
        .json(&json!({
            "variables": variables,
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } },
        }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON")
}

async fn only_listed_documents_run(backend: Backend) {
    let manifest = json!({ sha256(VIEWER): VIEWER, sha256(RUNS): RUNS });
    let path = write(
        &format!("trusted-{}.json", backend.name()),
        &manifest.to_string(),
    );
    let app = TestApp::spawn_with(backend, |c| c.trusted_documents = Some(path)).await;
    let key = app.key("acme", Role::Viewer).await;

    // By text.
    let data = app.data(&key, VIEWER, json!({})).await;
    assert_eq!(data["viewer"]["role"], "VIEWER");
    // By hash, with the request's own variables still checked.
    let body = by_hash(&app, &key, &sha256(RUNS), json!({ "n": 5 })).await;
    assert_eq!(body["data"]["llmRuns"]["totalCount"], 0, "{body:#}");
    let body = by_hash(&app, &key, &sha256(RUNS), json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    // Validation is not run again per request (fast mode), yet a value of the wrong type for a
    // declared variable is still refused, with no data.
    let body = by_hash(&app, &key, &sha256(RUNS), json!({ "n": "five" })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert!(body.get("data").is_none_or(Value::is_null), "{body:#}");

    // Anything else is refused: other text (even the same operation reformatted), an unknown
    // hash, and registering a new document the automatic-persisted-query way.
    for text in [
        "{ viewer { role } }",
        "query Viewer { viewer { role  tenantId } }",
    ] {
        let body = app.gql(Some(&key), text, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{text}: {body:#}");
        assert!(body.get("data").is_none_or(Value::is_null), "{body:#}");
    }
    let body = by_hash(&app, &key, &"ab".repeat(32), json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");
    let unlisted = "{ viewer { tenantId } }";
    let body: Value = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&key)
        .json(&json!({
            "query": unlisted,
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": sha256(unlisted) } },
        }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");
    let body = by_hash(&app, &key, &sha256(unlisted), json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN", "not registered: {body:#}");
    app.stop().await;
}

async fn a_directory_of_files_and_apollo_manifests(backend: Backend) {
    let dir = run_context()
        .sqlite_dir
        .join(format!("trusted-dir-{}", backend.name()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("viewer.graphql"), VIEWER).expect("write");
    let apollo = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{ "id": sha256(RUNS), "name": "Runs", "type": "query", "body": RUNS }],
    });
    std::fs::write(dir.join("manifest.json"), apollo.to_string()).expect("write");
    let app = TestApp::spawn_with(backend, |c| c.trusted_documents = Some(dir)).await;
    let key = app.key("acme", Role::Viewer).await;
    assert_eq!(
        app.data(&key, VIEWER, json!({})).await["viewer"]["role"],
        "VIEWER"
    );
    let body = by_hash(&app, &key, &sha256(RUNS), json!({ "n": 1 })).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    app.stop().await;
}

async fn a_bad_list_stops_the_server(backend: Backend) {
    let cases = [
        // A hash that is not its document's.
        (
            "wrong-hash",
            json!({ sha256(RUNS): VIEWER }),
            "is not the SHA-256",
        ),
        // A document that does not validate (no such field).
        (
            "invalid",
            json!({ sha256("{ viewer { noSuchField } }"): "{ viewer { noSuchField } }" }),
            "do not validate",
        ),
        // A document past the server's limits.
        (
            "too-deep",
            {
                let deep = format!("{{ {} role {} }}", "viewer { ".repeat(13), "} ".repeat(13));
                json!({ sha256(&deep): deep })
            },
            "do not pass admission",
        ),
    ];
    for (name, manifest, expected) in cases {
        let path = write(
            &format!("bad-{name}-{}.json", backend.name()),
            &manifest.to_string(),
        );
        let url = fresh_database_url(backend).await;
        let redis = matches!(backend, Backend::Postgres).then(redis_url);
        let mut config = Config::new(url, redis);
        config.trusted_documents = Some(path);
        let refused = logbook::server::Services::connect(config).await;
        let Err(error) = refused else {
            panic!("{name}: the server started with a bad list");
        };
        assert!(
            error.message().contains(expected),
            "{name}: {}",
            error.message()
        );
    }
}

crate::cases!(
    only_listed_documents_run,
    a_directory_of_files_and_apollo_manifests,
    a_bad_list_stops_the_server
);
