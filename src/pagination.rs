//! Keyset pagination and Relay connections, shared by every list.
//!
//! Lists are ordered newest first by `(created_at DESC, id DESC)`; a page is fetched with a row
//! comparison against the cursor (signed and scoped, see `crate::cursor`), never OFFSET, so
//! pages neither skip nor repeat rows while new rows arrive. A list is a [`Listed`] impl.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, IntoIden};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use serde::Serialize;

use crate::auth::TenantId;
pub use crate::cursor::{CursorCodec, Position, Scope};
use crate::error::{AppError, AppResult};
pub use crate::read_window::{ReadWindow, TimeBounds};

pub use crate::limits::{PageSizes, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// Sorts an "any of" filter list by its stored text and drops duplicates, so equal filters have
/// one serialized form and therefore one cursor scope.
pub fn canonical<T: Copy>(mut values: Vec<T>, key: fn(T) -> &'static str) -> Vec<T> {
    values.sort_by_key(|v| key(*v));
    values.dedup_by_key(|v| key(*v));
    values
}

/// The Relay arguments every list takes.
#[derive(Debug, Clone, Default)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `first`/`after`: newest first.
    Forward,
    /// `last`/`before`: fetched oldest first, then reversed.
    Backward,
}

/// A validated page request: how many rows, which way, between which positions.
#[derive(Debug, Clone)]
pub struct Window {
    pub limit: u64,
    pub direction: Direction,
    pub after: Option<Position>,
    pub before: Option<Position>,
    pub as_of: Option<DateTime<Utc>>,
}

impl PageArgs {
    pub fn window(
        &self,
        codec: &CursorCodec,
        scope: Scope,
        default: u64,
        max: u64,
        as_of: Option<DateTime<Utc>>,
    ) -> AppResult<Window> {
        let size = |field: &str, value: i32| -> AppResult<u64> {
            if value < 1 || value as u64 > max {
                return Err(AppError::bad_input(
                    field,
                    format!("`{field}` must be between 1 and {max} (the maximum page size)"),
                ));
            }
            Ok(value as u64)
        };
        let (limit, direction) = match (self.first, self.last) {
            (Some(_), Some(_)) => {
                return Err(AppError::bad_input(
                    "last",
                    "pass `first` or `last`, not both",
                ));
            }
            (Some(first), None) => (size("first", first)?, Direction::Forward),
            (None, Some(last)) => (size("last", last)?, Direction::Backward),
            (None, None) => (std::cmp::min(default, max), Direction::Forward),
        };
        let after = self
            .after
            .as_deref()
            .map(|c| codec.decode(scope, c))
            .transpose()?;
        let before = self
            .before
            .as_deref()
            .map(|c| codec.decode(scope, c))
            .transpose()?;
        Ok(Window {
            limit,
            direction,
            after,
            before,
            as_of,
        })
    }
}

/// The order a list is read in: a key column (a time or an integer), then the id, both descending
/// or both ascending. Lists are newest first by default; a list may offer more orders, each with
/// an index `(tenant_id, key, id)` behind it.
#[derive(Debug, Clone, Copy)]
pub struct SortKey<C> {
    /// Names the order in cursor scopes (`CREATED_AT_DESC`, `COST_CENTS_ASC`): a cursor of one
    /// order is refused by another.
    pub name: &'static str,
    pub column: C,
    /// The key is a timestamp (its cursor value is microseconds), not an integer.
    pub time: bool,
    pub descending: bool,
    /// Rows whose key is NULL are not in this order (a duration of a run still running).
    pub skip_null: bool,
}

impl<C: ColumnTrait + IntoIden + Copy> SortKey<C> {
    /// The default order of every list: newest first by `column`.
    pub fn newest_first(column: C) -> Self {
        SortKey {
            name: "CREATED_AT_DESC",
            column,
            time: true,
            descending: true,
            skip_null: false,
        }
    }

    /// A cursor's key as the SQL value it is compared with.
    fn bind(&self, at: &Position) -> AppResult<sea_orm::Value> {
        Ok(if self.time {
            at.time()?.into()
        } else {
            at.key.into()
        })
    }

