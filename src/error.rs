//! The one error type of Logbook. Every variant maps to a stable `extensions.code`
//! (docs/api.md §7), so clients can branch on it. Database constraint and trigger errors are
//! classified here, in one place, never per resolver. `Internal` keeps its cause for the log and
//! shows the client only a request id.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use async_graphql::{ErrorExtensions, ServerError};
use sea_orm::DbErr;

/// Deliberately not `Display`: async-graphql converts any `Display` type into an error without
/// extensions, so keeping this type out of that blanket impl makes `?` go through our
/// conversion, which always sets `extensions.code`.
#[derive(Debug, Clone)]
pub enum AppError {
    Unauthenticated,
    Forbidden {
        role: &'static str,
        action: &'static str,
    },
    /// A document not on the server's trusted list (`crate::trusted`).
    UntrustedDocument,
    /// A field the caller's role may not read, refused before execution (see `admission`).
    ForbiddenField {
        role: &'static str,
        field: String,
    },
    NotFound(&'static str),
    BadUserInput {
        field: String,
        message: String,
    },
    BadCursor(&'static str),
    ImmutableRecord(String),
    /// Same idempotency key, different input.
    IdempotencyConflict(String),
    /// A state change the object's lifecycle does not allow (e.g. completing a finished trace).
    InvalidTransition(String),
    /// Recording cost would take spend past an active budget whose hard limit is on. The
    /// closed code list has no budget code, so it is `INVALID_TRANSITION` (the budget's state
    /// does not admit the spend) with `extensions.reason` `BUDGET_EXCEEDED` and the figures
    /// (docs/api.md §7).
    BudgetExceeded {
        message: String,
        budget_id: String,
        /// `DAILY` or `MONTHLY`.
        period: &'static str,
        limit_cents: f64,
        /// What the spend would have been with the refused records.
        spend_cents: f64,
    },
    /// A replayed step produced another output than the recorded one.
    ReplayMismatch {
        message: String,
        expected: String,
        actual: String,
    },
    QueryTooDeep(String),
    QueryTooComplex(String),
    RateLimited(String),
    PayloadTooLarge(String),
    Unavailable(String),
    /// The cause goes to the log only.
    Internal(String),
}

impl AppError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::BadUserInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        AppError::Internal(cause.to_string())
    }

    /// The client-facing message (for `Internal`, without the cause).
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthenticated => {
                "authentication required: send `Authorization: Bearer <api-key>`".into()
            }
            AppError::Forbidden { role, action } => {
                format!("the API key's role {role} may not {action}")
            }
            AppError::UntrustedDocument => "this server runs trusted documents only, and this \
                                             document is not one of them"
                .into(),
            AppError::ForbiddenField { role, field } => format!(
                "the API key's role {role} may not read `{field}`: a role that may only write \
                 gets receipts (ids, statuses, seals) of its writes, not stored content"
            ),
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::BadUserInput { message, .. } => message.clone(),
            AppError::BadCursor(why) => format!("invalid cursor: {why}"),
            AppError::ImmutableRecord(detail) => format!("the record is immutable: {detail}"),
            AppError::IdempotencyConflict(detail) => detail.clone(),
            AppError::InvalidTransition(detail) => detail.clone(),
            AppError::BudgetExceeded { message, .. } => message.clone(),
            AppError::ReplayMismatch { message, .. } => message.clone(),
            AppError::QueryTooDeep(detail) => detail.clone(),
            AppError::QueryTooComplex(detail) => detail.clone(),
            AppError::RateLimited(detail) => detail.clone(),
            AppError::PayloadTooLarge(detail) => detail.clone(),
            AppError::Unavailable(what) => what.clone(),
            AppError::Internal(_) => "internal error".into(),
        }
    }

    /// The message with an internal error's cause, for the operator's console (the CLI); never
    /// sent to a client.
    pub fn detail(&self) -> String {
        match self {
            AppError::Internal(cause) => format!("internal error: {cause}"),
            other => other.message(),
        }
    }

    /// The `extensions.code` clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "UNAUTHENTICATED",
            AppError::Forbidden { .. }
            | AppError::ForbiddenField { .. }
            | AppError::UntrustedDocument => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::BadUserInput { .. } => "BAD_USER_INPUT",
            AppError::BadCursor(_) => "BAD_CURSOR",
            AppError::ImmutableRecord(_) => "IMMUTABLE_RECORD",
            AppError::IdempotencyConflict(_) => "IDEMPOTENCY_CONFLICT",
            AppError::InvalidTransition(_) | AppError::BudgetExceeded { .. } => {
                "INVALID_TRANSITION"
            }
            AppError::ReplayMismatch { .. } => "REPLAY_MISMATCH",
            AppError::QueryTooDeep(_) => "QUERY_TOO_DEEP",
            AppError::QueryTooComplex(_) => "QUERY_TOO_COMPLEX",
            AppError::RateLimited(_) => "RATE_LIMITED",
            AppError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            AppError::Unavailable(_) => "UNAVAILABLE",
            AppError::Internal(_) => "INTERNAL",
        }
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        if database_unreachable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            return AppError::Unavailable("the database is unavailable; retry shortly".into());
        }
        classify_db_error(&err.to_string())
    }
}

