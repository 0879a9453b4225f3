//! Reads of `audit_ledger`. Every query is scoped to one tenant in the SQL itself.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::audit_ledger::{self, Column, Entity};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Select};
use serde::Serialize;

use super::{
    fold_signal_feedback, ActorType, AuditEntityType, AuditEntrySnapshot, AuditEventType,
    AuditFilter, SignalFeedbackSnapshot,
};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::list_filters::{stored_values, within_sets, TextSearch, WordSearch};
use crate::pagination::{created_within, Listed, Position};
use crate::system::store::newest_per_key;

/// Most governance events returned per run by [`governance_events_for_runs`]; the complete
/// list is `auditEntries(filter: {runId})`.
pub const GOVERNANCE_EVENTS_PER_RUN: u64 = 100;

pub(crate) fn snapshot(m: audit_ledger::Model) -> AppResult<AuditEntrySnapshot> {
    let bad = |what: &str, value: &str| {
        AppError::internal(format!("audit entry {} has unknown {what} {value}", m.id))
    };
    let event_type =
        AuditEventType::parse(&m.event_type).ok_or_else(|| bad("event type", &m.event_type))?;
    let entity_type =
        AuditEntityType::parse(&m.entity_type).ok_or_else(|| bad("entity type", &m.entity_type))?;
    let actor_type =
        ActorType::parse(&m.actor_type).ok_or_else(|| bad("actor type", &m.actor_type))?;
    Ok(AuditEntrySnapshot {
        id: m.id,
        tenant_id: m.tenant_id,
        seq: m.seq,
        event_type,
        entity_type,
        entity_id: m.entity_id,
        actor_type,
        actor_id: m.actor_id,
        action_reason: m.action_reason,
        before_state: m.before_state,
        after_state: m.after_state,
        run_id: m.run_id,
        correlation_id: m.correlation_id,
        prev_hash: m.prev_hash,
        entry_hash: m.entry_hash,
        hash_version: m.hash_version,
        created_at: m.created_at,
    })
}

fn position(e: &AuditEntrySnapshot) -> Position {
    Position::of(e.created_at, &e.id)
}

fn tenant_rows(tenant: &TenantId) -> Select<Entity> {
    Entity::find().filter(Column::TenantId.eq(tenant.as_str()))
}

/// The substring search over an entry's short text: its id, entity, actor, run and correlation
/// ids and its action reason (migration `m20261205_050000_system_audit_console_reads`).
pub const AUDIT_SEARCH: TextSearch = TextSearch {
    table: "audit_ledger",
    text: "lower(id || ' ' || entity_id || ' ' || coalesce(actor_id, '') || ' ' || \
        coalesce(run_id, '') || ' ' || coalesce(correlation_id, '') || ' ' || \
        coalesce(action_reason, ''))",
    fts_table: "audit_entry_search",
};

/// The word search over an entry's action reason and before/after states (keys and values).
pub const AUDIT_WORDS: WordSearch = WordSearch {
    table: "audit_ledger",
    column: "search_words",
    fts_table: "audit_entry_words",
};

/// The tenant's entries matching `filter`; the text searches are written for `backend`.
pub(crate) fn filtered(
    backend: DbBackend,
    tenant: &TenantId,
    filter: &AuditFilter,
) -> Select<Entity> {
    let mut q = tenant_rows(tenant);
    let event_types = (
        stored_values(&filter.event_type, AuditEventType::as_str),
        stored_values(&filter.event_type_not_in, AuditEventType::as_str),
    );
    q = within_sets(
        q,
        Column::EventType,
        event_types.0.as_deref(),
        event_types.1.as_deref(),
    );
    let entity_types = (
        stored_values(&filter.entity_type_in, AuditEntityType::as_str),
        stored_values(&filter.entity_type_not_in, AuditEntityType::as_str),
    );
    q = within_sets(
        q,
        Column::EntityType,
        entity_types.0.as_deref(),
        entity_types.1.as_deref(),
    );
    q = within_sets(
        q,
        Column::ActorId,
        filter.actor_id_in.as_deref(),
        filter.actor_id_not_in.as_deref(),
    );
    if let Some(v) = &filter.correlation_id {
        q = q.filter(Column::CorrelationId.eq(v.as_str()));
    }
    if let Some(term) = &filter.search {
        q = q.filter(AUDIT_SEARCH.matches(backend, term));
    }
    if let Some(words) = &filter.text {
        q = q.filter(AUDIT_WORDS.matches(backend, words));
    }
    if let Some(v) = filter.entity_type {
        q = q.filter(Column::EntityType.eq(v.as_str()));
    }
    if let Some(v) = &filter.entity_id {
        q = q.filter(Column::EntityId.eq(v.as_str()));
    }
    if let Some(v) = filter.actor_type {
        q = q.filter(Column::ActorType.eq(v.as_str()));
    }
    if let Some(v) = &filter.actor_id {
        q = q.filter(Column::ActorId.eq(v.as_str()));
    }
    if let Some(v) = &filter.run_id {
        q = q.filter(Column::RunId.eq(v.as_str()));
    }
    created_within(
        q,
        Column::CreatedAt,
        filter.created_after,
        filter.created_before,
    )
}