    /// `(key, id)` strictly before `at` in this order (`earlier`) or strictly after it.
    fn beyond(
        &self,
        id: C,
        at: &Position,
        earlier: bool,
    ) -> AppResult<sea_orm::sea_query::SimpleExpr> {
        let key = Expr::tuple([Expr::col(self.column), Expr::col(id)]);
        let bound = Expr::tuple([Expr::val(self.bind(at)?), Expr::val(at.id.clone())]);
        Ok(if earlier == self.descending {
            key.gt(bound)
        } else {
            key.lt(bound)
        })
    }
}

/// Applies the keyset bounds, order and limit (one extra row to learn whether more exist) to a
/// SeaORM select.
pub fn apply_window<E, C>(
    select: Select<E>,
    key: &SortKey<C>,
    id: C,
    window: &Window,
) -> AppResult<Select<E>>
where
    E: EntityTrait,
    C: ColumnTrait + IntoIden + Copy,
{
    let mut select = select;
    if let Some(after) = &window.after {
        select = select.filter(key.beyond(id, after, false)?);
    }
    if let Some(before) = &window.before {
        select = select.filter(key.beyond(id, before, true)?);
    }
    let in_order = (window.direction == Direction::Forward) == key.descending;
    let select = if in_order {
        select.order_by_desc(key.column).order_by_desc(id)
    } else {
        select.order_by_asc(key.column).order_by_asc(id)
    };
    Ok(select.limit(window.limit + 1))
}

/// Rows of one page in newest-first order, and whether the fetch found more in its direction.
pub fn finish_page<T>(mut rows: Vec<T>, window: &Window) -> (Vec<T>, bool) {
    let has_more = rows.len() as u64 > window.limit;
    rows.truncate(window.limit as usize);
    if window.direction == Direction::Backward {
        rows.reverse();
    }
    (rows, has_more)
}

/// What a list request asks for: the Relay arguments, `asOf`, the server's page sizes and the
/// list's page-size ceiling.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub args: PageArgs,
    pub as_of: Option<DateTime<Utc>>,
    /// The server's (`Limits::page_sizes`); the built-in ones until [`PageRequest::sized`].
    pub sizes: PageSizes,
    /// The largest page: the server's, or the list's own ([`Listed::OWN_MAX_PAGE`]).
    pub max: u64,
    /// False when the client selected none of the page's rows (`nodes`, `edges`, `pageInfo`),
    /// only `totalCount`: the arguments are still checked, but no rows are read.
    pub rows: bool,
}

impl PageRequest {
    pub fn new(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        as_of: Option<DateTime<Utc>>,
    ) -> Self {
        PageRequest {
            args: PageArgs {
                first,
                after,
                last,
                before,
            },
            as_of,
            sizes: PageSizes::default(),
            max: MAX_PAGE_SIZE,
            rows: true,
        }
    }

    /// The request with a server's configured page sizes (what a resolver asks for).
    pub fn sized(mut self, sizes: PageSizes) -> Self {
        self.sizes = sizes;
        self.max = sizes.max;
        self
    }

    pub fn with_max(mut self, max: u64) -> Self {
        self.max = max;
        self
    }
}

/// A filtered, tenant-scoped select over a table listed newest first by `(created_at, id)`.
/// Stores build it; it pages, counts and probes without ever handing a model out.
pub struct KeysetQuery<E: EntityTrait> {
    pub db: DatabaseConnection,
    pub select: Select<E>,
    /// The column `asOf` bounds.
    pub created_at: E::Column,
    pub key: SortKey<E::Column>,
    pub id: E::Column,
    pub as_of: Option<DateTime<Utc>>,
    /// Answers `count` from counts maintained on write, when the list has them for this filter.
    pub rollup: Option<RollupCount>,
}

/// Counts a list's matching rows from counts maintained on write (see [`Listed::rollup_count`]).
pub type RollupCount =
    Box<dyn Fn() -> futures_util::future::BoxFuture<'static, AppResult<i64>> + Send + Sync>;

impl<E: EntityTrait> KeysetQuery<E>
where
    E::Column: IntoIden + Copy,
{
    fn bounded(&self) -> Select<E> {
        let mut select = self.select.clone();
        if self.key.skip_null {
            select = select.filter(self.key.column.is_not_null());
        }
        match self.as_of {
            Some(at) => select.filter(self.created_at.lte(at)),
            None => select,
        }
    }
}

