//! `viewer`: who the caller is; and the ADMIN's `apiKeys` (`super::api_keys`).

use async_graphql::{Context, MergedObject, Object, SimpleObject};

use crate::auth::{self, Role};
use crate::error::AppError;
use crate::state::AppState;

use super::store;

/// The authenticated caller: its tenant and role.
#[derive(SimpleObject)]
pub struct Viewer {
    pub tenant_id: String,
    pub tenant_name: String,
    /// Read-window entitlement tier of the tenant (OBSERVE … GOVERN).
    pub tier: String,
    pub role: Role,
    /// Who the key says uses it (`ApiKey.actorType`).
    pub actor_type: crate::auth::ActorType,
}

/// `viewer` and the ADMIN's `apiKeys`.
#[derive(MergedObject, Default)]
pub struct TenantQuery(ViewerQuery, super::api_keys::ApiKeysField);

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The tenant and role of the API key making this request.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Viewer> {
        let principal = auth::viewer(ctx).await?;
        // A platform key has no tenant to describe, and reads nothing (docs/api.md §2.5).
        if principal.role == Role::Platform {
            return Err(AppError::Forbidden {
                role: principal.role.as_str(),
                action: "read `viewer`: a platform key belongs to no tenant",
            }
            .into());
        }
        let state = ctx.data_unchecked::<AppState>();
        let tenant = store::find_tenant(&state.db, &principal.tenant_id)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        Ok(Viewer {
            tenant_id: tenant.id,
            tenant_name: tenant.name,
            tier: tenant.tier,
            role: principal.role,
            actor_type: principal.actor_type,
        })
    }
}
