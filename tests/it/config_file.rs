//! Configuration as an operator writes it: a TOML file (`--config`) under the environment and the
//! command line, `logbook config` showing the effective values with their sources and secrets
//! masked, and a limit from the file enforced by a real `serve` process, which stops cleanly on
//! SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::logbook;
use crate::support::{fresh_database_url, run_context, Backend};

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
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
    let out = logbook(
        &url,
        &["keys", "create", "--tenant", "acme", "--role", "VIEWER"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).expect("UTF-8");
    let key = key.lines().last().expect("the key").trim().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let file = write_config(
        &format!("serve-{}.toml", backend.name()),
        &format!("bind = \"127.0.0.1:{port}\"\nmax-depth = 3\nshutdown-grace = 5\n"),
    );
    let mut server = Command::new(env!("CARGO_BIN_EXE_logbook"))
        .args(["--config", file.to_str().expect("path"), "serve"])
        .env("DATABASE_URL", &url)
        .env(
            "LOGBOOK_EXPORT_DIR",
            run_context().sqlite_dir.join("config-exports"),
        )
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start logbook serve");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "serve did not become ready on {base}");
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

    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let mut status = None;
    for _ in 0..100 {
        status = server.try_wait().expect("wait");
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(status) = status else {
        let _ = server.kill();
        panic!("serve did not stop within 10 s of SIGTERM");
    };
    assert!(status.success(), "serve exited with {status}");
}

crate::cases!(
    [sqlite] config_prints_effective_values_with_sources,
    serve_enforces_the_file_and_stops_on_sigterm
);
