//! GraphQL for the audit ledger: the `AuditEntry` node, `auditEntries`, `auditEntry`,
//! `auditEntityHistory`, `signalFeedback`, and the per-run loader behind
//! `LlmRun.governanceEvents`.

use crate::runs::graphql::LlmRun;
use crate::runs::lookup::run_by_run_id;
use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, InputObject, Json, Object, SimpleObject, ID};
use sea_orm::DatabaseConnection;

use super::facets::{AuditEntrySet, AuditFacetField};
use super::{
    store, ActorType, AuditEntityType, AuditEntrySnapshot, AuditEventType, AuditFilter,
    SignalFeedbackSnapshot,
};
use crate::audit::views::{AuditDecision, AuditView};
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, AppResult};
use crate::ids::{self, NodeKind};
use crate::list_filters::{check_term, text_set, words};
use crate::pagination::PageRequest;
use crate::pagination::{self, canonical};
use crate::scalars::{BigInt, DateTime};
use crate::state::AppState;
use crate::stats::{Buckets, FacetValue, Histogram, HistogramInterval};
use crate::system::graphql::record_id_from;

/// One entry of the tenant's append-only governance ledger (topic AUDIT). Entries are
/// self-describing and hash-chained per tenant: `prevHash` is the `entryHash` of the entry
/// with the previous `seq` (see `docs/ledger.md` for the hash's exact encoding).
#[derive(Clone)]
pub struct AuditEntry(pub AuditEntrySnapshot);

#[Object]
impl AuditEntry {
    /// Global object id (for `node`).
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::AuditEntry, &self.0.id)
    }
    /// The entry's own id.
    async fn record_id(&self) -> &str {
        &self.0.id
    }
    /// Position in the tenant's chain: gapless, starting at 1.
    async fn seq(&self) -> async_graphql::Result<i32> {
        Ok(i32::try_from(self.0.seq)
            .map_err(|_| AppError::internal(format!("audit seq {} exceeds Int", self.0.seq)))?)
    }
    async fn event_type(&self) -> AuditEventType {
        self.0.event_type
    }
    async fn entity_type(&self) -> AuditEntityType {
        self.0.entity_type
    }
    /// The entity's id; for SIGNAL entities, the signal fingerprint.
    async fn entity_id(&self) -> &str {
        &self.0.entity_id
    }
    /// The decision an authorization entry records; null for other entries.
    async fn decision(&self) -> Option<AuditDecision> {
        crate::audit::views::decision_of(self.0.event_type)
    }
    async fn actor_type(&self) -> ActorType {
        self.0.actor_type
    }
    async fn actor_id(&self) -> Option<&str> {
        self.0.actor_id.as_deref()
    }
    /// The actor's justification, in their words.
    async fn action_reason(&self) -> Option<&str> {
        self.0.action_reason.as_deref()
    }
    /// The entity's state before the change (modify, update, resolve and retire events).
    async fn before_state(&self) -> Option<Json<serde_json::Value>> {
        self.0.before_state.clone().map(Json)
    }
    /// The entity's state after the change, or the event's payload.
    async fn after_state(&self) -> Option<Json<serde_json::Value>> {
        self.0.after_state.clone().map(Json)
    }
    async fn correlation_id(&self) -> Option<&str> {
        self.0.correlation_id.as_deref()
    }
    /// The run this entry concerns, when there is one.
    /// The run this entry names (`runId`), in the caller's tenant.
    async fn llm_run(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<LlmRun>> {
        Ok(run_by_run_id(ctx, self.0.run_id.as_deref()).await?)
    }
    async fn run_id(&self) -> Option<&str> {
        self.0.run_id.as_deref()
    }
    /// `entryHash` of the previous entry in the chain (64 zeros for `seq` 1).
    async fn prev_hash(&self) -> &str {
        &self.0.prev_hash
    }
    /// SHA-256 (hex) over this entry's fields and `prevHash`.
    async fn entry_hash(&self) -> &str {
        &self.0.entry_hash
    }
    /// When the entry was recorded (immutable; the list order).
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

crate::connection_types!(AuditEntryConnection, AuditEntryEdge, AuditEntry, views AuditEntrySet {
    /// Value → count of each named field over the entries matching the filter and `asOf` (all
    /// pages), most frequent first; for a console's filter dropdowns.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn facets(
        &self,
        fields: Vec<AuditFacetField>,
        #[graphql(desc = "Values per field (default 20, at most 100); the rest are `otherCount`.")]
        limit: Option<i32>,
    ) -> async_graphql::Result<Vec<AuditFacet>> {
        let limit = crate::stats::facet_args(&fields, limit, 4)?;
        let counts = self.1.facets(&fields).await?;
        Ok(crate::stats::facets_of(fields, counts, limit, |field, parts| AuditFacet {
            field,
            values: parts.values,
            other_count: parts.other_count,
            missing_count: parts.missing_count,
        }))
    }

    /// Entries per `createdAt` bucket over `[from, to)`, zero-filled, for the entries matching
    /// the filter and `asOf`. Buckets start on the interval's boundaries in `timeZone` (an IANA
    /// name; UTC when absent); the first and last are cut at `from` and `to`.
    #[graphql(complexity = "crate::limits::VIEW_COST")]
    async fn histogram(
        &self,
        interval: HistogramInterval,
        from: DateTime,
        to: DateTime,
        time_zone: Option<String>,
    ) -> async_graphql::Result<Histogram> {
        let buckets = Buckets::new(interval, from.0, to.0, time_zone.as_deref())?;
        Ok(buckets.finish_counts(&self.1.histogram(&buckets).await?))
    }
});

