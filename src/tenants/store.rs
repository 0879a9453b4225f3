//! SQL for tenants (API keys belong to `crate::auth::keys`).

use chrono::{DateTime, Utc};
use entity::{api_keys, tenants};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Select, Set};

use super::TenantSnapshot;
use crate::auth::keys::ApiKeySnapshot;
use crate::auth::TenantId;
use crate::cursor::Position;
use crate::error::{AppError, AppResult};
use crate::pagination::Listed;
use crate::scalars::now;

fn snapshot(model: tenants::Model) -> TenantSnapshot {
    TenantSnapshot {
        id: model.id,
        name: model.name,
        tier: model.tier,
        created_at: model.created_at,
    }
}

pub async fn find_tenant(
    db: &impl ConnectionTrait,
    id: &TenantId,
) -> AppResult<Option<TenantSnapshot>> {
    Ok(tenants::Entity::find_by_id(id.as_str().to_owned())
        .one(db)
        .await?
        .map(snapshot))
}

/// Creates the tenant if it does not exist; returns it either way.
pub async fn ensure_tenant(
    db: &impl ConnectionTrait,
    id: &str,
    name: &str,
    tier: &str,
) -> AppResult<TenantSnapshot> {
    if id.is_empty() || id.len() > 64 {
        return Err(AppError::bad_input(
            "tenant",
            "a tenant id is 1 to 64 characters",
        ));
    }
    let tenant = TenantId::trusted(id);
    if let Some(existing) = find_tenant(db, &tenant).await? {
        return Ok(existing);
    }
    let model = tenants::ActiveModel {
        id: Set(id.to_owned()),
        name: Set(name.to_owned()),
        tier: Set(tier.to_owned()),
        created_at: Set(now()),
    };
    tenants::Entity::insert(model)
        .on_conflict_do_nothing_on([tenants::Column::Id])
        .exec(db)
        .await?;
    find_tenant(db, &tenant)
        .await?
        .ok_or(AppError::NotFound("tenant"))
}

/// A tenant's API keys, newest first (`apiKeys`): rows of `crate::auth::keys`' table, read as
/// its snapshots.
pub struct ApiKeyList;

/// The canonical `ApiKeyFilter`: roles (as stored) sorted and de-duplicated.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApiKeyListFilter {
    pub roles: Vec<&'static str>,
    pub include_revoked: bool,
}

impl Listed for ApiKeyList {
    type Entity = api_keys::Entity;
    type Filter = ApiKeyListFilter;
    type Row = ApiKeySnapshot;
    const NAME: &'static str = "apiKeys";
    const ORDER: (api_keys::Column, api_keys::Column) =
        (api_keys::Column::CreatedAt, api_keys::Column::Id);
    const ROW: fn(api_keys::Model) -> AppResult<ApiKeySnapshot> = crate::auth::keys::snapshot;
    const POSITION: fn(&ApiKeySnapshot) -> Position = |k| Position::of(k.created_at, &k.id);

    fn select(
        tenant: &TenantId,
        filter: &ApiKeyListFilter,
        _: Option<DateTime<Utc>>,
    ) -> Select<api_keys::Entity> {
        let mut select =
            api_keys::Entity::find().filter(api_keys::Column::TenantId.eq(tenant.as_str()));
        if !filter.roles.is_empty() {
            select = select.filter(api_keys::Column::Role.is_in(filter.roles.iter().copied()));
        }
        if !filter.include_revoked {
            select = select.filter(api_keys::Column::RevokedAt.is_null());
        }
        select
    }
}
