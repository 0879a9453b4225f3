//! GraphQL over HTTP (POST and GET), following the graphql-over-http specification.
//!
//! A request goes through, in this order, each step bounding the cost of the next:
//! 1. media types: a POST must be `application/json` (a `text/plain` or form POST is a
//!    cross-site request a browser sends without asking, so it is refused with 415); the
//!    response is `application/graphql-response+json` when the client accepts it, else
//!    `application/json`;
//! 2. authentication: the API key is resolved before the body is read or anything is parsed,
//!    so an unauthenticated request costs one key lookup;
//! 3. the body: at most `max_body_bytes`, a JSON object whose `query` is a string (or an
//!    automatic persisted query's hash), `variables` an object; anything else is not a
//!    well-formed GraphQL-over-HTTP request: 400 whatever the media type;
//! 4. admission (`crate::admission`): nesting, fragment expansion, fan-out, NUL, read grant;
//! 5. execution under the request's time budget.
//!
//! Status codes: `application/json` answers 200 for every well-formed request (errors are in
//! the body); `application/graphql-response+json` answers 4xx when the request could not
//! execute (no `data` in the body) and 200 when it did. A request error never carries `data`.

use std::time::Instant;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql::parser::types::OperationType;
use async_graphql::{ServerError, Variables};
use futures_util::StreamExt;
use serde_json::{json, Value as Json};
use tracing::Instrument as _;

use crate::admission::ReadGrant;
use crate::auth::{Permission, RequestAuth};
use crate::error::{AppError, REQUEST_ID};
use crate::served::Served;

/// The response media type the client negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    /// `application/graphql-response+json`: request errors carry 4xx statuses.
    GraphqlResponse,
    /// `application/json`: 200 for every well-formed request.
    Json,
}

impl Media {
    fn content_type(self) -> &'static str {
        match self {
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Media::Json => "application/json; charset=utf-8",
        }
    }
}

/// Reads `Accept` with its quality values: the graphql-response media type when the client
/// names it and likes it at least as much as JSON; JSON when it names JSON or a wildcard (or
/// sends no `Accept` at all, as legacy clients do); `None` when it accepts neither.
fn negotiate(req: &HttpRequest) -> Option<Media> {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Some(Media::Json);
    };
    let (mut graphql_response, mut json) = (0.0f32, 0.0f32);
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = pieces
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match media.as_str() {
            "application/graphql-response+json" => graphql_response = graphql_response.max(quality),
            "application/json" | "application/*" | "*/*" => json = json.max(quality),
            _ => {}
        }
    }
    if graphql_response > 0.0 && graphql_response >= json {
        Some(Media::GraphqlResponse)
    } else if json > 0.0 {
        Some(Media::Json)
    } else {
        None
    }
}

/// A response to a request that did not execute.
struct Refusal {
    status: StatusCode,
    errors: Vec<ServerError>,
    headers: Vec<(header::HeaderName, String)>,
}

impl Refusal {
    /// A GraphQL request error: the status follows the media type.
    fn request(err: &AppError, media: Media) -> Self {
        let status = match media {
            Media::Json => StatusCode::OK,
            Media::GraphqlResponse => status_of(err),
        };
        let mut refusal = Refusal {
            status,
            errors: vec![err.to_server_error()],
            headers: Vec::new(),
        };
        if matches!(err, AppError::Unauthenticated) {
            refusal
                .headers
                .push((header::WWW_AUTHENTICATE, "Bearer".into()));
        }
        refusal
    }

    /// Not a well-formed GraphQL-over-HTTP request: the status says so whatever the media type.
    fn malformed(status: StatusCode, err: &AppError) -> Self {
        Refusal {
            status,
            errors: vec![err.to_server_error()],
            headers: Vec::new(),
        }
    }
}

/// The status of a request error under `application/graphql-response+json`: the error's own
/// status, except that a missing object is a request that could not execute (400), not a
/// missing resource.
fn status_of(err: &AppError) -> StatusCode {
    match err {
        AppError::NotFound(_) => StatusCode::BAD_REQUEST,
        other => other.http_status(),
    }
}