/// The tenant's audit entries matching a filter, newest first (`auditEntries`).
pub struct AuditList;

impl Listed for AuditList {
    type Entity = Entity;
    type Filter = AuditFilter;
    type Row = AuditEntrySnapshot;
    const NAME: &'static str = "auditEntries";
    const ORDER: (Column, Column) = (Column::CreatedAt, Column::Id);
    const ROW: fn(audit_ledger::Model) -> AppResult<AuditEntrySnapshot> = snapshot;
    const POSITION: fn(&AuditEntrySnapshot) -> Position = position;

    /// Log data: only the tenant's read window (`crate::read_window`).
    fn time_bounds(filter: &mut Self::Filter) -> Option<crate::pagination::TimeBounds<'_>> {
        Some(crate::pagination::TimeBounds {
            field: "createdAfter",
            to: filter.created_before,
            from: &mut filter.created_after,
        })
    }

    /// Only the text searches need the backend; every caller goes through `select_on` with
    /// the connection's. Without one, the PostgreSQL form.
    fn select(
        tenant: &TenantId,
        filter: &AuditFilter,
        as_of: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        Self::select_on(DbBackend::Postgres, tenant, filter, as_of)
    }

    fn select_on(
        backend: DbBackend,
        tenant: &TenantId,
        filter: &AuditFilter,
        _: Option<DateTime<Utc>>,
    ) -> Select<Entity> {
        filtered(backend, tenant, filter)
    }
}

/// The entity an entity-history list is about (and its cursors are bound to).
#[derive(Clone, Serialize)]
pub struct EntityKey {
    pub entity_type: AuditEntityType,
    pub entity_id: String,
    /// The start of the tenant's read window, set by `pagination` (never by the client): left
    /// out of the cursor scope while unset, so cursors are bound to the entity alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_after: Option<DateTime<Utc>>,
}

/// The entries about one entity, newest first (`auditEntityHistory`, docs/domain.md §4.4).
pub struct EntityHistory;

impl Listed for EntityHistory {
    type Entity = Entity;
    type Filter = EntityKey;
    type Row = AuditEntrySnapshot;
    const NAME: &'static str = "auditEntityHistory";
    const ORDER: (Column, Column) = (Column::CreatedAt, Column::Id);
    const ROW: fn(audit_ledger::Model) -> AppResult<AuditEntrySnapshot> = snapshot;
    const POSITION: fn(&AuditEntrySnapshot) -> Position = position;

    /// Log data, like `auditEntries`: only the tenant's read window (`crate::read_window`).
    fn time_bounds(key: &mut Self::Filter) -> Option<crate::pagination::TimeBounds<'_>> {
        Some(crate::pagination::TimeBounds {
            field: "createdAfter",
            to: None,
            from: &mut key.created_after,
        })
    }

    fn select(tenant: &TenantId, key: &EntityKey, _: Option<DateTime<Utc>>) -> Select<Entity> {
        let q = tenant_rows(tenant)
            .filter(Column::EntityType.eq(key.entity_type.as_str()))
            .filter(Column::EntityId.eq(key.entity_id.as_str()));
        created_within(q, Column::CreatedAt, key.created_after, None)
    }
}

pub async fn get(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
) -> AppResult<Option<AuditEntrySnapshot>> {
    let found = tenant_rows(tenant)
        .filter(Column::Id.eq(id))
        .one(db)
        .await?;
    found.map(snapshot).transpose()
}