#[async_trait::async_trait]
impl<E: EntityTrait> ListProbe for KeysetQuery<E>
where
    E::Column: IntoIden + Copy,
    E::Model: Sync,
{
    async fn count(&self) -> AppResult<i64> {
        if let Some(rollup) = &self.rollup {
            return rollup().await;
        }
        Ok(PaginatorTrait::count(self.bounded(), &self.db).await? as i64)
    }

    async fn exists_beyond(&self, at: &Position, newer: bool) -> AppResult<bool> {
        let hit: Option<String> = self
            .bounded()
            .filter(self.key.beyond(self.id, at, newer)?)
            .select_only()
            .column(self.id)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(hit.is_some())
    }
}

/// Fetches one page of `query`: validates the arguments, checks cursors against the scope of
/// (`list`, `filter`, `asOf`), maps rows to snapshots and signs the new cursors.
#[expect(clippy::too_many_arguments, reason = "one page request's parts")]
pub async fn fetch_page<E, T, F>(
    query: KeysetQuery<E>,
    codec: &CursorCodec,
    tenant: &TenantId,
    list: &str,
    filter: &F,
    request: &PageRequest,
    snapshot: fn(E::Model) -> AppResult<T>,
    position: fn(&T) -> Position,
) -> AppResult<Page<T>>
where
    E: EntityTrait,
    E::Column: IntoIden + Copy,
    E::Model: Sync,
    F: Serialize,
{
    let scope = Scope::new(tenant.as_str(), list, query.key.name, filter, request.as_of);
    let window = request.args.window(
        codec,
        scope,
        request.sizes.default,
        request.max,
        request.as_of,
    )?;
    let rows = if request.rows {
        apply_window(query.bounded(), &query.key, query.id, &window)?
            .all(&query.db)
            .await?
    } else {
        Vec::new()
    };
    let rows = rows
        .into_iter()
        .map(snapshot)
        .collect::<AppResult<Vec<T>>>()?;
    let (rows, has_more) = finish_page(rows, &window);
    Ok(Page::new(
        rows,
        has_more,
        window,
        codec,
        scope,
        position,
        Arc::new(query),
    ))
}

/// `select` narrowed to rows whose `column` lies in `[after, before]` (either bound optional):
/// the `createdAfter`/`createdBefore` of every list filter.
pub fn created_within<E: EntityTrait>(
    select: Select<E>,
    column: E::Column,
    after: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
) -> Select<E> {
    let select = match after {
        Some(at) => select.filter(column.gte(at)),
        None => select,
    };
    match before {
        Some(at) => select.filter(column.lte(at)),
        None => select,
    }
}

/// The sort columns of a list's table (time, then id).
pub type ListColumn<L> = <<L as Listed>::Entity as EntityTrait>::Column;
/// A row of a list's table as SeaORM reads it.
pub type ListModel<L> = <<L as Listed>::Entity as EntityTrait>::Model;