/// One facet of `auditEntries`.
#[derive(SimpleObject)]
pub struct AuditFacet {
    pub field: AuditFacetField,
    pub values: Vec<FacetValue>,
    /// Entries whose value was cut by `limit`.
    pub other_count: BigInt,
    /// Entries without a value for the field (no actor id).
    pub missing_count: BigInt,
}

impl crate::plain::PlainFields for AuditEntry {}

/// Filters for `auditEntries`; the same input drives the list, its `totalCount`, facets and
/// histogram, an export of the list and `auditEntryAdded`. Every given condition must hold.
#[derive(Debug, Clone, Default, InputObject)]
pub struct AuditEntryFilter {
    /// Any of these events.
    pub event_type: Option<Vec<AuditEventType>>,
    /// None of these events.
    pub event_type_not_in: Option<Vec<AuditEventType>>,
    pub entity_type: Option<AuditEntityType>,
    /// Any of these entity types.
    pub entity_type_in: Option<Vec<AuditEntityType>>,
    /// None of these entity types.
    pub entity_type_not_in: Option<Vec<AuditEntityType>>,
    pub entity_id: Option<String>,
    pub actor_type: Option<ActorType>,
    pub actor_id: Option<String>,
    /// Any of these actor ids (1 to 100).
    pub actor_id_in: Option<Vec<String>>,
    /// None of these actor ids (entries without an actor id are kept).
    pub actor_id_not_in: Option<Vec<String>>,
    pub correlation_id: Option<String>,
    /// Case-insensitive substring (3 to 100 characters) of the entry, entity, actor, run or
    /// correlation id or the action reason, answered from a trigram index.
    pub search: Option<String>,
    /// Words of the action reason and the before/after states (JSON keys and values), all of
    /// which must occur, whole and ignoring case; `word*` matches a prefix. Answered from a
    /// word index.
    pub text: Option<String>,
    /// Entries about this run.
    pub run_id: Option<String>,
    /// Inclusive lower bound on `createdAt`.
    pub created_after: Option<DateTime>,
    /// Inclusive upper bound on `createdAt`.
    pub created_before: Option<DateTime>,
    /// One of the console's audit views (identity, authorization, access), combined with the
    /// other fields.
    pub view: Option<AuditView>,
}

impl TryFrom<AuditEntryFilter> for AuditFilter {
    type Error = AppError;

