//! API-key authentication. Keys are random tokens shown once; only their sha256 is stored. Each
//! key names one tenant and one role. The tenant is always taken from the key, never from input.
//!
//! A request's key is resolved lazily, on the first field that needs it, so introspection and
//! GraphiQL work without a key, and resolved keys are cached per process for a short TTL (the
//! revocation delay, `Config::key_cache_ttl`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_graphql::{Context, Enum};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::error::{AppError, AppResult};
use crate::tenants::store as tenant_store;

/// A tenant id, taken from an authenticated key (never from client input).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// Only for ids that come from the database or the operator's command line.
    pub fn trusted(id: impl Into<String>) -> Self {
        TenantId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enum)]
pub enum Role {
    /// Read everything in the tenant.
    Viewer,
    /// Read, resolve mismatches, create exports.
    Operator,
    /// Write runs, traces, system records and cost records.
    Ingest,
    /// Everything in its tenant.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "VIEWER",
            Role::Operator => "OPERATOR",
            Role::Ingest => "INGEST",
            Role::Admin => "ADMIN",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "VIEWER" => Some(Role::Viewer),
            "OPERATOR" => Some(Role::Operator),
            "INGEST" => Some(Role::Ingest),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What a caller wants to do; each role grants a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read everything in the tenant: VIEWER, OPERATOR, ADMIN.
    Read,
    /// Write runs, traces, system records, cost records and audit events: INGEST, ADMIN.
    Ingest,
    /// Resolve mismatches, create exports: OPERATOR, ADMIN.
    Operate,
    /// Tenant administration (feature tags, budgets): ADMIN.
    Administer,
}

impl Permission {
    fn granted_to(self, role: Role) -> bool {
        match self {
            Permission::Read => matches!(role, Role::Viewer | Role::Operator | Role::Admin),
            Permission::Ingest => matches!(role, Role::Ingest | Role::Admin),
            Permission::Operate => matches!(role, Role::Operator | Role::Admin),
            Permission::Administer => matches!(role, Role::Admin),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Permission::Read => "read logs",
            Permission::Ingest => "write records",
            Permission::Operate => "perform operator actions",
            Permission::Administer => "administer the tenant",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub role: Role,
    pub key_id: String,
}

impl Principal {
    /// Whether the key's role grants `permission`.
    pub fn role_may(&self, permission: Permission) -> bool {
        permission.granted_to(self.role)
    }
}

pub fn digest_key(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// A new key: `lbk_` and 32 random bytes, base64url.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("lbk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Process-local cache of resolved keys by digest.
#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl KeyCache {
    fn get(&self, digest: &str, ttl: Duration) -> Option<Principal> {
        let entries = self.entries.lock().ok()?;
        let (principal, at) = entries.get(digest)?;
        (at.elapsed() < ttl).then(|| principal.clone())
    }

    fn put(&self, digest: String, principal: Principal) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 10_000 {
                entries.clear();
            }
            entries.insert(digest, (principal, Instant::now()));
        }
    }
}

/// The credentials a request presented, resolved at most once.
pub struct RequestAuth {
    presented: Option<String>,
    resolved: OnceCell<Option<Principal>>,
}

impl RequestAuth {
    /// From the raw `Authorization` header value, if any.
    pub fn from_header(header: Option<&str>) -> Self {
        let presented = header.map(|value| {
            let value = value.trim();
            match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    token.trim().to_owned()
                }
                // Not a bearer token: keep something that can never match a key.
                _ => String::new(),
            }
        });
        RequestAuth {
            presented,
            resolved: OnceCell::new(),
        }
    }

    /// The rate-limit bucket of the presented key: its sha256, known without a lookup.
    pub fn bucket(&self) -> Option<String> {
        self.presented
            .as_deref()
            .filter(|raw| !raw.is_empty())
            .map(digest_key)
    }

    /// The caller, if [`RequestAuth::resolve`] already succeeded.
    pub fn resolved(&self) -> Option<Principal> {
        self.resolved.get().cloned().flatten()
    }

    /// The caller: resolves the presented key once (through the process cache), or
    /// `UNAUTHENTICATED`. The HTTP and WebSocket transports call it before anything is parsed.
    pub async fn resolve(&self, state: &crate::app::AppState) -> AppResult<Principal> {
        self.principal(&state.db, &state.keys, state.config.key_cache_ttl)
            .await
    }

    pub async fn principal(
        &self,
        db: &DatabaseConnection,
        cache: &KeyCache,
        ttl: Duration,
    ) -> AppResult<Principal> {
        let Some(raw) = self.presented.as_deref() else {
            return Err(AppError::Unauthenticated);
        };
        let resolved = self
            .resolved
            .get_or_try_init(|| async {
                if raw.is_empty() {
                    return Ok::<_, AppError>(None);
                }
                let digest = digest_key(raw);
                if let Some(hit) = cache.get(&digest, ttl) {
                    return Ok(Some(hit));
                }
                let found = tenant_store::find_active_key(db, &digest).await?;
                if let Some(principal) = &found {
                    cache.put(digest, principal.clone());
                }
                Ok(found)
            })
            .await?;
        resolved.clone().ok_or(AppError::Unauthenticated)
    }
}

/// The authenticated caller of this request, or `UNAUTHENTICATED`.
pub async fn viewer(ctx: &Context<'_>) -> AppResult<Principal> {
    let state = ctx.data_unchecked::<crate::app::AppState>();
    let auth = ctx
        .data::<RequestAuth>()
        .map_err(|_| AppError::Unauthenticated)?;
    auth.principal(&state.db, &state.keys, state.config.key_cache_ttl)
        .await
}

/// The caller, if its role grants `permission`; `FORBIDDEN` otherwise.
pub async fn require(ctx: &Context<'_>, permission: Permission) -> AppResult<Principal> {
    let principal = viewer(ctx).await?;
    if !permission.granted_to(principal.role) {
        return Err(AppError::Forbidden {
            role: principal.role.as_str(),
            action: permission.describe(),
        });
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(
            RequestAuth::from_header(Some("Bearer abc"))
                .presented
                .as_deref(),
            Some("abc")
        );
        assert_eq!(
            RequestAuth::from_header(Some("bearer  abc "))
                .presented
                .as_deref(),
            Some("abc")
        );
        assert_eq!(
            RequestAuth::from_header(Some("Basic abc"))
                .presented
                .as_deref(),
            Some("")
        );
        assert_eq!(RequestAuth::from_header(None).presented, None);
    }

    #[test]
    fn keys_are_random_and_digests_stable() {
        let a = generate_key();
        assert_ne!(a, generate_key());
        assert!(a.starts_with("lbk_"));
        assert_eq!(digest_key("x"), digest_key("x"));
        assert_eq!(digest_key("x").len(), 64);
    }
}
