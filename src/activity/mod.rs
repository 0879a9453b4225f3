//! The activity feed (`activity`, docs/console.md): one newest-first stream of what happened in
//! a tenant, merging its runs, the system records it may see, its audit entries and its traces'
//! starts and ends. It reads four domains' lists and shows their node types, so it lives above
//! them, beside `run_node`.
//!
//! Each item has a time, a kind and its row id; the feed is ordered by (time, kind, id), all
//! descending, and a cursor holds that triple. A page asks each selected source for the
//! positions of its rows strictly after the cursor in that order (one keyset read over the
//! source's own `(tenant, time, id)` index, at most `first + 1` rows), merges them, keeps
//! `first` and reads those rows: at most
//! ten statements whatever the page size (positions first, then the kept rows whole).

pub mod graphql;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{aos_traces, audit_ledger, llm_run_records, system_records};
use sea_orm::sea_query::{Condition, IntoCondition};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use serde::Serialize;

use crate::audit::{AuditEntrySnapshot, AuditFilter};
use crate::auth::TenantId;
use crate::cursor::Scope;
use crate::error::AppResult;
use crate::pagination::Position;
use crate::runs::{LlmRunSnapshot, RunFilter};
use crate::system::{SystemFilter, SystemRecordSnapshot};
use crate::traces::{TraceListFilter, TraceSnapshot};

/// What an activity item records. The declaration order is the tie order: at one instant a
/// run comes before (below, newest first) a system record, and so on.
#[derive(
    async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActivityKind {
    /// A run was recorded (its `createdAt`).
    LlmRun,
    /// A system record was recorded: the tenant's own or a system-wide one.
    SystemRecord,
    /// An audit entry was appended.
    AuditEntry,
    /// A trace started (its `createdAt`, when Logbook stored it).
    TraceStarted,
    /// A trace was sealed: completed, failed or aborted (its `completedAt`).
    TraceEnded,
}

impl ActivityKind {
    pub const ALL: [ActivityKind; 5] = [
        ActivityKind::LlmRun,
        ActivityKind::SystemRecord,
        ActivityKind::AuditEntry,
        ActivityKind::TraceStarted,
        ActivityKind::TraceEnded,
    ];

    fn rank(self) -> u8 {
        self as u8
    }

    fn of_rank(rank: u8) -> Option<Self> {
        Self::ALL.get(rank as usize).copied()
    }
}

/// What the feed shows: kinds (all by default), one run's activity, a time window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ActivityFilter {
    /// Sorted and deduplicated; `None`: every kind.
    pub kinds: Option<Vec<ActivityKind>>,
    /// Items about one run: the run, records correlated with it, entries naming it, its traces.
    pub run_id: Option<String>,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

impl ActivityFilter {
    fn kinds(&self) -> Vec<ActivityKind> {
        self.kinds
            .clone()
            .unwrap_or_else(|| ActivityKind::ALL.to_vec())
    }
}

/// Where an item stands in the feed: (time, kind, id), ordered descending.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ActivityPosition {
    pub at: DateTime<Utc>,
    pub kind: ActivityKind,
    pub id: String,
}

impl ActivityPosition {
    /// As a list position: the time, then `<kind rank>:<id>`.
    pub fn encode(&self) -> Position {
        Position::of(self.at, &format!("{}:{}", self.kind.rank(), self.id))
    }

    pub fn decode(p: &Position) -> Option<Self> {
        let (rank, id) = p.id.split_once(':')?;
        Some(ActivityPosition {
            at: p.time().ok()?,
            kind: ActivityKind::of_rank(rank.parse().ok()?)?,
            id: id.to_owned(),
        })
    }
}

/// What an item is about.
#[derive(Debug, Clone)]
pub enum ActivitySubject {
    LlmRun(LlmRunSnapshot),
    SystemRecord(SystemRecordSnapshot),
    AuditEntry(AuditEntrySnapshot),
    /// Boxed: several times the size of the others.
    Trace(Box<TraceSnapshot>),
}

/// One item of the feed.
#[derive(Debug, Clone)]
pub struct ActivityItem {
    pub position: ActivityPosition,
    pub subject: ActivitySubject,
}

