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
    let behavior = request.behavior.unwrap_or(step.replay_behavior);
    let key = step.idempotency_key.filter(|k| !k.is_empty());
    let original = step.output_hash.filter(|h| !h.is_empty());
    let actual = hash_output(&request.output);
    let base = Enforcement {
        trace_id: trace.trace_id,
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

    if let Some(key) = &key {
        if let Some(cached) = get(txn, tenant, key).await? {
            match behavior {
                ReplayBehavior::Skip => {
                    return Ok(Enforcement {
                        outcome: ReplayOutcome::Skipped,
                        skipped: true,
                        from_cache: true,
                        output: cached.output,
                        output_hash: cached.output_hash,
                        ..base
                    });
                }
                ReplayBehavior::Check => {
                    // The Python platform handed the cached output back for its caller to verify;
                    // here the caller sent its new output, so the verification happens here.
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
                ReplayBehavior::Execute => {}
            }
        }
    }

    if let Some(key) = &key {
        let record = RecordedOutput {
            output: request.output.clone(),
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
        output: request.output.clone(),
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
