//! Lists of plain objects resolved without a future per field.
//!
//! async-graphql resolves every field of every object as its own boxed future, with its own
//! context, joined through a `FuturesUnordered`: for a page of 50 runs × 18 fields that is 900
//! futures whose work is copying one column each. A [`PlainList`] resolves such a list in one
//! pass instead when every selected field is *plain*: stored data that needs no arguments, no
//! context and no I/O, listed by the type's [`PlainFields`]. Anything else in the selection (a
//! nested object, a fragment, an argument, a directive) takes async-graphql's own path, so the plain path only ever answers documents whose answer it produces byte for
//! byte the same (`tests/it/plain_lists.rs` compares the two paths field by field). An extension
//! that hooks field resolution does not see the fields of a plain list: the one Logbook installs
//! (`otel::GraphqlSpans`, only when spans are exported) skips scalar fields anyway.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value};

/// Reads one plain field of a snapshot-backed object as the value its resolver returns.
pub type PlainField<T> = fn(&T) -> Value;

/// The fields of an object type that a [`PlainList`] may answer in one pass.
pub trait PlainFields: OutputType + Sync + Sized {
    /// The reader of the field named `name` (as in the schema) when it is plain; `None` for
    /// every field that needs arguments, context or I/O, and for every field by default.
    fn plain_field(name: &str) -> Option<PlainField<Self>> {
        let _ = name;
        None
    }
}

/// A list field's items, resolved in one pass when the selection allows (else as `Vec<&T>`).
pub struct PlainList<'a, T>(pub Vec<&'a T>);

/// What one selected field of a plain selection answers.
enum Reader<T> {
    Field(PlainField<T>),
    Typename(Value),
}

/// The response keys and readers for a selection set on `T`, or `None` when any selection is
/// not plain for `T`.
fn plan<T: PlainFields>(selection_set: &SelectionSet) -> Option<Vec<(Name, Reader<T>)>> {
    let mut plan = Vec::with_capacity(selection_set.items.len());
    for selection in &selection_set.items {
        let field = leaf(selection)?;
        let name = field.name.node.as_str();
        let reader = if name == "__typename" {
            Reader::Typename(Value::String(T::type_name().into_owned()))
        } else {
            Reader::Field(T::plain_field(name)?)
        };
        plan.push((field.response_key().node.clone(), reader));
    }
    Some(plan)
}

/// The selection as a field with no arguments and no directives, or `None`.
fn bare_field(selection: &Positioned<Selection>) -> Option<&Field> {
    let Selection::Field(field) = &selection.node else {
        return None;
    };
    let field = &field.node;
    (field.arguments.is_empty() && field.directives.is_empty()).then_some(field)
}

/// The selection as a bare field with no selection set of its own, or `None`.
fn leaf(selection: &Positioned<Selection>) -> Option<&Field> {
    bare_field(selection).filter(|field| field.selection_set.node.items.is_empty())
}

/// One object's value by `plan`. A response key selected twice keeps its first value, as
/// async-graphql's merge does for leaf fields.
fn object<T>(item: &T, plan: &[(Name, Reader<T>)]) -> Value {
    let mut fields = IndexMap::with_capacity(plan.len());
    for (key, reader) in plan {
        fields.entry(key.clone()).or_insert_with(|| match reader {
            Reader::Field(read) => read(item),
            Reader::Typename(name) => name.clone(),
        });
    }
    Value::Object(fields)
}

/// The list's value in one pass, or `None` when the selection is not plain for `T`.
fn plain_values<'a, T: PlainFields + 'a>(
    ctx: &ContextSelectionSet<'_>,
    items: impl Iterator<Item = &'a T>,
) -> Option<Value> {
    let plan = plan::<T>(&ctx.item.node)?;
    Some(Value::List(items.map(|item| object(item, &plan)).collect()))
}

impl<T: PlainFields> OutputType for PlainList<'_, T> {
    fn type_name() -> Cow<'static, str> {
        <Vec<&T> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<&T> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<&T> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match plain_values(ctx, self.0.iter().copied()) {
            Some(values) => Ok(values),
            None => <Vec<&T> as OutputType>::resolve(&self.0, ctx, field).await,
        }
    }
}