/// A keyset list: one tenant's rows of one table matching a filter, newest first by
/// `(time DESC, id DESC)`. A domain store implements it once; the GraphQL page
/// ([`read_page`] and `list_field!`), `totalCount`, the live tail of a subscription and the export
/// writer are generic over it, so each list states only what is its own.
pub trait Listed: Send + Sync + 'static {
    type Entity: EntityTrait<Column: IntoIden + Copy, Model: Send + Sync>;
    /// The canonical filter; its serialized form is bound into the cursors.
    type Filter: Serialize + Clone + Send + Sync;
    /// The immutable snapshot a row becomes.
    type Row: Send + Sync + 'static;
    /// Names the list in its cursors (a cursor of one list is refused by another).
    const NAME: &'static str;
    /// The largest page a client may ask for, when the list has a bound of its own rather than
    /// the server's (`Limits::page_sizes`).
    const OWN_MAX_PAGE: Option<u64> = None;

    /// The time and id columns the list is ordered by.
    const ORDER: (ListColumn<Self>, ListColumn<Self>);
    /// A stored row as the list's snapshot.
    const ROW: fn(ListModel<Self>) -> AppResult<Self::Row>;
    /// A snapshot's place in the order.
    const POSITION: fn(&Self::Row) -> Position;

    /// The tenant's rows matching `filter`; `as_of` is given for lists whose rows carry state
    /// that must be read as of that instant (the time bound itself is applied by the caller).
    fn select(
        tenant: &TenantId,
        filter: &Self::Filter,
        as_of: Option<DateTime<Utc>>,
    ) -> Select<Self::Entity>;

    /// [`Listed::select`] for a given backend, for lists whose SQL differs between PostgreSQL
    /// and SQLite (text search).
    fn select_on(
        _backend: sea_orm::DbBackend,
        tenant: &TenantId,
        filter: &Self::Filter,
        as_of: Option<DateTime<Utc>>,
    ) -> Select<Self::Entity> {
        Self::select(tenant, filter, as_of)
    }

    /// The exact number of rows `select` returns up to `as_of` (inclusive), from counts the
    /// list maintains on write, or `None` when those cannot answer this filter: `totalCount`
    /// then counts the rows. Lists without such counts keep the default.
    fn rollup_count(
        _db: &DatabaseConnection,
        _tenant: &TenantId,
        _filter: &Self::Filter,
        _as_of: Option<DateTime<Utc>>,
    ) -> Option<RollupCount> {
        None
    }

    /// Lists of log data answer only inside the tenant's read window (`crate::read_window`):
    /// the filter's time range on the list's time column, whose lower bound the window raises.
    /// `None` (the default): the list has no window (keys, budgets, policies…).
    fn time_bounds(_filter: &mut Self::Filter) -> Option<TimeBounds<'_>> {
        None
    }
}

/// An order a list is read in, with where a row stands in it.
pub struct ListOrder<L: Listed> {
    pub key: SortKey<ListColumn<L>>,
    pub position: fn(&L::Row) -> Position,
}

impl<L: Listed> ListOrder<L> {
    /// The list's default order: newest first.
    pub fn newest_first() -> Self {
        ListOrder {
            key: SortKey::newest_first(L::ORDER.0),
            position: L::POSITION,
        }
    }
}

/// One page of the list `L` for `tenant`, newest first.
pub async fn page<L: Listed>(
    db: &DatabaseConnection,
    codec: &CursorCodec,
    tenant: &TenantId,
    filter: &L::Filter,
    request: &PageRequest,
) -> AppResult<Page<L::Row>> {
    page_in::<L>(
        db,
        codec,
        tenant,
        filter,
        request,
        ListOrder::newest_first(),
    )
    .await
}

/// One page of the list `L` for `tenant` in `order`.
pub async fn page_in<L: Listed>(
    db: &DatabaseConnection,
    codec: &CursorCodec,
    tenant: &TenantId,
    filter: &L::Filter,
    request: &PageRequest,
    order: ListOrder<L>,
) -> AppResult<Page<L::Row>> {
    page_scoped::<L>(db, codec, tenant, filter, filter, request, order).await
}

/// [`page_in`] reading the rows of `filter` under cursors scoped to `scope`: the filter the
/// client sent, before the read window narrowed it (the window moves with the clock, and a
/// cursor must stay valid from one page to the next).
pub async fn page_scoped<L: Listed>(
    db: &DatabaseConnection,
    codec: &CursorCodec,
    tenant: &TenantId,
    scope: &L::Filter,
    filter: &L::Filter,
    request: &PageRequest,
    order: ListOrder<L>,
) -> AppResult<Page<L::Row>> {
    let (created_at, id) = L::ORDER;
    let query = KeysetQuery {
        db: db.clone(),
        select: L::select_on(
            sea_orm::ConnectionTrait::get_database_backend(db),
            tenant,
            filter,
            request.as_of,
        ),
        created_at,
        key: order.key,
        id,
        as_of: request.as_of,
        // The counts maintained on write know nothing of an order's excluded rows.
        rollup: if order.key.skip_null {
            None
        } else {
            L::rollup_count(db, tenant, filter, request.as_of)
        },
    };
    let request = match L::OWN_MAX_PAGE {
        Some(max) => request.clone().with_max(max),
        None => request.clone(),
    };
    fetch_page(
        query,
        codec,
        tenant,
        L::NAME,
        scope,
        &request,
        L::ROW,
        order.position,
    )
    .await
}

