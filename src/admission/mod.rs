//! Admission: what a GraphQL document must pass before async-graphql validates or executes it.
//!
//! async-graphql's parser recurses once per nesting level and its depth and complexity visitors
//! expand every fragment spread, so a 4 KB list literal nested 1 800 deep overflows the stack and
//! a 1 KB chain of doubling fragments costs minutes of CPU. Every check here is linear in the
//! document's length and runs in a fixed order, each one bounding what the next may cost:
//!
//! 1. [`check_document_text`]: bracket nesting of the raw text (outside strings and comments),
//!    before the parser sees it (`QUERY_TOO_DEEP`);
//! 2. parsing (`BAD_USER_INPUT`);
//! 3. [`DocumentFacts`]: per fragment, once, in dependency order and without recursion over the
//!    fragment graph: the fields it expands to, its field depth and its fragment nesting. A cycle
//!    is refused here; past the field budget or the depth limit the document is refused
//!    (`QUERY_TOO_COMPLEX`, `QUERY_TOO_DEEP`). Introspection has its own depth and list-nesting
//!    bounds ([`INTROSPECTION_MAX_DEPTH`]). Only then may anything expand fragments;
//! 4. fan-out: at most `max_fan_out` root fields, and aliases of one field per selection set;
//! 5. no string anywhere in the arguments or variables carries NUL (neither PostgreSQL text nor
//!    JSON columns can store it, so it is refused at the door rather than by the database);
//! 6. the read grant: a key whose role may not read (INGEST) may select from a mutation's result
//!    only the receipt fields listed in [`RECEIPTS`] (ids, statuses, seals, what it just wrote),
//!    never stored content it did not write (`FORBIDDEN`);
//! 7. the cost ([`cost`]): at most `max_complexity` points (`QUERY_TOO_COMPLEX`).
//!
//! The caller authenticates before calling [`Admission::admit`], so an unauthenticated request
//! costs no parsing at all (see `app.rs`).

mod cost;

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
    TypeKind, TypeSystemDefinition,
};
use async_graphql::{Positioned, Value as ConstValue, Variables};
use async_graphql_value::Value;

use crate::config::Limits;
use crate::error::{AppError, AppResult};

/// What a document admitted for execution carries forward.
#[derive(Debug)]
pub struct Admitted {
    pub document: ExecutableDocument,
    /// The chosen operation's name, if it has one (for metrics).
    pub operation_name: Option<String>,
    pub operation_type: OperationType,
    /// Response keys of the chosen operation's root selection, in document order: the merged
    /// `Query` root answers its parts one after another, so the response is put back in this
    /// order (GraphQL spec 6.3).
    pub root_keys: Vec<String>,
    /// The document's complexity points (see [`cost`]), what the rate limit charges.
    pub cost: u64,
}

/// What the caller may read, decided by its role before the document is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadGrant {
    /// Everything in its tenant.
    Full,
    /// Only receipts of its own writes (see [`RECEIPTS`]); `role` names the caller's role in
    /// the refusal.
    ReceiptsOnly { role: &'static str },
}

/// The fields a caller without read permission may select, per type. `*` admits every field of
/// the type. A type not listed admits nothing but `__typename`.
const RECEIPTS: &[(&str, &[&str])] = &[
    ("Viewer", &["*"]),
    (
        "Trace",
        &[
            "id",
            "traceId",
            "runId",
            "correlationId",
            "status",
            "schemaVersion",
            "planHash",
            "rootHash",
            "checksum",
            "startedAt",
            "completedAt",
            "createdAt",
            "isSynthetic",
            "syntheticScenarioId",
        ],
    ),
    (
        "RecordStepsResult",
        &[
            "trace",
            "insertedStepIndexes",
            "alreadyPresentStepIndexes",
            "insertedCount",
        ],
    ),
    // `recordLlmRun` writes a new record (a second one for the same run is refused), so its
    // columns echo the input; the run's relations are other stored objects.
    (
        "LlmRun",
        &[
            "id",
            "recordId",
            "runId",
            "traceId",
            "provider",
            "model",
            "promptHash",
            "responseHash",
            "inputTokens",
            "outputTokens",
            "costCents",
            "executionStatus",
            "startedAt",
            "completedAt",
            "source",
            "isSynthetic",
            "syntheticScenarioId",
            "createdAt",
        ],
    ),
    (
        "SystemRecord",
        &[
            "id",
            "recordId",
            "tenantId",
            "isSystemWide",
            "component",
            "eventType",
            "severity",
            "summary",
            "details",
            "causedBy",
            "correlationId",
            "createdAt",
        ],
    ),
    ("AuditEntry", &["*"]),
    (
        "TraceMismatch",
        &[
            "id",
            "mismatchId",
            "traceId",
            "stepIndex",
            "reason",
            "expectedHash",
            "actualHash",
            "details",
            "notificationSent",
            "issueUrl",
            "status",
            "resolvedAt",
            "resolvedBy",
            "resolutionNote",
            "reportedBy",
            "createdAt",
            "trace",
        ],
    ),
    // `recordPolicyActivation` writes the confidence and approval; the pattern, recovery and
    // loop trace a re-record keeps are the first writer's content.
    (
        "PolicyActivation",
        &[
            "id",
            "policyId",
            "confidenceAtActivation",
            "confidenceVersion",
            "approvalPath",
            "approvalKind",
            "approvedBy",
            "activatedAt",
            "createdAt",
            "confidenceBand",
            "confirmationLevel",
            "autoApplyAllowed",
        ],
    ),
    // Replay enforcement hands a replaying agent the output recorded for its step: that is
    // what the mutation is for.
    ("ReplayStepResult", &["*"]),
    ("TraceReplayResult", &["*"]),
    ("RecordCostPayload", &["*"]),
    ("RecordedCost", &["*"]),
    // The capture's resulting grade is what a writer sealing evidence asks for; the failures
    // other captures recorded are stored content.
    (
        "CaptureEvidencePayload",
        &["runId", "captured", "failures", "integrity"],
    ),
    (
        "IntegrityReport",
        &[
            "runId",
            "state",
            "grade",
            "legacyStatus",
            "score",
            "expectedArtifacts",
            "observedArtifacts",
            "missingArtifacts",
            "artifactCounts",
            "explanation",
        ],
    ),
    ("EvidenceArtifactCount", &["*"]),
    ("CapturedEvidence", &["*"]),
    ("RecordedCaptureFailure", &["*"]),
];

