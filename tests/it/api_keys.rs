//! Managed API keys (docs/api.md §2.1): the ADMIN's `apiKeys`, `createApiKey` and
//! `revokeApiKey`, expiry, last use, `logbook keys list|revoke|rotate`, revocation reaching
//! every server process within a second, and per-key rate limits.

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Timelike;
use logbook::auth::keys::{self, NewKey};
use logbook::auth::{Role, TenantId};
use logbook::config::Config;
use serde_json::{json, Value};

use crate::support::{error_code, Backend, TestApp};

const CREATE: &str = "mutation($role: Role!, $label: String, $expiresAt: DateTime, $limit: Int) {
  createApiKey(role: $role, label: $label, expiresAt: $expiresAt, rateLimitPerMinute: $limit) {
    key
    apiKey { id role label status createdAt expiresAt lastUsedAt revokedAt rateLimitPerMinute }
  }
}";

const REVOKE: &str = "mutation($id: ID!) {
  revokeApiKey(id: $id) { id status revokedAt }
}";

const LIST: &str = "query($filter: ApiKeyFilter) {
  apiKeys(filter: $filter) {
    totalCount
    nodes { id role label status lastUsedAt revokedAt rateLimitPerMinute }
  }
}";

/// Creates a key through `createApiKey`; returns (raw key, its `ApiKey`).
async fn create(app: &TestApp, admin: &str, role: &str, limit: Option<i64>) -> (String, Value) {
    let data = app
        .data(
            admin,
            CREATE,
            json!({ "role": role, "label": "bff", "limit": limit }),
        )
        .await;
    let created = &data["createApiKey"];
    (
        created["key"].as_str().expect("key").to_owned(),
        created["apiKey"].clone(),
    )
}

/// Whether `app` accepts `key` now (`viewer` answers), or refuses it as unauthenticated.
async fn accepts(app: &TestApp, key: &str) -> bool {
    let body = app.gql(Some(key), "{ viewer { role } }", json!({})).await;
    match body.get("errors") {
        None => true,
        Some(_) => {
            assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body:#}");
            false
        }
    }
}

