//! Query cost rules shared by list fields: a list costs its page size times its child cost, so a
//! client asking for 100 runs with nested lists pays for all of them up front.

/// The page size of a list asked for with neither `first` nor `last`, unless configured.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// The largest `first`/`last` of a list, unless configured (trace steps and mismatches have
/// their own bounds).
pub const MAX_PAGE_SIZE: u64 = 100;
/// The largest page size an operator may configure.
pub const PAGE_SIZE_CEILING: u64 = 1000;

/// A server's page sizes (`serve --default-page-size`, `--max-page-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSizes {
    /// Rows of a page asked for with neither `first` nor `last`.
    pub default: u64,
    /// The largest `first` or `last`.
    pub max: u64,
}

impl Default for PageSizes {
    fn default() -> Self {
        PageSizes {
            default: DEFAULT_PAGE_SIZE,
            max: MAX_PAGE_SIZE,
        }
    }
}

impl PageSizes {
    /// Checks `1 <= default <= max <= PAGE_SIZE_CEILING`.
    pub fn new(default: u64, max: u64) -> Result<Self, String> {
        if max == 0 || max > PAGE_SIZE_CEILING {
            return Err(format!(
                "the maximum page size must be between 1 and {PAGE_SIZE_CEILING}, not {max}"
            ));
        }
        if default == 0 || default > max {
            return Err(format!(
                "the default page size must be between 1 and the maximum ({max}), not {default}"
            ));
        }
        Ok(PageSizes { default, max })
    }
}

/// A list's complexity as the schema declares it (`#[graphql(complexity = ...)]`), with the
/// built-in default page size: what async-graphql computes, and what admission computes for a
/// server with the default sizes (`crate::admission` prices with the configured default).
pub fn list_cost(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    priced_list(DEFAULT_PAGE_SIZE, first, last, child_complexity)
}

/// A list costs its page size (`first`, else `last`, else `default_size`) times what one item
/// selects, plus 1.
pub fn priced_list(
    default_size: u64,
    first: Option<i32>,
    last: Option<i32>,
    child_complexity: usize,
) -> usize {
    let size = first
        .or(last)
        .map_or(default_size as usize, |n| n.max(1) as usize);
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

/// What a connection's facets, aggregate or histogram costs whatever it selects: each reads the
/// whole filtered set (or its rollups), not a page. Like every field of a connection it counts
/// once per row of the page (50 by default), so one costs 500 points at the default size.
pub const VIEW_COST: usize = 10;

/// Fields with a fixed complexity, as (type, field, cost). Admission prices documents with the
/// same figures the schema declares (`#[graphql(complexity = ...)]` names these constants).
pub const FIXED_COSTS: &[(&str, &str, usize)] = &[
    ("Ledger", "verify", LEDGER_VERIFY_COST),
    ("LlmRunConnection", "facets", VIEW_COST),
    ("LlmRunConnection", "aggregate", VIEW_COST),
    ("LlmRunConnection", "histogram", VIEW_COST),
    ("TraceConnection", "facets", VIEW_COST),
    ("TraceConnection", "aggregate", VIEW_COST),
    ("TraceConnection", "histogram", VIEW_COST),
    ("SystemRecordConnection", "facets", VIEW_COST),
    ("SystemRecordConnection", "histogram", VIEW_COST),
    ("AuditEntryConnection", "facets", VIEW_COST),
    ("AuditEntryConnection", "histogram", VIEW_COST),
    ("TraceMismatchConnection", "facets", VIEW_COST),
    ("TraceMismatchConnection", "histogram", VIEW_COST),
    ("TraceStepListConnection", "facets", VIEW_COST),
    ("TraceStepListConnection", "aggregate", VIEW_COST),
    ("TraceStepListConnection", "histogram", VIEW_COST),
    ("LogExportConnection", "facets", VIEW_COST),
    ("LogExportConnection", "histogram", VIEW_COST),
];

/// Objects one request may fetch by id: `nodes(ids:)`, and all `_entities(representations:)` of
/// a federated server's request together.
pub const MAX_IDS_PER_REQUEST: usize = 100;
