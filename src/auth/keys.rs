//! The `api_keys` table, which auth owns: keys are stored as their sha256 digest with a tenant,
//! a role, an optional expiry and an optional rate limit of their own. A platform key (role
//! `PLATFORM`) is stored with no tenant (`tenant_id` NULL; a CHECK allows NULL for that role
//! only), and only the operator's command line makes one ([`create_platform`]): [`create`],
//! which GraphQL's `createApiKey` calls, refuses the role. SQL in, immutable [`ApiKeySnapshot`]s
//! out; the raw key exists only in the answer to its creation.

use chrono::{DateTime, Utc};
use entity::api_keys;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use super::{digest_key, generate_key, ActorType, Principal, Role, TenantId};
use crate::error::{AppError, AppResult};
use crate::scalars::now;

/// A key as stored, without its digest (which is never shown after creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeySnapshot {
    pub id: String,
    /// `None`: a platform key.
    pub tenant_id: Option<String>,
    pub role: Role,
    /// Who uses the key; what it creates records it (an export's `origin`).
    pub actor_type: ActorType,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Complexity points per minute; `None`: the server's default; 0: unlimited.
    pub rate_limit_per_minute: Option<u64>,
}

impl ApiKeySnapshot {
    /// Whether the key is refused at `at` (revoked, or past its expiry).
    pub fn is_refused_at(&self, at: DateTime<Utc>) -> bool {
        self.revoked_at.is_some() || self.expires_at.is_some_and(|expiry| expiry <= at)
    }
}

/// A stored row as its snapshot.
pub fn snapshot(key: api_keys::Model) -> AppResult<ApiKeySnapshot> {
    let role = Role::parse_any_case(&key.role).ok_or_else(|| {
        AppError::internal(format!("api key {} has unknown role {}", key.id, key.role))
    })?;
    // The CHECK `ck_api_keys_scope` guarantees it; a key that broke it must not authenticate.
    if (role == Role::Platform) != key.tenant_id.is_none() {
        return Err(AppError::internal(format!(
            "api key {} has role {} and tenant {:?}",
            key.id, key.role, key.tenant_id
        )));
    }
    let actor_type = ActorType::parse(&key.actor_type).ok_or_else(|| {
        AppError::internal(format!(
            "api key {} has unknown actor type {}",
            key.id, key.actor_type
        ))
    })?;
    Ok(ApiKeySnapshot {
        id: key.id,
        tenant_id: key.tenant_id,
        role,
        actor_type,
        label: key.label,
        created_at: key.created_at,
        expires_at: key.expires_at,
        last_used_at: key.last_used_at,
        revoked_at: key.revoked_at,
        rate_limit_per_minute: key.rate_limit_per_minute.map(|n| n.max(0) as u64),
    })
}

/// What a new tenant key is made of.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub tenant: TenantId,
    pub role: Role,
    /// Who will use it (HUMAN when the creator does not say).
    pub actor_type: ActorType,
    pub label: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit_per_minute: Option<u64>,
}

/// A key that may be used now, as the key cache keeps it.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    pub principal: Principal,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a new platform key is made of: a tenant key's settings without the tenant, the role
/// and the actor type (a platform key is always used by the platform's automation: SYSTEM).
#[derive(Debug, Clone, Default)]
pub struct NewPlatformKey {
    pub label: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit_per_minute: Option<u64>,
}

/// Stores a new key of a tenant; returns the raw key (shown once, never stored) and its
/// snapshot. The `PLATFORM` role is refused (`BAD_USER_INPUT` on `role`): a platform key has
/// no tenant, and only [`create_platform`] makes one.
pub async fn create(
    db: &impl ConnectionTrait,
    new: &NewKey,
) -> AppResult<(String, ApiKeySnapshot)> {
    if new.role == Role::Platform {
        return Err(AppError::bad_input(
            "role",
            "a PLATFORM key belongs to no tenant; only the operator makes one \
             (`logbook keys create --platform`)",
        ));
    }
    insert(
        db,
        Some(&new.tenant),
        new.role,
        new.actor_type,
        new.label.clone(),
        new.expires_at,
        new.rate_limit_per_minute,
    )
    .await
}

/// Stores a new platform key (role `PLATFORM`, no tenant); returns the raw key and its snapshot.
/// The operator's command line is the one caller.
pub async fn create_platform(
    db: &impl ConnectionTrait,
    new: &NewPlatformKey,
) -> AppResult<(String, ApiKeySnapshot)> {
    insert(
        db,
        None,
        Role::Platform,
        ActorType::System,
        new.label.clone(),
        new.expires_at,
        new.rate_limit_per_minute,
    )
    .await
}

async fn insert(
    db: &impl ConnectionTrait,
    tenant: Option<&TenantId>,
    role: Role,
    actor_type: ActorType,
    label: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    rate_limit_per_minute: Option<u64>,
) -> AppResult<(String, ApiKeySnapshot)> {
    let raw = generate_key();
    let model = api_keys::Model {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.map(|t| t.as_str().to_owned()),
        key_sha256: digest_key(&raw),
        role: role.as_str().to_owned(),
        actor_type: actor_type.as_str().to_owned(),
        label,
        created_at: now(),
        revoked_at: None,
        expires_at,
        last_used_at: None,
        rate_limit_per_minute: rate_limit_per_minute.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
    };
    let active: api_keys::ActiveModel = model.clone().into();
    api_keys::Entity::insert(active)
        .exec_without_returning(db)
        .await?;
    Ok((raw, snapshot(model)?))
}

