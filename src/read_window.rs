//! Tenant tiers and their read windows (docs/api.md, "Read windows"; docs/retention.md): a list
//! of log data answers only rows recorded in the last N days, N by the tenant's tier. Ground,
//! because `pagination` applies the window to every windowed list in one place.
//!
//! The tier is read from `tenants.tier` through [`TierCache`], one per schema (so per server
//! process), kept [`TIER_TTL`]: tiers change rarely (a contract change, by an operator), and a
//! change reaching every process within that time is soon enough. A stored tier that is none of
//! the five is read as the lowest, OBSERVE: an unknown contract grants the least.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, EntityTrait, QuerySelect};

use crate::auth::TenantId;
use crate::error::{AppError, AppResult};

/// A tenant's tier, lowest first.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Observe,
    React,
    Prevent,
    Assist,
    Govern,
}

impl Tier {
    /// The stored tier; anything else is the lowest tier (see the module doc).
    pub fn parse_or_lowest(text: &str) -> Tier {
        match text.trim().to_ascii_uppercase().as_str() {
            "REACT" => Tier::React,
            "PREVENT" => Tier::Prevent,
            "ASSIST" => Tier::Assist,
            "GOVERN" => Tier::Govern,
            _ => Tier::Observe,
        }
    }

    /// Days of log data the tier may read.
    pub fn window_days(self) -> i64 {
        match self {
            Tier::Observe => 7,
            Tier::React => 30,
            Tier::Prevent => 90,
            Tier::Assist => 180,
            Tier::Govern => 365,
        }
    }
}

/// How long a tenant's tier is trusted before it is read again.
pub const TIER_TTL: Duration = Duration::from_secs(30);

/// The tiers this process has read lately, by tenant.
#[derive(Default)]
pub struct TierCache {
    tiers: Mutex<HashMap<String, (Tier, Instant)>>,
}

impl TierCache {
    /// The tenant's tier (an unknown tenant, like an unknown tier, is the lowest).
    pub async fn tier(&self, db: &DatabaseConnection, tenant: &TenantId) -> AppResult<Tier> {
        if let Some((tier, read)) = self.lock().get(tenant.as_str()) {
            if read.elapsed() < TIER_TTL {
                return Ok(*tier);
            }
        }
        let stored: Option<String> = entity::tenants::Entity::find_by_id(tenant.as_str())
            .select_only()
            .column(entity::tenants::Column::Tier)
            .into_tuple()
            .one(db)
            .await?;
        let tier = stored.map_or(Tier::Observe, |t| Tier::parse_or_lowest(&t));
        self.lock()
            .insert(tenant.as_str().to_owned(), (tier, Instant::now()));
        Ok(tier)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Tier, Instant)>> {
        // A panic while holding it leaves only a stale cache entry behind: keep going.
        self.tiers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a list answered under the tenant's read window: `readWindow` on its connection.
#[derive(async_graphql::SimpleObject, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadWindow {
    /// The tenant's tier.
    pub tier: Tier,
    /// The earliest instant the list answers rows from.
    pub from: crate::scalars::DateTime,
    /// True when the request asked for earlier rows (no lower time bound, or one before
    /// `from`) and the list answered from `from` instead.
    pub clamped: bool,
}

/// A list filter's time range, as [`apply`] reads and narrows it.
pub struct TimeBounds<'a> {
    /// Which filter field the lower bound is (`createdAfter`), for error messages.
    pub field: &'static str,
    /// The lower bound; raised to the window's start when before it or absent.
    pub from: &'a mut Option<DateTime<Utc>>,
    /// The upper bound (`createdBefore`).
    pub to: Option<DateTime<Utc>>,
}

/// The earliest instant `tier` reads as of `now`.
pub fn start(tier: Tier, now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::days(tier.window_days())
}

/// Raises the lower bound of `bounds` to the window of `tier` as of `now` when it is before it
/// or absent; whether it did. Nothing is refused: for a reader that checked the range once
/// ([`apply`]) and keeps reading as the window moves (a subscription's tail).
pub fn raise(tier: Tier, now: DateTime<Utc>, bounds: TimeBounds<'_>) -> bool {
    let start = start(tier, now);
    let raised = bounds.from.is_none_or(|from| from < start);
    if raised {
        *bounds.from = Some(start);
    }
    raised
}

/// Narrows `bounds` to the window of `tier` as of `now`. A range (upper bound or `asOf`) that
/// ends before the window is refused (`BAD_USER_INPUT`): it could only ever answer nothing,
/// and an empty answer would hide why.
pub fn apply(
    tier: Tier,
    now: DateTime<Utc>,
    bounds: TimeBounds<'_>,
    as_of: Option<DateTime<Utc>>,
) -> AppResult<ReadWindow> {
    let start = start(tier, now);
    let refuse = |what: &str, at: DateTime<Utc>| {
        Err(AppError::bad_input(
            what,
            format!(
                "`{what}` ({}) is before the tenant's read window: tier {:?} reads from {}",
                crate::scalars::format_utc(at),
                tier,
                crate::scalars::format_utc(start)
            ),
        ))
    };
    if let Some(to) = bounds.to.filter(|to| *to < start) {
        let to_field = bounds
            .field
            .replace("After", "Before")
            .replace("after", "before");
        return refuse(&to_field, to);
    }
    if let Some(at) = as_of.filter(|at| *at < start) {
        return refuse("asOf", at);
    }
    let clamped = raise(tier, now, bounds);
    Ok(ReadWindow {
        tier,
        from: start.into(),
        clamped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_ordered_and_unknown_ones_are_the_lowest() {
        assert!(Tier::Observe < Tier::React && Tier::Assist < Tier::Govern);
        assert_eq!(Tier::parse_or_lowest("GOVERN"), Tier::Govern);
        assert_eq!(Tier::parse_or_lowest("enterprise"), Tier::Observe);
        assert_eq!(Tier::parse_or_lowest(""), Tier::Observe);
        assert_eq!(
            [
                Tier::Observe,
                Tier::React,
                Tier::Prevent,
                Tier::Assist,
                Tier::Govern
            ]
            .map(Tier::window_days),
            [7, 30, 90, 180, 365]
        );
    }

    #[test]
    fn the_window_raises_the_lower_bound_and_refuses_ranges_before_it() {
        let now = chrono::Utc::now();
        let start = now - chrono::Duration::days(7);
        let mut from = None;
        let w = apply(
            Tier::Observe,
            now,
            TimeBounds {
                field: "createdAfter",
                from: &mut from,
                to: None,
            },
            None,
        )
        .expect("clamped");
        assert!(w.clamped);
        assert_eq!(from, Some(start));
        let inside = now - chrono::Duration::days(1);
        let mut from = Some(inside);
        let w = apply(
            Tier::Observe,
            now,
            TimeBounds {
                field: "createdAfter",
                from: &mut from,
                to: None,
            },
            None,
        )
        .expect("inside");
        assert!(!w.clamped);
        assert_eq!(from, Some(inside));
        let mut from = None;
        let before = now - chrono::Duration::days(8);
        let err = apply(
            Tier::Observe,
            now,
            TimeBounds {
                field: "createdAfter",
                from: &mut from,
                to: Some(before),
            },
            None,
        )
        .expect_err("refused");
        assert_eq!(err.code(), "BAD_USER_INPUT");
        let err = apply(
            Tier::Observe,
            now,
            TimeBounds {
                field: "createdAfter",
                from: &mut from,
                to: None,
            },
            Some(before),
        )
        .expect_err("refused");
        assert_eq!(err.code(), "BAD_USER_INPUT");
    }
}