/// The cursor scope of the feed for `tenant`, `filter` and `as_of`: a page's cursors and the
/// live tail's (`as_of` none) are the same.
pub fn scope(tenant: &TenantId, filter: &ActivityFilter, as_of: Option<DateTime<Utc>>) -> Scope {
    Scope::new(tenant.as_str(), "activity", "AT_DESC", filter, as_of)
}

/// Which way a read goes from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Older items, newest first: a page of the feed.
    Older,
    /// Newer items, oldest first: the live tail (`activityAdded`).
    Newer,
}

/// A source's rows past `cursor` in `direction`, within the filter's window and `as_of`, in
/// that direction's order.
fn past_cursor<E: EntityTrait>(
    select: Select<E>,
    (at, id): (E::Column, E::Column),
    kind: ActivityKind,
    r: &Reading<'_>,
) -> Select<E> {
    use std::cmp::Ordering;
    let (filter, direction) = (r.filter, r.direction);
    let mut select = select;
    if let Some(t) = filter.after {
        select = select.filter(at.gte(t));
    }
    for t in [filter.before, r.as_of].into_iter().flatten() {
        select = select.filter(at.lte(t));
    }
    if let Some(c) = r.cursor {
        let same_instant_id = match direction {
            Direction::Older => id.lt(c.id.as_str()),
            Direction::Newer => id.gt(c.id.as_str()),
        };
        // At the cursor's instant, a kind ranked below it comes before it in the feed (older)
        // and one ranked above it after it (newer).
        let keyset: Condition = match (kind.cmp(&c.kind), direction) {
            (Ordering::Less, Direction::Older) => at.lte(c.at).into_condition(),
            (Ordering::Greater, Direction::Older) => at.lt(c.at).into_condition(),
            (Ordering::Less, Direction::Newer) => at.gt(c.at).into_condition(),
            (Ordering::Greater, Direction::Newer) => at.gte(c.at).into_condition(),
            (Ordering::Equal, Direction::Older) => Condition::any()
                .add(at.lt(c.at))
                .add(Condition::all().add(at.eq(c.at)).add(same_instant_id)),
            (Ordering::Equal, Direction::Newer) => Condition::any()
                .add(at.gt(c.at))
                .add(Condition::all().add(at.eq(c.at)).add(same_instant_id)),
        };
        select = select.filter(keyset);
    }
    match direction {
        Direction::Older => select.order_by_desc(at).order_by_desc(id),
        Direction::Newer => select.order_by_asc(at).order_by_asc(id),
    }
}

/// The rows of one kind for `tenant` and the filter (before the window and cursor).
struct Sources<'a> {
    db: &'a DatabaseConnection,
    tenant: &'a TenantId,
    filter: &'a ActivityFilter,
}

impl Sources<'_> {
    fn runs(&self) -> Select<llm_run_records::Entity> {
        let filter = RunFilter {
            run_id: self.filter.run_id.clone(),
            ..RunFilter::default()
        };
        crate::runs::store::filtered(self.db.get_database_backend(), self.tenant, &filter)
    }

    fn system_records(&self) -> Select<system_records::Entity> {
        let filter = SystemFilter {
            correlation_id: self.filter.run_id.clone(),
            ..SystemFilter::default()
        };
        crate::system::store::filtered(self.db.get_database_backend(), self.tenant, &filter)
    }

    fn audit(&self) -> Select<audit_ledger::Entity> {
        let filter = AuditFilter {
            run_id: self.filter.run_id.clone(),
            ..AuditFilter::default()
        };
        crate::audit::store::filtered(self.db.get_database_backend(), self.tenant, &filter)
    }

    fn traces(&self, ended: bool) -> Select<aos_traces::Entity> {
        let filter = TraceListFilter {
            run_id: self.filter.run_id.clone(),
            ..TraceListFilter::default()
        };
        let select =
            crate::traces::store::filtered(self.db.get_database_backend(), self.tenant, &filter);
        if ended {
            select.filter(aos_traces::Column::CompletedAt.is_not_null())
        } else {
            select
        }
    }
}

