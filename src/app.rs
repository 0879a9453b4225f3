//! The actix-web application: GraphQL over HTTP (POST and GET), GraphiQL, the served SDL, health
//! and readiness. `start` binds before it serves, so tests and benchmarks can use port 0.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{web, App, HttpResponse, HttpServer};
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::admission::{Admission, AdmissionLimits, SchemaIndex};
use crate::auth::KeyCache;
use crate::config::Config;
use crate::error::AppResult;
use crate::graphql::{build_schema, LogbookSchema};
use crate::pagination::CursorCodec;
use crate::redis_link::RedisLink;

/// What every resolver and handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub cursors: CursorCodec,
    pub keys: Arc<KeyCache>,
    pub redis: Option<Arc<RedisLink>>,
    /// Prefix of every Redis key and channel of this deployment: a random id stored in the
    /// database, so processes sharing a database share keys and other deployments (or test
    /// databases) on the same Redis never collide.
    pub namespace: Arc<str>,
    /// This process's fan-out point for subscription wake-ups (see `crate::events`).
    pub events: Arc<crate::events::Hub>,
    pub sql: Arc<crate::db::SqlStats>,
    pub requests: Arc<RequestStats>,
    /// Signs ledger checkpoints; the same key in every process sharing the database.
    pub ledger_key: crate::ledger::signing::LedgerKey,
    /// Group commit of this process's audit appends (see `crate::audit::group`).
    pub audit_appends: Arc<crate::audit::group::AppendQueue>,
}

/// Counters over GraphQL requests served by this process.
#[derive(Debug, Default)]
pub struct RequestStats {
    pub graphql: AtomicU64,
    pub graphql_with_errors: AtomicU64,
}

impl AppState {
    /// Connects, migrates and loads the shared secrets.
    pub async fn connect(config: Config) -> AppResult<Self> {
        let (db, sql) = crate::db::connect_counted(&config.database).await?;
        crate::db::migrate(&db).await?;
        let cursor_key = crate::db::shared_secret(&db, "cursor_hmac_key").await?;
        let deployment = crate::db::shared_secret(&db, "deployment_id").await?;
        let namespace: Arc<str> = format!("lb:{}", hex::encode(&deployment[..8])).into();
        let ledger_key = crate::ledger::signing::LedgerKey::from_config(&db, &config).await?;
        let redis = config
            .redis_url
            .as_deref()
            .map(RedisLink::open)
            .transpose()?
            .map(Arc::new);
        Ok(AppState {
            db,
            config: Arc::new(config),
            cursors: CursorCodec::new(&cursor_key),
            keys: Arc::default(),
            redis,
            namespace,
            events: Arc::default(),
            sql,
            requests: Arc::default(),
            ledger_key,
            audit_appends: Arc::default(),
        })
    }
}

/// What every handler shares: the state, the schema, its SDL and the admission checks.
pub struct Served {
    pub state: AppState,
    pub schema: LogbookSchema,
    pub sdl: String,
    pub admission: Admission,
}

/// A running server.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// This process's export worker (none when disabled); abort it to play a crashed worker.
    pub export_worker: Option<tokio::task::AbortHandle>,
}

/// Binds `bind` and starts serving in the background of the current tokio runtime.
pub fn start(state: AppState, bind: &str) -> std::io::Result<RunningServer> {
    let schema = build_schema(Some(state.clone()), &state.config.limits);
    let sdl = schema.sdl();
    let index = SchemaIndex::from_sdl(&sdl).map_err(|e| std::io::Error::other(e.message()))?;
    let admission = Admission::new(AdmissionLimits::from_limits(&state.config.limits), index);
    let served = web::Data::new(Served {
        state: state.clone(),
        schema,
        sdl,
        admission,
    });
    let workers = state.config.workers;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(served.clone())
            .route("/graphql", web::post().to(crate::graphql_http::handle))
            .configure(|cfg| crate::ws::routes(cfg, &served))
            .route("/graphql", web::get().to(crate::graphql_http::handle))
            .route("/graphql", web::route().to(method_not_allowed))
            .route("/graphiql", web::get().to(graphiql))
            .route("/schema.graphql", web::get().to(schema_sdl))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .configure(|cfg| crate::exports::http::routes(cfg, &served.state))
    })
    .disable_signals()
    .shutdown_timeout(5);
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = server.bind(bind)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("bound to no address"))?;
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    let export_worker = crate::exports::worker::spawn(state.clone());
    crate::idempotency::spawn_purge(state.db.clone());
    crate::ledger::sink::spawn(&state.db, &state.config.ledger_checkpoints);
    Ok(RunningServer {
        addr,
        handle,
        task,
        export_worker,
    })
}

fn error_body(message: &str, code: &str) -> serde_json::Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "GET, POST"))
        .json(error_body(
            "GraphQL is served over GET (queries) and POST",
            "BAD_USER_INPUT",
        ))
}

async fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(crate::graphiql::page())
}

async fn schema_sdl(served: web::Data<Served>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(served.sdl.clone())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when the database and (if configured) Redis answer.
async fn readyz(served: web::Data<Served>) -> HttpResponse {
    let state = &served.state;
    let database = match state.db.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("unavailable: {e}"),
    };
    let redis = match &state.redis {
        None => "not configured".to_owned(),
        Some(link) => match link.ping().await {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.message(),
        },
    };
    let ready = database == "ok" && (redis == "ok" || redis == "not configured");
    let body = json!({ "status": if ready { "ready" } else { "not ready" }, "database": database, "redis": redis });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus text format (version 0.0.4), this process's counters.
async fn metrics(served: web::Data<Served>) -> HttpResponse {
    let state = &served.state;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "logbook_graphql_requests_total",
        "GraphQL requests executed.",
        state.requests.graphql.load(Ordering::Relaxed).to_string(),
    );
    counter(
        "logbook_graphql_requests_with_errors_total",
        "GraphQL requests whose response carried errors.",
        state
            .requests
            .graphql_with_errors
            .load(Ordering::Relaxed)
            .to_string(),
    );
    counter(
        "logbook_sql_statements_total",
        "SQL statements sent.",
        state.sql.statements().to_string(),
    );
    counter(
        "logbook_sql_failed_total",
        "SQL statements that failed.",
        state.sql.failed.load(Ordering::Relaxed).to_string(),
    );
    counter(
        "logbook_sql_seconds_total",
        "Time spent in SQL statements.",
        format!(
            "{:.6}",
            state.sql.micros.load(Ordering::Relaxed) as f64 / 1e6
        ),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}