/// Output field types of the served schema, from its SDL: enough to follow a selection from
/// type to type.
pub struct SchemaIndex {
    /// (type, field) → the field's named type (lists and non-null unwrapped).
    fields: HashMap<(String, String), String>,
    /// What pricing a document needs (see [`cost`]).
    cost: cost::CostIndex,
}

impl SchemaIndex {
    pub fn from_sdl(sdl: &str) -> AppResult<Self> {
        let document = async_graphql::parser::parse_schema(sdl)
            .map_err(|e| AppError::internal(format!("the served SDL does not parse: {e}")))?;
        let mut fields = HashMap::new();
        let mut lists = HashSet::new();
        let mut roots = ["Query", "Mutation", "Subscription"].map(String::from);
        for definition in document.definitions {
            let ty = match definition {
                TypeSystemDefinition::Type(ty) => ty.node,
                TypeSystemDefinition::Schema(schema) => {
                    let schema = schema.node;
                    let names = [schema.query, schema.mutation, schema.subscription];
                    for (root, name) in roots.iter_mut().zip(names) {
                        if let Some(name) = name {
                            *root = name.node.to_string();
                        }
                    }
                    continue;
                }
                TypeSystemDefinition::Directive(_) => continue,
            };
            let (defs, object) = match ty.kind {
                TypeKind::Object(object) => (object.fields, true),
                TypeKind::Interface(interface) => (interface.fields, false),
                _ => continue,
            };
            for field in defs {
                let takes_first = field
                    .node
                    .arguments
                    .iter()
                    .any(|a| a.node.name.node == "first");
                if object && takes_first {
                    lists.insert((ty.name.node.to_string(), field.node.name.node.to_string()));
                }
                let mut base = &field.node.ty.node.base;
                while let BaseType::List(inner) = base {
                    base = &inner.base;
                }
                if let BaseType::Named(name) = base {
                    fields.insert(
                        (ty.name.node.to_string(), field.node.name.node.to_string()),
                        name.to_string(),
                    );
                }
            }
        }
        Ok(SchemaIndex {
            fields,
            cost: cost::CostIndex { lists, roots },
        })
    }

    fn field_type(&self, ty: &str, field: &str) -> Option<&str> {
        self.fields
            .get(&(ty.to_owned(), field.to_owned()))
            .map(String::as_str)
    }
}

/// The limits admission enforces (from [`Limits`]).
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Brackets (`{ [ (`) open at once anywhere in the text.
    pub max_nesting: usize,
    /// Field depth with fragments expanded (async-graphql's depth limit counts the same way).
    pub max_depth: usize,
    /// Fields the operations select once every fragment is expanded.
    pub max_fields: u64,
    /// Fragments spread inside fragments.
    pub max_fragment_nesting: usize,
    pub max_fan_out: usize,
    /// Bytes of document text.
    pub max_query_bytes: usize,
    /// Complexity points one operation may cost ([`cost`]).
    pub max_complexity: usize,
    /// What a list asked for without `first` or `last` is priced at.
    pub default_page_size: u64,
}

impl AdmissionLimits {
    pub fn from_limits(limits: &Limits) -> Self {
        AdmissionLimits {
            max_nesting: limits.max_nesting,
            max_depth: limits.max_depth,
            max_fields: limits.max_fields,
            max_fragment_nesting: limits.max_fragment_nesting,
            max_fan_out: limits.max_fan_out,
            max_query_bytes: limits.max_query_bytes,
            max_complexity: limits.max_complexity,
            default_page_size: limits.page_sizes.default,
        }
    }
}

