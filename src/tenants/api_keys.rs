//! API-key management over GraphQL (docs/api.md §2.1): `apiKeys`, `createApiKey` and
//! `revokeApiKey`, for ADMIN keys, on their own tenant's keys only. The table, its SQL and the
//! revocation broadcast belong to `crate::auth`; this module is the thin GraphQL edge of it.
//! A key's raw value appears once, in `createApiKey`'s answer; its digest never.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};

use crate::auth::keys::{self, ApiKeySnapshot, NewKey};
use crate::auth::{self, ActorType, Permission, Role};
use crate::error::{AppError, AppResult};
use crate::pagination::PageRequest;
use crate::plain::PlainFields;
use crate::scalars::{now, DateTime};
use crate::state::AppState;

use super::store::{ApiKeyList, ApiKeyListFilter};

/// Labels are stored in a `varchar(128)`.
const MAX_LABEL: usize = 128;

/// Where a key stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyStatus {
    /// Accepted.
    Active,
    /// Past its `expiresAt`: refused like a revoked key.
    Expired,
    /// Revoked: refused.
    Revoked,
}

/// An API key of the caller's tenant: its metadata, never the key or its digest.
pub struct ApiKey(pub ApiKeySnapshot);

#[Object]
impl ApiKey {
    /// The key's id (what `revokeApiKey` and `logbook keys revoke|rotate` take).
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn role(&self) -> Role {
        self.0.role
    }

    /// Who uses the key: what it creates records it (an export's `origin`).
    async fn actor_type(&self) -> ActorType {
        self.0.actor_type
    }

    /// A note to recognise the key by.
    async fn label(&self) -> Option<&str> {
        self.0.label.as_deref()
    }

    async fn status(&self) -> ApiKeyStatus {
        match self.0.revoked_at {
            Some(_) => ApiKeyStatus::Revoked,
            None if self.0.is_refused_at(now()) => ApiKeyStatus::Expired,
            None => ApiKeyStatus::Active,
        }
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }

    /// After this instant the key is refused (`UNAUTHENTICATED`); null: never.
    async fn expires_at(&self) -> Option<DateTime> {
        self.0.expires_at.map(Into::into)
    }