/// The client's filter narrowed to the tenant's read window, when `L` has one: (the filter to
/// read, the window to report). See `crate::read_window`.
pub async fn read_window<L: Listed>(
    ctx: &async_graphql::Context<'_>,
    tenant: &TenantId,
    filter: &L::Filter,
    as_of: Option<DateTime<Utc>>,
) -> AppResult<(L::Filter, Option<ReadWindow>)> {
    let mut narrowed = filter.clone();
    let Some(bounds) = L::time_bounds(&mut narrowed) else {
        return Ok((narrowed, None));
    };
    let window = tenant_window(ctx, tenant, bounds, as_of).await?;
    Ok((narrowed, Some(window)))
}

/// The earliest instant of log data the tenant may read now (its tier through the schema's
/// `read_window::TierCache`): for lookups that filter on it in SQL rather than check one row.
pub async fn read_window_start(
    ctx: &async_graphql::Context<'_>,
    tenant: &TenantId,
) -> AppResult<DateTime<Utc>> {
    let tier = tenant_tier(ctx, tenant).await?;
    Ok(crate::read_window::start(tier, crate::scalars::now()))
}

/// `found` when it is inside the tenant's read window (its time read by `at`), else `None`: a
/// lookup's row outside the window is as absent as another tenant's.
pub async fn within_read_window<T>(
    ctx: &async_graphql::Context<'_>,
    tenant: &TenantId,
    found: Option<T>,
    at: impl FnOnce(&T) -> DateTime<Utc>,
) -> AppResult<Option<T>> {
    match found {
        Some(row) if at(&row) >= read_window_start(ctx, tenant).await? => Ok(Some(row)),
        _ => Ok(None),
    }
}

/// Narrows `bounds` to the tenant's read window (its tier through the schema's
/// `read_window::TierCache`), for lists that are not a [`Listed`] (`activity`).
pub async fn tenant_window(
    ctx: &async_graphql::Context<'_>,
    tenant: &TenantId,
    bounds: TimeBounds<'_>,
    as_of: Option<DateTime<Utc>>,
) -> AppResult<ReadWindow> {
    let tier = tenant_tier(ctx, tenant).await?;
    crate::read_window::apply(tier, crate::scalars::now(), bounds, as_of)
}

/// The tenant's tier, through the schema's `read_window::TierCache`.
async fn tenant_tier(
    ctx: &async_graphql::Context<'_>,
    tenant: &TenantId,
) -> AppResult<crate::read_window::Tier> {
    let state = ctx.data_unchecked::<crate::state::AppState>();
    match ctx.data_opt::<crate::read_window::TierCache>() {
        Some(cache) => cache.tier(&state.db, tenant).await,
        // A schema built without one (never the server's): read the tier every time.
        None => {
            crate::read_window::TierCache::default()
                .tier(&state.db, tenant)
                .await
        }
    }
}

