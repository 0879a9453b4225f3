//! GraphQL for policy activations: the `PolicyActivation` node with its computed confidence
//! fields, `policyActivations` (keyset-paged) and `recoveryConfidence` (the calculator).

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use super::confidence::{self, ConfidenceBand};
use super::{store, ActivationFilter, ApprovalKind, PolicyActivationSnapshot};
use crate::auth::{self, Permission};
use crate::error::{AppError, AppResult};
use crate::ids::{self, NodeKind};
use crate::pagination::canonical;
use crate::scalars::DateTime;
use crate::state::AppState;

/// A policy's activation record: where the policy came from (pattern, recovery, loop trace),
/// the confidence it was activated with and who or what approved it. One per policy; a
/// re-record by the same tenant moves `confidenceAtActivation`, `approvalPath` and
/// `activatedAt` only.
#[derive(Clone)]
pub struct PolicyActivation(pub PolicyActivationSnapshot);

#[Object]
impl PolicyActivation {
    /// Global object id (for `node`).
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::PolicyActivation, &self.0.policy_id)
    }
    /// The activated policy (unique across the server).
    async fn policy_id(&self) -> &str {
        &self.0.policy_id
    }
    /// The pattern the policy was learned from (kept from the first record).
    async fn source_pattern_id(&self) -> &str {
        &self.0.source_pattern_id
    }
    /// The recovery the policy came from, if any (kept from the first record).
    async fn source_recovery_id(&self) -> Option<&str> {
        self.0.source_recovery_id.as_deref()
    }
    /// The confidence at the latest activation, in [0, 1].
    async fn confidence_at_activation(&self) -> f64 {
        self.0.confidence_at_activation
    }
    /// The calculator version the confidence was graded with (`CONFIDENCE_V1`).
    async fn confidence_version(&self) -> &str {
        &self.0.confidence_version
    }
    /// As stored: `auto`, `threshold` or `human:<user id>`.
    async fn approval_path(&self) -> &str {
        self.0.approval_path.as_str()
    }
    async fn approval_kind(&self) -> ApprovalKind {
        self.0.approval_path.kind()
    }
    /// The approving user of a `human:` approval.
    async fn approved_by(&self) -> Option<&str> {
        self.0.approval_path.user_id()
    }
    /// The improvement loop's trace, if any (kept from the first record).
    async fn loop_trace_id(&self) -> Option<&str> {
        self.0.loop_trace_id.as_deref()
    }
    /// The latest activation (moves when the policy is recorded again).
    async fn activated_at(&self) -> DateTime {
        self.0.activated_at.into()
    }
    /// The first activation (never moves; the list order and what `asOf` bounds).
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// The band of `confidenceAtActivation` (at least 0.85 strong, at least 0.6 weak).
    async fn confidence_band(&self) -> ConfidenceBand {
        confidence::band(self.0.confidence_at_activation)
    }
    /// Human confirmations the confidence calls for: 0, 1 or 2.
    async fn confirmation_level(&self) -> i32 {
        confidence::confirmation_level(self.0.confidence_at_activation)
    }
    /// Whether the confidence allows applying the policy without a human (at least 0.85). The
    /// occurrence count is not stored with an activation, so it is not part of this answer; see
    /// `recoveryConfidence` for the full rule.
    async fn auto_apply_allowed(&self) -> bool {
        confidence::auto_apply_allowed(self.0.confidence_at_activation, None)
    }
}

crate::connection_types!(
    PolicyActivationConnection,
    PolicyActivationEdge,
    PolicyActivation from PolicyActivationSnapshot
);

impl crate::plain::PlainFields for PolicyActivation {}

/// Filters for `policyActivations`; every given condition must hold.
#[derive(Debug, Clone, Default, InputObject)]
pub struct PolicyActivationFilter {
    pub policy_id: Option<String>,
    pub source_pattern_id: Option<String>,
    pub source_recovery_id: Option<String>,
    pub loop_trace_id: Option<String>,
    /// Any of these approval kinds.
    pub approval_kind: Option<Vec<ApprovalKind>>,
    /// The user of a `human:<user id>` approval.
    pub approved_by: Option<String>,
    /// Any of these bands of `confidenceAtActivation`.
    pub band: Option<Vec<ConfidenceBand>>,
    /// Inclusive lower bound on `activatedAt` (the latest activation).
    pub activated_after: Option<DateTime>,
    /// Inclusive upper bound on `activatedAt`.
    pub activated_before: Option<DateTime>,
    /// Inclusive lower bound on `createdAt` (the first activation).
    pub created_after: Option<DateTime>,
    /// Inclusive upper bound on `createdAt`.
    pub created_before: Option<DateTime>,
}

