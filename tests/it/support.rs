//! The test-app builder. Each test gets a fresh database — on PostgreSQL a database cloned from a
//! migrated template made once per run, on SQLite a new file — and a server on port 0.
//! Everything this run creates is named with the run id and dropped at the end.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use logbook::auth::{Role, TenantId};
use logbook::config::Config;
use logbook::server::{self, RunningServer, Services};
use logbook::state::AppState;
use logbook::tenants::store as tenant_store;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

pub type TestFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A test body, run once per backend it applies to; on the others it is reported ignored.
pub struct TestCase {
    pub name: &'static str,
    pub run: fn(Backend) -> TestFuture,
    pub backends: &'static [Backend],
    /// Needs Chromium and chromedriver (`RunContext::browser`).
    pub browser: bool,
    /// Needs Node.js and npm (`RunContext::node`).
    pub node: bool,
}

/// `cases!(a, b, [postgres] c, [browser] d)`: every case runs on both backends unless prefixed
/// with the one it applies to (`[postgres]` or `[sqlite]`); on the other it is listed as
/// ignored. A `[browser]` case drives Chromium and a `[node]` case runs Node.js; each runs once,
/// on SQLite (what it tests does not depend on the database).
#[macro_export]
macro_rules! cases {
    ($($([$only:ident])? $name:ident),* $(,)?) => {
        pub fn cases() -> Vec<$crate::support::TestCase> {
            vec![$($crate::support::TestCase {
                name: stringify!($name),
                run: |b| Box::pin($name(b)),
                backends: $crate::cases!(@backends $($only)?),
                browser: $crate::cases!(@browser $($only)?),
                node: $crate::cases!(@node $($only)?),
            }),*]
        }
    };
    (@backends) => { &[$crate::support::Backend::Postgres, $crate::support::Backend::Sqlite] };
    (@backends postgres) => { &[$crate::support::Backend::Postgres] };
    (@backends sqlite) => { &[$crate::support::Backend::Sqlite] };
    (@backends browser) => { &[$crate::support::Backend::Sqlite] };
    (@backends node) => { &[$crate::support::Backend::Sqlite] };
    (@browser browser) => { true };
    (@browser $other:ident) => { false };
    (@browser) => { false };
    (@node node) => { true };
    (@node $other:ident) => { false };
    (@node) => { false };
}

/// Debian's Chromium and its chromedriver (`apt-get install chromium chromium-driver`), or the
/// binaries `LOGBOOK_CHROMIUM` and `LOGBOOK_CHROMEDRIVER` name.
#[derive(Clone, Debug)]
pub struct BrowserTools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

