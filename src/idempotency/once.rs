//! The ceremony every write mutation goes through, in one place: claim the idempotency key (if
//! any) in a write transaction, run the effect in it, store what a duplicate gets back, commit,
//! and only then announce the change to subscribers. A duplicate of a completed key gets the
//! first result back without running the effect again.
//!
//! ```ignore
//! let run = WriteOnce::new(state, tenant, "recordLlmRun", idempotency_key, &new)?
//!     .publish(Topic::LlmRuns)
//!     .run_with_receipt(
//!         async |txn| write::record_run(txn, tenant, new).await,
//!         |run| run.id.clone(),
//!         async |id| stored_run(state, tenant, &id).await,
//!     )
//!     .await?;
//! ```

use sea_orm::DatabaseTransaction;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{begin, Begun, Keyed};
use crate::auth::TenantId;
use crate::error::AppResult;
use crate::events::Topic;
use crate::state::AppState;

/// Whether a fresh result is worth announcing.
type Announce<T> = (Topic, fn(&T) -> bool);

/// One write mutation's call, producing a `T`.
#[must_use = "a write does nothing until it is run"]
pub struct WriteOnce<'a, T> {
    state: &'a AppState,
    tenant: &'a TenantId,
    keyed: Option<Keyed>,
    publish: Option<Announce<T>>,
    after_commit: Option<fn(&T)>,
}

impl<'a, T> WriteOnce<'a, T> {
    /// Checks the `idempotencyKey` argument as given and hashes `input`, the mutation's whole
    /// input (a duplicate must bring the same), under `operation`, the mutation's name.
    pub fn new(
        state: &'a AppState,
        tenant: &'a TenantId,
        operation: &'static str,
        idempotency_key: Option<String>,
        input: &impl Serialize,
    ) -> AppResult<Self> {
        Ok(Self {
            state,
            tenant,
            keyed: Keyed::optional(operation, idempotency_key, input)?,
            publish: None,
            after_commit: None,
        })
    }

    /// After a fresh write commits, wakes the tenant's subscribers of `topic`.
    pub fn publish(self, topic: Topic) -> Self {
        self.publish_if(topic, |_| true)
    }

    /// [`Self::publish`], when the result says there is something new.
    pub fn publish_if(mut self, topic: Topic, when: fn(&T) -> bool) -> Self {
        self.publish = Some((topic, when));
        self
    }

    /// Runs `then` after a fresh write commits (before subscribers are woken).
    pub fn after_commit(mut self, then: fn(&T)) -> Self {
        self.after_commit = Some(then);
        self
    }

    /// Runs `effect` once per key; the key stores the result itself, and a duplicate gets that.
    pub async fn run(
        self,
        effect: impl AsyncFnOnce(&DatabaseTransaction) -> AppResult<T>,
    ) -> AppResult<T>
    where
        T: Serialize + DeserializeOwned,
    {
        let write = match self.begin().await? {
            Begun::Fresh(write) => write,
            Begun::Replayed(result) => return Ok(result),
        };
        let result = effect(write.txn()).await?;
        write.commit(&result).await?;
        self.committed(&result).await;
        Ok(result)
    }

    /// Runs `effect` once per key; the key stores the result's `receipt` (typically the id of
    /// what it wrote), from which a duplicate's result is read again with `reread`.
    pub async fn run_with_receipt<R: Serialize + DeserializeOwned>(
        self,
        effect: impl AsyncFnOnce(&DatabaseTransaction) -> AppResult<T>,
        receipt: impl FnOnce(&T) -> R,
        reread: impl AsyncFnOnce(R) -> AppResult<T>,
    ) -> AppResult<T> {
        let write = match self.begin().await? {
            Begun::Fresh(write) => write,
            Begun::Replayed(receipt) => return reread(receipt).await,
        };
        let result = effect(write.txn()).await?;
        write.commit(&receipt(&result)).await?;
        self.committed(&result).await;
        Ok(result)
    }

    async fn begin<S: DeserializeOwned>(&self) -> AppResult<Begun<S>> {
        begin(&self.state.db, self.tenant, self.keyed.as_ref()).await
    }

    /// Committed: from here on nothing may turn the answer into an error.
    async fn committed(&self, result: &T) {
        if let Some(then) = self.after_commit {
            then(result);
        }
        if let Some((topic, when)) = self.publish {
            if when(result) {
                self.state.events.publish(topic, self.tenant).await;
            }
        }
    }
}
