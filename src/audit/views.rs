//! The console's audit views (docs/domain.md §4.6, AUDIT O1–O3) as real selections of ledger rows,
//! and the decision an entry records (the Python platform returned constants;
//! docs/decisions.md D8). AUDIT O4 (integrity) is `ledger { verify }`; O5 (exports) is
//! `logExports`.

use async_graphql::Enum;
use serde::{Deserialize, Serialize};

use super::{ActorType, AuditEventType as E};

/// Which audit view a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
pub enum AuditView {
    /// O1: who acted — entries whose actor is a person (`HUMAN`).
    Identity,
    /// O2: authorization decisions — approvals, rejections, overrides granted or revoked,
    /// limit breaches and emergency overrides.
    Authorization,
    /// O3: access to governed objects — every create, change, retirement, acknowledgement and
    /// closure of rules, limits, incidents and signals (everything that is not a decision).
    Access,
}

const DECISIONS: &[E] = &[
    E::PolicyProposalApproved,
    E::PolicyProposalRejected,
    E::LimitBreached,
    E::LimitOverrideGranted,
    E::LimitOverrideRevoked,
    E::EmergencyOverrideActivated,
    E::EmergencyOverrideDeactivated,
];

impl AuditView {
    /// The event types the view admits (`None`: any).
    pub fn event_types(self) -> Option<Vec<E>> {
        match self {
            AuditView::Identity => None,
            AuditView::Authorization => Some(DECISIONS.to_vec()),
            AuditView::Access => Some(
                E::ALL
                    .iter()
                    .copied()
                    .filter(|e| !DECISIONS.contains(e))
                    .collect(),
            ),
        }
    }

    /// The actor type the view requires, if any.
    pub fn actor_type(self) -> Option<ActorType> {
        match self {
            AuditView::Identity => Some(ActorType::Human),
            _ => None,
        }
    }
}

/// The decision an authorization entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum AuditDecision {
    Approved,
    Rejected,
    /// A limit was exceeded and the action was refused.
    Denied,
    OverrideGranted,
    OverrideRevoked,
    EmergencyOverrideOn,
    EmergencyOverrideOff,
}

/// The decision `event` records, if it is a decision.
pub fn decision_of(event: E) -> Option<AuditDecision> {
    Some(match event {
        E::PolicyProposalApproved => AuditDecision::Approved,
        E::PolicyProposalRejected => AuditDecision::Rejected,
        E::LimitBreached => AuditDecision::Denied,
        E::LimitOverrideGranted => AuditDecision::OverrideGranted,
        E::LimitOverrideRevoked => AuditDecision::OverrideRevoked,
        E::EmergencyOverrideActivated => AuditDecision::EmergencyOverrideOn,
        E::EmergencyOverrideDeactivated => AuditDecision::EmergencyOverrideOff,
        _ => return None,
    })
}

/// Narrows a filter's event types and actor type to `view`; an impossible combination yields
/// an empty event-type set, which selects nothing.
pub fn narrow(
    view: AuditView,
    event_types: Option<Vec<E>>,
    actor_type: Option<ActorType>,
) -> (Option<Vec<E>>, Option<ActorType>) {
    let events = match (event_types, view.event_types()) {
        (None, allowed) => allowed,
        (Some(asked), None) => Some(asked),
        (Some(asked), Some(allowed)) => {
            Some(asked.into_iter().filter(|e| allowed.contains(e)).collect())
        }
    };
    match (actor_type, view.actor_type()) {
        (Some(asked), Some(required)) if asked != required => (Some(Vec::new()), Some(asked)),
        (asked, required) => (events, asked.or(required)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_and_access_partition_the_event_types() {
        let access = AuditView::Access.event_types().unwrap();
        let decisions = AuditView::Authorization.event_types().unwrap();
        assert_eq!(access.len() + decisions.len(), E::ALL.len());
        assert!(decisions.iter().all(|e| decision_of(*e).is_some()));
        assert!(access.iter().all(|e| decision_of(*e).is_none()));
    }

    #[test]
    fn narrowing_intersects() {
        let (events, actor) = narrow(
            AuditView::Authorization,
            Some(vec![E::LimitBreached, E::LimitCreated]),
            None,
        );
        assert_eq!(events, Some(vec![E::LimitBreached]));
        assert_eq!(actor, None);
        let (events, actor) = narrow(AuditView::Identity, None, Some(ActorType::System));
        assert_eq!(events, Some(vec![]));
        assert_eq!(actor, Some(ActorType::System));
        let (events, actor) = narrow(AuditView::Identity, None, None);
        assert_eq!((events, actor), (None, Some(ActorType::Human)));
    }
}
