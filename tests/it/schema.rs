//! The published contract: the served SDL equals `schema.graphql` at the repository root.

use crate::support::{Backend, TestApp};

async fn served_sdl_equals_schema_file(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let served = app
        .http
        .get(format!("{}/schema.graphql", app.base))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("text");
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql at the repo root");
    assert!(served == file, "the served SDL differs from schema.graphql: run `cargo run -- print-schema > schema.graphql`");
    assert_eq!(logbook::graphql::sdl(), file);
    app.stop().await;
}

crate::cases!(served_sdl_equals_schema_file);
