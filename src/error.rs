//! The one error type of Logbook. Every variant maps to a stable `extensions.code` from API.md,
//! so clients can branch on it. Database constraint and trigger errors are classified here, in
//! one place, never per resolver. `Internal` keeps its cause for the log and shows the client
//! only a request id.

use async_graphql::ErrorExtensions;
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
    /// A replayed step produced another output than the recorded one.
    ReplayMismatch {
        message: String,
        expected: String,
        actual: String,
    },
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
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::BadUserInput { message, .. } => message.clone(),
            AppError::BadCursor(why) => format!("invalid cursor: {why}"),
            AppError::ImmutableRecord(detail) => format!("the record is immutable: {detail}"),
            AppError::IdempotencyConflict(detail) => detail.clone(),
            AppError::InvalidTransition(detail) => detail.clone(),
            AppError::ReplayMismatch { message, .. } => message.clone(),
            AppError::RateLimited(detail) => detail.clone(),
            AppError::PayloadTooLarge(detail) => detail.clone(),
            AppError::Unavailable(what) => what.clone(),
            AppError::Internal(_) => "internal error".into(),
        }
    }

    /// The `extensions.code` clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "UNAUTHENTICATED",
            AppError::Forbidden { .. } => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::BadUserInput { .. } => "BAD_USER_INPUT",
            AppError::BadCursor(_) => "BAD_CURSOR",
            AppError::ImmutableRecord(_) => "IMMUTABLE_RECORD",
            AppError::IdempotencyConflict(_) => "IDEMPOTENCY_CONFLICT",
            AppError::InvalidTransition(_) => "INVALID_TRANSITION",
            AppError::ReplayMismatch { .. } => "REPLAY_MISMATCH",
            AppError::RateLimited(_) => "RATE_LIMITED",
            AppError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            AppError::Unavailable(_) => "UNAVAILABLE",
            AppError::Internal(_) => "INTERNAL",
        }
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        classify_db_error(&err.to_string())
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

/// Gives every error an `extensions.code`: validation failures of async-graphql itself carry
/// none, so depth and complexity limits and malformed documents are classified here.
pub fn classify_errors(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if error.message.contains("nested too deep") {
            "QUERY_TOO_DEEP"
        } else if error.message.contains("too complex") {
            "QUERY_TOO_COMPLEX"
        } else if error.path.is_empty() {
            "BAD_USER_INPUT"
        } else {
            "INTERNAL"
        };
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
}

/// Schema extension that runs [`classify_errors`] on every response: HTTP requests (`request`)
/// and each event of a WebSocket subscription (`subscribe`), so a validation error has a code
/// whichever transport carried it.
pub struct ErrorCodes;

impl async_graphql::extensions::ExtensionFactory for ErrorCodes {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(ErrorCodes)
    }
}

#[async_trait::async_trait]
impl async_graphql::extensions::Extension for ErrorCodes {
    async fn request(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextRequest<'_>,
    ) -> async_graphql::Response {
        let mut response = next.run(ctx).await;
        classify_errors(&mut response);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        stream: futures_util::stream::BoxStream<'s, async_graphql::Response>,
        next: async_graphql::extensions::NextSubscribe<'_>,
    ) -> futures_util::stream::BoxStream<'s, async_graphql::Response> {
        use futures_util::StreamExt;
        next.run(ctx, stream)
            .map(|mut response| {
                classify_errors(&mut response);
                response
            })
            .boxed()
    }
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
