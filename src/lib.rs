//! Logbook: a GraphQL server over the logs of an AI-agent platform.

pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod graphql;
pub mod ids;
pub mod limits;
pub mod pagination;
pub mod redis_link;
pub mod runs;
pub mod scalars;
pub mod tenants;
