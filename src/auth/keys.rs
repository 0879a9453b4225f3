//! The `api_keys` table, which auth owns: keys are stored as their sha256 digest with a tenant
//! and a role, and looked up through a short-lived per-process cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use entity::api_keys;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use super::{digest_key, generate_key, Principal, Role, TenantId};
use crate::error::{AppError, AppResult};
use crate::scalars::now;

/// The process's view of `api_keys`: lookups by digest, cached for `ttl` (the revocation
/// delay). Part of `AppState`.
pub struct KeyStore {
    db: DatabaseConnection,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl KeyStore {
    pub fn new(db: DatabaseConnection, ttl: Duration) -> Self {
        KeyStore {
            db,
            ttl,
            cache: Mutex::default(),
        }
    }

    /// The principal of the unrevoked key with this digest, if any.
    pub async fn principal_of(&self, digest: &str) -> AppResult<Option<Principal>> {
        if let Some(hit) = self.cached(digest) {
            return Ok(Some(hit));
        }
        let found = find_active_key(&self.db, digest).await?;
        if let Some(principal) = &found {
            self.remember(digest.to_owned(), principal.clone());
        }
        Ok(found)
    }

    fn cached(&self, digest: &str) -> Option<Principal> {
        let entries = self.cache.lock().ok()?;
        let (principal, at) = entries.get(digest)?;
        (at.elapsed() < self.ttl).then(|| principal.clone())
    }

    fn remember(&self, digest: String, principal: Principal) {
        if let Ok(mut entries) = self.cache.lock() {
            if entries.len() > 10_000 {
                entries.clear();
            }
            entries.insert(digest, (principal, Instant::now()));
        }
    }
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
    let role = Role::parse_any_case(&key.role).ok_or_else(|| {
        AppError::internal(format!("api key {} has unknown role {}", key.id, key.role))
    })?;
    Ok(Some(Principal {
        tenant_id: TenantId::trusted(key.tenant_id),
        role,
        key_id: key.id,
    }))
}
