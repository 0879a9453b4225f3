//! `exportProgress(id)`: the export as it moves (job stage, percent, ETA, attempts, status).
//! Sends the current state first, then after each `ExportProgress` wake-up for the tenant (the
//! workers publish one per progress step, from any server process) re-reads the export and its
//! job and sends it when anything changed; ends after a terminal state (completed, failed or
//! cancelled).

use async_graphql::{Context, Subscription, ID};
use futures_util::{Stream, StreamExt};

use super::graphql::LogExport;
use super::{jobs, store, ExportStatus};
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::ids::NodeKind;
use crate::state::AppState;
use crate::system::graphql::record_id_from;

/// What a subscriber has already been sent.
type Seen = (String, Option<(String, i64, i32, String)>);

async fn load(
    state: &AppState,
    tenant: &TenantId,
    export_id: &str,
) -> AppResult<Option<(LogExport, Seen, bool)>> {
    let Some(export) = store::get(&state.db, tenant, export_id).await? else {
        return Ok(None);
    };
    let job = jobs::get(&state.db, tenant, export_id).await?;
    let latest = export.latest();
    let terminal = matches!(
        latest.status,
        ExportStatus::Completed | ExportStatus::Failed | ExportStatus::Cancelled
    );
    let seen = (
        latest.id.clone(),
        job.map(|j| {
            (
                j.stage.as_str().to_owned(),
                j.rows_done,
                j.attempt,
                j.state.as_str().to_owned(),
            )
        }),
    );
    Ok(Some((LogExport(export), seen, terminal)))
}

#[derive(Default)]
pub struct ExportSubscription;

#[Subscription]
impl ExportSubscription {
    /// Progress of one export (by its `id` or `exportId`): its current state at once, then each
    /// change, ending after it completes, fails or is cancelled. Another tenant's export, or one
    /// requested before the tenant's read window (as `logExport`), is `NOT_FOUND`.
    async fn export_progress(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = LogExport>> {
        let principal = auth::require(ctx, Permission::Read).await?;
        let state = ctx.data_unchecked::<AppState>().clone();
        let tenant = principal.tenant_id;
        let export_id = record_id_from(&id, NodeKind::LogExport);
        let found = load(&state, &tenant, &export_id).await?;
        let (first, seen, terminal) =
            crate::pagination::within_read_window(ctx, &tenant, found, |(export, ..)| {
                export.0.request.created_at
            })
            .await?
            .ok_or(AppError::NotFound("LogExport"))?;
        let ticks = state.events.wakeups(Topic::ExportProgress, &tenant).boxed();
        let start = (Some(first), seen, terminal, ticks);
        Ok(futures_util::stream::unfold(
            start,
            move |(pending, mut seen, mut done, mut ticks)| {
                let state = state.clone();
                let tenant = tenant.clone();
                let export_id = export_id.clone();
                async move {
                    if let Some(first) = pending {
                        return Some((first, (None, seen, done, ticks)));
                    }
                    while !done {
                        ticks.next().await?;
                        let Ok(Some((export, now, terminal))) =
                            load(&state, &tenant, &export_id).await
                        else {
                            continue;
                        };
                        if now != seen {
                            seen = now;
                            done = terminal;
                            return Some((export, (None, seen, done, ticks)));
                        }
                    }
                    None
                }
            },
        ))
    }
}