/// A GraphQL connection made from a page of a list's snapshots (nodes may take per-request
/// loaders from the context).
pub trait FromPage<Row>: Sized {
    fn from_page(ctx: &async_graphql::Context<'_>, page: Page<Row>) -> AppResult<Self>;
}

/// A list field's connection: [`read_page`] made into the connection type.
pub async fn list_connection<L: Listed, C: FromPage<L::Row>>(
    ctx: &async_graphql::Context<'_>,
    filter: L::Filter,
    mut request: PageRequest,
) -> AppResult<C> {
    request.rows = rows_wanted(ctx);
    let page = read_page::<L>(ctx, filter, request).await?;
    C::from_page(ctx, page)
}

/// Whether the client selected any of a connection's rows (`nodes`, `edges`, `pageInfo`) rather
/// than only its counts and views ([`PageRequest::rows`]).
pub fn rows_wanted(ctx: &async_graphql::Context<'_>) -> bool {
    let wanted = ctx.look_ahead();
    ["nodes", "edges", "pageInfo"]
        .iter()
        .any(|field| wanted.field(field).exists())
}

/// The server's page sizes, for a resolver's [`PageRequest::sized`].
pub fn page_sizes(ctx: &async_graphql::Context<'_>) -> PageSizes {
    ctx.data_unchecked::<crate::state::AppState>()
        .config
        .limits
        .page_sizes
}

/// A list field's page: the caller must be able to read, and reads its own tenant.
pub async fn read_page<L: Listed>(
    ctx: &async_graphql::Context<'_>,
    filter: L::Filter,
    request: PageRequest,
) -> AppResult<Page<L::Row>> {
    let principal = crate::auth::require(ctx, crate::auth::Permission::Read).await?;
    let state = ctx.data_unchecked::<crate::state::AppState>();
    let (narrowed, window) =
        read_window::<L>(ctx, &principal.tenant_id, &filter, request.as_of).await?;
    let page = page_scoped::<L>(
        &state.db,
        &state.cursors,
        &principal.tenant_id,
        &filter,
        &narrowed,
        &request,
        ListOrder::newest_first(),
    )
    .await?;
    Ok(page.with_read_window(window))
}

/// A page of a console list in the order the client chose, and what the connection's views
/// (facets, aggregates, histograms) read beside it: the caller's tenant, the filter and `asOf`.
pub struct OrderedPage<L: Listed> {
    pub page: Page<L::Row>,
    pub db: sea_orm::DatabaseConnection,
    pub tenant: TenantId,
    pub filter: L::Filter,
    pub as_of: Option<DateTime<Utc>>,
}

/// A list field's page in `order` (the caller must be able to read; its own tenant), reading
/// rows only when the client selected them ([`rows_wanted`]).
pub async fn ordered_page<L: Listed>(
    ctx: &async_graphql::Context<'_>,
    filter: L::Filter,
    order: ListOrder<L>,
    args: PageArgs,
    as_of: Option<DateTime<Utc>>,
) -> AppResult<OrderedPage<L>> {
    let request = PageRequest::new(args.first, args.after, args.last, args.before, as_of)
        .sized(page_sizes(ctx));
    page_with_views(ctx, filter, order, request).await
}

/// [`ordered_page`] newest first, for a `list_field!` with views (`via`), which has built the
/// page request.
pub async fn view_page<L: Listed>(
    ctx: &async_graphql::Context<'_>,
    filter: L::Filter,
    request: PageRequest,
) -> AppResult<OrderedPage<L>> {
    page_with_views(ctx, filter, ListOrder::newest_first(), request).await
}

async fn page_with_views<L: Listed>(
    ctx: &async_graphql::Context<'_>,
    filter: L::Filter,
    order: ListOrder<L>,
    mut request: PageRequest,
) -> AppResult<OrderedPage<L>> {
    let principal = crate::auth::require(ctx, crate::auth::Permission::Read).await?;
    let state = ctx.data_unchecked::<crate::state::AppState>();
    request.rows = rows_wanted(ctx);
    let (narrowed, window) =
        read_window::<L>(ctx, &principal.tenant_id, &filter, request.as_of).await?;
    let page = page_scoped::<L>(
        &state.db,
        &state.cursors,
        &principal.tenant_id,
        &filter,
        &narrowed,
        &request,
        order,
    )
    .await?;
    // The views (facets, aggregates, histograms) read the narrowed filter: the same rows.
    Ok(OrderedPage {
        page: page.with_read_window(window),
        db: state.db.clone(),
        tenant: principal.tenant_id.clone(),
        filter: narrowed,
        as_of: request.as_of,
    })
}

/// What a connection needs to answer `totalCount` and the far side of `pageInfo` lazily: only
/// when a client selects them does the SQL run.
#[async_trait::async_trait]
pub trait ListProbe: Send + Sync {
    /// Rows matching the list's filter and `asOf` (ignoring the page bounds).
    async fn count(&self) -> AppResult<i64>;
    /// Whether any matching row lies strictly newer (`newer = true`) or older than `at`.
    async fn exists_beyond(&self, at: &Position, newer: bool) -> AppResult<bool>;
}

#[derive(Clone)]
pub struct PageInfo {
    probe: Arc<dyn ListProbe>,
    window: Window,
    has_more: bool,
    start_cursor: Option<String>,
    end_cursor: Option<String>,
}

#[async_graphql::Object]
impl PageInfo {
    async fn has_next_page(&self) -> async_graphql::Result<bool> {
        match self.window.direction {
            Direction::Forward => Ok(self.has_more),
            Direction::Backward => match &self.window.before {
                Some(before) => Ok(self.probe.exists_beyond(before, false).await?),
                None => Ok(false),
            },
        }
    }

