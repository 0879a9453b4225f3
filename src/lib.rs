//! Logbook: a GraphQL server over the logs of an AI-agent platform.

pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod cost;
pub mod db;
pub mod error;
pub mod exports;
pub mod graphiql;
pub mod graphql;
pub mod ids;
pub mod integrity;
pub mod limits;
pub mod mismatches;
pub mod pagination;
pub mod panel;
pub mod redis_link;
pub mod replay;
pub mod runs;
pub mod scalars;
pub mod seed;
pub mod system;
pub mod tenants;
pub mod traces;
