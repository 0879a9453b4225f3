//! Logbook: a GraphQL server over the logs of an AI-agent platform.

// The federated query root merges the whole `Query` (itself thirteen merged parts) with the
// entity resolvers: laying out its field resolver's future needs more than 128 levels.
#![recursion_limit = "256"]

pub mod admission;
pub mod app;
pub mod audit;
pub mod auth;
pub mod closed_set;
pub mod config;
pub mod cost;
pub mod cursor;
pub mod db;
pub mod error;
pub mod events;
pub mod evidence;
pub mod export_files;
pub mod exports;
pub mod federation;
pub mod graphiql;
pub mod graphql;
pub mod graphql_http;
pub mod idempotency;
pub mod ids;
pub mod input;
pub mod integrity;
pub mod ledger;
pub mod limits;
pub mod mismatches;
pub mod otel;
pub mod pagination;
pub mod panel;
pub mod persisted;
pub mod plain;
pub mod ratelimit;
pub mod redaction;
pub mod redis_link;
pub mod replay;
pub mod request;
pub mod run_node;
pub mod runs;
pub mod scalars;
pub mod seed;
pub mod served;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod stats;
pub mod subscriptions;
pub mod system;
pub mod telemetry;
pub mod tenants;
pub mod traces;
pub mod trusted;
pub mod ws;
