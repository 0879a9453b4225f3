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
    move |batch| match &request_id {
        Some(id) => tokio::spawn(REQUEST_ID.scope(id.clone(), batch)),
        None => tokio::spawn(batch),
    }
}

/// The request's scope, which every transport inserts.
pub fn scope<'a>(ctx: &Context<'a>) -> AppResult<&'a RequestScope> {
    ctx.data::<RequestScope>().map_err(|_| {
        AppError::internal("the request has no RequestScope (a transport must insert one)")
    })
}
