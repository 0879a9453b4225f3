//! Automatic persisted queries (Apollo's `persistedQuery` extension, version 1).
//!
//! A client first sends only `extensions.persistedQuery.sha256Hash`; if the server knows the
//! hash it runs the stored document, otherwise it answers `PersistedQueryNotFound` and the
//! client resends the hash with the query text, which is checked and stored. Documents live in
//! Redis (`{namespace}:apq:{sha256}`, 7 days) or, without Redis, in `persisted_queries`, so a
//! hash registered through one server process works on every other. Resolution happens before
//! execution, so a persisted mutation is still refused over GET.

use async_graphql::Request;
use entity::persisted_queries::{ActiveModel, Column, Entity};
use redis::AsyncCommands;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait, QuerySelect};
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};
use crate::state::AppState;

const TTL_SECONDS: u64 = 7 * 86_400;
/// The message Apollo clients look for to resend the query text.
pub const NOT_FOUND: &str = "PersistedQueryNotFound";

/// What a request's `persistedQuery` extension asks for, decided without any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persisted {
    /// No extension: the request runs as sent.
    Absent,
    /// A hash without text: run the stored document.
    Lookup { hash: String },
    /// A hash with the text it digests: store the text and run it.
    Register { hash: String },
}

/// Takes the extension out of the request and checks it: version 1, a SHA-256 hex hash (any
/// case, returned lower-case) that, with the query text, matches the text.
pub fn parse(request: &mut Request) -> AppResult<Persisted> {
    let Some(extension) = request.extensions.remove("persistedQuery") else {
        return Ok(Persisted::Absent);
    };
    let extension = extension
        .into_json()
        .map_err(|e| AppError::bad_input("extensions.persistedQuery", e.to_string()))?;
    if extension.get("version").and_then(|v| v.as_i64()) != Some(1) {
        return Err(AppError::bad_input(
            "extensions.persistedQuery.version",
            "only persisted-query version 1 is supported",
        ));
    }
    let hash = extension
        .get("sha256Hash")
        .and_then(|v| v.as_str())
        .filter(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| {
            AppError::bad_input(
                "extensions.persistedQuery.sha256Hash",
                "sha256Hash must be 64 hex digits",
            )
        })?
        .to_ascii_lowercase();
    if request.query.is_empty() {
        return Ok(Persisted::Lookup { hash });
    }
    if hex::encode(Sha256::digest(request.query.as_bytes())) != hash {
        return Err(AppError::bad_input(
            "extensions.persistedQuery.sha256Hash",
            "provided sha256Hash does not match the query",
        ));
    }
    Ok(Persisted::Register { hash })
}

/// Replaces a hash-only request by its stored document, or stores a new one. Requests without
/// the extension are left alone.
pub async fn resolve(state: &AppState, request: &mut Request) -> AppResult<()> {
    match parse(request)? {
        Persisted::Absent => {}
        Persisted::Lookup { hash } => {
            request.query = lookup(state, &hash)
                .await?
                .ok_or_else(|| AppError::bad_input("extensions.persistedQuery", NOT_FOUND))?;
        }
        Persisted::Register { hash } => {
            if let Err(err) = store(state, &hash, &request.query).await {
                // The text is here, so the request still runs; the client will register again.
                tracing::warn!(error = ?err, "persisted query not stored");
            }
        }
    }
    Ok(())
}

async fn lookup(state: &AppState, hash: &str) -> AppResult<Option<String>> {
    if let Some(link) = &state.redis {
        let mut conn = link.connection().await?;
        return conn.get(link.key(&["apq", hash])).await.map_err(|e| {
            crate::telemetry::redis_error("persisted_query");
            AppError::Unavailable(format!("Redis: {e}"))
        });
    }
    Ok(Entity::find_by_id(hash)
        .select_only()
        .column(Column::Query)
        .into_tuple()
        .one(&state.db)
        .await?)
}

async fn store(state: &AppState, hash: &str, query: &str) -> AppResult<()> {
    if let Some(link) = &state.redis {
        let mut conn = link.connection().await?;
        let _: () = conn
            .set_ex(link.key(&["apq", hash]), query, TTL_SECONDS)
            .await
            .map_err(|e| {
                crate::telemetry::redis_error("persisted_query");
                AppError::Unavailable(format!("Redis: {e}"))
            })?;
        return Ok(());
    }
    // Two processes may register the same query at once; the text is the same.
    Entity::insert(ActiveModel {
        sha256: Set(hash.to_owned()),
        query: Set(query.to_owned()),
        created_at_ms: Set(chrono::Utc::now().timestamp_millis()),
    })
    .on_conflict(OnConflict::column(Column::Sha256).do_nothing().to_owned())
    .exec_without_returning(&state.db)
    .await?;
    Ok(())
}
