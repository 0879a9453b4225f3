//! Platform keys (docs/api.md §2.5): made only by `logbook keys create --platform`, they write
//! system-wide system records (`tenant_id` NULL) that every tenant sees, redacted like a
//! tenant's, idempotent in a scope of their own; a tenant key never writes one, and GraphQL
//! never makes a platform key. Revocation reaches them like any key. That a platform key may
//! read nothing and do nothing else is `tenant_leak::platform_keys_may_only_write_system_wide_records`.

use std::process::Command;
use std::time::{Duration, Instant};

use logbook::auth::Role;
use migration::{Migrator, MigratorTrait};
use serde_json::{json, Value};

use crate::support::{error_code, Backend, TestApp};

const RECORD: &str = "mutation($i: RecordSystemRecordInput!, $k: String) {
  recordSystemRecord(input: $i, idempotencyKey: $k) {
    id recordId tenantId isSystemWide component eventType summary details correlationId
  }
}";

const SYSTEM_WIDE: &str = "query {
  systemRecords(filter: {scope: SYSTEM_WIDE_ONLY}) { totalCount nodes { recordId tenantId isSystemWide summary } }
}";

/// The binary against `app`'s database (and its Redis, which carries revocations).
fn logbook(app: &TestApp, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_logbook"));
    command
        .args(args)
        .env("DATABASE_URL", app.database_url())
        .env("LOGBOOK_LOG", "off")
        .env_remove("REDIS_URL");
    if let Some(redis) = &app.state.config.redis_url {
        command.env("REDIS_URL", redis);
    }
    command.output().expect("run logbook")
}

fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `logbook keys create --platform`: (the raw key, its id).
fn create_platform_key(app: &TestApp) -> (String, String) {
    let stdout = stdout_of(&logbook(
        app,
        &["keys", "create", "--platform", "--label", "ops"],
    ));
    let key = stdout.lines().last().expect("key").trim().to_owned();
    let id = stdout
        .split_whitespace()
        .skip_while(|w| *w != "key")
        .nth(1)
        .expect("key id")
        .to_owned();
    assert!(key.starts_with("lbk_"), "{stdout}");
    (key, id)
}

fn input(summary: &str) -> Value {
    json!({
        "component": "DB",
        "eventType": "DEPLOY",
        "severity": "INFO",
        "summary": summary,
        "details": { "release": "2026.12", "password": "hunter2", "nested": { "api_key": "sk-live-123" } },
        "causedBy": "AUTOMATION",
        "correlationId": "run-shared",
    })
}

async fn null_tenant_rows(app: &TestApp) -> i64 {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    entity::system_records::Entity::find()
        .filter(entity::system_records::Column::TenantId.is_null())
        .count(app.db())
        .await
        .expect("count") as i64
}

