//! Configuration as an operator writes it: a TOML file (`--config`) under the environment and the
//! command line, `logbook config` showing the effective values with their sources and secrets
//! masked, and a limit from the file enforced by a real `serve` process, which stops cleanly on
//! SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::logbook;
use crate::support::{fresh_database_url, run_context, Backend};

pub(crate) fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = run_context().sqlite_dir.join(name);
    std::fs::write(&path, text).expect("write the config file");
    path
}

async fn config_prints_effective_values_with_sources(_backend: Backend) {
    let file = write_config(
        "effective.toml",
        "max-depth = 9\nmax-fields = 1000\ncors-origin = [\"https://console.example.com\"]\n\
         redis-url = \"redis://:s3cret@cache.internal:6379\"\n",
    );
    let file = file.to_str().expect("UTF-8 path");
    let out = Command::new(env!("CARGO_BIN_EXE_logbook"))
        .args(["--config", file, "config", "--max-fields", "1500"])
        .env(
            "DATABASE_URL",
            "postgres://app:hunter2@db.internal:5432/logs",
        )
        .env("LOGBOOK_MAX_DEPTH", "11")
        .env("LOGBOOK_LEDGER_SIGNING_KEY", "00".repeat(32))
        .env_remove("REDIS_URL")
        .output()
        .expect("run logbook config");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        // The environment beats the file; the command line beats both.
        "max-depth = 11  # environment LOGBOOK_MAX_DEPTH",
        "max-fields = 1500  # command line",
        "cors-origin = [\"https://console.example.com\"]  # config file",
        "redis-url = \"redis://:****@cache.internal:6379\"  # config file",
        "database-url = \"postgres://app:****@db.internal:5432/logs\"  # environment DATABASE_URL",
        "ledger-signing-key = \"****\"  # environment LOGBOOK_LEDGER_SIGNING_KEY",
        "max-complexity = 5000  # default",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    for secret in ["hunter2", "s3cret", "0000000000"] {
        assert!(!text.contains(secret), "{secret} shown in\n{text}");
    }

    // Page sizes are checked together: the default cannot exceed the maximum.
    let out = logbook("sqlite::memory:", &["config", "--default-page-size", "200"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the default page size must be between 1 and the maximum (100), not 200"),
        "{stderr}"
    );

    let unknown = write_config("unknown.toml", "max-dpeth = 3\n");
    let out = logbook(
        "sqlite::memory:",
        &["--config", unknown.to_str().expect("path"), "config"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`max-dpeth` is not a setting"), "{stderr}");
}

async fn serve_enforces_the_file_and_stops_on_sigterm(backend: Backend) {
    let url = fresh_database_url(backend).await;
    let key = viewer_key(&url);
    let port = free_port();
    let file = write_config(
        &format!("serve-{}.toml", backend.name()),
        &format!("bind = \"127.0.0.1:{port}\"\nmax-depth = 3\nshutdown-grace = 5\n"),
    );
    let (mut server, base) = start_serve(&url, &file, port, Stdio::null(), &[]).await;
    let http = reqwest::Client::new();
    let ask = |query: &'static str| {
        http.post(format!("{base}/graphql"))
            .bearer_auth(&key)
            .json(&json!({ "query": query }))
            .send()
    };
    let shallow: Value = ask("{ viewer { role } }")
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(shallow["data"]["viewer"]["role"], "VIEWER", "{shallow:#}");
    let deep: Value = ask("{ llmRuns { nodes { trace { steps { nodes { id } } } } } }")
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        crate::support::error_code(&deep),
        "QUERY_TOO_DEEP",
        "{deep:#}"
    );
    assert!(deep.to_string().contains("the limit is 3"), "{deep:#}");

    let status = stop(&mut server).await;
    assert!(status.success(), "serve exited with {status}");
}

/// Starts `logbook --config FILE serve` on `port` over `url` and waits until it is ready.
pub(crate) async fn start_serve(
    url: &str,
    file: &std::path::Path,
    port: u16,
    stderr: Stdio,
    envs: &[(&str, &str)],
) -> (std::process::Child, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_logbook"))
        .args(["--config", file.to_str().expect("path"), "serve"])
        .envs(envs.iter().copied())
        .env("DATABASE_URL", url)
        .env(
            "LOGBOOK_EXPORT_DIR",
            run_context().sqlite_dir.join("config-exports"),
        )
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start logbook serve");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return (server, base);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    panic!("serve did not become ready on {base}");
}

/// SIGTERM, then the exit status (fails after 10 s).
pub(crate) async fn stop(server: &mut std::process::Child) -> std::process::ExitStatus {
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    for _ in 0..100 {
        if let Some(status) = server.try_wait().expect("wait") {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    panic!("serve did not stop within 10 s of SIGTERM");
}

/// A VIEWER key of `acme` made by `logbook keys create`, as an operator makes one.
pub(crate) fn viewer_key(url: &str) -> String {
    let out = logbook(
        url,
        &["keys", "create", "--tenant", "acme", "--role", "VIEWER"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    stdout.lines().last().expect("the key").trim().to_owned()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// POSTs a GraphQL `body` to `base` with a `traceparent` (and an `x-request-id`): the
/// `traceparent` the server answered, and the JSON body.
pub(crate) async fn post_traced(
    base: &str,
    key: &str,
    traceparent: &str,
    request_id: Option<&str>,
    body: Value,
) -> (String, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(key)
        .header("traceparent", traceparent);
    if let Some(id) = request_id {
        request = request.header("x-request-id", id);
    }
    let answer = request.json(&body).send().await.expect("POST");
    let echoed = answer.headers()["traceparent"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    (echoed, answer.json().await.expect("JSON"))
}

/// `LOGBOOK_LOG_FORMAT=json`: every line is JSON; migrations are one line; a request's lines
/// carry its request id and its caller's trace id; the caller's `traceparent` comes back.
async fn json_logs_carry_request_and_trace_ids(backend: Backend) {
    let url = fresh_database_url(backend).await;
    let key = viewer_key(&url);
    // Migrating an empty database logs one summary line.
    let fresh = crate::support::empty_database_url(backend).await;
    let migrate_log = Command::new(env!("CARGO_BIN_EXE_logbook"))
        .arg("migrate")
        .env("DATABASE_URL", &fresh)
        .env("LOGBOOK_LOG_FORMAT", "json")
        .env_remove("LOGBOOK_LOG")
        .output()
        .expect("migrate");
    let lines = String::from_utf8(migrate_log.stderr).expect("UTF-8");
    // The command's own report ("migrations applied") is plain text; the log lines are JSON.
    let lines: Vec<Value> = lines
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let migrated: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "database migrated")
        .collect();
    assert_eq!(migrated.len(), 1, "{lines:#?}");
    assert!(migrated[0]["fields"]["applied"]
        .as_u64()
        .is_some_and(|n| n > 10));
    assert!(
        !lines
            .iter()
            .any(|l| l.to_string().contains("Applying migration")),
        "{lines:#?}"
    );
    // Nor PostgreSQL's notices about the migrations' `IF [NOT] EXISTS` ("..., skipping").
    assert!(
        !lines.iter().any(|l| l.to_string().contains("skipping")),
        "{lines:#?}"
    );

    // A request's access line (debug), inside its span.
    let port = free_port();
    let file = write_config(
        &format!("json-{}.toml", backend.name()),
        &format!("bind = \"127.0.0.1:{port}\"\n"),
    );
    let log_path = run_context()
        .sqlite_dir
        .join(format!("serve-{}.log", backend.name()));
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let (mut server, base) = start_serve(
        &url,
        &file,
        port,
        Stdio::from(log_file),
        &[
            ("LOGBOOK_LOG_FORMAT", "json"),
            ("LOGBOOK_LOG", "info,sea_orm_migration=warn,logbook=debug"),
        ],
    )
    .await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (echoed, body) = post_traced(
        &base,
        &key,
        traceparent,
        Some("req-json-logs-1"),
        json!({ "query": "{ llmRuns { totalCount } }" }),
    )
    .await;
    assert!(
        echoed.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{echoed}"
    );
    assert_ne!(echoed, traceparent, "the server's own span id");
    assert_eq!(body["data"]["llmRuns"]["totalCount"], 0, "{body:#}");
    assert!(stop(&mut server).await.success());

    let text = std::fs::read_to_string(&log_path).expect("log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["fields"]["message"] == "graphql request")
        .unwrap_or_else(|| panic!("no access line in {text}"));
    assert_eq!(access["fields"]["outcome"], "ok", "{access:#}");
    assert_eq!(
        access["span"]["request_id"], "req-json-logs-1",
        "{access:#}"
    );
    assert_eq!(
        access["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{access:#}"
    );
}

crate::cases!(
    [sqlite] config_prints_effective_values_with_sources,
    serve_enforces_the_file_and_stops_on_sigterm,
    json_logs_carry_request_and_trace_ids
);
