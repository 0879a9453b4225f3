//! `recordPolicyActivation` (roles INGEST, ADMIN: the platform's policy engine records
//! activations, like the other producer writes): records a policy's activation in the key's
//! tenant, idempotently (docs/writes.md). Policy ids are unique across the server; one already
//! recorded by another tenant is refused without touching or showing that tenant's row.

use async_graphql::{Context, InputObject, Object};

use super::graphql::PolicyActivation;
use super::store::{self, NewActivation, Recorded};
use super::ApprovalPath;
use crate::auth::{self, Permission};
use crate::error::{AppError, AppResult};
use crate::idempotency::WriteOnce;
use crate::input::check_id;
use crate::state::AppState;

/// Width of the id columns.
const MAX_ID: usize = 64;
/// Width of `approval_path`.
const MAX_APPROVAL_PATH: usize = 128;

/// A policy going live in the key's tenant.
#[derive(Debug, InputObject)]
pub struct RecordPolicyActivationInput {
    /// The policy (at most 64 of `A-Z a-z 0-9 . _ : -`); unique across the server.
    pub policy_id: String,
    /// The pattern it was learned from (kept from the first record).
    pub source_pattern_id: String,
    /// The recovery it came from (kept from the first record).
    pub source_recovery_id: Option<String>,
    /// The confidence it is activated with, in [0, 1].
    pub confidence: f64,
    /// `auto`, `threshold` or `human:<user id>` (at most 128 characters).
    pub approval_path: String,
    /// The improvement loop's trace (kept from the first record).
    pub loop_trace_id: Option<String>,
}

fn parse(input: RecordPolicyActivationInput) -> AppResult<NewActivation> {
    check_id("input.policyId", &input.policy_id, MAX_ID)?;
    check_id("input.sourcePatternId", &input.source_pattern_id, MAX_ID)?;
    if let Some(id) = &input.source_recovery_id {
        check_id("input.sourceRecoveryId", id, MAX_ID)?;
    }
    if let Some(id) = &input.loop_trace_id {
        check_id("input.loopTraceId", id, MAX_ID)?;
    }
    if !input.confidence.is_finite() || !(0.0..=1.0).contains(&input.confidence) {
        return Err(AppError::bad_input(
            "input.confidence",
            "input.confidence must be a number from 0 to 1",
        ));
    }
    let approval_path = (input.approval_path.chars().count() <= MAX_APPROVAL_PATH)
        .then(|| ApprovalPath::parse(&input.approval_path))
        .flatten()
        .ok_or_else(|| {
            AppError::bad_input(
                "input.approvalPath",
                "input.approvalPath must be `auto`, `threshold` or `human:<user id>` \
                 (at most 128 characters)",
            )
        })?;
    Ok(NewActivation {
        policy_id: input.policy_id,
        source_pattern_id: input.source_pattern_id,
        source_recovery_id: input.source_recovery_id,
        confidence: input.confidence,
        approval_path,
        loop_trace_id: input.loop_trace_id,
    })
}

#[derive(Default)]
pub struct PolicyMutation;

#[Object]
impl PolicyMutation {
    /// Records a policy's activation in the key's tenant. The first record keeps its pattern,
    /// recovery, loop trace and version; recording the policy again updates only
    /// `confidenceAtActivation`, `approvalPath` and `activatedAt`. A policy id another tenant
    /// recorded is `BAD_USER_INPUT` on `input.policyId`, and nothing is written. Roles INGEST,
    /// ADMIN.
    async fn record_policy_activation(
        &self,
        ctx: &Context<'_>,
        input: RecordPolicyActivationInput,
        #[graphql(desc = "Same key + same input returns the first result again.")]
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<PolicyActivation> {
        let principal = auth::require(ctx, Permission::Ingest).await?;
        let state = ctx.data_unchecked::<AppState>();
        let new = parse(input)?;
        let tenant = &principal.tenant_id;
        let activation = WriteOnce::new(
            state,
            tenant,
            "recordPolicyActivation",
            idempotency_key,
            &new,
        )?
        .run(async |txn| match store::record(txn, tenant, &new).await? {
            Recorded::Stored(activation) => Ok(activation),
            Recorded::TakenElsewhere => Err(AppError::bad_input(
                "input.policyId",
                "input.policyId is already recorded outside this tenant (policy ids are \
                 unique across the server); record the activation under another id",
            )),
        })
        .await?;
        Ok(PolicyActivation(activation))
    }
}