/// The (time, id) of up to `limit` rows of `select` (already in feed order).
async fn positions<E: EntityTrait>(
    db: &DatabaseConnection,
    select: Select<E>,
    (at, id): (E::Column, E::Column),
    limit: u64,
) -> AppResult<Vec<(Option<DateTime<Utc>>, String)>> {
    Ok(select
        .select_only()
        .column(at)
        .column(id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?)
}

/// How a read of the sources goes: the filter's window and `as_of`, from a cursor, one way.
struct Reading<'a> {
    filter: &'a ActivityFilter,
    as_of: Option<DateTime<Utc>>,
    cursor: Option<&'a ActivityPosition>,
    direction: Direction,
}

/// What a read of one source returns: its next positions, or its count.
enum Want {
    Positions(u64),
    Count,
}

enum Found {
    Positions(Vec<(Option<DateTime<Utc>>, String)>),
    Count(u64),
}

impl Sources<'_> {
    /// One kind's positions or count, over its own `(tenant, time, id)` index.
    async fn read(&self, r: &Reading<'_>, kind: ActivityKind, want: Want) -> AppResult<Found> {
        use ActivityKind as K;
        match kind {
            K::LlmRun => {
                use llm_run_records::Column as C;
                self.finish(r, self.runs(), (C::CreatedAt, C::Id), kind, want)
                    .await
            }
            K::SystemRecord => {
                use system_records::Column as C;
                let select = self.system_records();
                self.finish(r, select, (C::CreatedAt, C::Id), kind, want)
                    .await
            }
            K::AuditEntry => {
                use audit_ledger::Column as C;
                self.finish(r, self.audit(), (C::CreatedAt, C::Id), kind, want)
                    .await
            }
            K::TraceStarted | K::TraceEnded => {
                use aos_traces::Column as C;
                let ended = kind == K::TraceEnded;
                let at = if ended { C::CompletedAt } else { C::CreatedAt };
                self.finish(r, self.traces(ended), (at, C::Id), kind, want)
                    .await
            }
        }
    }

    async fn finish<E: EntityTrait>(
        &self,
        r: &Reading<'_>,
        select: Select<E>,
        columns: (E::Column, E::Column),
        kind: ActivityKind,
        want: Want,
    ) -> AppResult<Found>
    where
        E::Model: Sync,
    {
        let select = past_cursor(select, columns, kind, r);
        Ok(match want {
            Want::Positions(limit) => {
                Found::Positions(positions(self.db, select, columns, limit).await?)
            }
            Want::Count => Found::Count(select.count(self.db).await?),
        })
    }
}

/// Up to `limit` items strictly after `cursor` (from the newest when `None`), newest first.
pub async fn page(
    db: &DatabaseConnection,
    tenant: &TenantId,
    filter: &ActivityFilter,
    as_of: Option<DateTime<Utc>>,
    cursor: Option<&ActivityPosition>,
    limit: u64,
) -> AppResult<Vec<ActivityItem>> {
    read(db, tenant, filter, as_of, cursor, Direction::Older, limit).await
}

/// Up to `limit` items strictly newer than `cursor` (from the oldest when `None`), oldest first.
pub async fn newer(
    db: &DatabaseConnection,
    tenant: &TenantId,
    filter: &ActivityFilter,
    cursor: Option<&ActivityPosition>,
    limit: u64,
) -> AppResult<Vec<ActivityItem>> {
    read(db, tenant, filter, None, cursor, Direction::Newer, limit).await
}

/// Up to `limit` items past `cursor` in `direction` (from the newest or the oldest without
/// one), in that direction's order.
///
/// Two phases, so only the rows shown are read whole: each selected kind's next `limit`
/// positions (time and id, from its index), merged and cut to `limit`; then, per kind that kept
/// any, its rows by id. At most ten statements.
async fn read(
    db: &DatabaseConnection,
    tenant: &TenantId,
    filter: &ActivityFilter,
    as_of: Option<DateTime<Utc>>,
    cursor: Option<&ActivityPosition>,
    direction: Direction,
    limit: u64,
) -> AppResult<Vec<ActivityItem>> {
    let sources = Sources { db, tenant, filter };
    let mut kept: Vec<ActivityPosition> = Vec::new();
    let reading = Reading {
        filter,
        as_of,
        cursor,
        direction,
    };
    for kind in filter.kinds() {
        let found = match sources.read(&reading, kind, Want::Positions(limit)).await? {
            Found::Positions(found) => found,
            Found::Count(_) => Vec::new(),
        };
        kept.extend(
            found
                .into_iter()
                .filter_map(|(at, id)| Some(ActivityPosition { at: at?, kind, id })),
        );
    }
    match direction {
        Direction::Older => kept.sort_by(|a, b| b.cmp(a)),
        Direction::Newer => kept.sort(),
    }
    kept.truncate(limit as usize);
    let mut subjects = subjects_of(db, tenant, &kept).await?;
    // A trace archived between the two reads is left out of the page; the next page still
    // starts after the last item shown.
    Ok(kept
        .into_iter()
        .filter_map(|position| {
            let subject = subjects.remove(&(position.kind, position.id.clone()))?;
            Some(ActivityItem { position, subject })
        })
        .collect())
}

