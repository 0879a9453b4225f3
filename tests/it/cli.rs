//! The `logbook` binary: `print-schema`, `migrate` and `keys create` as a user runs them.

use std::process::Command;

use serde_json::json;

use crate::support::{fresh_database_url, Backend, TestApp};

pub(crate) fn logbook(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_logbook"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("REDIS_URL")
        .output()
        .expect("run logbook")
}

async fn keys_create_prints_a_working_key(backend: Backend) {
    let url = fresh_database_url(backend).await;
    let out = logbook(&url, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = logbook(
        &url,
        &["keys", "create", "--tenant", "acme", "--role", "OPERATOR"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let key = stdout
        .lines()
        .last()
        .expect("a last line")
        .trim()
        .to_owned();
    assert!(key.starts_with("lbk_"));

    let bad = logbook(
        &url,
        &["keys", "create", "--tenant", "acme", "--role", "ROOT"],
    );
    assert!(!bad.status.success());
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).lines().count(),
        1,
        "one-line reason"
    );

    // Who uses the key: HUMAN unless `--actor-type` says otherwise (any case).
    let create_as = |actor: &str| {
        logbook(
            &url,
            &[
                "keys",
                "create",
                "--tenant",
                "acme",
                "--role",
                "OPERATOR",
                "--actor-type",
                actor,
            ],
        )
    };
    let out = create_as("agent");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let agent_key = stdout
        .lines()
        .last()
        .expect("a last line")
        .trim()
        .to_owned();
    let bad = create_as("robot");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown actor type robot"));

    let app = TestApp::spawn_with(backend, |c| c.database.url = url.clone()).await;
    let data = app
        .data(&key, "{ viewer { tenantId role actorType } }", json!({}))
        .await;
    assert_eq!(
        data["viewer"],
        json!({ "tenantId": "acme", "role": "OPERATOR", "actorType": "HUMAN" })
    );
    let data = app
        .data(&agent_key, "{ viewer { actorType } }", json!({}))
        .await;
    assert_eq!(data["viewer"]["actorType"], "AGENT");
    // Only the digest is stored.
    let stored = app
        .raw(&format!(
            "SELECT id FROM api_keys WHERE key_sha256 = '{}'",
            logbook::auth::digest_key(&key)
        ))
        .await;
    assert!(stored.is_ok());
    app.stop().await;
}

async fn print_schema_matches_file(_backend: Backend) {
    let out = logbook("sqlite::memory:", &["print-schema"]);
    assert!(out.status.success());
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql");
    assert_eq!(String::from_utf8(out.stdout).expect("utf8"), file);
}

/// The anchor of the demo seeds the tests make.
const DEMO_ANCHOR: &str = "2026-11-20T00:00:00Z";

/// `logbook seed --profile demo` over `url`: tenant `demo`, every list non-empty.
pub(crate) fn seed_demo(url: &str) {
    let out = logbook(
        url,
        &[
            "seed",
            "--profile",
            "demo",
            "--anchor",
            DEMO_ANCHOR,
            "--no-progress",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn seed_demo_fills_every_list(backend: Backend) {
    let url = fresh_database_url(backend).await;
    let anchor = DEMO_ANCHOR;
    seed_demo(&url);
    // Seeding the same tenant again is refused rather than duplicated.
    let again = logbook(
        &url,
        &[
            "seed",
            "--profile",
            "demo",
            "--anchor",
            anchor,
            "--no-progress",
        ],
    );
    assert!(!again.status.success());
    let out = logbook(
        &url,
        &["keys", "create", "--tenant", "demo", "--role", "VIEWER"],
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let key = stdout.lines().last().expect("key").trim().to_owned();
    let app = TestApp::spawn_with(backend, |c| c.database.url = url.clone()).await;
    let data = app
        .data(
            &key,
            "{ llmRuns { totalCount } systemRecords { totalCount } auditEntries { totalCount } traces { totalCount } traceMismatches { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data["llmRuns"]["totalCount"], 200, "{data:#}");
    for list in ["systemRecords", "auditEntries", "traces", "traceMismatches"] {
        assert!(
            data[list]["totalCount"].as_i64().expect("count") > 0,
            "{list}: {data:#}"
        );
    }
    app.stop().await;
}

crate::cases!(
    keys_create_prints_a_working_key,
    print_schema_matches_file,
    seed_demo_fills_every_list
);
