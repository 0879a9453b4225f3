//! The subscribable lists, each read through its domain store's own keyset page, so a
//! subscription's filter, order and cursors are exactly the list's.
//!
//! Time-ordered lists are newest first; "the rows after a position, oldest first" is their
//! `last: n, before: cursor` page reversed, and the cursors it returns are list cursors a client
//! can pass back as `after`.
//!
//! Lists of log data read, like the lists themselves, only inside the tenant's read window
//! (`crate::read_window`): each read narrows the filter to the window as of that read, with the
//! tier read when the subscription started, so catching up after an old cursor replays nothing
//! older. Cursors stay bound to the filter the client sent, as the lists' are.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::tail::Feed;
use crate::activity::{self, ActivityFilter, ActivityItem, ActivityPosition};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::pagination::{page_scoped, ListOrder, Listed, Page, PageArgs, PageRequest};
use crate::read_window::{self, Tier};
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
    /// The client's filter: the cursors' scope.
    pub filter: L::Filter,
    /// The tenant's tier when the list is windowed (`Listed::time_bounds`): every read narrows
    /// `filter` to its window as of then. `None`: read `filter` as it is.
    pub tier: Option<Tier>,
}

impl<L: Listed> ListFeed<L> {
    /// `filter` narrowed to the read window as of now.
    fn narrowed(&self) -> L::Filter {
        let mut narrowed = self.filter.clone();
        if let Some(tier) = self.tier {
            if let Some(bounds) = L::time_bounds(&mut narrowed) {
                read_window::raise(tier, crate::scalars::now(), bounds);
            }
        }
        narrowed
    }

    async fn read(&self, state: &AppState, request: &PageRequest) -> AppResult<Page<L::Row>> {
        page_scoped::<L>(
            &state.db,
            &state.cursors,
            &self.tenant,
            &self.filter,
            &self.narrowed(),
            request,
            ListOrder::newest_first(),
        )
        .await
    }
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
        let page = self.read(state, &newer_than(cursor, limit)).await?;
        Ok(oldest_first(page))
    }

    async fn newest(&self, state: &AppState) -> AppResult<Option<String>> {
        let page = self.read(state, &newest_first()).await?;
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
    /// The client's filter: the cursors' scope.
    pub filter: ActivityFilter,
    /// The tenant's tier: every read narrows `filter` to its read window as of then, as the
    /// `activity` list does.
    pub tier: Tier,
}

impl ActivityFeed {
    fn edge(&self, state: &AppState, item: ActivityItem) -> (String, ActivityItem) {
        let scope = activity::scope(&self.tenant, &self.filter, None);
        (state.cursors.encode(scope, &item.position.encode()), item)
    }

    /// `filter` narrowed to the read window as of now.
    fn narrowed(&self) -> ActivityFilter {
        let mut narrowed = self.filter.clone();
        read_window::raise(
            self.tier,
            crate::scalars::now(),
            crate::pagination::TimeBounds {
                field: "after",
                to: narrowed.before,
                from: &mut narrowed.after,
            },
        );
        narrowed
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
            &self.narrowed(),
            position.as_ref(),
            limit,
        )
        .await?;
        Ok(items.into_iter().map(|i| self.edge(state, i)).collect())
    }

    async fn newest(&self, state: &AppState) -> AppResult<Option<String>> {
        let items =
            activity::page(&state.db, &self.tenant, &self.narrowed(), None, None, 1).await?;
        Ok(items.into_iter().next().map(|i| self.edge(state, i).0))
    }

    fn recorded_at(item: &ActivityItem) -> Option<DateTime<Utc>> {
        Some(item.position.at)
    }
}