impl From<PolicyActivationFilter> for ActivationFilter {
    fn from(f: PolicyActivationFilter) -> Self {
        ActivationFilter {
            policy_id: f.policy_id,
            source_pattern_id: f.source_pattern_id,
            source_recovery_id: f.source_recovery_id,
            loop_trace_id: f.loop_trace_id,
            approval_kind: f.approval_kind.map(|v| canonical(v, ApprovalKind::as_str)),
            approved_by: f.approved_by,
            band: f.band.map(|v| canonical(v, ConfidenceBand::as_str)),
            activated_after: f.activated_after.map(|d| d.0),
            activated_before: f.activated_before.map(|d| d.0),
            created_after: f.created_after.map(|d| d.0),
            created_before: f.created_before.map(|d| d.0),
        }
    }
}

crate::list_field!(
    /// The tenant's policy activations, newest first activation (`createdAt`) first, ties
    /// broken by policy id. A re-record does not move a row; `asOf` bounds `createdAt`.
    PolicyActivationsField.policy_activations(PolicyActivationFilter) -> PolicyActivationConnection = store::ActivationList
);

/// Fetches an activation by policy id for `node(id)`.
pub async fn node(ctx: &Context<'_>, policy_id: &str) -> AppResult<PolicyActivation> {
    let principal = auth::require(ctx, Permission::Read).await?;
    let state = ctx.data_unchecked::<AppState>();
    store::get(&state.db, &principal.tenant_id, policy_id)
        .await?
        .map(PolicyActivation)
        .ok_or(AppError::NotFound("PolicyActivation"))
}

/// A recovery's confidence under `CONFIDENCE_V1`, with how it was reached.
#[derive(SimpleObject)]
pub struct RecoveryConfidence {
    /// `CONFIDENCE_V1`.
    pub version: &'static str,
    /// 0.7 for a strong match, else 0.5.
    pub base_confidence: f64,
    pub occurrence_count: i32,
    /// What the occurrences added: 0.2 for 3 or more, 0.1 for 2, else 0.
    pub boost_applied: f64,
    /// `min(0.90, baseConfidence + boostApplied)`.
    pub final_confidence: f64,
    pub band: ConfidenceBand,
    /// Human confirmations called for: 0 (at least 0.85), 1 (at least 0.6) or 2.
    pub confirmation_level: i32,
    /// At least 0.85 and at least 3 occurrences.
    pub auto_apply_allowed: bool,
}

#[derive(Default)]
pub struct RecoveryConfidenceQuery;

#[Object]
impl RecoveryConfidenceQuery {
    /// The confidence calculator (`CONFIDENCE_V1`): a recovery's confidence from whether its
    /// pattern matched strongly and how many times it occurred. Reads nothing stored.
    async fn recovery_confidence(
        &self,
        ctx: &Context<'_>,
        strong_match: bool,
        #[graphql(desc = "Times the pattern was seen, at least 0.")] occurrences: i32,
    ) -> async_graphql::Result<RecoveryConfidence> {
        auth::require(ctx, Permission::Read).await?;
        if occurrences < 0 {
            return Err(
                AppError::bad_input("occurrences", "occurrences must be at least 0").into(),
            );
        }
        let r = confidence::recovery_confidence(strong_match, occurrences);
        Ok(RecoveryConfidence {
            version: confidence::VERSION,
            base_confidence: r.base_confidence,
            occurrence_count: r.occurrence_count,
            boost_applied: r.boost_applied,
            final_confidence: r.final_confidence,
            band: r.band(),
            confirmation_level: r.confirmation_level(),
            auto_apply_allowed: r.auto_apply_allowed(),
        })
    }
}

/// The root fields, in schema order.
#[derive(async_graphql::MergedObject, Default)]
pub struct PolicyQuery(PolicyActivationsField, RecoveryConfidenceQuery);
