//! Panel consistency (docs/domain.md §11): cross-slot rules that a BFF runs over the results of a
//! dashboard panel's slots before showing them. Pure logic, no database.
//!
//! The algorithm and condition mini-language are the Python platform's, string matching included:
//!
//! 1. Signals of all slots are collected in slot order; a signal id seen again with a different
//!    value is a `CONS-DUP` violation (the first value and slot are kept).
//! 2. Each rule is skipped when either of its signals is absent or null; otherwise its
//!    condition is evaluated, and a false condition is a violation (severity `ERROR`).
//! 3. The panel is consistent when there is no violation; warnings are always empty.
//!
//! Conditions: `P implies Q` means `(not P) or Q`; otherwise a condition containing `==` means
//! `a == b`, one containing `!=` means `a != b`, and anything else is true (not evaluable,
//! logged). In `P`/`Q`, a sub-expression mentioning `signal_a` with `> 0` or `== 0` compares a
//! number with 0 and tests any other value's truthiness (`== 0`: falsiness); one mentioning
//! `signal_b` with `== True`/`== true`, `== False`/`== false`, `== 'STRESSED'` or `!= 'NONE'`
//! tests b against that value; any other sub-expression is true.
//!
//! Differences from the Python platform, where JSON makes them observable: values are compared
//! as JSON values with numbers compared by value (`1 == 1.0`), but a boolean never equals a
//! number (Python's `True == 1`); values are rendered in messages as JSON, strings unquoted.

pub mod graphql;

use serde_json::Value;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum PanelSeverity {
    /// The panel must not be shown as is.
    Error,
    /// Worth showing; not produced by the current rules.
    Warning,
}

/// One slot's result: its output signals in the order the slot produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotResult {
    pub slot_id: String,
    pub slot_contract_id: String,
    pub output_signals: Vec<(String, Value)>,
}

/// A cross-slot rule over two signals.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub signal_a: String,
    pub signal_b: String,
    pub condition: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub rule_id: String,
    pub rule_name: String,
    /// Slots whose signals are involved, de-duplicated, in order.
    pub slots: Vec<String>,
    pub expected: String,
    pub actual: String,
    pub severity: PanelSeverity,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub panel_id: String,
    pub is_consistent: bool,
    pub violations: Vec<Violation>,
    pub warnings: Vec<Violation>,
}

fn rule(id: &str, name: &str, description: &str, a: &str, b: &str, condition: &str) -> Rule {
    Rule {
        id: id.into(),
        name: name.into(),
        description: Some(description.into()),
        signal_a: a.into(),
        signal_b: b.into(),
        condition: condition.into(),
    }
}

/// The four default rules (CONS-001 … CONS-004).
pub fn default_rules() -> Vec<Rule> {
    vec![
        rule(
            "CONS-001",
            "active_incidents_attention_consistency",
            "If active_incidents > 0 then attention_required must be true",
            "active_incidents",
            "attention_required",
            "signal_a > 0 implies signal_b == True",
        ),
        rule(
            "CONS-002",
            "at_risk_system_state_consistency",
            "If at_risk_runs > 0 then system_state must be STRESSED",
            "at_risk_runs",
            "system_state",
            "signal_a > 0 implies signal_b == 'STRESSED'",
        ),
        rule(
            "CONS-003",
            "running_count_consistency",
            "active_runs must match sum of running counts",
            "active_runs",
            "runs.by_status.running",
            "signal_a == signal_b",
        ),
        rule(
            "CONS-004",
            "incident_severity_consistency",
            "If active_incidents > 0 then highest_severity must not be NONE",
            "active_incidents",
            "highest_severity",
            "signal_a > 0 implies signal_b != 'NONE'",
        ),
    ]
}

/// JSON equality with numbers compared by value.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| values_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Python truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// A value as shown in `expected`/`actual`: strings bare, everything else as JSON.
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One side of an `implies` (see the module docs).
fn eval_expr(expr: &str, a: &Value, b: &Value) -> bool {
    if expr.contains("signal_a") {
        if expr.contains("> 0") {
            return number(a).map_or_else(|| truthy(a), |n| n > 0.0);
        }
        if expr.contains("== 0") {
            return number(a).map_or_else(|| !truthy(a), |n| n == 0.0);
        }
    }
    if expr.contains("signal_b") {
        if expr.contains("== True") || expr.contains("== true") {
            return *b == Value::Bool(true);
        }
        if expr.contains("== False") || expr.contains("== false") {
            return *b == Value::Bool(false);
        }
        if expr.contains("== 'STRESSED'") {
            return b.as_str() == Some("STRESSED");
        }
        if expr.contains("!= 'NONE'") {
            return b.as_str() != Some("NONE");
        }
    }
    true
}

/// Evaluates a rule condition over the two signal values (see the module docs).
pub fn evaluate(condition: &str, a: &Value, b: &Value) -> bool {
    if condition.contains("implies") {
        let parts: Vec<&str> = condition.split(" implies ").collect();
        if let [p, q] = parts.as_slice() {
            let p = eval_expr(p.trim(), a, b);
            let q = eval_expr(q.trim(), a, b);
            return !p || q;
        }
    }
    if condition.contains("==") {
        return values_equal(a, b);
    }
    if condition.contains("!=") {
        return !values_equal(a, b);
    }
    tracing::warn!(
        condition,
        "panel consistency: condition cannot be evaluated"
    );
    true
}

