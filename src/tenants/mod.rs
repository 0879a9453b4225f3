//! Tenants and their API keys: who may call Logbook and which tenant a call sees.

pub mod api_keys;
pub mod graphql;
pub mod store;

use chrono::{DateTime, Utc};

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSnapshot {
    pub id: String,
    pub name: String,
    pub tier: String,
    pub created_at: DateTime<Utc>,
}
