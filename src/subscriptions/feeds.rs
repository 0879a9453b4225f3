//! The subscribable lists, each read through its domain store's own keyset page, so a
//! subscription's filter, order and cursors are exactly the list's.
//!
//! Time-ordered lists are newest first; "the rows after a position, oldest first" is their
//! `last: n, before: cursor` page reversed, and the cursors it returns are list cursors a client
//! can pass back as `after`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::tail::Feed;
use crate::activity::{self, ActivityFilter, ActivityItem, ActivityPosition};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::pagination::{page, Listed, Page, PageArgs, PageRequest};
use crate::state::AppState;
use crate::traces::store::{self as trace_store, StepProbe, MAX_STEP_PAGE};
use crate::traces::StepSnapshot;

/// The page of up to `limit` rows strictly newer than `cursor` (or the oldest rows).
fn newer_than(cursor: Option<&str>, limit: u64) -> PageRequest {
    PageRequest::new(
        None,
        None,
        Some(limit as i32),
        cursor.map(str::to_owned),
        None,
    )
}

fn newest_first() -> PageRequest {
    PageRequest::new(Some(1), None, None, None, None)
}

/// A newest-first page turned oldest first.
fn oldest_first<T>(page: Page<T>) -> Vec<(String, T)> {
    let mut edges = page.edges;
    edges.reverse();
    edges
}

fn first_cursor<T>(page: Page<T>) -> Option<String> {
    page.edges.into_iter().next().map(|(cursor, _)| cursor)
}

/// A feed over one of the time-ordered lists (runs, system records, audit entries, trace starts
/// and ends, mismatches, cost anomalies): the list's own keyset page with its filter, read
/// oldest first after the cursor.
pub struct ListFeed<L: Listed> {
    pub tenant: TenantId,
    pub filter: L::Filter,
}

#[async_trait::async_trait]
impl<L: Listed> Feed for ListFeed<L> {
    type Row = L::Row;

    async fn after(
        &self,
        state: &AppState,
        cursor: Option<&str>,
        limit: u64,
    ) -> AppResult<Vec<(String, L::Row)>> {
        let request = newer_than(cursor, limit);
        let page = page::<L>(
            &state.db,
            &state.cursors,
            &self.tenant,
            &self.filter,
            &request,
        )
        .await?;
        Ok(oldest_first(page))
    }

    async fn newest(&self, state: &AppState) -> AppResult<Option<String>> {
        let request = newest_first();
        let page = page::<L>(
            &state.db,
            &state.cursors,
            &self.tenant,
            &self.filter,
            &request,
        )
        .await?;
        Ok(first_cursor(page))
    }

    fn recorded_at(row: &L::Row) -> Option<DateTime<Utc>> {
        (L::POSITION)(row).time().ok()
    }
}

/// One of the tenant's traces' live steps in step order (the `Trace.steps` list; its cursors).
/// Trace ids are unique per tenant: the feed reads the steps of (tenant, trace_id).
pub struct StepFeed {
    pub tenant: TenantId,
    pub trace_id: String,
}

impl StepFeed {
    async fn page(
        &self,
        state: &AppState,
        args: PageArgs,
    ) -> AppResult<Vec<(String, StepSnapshot)>> {
        let window = args.window(
            &state.cursors,
            trace_store::step_scope(self.tenant.as_str(), &self.trace_id),
            crate::pagination::DEFAULT_PAGE_SIZE,
            MAX_STEP_PAGE,
            None,
        )?;
        let probe = Arc::new(StepProbe {
            db: state.db.clone(),
            tenant: self.tenant.clone(),
            trace_id: self.trace_id.clone(),
        });
        let page = trace_store::step_page(
            &state.db,
            &state.cursors,
            &self.tenant,
            &self.trace_id,
            window,
            None,
            probe,
        )
        .await?;
        Ok(page.edges)
    }
}

#[async_trait::async_trait]
impl Feed for StepFeed {
    type Row = StepSnapshot;

    async fn after(
        &self,
        state: &AppState,
        cursor: Option<&str>,
        limit: u64,
    ) -> AppResult<Vec<(String, StepSnapshot)>> {
        let args = PageArgs {
            first: Some(limit as i32),
            after: cursor.map(str::to_owned),
            ..PageArgs::default()
        };
        self.page(state, args).await
    }

    async fn newest(&self, state: &AppState) -> AppResult<Option<String>> {
        let args = PageArgs {
            last: Some(1),
            ..PageArgs::default()
        };
        Ok(self
            .page(state, args)
            .await?
            .into_iter()
            .next()
            .map(|(cursor, _)| cursor))
    }

    fn recorded_at(_: &StepSnapshot) -> Option<DateTime<Utc>> {
        None
    }
}

/// The activity feed read forward: items newer than the cursor, oldest first. Its cursors are
/// the `activity` list's for the same filter (no `asOf`), so a page's cursor resumes a tail and
/// an event's cursor pages on from it.
pub struct ActivityFeed {
    pub tenant: TenantId,
    pub filter: ActivityFilter,
}

impl ActivityFeed {
    fn edge(&self, state: &AppState, item: ActivityItem) -> (String, ActivityItem) {
        let scope = activity::scope(&self.tenant, &self.filter, None);
        (state.cursors.encode(scope, &item.position.encode()), item)
    }
}

#[async_trait::async_trait]
impl Feed for ActivityFeed {
    type Row = ActivityItem;

    async fn after(
        &self,
        state: &AppState,
        cursor: Option<&str>,
        limit: u64,
    ) -> AppResult<Vec<(String, ActivityItem)>> {
        let scope = activity::scope(&self.tenant, &self.filter, None);
        let position = cursor
            .map(|c| {
                let position = state.cursors.decode(scope, c)?;
                ActivityPosition::decode(&position).ok_or(AppError::BadCursor("not a cursor"))
            })
            .transpose()?;
        let items = activity::newer(
            &state.db,
            &self.tenant,
            &self.filter,
            position.as_ref(),
            limit,
        )
        .await?;
        Ok(items.into_iter().map(|i| self.edge(state, i)).collect())
    }

    async fn newest(&self, state: &AppState) -> AppResult<Option<String>> {
        let items = activity::page(&state.db, &self.tenant, &self.filter, None, None, 1).await?;
        Ok(items.into_iter().next().map(|i| self.edge(state, i).0))
    }

    fn recorded_at(item: &ActivityItem) -> Option<DateTime<Utc>> {
        Some(item.position.at)
    }
}