/// The feedback on one signal (docs/domain.md §4.5), evaluated at `now`; `None` when the signal has
/// no feedback entries. Selects only the latest entry of each of the three kinds (at most three
/// rows): an entry for which no later entry (higher `seq`) of the same kind exists.
pub async fn signal_feedback(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<SignalFeedbackSnapshot>> {
    let kinds = [
        AuditEventType::SignalAcknowledged,
        AuditEventType::SignalSuppressed,
        AuditEventType::SignalEscalated,
    ];
    let table = Alias::new("audit_ledger");
    let newer = Alias::new("newer");
    let later_of_same_kind = Query::select()
        .expr(Expr::val(1))
        .from_as(table.clone(), newer.clone())
        .and_where(
            Expr::col((newer.clone(), Column::TenantId)).equals((table.clone(), Column::TenantId)),
        )
        .and_where(
            Expr::col((newer.clone(), Column::EntityType))
                .equals((table.clone(), Column::EntityType)),
        )
        .and_where(
            Expr::col((newer.clone(), Column::EntityId)).equals((table.clone(), Column::EntityId)),
        )
        .and_where(
            Expr::col((newer.clone(), Column::EventType))
                .equals((table.clone(), Column::EventType)),
        )
        .and_where(Expr::col((newer, Column::Seq)).gt(Expr::col((table, Column::Seq))))
        .to_owned();
    let rows = tenant_rows(tenant)
        .filter(Column::EntityType.eq(AuditEntityType::Signal.as_str()))
        .filter(Column::EntityId.eq(fingerprint))
        .filter(Column::EventType.is_in(kinds.iter().map(|k| k.as_str())))
        .filter(Expr::not_exists(later_of_same_kind))
        .all(db)
        .await?;
    let entries = rows
        .into_iter()
        .map(snapshot)
        .collect::<AppResult<Vec<_>>>()?;
    Ok(fold_signal_feedback(fingerprint, &entries, now))
}

/// The governance events of each run (O3, docs/domain.md §4.4): entries of the tenant whose
/// `run_id` column is the run and whose entity type is POLICY_RULE, LIMIT, POLICY_PROPOSAL or
/// INCIDENT, newest first, at most [`GOVERNANCE_EVENTS_PER_RUN`] per run. Both conditions are in
/// the SQL (the Python platform limited first and filtered after; docs/decisions.md D3). One
/// statement whatever the number of runs; a run with no events maps to an empty list.
pub async fn governance_events_for_runs(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    run_ids: &[String],
) -> AppResult<HashMap<String, Vec<AuditEntrySnapshot>>> {
    let mut out: HashMap<String, Vec<AuditEntrySnapshot>> =
        run_ids.iter().map(|r| (r.clone(), Vec::new())).collect();
    if run_ids.is_empty() {
        return Ok(out);
    }
    let select = tenant_rows(tenant)
        .filter(Column::RunId.is_in(run_ids.iter().map(String::as_str)))
        .filter(Column::EntityType.is_in(AuditEntityType::GOVERNANCE.iter().map(|t| t.as_str())));
    let rows = newest_per_key(
        db,
        select,
        Column::RunId,
        Column::CreatedAt,
        Column::Id,
        GOVERNANCE_EVENTS_PER_RUN,
    )
    .await?;
    for row in rows {
        let entry = snapshot(row)?;
        if let Some(list) = entry.run_id.as_ref().and_then(|run| out.get_mut(run)) {
            list.push(entry);
        }
    }
    Ok(out)
}

/// The tenant's entries about each of these entities of one type (an incident's lifecycle, say),
/// newest first, at most [`GOVERNANCE_EVENTS_PER_RUN`] per entity, in one statement.
pub async fn entries_about(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    entity_type: AuditEntityType,
    entity_ids: &[String],
) -> AppResult<HashMap<String, Vec<AuditEntrySnapshot>>> {
    let mut out: HashMap<String, Vec<AuditEntrySnapshot>> = HashMap::new();
    if entity_ids.is_empty() {
        return Ok(out);
    }
    let select = tenant_rows(tenant)
        .filter(Column::EntityType.eq(entity_type.as_str()))
        .filter(Column::EntityId.is_in(entity_ids.iter().map(String::as_str)));
    let rows = newest_per_key(
        db,
        select,
        Column::EntityId,
        Column::CreatedAt,
        Column::Id,
        GOVERNANCE_EVENTS_PER_RUN,
    )
    .await?;
    for row in rows {
        let entry = snapshot(row)?;
        out.entry(entry.entity_id.clone()).or_default().push(entry);
    }
    Ok(out)
}
