//! Replay enforcement (docs/domain.md §7.2): a replay worker hands in a step's new output and
//! learns whether the step counts as executed, skipped or checked, or gets `REPLAY_MISMATCH`.
//!
//! The replay store remembers the last output per (tenant, step idempotency key) for 24 hours,
//! in the `replay_outputs` table, written in the enforcing mutation's own transaction: a
//! recorded output is an acknowledged write, so it survives crashes and Redis restarts like any
//! other, and every server process sees the same outputs.
//!
//! Output hash, canonical form: the first 16 lower-case hex characters of the SHA-256 of the
//! output's JSON text as Python's `json.dumps(output, sort_keys=True)` writes it (separators
//! `", "` and `": "`, keys sorted, `ensure_ascii` escapes, float `repr`;
//! [`crate::traces::hashing::python_json`]); JSON `null` hashes the 4 bytes `null`. This is the
//! Python platform's `hash_output`, kept byte-compatible because recorded `outputHash` values of
//! steps must be re-verified against it.

use async_graphql::Enum;
use entity::aos_trace_steps::{Column as S, Entity as Steps};
use entity::replay_outputs::{self, Column as R, Entity as Outputs};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::traces::hashing::python_json;
use crate::traces::ReplayBehavior;

/// How long a recorded output is kept (the Python platform's 24 h).
pub const REPLAY_TTL_SECONDS: u64 = 86_400;

/// The output hash of docs/domain.md §7.2 (see the module doc for the canonical form).
pub fn hash_output(output: &Value) -> String {
    let digest = hex::encode(Sha256::digest(python_json(output).as_bytes()));
    digest[..16].to_owned()
}

/// What the replay store keeps per key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedOutput {
    pub output: Value,
    pub output_hash: String,
    pub step_index: i32,
}

/// The answer for one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplayOutcome {
    /// The step ran (its new output was recorded).
    Executed,
    /// A `skip` step whose output was already recorded: the recorded output stands.
    Skipped,
    /// A `check` step whose output matched the recorded hash.
    Checked,
}

/// The result of enforcing one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enforcement {
    pub trace_id: String,
    pub step_index: i32,
    pub behavior: ReplayBehavior,
    pub outcome: ReplayOutcome,
    pub executed: bool,
    pub skipped: bool,
    pub checked: bool,
    /// The output and hash came from the replay store, not from this call.
    pub from_cache: bool,
    pub output: Value,
    pub output_hash: String,
    /// The hash the output was verified against (`check` only).
    pub expected_hash: Option<String>,
    /// The step's idempotency key: the replay store's key. Without one nothing is recorded.
    pub replay_key: Option<String>,
}

/// What a worker asks about one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReplay {
    pub trace_id: String,
    pub step_index: i32,
    pub output: Value,
    /// Overrides the step's recorded replay behaviour.
    pub behavior: Option<ReplayBehavior>,
}

fn mismatch(step_index: i32, expected: &str, actual: &str) -> AppError {
    AppError::ReplayMismatch {
        message: format!(
            "Replay output mismatch: step {step_index}, expected {expected}, got {actual}"
        ),
        expected: expected.to_owned(),
        actual: actual.to_owned(),
    }
}

/// Enforces one step of one of the tenant's live traces (docs/domain.md §7.2):
/// 1. with a key and a recorded output: `skip` answers SKIPPED with the recorded output;
///    `check` verifies the new output against the step's original hash (else the recorded
///    one) and answers CHECKED with the recorded output; `execute` falls through;
/// 2. `skip` without a key cannot be honoured and executes;
/// 3. execute: hash the new output and, with a key, record it (overwriting);
/// 4. `check` with an original hash that differs → `REPLAY_MISMATCH` (expected, actual);
/// 5. otherwise EXECUTED (or CHECKED for a `check` step that matched).
pub async fn enforce_step(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    request: &StepReplay,
) -> AppResult<Enforcement> {
    let trace = crate::traces::store::get_by_trace_id(txn, tenant, &request.trace_id)
        .await?
        .ok_or(AppError::NotFound("Trace"))?;
    let step = Steps::find()
        .filter(S::TenantId.eq(tenant.as_str()))
        .filter(S::TraceId.eq(trace.trace_id.as_str()))
        .filter(S::StepIndex.eq(request.step_index))
        .filter(S::ArchivedAt.is_null())
        .one(txn)
        .await?
        .map(crate::traces::store::step_snapshot)
        .transpose()?
        .ok_or(AppError::NotFound("TraceStep"))?;
    enforce_loaded(
        txn,
        tenant,
        step,
        Some(&request.output),
        request.behavior,
        "input.output",
    )
    .await
}

