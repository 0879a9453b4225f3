//! The GraphiQL page, opened with example operations for the console's main screens (one tab
//! each, from `src/graphiql/examples/`; a test runs every example against the schema).

/// (file name, document) of every example operation, in tab order.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "01_runs_newest.graphql",
        include_str!("graphiql/examples/01_runs_newest.graphql"),
    ),
    (
        "02_run_detail.graphql",
        include_str!("graphiql/examples/02_run_detail.graphql"),
    ),
    (
        "03_viewer.graphql",
        include_str!("graphiql/examples/03_viewer.graphql"),
    ),
    (
        "20_cost_dashboard.graphql",
        include_str!("graphiql/examples/20_cost_dashboard.graphql"),
    ),
    (
        "21_panel_consistency.graphql",
        include_str!("graphiql/examples/21_panel_consistency.graphql"),
    ),
];

/// The HTML page with the examples as GraphiQL's default tabs.
pub fn page() -> String {
    let tabs: Vec<serde_json::Value> = EXAMPLES
        .iter()
        .map(|(_, query)| serde_json::json!({ "query": query }))
        .collect();
    // `</` must not appear inside a <script> element.
    let tabs = serde_json::Value::Array(tabs)
        .to_string()
        .replace("</", "<\\/");
    include_str!("graphiql/page.html").replace("__LOGBOOK_TABS__", &tabs)
}
