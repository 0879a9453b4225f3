//! The GraphQL document parser as the server runs it: `admission::check_document_text` (bracket
//! nesting of the raw text, before any recursion) and then `async_graphql::parser::parse_query`.
//! No document panics, hangs or overflows the stack, and whatever the text check lets through
//! parses to a document nested no deeper than the limit: the check and the parser agree on what
//! is a bracket (strings, block strings and comments included).

#![no_main]

use async_graphql::parser::types::{Directive, ExecutableDocument, Selection, SelectionSet};
use async_graphql::Positioned;
use async_graphql_value::{ConstValue, Value};
use libfuzzer_sys::fuzz_target;
use logbook::admission::check_document_text;
use logbook::config::Limits;

fn value_depth(value: &Value) -> usize {
    match value {
        Value::List(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn const_depth(value: &ConstValue) -> usize {
    match value {
        ConstValue::List(items) => 1 + items.iter().map(const_depth).max().unwrap_or(0),
        ConstValue::Object(fields) => 1 + fields.values().map(const_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// `( … )` around arguments, plus the deepest value inside.
fn arguments_depth<'a>(values: impl Iterator<Item = &'a Positioned<Value>>) -> usize {
    values.map(|v| 1 + value_depth(&v.node)).max().unwrap_or(0)
}

fn directives_depth(directives: &[Positioned<Directive>]) -> usize {
    directives
        .iter()
        .map(|d| arguments_depth(d.node.arguments.iter().map(|(_, v)| v)))
        .max()
        .unwrap_or(0)
}

/// Bracket depth of a selection set in the text it was parsed from.
fn set_depth(set: &SelectionSet) -> usize {
    if set.items.is_empty() {
        return 0;
    }
    let inner = set
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => arguments_depth(field.node.arguments.iter().map(|(_, v)| v))
                .max(directives_depth(&field.node.directives))
                .max(set_depth(&field.node.selection_set.node)),
            Selection::FragmentSpread(spread) => directives_depth(&spread.node.directives),
            Selection::InlineFragment(inline) => directives_depth(&inline.node.directives)
                .max(set_depth(&inline.node.selection_set.node)),
        })
        .max()
        .unwrap_or(0);
    1 + inner
}

fn document_depth(document: &ExecutableDocument) -> usize {
    let operations = document.operations.iter().map(|(_, op)| {
        let variables = op
            .node
            .variable_definitions
            .iter()
            .map(|v| {
                let default = v
                    .node
                    .default_value
                    .as_ref()
                    .map_or(0, |d| const_depth(&d.node));
                default.max(directives_depth(&v.node.directives))
            })
            .max()
            .map_or(0, |d| d + 1);
        variables
            .max(directives_depth(&op.node.directives))
            .max(set_depth(&op.node.selection_set.node))
    });
    let fragments = document
        .fragments
        .values()
        .map(|f| directives_depth(&f.node.directives).max(set_depth(&f.node.selection_set.node)));
    operations.chain(fragments).max().unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let max = Limits::default().max_nesting;
    if check_document_text(text, max).is_err() {
        return;
    }
    if let Ok(document) = async_graphql::parser::parse_query(text) {
        let depth = document_depth(&document);
        assert!(
            depth <= max,
            "the text check let through a document nested {depth} deep (limit {max})"
        );
    }
});