impl BrowserTools {
    fn find() -> Result<BrowserTools, String> {
        let find = |variable: &str, name: &str| -> Result<PathBuf, String> {
            if let Ok(path) = std::env::var(variable) {
                return Ok(PathBuf::from(path));
            }
            on_path(name).ok_or_else(|| format!("{name} (not on PATH; set {variable})"))
        };
        Ok(BrowserTools {
            chromium: find("LOGBOOK_CHROMIUM", "chromium")?,
            chromedriver: find("LOGBOOK_CHROMEDRIVER", "chromedriver")?,
        })
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

pub fn admin_url() -> String {
    std::env::var("LOGBOOK_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into())
}

pub fn redis_url() -> String {
    std::env::var("LOGBOOK_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Replaces the database name in a PostgreSQL URL.
pub fn pg_url_for(database: &str) -> String {
    let admin = admin_url();
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(p, _)| p);
    match query {
        Some(q) => format!("{prefix}/{database}?{q}"),
        None => format!("{prefix}/{database}"),
    }
}

pub struct RunContext {
    pub run_id: String,
    pub template: Option<String>,
    pub sqlite_dir: PathBuf,
    pub redis: bool,
    pub browser: Option<BrowserTools>,
    /// The `node` binary (with `npm` beside it on PATH), for the federation composition test.
    pub node: Option<PathBuf>,
    databases: Mutex<Vec<String>>,
    counter: AtomicUsize,
}

static RUN: OnceLock<RunContext> = OnceLock::new();

pub fn run_context() -> &'static RunContext {
    RUN.get()
        .expect("the harness sets up the run context first")
}

async fn admin_execute(sql: &str) -> Result<(), String> {
    let db = Database::connect(admin_url())
        .await
        .map_err(|e| e.to_string())?;
    let result = db
        .execute_unprepared(sql)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    let _ = db.close().await;
    result
}

/// Probes the backends, builds the PostgreSQL template. Returns what is unreachable.
pub fn setup(runtime: &tokio::runtime::Runtime) -> Vec<String> {
    let run_id = format!(
        "lbt_{}_{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let sqlite_dir = std::env::temp_dir().join(&run_id);
    std::fs::create_dir_all(&sqlite_dir).expect("temp dir");
    let mut missing = Vec::new();

    let template = runtime.block_on(async {
        let name = format!("{run_id}_tpl");
        if let Err(e) = admin_execute(&format!("CREATE DATABASE {name}")).await {
            return Err(format!("PostgreSQL at {} ({e})", admin_url()));
        }
        let db = Database::connect(pg_url_for(&name))
            .await
            .map_err(|e| e.to_string())?;
        logbook::db::migrate(&db)
            .await
            .map_err(|e| format!("migrating the template: {}", e.message()))?;
        db.close().await.map_err(|e| e.to_string())?;
        Ok(name)
    });
    let template = match template {
        Ok(name) => Some(name),
        Err(e) => {
            missing.push(e);
            None
        }
    };
    let redis = runtime.block_on(async {
        let client = redis::Client::open(redis_url()).map_err(|e| e.to_string())?;
        let mut conn = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    });
    let redis = match redis {
        Ok(_) => true,
        Err(e) => {
            missing.push(format!("Redis at {} ({e})", redis_url()));
            false
        }
    };
    let browser = match BrowserTools::find() {
        Ok(tools) => Some(tools),
        Err(e) => {
            missing.push(format!(
                "Chromium for the GraphiQL browser test: {e}; \
                 apt-get install chromium chromium-driver"
            ));
            None
        }
    };
    let node = match on_path("node").zip(on_path("npm")) {
        Some((node, _)) => Some(node),
        None => {
            missing.push(
                "Node.js and npm for the federation composition test (apt-get install nodejs \
                 npm)"
                    .to_owned(),
            );
            None
        }
    };
    let databases = Mutex::new(template.iter().cloned().collect());
    let _ = RUN.set(RunContext {
        run_id,
        template,
        sqlite_dir,
        redis,
        browser,
        node,
        databases,
        counter: AtomicUsize::new(0),
    });
    missing
}

/// Drops every database and file this run created.
pub fn teardown(runtime: &tokio::runtime::Runtime) {
    let ctx = run_context();
    let mut names = ctx.databases.lock().map(|d| d.clone()).unwrap_or_default();
    // The template last: clones must go first.
    names.reverse();
    runtime.block_on(async {
        for name in names {
            if let Err(e) =
                admin_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
            {
                eprintln!("warning: could not drop test database {name}: {e}");
            }
        }
    });
    let _ = std::fs::remove_dir_all(&ctx.sqlite_dir);
}

/// A fresh database for one test.
pub async fn fresh_database_url(backend: Backend) -> String {
    let ctx = run_context();
    let n = ctx.counter.fetch_add(1, Ordering::SeqCst);
    match backend {
        Backend::Postgres => {
            let template = ctx
                .template
                .as_ref()
                .expect("postgres tests run only with a template");
            let name = format!("{}_{n}", ctx.run_id);
            ctx.databases.lock().expect("lock").push(name.clone());
            // CREATE DATABASE … TEMPLATE fails while anyone else copies the same template.
            static CLONE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
            let _guard = CLONE_LOCK.lock().await;
            admin_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .await
                .expect("create test database");
            pg_url_for(&name)
        }
        Backend::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            ctx.sqlite_dir.join(format!("t{n}.db")).display()
        ),
    }
}

/// An empty (unmigrated) database for one test: on PostgreSQL a new database (dropped at the
/// end of the run), on SQLite a new file.
pub async fn empty_database_url(backend: Backend) -> String {
    match backend {
        Backend::Postgres => {
            let ctx = run_context();
            let n = ctx.counter.fetch_add(1, Ordering::SeqCst);
            let name = format!("{}_e{n}", ctx.run_id);
            ctx.databases.lock().expect("lock").push(name.clone());
            admin_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create empty test database");
            pg_url_for(&name)
        }
        Backend::Sqlite => fresh_database_url(backend).await,
    }
}

/// A server on port 0 over a fresh database.
pub struct TestApp {
    pub state: AppState,
    /// The state plus the domains' process components (ledger key, audit append queue).
    pub services: Services,
    pub server: RunningServer,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let url = fresh_database_url(backend).await;
        Self::spawn_on(backend, url, adjust).await
    }

    /// A server whose only SQL is the requests' own: no rate-limit counter writes (SQLite keeps
    /// them in the database) and no export worker polling, for tests that count statements.
    pub async fn spawn_for_counting(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |config| {
            config.limits.rate_limit_per_minute = 0;
            config.exports.worker = false;
        })
        .await
    }

    /// Another server over an existing database: with `self.database_url()` it plays a second
    /// server process sharing the first one's database (and, on PostgreSQL, its Redis).
    /// PostgreSQL cases run with Redis configured (production shape); SQLite cases without it
    /// (the embedded default).
    pub async fn spawn_on(
        backend: Backend,
        url: String,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let redis = matches!(backend, Backend::Postgres).then(redis_url);
        let mut config = Config::new(url, redis);
        config.workers = 2;
        config.database.max_connections = 8;
        adjust(&mut config);
        let services = Services::connect(config)
            .await
            .expect("connect and migrate");
        let server = server::start(&services, "127.0.0.1:0").expect("bind port 0");
        let base = format!("http://{}", server.addr);
        TestApp {
            state: services.state.clone(),
            services,
            server,
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.state.db
    }

    pub fn database_url(&self) -> String {
        self.state.config.database.url.clone()
    }

    /// Creates the tenant (if needed) and a key with `role` for it.
    pub async fn key(&self, tenant: &str, role: Role) -> String {
        tenant_store::ensure_tenant(self.db(), tenant, tenant, "GOVERN")
            .await
            .expect("tenant");
        logbook::auth::keys::create_key(self.db(), &TenantId::trusted(tenant), role, Some("test"))
            .await
            .expect("key")
    }

    /// POSTs a GraphQL document; returns the whole JSON response.
    pub async fn gql(&self, key: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("POST /graphql");
        assert_eq!(
            response.status(),
            200,
            "application/json responses are always 200"
        );
        response.json().await.expect("JSON body")
    }

    /// GETs `path` and returns the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {path} body: {e}"))
    }

    /// Like `gql`, but fails the test on any error and returns `data`.
    pub async fn data(&self, key: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(Some(key), query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    pub async fn stop(self) {
        self.server.handle.stop(false).await;
        let _ = self.state.db.close().await;
    }

    pub async fn raw(&self, sql: &str) -> Result<u64, sea_orm::DbErr> {
        let backend = self.db().get_database_backend();
        self.db()
            .execute_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .map(|r| r.rows_affected())
    }
}

/// A fake HTTP endpoint on 127.0.0.1 port 0, on the current runtime (like `app::start`), whose
/// routes `configure` adds: a checkpoint sink, an OTLP collector.
pub fn start_fake_endpoint<F>(configure: F) -> (std::net::SocketAddr, actix_web::dev::ServerHandle)
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .expect("bind");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (addr, handle)
}

/// The `extensions.code` of the first error.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {body:#}"))
}

/// Builds `n` run records for `tenant`, `created_at` descending from `newest` one second apart,
/// with every third pair sharing a timestamp (so the id tiebreak is exercised).
pub fn make_runs(
    tenant: &str,
    prefix: &str,
    n: usize,
    newest: chrono::DateTime<chrono::Utc>,
) -> Vec<logbook::runs::LlmRunSnapshot> {
    use logbook::runs::{ExecutionStatus, LlmRunSnapshot, RunSource};
    (0..n)
        .map(|i| {
            let created_at = newest - chrono::Duration::seconds((i - i % 3 / 2) as i64);
            let status = ExecutionStatus::ALL[i % 4];
            LlmRunSnapshot {
                id: format!("{prefix}-rec-{i:05}"),
                tenant_id: tenant.to_owned(),
                run_id: format!("{prefix}-run-{i:05}"),
                trace_id: Some(format!("trace_{prefix}-run-{i:05}")),
                provider: if i % 2 == 0 {
                    "anthropic".into()
                } else {
                    "openai".into()
                },
                model: if i % 2 == 0 {
                    "claude-sonnet".into()
                } else {
                    "gpt-4o".into()
                },
                prompt_hash: None,
                response_hash: None,
                input_tokens: 100 + i as i32,
                output_tokens: 50,
                cost_cents: 3,
                execution_status: status,
                started_at: created_at - chrono::Duration::seconds(5),
                completed_at: Some(created_at),
                source: RunSource::Worker,
                is_synthetic: i % 10 == 0,
                synthetic_scenario_id: (i % 10 == 0).then(|| "scenario-1".into()),
                created_at,
                total_tokens: 150 + i as i64,
                duration_ms: Some(5_000),
            }
        })
        .collect()
}

pub async fn insert_runs(db: &DatabaseConnection, runs: &[logbook::runs::LlmRunSnapshot]) {
    for chunk in runs.chunks(200) {
        logbook::runs::store::insert_many(db, chunk)
            .await
            .expect("insert runs");
    }
}

pub fn fixed_time() -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// The fewest SQL statements `key`'s request of `document` issued over three tries (other work
/// of the server, like a revocation poll, can add one to a try).
pub async fn fewest_statements(app: &TestApp, key: &str, document: &str, variables: Value) -> u64 {
    let mut fewest = u64::MAX;
    for _ in 0..3 {
        let before = app.state.sql.statements();
        app.data(key, document, variables.clone()).await;
        fewest = fewest.min(app.state.sql.statements() - before);
    }
    fewest
}
