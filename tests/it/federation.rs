//! Apollo Federation v2 (`serve --federation`): off by default; when on, `_service { sdl }`
//! composes with another subgraph under Apollo's own composition library (npm
//! `@apollo/composition`, tests/federation/), and `_entities` resolves `LlmRun`, `Trace`,
//! `AuditEntry` and `LogExport` by their ids exactly as `node` does: within the caller's tenant,
//! a type mismatch or another tenant's id `NOT_FOUND`, and at most 100 per request.

use std::process::{Command, Stdio};

use logbook::auth::Role;
use serde_json::{json, Value};

use crate::cli::logbook;
use crate::support::{error_code, fresh_database_url, run_context, Backend, TestApp};

const ENTITY_TYPES: [(&str, &str); 4] = [
    ("LlmRun", "llmRuns"),
    ("Trace", "traces"),
    ("AuditEntry", "auditEntries"),
    ("LogExport", "logExports"),
];

/// A federated server over the demo seed (every list non-empty), with a VIEWER key of `demo`.
async fn federated_demo(backend: Backend) -> (TestApp, String) {
    let url = fresh_database_url(backend).await;
    crate::cli::seed_demo(&url);
    let app = TestApp::spawn_on(backend, url, |c| c.federation = true).await;
    let key = app.key("demo", Role::Viewer).await;
    (app, key)
}

/// One id of each entity type, from the tenant's lists.
async fn one_of_each(app: &TestApp, key: &str) -> Vec<(&'static str, String)> {
    let query = ENTITY_TYPES
        .iter()
        .map(|(_, list)| format!("{list}(first: 1) {{ nodes {{ id }} }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let data = app.data(key, &format!("{{ {query} }}"), json!({})).await;
    ENTITY_TYPES
        .iter()
        .map(|&(ty, list)| {
            let id = data[list]["nodes"][0]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("no {ty} in the demo seed: {data:#}"))
                .to_owned();
            (ty, id)
        })
        .collect()
}

const ENTITIES: &str = "query ($representations: [_Any!]!) {
  _entities(representations: $representations) {
    __typename
    ... on LlmRun { id model }
    ... on Trace { id traceId }
    ... on AuditEntry { id eventType }
    ... on LogExport { id format }
  }
}";

fn representations(of: &[(&str, String)]) -> Value {
    of.iter()
        .map(|(ty, id)| json!({ "__typename": ty, "id": id }))
        .collect()
}

async fn federation_is_off_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let body = app.gql(Some(&key), "{ _service { sdl } }", json!({})).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Unknown field \"_service\"")),
        "{body:#}"
    );
    let sdl = app.get_text("/schema.graphql").await;
    assert!(!sdl.contains("_entities") && !sdl.contains("@key"), "{sdl}");
    app.stop().await;
}

