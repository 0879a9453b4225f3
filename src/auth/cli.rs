//! What `logbook keys list|revoke|rotate` and `keys create --platform` do, as library functions (the binary only parses
//! flags and prints): each connects, acts, and for a revocation announces it to the running
//! servers (`auth::revocation`) the same way a server does, so they refuse the key within about
//! a second. Errors are the one-line reason the command exits non-zero with.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use super::keys::{self, ApiKeySnapshot};
use super::{revocation, TenantId};
use crate::config::Config;
use crate::redis_link::RedisLink;
use crate::scalars::{format_utc, now};

/// The database (migrated) and, when configured, the deployment's Redis.
struct Connected {
    db: DatabaseConnection,
    redis: Option<RedisLink>,
}

async fn connect(config: &Config) -> Result<Connected, String> {
    let db = crate::db::connect(&config.database)
        .await
        .map_err(|e| e.detail())?;
    crate::db::migrate(&db).await.map_err(|e| e.detail())?;
    let redis = match config.redis_url.as_deref() {
        Some(url) => Some(
            RedisLink::for_deployment(&db, url)
                .await
                .map_err(|e| e.detail())?,
        ),
        None => None,
    };
    Ok(Connected { db, redis })
}

/// The tenant's keys, or with `None` the platform keys, newest first; revoked ones only with
/// `include_revoked`.
pub async fn list(
    config: &Config,
    tenant: Option<&str>,
    include_revoked: bool,
) -> Result<Vec<ApiKeySnapshot>, String> {
    let connected = connect(config).await?;
    let tenant = tenant.map(TenantId::trusted);
    let listed = keys::list(&connected.db, tenant.as_ref(), include_revoked)
        .await
        .map_err(|e| e.detail());
    let _ = connected.db.close().await;
    listed
}

/// Revokes the key `id` (any tenant's) and announces it; returns the key as revoked.
pub async fn revoke(config: &Config, id: &str) -> Result<ApiKeySnapshot, String> {
    let connected = connect(config).await?;
    let revoked = keys::revoke(&connected.db, None, id)
        .await
        .map_err(|e| format!("key {id}: {}", e.detail()))?;
    revocation::announce(
        &connected.db,
        connected.redis.as_ref(),
        std::slice::from_ref(&revoked.id),
    )
    .await;
    let _ = connected.db.close().await;
    Ok(revoked)
}

/// A new platform key (role `PLATFORM`, no tenant: docs/api.md §2.5); returns the raw key (to
/// print once) and the key.
pub async fn create_platform(
    config: &Config,
    new: &keys::NewPlatformKey,
) -> Result<(String, ApiKeySnapshot), String> {
    let connected = connect(config).await?;
    let created = keys::create_platform(&connected.db, new)
        .await
        .map_err(|e| e.detail());
    let _ = connected.db.close().await;
    created
}

/// Who a key belongs to, as the commands print it: `tenant T`, or `the platform`.
pub fn owner(key: &ApiKeySnapshot) -> String {
    match &key.tenant_id {
        Some(tenant) => format!("tenant {tenant}"),
        None => "the platform".to_owned(),
    }
}

/// Replaces the key `id` with a new key of the same tenant, role, label and rate limit and
/// revokes it, in one transaction; announces the revocation. Returns the raw new key (to print
/// once) and the new key.
pub async fn rotate(config: &Config, id: &str) -> Result<(String, ApiKeySnapshot), String> {
    let connected = connect(config).await?;
    let (raw, created, revoked) = keys::rotate(&connected.db, None, id)
        .await
        .map_err(|e| format!("key {id}: {}", e.detail()))?;
    revocation::announce(&connected.db, connected.redis.as_ref(), &[revoked.id]).await;
    let _ = connected.db.close().await;
    Ok((raw, created))
}

/// A header and one line per key for `keys list`: never the key or its digest.
pub fn table(keys: &[ApiKeySnapshot]) -> Vec<String> {
    let at = now();
    let time = |t: Option<DateTime<Utc>>| t.map_or_else(|| "-".to_owned(), format_utc);
    let mut lines = vec![format!(
        "{:<36}  {:<8}  {:<6}  {:<7}  {:<27}  {:<27}  {:<27}  {:<10}  label",
        "id", "role", "actor", "status", "created", "expires", "last used", "rate limit"
    )];
    for key in keys {
        let status = match key.revoked_at {
            Some(_) => "revoked",
            None if key.is_refused_at(at) => "expired",
            None => "active",
        };
        let limit = match key.rate_limit_per_minute {
            None => "default".to_owned(),
            Some(0) => "unlimited".to_owned(),
            Some(n) => n.to_string(),
        };
        lines.push(format!(
            "{:<36}  {:<8}  {:<6}  {:<7}  {:<27}  {:<27}  {:<27}  {:<10}  {}",
            key.id,
            key.role.as_str(),
            key.actor_type.as_str(),
            status,
            format_utc(key.created_at),
            time(key.expires_at),
            time(key.last_used_at),
            limit,
            key.label.as_deref().unwrap_or("-"),
        ));
    }
    lines
}