    fn try_from(f: AuditEntryFilter) -> AppResult<Self> {
        let (event_type, actor_type) = match f.view {
            Some(view) => crate::audit::views::narrow(view, f.event_type, f.actor_type),
            None => (f.event_type, f.actor_type),
        };
        if let Some(term) = &f.search {
            check_term("search", term)?;
        }
        let entity_types = |v: Option<Vec<_>>| v.map(|v| canonical(v, AuditEntityType::as_str));
        Ok(AuditFilter {
            event_type: event_type.map(|v| canonical(v, AuditEventType::as_str)),
            event_type_not_in: f
                .event_type_not_in
                .map(|v| canonical(v, AuditEventType::as_str)),
            entity_type: f.entity_type,
            entity_type_in: entity_types(f.entity_type_in),
            entity_type_not_in: entity_types(f.entity_type_not_in),
            entity_id: f.entity_id,
            actor_type,
            actor_id: f.actor_id,
            actor_id_in: text_set("actorIdIn", f.actor_id_in)?,
            actor_id_not_in: text_set("actorIdNotIn", f.actor_id_not_in)?,
            run_id: f.run_id,
            correlation_id: f.correlation_id,
            created_after: f.created_after.map(|d| d.0),
            created_before: f.created_before.map(|d| d.0),
            search: f.search,
            text: f.text.map(|t| words("text", &t)).transpose()?,
        })
    }
}

/// Operator feedback on one signal, folded from the ledger's SignalAcknowledged,
/// SignalSuppressed and SignalEscalated entries about it: for each kind the latest entry wins.
/// Feedback is never stored as mutable state; there is no un-acknowledge event.
pub struct SignalFeedback(pub SignalFeedbackSnapshot);

#[Object]
impl SignalFeedback {
    /// The signal's fingerprint (the entries' `entityId`).
    async fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }
    /// True once any SignalAcknowledged entry exists.
    async fn acknowledged(&self) -> bool {
        self.0.acknowledged
    }
    /// Actor of the latest acknowledgement.
    async fn acknowledged_by(&self) -> Option<&str> {
        self.0.acknowledged_by.as_deref()
    }
    /// Time of the latest acknowledgement.
    async fn acknowledged_at(&self) -> Option<DateTime> {
        self.0.acknowledged_at.map(Into::into)
    }
    /// True once any SignalSuppressed entry exists, expired or not (see `suppressionActive`).
    async fn suppressed(&self) -> bool {
        self.0.suppressed
    }
    /// Actor of the latest suppression.
    async fn suppressed_by(&self) -> Option<&str> {
        self.0.suppressed_by.as_deref()
    }
    /// Time of the latest suppression.
    async fn suppressed_at(&self) -> Option<DateTime> {
        self.0.suppressed_at.map(Into::into)
    }
    /// End of the latest suppression (`suppressed_until` of its payload); null when the
    /// payload gives none or gives something that is not a timestamp.
    async fn suppressed_until(&self) -> Option<DateTime> {
        self.0.suppressed_until.map(Into::into)
    }
    /// Whether the latest suppression is in force now: it has no `suppressed_until`, or that
    /// lies in the future. A `suppressed_until` that is not a timestamp counts as expired.
    async fn suppression_active(&self) -> bool {
        self.0.suppression_active
    }
    /// True once any SignalEscalated entry exists.
    async fn escalated(&self) -> bool {
        self.0.escalated
    }
    /// Time of the latest escalation.
    async fn escalated_at(&self) -> Option<DateTime> {
        self.0.escalated_at.map(Into::into)
    }
    /// Time of the latest feedback entry of any kind.
    async fn last_event_at(&self) -> DateTime {
        self.0.last_event_at.into()
    }
}

/// Fetches an entry by its record id for `node(id)` and `auditEntry`, tenant-scoped; outside
/// the tenant's read window (on `createdAt`) it is `NOT_FOUND`, like another tenant's.
pub async fn node(ctx: &Context<'_>, record_id: &str) -> AppResult<AuditEntry> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    let found = store::get(&state.db, &principal.tenant_id, record_id).await?;
    pagination::within_read_window(ctx, &principal.tenant_id, found, |e| e.created_at)
        .await?
        .map(AuditEntry)
        .ok_or(AppError::NotFound("AuditEntry"))
}

crate::list_field!(
    /// The tenant's audit entries, newest first (ties broken by id).
    AuditEntriesField.audit_entries(AuditEntryFilter) -> AuditEntryConnection, via audit_entries_page
);

