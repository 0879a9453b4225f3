//! The audit ledger: append-only governance events, chained per tenant (docs/domain.md §4).
//! This module holds the snapshot types and the pure rules over them (signal feedback,
//! docs/domain.md §4.5); `store` reads the ledger, `graphql` serves it, `chain` defines the hash
//! chain.

pub mod append;
pub mod chain;
pub mod facets;
pub mod graphql;
pub mod group;
pub mod mutation;
pub mod store;
pub mod views;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::closed_set::closed_set;

closed_set! {
    /// The 18 canonical audit events (docs/domain.md §4.2), plus `ExportCompleted`, which only the
    /// server writes: an export's manifest hash, so the ledger's proofs cover exports.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum AuditEventType {
        PolicyRuleCreated => "PolicyRuleCreated",
        PolicyRuleModified => "PolicyRuleModified",
        PolicyRuleRetired => "PolicyRuleRetired",
        PolicyProposalApproved => "PolicyProposalApproved",
        PolicyProposalRejected => "PolicyProposalRejected",
        LimitCreated => "LimitCreated",
        LimitUpdated => "LimitUpdated",
        LimitBreached => "LimitBreached",
        LimitOverrideGranted => "LimitOverrideGranted",
        LimitOverrideRevoked => "LimitOverrideRevoked",
        IncidentAcknowledged => "IncidentAcknowledged",
        IncidentResolved => "IncidentResolved",
        IncidentManuallyClosed => "IncidentManuallyClosed",
        EmergencyOverrideActivated => "EmergencyOverrideActivated",
        EmergencyOverrideDeactivated => "EmergencyOverrideDeactivated",
        SignalAcknowledged => "SignalAcknowledged",
        SignalSuppressed => "SignalSuppressed",
        SignalEscalated => "SignalEscalated",
        ExportCompleted => "ExportCompleted",
    }
}

closed_set! {
    /// The kind of object an audit entry is about.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum AuditEntityType {
        PolicyRule => "POLICY_RULE",
        PolicyProposal => "POLICY_PROPOSAL",
        Limit => "LIMIT",
        Incident => "INCIDENT",
        /// An activity signal; its entity id is the signal fingerprint.
        Signal => "SIGNAL",
        /// A log export; its entity id is the export id.
        Export => "EXPORT",
    }
}

/// Who acted: auth owns it, because every key says which kind of actor uses it.
pub use crate::auth::ActorType;

impl AuditEntityType {
    /// The entity types whose entries are a run's governance events (O3, docs/domain.md §4.4).
    pub const GOVERNANCE: [AuditEntityType; 4] = [
        Self::PolicyRule,
        Self::Limit,
        Self::PolicyProposal,
        Self::Incident,
    ];
}

/// One ledger entry as stored. Immutable.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntrySnapshot {
    pub id: String,
    pub tenant_id: String,
    /// Position in the tenant's chain, gapless from 1.
    pub seq: i64,
    pub event_type: AuditEventType,
    pub entity_type: AuditEntityType,
    pub entity_id: String,
    pub actor_type: ActorType,
    pub actor_id: Option<String>,
    pub action_reason: Option<String>,
    pub before_state: Option<Value>,
    pub after_state: Option<Value>,
    pub run_id: Option<String>,
    pub correlation_id: Option<String>,
    pub prev_hash: String,
    pub entry_hash: String,
    pub hash_version: i32,
    pub created_at: DateTime<Utc>,
}

/// The list filter, as the store applies it: equality on each given field, "any of" for
/// `event_type` (sorted and deduplicated), inclusive time bounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct AuditFilter {
    pub event_type: Option<Vec<AuditEventType>>,
    pub entity_type: Option<AuditEntityType>,
    pub entity_id: Option<String>,
    pub actor_type: Option<ActorType>,
    pub actor_id: Option<String>,
    pub run_id: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    // Fields added after the first release are skipped when absent, so export jobs stored
    // before them still read and earlier cursors stay bound to the same filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_not_in: Option<Vec<AuditEventType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type_in: Option<Vec<AuditEntityType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type_not_in: Option<Vec<AuditEntityType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id_in: Option<Vec<String>>,
    /// Entries without an actor id are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id_not_in: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// A substring of the entry, entity, actor, run or correlation id or the action reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Words of the action reason and the before/after states (all must occur).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Vec<crate::list_filters::Word>>,
}

/// The feedback operators gave on one signal, folded from its SignalAcknowledged,
/// SignalSuppressed and SignalEscalated entries: for each kind the latest entry (highest
/// `seq`) wins (the Python platform reported the oldest; docs/decisions.md D7).
#[derive(Debug, Clone, PartialEq)]
pub struct SignalFeedbackSnapshot {
    pub fingerprint: String,
    pub acknowledged: bool,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub suppressed: bool,
    pub suppressed_by: Option<String>,
    pub suppressed_at: Option<DateTime<Utc>>,
    /// `after_state.suppressed_until` of the latest suppression, when present and parseable.
    pub suppressed_until: Option<DateTime<Utc>>,
    /// Suppressed and, at evaluation time, not yet expired (see [`fold_signal_feedback`]).
    pub suppression_active: bool,
    pub escalated: bool,
    pub escalated_at: Option<DateTime<Utc>>,
    pub last_event_at: DateTime<Utc>,
}

/// What `after_state.suppressed_until` says about a suppression's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionExpiry {
    /// No key, or JSON null: suppressed until further notice.
    Indefinite,
    At(DateTime<Utc>),
    /// A value that is not a timestamp.
    Unreadable,
}

