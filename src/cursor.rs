//! Cursors: a row's position in a newest-first list, signed and bound to what it was issued
//! for. A cursor is `base64url(version | scope digest | sort key | id | tag)` where the tag
//! is an HMAC-SHA256 under a server secret shared by every server process (stored in the
//! database) and the scope digest binds it to one tenant, list, order, filter and `asOf`. A
//! forged cursor, one from another tenant, list or filter, or garbage is `BAD_CURSOR`; another
//! tenant's cursor gets the same answer as an altered one, so it tells nothing.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

const CURSOR_VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const SCOPE_LEN: usize = 8;

/// A row's position in a list: its sort key, then its id. The key is the row's time in
/// microseconds since the epoch for the time orders (newest first, the default), or the value
/// of the integer column a list is sorted by (cost, tokens, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub key: i64,
    pub id: String,
}

impl Position {
    /// The position of a row in a time order.
    pub fn of(created_at: DateTime<Utc>, id: &str) -> Self {
        Position::keyed(created_at.timestamp_micros(), id)
    }

    /// The position of a row in an order on an integer column.
    pub fn keyed(key: i64, id: &str) -> Self {
        Position {
            key,
            id: id.to_owned(),
        }
    }

    /// The key as a time (time orders).
    pub fn time(&self) -> AppResult<DateTime<Utc>> {
        Utc.timestamp_micros(self.key)
            .single()
            .ok_or(AppError::BadCursor("not a cursor"))
    }
}

/// What a cursor is bound to: the tenant, the list, its order and the canonical form of its
/// filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope([u8; SCOPE_LEN]);

impl Scope {
    /// `filter` is serialized with serde (field order is the struct's, so it is canonical).
    pub fn new<F: Serialize>(
        tenant: &str,
        list: &str,
        order: &str,
        filter: &F,
        as_of: Option<DateTime<Utc>>,
    ) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(tenant.as_bytes());
        hasher.update([0]);
        hasher.update(list.as_bytes());
        hasher.update([0]);
        hasher.update(order.as_bytes());
        hasher.update([0]);
        hasher.update(serde_json::to_vec(filter).unwrap_or_default());
        hasher.update([0]);
        if let Some(at) = as_of {
            hasher.update(at.timestamp_micros().to_be_bytes());
        }
        let digest = hasher.finalize();
        let mut scope = [0u8; SCOPE_LEN];
        scope.copy_from_slice(&digest[..SCOPE_LEN]);
        Scope(scope)
    }
}

/// Signs and checks cursors with the shared server secret.
#[derive(Clone)]
pub struct CursorCodec {
    /// HMAC already keyed with the secret: a page signs a cursor per row, and keying is half
    /// of an HMAC's hashing.
    keyed: Arc<Hmac<Sha256>>,
}

impl CursorCodec {
    pub fn new(key: &[u8]) -> Self {
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        CursorCodec {
            keyed: Arc::new(keyed),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::clone(&self.keyed)
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac();
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    pub fn encode(&self, scope: Scope, position: &Position) -> String {
        let id = position.id.as_bytes();
        let mut body = Vec::with_capacity(1 + SCOPE_LEN + 8 + 2 + id.len() + TAG_LEN);
        body.push(CURSOR_VERSION);
        body.extend_from_slice(&scope.0);
        body.extend_from_slice(&position.key.to_be_bytes());
        body.extend_from_slice(&(id.len() as u16).to_be_bytes());
        body.extend_from_slice(id);
        let tag = self.tag(&body);
        body.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(body)
    }

    pub fn decode(&self, scope: Scope, cursor: &str) -> AppResult<Position> {
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| AppError::BadCursor("not a cursor"))?;
        let header = 1 + SCOPE_LEN + 8 + 2;
        if bytes.len() < header + TAG_LEN {
            return Err(AppError::BadCursor("not a cursor"));
        }
        if bytes[0] != CURSOR_VERSION {
            return Err(AppError::BadCursor("unsupported cursor version"));
        }
        let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        // Constant-time comparison of the tag.
        let mut mac = self.mac();
        mac.update(body);
        if mac.verify_truncated_left(tag).is_err() {
            return Err(AppError::BadCursor(
                "the cursor was not issued by this server or was altered",
            ));
        }
        if body[1..1 + SCOPE_LEN] != scope.0 {
            return Err(AppError::BadCursor(
                "the cursor belongs to a different list, filter or order",
            ));
        }
        let key = i64::from_be_bytes(
            body[1 + SCOPE_LEN..1 + SCOPE_LEN + 8]
                .try_into()
                .map_err(|_| AppError::BadCursor("not a cursor"))?,
        );
        let id_len = u16::from_be_bytes([body[header - 2], body[header - 1]]) as usize;
        if body.len() != header + id_len {
            return Err(AppError::BadCursor("not a cursor"));
        }
        let id = String::from_utf8(body[header..].to_vec())
            .map_err(|_| AppError::BadCursor("not a cursor"))?;
        Ok(Position { key, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(filter: &str) -> Scope {
        Scope::new("acme", "llmRuns", "CREATED_AT_DESC", &filter, None)
    }

    #[test]
    fn cursor_round_trip_and_tamper_checks() {
        let codec = CursorCodec::new(b"secret");
        let position = Position::of(
            Utc.timestamp_micros(1_700_000_000_123_456).unwrap(),
            "run-1",
        );
        let cursor = codec.encode(scope("a"), &position);
        assert_eq!(codec.decode(scope("a"), &cursor).unwrap(), position);
        assert_eq!(
            codec.decode(scope("b"), &cursor).unwrap_err().code(),
            "BAD_CURSOR"
        );
        assert_eq!(
            CursorCodec::new(b"other")
                .decode(scope("a"), &cursor)
                .unwrap_err()
                .code(),
            "BAD_CURSOR"
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        bytes[12] ^= 1;
        assert_eq!(
            codec
                .decode(scope("a"), &URL_SAFE_NO_PAD.encode(bytes))
                .unwrap_err()
                .code(),
            "BAD_CURSOR"
        );
        assert_eq!(
            codec.decode(scope("a"), "garbage!").unwrap_err().code(),
            "BAD_CURSOR"
        );
        // Another tenant's cursor for the same list and filter: refused, and with the same
        // message as another list's, so it does not reveal that the cursor is valid elsewhere.
        let other = Scope::new("globex", "llmRuns", "CREATED_AT_DESC", &"a", None);
        let across = codec.decode(other, &cursor).unwrap_err();
        let elsewhere = codec.decode(scope("b"), &cursor).unwrap_err();
        assert_eq!(across.code(), "BAD_CURSOR");
        assert_eq!(across.message(), elsewhere.message());
        assert_eq!(
            codec.decode(scope("a"), "").unwrap_err().code(),
            "BAD_CURSOR"
        );
    }
}
