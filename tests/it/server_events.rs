//! The server's own system records (docs/domain.md §3.3), from `logbook serve` as an operator
//! runs it: MIGRATION (the migrations it applied) and STARTUP once it listens, SHUTDOWN on
//! SIGTERM, all system-wide and seen by a tenant; each process its own; a killed process leaves
//! no SHUTDOWN and does not stop the next start; a failing write never stops the server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use migration::{Migrator, MigratorTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, Database, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{json, Value};

use crate::support::{empty_database_url, fresh_database_url, Backend};

/// A `logbook serve` child process and what it printed on stderr.
struct Serving {
    child: Child,
    base: String,
    stderr: Arc<Mutex<Vec<String>>>,
    export_dir: std::path::PathBuf,
}

impl Serving {
    /// Starts `logbook serve` on port 0 over `url` and waits until it listens.
    fn start(url: &str) -> Serving {
        let export_dir =
            std::env::temp_dir().join(format!("lbserve-{}", uuid::Uuid::new_v4().simple()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_logbook"))
            // A short grace: a test's idle keep-alive connection must not hold the stop.
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--shutdown-grace",
                "5",
                "--export-dir",
            ])
            .arg(&export_dir)
            .env("DATABASE_URL", url)
            .env_remove("REDIS_URL")
            .env_remove("LOGBOOK_LOG_FORMAT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn logbook serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let kept = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(rest) = line.split("logbook serving http://").nth(1) {
                    let addr = rest.split('/').next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
                kept.lock().expect("lock").push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "logbook serve did not start:\n{}",
                    stderr.lock().expect("lock").join("\n")
                )
            });
        Serving {
            child,
            base: format!("http://{addr}"),
            stderr,
            export_dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited with success.
    fn stop(mut self) -> bool {
        self.signal("-TERM");
        self.wait()
    }

    /// SIGKILL: a crash.
    fn kill(mut self) {
        self.signal("-KILL");
        self.wait();
    }

    fn wait(&mut self) -> bool {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let _ = std::fs::remove_dir_all(&self.export_dir);
                return status.success();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "logbook serve did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn printed(&self, text: &str) -> bool {
        self.stderr
            .lock()
            .expect("lock")
            .iter()
            .any(|line| line.contains(text))
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The system-wide rows, oldest first.
async fn system_wide(url: &str) -> Vec<entity::system_records::Model> {
    use entity::system_records::{Column, Entity};
    let db = Database::connect(url).await.expect("connect");
    let rows = Entity::find()
        .filter(Column::TenantId.is_null())
        .order_by_asc(Column::CreatedAt)
        .all(&db)
        .await
        .expect("read");
    let _ = db.close().await;
    rows
}

/// Waits until a system-wide `event_type` record of the process `pid` exists; returns it. On a
/// timeout the failure shows what the process printed (`printed`), which says why a write failed.
async fn record_of(
    url: &str,
    event_type: &str,
    pid: u32,
    printed: &Mutex<Vec<String>>,
) -> entity::system_records::Model {
    let start = Instant::now();
    loop {
        let found = system_wide(url).await.into_iter().find(|r| {
            r.event_type == event_type
                && r.details.as_ref().and_then(|d| d["pid"].as_u64()) == Some(u64::from(pid))
        });
        if let Some(found) = found {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no {event_type} record of process {pid}: {:#?}\nthe process printed:\n{}",
            system_wide(url).await,
            printed.lock().expect("lock").join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn instance(record: &entity::system_records::Model) -> String {
    record.details.as_ref().expect("details")["instance"]
        .as_str()
        .expect("instance")
        .to_owned()
}

fn count(rows: &[entity::system_records::Model], event_type: &str) -> usize {
    rows.iter().filter(|r| r.event_type == event_type).count()
}

/// A VIEWER key of tenant `acme`, made with the CLI.
fn viewer_key(url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_logbook"))
        .args(["keys", "create", "--tenant", "acme", "--role", "VIEWER"])
        .env("DATABASE_URL", url)
        .env("LOGBOOK_LOG", "off")
        .env_remove("REDIS_URL")
        .output()
        .expect("keys create");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("key")
        .trim()
        .to_owned()
}

async fn serve_records_its_start_migrations_and_stop(backend: Backend) {
    let url = empty_database_url(backend).await;
    let first = Serving::start(&url);
    let migration = record_of(&url, "MIGRATION", first.pid(), &first.stderr).await;
    let startup = record_of(&url, "STARTUP", first.pid(), &first.stderr).await;
    assert_eq!(migration.tenant_id, None);
    assert_eq!(migration.component, "migration");
    let every: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(
        migration.details.as_ref().expect("details")["migrations"],
        json!(every),
        "an empty database got every migration"
    );
    assert_eq!(startup.component, "api");
    assert_eq!(startup.caused_by.as_deref(), Some("SYSTEM"));
    let details = startup.details.clone().expect("details");
    assert_eq!(details["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        details["backend"],
        match backend {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
        }
    );
    assert_eq!(instance(&migration), instance(&startup));
    assert!(migration.created_at <= startup.created_at);

    // A tenant sees them, as system-wide records.
    let key = viewer_key(&url);
    let body: Value = reqwest::Client::new()
        .post(format!("{}/graphql", first.base))
        .bearer_auth(&key)
        .json(&json!({ "query": "{ systemRecords(filter: {scope: SYSTEM_WIDE_ONLY}) { nodes { eventType tenantId isSystemWide } } }" }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let seen: Vec<&str> = body["data"]["systemRecords"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body:#}"))
        .iter()
        .map(|n| n["eventType"].as_str().unwrap_or_default())
        .collect();
    assert!(
        seen.contains(&"STARTUP") && seen.contains(&"MIGRATION"),
        "{body:#}"
    );

    let (pid, printed) = (first.pid(), first.stderr.clone());
    assert!(first.stop(), "a graceful stop exits 0");
    let shutdown = record_of(&url, "SHUTDOWN", pid, &printed).await;
    assert_eq!(instance(&shutdown), instance(&startup));
    assert!(shutdown.created_at >= startup.created_at);

    // A second process: its own STARTUP, no MIGRATION (nothing left to apply). Killed, it
    // leaves no SHUTDOWN, and the next start is not hindered.
    let second = Serving::start(&url);
    let second_pid = second.pid();
    let second_start = record_of(&url, "STARTUP", second_pid, &second.stderr).await;
    assert_ne!(instance(&second_start), instance(&startup));
    second.kill();
    let third = Serving::start(&url);
    let third_pid = third.pid();
    let printed = third.stderr.clone();
    record_of(&url, "STARTUP", third_pid, &printed).await;
    assert!(third.stop());
    record_of(&url, "SHUTDOWN", third_pid, &printed).await;
    let rows = system_wide(&url).await;
    assert_eq!(count(&rows, "MIGRATION"), 1, "{rows:#?}");
    assert_eq!(count(&rows, "STARTUP"), 3, "{rows:#?}");
    assert_eq!(
        count(&rows, "SHUTDOWN"),
        2,
        "the killed process wrote none: {rows:#?}"
    );
}

/// With every system-record insert refused, `serve` still starts, serves and stops cleanly,
/// and says why its records are missing.
async fn failing_writes_do_not_stop_the_server(backend: Backend) {
    let url = fresh_database_url(backend).await;
    let migrated = Command::new(env!("CARGO_BIN_EXE_logbook"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("LOGBOOK_LOG", "off")
        .output()
        .expect("migrate");
    assert!(migrated.status.success());
    let db = Database::connect(&url).await.expect("connect");
    let refuse: &[&str] = match backend {
        Backend::Postgres => &[
            "CREATE FUNCTION refuse_system_records() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$",
            "CREATE TRIGGER refuse_system_records BEFORE INSERT ON system_records FOR EACH ROW EXECUTE FUNCTION refuse_system_records()",
        ],
        Backend::Sqlite => &[
            "CREATE TRIGGER refuse_system_records BEFORE INSERT ON system_records BEGIN SELECT RAISE(ABORT, 'refused for the test'); END",
        ],
    };
    for sql in refuse {
        db.execute_unprepared(sql)
            .await
            .expect("install the trigger");
    }
    let _ = db.close().await;

    let serving = Serving::start(&url);
    let key = viewer_key(&url);
    let body: Value = reqwest::Client::new()
        .post(format!("{}/graphql", serving.base))
        .bearer_auth(&key)
        .json(&json!({ "query": "{ viewer { tenantId } }" }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["data"]["viewer"]["tenantId"], "acme", "{body:#}");
    let start = Instant::now();
    while !serving.printed("recording the server's own system record failed") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the failed STARTUP write is logged: {:#?}",
            serving.stderr.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        serving.stop(),
        "stops cleanly though SHUTDOWN cannot be written"
    );
    assert!(system_wide(&url).await.is_empty());
}

crate::cases!(
    serve_records_its_start_migrations_and_stop,
    failing_writes_do_not_stop_the_server,
);
