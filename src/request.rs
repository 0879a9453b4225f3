//! What belongs to one request: its id (from `x-request-id` or made up), the task-local that
//! carries it into errors and logs, and the [`RequestScope`] its resolvers share (the request's
//! DataLoaders, made once, whose batches carry the request id).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::HttpRequest;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::Context;
use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;

use crate::error::{AppError, AppResult, REQUEST_ID};

/// The caller's `x-request-id` when it is short printable ASCII, else a new UUID.
pub fn request_id_of(req: &HttpRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// A caller's W3C trace context (`traceparent: 00-<trace id>-<parent id>-<flags>`), if it sent a
/// valid one: its trace id goes into the request's log lines, and the response carries it on
/// with this server's own span id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    flags: String,
}

impl TraceParent {
    pub fn of(req: &HttpRequest) -> Option<TraceParent> {
        Self::parse(req.headers().get("traceparent")?.to_str().ok()?)
    }

    fn parse(header: &str) -> Option<TraceParent> {
        let mut parts = header.trim().split('-');
        let (version, trace_id, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |text: &str, len: usize| {
            text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let valid = hex(version, 2)
            && version != "ff"
            // Version 00 has exactly four fields; later versions may append more.
            && (version != "00" || parts.next().is_none())
            && hex(trace_id, 32)
            && trace_id.bytes().any(|b| b != b'0')
            && hex(parent, 16)
            && parent.bytes().any(|b| b != b'0')
            && hex(flags, 2);
        valid.then(|| TraceParent {
            trace_id: trace_id.to_owned(),
            flags: flags.to_owned(),
        })
    }

    /// The `traceparent` to send back: the same trace, this server's span as the parent.
    pub fn echo(&self) -> String {
        let span = uuid::Uuid::new_v4().simple().to_string();
        format!("00-{}-{}-{}", self.trace_id, &span[..16], self.flags)
    }
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

/// The values one request (an HTTP request, or one WebSocket subscription) shares between its
/// resolvers, above all its DataLoaders, made on first use, so every field of a response
/// batches through the same loader. The transports insert one into each request's data; resolvers reach
/// it with [`scope`].
#[derive(Default)]
pub struct RequestScope {
    shared: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl RequestScope {
    /// This request's `T`, made by `make` when a resolver first asks for it. `make` runs
    /// without the lock held, so it may itself ask for other shared values.
    pub fn shared<T: Send + Sync + 'static>(&self, make: impl FnOnce(&Self) -> T) -> Arc<T> {
        let key = TypeId::of::<T>();
        if let Some(found) = self.lookup::<T>(key) {
            return found;
        }
        let made: Arc<T> = Arc::new(make(self));
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        // A concurrent resolver may have made one meanwhile: keep the first.
        let kept = shared.entry(key).or_insert_with(|| made.clone()).clone();
        kept.downcast::<T>().unwrap_or(made)
    }

    fn lookup<T: Send + Sync + 'static>(&self, key: TypeId) -> Option<Arc<T>> {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.get(&key)?.clone().downcast::<T>().ok()
    }
}

/// A DataLoader made while serving a request: its batches run on spawned tasks, where the
/// request's task-local id is not set, so the spawner carries the id of the request that made
/// the loader (and an `INTERNAL` error in a batch names the right request).
pub fn loader<K, L>(loader: L) -> DataLoader<L>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    L: Loader<K>,
{
    DataLoader::new(loader, batch_spawner(current_request_id()))
}

/// Like [`loader`], with a cache kept for the loader's life.
pub fn cached_loader<K, L>(loader: L) -> DataLoader<L, HashMapCache>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    L: Loader<K>,
{
    DataLoader::with_cache(
        loader,
        batch_spawner(current_request_id()),
        HashMapCache::default(),
    )
}

fn batch_spawner(
    request_id: Option<String>,
) -> impl Fn(BoxFuture<'static, ()>) -> JoinHandle<()> + Send + Sync + 'static {
    move |batch| {
        // With spans exported, a batch's statements belong to the resolver that started it.
        let batch: BoxFuture<'static, ()> = if crate::otel::enabled() {
            Box::pin(tracing::Instrument::instrument(
                batch,
                tracing::Span::current(),
            ))
        } else {
            batch
        };
        match &request_id {
            Some(id) => tokio::spawn(REQUEST_ID.scope(id.clone(), batch)),
            None => tokio::spawn(batch),
        }
    }
}

/// The request's scope, which every transport inserts.
pub fn scope<'a>(ctx: &Context<'a>) -> AppResult<&'a RequestScope> {
    ctx.data::<RequestScope>().map_err(|_| {
        AppError::internal("the request has no RequestScope (a transport must insert one)")
    })
}

#[cfg(test)]
mod tests {
    use super::TraceParent;

    #[test]
    fn traceparent_is_read_strictly() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceParent::parse(good).expect("valid");
        assert_eq!(parent.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        let echoed = parent.echo();
        assert!(echoed.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(echoed.ends_with("-01") && echoed.len() == good.len());
        assert!(!echoed.contains("00f067aa0ba902b7"), "a span id of its own");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }
}