/// The rows behind `items`, read whole: one statement per kind present (trace starts and ends
/// share one), each by id within the tenant.
async fn subjects_of(
    db: &DatabaseConnection,
    tenant: &TenantId,
    items: &[ActivityPosition],
) -> AppResult<HashMap<(ActivityKind, String), ActivitySubject>> {
    use ActivityKind as K;
    let ids = |kinds: &[ActivityKind]| -> Vec<String> {
        items
            .iter()
            .filter(|i| kinds.contains(&i.kind))
            .map(|i| i.id.clone())
            .collect()
    };
    let mut out = HashMap::new();
    let runs = ids(&[K::LlmRun]);
    if !runs.is_empty() {
        use llm_run_records::{Column as C, Entity};
        let rows = Entity::find()
            .filter(C::TenantId.eq(tenant.as_str()))
            .filter(C::Id.is_in(runs))
            .all(db)
            .await?;
        for m in rows {
            let run = crate::runs::store::snapshot(m)?;
            out.insert((K::LlmRun, run.id.clone()), ActivitySubject::LlmRun(run));
        }
    }
    let records = ids(&[K::SystemRecord]);
    if !records.is_empty() {
        use system_records::{Column as C, Entity};
        // The tenant's own or system-wide, as the positions were read.
        let visible = Condition::any()
            .add(C::TenantId.eq(tenant.as_str()))
            .add(C::TenantId.is_null());
        let rows = Entity::find()
            .filter(visible)
            .filter(C::Id.is_in(records))
            .all(db)
            .await?;
        for m in rows {
            let record = crate::system::store::snapshot(m)?;
            let key = (K::SystemRecord, record.id.clone());
            out.insert(key, ActivitySubject::SystemRecord(record));
        }
    }
    let entries = ids(&[K::AuditEntry]);
    if !entries.is_empty() {
        use audit_ledger::{Column as C, Entity};
        let rows = Entity::find()
            .filter(C::TenantId.eq(tenant.as_str()))
            .filter(C::Id.is_in(entries))
            .all(db)
            .await?;
        for m in rows {
            let entry = crate::audit::store::snapshot(m)?;
            out.insert(
                (K::AuditEntry, entry.id.clone()),
                ActivitySubject::AuditEntry(entry),
            );
        }
    }
    let traces = ids(&[K::TraceStarted, K::TraceEnded]);
    if !traces.is_empty() {
        use aos_traces::{Column as C, Entity};
        let rows = Entity::find()
            .filter(C::TenantId.eq(tenant.as_str()))
            .filter(C::Id.is_in(traces))
            .all(db)
            .await?;
        for m in rows {
            let trace = crate::traces::store::trace_snapshot(m)?;
            for kind in [K::TraceStarted, K::TraceEnded] {
                let subject = ActivitySubject::Trace(Box::new(trace.clone()));
                out.insert((kind, trace.id.clone()), subject);
            }
        }
    }
    Ok(out)
}

/// Items matching the filter and `as_of`, all pages: one count per selected source.
pub async fn count(
    db: &DatabaseConnection,
    tenant: &TenantId,
    filter: &ActivityFilter,
    as_of: Option<DateTime<Utc>>,
) -> AppResult<i64> {
    let sources = Sources { db, tenant, filter };
    let reading = Reading {
        filter,
        as_of,
        cursor: None,
        direction: Direction::Older,
    };
    let mut total = 0u64;
    for kind in filter.kinds() {
        if let Found::Count(n) = sources.read(&reading, kind, Want::Count).await? {
            total += n;
        }
    }
    Ok(total as i64)
}