/// The admission checks of one server, with the schema they follow.
pub struct Admission {
    limits: AdmissionLimits,
    index: SchemaIndex,
}

impl Admission {
    pub fn new(limits: AdmissionLimits, index: SchemaIndex) -> Self {
        Admission { limits, index }
    }

    /// Runs every check on `text` and returns the parsed document.
    pub fn admit(
        &self,
        text: &str,
        operation_name: Option<&str>,
        variables: &Variables,
        grant: ReadGrant,
    ) -> AppResult<Admitted> {
        let document = self.parse(text)?;
        self.admit_parsed(document, operation_name, variables, grant)
    }

    /// The checks on the text and the parsed document (steps 1 to 3 of the module doc), which
    /// do not depend on the request: trusted documents pass them once, at startup.
    pub fn parse(&self, text: &str) -> AppResult<ExecutableDocument> {
        let limits = &self.limits;
        if text.trim().is_empty() {
            return Err(AppError::bad_input(
                "query",
                "the request has no GraphQL document",
            ));
        }
        if text.len() > limits.max_query_bytes {
            return Err(AppError::PayloadTooLarge(format!(
                "the GraphQL document is {} bytes; the limit is {}",
                text.len(),
                limits.max_query_bytes
            )));
        }
        check_document_text(text, limits.max_nesting)?;
        let document = async_graphql::parser::parse_query(text)
            .map_err(|e| AppError::bad_input("query", e.to_string()))?;
        let facts = DocumentFacts::of(&document)?;
        for (_, operation) in document.operations.iter() {
            let shape = facts.selection(&operation.node.selection_set.node);
            if shape.depth > limits.max_depth {
                return Err(too_deep(format!(
                    "the operation nests fields {} deep; the limit is {}",
                    shape.depth, limits.max_depth
                )));
            }
            if shape.introspection_depth > INTROSPECTION_MAX_DEPTH {
                return Err(too_deep(format!(
                    "the operation nests introspection fields {} deep; the limit is \
                     {INTROSPECTION_MAX_DEPTH}",
                    shape.introspection_depth
                )));
            }
            if shape.introspection_lists > INTROSPECTION_MAX_LISTS {
                return Err(too_deep(format!(
                    "the operation nests {} introspection lists; the limit is \
                     {INTROSPECTION_MAX_LISTS}",
                    shape.introspection_lists
                )));
            }
            if shape.nesting > limits.max_fragment_nesting {
                return Err(too_deep(format!(
                    "fragments are spread {} deep; the limit is {}",
                    shape.nesting, limits.max_fragment_nesting
                )));
            }
        }
        let total = document.operations.iter().fold(0u64, |sum, (_, op)| {
            sum.saturating_add(facts.selection(&op.node.selection_set.node).fields)
        });
        if total > limits.max_fields {
            return Err(too_complex(format!(
                "the document selects {total} fields once its fragments are expanded; the \
                 limit is {}",
                limits.max_fields
            )));
        }
        Ok(document)
    }

    /// The request's checks on a document [`Admission::parse`] returned: the operation, fan-out,
    /// variables, NUL characters and the read grant; then its cost.
    pub fn admit_parsed(
        &self,
        document: ExecutableDocument,
        operation_name: Option<&str>,
        variables: &Variables,
        grant: ReadGrant,
    ) -> AppResult<Admitted> {
        let limits = &self.limits;
        let (chosen_name, operation) = chosen_operation(&document, operation_name)?;
        let operation_name = chosen_name.map(str::to_owned);
        let walk = Walk {
            document: &document,
            index: &self.index,
            max_fan_out: limits.max_fan_out,
            role: "",
        };
        let root = &operation.selection_set.node;
        walk.fan_out(root, true)?;
        walk.entity_representations(root, variables)?;
        check_required_variables(operation, variables)?;
        check_no_nul(&document, variables)?;
        if let ReadGrant::ReceiptsOnly { role } = grant {
            let walk = Walk { role, ..walk };
            walk.receipts_only(root, root_type(operation.ty), true)?;
        }
        let mut root_keys = Vec::new();
        walk.fields_at_level(root, &mut |field| {
            root_keys.push(field.node.response_key().node.to_string())
        });
        let operation_type = operation.ty;
        let cost = cost::document_cost(
            &document,
            variables,
            &self.index,
            self.limits.default_page_size,
        );
        if cost > limits.max_complexity as u64 {
            return Err(too_complex(format!(
                "the operation costs {cost} complexity points; the limit is {}",
                limits.max_complexity
            )));
        }
        Ok(Admitted {
            document,
            operation_name,
            operation_type,
            root_keys,
            cost,
        })
    }
}

fn too_deep(message: String) -> AppError {
    AppError::QueryTooDeep(message)
}

fn too_complex(message: String) -> AppError {
    AppError::QueryTooComplex(message)
}

fn root_type(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "Query",
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => "Subscription",
    }
}