/// A CLI-made platform key writes a system-wide record, redacted, that two tenants both see in
/// every read of system records; its idempotency keys are its own.
async fn platform_key_writes_system_wide_records(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (platform, _) = create_platform_key(&app);
    let alpha = app.key("alpha", Role::Viewer).await;
    let beta = app.key("beta", Role::Viewer).await;
    let alpha_ingest = app.key("alpha", Role::Ingest).await;
    let beta_ingest = app.key("beta", Role::Ingest).await;
    for ingest in [&alpha_ingest, &beta_ingest] {
        app.data(
            ingest,
            "mutation { recordLlmRun(input: {runId: \"run-shared\", model: \"m\", executionStatus: SUCCEEDED, startedAt: \"2026-12-01T00:00:00Z\"}) { runId } }",
            json!({}),
        )
        .await;
    }

    let written = app
        .data(
            &platform,
            RECORD,
            json!({ "i": input("deploy 2026.12 rolled out"), "k": "deploy-1" }),
        )
        .await["recordSystemRecord"]
        .clone();
    assert_eq!(written["tenantId"], Value::Null, "{written:#}");
    assert_eq!(written["isSystemWide"], true);
    assert_eq!(written["details"]["release"], "2026.12");
    assert_ne!(
        written["details"]["password"], "hunter2",
        "redacted: {written:#}"
    );
    assert_ne!(
        written["details"]["nested"]["api_key"], "sk-live-123",
        "redacted: {written:#}"
    );
    let record_id = written["recordId"].as_str().expect("recordId").to_owned();
    assert_eq!(null_tenant_rows(&app).await, 1);
    // Stored redacted, not only answered so.
    let stored: String = {
        use sea_orm::EntityTrait;
        let row = entity::system_records::Entity::find_by_id(record_id.clone())
            .one(app.db())
            .await
            .expect("read")
            .expect("row");
        assert_eq!(row.tenant_id, None);
        row.details.expect("details").to_string()
    };
    assert!(
        !stored.contains("hunter2") && !stored.contains("sk-live-123"),
        "{stored}"
    );

    // Every tenant sees it, in every read of system records.
    for key in [&alpha, &beta] {
        let d = app.data(key, SYSTEM_WIDE, json!({})).await;
        assert_eq!(d["systemRecords"]["totalCount"], 1, "{d:#}");
        assert_eq!(
            d["systemRecords"]["nodes"][0]["recordId"],
            record_id.as_str()
        );
        let d = app
            .data(
                key,
                "query($id: ID!) { systemRecord(id: $id) { recordId isSystemWide } all: systemRecords { totalCount } }",
                json!({ "id": record_id }),
            )
            .await;
        assert_eq!(d["systemRecord"]["isSystemWide"], true, "{d:#}");
        assert_eq!(d["all"]["totalCount"], 1, "{d:#}");
        let d = app
            .data(
                key,
                "{ activity(filter: {kinds: [SYSTEM_RECORD]}) { nodes { subject { ... on SystemRecord { recordId tenantId } } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            d["activity"]["nodes"][0]["subject"]["recordId"],
            record_id.as_str(),
            "{d:#}"
        );
        // Correlated with each tenant's own run of that id.
        let d = app
            .data(
                key,
                "{ llmRun(runId: \"run-shared\") { systemRecords { recordId tenantId } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            d["llmRun"]["systemRecords"],
            json!([{ "recordId": record_id, "tenantId": null }]),
            "{d:#}"
        );
    }

    // The same key and input answer the first record; other input under it is a conflict.
    let again = app
        .data(
            &platform,
            RECORD,
            json!({ "i": input("deploy 2026.12 rolled out"), "k": "deploy-1" }),
        )
        .await;
    assert_eq!(again["recordSystemRecord"]["recordId"], record_id.as_str());
    let conflict = app
        .gql(
            Some(&platform),
            RECORD,
            json!({ "i": input("another summary"), "k": "deploy-1" }),
        )
        .await;
    assert_eq!(
        error_code(&conflict),
        "IDEMPOTENCY_CONFLICT",
        "{conflict:#}"
    );
    // A tenant's key of the same text is the tenant's own: neither replayed nor in conflict.
    let tenant_write = app
        .data(
            &alpha_ingest,
            RECORD,
            json!({ "i": input("alpha's own"), "k": "deploy-1" }),
        )
        .await["recordSystemRecord"]
        .clone();
    assert_eq!(tenant_write["tenantId"], "alpha", "{tenant_write:#}");
    assert_ne!(tenant_write["recordId"], record_id.as_str());
    assert_eq!(null_tenant_rows(&app).await, 1);
    // Beta does not see alpha's own record; both still see the system-wide one.
    let d = app
        .data(
            &beta,
            "{ systemRecords { nodes { tenantId summary } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        d["systemRecords"]["nodes"],
        json!([{ "tenantId": null, "summary": "deploy 2026.12 rolled out" }]),
        "{d:#}"
    );
    app.stop().await;
}