async fn entities_resolve_within_the_tenant(backend: Backend) {
    let (app, key) = federated_demo(backend).await;
    let wanted = one_of_each(&app, &key).await;
    let data = app
        .data(
            &key,
            ENTITIES,
            json!({ "representations": representations(&wanted) }),
        )
        .await;
    let entities = data["_entities"].as_array().expect("a list");
    assert_eq!(entities.len(), wanted.len(), "{data:#}");
    for ((ty, id), entity) in wanted.iter().zip(entities) {
        assert_eq!(entity["__typename"], *ty, "{entity:#}");
        assert_eq!(entity["id"], *id, "{entity:#}");
    }
    assert!(entities[0]["model"].is_string(), "{data:#}");
    assert!(entities[1]["traceId"].is_string(), "{data:#}");

    // Another tenant's key finds none of them, as if they did not exist.
    let stranger = app.key("acme", Role::Viewer).await;
    for (ty, id) in &wanted {
        let body = app
            .gql(
                Some(&stranger),
                ENTITIES,
                json!({ "representations": [{ "__typename": ty, "id": id }] }),
            )
            .await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{ty}: {body:#}");
        assert!(!body.to_string().contains("\"model\""), "{body:#}");
    }
    // A key that may not read (INGEST) reads nothing through `_entities` either.
    let writer = app.key("demo", Role::Ingest).await;
    let body = app
        .gql(
            Some(&writer),
            ENTITIES,
            json!({ "representations": representations(&wanted) }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body:#}");
    assert!(!body.to_string().contains("\"model\""), "{body:#}");

    // An id presented as another type is not found either.
    let (_, run_id) = &wanted[0];
    let body = app
        .gql(
            Some(&key),
            ENTITIES,
            json!({ "representations": [{ "__typename": "Trace", "id": run_id }] }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");

    // At most 100 representations per request, literal or in a variable.
    let many: Vec<Value> = (0..101)
        .map(|_| json!({ "__typename": "LlmRun", "id": run_id }))
        .collect();
    let body = app
        .gql(Some(&key), ENTITIES, json!({ "representations": many }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert!(body.to_string().contains("at most 100"), "{body:#}");
    app.stop().await;
}

/// Installs tests/federation's locked packages on first use.
fn composition_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/federation");
    if !dir.join("node_modules/@apollo/composition").is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("run npm ci");
        assert!(status.success(), "npm ci in {}", dir.display());
    }
    dir
}

/// Composes subgraphs with `@apollo/composition`: (errors, supergraph SDL).
fn compose(subgraphs: Value) -> (Vec<String>, String) {
    let dir = composition_dir();
    let node = run_context().node.clone().expect("node");
    let mut child = Command::new(node)
        .arg("compose.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(subgraphs.to_string().as_bytes())
        .expect("write subgraphs");
    let out = child.wait_with_output().expect("compose");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let errors = result["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_owned())
        .collect();
    let sdl = result["supergraphSdl"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (errors, sdl)
}

/// What a BFF's router does: fetch the subgraph SDL, compose it with its own subgraph (which
/// adds a field to `LlmRun` and `Trace` by their keys), and plan through `_entities`.
async fn the_subgraph_composes_into_a_supergraph(backend: Backend) {
    let (app, key) = federated_demo(backend).await;
    let data = app.data(&key, "{ _service { sdl } }", json!({})).await;
    let sdl = data["_service"]["sdl"].as_str().expect("sdl").to_owned();
    assert!(
        sdl.contains("extend schema @link(")
            && sdl.contains("https://specs.apollo.dev/federation/v2"),
        "a Federation 2 subgraph: {}",
        &sdl[sdl.len().saturating_sub(600)..]
    );
    let printed = logbook("sqlite::memory:", &["print-schema", "--federation"]);
    assert_eq!(String::from_utf8_lossy(&printed.stdout), sdl);

    let console = r#"
extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
type LlmRun @key(fields: "id") { id: ID! reviewNote: String }
type Trace @key(fields: "id") { id: ID! pinned: Boolean! }
type Query { reviewQueue: [LlmRun!]! }
"#;
    let (errors, supergraph) = compose(json!([
        { "name": "logbook", "url": format!("{}/graphql", app.base), "sdl": sdl },
        { "name": "console", "url": "http://console.internal/graphql", "sdl": console },
    ]));
    assert!(errors.is_empty(), "composition failed: {errors:#?}");
    for ty in ["LlmRun", "Trace", "AuditEntry", "LogExport"] {
        let at = supergraph
            .find(&format!("type {ty} implements Node"))
            .unwrap_or_else(|| panic!("{ty} missing from the supergraph"));
        let head = &supergraph[at..at + 300];
        assert!(
            head.contains("@join__type(graph: LOGBOOK, key: \"id\")"),
            "{ty} is not an entity of Logbook's subgraph: {head}"
        );
    }
    assert!(supergraph.contains("reviewNote: String @join__field(graph: CONSOLE)"));

    // A subgraph whose key names a field Logbook does not have fails composition: the check
    // above is not vacuous.
    let wrong = r#"
extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
type LlmRun @key(fields: "runUuid") { runUuid: ID! reviewNote: String }
type Query { reviewQueue: [LlmRun!]! }
"#;
    let (errors, _) = compose(json!([
        { "name": "logbook", "url": format!("{}/graphql", app.base), "sdl": sdl },
        { "name": "console", "url": "http://console.internal/graphql", "sdl": wrong },
    ]));
    assert!(!errors.is_empty(), "an unresolvable key composed");

    // The router's entity fetch for a plan joining the two subgraphs.
    let wanted = one_of_each(&app, &key).await;
    let data = app
        .data(
            &key,
            ENTITIES,
            json!({ "representations": representations(&wanted[..1]) }),
        )
        .await;
    assert_eq!(data["_entities"][0]["id"], wanted[0].1, "{data:#}");
    app.stop().await;
}

crate::cases!(
    federation_is_off_by_default,
    entities_resolve_within_the_tenant,
    [node] the_subgraph_composes_into_a_supergraph
);