/// Stores a new key for the tenant with the server's default rate limit and no expiry; returns
/// the raw key.
pub async fn create_key(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    role: Role,
    label: Option<&str>,
) -> AppResult<String> {
    let new = NewKey {
        tenant: tenant.clone(),
        role,
        actor_type: ActorType::Human,
        label: label.map(str::to_owned),
        expires_at: None,
        rate_limit_per_minute: None,
    };
    Ok(create(db, &new).await?.0)
}

/// The key with this sha256 digest, unless it is revoked or expired.
pub async fn find_active_key(
    db: &impl ConnectionTrait,
    digest: &str,
) -> AppResult<Option<ActiveKey>> {
    let key = api_keys::Entity::find()
        .filter(api_keys::Column::KeySha256.eq(digest))
        .filter(api_keys::Column::RevokedAt.is_null())
        .one(db)
        .await?;
    let Some(key) = key else { return Ok(None) };
    let key = snapshot(key)?;
    if key.is_refused_at(now()) {
        return Ok(None);
    }
    Ok(Some(ActiveKey {
        principal: Principal {
            tenant_id: key
                .tenant_id
                .map_or_else(TenantId::platform, TenantId::trusted),
            role: key.role,
            actor_type: key.actor_type,
            key_id: key.id,
            rate_limit_per_minute: key.rate_limit_per_minute,
        },
        expires_at: key.expires_at,
    }))
}

/// The key `id`, in `tenant` when one is given (the CLI acts on any tenant's key).
pub async fn find(
    db: &impl ConnectionTrait,
    tenant: Option<&TenantId>,
    id: &str,
) -> AppResult<Option<ApiKeySnapshot>> {
    api_keys::Entity::find_by_id(id.to_owned())
        .filter(in_tenant(tenant))
        .one(db)
        .await?
        .map(snapshot)
        .transpose()
}

/// The tenant's keys, or with `None` the platform keys, newest first (the CLI's list; GraphQL
/// pages a tenant's).
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: Option<&TenantId>,
    include_revoked: bool,
) -> AppResult<Vec<ApiKeySnapshot>> {
    let owner = match tenant {
        Some(tenant) => in_tenant(Some(tenant)),
        None => Condition::all().add(api_keys::Column::TenantId.is_null()),
    };
    let mut select = api_keys::Entity::find().filter(owner);
    if !include_revoked {
        select = select.filter(api_keys::Column::RevokedAt.is_null());
    }
    select
        .order_by_desc(api_keys::Column::CreatedAt)
        .order_by_desc(api_keys::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(snapshot)
        .collect()
}

/// Revokes the key `id` (in `tenant` when given) and returns it. Revoking a revoked key changes
/// nothing (its first `revokedAt` stays). Another tenant's key is `NOT_FOUND`, like a missing
/// one. Callers announce the revocation after the commit (`KeyStore::revoked`).
pub async fn revoke(
    db: &impl ConnectionTrait,
    tenant: Option<&TenantId>,
    id: &str,
) -> AppResult<ApiKeySnapshot> {
    api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::value(now()))
        .filter(api_keys::Column::Id.eq(id))
        .filter(in_tenant(tenant))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    find(db, tenant, id)
        .await?
        .ok_or(AppError::NotFound("API key"))
}

/// Replaces the key `id` (in `tenant` when given) with a new one of the same tenant (or none,
/// for a platform key), role, actor type, label and rate limit (not its expiry: that belonged to the old secret), and revokes it, in
/// one transaction. Returns the raw new key, the new key and the revoked one. A revoked key
/// cannot be rotated (`INVALID_TRANSITION`): its replacement would revive it.
pub async fn rotate(
    db: &DatabaseConnection,
    tenant: Option<&TenantId>,
    id: &str,
) -> AppResult<(String, ApiKeySnapshot, ApiKeySnapshot)> {
    let txn = db.begin().await?;
    let old = find(&txn, tenant, id)
        .await?
        .ok_or(AppError::NotFound("API key"))?;
    if old.revoked_at.is_some() {
        return Err(AppError::InvalidTransition(format!(
            "API key {id} is revoked; create a new key instead"
        )));
    }
    let tenant_of_old = old.tenant_id.clone().map(TenantId::trusted);
    let (raw, created) = insert(
        &txn,
        tenant_of_old.as_ref(),
        old.role,
        old.actor_type,
        old.label.clone(),
        None,
        old.rate_limit_per_minute,
    )
    .await?;
    let revoked = revoke(&txn, tenant, id).await?;
    txn.commit().await?;
    Ok((raw, created, revoked))
}

/// Of `ids`, those revoked (the key cache's periodic check; see `auth::revocation`).
pub async fn revoked_among(db: &impl ConnectionTrait, ids: &[String]) -> AppResult<Vec<String>> {
    let mut revoked = Vec::new();
    for chunk in ids.chunks(500) {
        let found: Vec<String> = api_keys::Entity::find()
            .select_only()
            .column(api_keys::Column::Id)
            .filter(api_keys::Column::Id.is_in(chunk.iter().cloned()))
            .filter(api_keys::Column::RevokedAt.is_not_null())
            .into_tuple()
            .all(db)
            .await?;
        revoked.extend(found);
    }
    Ok(revoked)
}

/// Records that the key was used at `at`.
pub async fn touch(db: &impl ConnectionTrait, id: &str, at: DateTime<Utc>) -> AppResult<()> {
    api_keys::Entity::update_many()
        .col_expr(api_keys::Column::LastUsedAt, Expr::value(at))
        .filter(api_keys::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

fn in_tenant(tenant: Option<&TenantId>) -> Condition {
    match tenant {
        Some(tenant) => Condition::all().add(api_keys::Column::TenantId.eq(tenant.as_str())),
        None => Condition::all(),
    }
}
