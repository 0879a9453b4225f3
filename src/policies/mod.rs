//! Policy activation audit (docs/domain.md §13.1): one row per activated policy, recorded when a
//! policy goes live, with the pattern and recovery it came from, the confidence it had and how it
//! was approved, so it can be rolled back and blamed later. Policy ids are unique across the
//! whole server; a re-record by the owning tenant moves only the confidence, the approval path
//! and the activation time. `confidence` holds the pure calculator behind the computed fields.

pub mod confidence;
pub mod graphql;
pub mod mutation;
pub mod store;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::closed_set::closed_set;
use confidence::ConfidenceBand;

closed_set! {
    /// How a policy's activation was approved: automatically, by a person (`human:<user id>`),
    /// or because its confidence passed a threshold.
    #[derive(async_graphql::Enum, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ApprovalKind {
        Auto => "auto",
        Human => "human",
        Threshold => "threshold",
    }
}

/// The prefix of a person's approval path, followed by the user id.
pub const HUMAN_PREFIX: &str = "human:";

/// A stored `approval_path`: `auto`, `threshold` or `human:<user id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPath(String);

impl ApprovalPath {
    /// The path if it is one of the three forms (a user id of at least one visible character,
    /// no control characters); `None` otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = match text.strip_prefix(HUMAN_PREFIX) {
            Some(user) => !user.trim().is_empty() && !user.chars().any(char::is_control),
            None => text == "auto" || text == "threshold",
        };
        ok.then(|| ApprovalPath(text.to_owned()))
    }

    pub fn kind(&self) -> ApprovalKind {
        if self.0.starts_with(HUMAN_PREFIX) {
            ApprovalKind::Human
        } else if self.0 == "auto" {
            ApprovalKind::Auto
        } else {
            ApprovalKind::Threshold
        }
    }

    /// The approving user of a `human:` path.
    pub fn user_id(&self) -> Option<&str> {
        self.0.strip_prefix(HUMAN_PREFIX)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An activation as stored. Immutable; serialized whole as an idempotent write's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyActivationSnapshot {
    pub policy_id: String,
    pub tenant_id: String,
    pub source_pattern_id: String,
    pub source_recovery_id: Option<String>,
    pub confidence_at_activation: f64,
    pub confidence_version: String,
    pub approval_path: ApprovalPath,
    pub loop_trace_id: Option<String>,
    /// The latest activation (moves on each re-record).
    pub activated_at: DateTime<Utc>,
    /// The first activation (never moves; the list order).
    pub created_at: DateTime<Utc>,
}

/// The `policyActivations` filter as the store applies it. Lists are "any of", sorted and
/// deduplicated so equal filters bind equal cursors; time bounds are inclusive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivationFilter {
    pub policy_id: Option<String>,
    pub source_pattern_id: Option<String>,
    pub source_recovery_id: Option<String>,
    pub loop_trace_id: Option<String>,
    pub approval_kind: Option<Vec<ApprovalKind>>,
    /// Exact user id of `human:<user id>` approvals.
    pub approved_by: Option<String>,
    pub band: Option<Vec<ConfidenceBand>>,
    pub activated_after: Option<DateTime<Utc>>,
    pub activated_before: Option<DateTime<Utc>>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_paths() {
        assert_eq!(
            ApprovalPath::parse("auto").unwrap().kind(),
            ApprovalKind::Auto
        );
        assert_eq!(
            ApprovalPath::parse("threshold").unwrap().kind(),
            ApprovalKind::Threshold
        );
        let human = ApprovalPath::parse("human:u-1").unwrap();
        assert_eq!(human.kind(), ApprovalKind::Human);
        assert_eq!(human.user_id(), Some("u-1"));
        for bad in [
            "",
            "Auto",
            "human:",
            "human: ",
            "human",
            "manual",
            "human:a\u{0}",
        ] {
            assert_eq!(ApprovalPath::parse(bad), None, "{bad:?}");
        }
    }
}