/// `POST /graphql` and `GET /graphql`, in a span that puts the request id (and the caller's
/// trace id, from `traceparent`) on every log line; a valid `traceparent` is sent back.
pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    served: web::Data<Served>,
) -> HttpResponse {
    let request_id = crate::request::request_id_of(&req);
    let trace = crate::request::TraceParent::of(&req);
    let span = tracing::info_span!(
        "graphql",
        request_id = %request_id,
        trace_id = trace.as_ref().map(|t| t.trace_id.as_str()),
        otel.kind = "server",
    );
    crate::otel::adopt_caller_context(&span, &req);
    // With spans exported, the echo names the request's own span; otherwise a made-up one.
    let echo = trace.map(|t| crate::otel::traceparent_of(&span).unwrap_or_else(|| t.echo()));
    let mut http = handle_traced(req, payload, served, request_id)
        .instrument(span.clone())
        .await;
    crate::otel::record_response(&span, http.status().as_u16());
    if let Some(value) = echo.and_then(|t| HeaderValue::from_str(&t).ok()) {
        http.headers_mut()
            .insert(header::HeaderName::from_static("traceparent"), value);
    }
    http
}

async fn handle_traced(
    req: HttpRequest,
    payload: web::Payload,
    served: web::Data<Served>,
    request_id: String,
) -> HttpResponse {
    let Some(media) = negotiate(&req) else {
        let err = AppError::bad_input(
            "accept",
            "this server answers application/graphql-response+json or application/json",
        );
        return respond(
            Media::Json,
            &request_id,
            Refusal::malformed(StatusCode::NOT_ACCEPTABLE, &err),
        );
    };
    let started = Instant::now();
    let mut observed = Observed::default();
    let http = match run(&req, payload, &served, media, &request_id, &mut observed).await {
        Ok(http) => http,
        Err(refusal) => {
            observed.error_code = refusal.errors.first().and_then(code_of);
            respond(media, &request_id, refusal)
        }
    };
    let operation = match &observed.operation {
        Some(name) => served.operation_names.label(name.as_deref()),
        None => "unknown".to_owned(),
    };
    let outcome = crate::telemetry::outcome_label(observed.error_code.as_deref());
    let took = started.elapsed();
    // The access log, at debug (`LOGBOOK_LOG=logbook=debug`); the span adds the request id.
    tracing::debug!(%operation, outcome, ms = took.as_secs_f64() * 1e3, "graphql request");
    crate::telemetry::request(
        operation,
        observed
            .operation_type
            .map_or("unknown", operation_type_label),
        outcome,
        took,
    );
    http
}

fn operation_type_label(operation_type: OperationType) -> &'static str {
    match operation_type {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

/// What the request metric learns as a request goes: its operation once the body is read (none
/// before: refused unread), its type once admitted, the first error's code.
#[derive(Default)]
struct Observed {
    operation: Option<Option<String>>,
    operation_type: Option<OperationType>,
    error_code: Option<String>,
}

fn code_of(error: &ServerError) -> Option<String> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code.clone()),
        async_graphql::Value::Enum(code) => Some(code.to_string()),
        _ => None,
    }
}