/// An owned list of plain objects a resolver builds (a histogram's buckets), resolved in one
/// pass when the selection allows (else as `Vec<T>`).
pub struct PlainRows<T>(pub Vec<T>);

impl<T: PlainFields + Send> OutputType for PlainRows<T> {
    fn type_name() -> Cow<'static, str> {
        <Vec<T> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<T> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<T> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match plain_values(ctx, self.0.iter()) {
            Some(values) => Ok(values),
            None => <Vec<T> as OutputType>::resolve(&self.0, ctx, field).await,
        }
    }
}

/// A connection edge whose node may be answered plainly.
pub trait PlainEdge: OutputType + Sync {
    type Node: PlainFields;
    fn cursor(&self) -> &str;
    fn node(&self) -> &Self::Node;
}

/// A connection's `edges`, resolved in one pass when the edge's selection is only `cursor`,
/// `__typename` and a plain `node` (else as `Vec<E>`).
pub struct PlainEdges<E>(pub Vec<E>);

/// What one selected field of a plain edge answers.
enum EdgeReader<T> {
    Cursor,
    Typename(Value),
    Node(Vec<(Name, Reader<T>)>),
}

/// The plan for an edge's selection set; `None` when any selection is not plain, or when a
/// response key repeats (async-graphql merges repeated object selections; the plain path leaves
/// that to it).
fn edge_plan<E: PlainEdge>(
    selection_set: &SelectionSet,
) -> Option<Vec<(Name, EdgeReader<E::Node>)>> {
    let mut readers: Vec<(Name, EdgeReader<E::Node>)> =
        Vec::with_capacity(selection_set.items.len());
    for selection in &selection_set.items {
        let field = bare_field(selection)?;
        let key = field.response_key().node.clone();
        if readers.iter().any(|(seen, _)| *seen == key) {
            return None;
        }
        let leaf = field.selection_set.node.items.is_empty();
        let reader = match field.name.node.as_str() {
            "cursor" if leaf => EdgeReader::Cursor,
            "__typename" if leaf => {
                EdgeReader::Typename(Value::String(E::type_name().into_owned()))
            }
            "node" if !leaf => EdgeReader::Node(plan::<E::Node>(&field.selection_set.node)?),
            _ => return None,
        };
        readers.push((key, reader));
    }
    Some(readers)
}

impl<E: PlainEdge> OutputType for PlainEdges<E> {
    fn type_name() -> Cow<'static, str> {
        <Vec<E> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<E> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<E> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let Some(plan) = edge_plan::<E>(&ctx.item.node) else {
            return <Vec<E> as OutputType>::resolve(&self.0, ctx, field).await;
        };
        let edges = self.0.iter().map(|edge| {
            let mut fields = IndexMap::with_capacity(plan.len());
            for (key, reader) in &plan {
                let value = match reader {
                    EdgeReader::Cursor => Value::String(edge.cursor().to_owned()),
                    EdgeReader::Typename(name) => name.clone(),
                    EdgeReader::Node(node) => object(edge.node(), node),
                };
                fields.insert(key.clone(), value);
            }
            Value::Object(fields)
        });
        Ok(Value::List(edges.collect()))
    }
}

/// Value conversions that match what async-graphql makes of a resolver's return value.
pub mod value {
    use async_graphql::resolver_utils::enum_value;
    use async_graphql::{EnumType, ScalarType, Value};

    pub fn text(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    pub fn optional_text(value: Option<&str>) -> Value {
        value.map_or(Value::Null, text)
    }

    pub fn scalar<S: ScalarType>(value: &S) -> Value {
        value.to_value()
    }

    pub fn optional_scalar<S: ScalarType>(value: Option<&S>) -> Value {
        value.map_or(Value::Null, ScalarType::to_value)
    }

    pub fn enumeration<E: EnumType>(value: E) -> Value {
        enum_value(value)
    }

    /// A `JSON` field (async-graphql's `Json<T>`): `null` where serde cannot convert.
    pub fn json(value: &serde_json::Value) -> Value {
        async_graphql::to_value(value).unwrap_or_default()
    }

    pub fn optional_json(value: Option<&serde_json::Value>) -> Value {
        value.map_or(Value::Null, json)
    }
}