/// Whether `err` says the database could not be reached or gave up on the statement rather
/// than refused it: a lost or refused connection, an exhausted or closed pool, a server
/// shutting down, a statement timeout, a serialization failure or deadlock, a busy SQLite
/// file. Each is worth a retry, so clients get `UNAVAILABLE`.
pub fn database_unreachable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::RuntimeErr;
    let runtime = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(runtime) | DbErr::Query(runtime) => runtime,
        _ => return false,
    };
    let RuntimeErr::SqlxError(sqlx) = runtime else {
        return false;
    };
    match sqlx.as_ref() {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::Protocol(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed => true,
        Sqlx::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL: connection exceptions (08), insufficient resources (53), operator
            // intervention (57: shutdown, statement timeout), serialization failure and
            // deadlock (40001, 40P01). SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6) and their
            // extended codes.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "40001"
                || code == "40P01"
                || code == "5"
                || code == "6"
                || code == "261"
                || code == "517"
                || code == "262"
        }),
        _ => false,
    }
}

/// Maps a database error text to a client-facing error. Immutability triggers on both backends
/// raise messages containing `is immutable` (plain tables) or `S6_IMMUTABILITY_VIOLATION`
/// (traces and steps); connection failures are `UNAVAILABLE` so clients retry.
pub fn classify_db_error(text: &str) -> AppError {
    if text.contains("is immutable") || text.contains("S6_IMMUTABILITY_VIOLATION") {
        let detail = text
            .find("S6_IMMUTABILITY_VIOLATION")
            .map(|start| &text[start..])
            .or_else(|| immutable_sentence(text))
            .unwrap_or("update or delete refused");
        return AppError::ImmutableRecord(detail.trim().to_owned());
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("connection refused")
        || lower.contains("pool timed out")
        || lower.contains("connection acquire")
        || lower.contains("database is locked")
    {
        return AppError::Unavailable("the database is unavailable; retry shortly".into());
    }
    AppError::internal(text)
}

/// `"... llm_run_records is immutable: UPDATE not allowed ..."` → the table sentence.
fn immutable_sentence(text: &str) -> Option<&str> {
    let at = text.find(" is immutable")?;
    let start = text[..at]
        .rfind(|c: char| c.is_whitespace() || c == '\'' || c == '"')
        .map_or(0, |i| i + 1);
    let end = text[at..]
        .find("allowed")
        .map(|e| at + e + "allowed".len())?;
    Some(&text[start..end])
}

tokio::task_local! {
    /// The id of the HTTP request being served, so `INTERNAL` errors can name it.
    pub static REQUEST_ID: String;
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let code = err.code();
        match &err {
            AppError::Internal(cause) => {
                let request_id = REQUEST_ID
                    .try_with(Clone::clone)
                    .unwrap_or_else(|_| "-".into());
                tracing::error!(request_id = %request_id, cause = %cause, "internal error");
                async_graphql::Error::new(format!("internal error (request id {request_id})"))
                    .extend_with(|_, e| {
                        e.set("code", code);
                        e.set("requestId", request_id.clone());
                    })
            }
            AppError::BadUserInput { field, .. } => {
                let field = field.clone();
                async_graphql::Error::new(err.message()).extend_with(move |_, e| {
                    e.set("code", code);
                    e.set("field", field.clone());
                })
            }
            AppError::BudgetExceeded {
                budget_id,
                period,
                limit_cents,
                spend_cents,
                ..
            } => {
                let (budget_id, period) = (budget_id.clone(), *period);
                let (limit, spend) = (*limit_cents, *spend_cents);
                async_graphql::Error::new(err.message()).extend_with(move |_, e| {
                    e.set("code", code);
                    e.set("reason", "BUDGET_EXCEEDED");
                    e.set("budgetId", budget_id.clone());
                    e.set("period", period);
                    e.set("limitCents", limit);
                    e.set("spendCents", spend);
                })
            }
            AppError::ReplayMismatch {
                expected, actual, ..
            } => {
                let (expected, actual) = (expected.clone(), actual.clone());
                async_graphql::Error::new(err.message()).extend_with(move |_, e| {
                    e.set("code", code);
                    e.set("expected", expected.clone());
                    e.set("actual", actual.clone());
                })
            }
            _ => async_graphql::Error::new(err.message()).extend_with(|_, e| e.set("code", code)),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// The status of this error when it ends a request before (or outside) GraphQL execution.
    pub fn http_status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::Forbidden { .. }
            | AppError::ForbiddenField { .. }
            | AppError::UntrustedDocument => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The one body every non-GraphQL error response has, `{"errors": [{message, extensions:
    /// {code, requestId, ...}}]}`, with `status`, the `x-request-id` header and, for
    /// `UNAUTHENTICATED`, `WWW-Authenticate: Bearer`.
    pub fn respond(&self, status: StatusCode, request_id: &str) -> HttpResponse {
        let mut error = REQUEST_ID.sync_scope(request_id.to_owned(), || self.to_server_error());
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("requestId", request_id);
        let mut http = HttpResponse::build(status);
        if let Ok(value) = HeaderValue::from_str(request_id) {
            http.insert_header(("x-request-id", value));
        }
        if matches!(self, AppError::Unauthenticated) {
            http.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        http.json(serde_json::json!({ "errors": [error] }))
    }
}

/// An [`AppError`] ending a plain HTTP route (not GraphQL): `?` converts, and actix answers
/// with [`AppError::respond`]. A wrapper, because `AppError` must stay out of `Display` (see
/// there) and actix's `ResponseError` needs it.
#[derive(Debug)]
pub struct HttpError(pub AppError);

impl From<AppError> for HttpError {
    fn from(err: AppError) -> Self {
        HttpError(err)
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code(), self.0.message())
    }
}

impl actix_web::ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        self.0.http_status()
    }

    /// The request id is the one being served (`REQUEST_ID`), else a new one.
    fn error_response(&self) -> HttpResponse {
        let request_id = REQUEST_ID
            .try_with(Clone::clone)
            .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string());
        self.0.respond(self.0.http_status(), &request_id)
    }
}