async fn run(
    req: &HttpRequest,
    payload: web::Payload,
    served: &Served,
    media: Media,
    request_id: &str,
    observed: &mut Observed,
) -> Result<HttpResponse, Refusal> {
    let state = &served.state;
    let is_get = req.method() == Method::GET;
    if !is_get && !is_json_content(req) {
        return Err(Refusal::malformed(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &AppError::bad_input(
                "content-type",
                "send the GraphQL request as application/json",
            ),
        ));
    }

    let auth = RequestAuth::from_header(
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let principal = REQUEST_ID
        .scope(request_id.to_owned(), auth.resolve(&state.keys))
        .await
        .map_err(|err| Refusal::request(&err, media))?;

    let mut request = if is_get {
        request_from_query_string(req.query_string())
    } else {
        let body = read_body(payload, state.config.limits.max_body_bytes).await?;
        request_from_body(&body)
    }
    .map_err(|err| Refusal::malformed(StatusCode::BAD_REQUEST, &err))?;
    observed.operation = Some(request.operation_name.clone());

    match &served.trusted {
        Some(trusted) => resolve_trusted(trusted, &mut request),
        None => crate::persisted::resolve(state, &mut request).await,
    }
    .map_err(|err| Refusal::request(&err, media))?;

    let admitted =
        admit(served, &mut request, &principal).map_err(|err| Refusal::request(&err, media))?;
    let (operation_type, root_keys) = (admitted.operation_type, admitted.root_keys);
    observed.operation_type = Some(operation_type);
    observed.operation = Some(admitted.operation_name);
    if is_get && operation_type != OperationType::Query {
        let mut refusal = Refusal::malformed(
            StatusCode::METHOD_NOT_ALLOWED,
            &AppError::bad_input("query", "only queries may be sent with GET; use POST"),
        );
        refusal.headers.push((header::ALLOW, "POST".into()));
        return Err(refusal);
    }

    let window = state.rate_limit.charge_request(&auth, admitted.cost).await;
    if let Some(window) = window.filter(|w| w.refused) {
        return Err(Refusal {
            status: match media {
                Media::Json => StatusCode::OK,
                Media::GraphqlResponse => StatusCode::TOO_MANY_REQUESTS,
            },
            errors: vec![crate::ratelimit::refusal(&window, admitted.cost)],
            headers: rate_headers(window),
        });
    }
    let request = request
        .data(auth)
        .data(crate::request::RequestScope::default());
    let budget = state.config.limits.request_timeout;
    let operation = crate::otel::operation_span(
        operation_type_label(operation_type),
        observed.operation.as_ref().and_then(|name| name.as_deref()),
    );
    let execution = REQUEST_ID.scope(
        request_id.to_owned(),
        served.schema.execute(request).instrument(operation),
    );
    let mut response = match tokio::time::timeout(budget, execution).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(request_id, "request exceeded its time budget");
            let err = AppError::Unavailable(format!(
                "the request did not finish within its {} s budget",
                budget.as_secs()
            ));
            return Err(Refusal::request(&err, media));
        }
    };
    crate::error::classify_errors(&mut response);
    reorder_root(&mut response.data, &root_keys);

    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    if request_error {
        let status = match media {
            Media::Json => StatusCode::OK,
            Media::GraphqlResponse => StatusCode::BAD_REQUEST,
        };
        let mut refusal = Refusal {
            status,
            errors: std::mem::take(&mut response.errors),
            headers: Vec::new(),
        };
        if let Some(window) = window {
            refusal.headers.extend(rate_headers(window));
        }
        return Err(refusal);
    }
    observed.error_code = response.errors.first().and_then(code_of);
    let body = serde_json::to_vec(&response).map_err(|e| {
        tracing::error!(request_id, error = %e, "response serialization failed");
        Refusal::request(&AppError::internal(e), media)
    })?;
    let mut http = HttpResponse::Ok();
    http.content_type(media.content_type());
    if let Ok(value) = HeaderValue::from_str(request_id) {
        http.insert_header(("x-request-id", value));
    }
    if let Some(window) = window {
        for (name, value) in rate_headers(window) {
            http.insert_header((name, value));
        }
    }
    Ok(http.body(body))
}

fn rate_headers(window: crate::ratelimit::RateWindow) -> Vec<(header::HeaderName, String)> {
    let mut headers = vec![
        (
            header::HeaderName::from_static("ratelimit-limit"),
            window.limit.to_string(),
        ),
        (
            header::HeaderName::from_static("ratelimit-remaining"),
            window.remaining.to_string(),
        ),
        (
            header::HeaderName::from_static("ratelimit-reset"),
            window.reset.to_string(),
        ),
    ];
    if window.refused {
        headers.push((header::RETRY_AFTER, window.reset.to_string()));
    }
    headers
}

