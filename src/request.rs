//! What belongs to one request: its id (from `x-request-id` or made up), the task-local that
//! carries it into errors and logs, and running work under it.

use actix_web::HttpRequest;

use crate::error::{AppResult, REQUEST_ID};

/// The caller's `x-request-id` when it is short printable ASCII, else a new UUID.
pub fn request_id_of(req: &HttpRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `work` with the request id restored (work spawned off the request's task, such as a
/// DataLoader batch, loses the task-local), so an `INTERNAL` error names the right request.
pub async fn in_request<T>(
    request_id: Option<String>,
    work: impl std::future::Future<Output = AppResult<T>>,
) -> Result<T, async_graphql::Error> {
    match request_id {
        Some(id) => {
            REQUEST_ID
                .scope(id, async { work.await.map_err(Into::into) })
                .await
        }
        None => work.await.map_err(Into::into),
    }
}