/// The operation a request runs: the named one, or the only one.
/// The operation to run, with its name.
fn chosen_operation<'d>(
    document: &'d ExecutableDocument,
    name: Option<&str>,
) -> AppResult<(Option<&'d str>, &'d OperationDefinition)> {
    let mut operations = document.operations.iter();
    match name {
        Some(name) => document
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name))
            .map(|(n, op)| (n.map(|n| n.as_str()), &op.node))
            .ok_or_else(|| {
                AppError::bad_input(
                    "operationName",
                    format!("the document has no operation named {name:?}"),
                )
            }),
        None => match (operations.next(), operations.next()) {
            (Some((n, op)), None) => Ok((n.map(|n| n.as_str()), &op.node)),
            (None, _) => Err(AppError::bad_input(
                "query",
                "the document has no operation",
            )),
            (Some(_), Some(_)) => Err(AppError::bad_input(
                "operationName",
                "the document has several operations: name the one to run in operationName",
            )),
        },
    }
}

/// Refuses text whose brackets nest deeper than `max`, counting outside strings, block strings
/// and comments. Linear in the text and without recursion, so it runs before the parser.
pub fn check_document_text(text: &str, max: usize) -> AppResult<()> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                loop {
                    if i >= bytes.len() {
                        break;
                    }
                    if bytes[i..].starts_with(b"\\\"\"\"") {
                        i += 4;
                    } else if bytes[i..].starts_with(b"\"\"\"") {
                        i += 2;
                        break;
                    } else {
                        i += 1;
                    }
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max {
                    return Err(too_deep(format!(
                        "the document nests brackets more than {max} deep"
                    )));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// What a selection set expands to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Shape {
    /// Fields, every fragment expanded (saturating).
    fields: u64,
    /// Deepest level of a data field (root fields are level 1); introspection is measured apart.
    depth: usize,
    /// Deepest level of a field under `__schema` or `__type`.
    introspection_depth: usize,
    /// Most introspection list fields ([`INTROSPECTION_LISTS`]) on one path.
    introspection_lists: usize,
    /// Deepest chain of fragment spreads.
    nesting: usize,
}

pub use crate::limits::INTROSPECTION_MAX_DEPTH;

/// Introspection fields that return a list of the schema's types or their members. Nested, they
/// multiply (`types { fields { type { fields { type { fields … ` is a response bomb), so one
/// path may cross at most [`INTROSPECTION_MAX_LISTS`] of them; the standard query's deepest is
/// `types → fields → args`.
const INTROSPECTION_LISTS: &[&str] = &[
    "types",
    "fields",
    "args",
    "inputFields",
    "interfaces",
    "possibleTypes",
    "enumValues",
    "directives",
];
const INTROSPECTION_MAX_LISTS: usize = 3;

/// The expanded shape of every fragment of a document, computed once per fragment.
struct DocumentFacts<'d> {
    fragments: HashMap<&'d str, Shape>,
}

/// Where a selection set sits: its field level, whether it is inside introspection and how many
/// introspection lists the path to it crossed.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    level: usize,
    introspection: bool,
    lists: usize,
}

/// A selection set's own fields and the fragments it spreads, from where.
struct Local<'d> {
    fields: u64,
    depth: usize,
    introspection_depth: usize,
    introspection_lists: usize,
    spreads: Vec<(&'d str, Position)>,
}

/// Collects a selection set's own facts. Recursion here follows brackets in the text, which
/// [`check_document_text`] bounded.
fn local<'d>(set: &'d SelectionSet, at: Position, out: &mut Local<'d>) {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                out.fields = out.fields.saturating_add(1);
                let name = field.node.name.node.as_str();
                let mut below = Position {
                    level: at.level + 1,
                    introspection: at.introspection || matches!(name, "__schema" | "__type"),
                    lists: at.lists,
                };
                if below.introspection {
                    if INTROSPECTION_LISTS.contains(&name) {
                        below.lists += 1;
                    }
                    out.introspection_depth = out.introspection_depth.max(below.level);
                    out.introspection_lists = out.introspection_lists.max(below.lists);
                } else {
                    out.depth = out.depth.max(below.level);
                }
                local(&field.node.selection_set.node, below, out);
            }
            Selection::InlineFragment(inline) => local(&inline.node.selection_set.node, at, out),
            Selection::FragmentSpread(spread) => out
                .spreads
                .push((spread.node.fragment_name.node.as_str(), at)),
        }
    }
}

/// `introspection`: the selection set belongs to an introspection type (`on __Type`, …).
fn locals(set: &SelectionSet, introspection: bool) -> Local<'_> {
    let mut out = Local {
        fields: 0,
        depth: 0,
        introspection_depth: 0,
        introspection_lists: 0,
        spreads: Vec::new(),
    };
    let at = Position {
        introspection,
        ..Position::default()
    };
    local(set, at, &mut out);
    out
}