fn respond(media: Media, request_id: &str, refusal: Refusal) -> HttpResponse {
    let mut http = HttpResponse::build(refusal.status);
    http.content_type(media.content_type());
    if let Ok(value) = HeaderValue::from_str(request_id) {
        http.insert_header(("x-request-id", value));
    }
    for (name, value) in refusal.headers {
        http.insert_header((name, value));
    }
    let errors: Vec<ServerError> = refusal
        .errors
        .into_iter()
        .map(|mut error| {
            crate::error::classify_error(&mut error);
            error
        })
        .collect();
    http.body(json!({ "errors": errors }).to_string())
}

/// `Content-Type: application/json` (any parameters, such as a charset).
fn is_json_content(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, Refusal> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            Refusal::malformed(
                StatusCode::BAD_REQUEST,
                &AppError::bad_input("body", format!("could not read the body: {e}")),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(Refusal::malformed(
                StatusCode::PAYLOAD_TOO_LARGE,
                &AppError::PayloadTooLarge(format!("the request body exceeds {limit} bytes")),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A POST body: one JSON object with `query` (a string), `operationName` (a string or null),
/// `variables` and `extensions` (objects or null).
fn request_from_body(body: &[u8]) -> Result<async_graphql::Request, AppError> {
    let value: Json = serde_json::from_slice(body)
        .map_err(|e| AppError::bad_input("body", format!("the body is not JSON: {e}")))?;
    let Json::Object(mut fields) = value else {
        return Err(AppError::bad_input(
            "body",
            "the body must be one JSON object with a `query`",
        ));
    };
    build_request(
        fields.remove("query"),
        fields.remove("operationName"),
        fields.remove("variables"),
        fields.remove("extensions"),
    )
}

/// A GET query string: `query`, `operationName`, and `variables`/`extensions` as JSON text.
fn request_from_query_string(query: &str) -> Result<async_graphql::Request, AppError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| AppError::bad_input("query", format!("invalid query string: {e}")))?;
    let take = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let json_param = |name: &str, text: Option<String>| -> Result<Option<Json>, AppError> {
        text.filter(|t| !t.is_empty())
            .map(|t| {
                serde_json::from_str(&t).map_err(|e| {
                    AppError::bad_input(name, format!("`{name}` is not valid JSON: {e}"))
                })
            })
            .transpose()
    };
    let query = take("query").map(Json::String);
    let operation_name = take("operationName").map(Json::String);
    let variables = json_param("variables", take("variables"))?;
    let extensions = json_param("extensions", take("extensions"))?;
    build_request(query, operation_name, variables, extensions)
}

fn build_request(
    query: Option<Json>,
    operation_name: Option<Json>,
    variables: Option<Json>,
    extensions: Option<Json>,
) -> Result<async_graphql::Request, AppError> {
    let extensions = match extensions {
        None | Some(Json::Null) => serde_json::Map::new(),
        Some(Json::Object(map)) => map,
        Some(_) => {
            return Err(AppError::bad_input(
                "extensions",
                "`extensions` must be an object",
            ))
        }
    };
    let persisted = extensions.contains_key("persistedQuery");
    let query = match query {
        Some(Json::String(text)) => text,
        None | Some(Json::Null) if persisted => String::new(),
        None | Some(Json::Null) => {
            return Err(AppError::bad_input(
                "query",
                "the request has no `query`: send the GraphQL document as a string",
            ))
        }
        Some(_) => return Err(AppError::bad_input("query", "`query` must be a string")),
    };
    let operation_name = match operation_name {
        None | Some(Json::Null) => None,
        Some(Json::String(name)) => Some(name),
        Some(_) => {
            return Err(AppError::bad_input(
                "operationName",
                "`operationName` must be a string",
            ))
        }
    };
    let variables = match variables {
        None | Some(Json::Null) => Variables::default(),
        Some(value @ Json::Object(_)) => Variables::from_json(value),
        Some(_) => {
            return Err(AppError::bad_input(
                "variables",
                "`variables` must be an object",
            ))
        }
    };
    let mut request = async_graphql::Request::new(query).variables(variables);
    request.operation_name = operation_name;
    request.extensions = async_graphql::Extensions(
        extensions
            .into_iter()
            .map(|(k, v)| (k, async_graphql::Value::from_json(v).unwrap_or_default()))
            .collect(),
    );
    Ok(request)
}

/// What a transport needs of an admitted request: the operation's name and type, the root
/// fields' response keys in selection order, and its cost in complexity points.
pub struct Admitted {
    pub operation_name: Option<String>,
    pub operation_type: OperationType,
    pub root_keys: Vec<String>,
    pub cost: u64,
}

/// Admits `request` for `principal` (see `crate::admission`) and leaves the parsed document in
/// it; returns what the transport needs of it. The HTTP and WebSocket transports both call it, after
/// authenticating and before anything else is parsed.
pub fn admit(
    served: &Served,
    request: &mut async_graphql::Request,
    principal: &crate::auth::Principal,
) -> Result<Admitted, AppError> {
    let grant = if principal.role_may(Permission::Read) {
        ReadGrant::Full
    } else {
        ReadGrant::ReceiptsOnly {
            role: principal.role.as_str(),
        }
    };
    let operation = request.operation_name.as_deref();
    let admitted = match &served.trusted {
        // Parsed and checked at startup: only the request's own checks run.
        Some(trusted) => served.admission.admit_parsed(
            trusted.document(&request.query)?,
            operation,
            &request.variables,
            grant,
        )?,
        None => served
            .admission
            .admit(&request.query, operation, &request.variables, grant)?,
    };
    request.set_parsed_query(admitted.document);
    Ok(Admitted {
        operation_name: admitted.operation_name,
        operation_type: admitted.operation_type,
        root_keys: admitted.root_keys,
        cost: admitted.cost,
    })
}

/// In trusted-documents mode a persisted-query hash names a listed document (and nothing can be
/// registered); text is checked against the list at admission.
pub fn resolve_trusted(
    trusted: &crate::trusted::TrustedDocuments,
    request: &mut async_graphql::Request,
) -> Result<(), AppError> {
    if let crate::persisted::Persisted::Lookup { hash } = crate::persisted::parse(request)? {
        request.query = trusted.text(&hash)?.to_owned();
    }
    Ok(())
}

/// Puts the root fields back in selection order (GraphQL spec 6.3): the merged `Query` root
/// answers its parts one after another.
pub fn reorder_root(data: &mut async_graphql::Value, keys: &[String]) {
    let async_graphql::Value::Object(map) = data else {
        return;
    };
    if map.len() < 2 {
        return;
    }
    let mut sorted = async_graphql::indexmap::IndexMap::with_capacity(map.len());
    for key in keys {
        if let Some((name, value)) = map.shift_remove_entry(key.as_str()) {
            sorted.insert(name, value);
        }
    }
    sorted.extend(std::mem::take(map));
    *map = sorted;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_must_be_well_formed() {
        assert!(request_from_body(br#"{"query": "{ viewer { role } }"}"#).is_ok());
        for bad in [
            &b"{}"[..],
            br#"{"query": 1}"#,
            br#"{"query": "{ a }", "variables": []}"#,
            br#"{"query": "{ a }", "operationName": 3}"#,
            br#"[{"query": "{ a }"}]"#,
            b"not json",
            b"{\"query\": \"\xff\"}",
        ] {
            assert!(
                request_from_body(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let persisted =
            br#"{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "ab"}}}"#;
        assert!(request_from_body(persisted).is_ok());
    }

    #[test]
    fn query_strings() {
        let request = request_from_query_string(
            "query=query+Q(%24a%3A+Int)+%7B+a+%7D&operationName=Q&variables=%7B%22a%22%3A1%7D",
        )
        .unwrap();
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert!(request_from_query_string("variables=%5B%5D&query=x").is_err());
        assert!(request_from_query_string("").is_err());
    }
}