    async fn has_previous_page(&self) -> async_graphql::Result<bool> {
        match self.window.direction {
            Direction::Backward => Ok(self.has_more),
            Direction::Forward => match &self.window.after {
                Some(after) => Ok(self.probe.exists_beyond(after, true).await?),
                None => Ok(false),
            },
        }
    }

    async fn start_cursor(&self) -> Option<&str> {
        self.start_cursor.as_deref()
    }

    async fn end_cursor(&self) -> Option<&str> {
        self.end_cursor.as_deref()
    }
}

/// One page of a list, before it is turned into a concrete GraphQL connection type.
pub struct Page<T> {
    pub edges: Vec<(String, T)>,
    pub page_info: PageInfo,
    probe: Arc<dyn ListProbe>,
    /// The tenant's read window the page was read under (lists of log data).
    pub read_window: Option<ReadWindow>,
}

impl<T> Page<T> {
    pub fn new(
        rows: Vec<T>,
        has_more: bool,
        window: Window,
        codec: &CursorCodec,
        scope: Scope,
        position: impl Fn(&T) -> Position,
        probe: Arc<dyn ListProbe>,
    ) -> Self {
        let edges: Vec<(String, T)> = rows
            .into_iter()
            .map(|row| (codec.encode(scope, &position(&row)), row))
            .collect();
        let page_info = PageInfo {
            probe: probe.clone(),
            window,
            has_more,
            start_cursor: edges.first().map(|(c, _)| c.clone()),
            end_cursor: edges.last().map(|(c, _)| c.clone()),
        };
        Page {
            edges,
            page_info,
            probe,
            read_window: None,
        }
    }

    /// The page with the read window it was read under.
    pub fn with_read_window(mut self, window: Option<ReadWindow>) -> Self {
        self.read_window = window;
        self
    }

    /// The same page with each node converted (snapshot → GraphQL type).
    pub fn map<U>(self, f: impl Fn(T) -> U) -> Page<U> {
        Page {
            edges: self.edges.into_iter().map(|(c, n)| (c, f(n))).collect(),
            page_info: self.page_info,
            probe: self.probe,
            read_window: self.read_window,
        }
    }

    pub async fn total_count(&self) -> AppResult<i64> {
        self.probe.count().await
    }

    /// The page with `totalCount` answered by `count` (the same number, read another way: a
    /// list whose other views already read what the count needs).
    pub fn counted_by(self, count: Arc<dyn TotalCount>) -> Self {
        Page {
            probe: Arc::new(CountedBy {
                probe: self.probe,
                count,
            }),
            ..self
        }
    }
}

/// Another way to the count of a list's matching rows ([`Page::counted_by`]).
#[async_trait::async_trait]
pub trait TotalCount: Send + Sync {
    async fn count(&self) -> AppResult<i64>;
}

struct CountedBy {
    probe: Arc<dyn ListProbe>,
    count: Arc<dyn TotalCount>,
}

#[async_trait::async_trait]
impl ListProbe for CountedBy {
    async fn count(&self) -> AppResult<i64> {
        self.count.count().await
    }

