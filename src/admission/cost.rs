//! The cost of a document in complexity points, computed at admission as async-graphql's
//! validation computes its complexity figure: a field costs 1 plus what it selects; a list field
//! (one taking `first`/`last`) costs its page size times what one item selects, plus 1
//! ([`priced_list`], with the server's configured default page size where async-graphql has
//! the built-in one); a field listed in [`FIXED_COSTS`] costs its fixed figure; `__typename` is
//! free. Fragments count where they are spread, and every operation of the document counts.
//!
//! Admission refuses a document over `max_complexity` with this figure (async-graphql's own
//! complexity limit is not set: it could not know the configured page size), and the rate
//! limit charges it before execution. Computing it here rather than reading
//! it from a schema extension keeps the schema free of extensions: async-graphql wraps every
//! field resolution in the extension chain as soon as one extension exists, which cost a page
//! of 50 runs a quarter of its CPU (BENCHMARKS.md). The test `cost_matches_async_graphql`
//! compares both figures on generated documents.
//!
//! Admission has already bounded the document (depth, fragment nesting, expanded fields)
//! before this walk expands fragments, so the walk is linear in the admitted field count.

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{
    ExecutableDocument, Field, OperationType, Selection, SelectionSet, VariableDefinition,
};
use async_graphql::{Positioned, Variables};
use async_graphql_value::Value;

use crate::limits::{priced_list, FIXED_COSTS};

/// What the walk needs of the schema: object types, their list fields and output types.
pub(super) struct CostIndex {
    /// Object types' fields taking `first` (async-graphql applies a field's own complexity only
    /// when the field is selected on an object type, never through an interface).
    pub(super) lists: HashSet<(String, String)>,
    pub(super) roots: [String; 3],
}

/// The document's cost: every operation's, summed.
pub(super) fn document_cost(
    document: &ExecutableDocument,
    variables: &Variables,
    index: &super::SchemaIndex,
    default_page_size: u64,
) -> u64 {
    let fixed: HashMap<(&str, &str), usize> = FIXED_COSTS
        .iter()
        .map(|&(ty, field, cost)| ((ty, field), cost))
        .collect();
    let mut total = 0usize;
    for (_, operation) in document.operations.iter() {
        let walk = CostWalk {
            document,
            variables,
            definitions: &operation.node.variable_definitions,
            index,
            fixed: &fixed,
            default_page_size,
        };
        let root = match operation.node.ty {
            OperationType::Query => &index.cost.roots[0],
            OperationType::Mutation => &index.cost.roots[1],
            OperationType::Subscription => &index.cost.roots[2],
        };
        total =
            total.saturating_add(walk.selection(&operation.node.selection_set.node, Some(root)));
    }
    total as u64
}

struct CostWalk<'d> {
    document: &'d ExecutableDocument,
    variables: &'d Variables,
    definitions: &'d [Positioned<VariableDefinition>],
    index: &'d super::SchemaIndex,
    fixed: &'d HashMap<(&'static str, &'static str), usize>,
    default_page_size: u64,
}

impl CostWalk<'_> {
    /// What `set` costs, selected on `ty` (`None`: a type the schema does not name, where no
    /// field has a cost of its own).
    fn selection(&self, set: &SelectionSet, ty: Option<&str>) -> usize {
        let mut cost = 0usize;
        for selection in &set.items {
            let part = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    if name == "__typename" {
                        continue;
                    }
                    let child_type = ty.and_then(|t| self.index.field_type(t, name));
                    let children = self.selection(&field.selection_set.node, child_type);
                    match ty {
                        Some(t)
                            if self
                                .index
                                .cost
                                .lists
                                .contains(&(t.to_owned(), name.to_owned())) =>
                        {
                            priced_list(
                                self.default_page_size,
                                self.int(field, "first"),
                                self.int(field, "last"),
                                children,
                            )
                        }
                        Some(t) => match self.fixed.get(&(t, name)) {
                            Some(&fixed) => fixed,
                            None => children.saturating_add(1),
                        },
                        None => children.saturating_add(1),
                    }
                }
                // A spread's fields count on the type it is spread into.
                Selection::FragmentSpread(spread) => self
                    .document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |fragment| {
                        self.selection(&fragment.node.selection_set.node, ty)
                    }),
                Selection::InlineFragment(inline) => {
                    let on = inline
                        .node
                        .type_condition
                        .as_ref()
                        .map(|c| c.node.on.node.as_str());
                    self.selection(&inline.node.selection_set.node, on.or(ty))
                }
            };
            cost = cost.saturating_add(part);
        }
        cost
    }

    /// An `Int` argument, literal or from a variable (its value, else its default).
    fn int(&self, field: &Field, name: &str) -> Option<i32> {
        let value = &field.get_argument(name)?.node;
        let constant = match value {
            Value::Variable(variable) => {
                let definition = self
                    .definitions
                    .iter()
                    .find(|d| d.node.name.node == *variable)?;
                self.variables
                    .get(variable)
                    .or_else(|| definition.node.default_value())?
                    .clone()
            }
            other => other.clone().into_const()?,
        };
        match constant {
            async_graphql::Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
            _ => None,
        }
    }
}
