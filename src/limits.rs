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

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
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
        Arc::new(FanOutCheck { max: self.max })
    }
}

struct FanOutCheck {
    max: usize,
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
        for (_, operation) in document.operations.iter() {
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
}