impl<'d> DocumentFacts<'d> {
    /// Shapes of all fragments in dependency order (an explicit stack, no recursion over the
    /// fragment graph); a cycle is `BAD_USER_INPUT`.
    fn of(document: &'d ExecutableDocument) -> AppResult<Self> {
        let own: HashMap<&str, Local<'_>> = document
            .fragments
            .iter()
            .map(|(name, fragment)| {
                let on = fragment.node.type_condition.node.on.node.as_str();
                let own = locals(&fragment.node.selection_set.node, on.starts_with("__"));
                (name.as_str(), own)
            })
            .collect();
        let mut facts = DocumentFacts {
            fragments: HashMap::with_capacity(own.len()),
        };
        let mut in_progress: std::collections::HashSet<&str> = Default::default();
        for start in own.keys() {
            if facts.fragments.contains_key(start) {
                continue;
            }
            // (fragment, index of the next spread to look at)
            let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
            in_progress.insert(start);
            while let Some((name, next)) = stack.pop() {
                let Some(this) = own.get(name) else {
                    in_progress.remove(name);
                    continue;
                };
                if let Some((child, _)) = this.spreads.get(next) {
                    stack.push((name, next + 1));
                    if facts.fragments.contains_key(child) || !own.contains_key(child) {
                        continue;
                    }
                    if !in_progress.insert(child) {
                        return Err(AppError::bad_input(
                            "query",
                            format!("fragment {child:?} spreads itself (a fragment cycle)"),
                        ));
                    }
                    stack.push((child, 0));
                    continue;
                }
                let shape = facts.combine(this);
                facts.fragments.insert(name, shape);
                in_progress.remove(name);
            }
        }
        Ok(facts)
    }

    /// A selection's shape from its own facts and its spreads' (already known) shapes.
    fn combine(&self, own: &Local<'_>) -> Shape {
        let mut shape = Shape {
            fields: own.fields,
            depth: own.depth,
            introspection_depth: own.introspection_depth,
            introspection_lists: own.introspection_lists,
            nesting: 0,
        };
        for (name, at) in &own.spreads {
            let child = self.fragments.get(name).copied().unwrap_or_default();
            shape.fields = shape.fields.saturating_add(child.fields);
            // A data fragment spread inside introspection does not validate; measured as
            // introspection, it is still bounded.
            let (depth, introspection_depth) = if at.introspection {
                (0, child.depth.max(child.introspection_depth))
            } else {
                (child.depth, child.introspection_depth)
            };
            if depth > 0 {
                shape.depth = shape.depth.max(at.level + depth);
            }
            if introspection_depth > 0 {
                shape.introspection_depth = shape
                    .introspection_depth
                    .max(at.level + introspection_depth);
            }
            shape.introspection_lists = shape
                .introspection_lists
                .max(at.lists + child.introspection_lists);
            shape.nesting = shape.nesting.max(child.nesting + 1);
        }
        shape
    }

    fn selection(&self, set: &SelectionSet) -> Shape {
        self.combine(&locals(set, false))
    }
}

/// Walks over an admitted document's selections with fragments expanded. Only used once
/// [`DocumentFacts`] has bounded what expansion costs.
struct Walk<'d> {
    document: &'d ExecutableDocument,
    index: &'d SchemaIndex,
    max_fan_out: usize,
    /// The caller's role, named when a field is refused.
    role: &'static str,
}

type Field = Positioned<async_graphql::parser::types::Field>;

