//! The actix-web application: GraphQL over HTTP (POST and GET) and WebSocket, GraphiQL, the
//! served SDL, health, readiness and metrics. It names no domain: the schema and any extra
//! routes (the export downloads) are handed in by `crate::server`. `serve` binds before it
//! serves, so tests and benchmarks can use port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpMessage as _, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;

pub use crate::served::Served;
use crate::subscriptions::admission::Admission as SocketAdmission;

/// The HTTP server, listening.
pub struct Listening {
    pub addr: SocketAddr,
    /// The process's WebSocket counts (for tests and diagnostics).
    pub sockets: Arc<SocketAdmission>,
    pub handle: ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `bind` and starts serving in the background of the current tokio runtime; `routes`
/// adds routes beside GraphQL's.
pub fn serve(
    served: Served,
    bind: &str,
    routes: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
) -> std::io::Result<Listening> {
    let workers = served.state.config.workers;
    let sockets = served.sockets.clone();
    let cors_origins = served.state.config.cors_origins.clone();
    let grace = served.state.config.shutdown_grace.as_secs().max(1);
    let served = web::Data::new(served);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(cors(&cors_origins))
            .app_data(served.clone())
            .route("/graphql", web::post().to(crate::graphql_http::handle))
            .configure(|cfg| crate::ws::routes(cfg, &served))
            .route("/graphql", web::get().to(crate::graphql_http::handle))
            .route("/graphql", web::route().to(method_not_allowed))
            .route("/graphiql", web::get().to(graphiql))
            .route(
                &format!("{}/{{version}}/{{name}}", crate::graphiql::ASSET_PATH),
                web::get().to(graphiql_asset),
            )
            .route("/schema.graphql", web::get().to(schema_sdl))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .configure(routes.clone())
    })
    // `serve` handles the signals itself: it triggers `AppState::shutdown` first, so sockets
    // and the export worker let go while actix-web drains in-flight requests.
    .disable_signals()
    .shutdown_timeout(grace);
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
    Ok(Listening {
        addr,
        sockets,
        handle,
        task,
    })
}

/// CORS for the configured origins, or no middleware at all when there are none. The browser
/// enforces CORS, so a request from another origin is still answered, only without the headers
/// that would let its page read the answer: same-origin pages (GraphiQL) and non-browser clients
/// never depend on the list. Keys travel in `Authorization`, so credentials are never allowed.
fn cors(origins: &[String]) -> Condition<Cors> {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("ratelimit-limit"),
            header::HeaderName::from_static("ratelimit-remaining"),
            header::HeaderName::from_static("ratelimit-reset"),
            header::RETRY_AFTER,
        ])
        .max_age(600)
        .block_on_origin_mismatch(false);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    Condition::new(!origins.is_empty(), cors)
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
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            crate::graphiql::CONTENT_SECURITY_POLICY,
        ))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(crate::graphiql::page())
}

/// A GraphiQL asset: its URL names its content, so it is cached for a year without revalidation;
/// gzipped when the client accepts it.
async fn graphiql_asset(request: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (version, name) = path.into_inner();
    let Some(served) = crate::graphiql::asset(&version, &name) else {
        return HttpResponse::NotFound().finish();
    };
    let gzip = request
        .get_header::<header::AcceptEncoding>()
        .and_then(|accepted| {
            accepted.negotiate([header::Encoding::gzip(), header::Encoding::identity()].iter())
        })
        .is_some_and(|chosen| chosen == header::Encoding::gzip());
    let mut response = HttpResponse::Ok();
    response
        .content_type(served.asset.content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::VARY, "Accept-Encoding"));
    if gzip {
        response
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(served.gzip())
    } else {
        response.body(served.asset.body)
    }
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

/// Prometheus text format (version 0.0.4): this process's metrics (`crate::telemetry`), with
/// the pool and socket readings taken now.
async fn metrics(served: web::Data<Served>) -> HttpResponse {
    let state = &served.state;
    let (idle, size) = match state.db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let pool = state.db.get_postgres_connection_pool();
            (pool.num_idle(), pool.size())
        }
        sea_orm::DbBackend::Sqlite => {
            let pool = state.db.get_sqlite_connection_pool();
            (pool.num_idle(), pool.size())
        }
        _ => (0, 0),
    };
    crate::telemetry::pool(
        idle,
        (size as usize).saturating_sub(idle),
        state.config.database.max_connections,
    );
    let (connections, subscriptions) = served.sockets.totals();
    crate::telemetry::sockets(connections, subscriptions);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::render())
}
