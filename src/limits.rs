//! Query cost rules shared by list fields: a list costs its page size times its child cost, so a
//! client asking for 100 runs with nested lists pays for all of them up front.

use crate::pagination::DEFAULT_PAGE_SIZE;

pub fn list_cost(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    let size = first.or(last).unwrap_or(DEFAULT_PAGE_SIZE as i32).max(1) as usize;
    size.saturating_mul(child_complexity.max(1))
        .saturating_add(1)
}

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
};
use async_graphql::parser::types::{
    ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, ServerError, ServerResult, Variables};

/// Refuses documents with more than `max` root fields in an operation, or more than `max`
/// aliases of one field in a selection set: cheap batching attacks that depth and complexity
/// limits price too low.
pub struct FieldFanOut {
    pub max: usize,
}

impl ExtensionFactory for FieldFanOut {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(FanOutCheck {
            max: self.max,
            root_order: std::sync::Mutex::default(),
        })
    }
}

struct FanOutCheck {
    max: usize,
    /// Response keys of each operation's root selection, in document order. The merged `Query`
    /// root resolves its parts one after another, so its response lists fields by part; they
    /// are put back in selection order after execution (GraphQL spec 6.3).
    root_order: std::sync::Mutex<HashMap<Option<String>, Vec<String>>>,
}

type Fragments = HashMap<Name, Positioned<FragmentDefinition>>;

/// Field names selected at this level, fragments expanded (bounded against cycles, which the
/// validator reports itself).
fn fields_at_level<'a>(
    set: &'a SelectionSet,
    fragments: &'a Fragments,
    depth: usize,
    out: &mut Vec<&'a Positioned<async_graphql::parser::types::Field>>,
) {
    if depth > 16 {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => out.push(field),
            Selection::InlineFragment(inline) => {
                fields_at_level(&inline.node.selection_set.node, fragments, depth + 1, out)
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = fragments.get(&spread.node.fragment_name.node) {
                    fields_at_level(&fragment.node.selection_set.node, fragments, depth + 1, out);
                }
            }
        }
    }
}

impl FanOutCheck {
    fn check(
        &self,
        set: &SelectionSet,
        fragments: &Fragments,
        root: bool,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 64 {
            return Ok(());
        }
        let mut fields = Vec::new();
        fields_at_level(set, fragments, 0, &mut fields);
        if root && fields.len() > self.max {
            return Err(format!(
                "an operation may select at most {} root fields (this one selects {})",
                self.max,
                fields.len()
            ));
        }
        let mut per_name: HashMap<&str, usize> = HashMap::new();
        for field in &fields {
            let count = per_name.entry(field.node.name.node.as_str()).or_default();
            *count += 1;
            if *count > self.max {
                return Err(format!(
                    "field `{}` is selected more than {} times (aliases) in one selection set",
                    field.node.name.node, self.max
                ));
            }
        }
        for field in fields {
            self.check(&field.node.selection_set.node, fragments, false, depth + 1)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Extension for FanOutCheck {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        for (name, operation) in document.operations.iter() {
            let mut fields = Vec::new();
            fields_at_level(
                &operation.node.selection_set.node,
                &document.fragments,
                0,
                &mut fields,
            );
            let keys = fields
                .iter()
                .map(|f| f.node.response_key().node.to_string())
                .collect();
            if let Ok(mut order) = self.root_order.lock() {
                order.insert(name.map(|n| n.to_string()), keys);
            }
            if let Err(message) = self.check(
                &operation.node.selection_set.node,
                &document.fragments,
                true,
                0,
            ) {
                let mut error = ServerError::new(message, None);
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", "QUERY_TOO_COMPLEX");
                return Err(error);
            }
        }
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> async_graphql::Response {
        let mut response = next.run(ctx, operation_name).await;
        let order = self.root_order.lock().ok().and_then(|order| {
            order
                .get(&operation_name.map(str::to_owned))
                .cloned()
                .or_else(|| {
                    (order.len() == 1)
                        .then(|| order.values().next().cloned())
                        .flatten()
                })
        });
        if let (Some(order), async_graphql::Value::Object(data)) = (order, &mut response.data) {
            let mut sorted = async_graphql::indexmap::IndexMap::with_capacity(data.len());
            for key in &order {
                if let Some((name, value)) = data.shift_remove_entry(key.as_str()) {
                    sorted.insert(name, value);
                }
            }
            sorted.extend(std::mem::take(data));
            *data = sorted;
        }
        response
    }
}