/// A page of `auditEntries` and the views over the same filter.
async fn audit_entries_page(
    ctx: &Context<'_>,
    filter: AuditEntryFilter,
    request: PageRequest,
) -> AppResult<AuditEntryConnection> {
    let filter = AuditFilter::try_from(filter)?;
    let listed = pagination::view_page::<store::AuditList>(ctx, filter, request).await?;
    let views = AuditEntrySet {
        db: listed.db,
        tenant: listed.tenant,
        filter: listed.filter,
        as_of: listed.as_of,
    };
    Ok(AuditEntryConnection(listed.page.map(AuditEntry), views))
}

/// The root fields, in schema order.
#[derive(async_graphql::MergedObject, Default)]
pub struct AuditQuery(AuditEntriesField, AuditLookupQuery);

#[derive(Default)]
pub struct AuditLookupQuery;

#[Object]
impl AuditLookupQuery {
    /// One audit entry, by its `id` or its `recordId`.
    async fn audit_entry(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<AuditEntry>> {
        let record_id = record_id_from(&id, NodeKind::AuditEntry);
        Ok(Some(node(ctx, &record_id).await?))
    }

    /// Everything the ledger records about one entity inside the tenant's read window (like
    /// `auditEntries`), newest first.
    #[graphql(complexity = "crate::limits::list_cost(first, last, child_complexity)")]
    #[expect(
        clippy::too_many_arguments,
        reason = "the entity plus the Relay arguments and asOf"
    )]
    async fn audit_entity_history(
        &self,
        ctx: &Context<'_>,
        entity_type: AuditEntityType,
        #[graphql(desc = "The entity's id; for SIGNAL, the signal fingerprint.")] entity_id: String,
        #[graphql(
            desc = "Only rows recorded at or before this instant: a stable snapshot to page."
        )]
        as_of: Option<DateTime>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<AuditEntryConnection> {
        let request = PageRequest::new(first, after, last, before, as_of.map(|d| d.0))
            .sized(crate::pagination::page_sizes(ctx));
        let key = store::EntityKey {
            entity_type,
            entity_id,
            created_after: None,
        };
        let listed = pagination::view_page::<store::EntityHistory>(ctx, key, request).await?;
        // The views read the same entries through the list filter, narrowed to the same window.
        let filter = AuditFilter {
            entity_type: Some(listed.filter.entity_type),
            entity_id: Some(listed.filter.entity_id.clone()),
            created_after: listed.filter.created_after,
            ..AuditFilter::default()
        };
        let views = AuditEntrySet {
            db: listed.db,
            tenant: listed.tenant,
            filter,
            as_of: listed.as_of,
        };
        Ok(AuditEntryConnection(listed.page.map(AuditEntry), views))
    }

    /// Operator feedback on a signal, evaluated now; null when the signal has none.
    async fn signal_feedback(
        &self,
        ctx: &Context<'_>,
        fingerprint: String,
    ) -> async_graphql::Result<Option<SignalFeedback>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>();
        let feedback = store::signal_feedback(
            &state.db,
            &principal.tenant_id,
            &fingerprint,
            crate::scalars::now(),
        )
        .await?;
        Ok(feedback.map(SignalFeedback))
    }
}

/// Batches `LlmRun.governanceEvents`: keyed by run id, one SQL statement per batch (see
/// [`store::governance_events_for_runs`]). Carries the request's tenant; create one per
/// request. Every requested run gets a value (an empty list when it has no events).
pub struct GovernanceEventsByRun {
    db: DatabaseConnection,
    tenant: TenantId,
}

impl GovernanceEventsByRun {
    pub fn new(db: DatabaseConnection, tenant: TenantId) -> Self {
        GovernanceEventsByRun { db, tenant }
    }
}

impl Loader<String> for GovernanceEventsByRun {
    type Value = Vec<AuditEntry>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let found = store::governance_events_for_runs(&self.db, &self.tenant, keys).await?;
        Ok(found
            .into_iter()
            .map(|(run, entries)| (run, entries.into_iter().map(AuditEntry).collect()))
            .collect())
    }
}
