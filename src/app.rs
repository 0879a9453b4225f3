//! The actix-web application: GraphQL over HTTP (POST and GET), GraphiQL, the served SDL, health
//! and readiness. `start` binds before it serves, so tests and benchmarks can use port 0.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use async_graphql::parser::types::OperationType;
use futures_util::StreamExt;
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::auth::{KeyCache, RequestAuth};
use crate::config::Config;
use crate::error::{AppResult, REQUEST_ID};
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
        let ledger_key =
            crate::ledger::signing::LedgerKey::load(&db, config.ledger_signing_key.as_deref())
                .await?;
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

struct Served {
    state: AppState,
    schema: LogbookSchema,
    sdl: String,
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
    let served = web::Data::new(Served {
        state: state.clone(),
        schema,
        sdl,
    });
    let workers = state.config.workers;
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(served.clone())
            .route("/graphql", web::post().to(graphql))
            .configure(|cfg| crate::ws::routes(cfg, &served.state, &served.schema))
            .route("/graphql", web::get().to(graphql))
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

/// Whether the client asked for the graphql-over-http media type (which carries 4xx statuses
/// for request errors) rather than legacy `application/json` (always 200).
fn wants_graphql_response(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/graphql-response+json"))
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, HttpResponse> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            HttpResponse::BadRequest().json(error_body(
                &format!("could not read the body: {e}"),
                "BAD_USER_INPUT",
            ))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(HttpResponse::PayloadTooLarge().json(error_body(
                &format!("the request body exceeds {limit} bytes"),
                "PAYLOAD_TOO_LARGE",
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The operation a GET request would run, if it parses: a mutation over GET is refused.
fn is_mutation(request: &async_graphql::Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let operations: Vec<_> = document.operations.iter().collect();
    let chosen = match &request.operation_name {
        Some(name) => operations
            .iter()
            .find(|(n, _)| n.map(|n| n.as_str()) == Some(name.as_str())),
        None => operations.first(),
    };
    chosen.is_some_and(|(_, op)| op.node.ty == OperationType::Mutation)
}

async fn graphql(
    req: HttpRequest,
    payload: web::Payload,
    served: web::Data<Served>,
) -> HttpResponse {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let graphql_response_type = wants_graphql_response(&req);

    let request = if req.method() == Method::GET {
        match async_graphql::http::parse_query_string(req.query_string()) {
            Ok(request) => request,
            Err(e) => {
                return HttpResponse::BadRequest().json(error_body(
                    &format!("invalid GraphQL GET request: {e}"),
                    "BAD_USER_INPUT",
                ))
            }
        }
    } else {
        let body = match read_body(payload, served.state.config.limits.max_body_bytes).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        match serde_json::from_slice::<async_graphql::Request>(&body) {
            Ok(request) => request,
            Err(e) => {
                return HttpResponse::BadRequest().json(error_body(
                    &format!("the body is not a GraphQL JSON request: {e}"),
                    "BAD_USER_INPUT",
                ))
            }
        }
    };
    let mut request = request;
    if let Err(err) = crate::persisted::resolve(&served.state, &mut request).await {
        let status = if graphql_response_type {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        return HttpResponse::build(status).json(error_body(&err.message(), err.code()));
    }
    if req.method() == Method::GET && is_mutation(&request) {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "POST"))
            .json(error_body(
                "mutations must be sent with POST",
                "BAD_USER_INPUT",
            ));
    }

    let auth = RequestAuth::from_header(
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let rate = crate::ratelimit::RateSlot::default();
    let request = request
        .data(auth)
        .data(rate.clone())
        .data(crate::runs::loaders::RunLoaderCell::default())
        .data(crate::exports::graphql::ExportJobLoaderCell::default());
    let response = REQUEST_ID
        .scope(request_id.clone(), served.schema.execute(request))
        .await;
    let stats = &served.state.requests;
    stats.graphql.fetch_add(1, Ordering::Relaxed);
    if !response.errors.is_empty() {
        stats.graphql_with_errors.fetch_add(1, Ordering::Relaxed);
    }

    let request_error = response.data == async_graphql::Value::Null
        && response.errors.iter().all(|e| e.path.is_empty())
        && !response.errors.is_empty();
    let window = rate.get();
    let refused = window.is_some_and(|w| w.refused);
    let (status, content_type) = if graphql_response_type {
        (
            if refused {
                StatusCode::TOO_MANY_REQUESTS
            } else if request_error {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            },
            "application/graphql-response+json",
        )
    } else {
        (StatusCode::OK, "application/json")
    };
    let body = match serde_json::to_vec(&response) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(request_id = %request_id, error = %e, "response serialization failed");
            return HttpResponse::InternalServerError().json(error_body(
                &format!("internal error (request id {request_id})"),
                "INTERNAL",
            ));
        }
    };
    let mut http = HttpResponse::build(status);
    http.content_type(content_type);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        http.insert_header(("x-request-id", value));
    }
    if let Some(window) = window {
        http.insert_header(("RateLimit-Limit", window.limit.to_string()));
        http.insert_header(("RateLimit-Remaining", window.remaining.to_string()));
        http.insert_header(("RateLimit-Reset", window.reset.to_string()));
        if refused {
            http.insert_header((header::RETRY_AFTER, window.reset.to_string()));
        }
    }
    http.body(body)
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