/// No tenant key makes a system-wide record or a platform key, whatever its role.
async fn tenant_keys_never_write_system_wide(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("alpha", Role::Admin).await;
    let ingest = app.key("alpha", Role::Ingest).await;
    for key in [&admin, &ingest] {
        let d = app
            .data(
                key,
                RECORD,
                json!({ "i": input("tenant write"), "k": null }),
            )
            .await;
        assert_eq!(d["recordSystemRecord"]["tenantId"], "alpha", "{d:#}");
        assert_eq!(d["recordSystemRecord"]["isSystemWide"], false);
    }
    assert_eq!(null_tenant_rows(&app).await, 0);

    // GraphQL cannot make a platform key: `createApiKey(role: PLATFORM)` is refused, with
    // nothing stored.
    let refused = app
        .gql(
            Some(&admin),
            "mutation { createApiKey(role: PLATFORM) { key } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused:#}");
    assert!(refused["data"].is_null(), "{refused:#}");
    let refused = app
        .gql(
            Some(&admin),
            "mutation($r: Role!) { createApiKey(role: $r) { key } }",
            json!({ "r": "PLATFORM" }),
        )
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused:#}");
    {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        let n = entity::api_keys::Entity::find()
            .filter(entity::api_keys::Column::Role.eq("PLATFORM"))
            .count(app.db())
            .await
            .expect("count");
        assert_eq!(n, 0, "no platform key made through GraphQL");
    }
    // Nor through the tenant form of the CLI.
    let out = logbook(
        &app,
        &["keys", "create", "--tenant", "alpha", "--role", "PLATFORM"],
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "one-line reason: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
}

/// Whether `key` can still write a system-wide record.
async fn platform_accepted(app: &TestApp, key: &str) -> bool {
    let body = app
        .gql(
            Some(key),
            RECORD,
            json!({ "i": input("probe"), "k": "probe" }),
        )
        .await;
    match body.get("errors") {
        None => true,
        Some(_) => {
            assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body:#}");
            false
        }
    }
}

/// `keys list --platform`, `keys rotate` and `keys revoke` on a platform key; a tenant's ADMIN
/// cannot revoke it (`NOT_FOUND`, like a missing key); a revocation evicts it from the cache.
async fn platform_keys_are_listed_rotated_and_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("alpha", Role::Admin).await;
    let (key, id) = create_platform_key(&app);
    let listed = stdout_of(&logbook(&app, &["keys", "list", "--platform"]));
    assert!(
        listed.contains(&id) && listed.contains("PLATFORM"),
        "{listed}"
    );
    let tenants = stdout_of(&logbook(&app, &["keys", "list", "--tenant", "alpha"]));
    assert!(!tenants.contains(&id), "{tenants}");
    // A tenant's ADMIN sees no platform key and cannot revoke one.
    let d = app
        .data(&admin, "{ apiKeys { nodes { id role } } }", json!({}))
        .await;
    assert!(!d.to_string().contains(&id), "{d:#}");
    let refused = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&refused), "NOT_FOUND", "{refused:#}");
    assert!(platform_accepted(&app, &key).await, "cached and accepted");

    // Rotation: a new platform key; the old one is refused within a second.
    let out = stdout_of(&logbook(&app, &["keys", "rotate", "--id", &id]));
    let rotated = out.lines().last().expect("new key").trim().to_owned();
    assert!(out.contains("for the platform"), "{out}");
    let start = Instant::now();
    while platform_accepted(&app, &key).await {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "old key still accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = app
        .data(
            &rotated,
            RECORD,
            json!({ "i": input("after rotation"), "k": null }),
        )
        .await;
    assert_eq!(d["recordSystemRecord"]["tenantId"], Value::Null);
    let new_id = stdout_of(&logbook(&app, &["keys", "list", "--platform"]))
        .lines()
        .nth(1)
        .expect("one active key")
        .split_whitespace()
        .next()
        .expect("id")
        .to_owned();
    assert_ne!(new_id, id);
    let out = stdout_of(&logbook(&app, &["keys", "revoke", "--id", &new_id]));
    assert!(out.contains("of the platform"), "{out}");
    let start = Instant::now();
    while platform_accepted(&app, &rotated).await {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "revoked key still accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

/// The migration's `down` drops platform keys and restores the tenant-only table; `up` again
/// allows them.
async fn platform_key_migration_goes_down_and_up(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, id) = create_platform_key(&app);
    let tenant_key = app.key("alpha", Role::Viewer).await;
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let ours = names
        .iter()
        .position(|n| n == "m20261207_170000_platform_api_keys")
        .expect("registered");
    let after = (names.len() - ours) as u32;
    let db = sea_orm::Database::connect(app.database_url())
        .await
        .expect("connect");
    Migrator::down(&db, Some(after)).await.expect("down");
    let gone = app
        .raw(&format!("DELETE FROM api_keys WHERE id = '{id}'"))
        .await
        .expect("delete");
    assert_eq!(gone, 0, "down removed the platform key");
    let null_tenant = app
        .raw("INSERT INTO api_keys (id, tenant_id, key_sha256, role, created_at) VALUES ('k-null', NULL, 'd-null', 'INGEST', '2026-12-01T00:00:00Z')")
        .await;
    assert!(null_tenant.is_err(), "tenant_id is NOT NULL again");
    Migrator::up(&db, None).await.expect("up again");
    let _ = db.close().await;
    // Tenant keys survived both ways; a platform key can be made again.
    let app2 = TestApp::spawn_on(backend, app.database_url(), |_| {}).await;
    app2.data(&tenant_key, "{ viewer { tenantId } }", json!({}))
        .await;
    let (platform, _) = create_platform_key(&app2);
    let d = app2
        .data(
            &platform,
            RECORD,
            json!({ "i": input("after up"), "k": null }),
        )
        .await;
    assert_eq!(d["recordSystemRecord"]["tenantId"], Value::Null);
    app2.stop().await;
    app.stop().await;
}

/// A system-wide record written by a platform key reaches each tenant's exports and run bundles
/// (their `system_records` member) and live tail, beside that tenant's own records and never
/// beside another tenant's.
async fn system_wide_records_reach_exports_bundles_and_tails(backend: Backend) {
    use crate::exports_writes::{create, download, export_dir, fast, finished};
    let dir = export_dir();
    let app = TestApp::spawn_with(backend, |c| fast(c, &dir)).await;
    let (platform, _) = create_platform_key(&app);
    let mut own = Vec::new();
    for tenant in ["alpha", "beta"] {
        let ingest = app.key(tenant, Role::Ingest).await;
        app.data(
            &ingest,
            "mutation { recordLlmRun(input: {runId: \"run-shared\", model: \"m\", executionStatus: SUCCEEDED, startedAt: \"2026-12-01T00:00:00Z\"}) { runId } }",
            json!({}),
        )
        .await;
        let written = app
            .data(
                &ingest,
                RECORD,
                json!({ "i": input(&format!("{tenant}'s own")), "k": null }),
            )
            .await;
        own.push(
            written["recordSystemRecord"]["recordId"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    // A live tail opened before the write sees it arrive.
    let alpha_viewer = app.key("alpha", Role::Viewer).await;
    let url = format!("{}/graphql", app.base.replacen("http://", "ws://", 1));
    let tail = tokio::spawn(first_added(url, alpha_viewer.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let system_wide = app
        .data(
            &platform,
            RECORD,
            json!({ "i": input("platform deploy"), "k": null }),
        )
        .await["recordSystemRecord"]["recordId"]
        .as_str()
        .expect("id")
        .to_owned();
    let added = tokio::time::timeout(Duration::from_secs(10), tail)
        .await
        .expect("systemRecordAdded within 10 s")
        .expect("tail task");
    assert_eq!(added, system_wide);

    for (n, tenant) in ["alpha", "beta"].into_iter().enumerate() {
        let operator = app.key(tenant, Role::Operator).await;
        let other = &own[1 - n];
        for input in [
            json!({ "scope": "RUN_BUNDLE", "format": "ZIP", "runId": "run-shared" }),
            json!({ "scope": "SYSTEM_RECORDS", "format": "NDJSON" }),
        ] {
            let id = create(&app, &operator, input.clone()).await;
            let done = finished(&app, &operator, &id).await;
            assert_eq!(done["status"], "COMPLETED", "{done:#}");
            let bytes = download(&app, &operator, &id).await;
            let records = if input["scope"] == "RUN_BUNDLE" {
                use std::io::Read;
                let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip");
                let mut member = archive
                    .by_name("system_records.ndjson")
                    .expect("system_records member");
                let mut text = String::new();
                member.read_to_string(&mut text).expect("read");
                text
            } else {
                String::from_utf8(bytes).expect("utf8")
            };
            assert!(
                records.contains(&system_wide),
                "{tenant} {input}: system-wide record missing: {records}"
            );
            assert!(
                records.contains(&own[n]),
                "{tenant} {input}: own record missing: {records}"
            );
            assert!(
                !records.contains(other.as_str()),
                "{tenant} {input}: another tenant's record: {records}"
            );
        }
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The record id of the first `systemRecordAdded` (system-wide only) event `key` receives.
async fn first_added(url: String, key: String) -> String {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    let send = |m: Value| Message::text(m.to_string());
    ws.send(send(json!({ "type": "connection_init",
                          "payload": { "Authorization": format!("Bearer {key}") } })))
        .await
        .expect("init");
    let query = "subscription { systemRecordAdded(filter: {scope: SYSTEM_WIDE_ONLY}) { node { recordId tenantId } } }";
    while let Some(frame) = ws.next().await {
        let Message::Text(text) = frame.expect("frame") else {
            continue;
        };
        let message: Value = serde_json::from_str(text.as_str()).expect("JSON");
        match message["type"].as_str() {
            Some("connection_ack") => ws
                .send(send(json!({ "id": "1", "type": "subscribe",
                                   "payload": { "query": query } })))
                .await
                .expect("subscribe"),
            Some("ping") => ws
                .send(send(json!({ "type": "pong" })))
                .await
                .expect("pong"),
            Some("next") => {
                let node = &message["payload"]["data"]["systemRecordAdded"]["node"];
                assert_eq!(node["tenantId"], Value::Null, "{message:#}");
                return node["recordId"].as_str().expect("recordId").to_owned();
            }
            Some("error") | Some("complete") => panic!("{message:#}"),
            _ => {}
        }
    }
    panic!("socket closed");
}

crate::cases!(
    system_wide_records_reach_exports_bundles_and_tails,
    platform_key_writes_system_wide_records,
    tenant_keys_never_write_system_wide,
    platform_keys_are_listed_rotated_and_revoked,
    platform_key_migration_goes_down_and_up,
);