/// Checks a panel's slots against `rules` (docs/domain.md §11).
pub fn check(panel_id: &str, slots: &[SlotResult], rules: &[Rule]) -> CheckResult {
    let mut violations = Vec::new();
    // signal id → (value, source slot), first occurrence wins
    let mut signals: Vec<(&str, &Value, &str)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for slot in slots {
        for (id, value) in &slot.output_signals {
            match index.get(id.as_str()) {
                Some(&at) => {
                    let (_, first, source) = signals[at];
                    if !values_equal(first, value) {
                        violations.push(Violation {
                            rule_id: "CONS-DUP".into(),
                            rule_name: "duplicate_signal_mismatch".into(),
                            slots: vec![source.to_owned(), slot.slot_id.clone()],
                            expected: format!("{id}={} (from {source})", render(first)),
                            actual: format!("{id}={} (from {})", render(value), slot.slot_id),
                            severity: PanelSeverity::Error,
                        });
                    }
                }
                None => {
                    index.insert(id.as_str(), signals.len());
                    signals.push((id.as_str(), value, slot.slot_id.as_str()));
                }
            }
        }
    }
    for rule in rules {
        let lookup = |id: &str| {
            index
                .get(id)
                .map(|&at| signals[at])
                .filter(|(_, v, _)| !v.is_null())
        };
        let (Some((_, a, slot_a)), Some((_, b, slot_b))) =
            (lookup(&rule.signal_a), lookup(&rule.signal_b))
        else {
            continue;
        };
        if evaluate(&rule.condition, a, b) {
            continue;
        }
        let mut involved = vec![slot_a.to_owned()];
        if slot_b != slot_a {
            involved.push(slot_b.to_owned());
        }
        violations.push(Violation {
            rule_id: rule.id.clone(),
            rule_name: rule.name.clone(),
            slots: involved,
            expected: rule
                .description
                .clone()
                .unwrap_or_else(|| rule.condition.clone()),
            actual: format!(
                "{}={}, {}={}",
                rule.signal_a,
                render(a),
                rule.signal_b,
                render(b)
            ),
            severity: PanelSeverity::Error,
        });
    }
    CheckResult {
        panel_id: panel_id.to_owned(),
        is_consistent: violations.is_empty(),
        violations,
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slot(id: &str, signals: Value) -> SlotResult {
        let Value::Object(map) = signals else {
            panic!("signals must be an object")
        };
        SlotResult {
            slot_id: id.into(),
            slot_contract_id: format!("contract.{id}"),
            output_signals: map.into_iter().collect(),
        }
    }

    fn run(slots: &[SlotResult]) -> CheckResult {
        check("panel-1", slots, &default_rules())
    }

    fn ids(result: &CheckResult) -> Vec<&str> {
        result
            .violations
            .iter()
            .map(|v| v.rule_id.as_str())
            .collect()
    }

    #[test]
    fn cons_001_incidents_need_attention() {
        let bad = run(&[
            slot("incidents", json!({"active_incidents": 2})),
            slot("attention", json!({"attention_required": false})),
        ]);
        assert_eq!(ids(&bad), ["CONS-001"]);
        let v = &bad.violations[0];
        assert_eq!(v.rule_name, "active_incidents_attention_consistency");
        assert_eq!(v.slots, ["incidents", "attention"]);
        assert_eq!(
            v.expected,
            "If active_incidents > 0 then attention_required must be true"
        );
        assert_eq!(v.actual, "active_incidents=2, attention_required=false");
        assert_eq!(v.severity, PanelSeverity::Error);
        assert!(!bad.is_consistent);

        // "true" as a string is not the boolean true
        let string_true = run(&[slot(
            "s",
            json!({"active_incidents": 1, "attention_required": "true"}),
        )]);
        assert_eq!(ids(&string_true), ["CONS-001"]);
        assert_eq!(string_true.violations[0].slots, ["s"]);

        let ok = run(&[slot(
            "s",
            json!({"active_incidents": 0, "attention_required": false}),
        )]);
        assert!(ok.is_consistent);
        let ok = run(&[slot(
            "s",
            json!({"active_incidents": 3, "attention_required": true}),
        )]);
        assert!(ok.is_consistent);
    }

    #[test]
    fn cons_002_at_risk_runs_mean_stressed() {
        let bad = run(&[slot(
            "s",
            json!({"at_risk_runs": 1.5, "system_state": "HEALTHY"}),
        )]);
        assert_eq!(ids(&bad), ["CONS-002"]);
        assert_eq!(
            bad.violations[0].actual,
            "at_risk_runs=1.5, system_state=HEALTHY"
        );
        let ok = run(&[slot(
            "s",
            json!({"at_risk_runs": 4, "system_state": "STRESSED"}),
        )]);
        assert!(ok.is_consistent);
        // non-numbers use truthiness: an empty list is not > 0
        let ok = run(&[slot("s", json!({"at_risk_runs": [], "system_state": "OK"}))]);
        assert!(ok.is_consistent);
        let bad = run(&[slot(
            "s",
            json!({"at_risk_runs": ["r1"], "system_state": "OK"}),
        )]);
        assert_eq!(ids(&bad), ["CONS-002"]);
    }

    #[test]
    fn cons_003_running_counts_match() {
        let bad = run(&[
            slot("a", json!({"active_runs": 3})),
            slot("b", json!({"runs.by_status.running": 4})),
        ]);
        assert_eq!(ids(&bad), ["CONS-003"]);
        assert_eq!(bad.violations[0].slots, ["a", "b"]);
        assert_eq!(
            bad.violations[0].expected,
            "active_runs must match sum of running counts"
        );
        // the dotted id is a flat key, numbers compare by value
        let ok = run(&[
            slot("a", json!({"active_runs": 3})),
            slot("b", json!({"runs.by_status.running": 3.0})),
        ]);
        assert!(ok.is_consistent);
        let nested = run(&[
            slot("a", json!({"active_runs": 3})),
            slot("b", json!({"runs": {"by_status": {"running": 4}}})),
        ]);
        assert!(nested.is_consistent, "nested objects are not looked into");
    }

    #[test]
    fn cons_004_incidents_have_a_severity() {
        let bad = run(&[slot(
            "s",
            json!({"active_incidents": 1, "attention_required": true, "highest_severity": "NONE"}),
        )]);
        assert_eq!(ids(&bad), ["CONS-004"]);
        let ok = run(&[slot(
            "s",
            json!({"active_incidents": 1, "attention_required": true, "highest_severity": "HIGH"}),
        )]);
        assert!(ok.is_consistent);
    }

    #[test]
    fn duplicates_come_first_and_keep_the_first_value() {
        let result = run(&[
            slot("a", json!({"active_runs": 3, "runs.by_status.running": 3})),
            slot("b", json!({"active_runs": 5})),
            slot("c", json!({"active_runs": 3})),
        ]);
        assert_eq!(
            ids(&result),
            ["CONS-DUP"],
            "CONS-003 uses the first value, 3"
        );
        let dup = &result.violations[0];
        assert_eq!(dup.rule_name, "duplicate_signal_mismatch");
        assert_eq!(dup.slots, ["a", "b"]);
        assert_eq!(dup.expected, "active_runs=3 (from a)");
        assert_eq!(dup.actual, "active_runs=5 (from b)");

        let both = run(&[
            slot("a", json!({"active_runs": 3})),
            slot("b", json!({"active_runs": 4, "runs.by_status.running": 4})),
        ]);
        assert_eq!(ids(&both), ["CONS-DUP", "CONS-003"]);
    }

    #[test]
    fn absent_or_null_signals_skip_rules() {
        let result = run(&[slot(
            "s",
            json!({"active_incidents": 5, "attention_required": null}),
        )]);
        assert!(result.is_consistent);
        assert!(run(&[]).is_consistent);
        assert!(run(&[]).warnings.is_empty());
    }

    #[test]
    fn condition_language() {
        let (one, zero) = (json!(1), json!(0));
        assert!(!evaluate("signal_a == signal_b", &one, &zero));
        assert!(evaluate("signal_a != signal_b", &one, &zero));
        assert!(
            evaluate("signal_a < signal_b", &one, &zero),
            "not evaluable → true"
        );
        assert!(!evaluate(
            "signal_a == 0 implies signal_b == false",
            &zero,
            &json!(true)
        ));
        assert!(evaluate(
            "signal_a == 0 implies signal_b == false",
            &zero,
            &json!(false)
        ));
        assert!(evaluate(
            "signal_a == 0 implies signal_b == False",
            &json!(""),
            &json!(false)
        ));
        assert!(
            evaluate("signal_a > 0 implies signal_b >= 3", &one, &zero),
            "unrecognised sub-expression → true"
        );
        // without the surrounding spaces "implies" does not split; the `==` rule applies
        assert!(!evaluate(
            "signal_a>0 implies(signal_b == True)",
            &one,
            &json!(true)
        ));
        assert!(!values_equal(&json!(true), &json!(1)));
        assert!(values_equal(
            &json!({"a": [1, 2.0]}),
            &json!({"a": [1.0, 2]})
        ));
    }

    #[test]
    fn custom_rules_replace_the_defaults() {
        let rules = vec![Rule {
            id: "X-1".into(),
            name: "x".into(),
            description: None,
            signal_a: "p".into(),
            signal_b: "q".into(),
            condition: "signal_a != signal_b".into(),
        }];
        let result = check(
            "p1",
            &[slot(
                "s",
                json!({"p": "v", "q": "v", "active_runs": 1, "runs.by_status.running": 2}),
            )],
            &rules,
        );
        assert_eq!(ids(&result), ["X-1"]);
        assert_eq!(result.violations[0].expected, "signal_a != signal_b");
        assert_eq!(result.violations[0].actual, "p=v, q=v");
        assert_eq!(result.panel_id, "p1");
    }
}
