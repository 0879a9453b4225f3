//! The audit ledger: append-only governance events, chained per tenant (DOMAIN.md 1.3, 3.1).

pub mod chain;
