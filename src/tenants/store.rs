//! SQL for tenants (API keys belong to `crate::auth::keys`).

use entity::tenants;
use sea_orm::{ConnectionTrait, EntityTrait, Set};

use super::TenantSnapshot;
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
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