/// One step of a whole-trace enforcement: its index, its new output (may be left out for a
/// step the replay store answers without running it: a `skip` step with a recorded output),
/// and an optional behaviour override.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceStepReplay {
    pub step_index: i32,
    pub output: Option<Value>,
    pub behavior: Option<ReplayBehavior>,
}

/// Every step's verdict, in step order, and the coordinator's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceEnforcement {
    pub trace_id: String,
    pub steps: Vec<Enforcement>,
    pub executed: usize,
    pub skipped: usize,
    pub checked: usize,
}

/// Most steps one `enforceTrace` call takes (a trace's steps page holds 1000 too).
pub const MAX_TRACE_STEPS: usize = 1_000;

/// Enforces a whole trace, in step order (docs/domain.md §7.2 `enforce_trace`): `steps` must
/// name every live step of the trace exactly once, in ascending order. All or nothing: the
/// caller runs this in one transaction, so a `REPLAY_MISMATCH` at any step leaves no output
/// recorded for the steps before it.
pub async fn enforce_trace(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    trace_id: &str,
    steps: &[TraceStepReplay],
) -> AppResult<TraceEnforcement> {
    if steps.is_empty() || steps.len() > MAX_TRACE_STEPS {
        return Err(AppError::bad_input(
            "input.steps",
            format!("steps must hold 1 to {MAX_TRACE_STEPS} steps"),
        ));
    }
    if let Some(i) = (1..steps.len()).find(|&i| steps[i].step_index <= steps[i - 1].step_index) {
        return Err(AppError::bad_input(
            format!("input.steps.{i}.stepIndex"),
            "steps must be in strictly ascending stepIndex order",
        ));
    }
    let trace = crate::traces::store::get_by_trace_id(txn, tenant, trace_id)
        .await?
        .ok_or(AppError::NotFound("Trace"))?;
    let recorded =
        crate::traces::store::steps_for_traces(txn, tenant, std::slice::from_ref(&trace.trace_id))
            .await?
            .remove(&trace.trace_id)
            .unwrap_or_default();
    let wanted: Vec<i32> = steps.iter().map(|s| s.step_index).collect();
    let have: Vec<i32> = recorded.iter().map(|s| s.step_index).collect();
    if wanted != have {
        let missing: Vec<String> = have
            .iter()
            .filter(|i| !wanted.contains(i))
            .take(10)
            .map(i32::to_string)
            .collect();
        let unknown: Vec<String> = wanted
            .iter()
            .filter(|i| !have.contains(i))
            .take(10)
            .map(i32::to_string)
            .collect();
        return Err(AppError::bad_input(
            "input.steps",
            format!(
                "steps must name every live step of trace {} (it has {}); missing: [{}], \
                 not in the trace: [{}]",
                trace.trace_id,
                have.len(),
                missing.join(", "),
                unknown.join(", ")
            ),
        ));
    }
    let mut out = TraceEnforcement {
        trace_id: trace.trace_id,
        steps: Vec::with_capacity(steps.len()),
        executed: 0,
        skipped: 0,
        checked: 0,
    };
    for (i, (request, step)) in steps.iter().zip(recorded).enumerate() {
        let field = format!("input.steps.{i}.output");
        let done = enforce_loaded(
            txn,
            tenant,
            step,
            request.output.as_ref(),
            request.behavior,
            &field,
        )
        .await?;
        out.executed += usize::from(done.executed);
        out.skipped += usize::from(done.skipped);
        out.checked += usize::from(done.checked);
        out.steps.push(done);
    }
    Ok(out)
}

