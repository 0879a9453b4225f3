//! SQL for tenants and API keys.

use entity::{api_keys, tenants};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::TenantSnapshot;
use crate::auth::{digest_key, generate_key, Principal, Role, TenantId};
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

/// Stores a new key for the tenant and returns the raw key (shown once, never stored).
pub async fn create_key(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    role: Role,
    label: Option<&str>,
) -> AppResult<String> {
    let raw = generate_key();
    let model = api_keys::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        tenant_id: Set(tenant.as_str().to_owned()),
        key_sha256: Set(digest_key(&raw)),
        role: Set(role.as_str().to_owned()),
        label: Set(label.map(str::to_owned)),
        created_at: Set(now()),
        revoked_at: Set(None),
    };
    api_keys::Entity::insert(model)
        .exec_without_returning(db)
        .await?;
    Ok(raw)
}

/// The principal of an unrevoked key with this sha256 digest.
pub async fn find_active_key(
    db: &impl ConnectionTrait,
    digest: &str,
) -> AppResult<Option<Principal>> {
    let key = api_keys::Entity::find()
        .filter(api_keys::Column::KeySha256.eq(digest))
        .filter(api_keys::Column::RevokedAt.is_null())
        .one(db)
        .await?;
    let Some(key) = key else { return Ok(None) };
    let role = Role::parse(&key.role).ok_or_else(|| {
        AppError::internal(format!("api key {} has unknown role {}", key.id, key.role))
    })?;
    Ok(Some(Principal {
        tenant_id: TenantId::trusted(key.tenant_id),
        role,
        key_id: key.id,
    }))
}