    async fn exists_beyond(&self, at: &Position, newer: bool) -> AppResult<bool> {
        self.probe.exists_beyond(at, newer).await
    }
}

/// A GraphQL object with one keyset list field over a [`Listed`] list `$list`: the Relay
/// arguments, `filter` (a GraphQL input converted into the list's filter) and `asOf`. A domain
/// merges the object into its query root (`MergedObject`) where the field belongs in the
/// schema. The connection converts from the list's page (`connection_types!` with `from`).
#[macro_export]
macro_rules! list_field {
    // `via`: an async fn (context, the list's filter, the page request) → the connection, for
    // lists whose connection needs more than the page (states read with it, summary counts).
    ($(#[$doc:meta])* $object:ident . $field:ident ($filter:ty) -> $connection:ty, via $page:path) => {
        #[derive(Default)]
        pub struct $object;

        #[async_graphql::Object]
        impl $object {
            $(#[$doc])*
            #[graphql(complexity = "crate::limits::list_cost(first, last, child_complexity)")]
            #[allow(clippy::too_many_arguments)]
            async fn $field(
                &self,
                ctx: &async_graphql::Context<'_>,
                filter: Option<$filter>,
                #[graphql(
                    desc = "Only rows recorded at or before this instant: a stable snapshot to page."
                )]
                as_of: Option<$crate::scalars::DateTime>,
                first: Option<i32>,
                after: Option<String>,
                last: Option<i32>,
                before: Option<String>,
            ) -> async_graphql::Result<$connection> {
                let request = $crate::pagination::PageRequest::new(
                    first,
                    after,
                    last,
                    before,
                    as_of.map(|d| d.0),
                )
                .sized($crate::pagination::page_sizes(ctx));
                let filter = filter.unwrap_or_default().into();
                Ok($page(ctx, filter, request).await?)
            }
        }
    };
    ($(#[$doc:meta])* $object:ident . $field:ident ($filter:ty) -> $connection:ty = $list:ty) => {
        $crate::list_field!(
            $(#[$doc])*
            $object.$field($filter) -> $connection,
                via $crate::pagination::list_connection::<$list, $connection>
        );
    };
}

/// Defines `<Node>Connection` and `<Node>Edge` for a node type built from a snapshot; with
/// `from Snapshot`, also the connection of a page of snapshots (each wrapped in the node type).
#[macro_export]
macro_rules! connection_types {
    ($connection:ident, $edge:ident, $node:ident from $row:ty) => {
        $crate::connection_types!($connection, $edge, $node);

        impl $crate::pagination::FromPage<$row> for $connection {
            fn from_page(
                _: &async_graphql::Context<'_>,
                page: $crate::pagination::Page<$row>,
            ) -> $crate::error::AppResult<Self> {
                Ok($connection(page.map($node)))
            }
        }
    };
    ($connection:ident, $edge:ident, $node:ty) => {
        pub struct $connection(pub $crate::pagination::Page<$node>);

        $crate::connection_types!(@object $connection, $edge, $node, {});
    };
    // With `views`: the connection also holds `$views` (`self.1`), and the given resolvers
    // (facets, aggregates, ...) join the Relay fields.
    ($connection:ident, $edge:ident, $node:ty, views $views:ty { $($extra:tt)* }) => {
        pub struct $connection(pub $crate::pagination::Page<$node>, pub $views);

        $crate::connection_types!(@object $connection, $edge, $node, { $($extra)* });
    };
    (@object $connection:ident, $edge:ident, $node:ty, { $($extra:tt)* }) => {
        #[async_graphql::Object]
        impl $connection {
            async fn edges(&self) -> $crate::plain::PlainEdges<$edge<'_>> {
                $crate::plain::PlainEdges(
                    self.0
                        .edges
                        .iter()
                        .map(|(cursor, node)| $edge { cursor, node })
                        .collect(),
                )
            }

            async fn nodes(&self) -> $crate::plain::PlainList<'_, $node> {
                $crate::plain::PlainList(self.0.edges.iter().map(|(_, node)| node).collect())
            }

            async fn page_info(&self) -> &$crate::pagination::PageInfo {
                &self.0.page_info
            }

            /// Rows matching the same filter and `asOf` as the page, across all pages.
            async fn total_count(&self) -> async_graphql::Result<i64> {
                Ok(self.0.total_count().await?)
            }

            /// The tenant's read window this list answered under (null: the list has none);
            /// `clamped` says whether it cut off rows the request asked for (docs/api.md).
            async fn read_window(&self) -> Option<$crate::read_window::ReadWindow> {
                self.0.read_window
            }

            $($extra)*
        }

        pub struct $edge<'a> {
            cursor: &'a str,
            node: &'a $node,
        }

        impl $crate::plain::PlainEdge for $edge<'_> {
            type Node = $node;

            fn cursor(&self) -> &str {
                self.cursor
            }

            fn node(&self) -> &$node {
                self.node
            }
        }

        #[async_graphql::Object]
        impl<'a> $edge<'a> {
            async fn cursor(&self) -> &str {
                self.cursor
            }

            async fn node(&self) -> &$node {
                self.node
            }
        }
    };
}