    /// When a server last saw the key used; each server process records a use at most once a
    /// minute, so this may be up to a minute behind. Null: never used.
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(Into::into)
    }

    async fn revoked_at(&self) -> Option<DateTime> {
        self.0.revoked_at.map(Into::into)
    }

    /// The key's own rate limit in complexity points per minute; 0: unlimited; null: the
    /// server's default (docs/api.md §8).
    async fn rate_limit_per_minute(&self) -> Option<i64> {
        self.0
            .rate_limit_per_minute
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl PlainFields for ApiKey {}

crate::connection_types!(ApiKeyConnection, ApiKeyEdge, ApiKey from ApiKeySnapshot);

/// Which keys `apiKeys` lists.
#[derive(InputObject, Default)]
pub struct ApiKeyFilter {
    /// Any of these roles.
    pub role: Option<Vec<Role>>,
    /// Also list revoked keys (default false).
    pub include_revoked: Option<bool>,
}

impl From<ApiKeyFilter> for ApiKeyListFilter {
    fn from(filter: ApiKeyFilter) -> Self {
        let mut roles: Vec<&'static str> = filter
            .role
            .unwrap_or_default()
            .into_iter()
            .map(|role| role.as_str())
            .collect();
        roles.sort_unstable();
        roles.dedup();
        ApiKeyListFilter {
            roles,
            include_revoked: filter.include_revoked.unwrap_or(false),
        }
    }
}

/// `apiKeys`' page: like every list's, but for ADMIN keys only.
async fn api_keys_page(
    ctx: &Context<'_>,
    filter: ApiKeyListFilter,
    mut request: PageRequest,
) -> AppResult<ApiKeyConnection> {
    let principal = auth::require(ctx, Permission::Administer).await?;
    let state = ctx.data_unchecked::<AppState>();
    let wanted = ctx.look_ahead();
    request.rows = ["nodes", "edges", "pageInfo"]
        .iter()
        .any(|field| wanted.field(field).exists());
    let page = crate::pagination::page::<ApiKeyList>(
        &state.db,
        &state.cursors,
        &principal.tenant_id,
        &filter,
        &request,
    )
    .await?;
    Ok(ApiKeyConnection(page.map(ApiKey)))
}

crate::list_field!(
    /// The tenant's API keys, newest first (ADMIN only); revoked keys only with
    /// `filter: {includeRevoked: true}`.
    ApiKeysField.api_keys(ApiKeyFilter) -> ApiKeyConnection, via api_keys_page
);

/// A new key: the key itself, shown this once, and its metadata.
#[derive(SimpleObject)]
pub struct CreateApiKeyPayload {
    /// The key to send as `Authorization: Bearer <key>`. Only its SHA-256 is stored: it cannot
    /// be shown again.
    pub key: String,
    pub api_key: ApiKey,
}

/// A limit a tenant's ADMIN may give a key: the server's limit is the operator's, so a tenant
/// may lower it for a key but not raise or lift it (the operator can, with `logbook keys create
/// --rate-limit`). With no server limit, any limit may be set.
fn tenant_rate_limit(asked: i32, server_limit: u64) -> Result<u64, AppError> {
    let allowed = if server_limit == 0 {
        0..=u64::MAX
    } else {
        1..=server_limit
    };
    u64::try_from(asked)
        .ok()
        .filter(|n| allowed.contains(n))
        .ok_or_else(|| {
            AppError::bad_input(
                "rateLimitPerMinute",
                format!(
                    "a key's limit may be from {} to {} points a minute (the server's limit); \
                     only the operator can raise or lift it (`logbook keys create --rate-limit`)",
                    allowed.start(),
                    allowed.end()
                ),
            )
        })
}

#[derive(Default)]
pub struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
    /// Creates a key in the caller's tenant (ADMIN only). No `idempotencyKey`: replaying a
    /// creation would have to show the key again, which is never stored.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        role: Role,
        label: Option<String>,
        #[graphql(
            desc = "Who will use the key: a person (HUMAN, the default), an automation (SYSTEM) or an AI agent (AGENT)."
        )]
        actor_type: Option<ActorType>,
        #[graphql(desc = "After this instant the key is refused; it must be in the future.")]
        expires_at: Option<DateTime>,
        #[graphql(
            desc = "Complexity points the key may spend per minute, at most the server's default; omitted: the server's default."
        )]
        rate_limit_per_minute: Option<i32>,
    ) -> async_graphql::Result<CreateApiKeyPayload> {
        let principal = auth::require(ctx, Permission::Administer).await?;
        // A platform key belongs to no tenant, so no tenant's ADMIN may make one; only the
        // operator does (`logbook keys create --platform`). `keys::create` refuses it too.
        if role == Role::Platform {
            return Err(AppError::Forbidden {
                role: principal.role.as_str(),
                action: "create PLATFORM keys (only `logbook keys create --platform` does)",
            }
            .into());
        }
        let state = ctx.data_unchecked::<AppState>();
        let server_limit = state.config.limits.rate_limit_per_minute;
        let new = NewKey {
            tenant: principal.tenant_id,
            role,
            actor_type: actor_type.unwrap_or(ActorType::Human),
            label: parse_label(label)?,
            expires_at: parse_expiry(expires_at)?,
            rate_limit_per_minute: rate_limit_per_minute
                .map(|n| tenant_rate_limit(n, server_limit))
                .transpose()?,
        };
        let (key, created) = keys::create(&state.db, &new).await?;
        Ok(CreateApiKeyPayload {
            key,
            api_key: ApiKey(created),
        })
    }

    /// Revokes a key of the caller's tenant (ADMIN only): every server refuses it within about
    /// a second. Revoking a revoked key changes nothing; another tenant's key is `NOT_FOUND`.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ApiKey> {
        let principal = auth::require(ctx, Permission::Administer).await?;
        let state = ctx.data_unchecked::<AppState>();
        let revoked = keys::revoke(&state.db, Some(&principal.tenant_id), &id).await?;
        state.keys.revoked(std::slice::from_ref(&revoked.id)).await;
        Ok(ApiKey(revoked))
    }
}

fn parse_label(label: Option<String>) -> AppResult<Option<String>> {
    match label {
        Some(label) if label.chars().count() > MAX_LABEL => Err(AppError::bad_input(
            "label",
            format!("at most {MAX_LABEL} characters"),
        )),
        Some(label) if label.chars().any(char::is_control) => {
            Err(AppError::bad_input("label", "no control characters"))
        }
        other => Ok(other),
    }
}

fn parse_expiry(expires_at: Option<DateTime>) -> AppResult<Option<chrono::DateTime<chrono::Utc>>> {
    match expires_at {
        Some(DateTime(at)) if at <= now() => {
            Err(AppError::bad_input("expiresAt", "must be in the future"))
        }
        other => Ok(other.map(|d| d.0)),
    }
}