/// Reads `suppressed_until` from a suppression payload: RFC 3339, or an ISO 8601 date-time
/// without offset (taken as UTC, as the Python platform's producers wrote UTC).
pub fn suppression_expiry(after_state: Option<&Value>) -> SuppressionExpiry {
    let Some(value) = after_state.and_then(|s| s.get("suppressed_until")) else {
        return SuppressionExpiry::Indefinite;
    };
    let text = match value {
        Value::Null => return SuppressionExpiry::Indefinite,
        Value::String(text) => text.trim(),
        _ => return SuppressionExpiry::Unreadable,
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return SuppressionExpiry::At(crate::scalars::truncate_to_micros(at.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return SuppressionExpiry::At(crate::scalars::truncate_to_micros(naive.and_utc()));
        }
    }
    SuppressionExpiry::Unreadable
}

/// Folds signal entries (any order, any number per kind) into feedback; `None` when there are
/// none. For each kind the entry with the highest `seq` wins. A suppression is active at `now`
/// when it has no expiry or its expiry is later than `now`; an unreadable expiry counts as
/// inactive, so a malformed payload never hides a signal for good.
pub fn fold_signal_feedback(
    fingerprint: &str,
    entries: &[AuditEntrySnapshot],
    now: DateTime<Utc>,
) -> Option<SignalFeedbackSnapshot> {
    let latest = |kind: AuditEventType| {
        entries
            .iter()
            .filter(|e| e.event_type == kind)
            .max_by_key(|e| e.seq)
    };
    let signal_kinds = [
        AuditEventType::SignalAcknowledged,
        AuditEventType::SignalSuppressed,
        AuditEventType::SignalEscalated,
    ];
    let last_event_at = entries
        .iter()
        .filter(|e| signal_kinds.contains(&e.event_type))
        .map(|e| e.created_at)
        .max()?;
    let ack = latest(AuditEventType::SignalAcknowledged);
    let suppress = latest(AuditEventType::SignalSuppressed);
    let escalate = latest(AuditEventType::SignalEscalated);
    let expiry = suppress.map(|s| suppression_expiry(s.after_state.as_ref()));
    let (suppressed_until, suppression_active) = match expiry {
        None => (None, false),
        Some(SuppressionExpiry::Indefinite) => (None, true),
        Some(SuppressionExpiry::At(at)) => (Some(at), at > now),
        Some(SuppressionExpiry::Unreadable) => (None, false),
    };
    Some(SignalFeedbackSnapshot {
        fingerprint: fingerprint.to_owned(),
        acknowledged: ack.is_some(),
        acknowledged_by: ack.and_then(|e| e.actor_id.clone()),
        acknowledged_at: ack.map(|e| e.created_at),
        suppressed: suppress.is_some(),
        suppressed_by: suppress.and_then(|e| e.actor_id.clone()),
        suppressed_at: suppress.map(|e| e.created_at),
        suppressed_until,
        suppression_active,
        escalated: escalate.is_some(),
        escalated_at: escalate.map(|e| e.created_at),
        last_event_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn entry(
        seq: i64,
        kind: AuditEventType,
        secs: i64,
        after: Option<Value>,
    ) -> AuditEntrySnapshot {
        AuditEntrySnapshot {
            id: format!("e{seq}"),
            tenant_id: "t".into(),
            seq,
            event_type: kind,
            entity_type: AuditEntityType::Signal,
            entity_id: "fp".into(),
            actor_type: ActorType::Human,
            actor_id: Some(format!("user{seq}")),
            action_reason: None,
            before_state: None,
            after_state: after,
            run_id: None,
            correlation_id: None,
            prev_hash: String::new(),
            entry_hash: String::new(),
            hash_version: 1,
            created_at: Utc
                .timestamp_opt(1_800_000_000 + secs, 0)
                .single()
                .expect("time"),
        }
    }

    #[test]
    fn latest_of_each_kind_wins() {
        let now = Utc.timestamp_opt(1_800_000_100, 0).single().expect("time");
        let entries = vec![
            entry(3, AuditEventType::SignalAcknowledged, 30, None),
            entry(1, AuditEventType::SignalAcknowledged, 10, None),
            entry(
                2,
                AuditEventType::SignalSuppressed,
                20,
                Some(json!({"suppressed_until": "2000-01-01T00:00:00Z"})),
            ),
            entry(
                4,
                AuditEventType::SignalSuppressed,
                40,
                Some(json!({"suppressed_until": "2100-01-01T00:00:00"})),
            ),
        ];
        let fb = fold_signal_feedback("fp", &entries, now).expect("feedback");
        assert_eq!(fb.acknowledged_by.as_deref(), Some("user3"));
        assert_eq!(fb.suppressed_by.as_deref(), Some("user4"));
        assert!(fb.suppression_active);
        assert_eq!(
            fb.suppressed_until,
            Some(
                Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
                    .single()
                    .expect("time")
            )
        );
        assert!(!fb.escalated);
        assert_eq!(fb.last_event_at, entries[3].created_at);
        assert_eq!(fold_signal_feedback("fp", &[], now), None);
    }

    #[test]
    fn expiry_forms() {
        assert_eq!(suppression_expiry(None), SuppressionExpiry::Indefinite);
        assert_eq!(
            suppression_expiry(Some(&json!({"suppressed_until": null}))),
            SuppressionExpiry::Indefinite
        );
        assert_eq!(
            suppression_expiry(Some(&json!({"suppressed_until": "soon"}))),
            SuppressionExpiry::Unreadable
        );
        assert_eq!(
            suppression_expiry(Some(
                &json!({"suppressed_until": "2026-01-02T03:04:05+02:00"})
            )),
            SuppressionExpiry::At(
                Utc.with_ymd_and_hms(2026, 1, 2, 1, 4, 5)
                    .single()
                    .expect("t")
            )
        );
    }
}
