//! API-key authentication. Keys are random tokens shown once; only their sha256 is stored. Each
//! key names one tenant and one role, except a platform key (role `PLATFORM`), which belongs to
//! no tenant and may do one thing: write system-wide system records (docs/api.md §2.5). The
//! tenant is always taken from the key, never from input.
//!
//! A request's key is resolved once, by the transport before anything is parsed or by the first
//! field that needs it, so introspection and GraphiQL work without a key; resolved keys are
//! cached per process ([`KeyStore`]), and a revocation evicts them from every process's cache
//! within about a second (`revocation`).

use async_graphql::{Context, Enum};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::closed_set::closed_set;
use crate::error::{AppError, AppResult};

mod cache;
pub mod cli;
pub mod keys;
pub mod revocation;

pub use cache::KeyStore;

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

    /// What a platform key's principal carries in place of a tenant: the empty id, which no
    /// tenant can have (a tenant id is 1 to 64 characters, `tenants::store::ensure_tenant`).
    /// It scopes the platform's idempotency keys apart from every tenant's; a read scoped to it
    /// would find nothing, but none runs: the `PLATFORM` role is granted only
    /// [`Permission::RecordSystemWide`].
    pub fn platform() -> Self {
        TenantId(String::new())
    }
}

closed_set! {
    #[derive(Enum)]
    pub enum Role {
        /// Read everything in the tenant.
        Viewer => "VIEWER",
        /// Read, resolve mismatches, create exports.
        Operator => "OPERATOR",
        /// Write runs, traces, system records and cost records.
        Ingest => "INGEST",
        /// Everything in its tenant.
        Admin => "ADMIN",
        /// No tenant: writes system-wide system records, nothing else (docs/api.md §2.5). Made
        /// only by the operator (`logbook keys create --platform`): `createApiKey` refuses it,
        /// and no tenant's `apiKeys` lists one.
        Platform => "PLATFORM",
    }
}

closed_set! {
    /// Who acted, or who uses a key: a person at a console (`HUMAN`), an automation
    /// (`SYSTEM`), or an AI agent (`AGENT`). Each key says which (`ApiKey.actorType`), and what
    /// it creates records it, e.g. an export's `origin` (docs/api.md §2.1).
    #[derive(Enum, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ActorType {
        Human => "HUMAN",
        System => "SYSTEM",
        Agent => "AGENT",
    }
}

impl Role {
    /// A role named in any case (`ingest`, `INGEST`), as keys and the CLI have spelled them.
    pub fn parse_any_case(text: &str) -> Option<Self> {
        Self::parse(&text.to_ascii_uppercase())
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
    /// Write system-wide system records (no tenant): PLATFORM, and only PLATFORM.
    RecordSystemWide,
}

impl Permission {
    fn granted_to(self, role: Role) -> bool {
        match self {
            Permission::Read => matches!(role, Role::Viewer | Role::Operator | Role::Admin),
            Permission::Ingest => matches!(role, Role::Ingest | Role::Admin),
            Permission::Operate => matches!(role, Role::Operator | Role::Admin),
            Permission::Administer => matches!(role, Role::Admin),
            Permission::RecordSystemWide => matches!(role, Role::Platform),
        }
    }

    /// `principal` if its role grants this permission; `FORBIDDEN` otherwise.
    pub fn check(self, principal: Principal) -> AppResult<Principal> {
        if self.granted_to(principal.role) {
            Ok(principal)
        } else {
            Err(AppError::Forbidden {
                role: principal.role.as_str(),
                action: self.describe(),
            })
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Permission::Read => "read logs",
            Permission::Ingest => "write records",
            Permission::Operate => "perform operator actions",
            Permission::Administer => "administer the tenant",
            Permission::RecordSystemWide => "write system-wide records",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub role: Role,
    pub key_id: String,
    /// Who uses the key (the key's `actorType`).
    pub actor_type: ActorType,
    /// The key's own rate limit in complexity points per minute (`None`: the server's
    /// default; 0: unlimited), carried here so the rate limiter needs no lookup.
    pub rate_limit_per_minute: Option<u64>,
}

impl Principal {
    /// Whether the key's role grants `permission`.
    pub fn role_may(&self, permission: Permission) -> bool {
        permission.granted_to(self.role)
    }

    /// A platform key's: no tenant (see [`TenantId::platform`]).
    pub fn is_platform(&self) -> bool {
        self.role == Role::Platform
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
    pub async fn resolve(&self, keys: &KeyStore) -> AppResult<Principal> {
        let Some(raw) = self.presented.as_deref() else {
            return Err(AppError::Unauthenticated);
        };
        let resolved = self
            .resolved
            .get_or_try_init(|| async {
                if raw.is_empty() {
                    return Ok::<_, AppError>(None);
                }
                keys.principal_of(&digest_key(raw)).await
            })
            .await?;
        resolved.clone().ok_or(AppError::Unauthenticated)
    }
}

/// The one authentication of routes outside GraphQL (the export downloads): the
/// `Authorization` header's bearer key, resolved like GraphQL's, whose role must grant
/// `permission`.
pub async fn authenticate(
    keys: &KeyStore,
    header: Option<&str>,
    permission: Permission,
) -> AppResult<Principal> {
    let principal = RequestAuth::from_header(header).resolve(keys).await?;
    permission.check(principal)
}

/// The authenticated caller of this request, or `UNAUTHENTICATED`.
pub async fn viewer(ctx: &Context<'_>) -> AppResult<Principal> {
    let keys = ctx.data_unchecked::<std::sync::Arc<KeyStore>>();
    let auth = ctx
        .data::<RequestAuth>()
        .map_err(|_| AppError::Unauthenticated)?;
    auth.resolve(keys).await
}

/// The caller, if its role grants `permission`; `FORBIDDEN` otherwise.
pub async fn require(ctx: &Context<'_>, permission: Permission) -> AppResult<Principal> {
    permission.check(viewer(ctx).await?)
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
    fn a_platform_key_may_only_write_system_wide_records() {
        let all = [
            Permission::Read,
            Permission::Ingest,
            Permission::Operate,
            Permission::Administer,
            Permission::RecordSystemWide,
        ];
        for permission in all {
            for role in Role::ALL {
                let granted = permission.granted_to(role);
                if role == Role::Platform || permission == Permission::RecordSystemWide {
                    assert_eq!(
                        granted,
                        role == Role::Platform && permission == Permission::RecordSystemWide,
                        "{role:?} {permission:?}"
                    );
                }
            }
        }
        assert_eq!(TenantId::platform().as_str(), "", "no tenant id is empty");
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
