//! Query cost rules shared by list fields: a list costs its page size times its child cost, so a
//! client asking for 100 runs with nested lists pays for all of them up front.

/// The page size of a list asked for with neither `first` nor `last`.
pub const DEFAULT_PAGE_SIZE: u64 = 50;

pub fn list_cost(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    let size = first.or(last).unwrap_or(DEFAULT_PAGE_SIZE as i32).max(1) as usize;
    size.saturating_mul(child_complexity.max(1))
        .saturating_add(1)
}

/// How deep introspection may go. Introspection is not held to the depth limit: the standard
/// introspection query that GraphiQL and every client generator send is 15 deep (a type
/// reference unwraps `ofType` nine times), and the schema, not the data, bounds what it reads
/// (`crate::admission` also bounds how many of its lists nest).
pub const INTROSPECTION_MAX_DEPTH: usize = 20;

/// What `Ledger.verify` costs whatever it selects: it walks the tenant's whole chain.
pub const LEDGER_VERIFY_COST: usize = 1000;

/// Fields with a fixed complexity, as (type, field, cost). Admission prices documents with the
/// same figures the schema declares (`#[graphql(complexity = ...)]` names these constants).
pub const FIXED_COSTS: &[(&str, &str, usize)] = &[("Ledger", "verify", LEDGER_VERIFY_COST)];

/// Objects one request may fetch by id: `nodes(ids:)`, and all `_entities(representations:)` of
/// a federated server's request together.
pub const MAX_IDS_PER_REQUEST: usize = 100;