/// Polls until `app` refuses `key`; fails the test if it still accepts it after `deadline`.
async fn refused_within(app: &TestApp, key: &str, deadline: Duration, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        if !accepts(app, key).await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "{what}: still accepted after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The CLI's configuration for the database (and Redis, when the server has it) of `app`.
fn cli_config(app: &TestApp) -> Config {
    Config::new(app.database_url(), app.state.config.redis_url.clone())
}

async fn admin_manages_its_tenants_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let other_admin = app.key("globex", Role::Admin).await;

    let expires = (chrono::Utc::now() + chrono::Duration::days(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let data = app
        .data(
            &admin,
            CREATE,
            json!({ "role": "VIEWER", "label": "console", "expiresAt": expires, "limit": 1000 }),
        )
        .await;
    let created = &data["createApiKey"];
    let raw = created["key"].as_str().expect("key").to_owned();
    let id = created["apiKey"]["id"].as_str().expect("id").to_owned();
    assert!(raw.starts_with("lbk_"));
    assert_eq!(created["apiKey"]["role"], "VIEWER");
    assert_eq!(created["apiKey"]["label"], "console");
    assert_eq!(created["apiKey"]["status"], "ACTIVE");
    assert_eq!(created["apiKey"]["expiresAt"], json!(expires));
    assert_eq!(created["apiKey"]["rateLimitPerMinute"], 1000);
    assert_eq!(created["apiKey"]["revokedAt"], Value::Null);
    assert!(accepts(&app, &raw).await);

    // Listed, newest first, never with the key or its digest.
    let list = app.data(&admin, LIST, json!({})).await;
    assert_eq!(list["apiKeys"]["totalCount"], 2, "{list:#}");
    assert_eq!(list["apiKeys"]["nodes"][0]["id"], json!(id));
    let text = list.to_string();
    assert!(!text.contains(&raw) && !text.contains(&logbook::auth::digest_key(&raw)));
    let viewers = app
        .data(&admin, LIST, json!({ "filter": { "role": ["VIEWER"] } }))
        .await;
    assert_eq!(viewers["apiKeys"]["totalCount"], 1);

    // Another tenant's ADMIN neither sees nor revokes it.
    let theirs = app.data(&other_admin, LIST, json!({})).await;
    assert_eq!(theirs["apiKeys"]["totalCount"], 1);
    let body = app
        .gql(Some(&other_admin), REVOKE, json!({ "id": id }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND", "{body:#}");
    assert!(accepts(&app, &raw).await);

    // Other roles are FORBIDDEN, for the list and both mutations.
    for role in [Role::Viewer, Role::Operator, Role::Ingest] {
        let key = app.key("acme", role).await;
        for (document, variables) in [
            (LIST, json!({})),
            (CREATE, json!({ "role": "ADMIN" })),
            (REVOKE, json!({ "id": id })),
        ] {
            let body = app.gql(Some(&key), document, variables).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{role:?}: {body:#}");
        }
    }
    assert!(accepts(&app, &raw).await);

    // Bad input.
    for (variables, field) in [
        (
            json!({ "role": "VIEWER", "limit": -1 }),
            "rateLimitPerMinute",
        ),
        (
            json!({ "role": "VIEWER", "expiresAt": "2020-01-01T00:00:00Z" }),
            "expiresAt",
        ),
        (
            json!({ "role": "VIEWER", "label": "x".repeat(129) }),
            "label",
        ),
    ] {
        let body = app.gql(Some(&admin), CREATE, variables).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body:#}");
    }

    // Revoked: refused at once here, listed only on request; revoking again changes nothing.
    let revoked = app.data(&admin, REVOKE, json!({ "id": id })).await;
    assert_eq!(revoked["revokeApiKey"]["status"], "REVOKED");
    let revoked_at = revoked["revokeApiKey"]["revokedAt"].clone();
    assert!(revoked_at.is_string());
    assert!(!accepts(&app, &raw).await);
    let again = app.data(&admin, REVOKE, json!({ "id": id })).await;
    assert_eq!(again["revokeApiKey"]["revokedAt"], revoked_at);
    let list = app.data(&admin, LIST, json!({})).await;
    assert_eq!(
        list["apiKeys"]["totalCount"], 4,
        "the admin and three role keys"
    );
    let all = app
        .data(
            &admin,
            LIST,
            json!({ "filter": { "includeRevoked": true } }),
        )
        .await;
    assert_eq!(all["apiKeys"]["totalCount"], 5);
    app.stop().await;
}

async fn expired_keys_are_unauthenticated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let _ = app.key("acme", Role::Admin).await;
    let make = |expires_at| NewKey {
        tenant: TenantId::trusted("acme"),
        role: Role::Viewer,
        actor_type: logbook::auth::ActorType::Human,
        label: None,
        expires_at: Some(expires_at),
        rate_limit_per_minute: None,
    };
    let now = chrono::Utc::now();
    let (expired, _) = keys::create(app.db(), &make(now - chrono::Duration::seconds(1)))
        .await
        .expect("key");
    assert!(!accepts(&app, &expired).await);

    // A cached key stops working when it expires, not when its cache entry ages out (30 s).
    let (expiring, _) = keys::create(app.db(), &make(now + chrono::Duration::seconds(2)))
        .await
        .expect("key");
    assert!(accepts(&app, &expiring).await, "cached while valid");
    refused_within(&app, &expiring, Duration::from_secs(4), "an expired key").await;
    app.stop().await;
}

async fn last_use_is_recorded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let (key, created) = create(&app, &admin, "VIEWER", None).await;
    assert_eq!(created["lastUsedAt"], Value::Null);
    assert!(accepts(&app, &key).await);
    // Written in the background, off the request's path.
    let start = Instant::now();
    loop {
        let list = app.data(&admin, LIST, json!({})).await;
        let node = list["apiKeys"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|node| node["id"] == created["id"])
            .cloned()
            .expect("listed");
        if node["lastUsedAt"].is_string() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "{node:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

/// Two server processes over one database (and, on PostgreSQL, one Redis), both caching the
/// keys: a revocation through the first (GraphQL) and through the CLI is refused by the second
/// within a second, while the cache would have kept the key for 30 s.
async fn revocation_reaches_every_process_within_a_second(backend: Backend) {
    // PostgreSQL with Redis: Redis pub/sub carries it; SQLite: the watchers' polling.
    two_processes_refuse_a_revoked_key(backend, true).await;
}

/// PostgreSQL without Redis: `NOTIFY` carries it.
async fn revocation_without_redis_goes_through_notify(backend: Backend) {
    two_processes_refuse_a_revoked_key(backend, false).await;
}

async fn two_processes_refuse_a_revoked_key(backend: Backend, redis: bool) {
    let first = TestApp::spawn_with(backend, |c| {
        if !redis {
            c.redis_url = None;
        }
    })
    .await;
    let second = TestApp::spawn_on(backend, first.database_url(), |c| {
        c.redis_url = first.state.config.redis_url.clone();
    })
    .await;
    let redis = first.state.config.redis_url.is_some();
    let admin = first.key("acme", Role::Admin).await;
    let (by_mutation, created) = create(&first, &admin, "VIEWER", None).await;
    let (by_cli, cli_key) = create(&first, &admin, "VIEWER", None).await;
    for app in [&first, &second] {
        for key in [&by_mutation, &by_cli] {
            assert!(accepts(app, key).await);
            assert!(accepts(app, key).await);
        }
    }
    if backend == Backend::Postgres {
        // The second process answers from its cache: a revocation nobody announces is not
        // seen at once (the periodic check runs every 10 s), so what follows measures the bus.
        let (silent, silent_key) = create(&first, &admin, "VIEWER", None).await;
        assert!(accepts(&second, &silent).await);
        first
            .raw(&format!(
                "UPDATE api_keys SET revoked_at = now() WHERE id = '{}'",
                silent_key["id"].as_str().expect("id")
            ))
            .await
            .expect("revoke silently");
        assert!(accepts(&second, &silent).await, "the key is cached");
    }

    first
        .data(&admin, REVOKE, json!({ "id": created["id"] }))
        .await;
    let took = refused_within(
        &second,
        &by_mutation,
        Duration::from_secs(1),
        "revoked by revokeApiKey on the first process",
    )
    .await;
    eprintln!(
        "{} (redis: {redis}): revokeApiKey refused by the second process after {took:?}",
        backend.name()
    );

    let id = cli_key["id"].as_str().expect("id");
    let revoked = logbook::auth::cli::revoke(&cli_config(&first), id)
        .await
        .expect("keys revoke");
    assert!(revoked.revoked_at.is_some());
    for (app, which) in [(&second, "second"), (&first, "first")] {
        let took = refused_within(
            app,
            &by_cli,
            Duration::from_secs(1),
            &format!("revoked by the CLI, on the {which} process"),
        )
        .await;
        eprintln!(
            "{} (redis: {redis}): keys revoke refused by the {which} process after {took:?}",
            backend.name()
        );
    }
    second.stop().await;
    first.stop().await;
}

/// A revoked key's open subscriptions end too, on every process: the socket closes with 4403.
async fn revocation_closes_open_subscriptions(backend: Backend) {
    use crate::subscriptions::{Ws, RUNS};
    let first = TestApp::spawn(backend).await;
    let second = TestApp::spawn_on(backend, first.database_url(), |c| {
        c.redis_url = first.state.config.redis_url.clone();
    })
    .await;
    let admin = first.key("acme", Role::Admin).await;
    let (doomed, created) = create(&first, &admin, "VIEWER", None).await;
    let (kept, _) = create(&first, &admin, "VIEWER", None).await;
    let mut revoked_socket = Ws::with_key(&second, &doomed).await;
    revoked_socket.subscribe("1", RUNS, json!({})).await;
    let mut other_socket = Ws::with_key(&second, &kept).await;
    other_socket.subscribe("1", RUNS, json!({})).await;
    revoked_socket.sync().await;

    let start = Instant::now();
    first
        .data(&admin, REVOKE, json!({ "id": created["id"] }))
        .await;
    let code = tokio::time::timeout(Duration::from_secs(5), revoked_socket.close_code())
        .await
        .expect("the revoked key's socket closes within 5 s");
    assert_eq!(code, 4403, "closed as Forbidden");
    eprintln!(
        "{}: a revoked key's subscription socket closed after {:?}",
        backend.name(),
        start.elapsed()
    );
    // Another key's subscription on the same process runs on.
    other_socket.sync().await;
    other_socket.close().await;
    second.stop().await;
    first.stop().await;
}

async fn rotate_replaces_a_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let (old, created) = create(&app, &admin, "INGEST", Some(5000)).await;
    assert!(accepts(&app, &old).await);
    let id = created["id"].as_str().expect("id");
    let config = cli_config(&app);
    let (new, replacement) = logbook::auth::cli::rotate(&config, id)
        .await
        .expect("keys rotate");
    assert_ne!(new, old);
    assert_eq!(replacement.role, Role::Ingest);
    assert_eq!(replacement.label.as_deref(), Some("bff"));
    assert_eq!(replacement.rate_limit_per_minute, Some(5000));
    assert!(accepts(&app, &new).await);
    refused_within(&app, &old, Duration::from_secs(1), "the rotated key").await;
    // A revoked key is not rotated again.
    let err = logbook::auth::cli::rotate(&config, id)
        .await
        .expect_err("rotating a revoked key");
    assert!(err.contains("revoked"), "{err}");
    let listed = logbook::auth::cli::list(&config, Some("acme"), true)
        .await
        .expect("keys list");
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|k| k.id == id && k.revoked_at.is_some()));
    app.stop().await;
}

/// Runs the binary against `app`'s database, and its Redis when it has one: the CLI reaches
/// the servers' revocation bus only with their `REDIS_URL`.
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

fn last_line(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("a last line")
        .trim()
        .to_owned()
}

/// The binary as a user runs it: create with a rate limit and an expiry, list, rotate, revoke.
async fn keys_commands(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = last_line(&logbook(
        &app,
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--role",
            "VIEWER",
            "--label",
            "bff",
            "--rate-limit",
            "7000",
            "--expires-at",
            "2100-01-01T00:00:00Z",
        ],
    ));
    assert!(key.starts_with("lbk_"));
    let out = logbook(&app, &["keys", "list", "--tenant", "acme"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success());
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table.contains("7000") && table.contains("2100-01-01T00:00:00Z"),
        "{table}"
    );
    assert!(!table.contains(&key) && !table.contains(&logbook::auth::digest_key(&key)));
    let id = table
        .lines()
        .nth(1)
        .expect("a row")
        .split_whitespace()
        .next()
        .expect("id");

    let new = last_line(&logbook(&app, &["keys", "rotate", "--id", id]));
    assert!(new.starts_with("lbk_") && new != key);
    let data = app.data(&new, "{ viewer { role } }", json!({})).await;
    assert_eq!(data["viewer"]["role"], "VIEWER");

    let out = logbook(&app, &["keys", "list", "--tenant", "acme", "--all"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(table.lines().count(), 3, "{table}");
    let new_id = table
        .lines()
        .find(|line| line.contains("active"))
        .and_then(|line| line.split_whitespace().next())
        .expect("the new key")
        .to_owned();
    last_line(&logbook(&app, &["keys", "revoke", "--id", &new_id]));
    refused_within(&app, &new, Duration::from_secs(1), "revoked by the binary").await;

    let missing = logbook(&app, &["keys", "revoke", "--id", "no-such-key"]);
    assert!(!missing.status.success());
    let reason = String::from_utf8_lossy(&missing.stderr).into_owned();
    assert_eq!(reason.lines().count(), 1, "{reason}");
    assert!(reason.starts_with("logbook: key no-such-key"), "{reason}");
    app.stop().await;
}

/// POSTs `{ viewer { role } }` with `key`; returns the `RateLimit-Limit` and
/// `RateLimit-Remaining` headers and the body.
async fn charged(app: &TestApp, key: &str) -> (Option<String>, Option<u64>, Value) {
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(key)
        .json(&json!({ "query": "{ viewer { role } }" }))
        .send()
        .await
        .expect("POST /graphql");
    let limit = response
        .headers()
        .get("ratelimit-limit")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let remaining = response
        .headers()
        .get("ratelimit-remaining")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (limit, remaining, response.json().await.expect("JSON"))
}

async fn keys_have_their_own_rate_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.key("acme", Role::Admin).await;
    let (limited, _) = create(&app, &admin, "VIEWER", Some(12)).await;
    let (default, _) = create(&app, &admin, "VIEWER", None).await;
    // Lifting or raising the server's limit is the operator's (the CLI's), not a tenant's.
    for over in [0, 600_001] {
        let body = app
            .gql(
                Some(&admin),
                CREATE,
                json!({ "role": "VIEWER", "limit": over }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{over}: {body:#}");
    }
    let unlimited = logbook::auth::keys::create(
        app.db(),
        &logbook::auth::keys::NewKey {
            tenant: logbook::auth::TenantId::trusted("acme"),
            role: Role::Viewer,
            actor_type: logbook::auth::ActorType::Human,
            label: None,
            expires_at: None,
            rate_limit_per_minute: Some(0),
        },
    )
    .await
    .expect("an operator's unlimited key")
    .0;
    // The windows are UTC minutes: start early in one so the test stays inside it.
    let second = chrono::Utc::now().second();
    if second >= 45 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - second))).await;
    }

    let mut admitted = 0;
    let mut cost = None;
    let mut refused = false;
    for _ in 0..20 {
        let (limit, remaining, body) = charged(&app, &limited).await;
        assert_eq!(limit.as_deref(), Some("12"), "{body:#}");
        if body.get("errors").is_some() {
            assert_eq!(error_code(&body), "RATE_LIMITED", "{body:#}");
            refused = true;
            break;
        }
        cost.get_or_insert(12 - remaining.expect("RateLimit-Remaining"));
        admitted += 1;
    }
    assert!(refused, "the limited key is refused");
    // One process: the key's 12 points admit exactly as many requests as they pay for.
    let cost = cost.expect("a request was admitted");
    assert_eq!(admitted, 12 / cost, "each request costs {cost}");

    for _ in 0..20 {
        let (limit, _, body) = charged(&app, &default).await;
        assert!(body.get("errors").is_none(), "{body:#}");
        assert_eq!(limit.as_deref(), Some("600000"));
    }
    let (limit, _, body) = charged(&app, &unlimited).await;
    assert!(body.get("errors").is_none(), "{body:#}");
    assert_eq!(limit, None, "an unlimited key is not charged");
    app.stop().await;
}

crate::cases!(
    admin_manages_its_tenants_keys,
    expired_keys_are_unauthenticated,
    last_use_is_recorded,
    revocation_reaches_every_process_within_a_second,
    [postgres] revocation_without_redis_goes_through_notify,
    revocation_closes_open_subscriptions,
    rotate_replaces_a_key,
    keys_commands,
    keys_have_their_own_rate_limit,
);
