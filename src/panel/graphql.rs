//! GraphQL for panel consistency: `panel(input)` checks a BFF panel's slot results against
//! cross-slot rules. No database access, but an authenticated key with read access is required.

use async_graphql::{Context, InputObject, Json, Object, SimpleObject};

use super::{check, default_rules, PanelSeverity, Rule, SlotResult, Violation};
use crate::auth::{self, Permission};
use crate::error::AppError;

/// At most this many slots, rules and signals per slot in one check.
const MAX_ITEMS: usize = 1_000;

/// One slot's result.
#[derive(Debug, Clone, InputObject)]
pub struct PanelSlotInput {
    pub slot_id: String,
    pub slot_contract_id: String,
    /// A JSON object: signal id → value. Ids are flat keys (`runs.by_status.running` is one key).
    pub output_signals: Json<async_graphql::Value>,
}

/// A rule over two signals; see `panel` for the condition language.
#[derive(Debug, Clone, InputObject)]
pub struct PanelRuleInput {
    pub rule_id: String,
    pub rule_name: String,
    /// Reported as `expected` when the rule is violated (default: the condition).
    pub description: Option<String>,
    pub signal_a: String,
    pub signal_b: String,
    /// e.g. `signal_a > 0 implies signal_b == True`, `signal_a == signal_b`.
    pub condition: String,
}

/// A panel's slot results and, optionally, its rules.
#[derive(Debug, Clone, InputObject)]
pub struct PanelInput {
    pub panel_id: String,
    pub slots: Vec<PanelSlotInput>,
    /// Absent or empty: the four default rules CONS-001 … CONS-004.
    pub rules: Option<Vec<PanelRuleInput>>,
}

/// A broken rule.
#[derive(SimpleObject)]
pub struct PanelViolation {
    /// `CONS-DUP` for a signal reported with different values by two slots, else the rule's id.
    pub rule_id: String,
    pub rule_name: String,
    /// The slots whose signals are involved.
    pub slots: Vec<String>,
    pub expected: String,
    pub actual: String,
    pub severity: PanelSeverity,
}

impl From<Violation> for PanelViolation {
    fn from(v: Violation) -> Self {
        PanelViolation {
            rule_id: v.rule_id,
            rule_name: v.rule_name,
            slots: v.slots,
            expected: v.expected,
            actual: v.actual,
            severity: v.severity,
        }
    }
}

/// The outcome of a consistency check.
#[derive(SimpleObject)]
pub struct PanelConsistencyResult {
    pub panel_id: String,
    /// True when there is no violation.
    pub is_consistent: bool,
    /// Duplicate-signal mismatches first, then rule violations in rule order.
    pub violations: Vec<PanelViolation>,
    /// Always empty: inconsistencies are violations, not warnings.
    pub warnings: Vec<PanelViolation>,
}

fn too_many(field: &str) -> AppError {
    AppError::bad_input(
        field,
        format!("`{field}` has more than {MAX_ITEMS} entries"),
    )
}

fn slot(index: usize, input: PanelSlotInput) -> Result<SlotResult, AppError> {
    let field = format!("input.slots[{index}].outputSignals");
    let async_graphql::Value::Object(map) = input.output_signals.0 else {
        return Err(AppError::bad_input(
            field.as_str(),
            format!("`{field}` must be a JSON object of signal id → value"),
        ));
    };
    if map.len() > MAX_ITEMS {
        return Err(too_many(&field));
    }
    let output_signals = map
        .into_iter()
        .map(|(id, value)| {
            value
                .into_json()
                .map(|v| (id.to_string(), v))
                .map_err(|_| AppError::bad_input(field.as_str(), "not a JSON value"))
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    Ok(SlotResult {
        slot_id: input.slot_id,
        slot_contract_id: input.slot_contract_id,
        output_signals,
    })
}

#[derive(Default)]
pub struct PanelQuery;

#[Object]
impl PanelQuery {
    /// Cross-slot consistency of a dashboard panel (docs/domain.md §11). A signal reported by two
    /// slots with different values is a `CONS-DUP` violation (the first value is used); each
    /// rule whose two signals are present and non-null is evaluated: `P implies Q` is
    /// `(not P) or Q`; a condition with `==` or `!=` compares the two values; in `P`/`Q`,
    /// `signal_a > 0` / `signal_a == 0` compare a number with 0 (other values: truthiness) and
    /// `signal_b == true|false|'STRESSED'` / `signal_b != 'NONE'` test b; anything else holds.
    async fn panel(
        &self,
        ctx: &Context<'_>,
        input: PanelInput,
    ) -> async_graphql::Result<PanelConsistencyResult> {
        auth::require(ctx, Permission::Read).await?;
        if input.slots.len() > MAX_ITEMS {
            return Err(too_many("input.slots").into());
        }
        let slots = input
            .slots
            .into_iter()
            .enumerate()
            .map(|(i, s)| slot(i, s))
            .collect::<Result<Vec<_>, AppError>>()?;
        let rules = match input.rules {
            Some(rules) if rules.len() > MAX_ITEMS => return Err(too_many("input.rules").into()),
            Some(rules) if !rules.is_empty() => rules
                .into_iter()
                .map(|r| Rule {
                    id: r.rule_id,
                    name: r.rule_name,
                    description: r.description,
                    signal_a: r.signal_a,
                    signal_b: r.signal_b,
                    condition: r.condition,
                })
                .collect(),
            _ => default_rules(),
        };
        let result = check(&input.panel_id, &slots, &rules);
        Ok(PanelConsistencyResult {
            panel_id: result.panel_id,
            is_consistent: result.is_consistent,
            violations: result.violations.into_iter().map(Into::into).collect(),
            warnings: result.warnings.into_iter().map(Into::into).collect(),
        })
    }
}