impl<'d> Walk<'d> {
    /// Calls `visit` for each field selected at this level, through fragments.
    fn fields_at_level(&self, set: &'d SelectionSet, visit: &mut impl FnMut(&'d Field)) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => visit(field),
                Selection::InlineFragment(inline) => {
                    self.fields_at_level(&inline.node.selection_set.node, visit)
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) =
                        self.document.fragments.get(&spread.node.fragment_name.node)
                    {
                        self.fields_at_level(&fragment.node.selection_set.node, visit)
                    }
                }
            }
        }
    }

    /// A federated server's `_entities` root fields fetch at most
    /// [`MAX_IDS_PER_REQUEST`](crate::limits::MAX_IDS_PER_REQUEST) representations between them
    /// (the field's complexity does not grow with the list it is given).
    fn entity_representations(
        &self,
        root: &'d SelectionSet,
        variables: &Variables,
    ) -> AppResult<()> {
        let mut total = 0usize;
        self.fields_at_level(root, &mut |field| {
            if field.node.name.node != "_entities" {
                return;
            }
            total += match field.node.get_argument("representations").map(|v| &v.node) {
                Some(Value::List(items)) => items.len(),
                Some(Value::Variable(name)) => match variables.get(name) {
                    Some(ConstValue::List(items)) => items.len(),
                    _ => 1,
                },
                _ => 1,
            };
        });
        let max = crate::limits::MAX_IDS_PER_REQUEST;
        if total > max {
            return Err(AppError::bad_input(
                "representations",
                format!("{total} entity representations; at most {max} per request"),
            ));
        }
        Ok(())
    }

    /// At most `max_fan_out` root fields, and at most `max_fan_out` selections of one field
    /// (under aliases) in any selection set: batching that depth and complexity price too low.
    fn fan_out(&self, set: &'d SelectionSet, root: bool) -> AppResult<()> {
        let mut fields = Vec::new();
        self.fields_at_level(set, &mut |field| fields.push(field));
        let max = self.max_fan_out;
        if root && fields.len() > max {
            return Err(too_complex(format!(
                "an operation may select at most {max} root fields (this one selects {})",
                fields.len()
            )));
        }
        let mut per_name: HashMap<&str, usize> = HashMap::new();
        for field in &fields {
            let count = per_name.entry(field.node.name.node.as_str()).or_default();
            *count += 1;
            if *count > max {
                return Err(too_complex(format!(
                    "field `{}` is selected more than {max} times (aliases) in one selection set",
                    field.node.name.node
                )));
            }
        }
        for field in fields {
            self.fan_out(&field.node.selection_set.node, false)?;
        }
        Ok(())
    }

    /// Refuses any field a caller without read permission may not select (see [`RECEIPTS`]).
    fn receipts_only(&self, set: &'d SelectionSet, ty: &str, root: bool) -> AppResult<()> {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if name == "__typename" {
                        continue;
                    }
                    let allowed = match (root, ty) {
                        // Every mutation checks its own role; its result is checked below.
                        (true, "Mutation") => true,
                        // The schema itself is public (`/schema.graphql`).
                        (true, "Query") => matches!(name, "viewer" | "__schema" | "__type"),
                        _ => receipt_field(ty, name),
                    };
                    if !allowed {
                        return Err(AppError::ForbiddenField {
                            role: self.role,
                            field: format!("{ty}.{name}"),
                        });
                    }
                    if name.starts_with("__") || receipt_field(ty, "*") {
                        continue;
                    }
                    if let Some(child) = self.index.field_type(ty, name) {
                        self.receipts_only(&field.node.selection_set.node, child, false)?;
                    }
                }
                Selection::InlineFragment(inline) => {
                    let ty = inline
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(ty, |c| c.node.on.node.as_str());
                    self.receipts_only(&inline.node.selection_set.node, ty, root)?;
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) =
                        self.document.fragments.get(&spread.node.fragment_name.node)
                    {
                        let on = fragment.node.type_condition.node.on.node.as_str();
                        self.receipts_only(&fragment.node.selection_set.node, on, root)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn receipt_field(ty: &str, field: &str) -> bool {
    RECEIPTS
        .iter()
        .find(|(name, _)| *name == ty)
        .is_some_and(|(_, fields)| fields.iter().any(|f| *f == field || *f == "*"))
}

/// A variable declared non-null without a default must be given a value: its absence is a
/// request error (GraphQL's variable coercion), caught here rather than by the resolver that
/// would read it.
fn check_required_variables(
    operation: &OperationDefinition,
    variables: &Variables,
) -> AppResult<()> {
    for definition in &operation.variable_definitions {
        let definition = &definition.node;
        if definition.var_type.node.nullable || definition.default_value.is_some() {
            continue;
        }
        let name = &definition.name.node;
        let given = variables
            .get(name)
            .is_some_and(|value| !matches!(value, ConstValue::Null));
        if !given {
            return Err(AppError::bad_input(
                format!("variables.{name}"),
                format!(
                    "variable ${name} of type {} needs a value",
                    definition.var_type.node
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses NUL in any string or object key of the document's arguments, its variables'
/// defaults and the request's variables.
fn check_no_nul(document: &ExecutableDocument, variables: &Variables) -> AppResult<()> {
    fn in_value(value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::List(items) => items.iter().any(in_value),
            Value::Object(fields) => fields
                .iter()
                .any(|(k, v)| k.as_str().contains('\0') || in_value(v)),
            _ => false,
        }
    }
    fn in_const(value: &ConstValue) -> bool {
        match value {
            ConstValue::String(s) => s.contains('\0'),
            ConstValue::List(items) => items.iter().any(in_const),
            ConstValue::Object(fields) => fields
                .iter()
                .any(|(k, v)| k.as_str().contains('\0') || in_const(v)),
            _ => false,
        }
    }
    fn in_set(set: &SelectionSet) -> Option<String> {
        for item in &set.items {
            let (directives, nested) = match &item.node {
                Selection::Field(field) => {
                    for (name, value) in &field.node.arguments {
                        if in_value(&value.node) {
                            return Some(name.node.to_string());
                        }
                    }
                    (&field.node.directives, Some(&field.node.selection_set.node))
                }
                Selection::InlineFragment(inline) => (
                    &inline.node.directives,
                    Some(&inline.node.selection_set.node),
                ),
                Selection::FragmentSpread(spread) => (&spread.node.directives, None),
            };
            for directive in directives {
                for (name, value) in &directive.node.arguments {
                    if in_value(&value.node) {
                        return Some(name.node.to_string());
                    }
                }
            }
            if let Some(found) = nested.and_then(in_set) {
                return Some(found);
            }
        }
        None
    }
    let refuse = |field: String| {
        Err(AppError::bad_input(
            field.clone(),
            format!("{field} contains a NUL character, which no text field may hold"),
        ))
    };
    for (name, value) in variables.iter() {
        if in_const(value) {
            return refuse(format!("variables.{name}"));
        }
    }
    for (_, operation) in document.operations.iter() {
        for definition in &operation.node.variable_definitions {
            if definition
                .node
                .default_value
                .as_ref()
                .is_some_and(|v| in_const(&v.node))
            {
                return refuse(format!("variables.{}", definition.node.name.node));
            }
        }
        if let Some(field) = in_set(&operation.node.selection_set.node) {
            return refuse(field);
        }
    }
    for fragment in document.fragments.values() {
        if let Some(field) = in_set(&fragment.node.selection_set.node) {
            return refuse(field);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission() -> Admission {
        let limits = Limits::default();
        Admission::new(
            AdmissionLimits::from_limits(&limits),
            SchemaIndex::from_sdl(&crate::graphql::sdl()).unwrap(),
        )
    }

    fn admit(text: &str) -> AppResult<Admitted> {
        admission().admit(text, None, &Variables::default(), ReadGrant::Full)
    }

    /// graphql-js's `getIntrospectionQuery()`, what GraphiQL and client generators send.
    const STANDARD_INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name }
        mutationType { name } subscriptionType { name } types { ...FullType }
        directives { name description locations args { ...InputValue } } } }
      fragment FullType on __Type { kind name description
        fields(includeDeprecated: true) { name description args { ...InputValue }
          type { ...TypeRef } isDeprecated deprecationReason }
        inputFields { ...InputValue } interfaces { ...TypeRef }
        enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
        possibleTypes { ...TypeRef } }
      fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
      fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType {
        kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
        ofType { kind name ofType { kind name } } } } } } } } } }";

    #[test]
    fn introspection_has_its_own_bounds() {
        // 15 deep, past the data depth limit (12): admitted.
        assert!(Limits::default().max_depth < 15);
        admit(STANDARD_INTROSPECTION).expect("the standard introspection query");
        // Type members nested in type members multiply: refused, however shallow.
        let bomb =
            "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
        let refused = admit(bomb).expect_err("an introspection bomb");
        assert_eq!(refused.code(), "QUERY_TOO_DEEP");
        // The same through fragments on introspection types.
        let bomb = "{ __type(name: \"Query\") { ...T } }
            fragment T on __Type { fields { type { ...U } } }
            fragment U on __Type { fields { type { fields { type { fields { name } } } } } }";
        assert_eq!(
            admit(bomb).expect_err("a fragment bomb").code(),
            "QUERY_TOO_DEEP"
        );
        // `ofType` chains past the introspection depth.
        let chain = format!(
            "{{ __type(name: \"Query\") {{ {} name {} }} }}",
            "ofType { ".repeat(INTROSPECTION_MAX_DEPTH),
            "} ".repeat(INTROSPECTION_MAX_DEPTH)
        );
        assert_eq!(
            admit(&chain).expect_err("too deep").code(),
            "QUERY_TOO_DEEP"
        );
        // Data under a fragment that also introspects is still held to the data depth limit.
        let data = format!(
            "{{ ...F }} fragment F on Query {{ __typename __type(name: \"Query\") {{ name }} \
             viewer {} role {} }}",
            "{ viewer ".repeat(12),
            "} ".repeat(12)
        );
        assert_eq!(admit(&data).expect_err("too deep").code(), "QUERY_TOO_DEEP");
    }

    #[test]
    fn deep_literals_are_refused_before_parsing() {
        let deep = format!(
            "{{ llmRuns(first: {}1{}) {{ totalCount }} }}",
            "[".repeat(20_000),
            "]".repeat(20_000)
        );
        assert_eq!(admit(&deep).unwrap_err().code(), "QUERY_TOO_DEEP");
        // Brackets inside strings, block strings and comments do not count.
        let quoted = format!(
            "# {}\n{{ llmRun(runId: \"{}\") {{ id }} __typename }}",
            "[".repeat(500),
            "{".repeat(500)
        );
        assert!(admit(&quoted).is_ok());
        let block = format!(
            "{{ llmRun(runId: \"\"\"{} \\\"\"\" {}\"\"\") {{ id }} }}",
            "(".repeat(500),
            "[".repeat(500)
        );
        assert!(admit(&block).is_ok());
    }

    #[test]
    fn fragment_bombs_cost_linear_time() {
        let mut text = String::from("query { ...F0 }\n");
        for i in 0..60 {
            text.push_str(&format!(
                "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        text.push_str("fragment F60 on Query { viewer { role } }\n");
        // 2^60 fields if expanded: an expanding check would never return. The bound is loose on
        // purpose (this is not a benchmark): it only turns such a regression into a failure
        // instead of a hung run on a loaded machine.
        let started = std::time::Instant::now();
        let err = admit(&text).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        assert_eq!(err.code(), "QUERY_TOO_DEEP", "{err:?}");

        // Wide rather than deep: 2^11 × 2 fields at one level.
        let mut wide = String::from("query { ...W0 }\n");
        for i in 0..11 {
            wide.push_str(&format!(
                "fragment W{i} on Query {{ ...W{} ...W{} }}\n",
                i + 1,
                i + 1
            ));
        }
        wide.push_str("fragment W11 on Query { __typename viewer { role } }\n");
        assert_eq!(admit(&wide).unwrap_err().code(), "QUERY_TOO_COMPLEX");
    }

    #[test]
    fn long_fragment_chains_and_cycles_are_refused_without_recursion() {
        let mut text = String::from("query { ...F0 }\n");
        for i in 0..20_000 {
            text.push_str(&format!("fragment F{i} on Query {{ ...F{} }}\n", i + 1));
        }
        text.push_str("fragment F20000 on Query { __typename }\n");
        let limits = AdmissionLimits {
            max_query_bytes: usize::MAX,
            ..AdmissionLimits::from_limits(&Limits::default())
        };
        let admission = Admission::new(
            limits,
            SchemaIndex::from_sdl(&crate::graphql::sdl()).unwrap(),
        );
        let err = admission
            .admit(&text, None, &Variables::default(), ReadGrant::Full)
            .unwrap_err();
        assert_eq!(err.code(), "QUERY_TOO_DEEP");
        let cycle = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        assert_eq!(admit(cycle).unwrap_err().code(), "BAD_USER_INPUT");
    }

    #[test]
    fn field_budget_counts_expanded_fields() {
        let many: String = (0..19)
            .map(|i| format!("a{i}: viewer {{ role tenantId tenantName tier }} "))
            .collect();
        let mut text = "query { ...F0 } fragment F0 on Query { ...F1 ...F1 }".to_string();
        for i in 1..6 {
            text.push_str(&format!(
                " fragment F{i} on Query {{ ...F{} ...F{} }}",
                i + 1,
                i + 1
            ));
        }
        text.push_str(&format!(" fragment F6 on Query {{ {many} }}"));
        // 2^6 × 19 × 5 = 6 080 fields > 2 000.
        assert_eq!(admit(&text).unwrap_err().code(), "QUERY_TOO_COMPLEX");
    }

    #[test]
    fn fan_out_and_root_order() {
        let aliases: String = (0..21)
            .map(|i| format!("v{i}: viewer {{ role }} "))
            .collect();
        assert_eq!(
            admit(&format!("{{ {aliases} }}")).unwrap_err().code(),
            "QUERY_TOO_COMPLEX"
        );
        let admitted =
            admit("query { b: viewer { role } ...F __typename } fragment F on Query { a: viewer { role } }")
                .unwrap();
        assert_eq!(admitted.root_keys, ["b", "a", "__typename"]);
    }

    #[test]
    fn nul_is_refused_in_arguments_and_variables() {
        let err = admit("{ llmRun(runId: \"a\\u0000b\") { id } }").unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        let variables = Variables::from_json(serde_json::json!({"f": {"model": ["x\u{0}"]}}));
        let err = admission()
            .admit(
                "query($f: LlmRunFilter) { llmRuns(filter: $f) { totalCount } }",
                None,
                &variables,
                ReadGrant::Full,
            )
            .unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
    }

    #[test]
    fn required_variables_need_values() {
        let query = "query($id: String!, $n: Int, $d: Int! = 3) { llmRun(runId: $id) { id } }";
        let err = admission()
            .admit(query, None, &Variables::default(), ReadGrant::Full)
            .unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        let null = Variables::from_json(serde_json::json!({"id": null}));
        assert!(admission()
            .admit(query, None, &null, ReadGrant::Full)
            .is_err());
        let given = Variables::from_json(serde_json::json!({"id": "r"}));
        assert!(admission()
            .admit(query, None, &given, ReadGrant::Full)
            .is_ok());
    }

    #[test]
    fn writers_get_receipts_only() {
        let receipts = |text: &str| {
            admission().admit(
                text,
                None,
                &Variables::default(),
                ReadGrant::ReceiptsOnly { role: "INGEST" },
            )
        };
        assert!(receipts(
            "mutation { startTrace(input: {traceId: \"t\"}) { id traceId status rootHash } }"
        )
        .is_ok());
        for leak in [
            "mutation { startTrace(input: {traceId: \"t\"}) { plan } }",
            "mutation { startTrace(input: {traceId: \"t\"}) { steps { nodes { params } } } }",
            "mutation { m: reportMismatch(input: {traceId: \"t\", reason: \"r\"}) { trace { metadata } } }",
            "mutation { startTrace(input: {}) { ...F } } fragment F on Trace { plan }",
            "mutation { startTrace(input: {}) { ... on Trace { metadata } } }",
            "mutation { recordLlmRun(input: {}) { trace { traceId } } }",
            "{ llmRuns { totalCount } }",
            "subscription { llmRunAdded { cursor } }",
        ] {
            assert_eq!(receipts(leak).unwrap_err().code(), "FORBIDDEN", "{leak}");
        }
        assert!(receipts("{ viewer { role } __schema { queryType { name } } }").is_ok());
    }
}