impl AppError {
    /// The error as a GraphQL response error (no path, no locations), with its code.
    pub fn to_server_error(&self) -> ServerError {
        let error: async_graphql::Error = self.clone().into();
        ServerError {
            message: error.message,
            source: None,
            locations: Vec::new(),
            path: Vec::new(),
            extensions: error.extensions,
        }
    }
}

/// Gives every error an `extensions.code`: validation failures of async-graphql itself carry
/// none, so depth and complexity limits and malformed documents are classified here.
pub fn classify_errors(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        classify_error(error);
    }
}

/// Gives one error a code when it has none (see [`classify_errors`]). Argument and variable
/// values that do not parse (async-graphql reports them from inside execution, with a path)
/// are the client's input, not an internal failure.
pub fn classify_error(error: &mut ServerError) {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if has_code {
        return;
    }
    let message = error.message.as_str();
    let code = if message.contains("nested too deep") {
        "QUERY_TOO_DEEP"
    } else if message.contains("too complex") {
        "QUERY_TOO_COMPLEX"
    } else if error.path.is_empty()
        || message.starts_with("Failed to parse")
        || message.starts_with("Expected input type")
        || message.starts_with("Invalid value for argument")
        || message.starts_with("Invalid value for variable")
        || (message.starts_with("Variable ") && message.ends_with(" is not defined."))
    {
        "BAD_USER_INPUT"
    } else {
        "INTERNAL"
    };
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_messages_become_immutable_record() {
        let pg = "Execution Error: error returned from database: llm_run_records is immutable: UPDATE not allowed";
        assert_eq!(classify_db_error(pg).code(), "IMMUTABLE_RECORD");
        let trace = "error: S6_IMMUTABILITY_VIOLATION: aos_traces content is immutable";
        assert_eq!(classify_db_error(trace).code(), "IMMUTABLE_RECORD");
        assert_eq!(
            classify_db_error("syntax error at or near").code(),
            "INTERNAL"
        );
    }
}