/// The enforcement of one loaded step (see [`enforce_step`] for the rules). `output` may be
/// absent only when the replay store answers a `skip` step; otherwise it is `BAD_USER_INPUT`
/// on `output_field`.
async fn enforce_loaded(
    txn: &impl ConnectionTrait,
    tenant: &TenantId,
    step: crate::traces::StepSnapshot,
    output: Option<&Value>,
    behavior: Option<ReplayBehavior>,
    output_field: &str,
) -> AppResult<Enforcement> {
    let behavior = behavior.unwrap_or(step.replay_behavior);
    let key = step.idempotency_key.filter(|k| !k.is_empty());
    let original = step.output_hash.filter(|h| !h.is_empty());
    let base = Enforcement {
        trace_id: step.trace_id,
        step_index: step.step_index,
        behavior,
        outcome: ReplayOutcome::Executed,
        executed: false,
        skipped: false,
        checked: false,
        from_cache: false,
        output: Value::Null,
        output_hash: String::new(),
        expected_hash: None,
        replay_key: key.clone(),
    };
    let cached = match &key {
        Some(key) => get(txn, tenant, key).await?,
        None => None,
    };
    if let (Some(cached), ReplayBehavior::Skip) = (&cached, behavior) {
        return Ok(Enforcement {
            outcome: ReplayOutcome::Skipped,
            skipped: true,
            from_cache: true,
            output: cached.output.clone(),
            output_hash: cached.output_hash.clone(),
            ..base
        });
    }
    let output = output.ok_or_else(|| {
        AppError::bad_input(
            output_field,
            format!(
                "step {} needs its new output: the replay store does not answer it",
                step.step_index
            ),
        )
    })?;
    let actual = hash_output(output);
    if let (Some(cached), ReplayBehavior::Check) = (cached, behavior) {
        // The Python platform handed the cached output back for its caller to verify; here the
        // caller sent its new output, so the verification happens here.
        let expected = original.unwrap_or_else(|| cached.output_hash.clone());
        if expected != actual {
            return Err(mismatch(step.step_index, &expected, &actual));
        }
        return Ok(Enforcement {
            outcome: ReplayOutcome::Checked,
            checked: true,
            from_cache: true,
            output: cached.output,
            output_hash: cached.output_hash,
            expected_hash: Some(expected),
            ..base
        });
    }

    if let Some(key) = &key {
        let record = RecordedOutput {
            output: output.clone(),
            output_hash: actual.clone(),
            step_index: step.step_index,
        };
        put(txn, tenant, key, &record).await?;
    }
    let check = behavior == ReplayBehavior::Check;
    if check {
        if let Some(expected) = &original {
            if *expected != actual {
                return Err(mismatch(step.step_index, expected, &actual));
            }
        }
    }
    Ok(Enforcement {
        outcome: if check {
            ReplayOutcome::Checked
        } else {
            ReplayOutcome::Executed
        },
        executed: true,
        checked: check,
        output: output.clone(),
        output_hash: actual,
        expected_hash: if check { original } else { None },
        ..base
    })
}

fn epoch_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The recorded output under (tenant, key), if any and not expired.
pub async fn get(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    key: &str,
) -> AppResult<Option<RecordedOutput>> {
    let found: Option<(String, String, i32)> = Outputs::find()
        .select_only()
        .columns([R::Output, R::OutputHash, R::StepIndex])
        .filter(R::TenantId.eq(tenant.as_str()))
        .filter(R::ReplayKey.eq(key))
        .filter(R::ExpiresAtMs.gt(epoch_ms()))
        .into_tuple()
        .one(conn)
        .await?;
    let Some((output, output_hash, step_index)) = found else {
        return Ok(None);
    };
    Ok(Some(RecordedOutput {
        output: serde_json::from_str(&output).map_err(AppError::internal)?,
        output_hash,
        step_index,
    }))
}

/// Records `record` under (tenant, key) for [`REPLAY_TTL_SECONDS`], replacing what was there.
pub async fn put(
    conn: &impl ConnectionTrait,
    tenant: &TenantId,
    key: &str,
    record: &RecordedOutput,
) -> AppResult<()> {
    let now = epoch_ms();
    let expires = now + (REPLAY_TTL_SECONDS as i64) * 1000;
    // Expired rows of the tenant go first: the table stays as small as the live entries.
    Outputs::delete_many()
        .filter(R::TenantId.eq(tenant.as_str()))
        .filter(R::ExpiresAtMs.lte(now))
        .exec(conn)
        .await?;
    let output = serde_json::to_string(&record.output).map_err(AppError::internal)?;
    Outputs::insert(replay_outputs::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        replay_key: Set(key.to_owned()),
        step_index: Set(record.step_index),
        output_hash: Set(record.output_hash.clone()),
        output: Set(output),
        stored_at_ms: Set(now),
        expires_at_ms: Set(expires),
    })
    .on_conflict(
        OnConflict::columns([R::TenantId, R::ReplayKey])
            .update_columns([
                R::StepIndex,
                R::OutputHash,
                R::Output,
                R::StoredAtMs,
                R::ExpiresAtMs,
            ])
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sha16(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))[..16].to_owned()
    }

    #[test]
    fn output_hash_is_python_json_with_spaced_separators() {
        assert_eq!(hash_output(&Value::Null), sha16("null"));
        assert_eq!(
            hash_output(&json!({"b": 1, "a": [1.0, "é"]})),
            sha16(r#"{"a": [1.0, "\u00e9"], "b": 1}"#)
        );
        assert_eq!(hash_output(&json!({"a": 1})).len(), 16);
        assert_ne!(hash_output(&json!({"a": 1})), hash_output(&json!({"a": 2})));
    }
}
