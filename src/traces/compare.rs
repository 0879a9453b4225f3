//! Comparing two traces (docs/domain.md §5.5): the field diff of the Python platform's HTTP
//! compare, and the parity check over step determinism hashes. Pure functions over snapshots.

use super::{determinism_signature, StepSnapshot, TraceSnapshot};

/// One field that differs between the two traces.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDifference {
    /// `root_hash`, `seed`, `frozen_timestamp`, `step_count`, `step[i].skill_name` or
    /// `step[i].outcome_category`.
    pub field: String,
    pub left: Option<String>,
    pub right: Option<String>,
}

/// The parity comparison over determinism signatures.
#[derive(Debug, Clone, PartialEq)]
pub struct Parity {
    pub is_parity: bool,
    pub left_signature: String,
    pub right_signature: String,
    /// Position (0-based, in step order) of the first differing step.
    pub divergence_step: Option<i32>,
    pub divergence_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceComparison {
    /// No field differences.
    pub is_match: bool,
    pub left_root_hash: Option<String>,
    pub right_root_hash: Option<String>,
    pub differences: Vec<FieldDifference>,
    pub summary: String,
    pub parity: Parity,
}

fn diff(
    out: &mut Vec<FieldDifference>,
    field: impl Into<String>,
    left: Option<String>,
    right: Option<String>,
) {
    if left != right {
        out.push(FieldDifference {
            field: field.into(),
            left,
            right,
        });
    }
}

/// The field diff: root hash, seed, frozen timestamp, step count, and per zipped step its skill
/// name and outcome category.
pub fn field_differences(
    left: &TraceSnapshot,
    left_steps: &[StepSnapshot],
    right: &TraceSnapshot,
    right_steps: &[StepSnapshot],
) -> Vec<FieldDifference> {
    let mut out = Vec::new();
    diff(
        &mut out,
        "root_hash",
        left.root_hash.clone(),
        right.root_hash.clone(),
    );
    diff(
        &mut out,
        "seed",
        left.seed.map(|s| s.to_string()),
        right.seed.map(|s| s.to_string()),
    );
    diff(
        &mut out,
        "frozen_timestamp",
        left.frozen_timestamp.clone(),
        right.frozen_timestamp.clone(),
    );
    diff(
        &mut out,
        "step_count",
        Some(left_steps.len().to_string()),
        Some(right_steps.len().to_string()),
    );
    for (i, (l, r)) in left_steps.iter().zip(right_steps).enumerate() {
        diff(
            &mut out,
            format!("step[{i}].skill_name"),
            Some(l.skill_name.clone()),
            Some(r.skill_name.clone()),
        );
        diff(
            &mut out,
            format!("step[{i}].outcome_category"),
            Some(l.outcome_category.clone()),
            Some(r.outcome_category.clone()),
        );
    }
    out
}

/// "Traces are deterministically identical", or "Traces differ in N field(s): a, b, c and K
/// more".
pub fn summary(differences: &[FieldDifference]) -> String {
    if differences.is_empty() {
        return "Traces are deterministically identical".to_owned();
    }
    let names: Vec<&str> = differences
        .iter()
        .take(3)
        .map(|d| d.field.as_str())
        .collect();
    let mut text = format!(
        "Traces differ in {} field(s): {}",
        differences.len(),
        names.join(", ")
    );
    if differences.len() > 3 {
        text.push_str(&format!(" and {} more", differences.len() - 3));
    }
    text
}

/// Parity of two step sequences (each in step order).
pub fn parity(left: &[StepSnapshot], right: &[StepSnapshot]) -> Parity {
    let left_signature = determinism_signature(left);
    let right_signature = determinism_signature(right);
    let mut result = Parity {
        is_parity: left_signature == right_signature,
        left_signature,
        right_signature,
        divergence_step: None,
        divergence_reason: None,
    };
    if result.is_parity {
        return result;
    }
    let diverged = left
        .iter()
        .zip(right)
        .enumerate()
        .find(|(_, (l, r))| l.determinism_hash() != r.determinism_hash());
    let (step, reason) = match diverged {
        Some((i, (l, r))) => {
            let mut reasons = Vec::new();
            if l.skill_name != r.skill_name {
                reasons.push(format!("skill: {} vs {}", l.skill_name, r.skill_name));
            }
            if l.status != r.status {
                reasons.push(format!("status: {} vs {}", l.status, r.status));
            }
            if l.retry_count != r.retry_count {
                reasons.push(format!("retries: {} vs {}", l.retry_count, r.retry_count));
            }
            if l.params != r.params {
                reasons.push("params differ".to_owned());
            }
            let reason = if reasons.is_empty() {
                "hash mismatch".to_owned()
            } else {
                reasons.join("; ")
            };
            (Some(i as i32), reason)
        }
        None if left.len() != right.len() => (
            Some(left.len().min(right.len()) as i32),
            format!("step count: {} vs {}", left.len(), right.len()),
        ),
        None => (None, "unknown divergence".to_owned()),
    };
    result.divergence_step = step;
    result.divergence_reason = Some(reason);
    result
}

pub fn compare(
    left: &TraceSnapshot,
    left_steps: &[StepSnapshot],
    right: &TraceSnapshot,
    right_steps: &[StepSnapshot],
) -> TraceComparison {
    let differences = field_differences(left, left_steps, right, right_steps);
    TraceComparison {
        is_match: differences.is_empty(),
        left_root_hash: left.root_hash.clone(),
        right_root_hash: right.root_hash.clone(),
        summary: summary(&differences),
        differences,
        parity: parity(left_steps, right_steps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::{ReplayBehavior, StepLevel, StepSource};
    use chrono::TimeZone;
    use serde_json::json;

    fn step(i: i32, skill: &str, status: &str) -> StepSnapshot {
        StepSnapshot {
            id: format!("s{i}"),
            trace_id: "t".into(),
            step_index: i,
            skill_id: skill.into(),
            skill_name: skill.into(),
            params: json!({"n": i}),
            status: status.into(),
            outcome_category: "SUCCESS".into(),
            outcome_code: None,
            outcome_data: None,
            cost_cents: 1.0,
            duration_ms: 2.0,
            retry_count: 0,
            input_hash: None,
            output_hash: None,
            rng_state_before: None,
            idempotency_key: None,
            replay_behavior: ReplayBehavior::Execute,
            timestamp: chrono::Utc.timestamp_opt(0, 0).unwrap(),
            source: StepSource::Engine,
            level: StepLevel::Info,
            is_synthetic: false,
            synthetic_scenario_id: None,
        }
    }

    #[test]
    fn parity_finds_the_first_divergent_step() {
        let a = vec![step(0, "a", "success"), step(1, "b", "success")];
        let mut b = a.clone();
        assert!(parity(&a, &b).is_parity);
        b[1].skill_name = "c".into();
        b[1].status = "failure".into();
        let p = parity(&a, &b);
        assert!(!p.is_parity);
        assert_eq!(p.divergence_step, Some(1));
        assert_eq!(
            p.divergence_reason.as_deref(),
            Some("skill: b vs c; status: success vs failure")
        );
        let p = parity(&a, &a[..1]);
        assert_eq!(p.divergence_step, Some(1));
        assert_eq!(p.divergence_reason.as_deref(), Some("step count: 2 vs 1"));
    }

    #[test]
    fn summary_names_three_fields() {
        let d = |f: &str| FieldDifference {
            field: f.into(),
            left: None,
            right: Some("x".into()),
        };
        assert_eq!(summary(&[]), "Traces are deterministically identical");
        assert_eq!(
            summary(&[d("a"), d("b"), d("c"), d("d"), d("e")]),
            "Traces differ in 5 field(s): a, b, c and 2 more"
        );
    }
}
