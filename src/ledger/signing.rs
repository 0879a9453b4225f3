//! The ed25519 key that signs ledger checkpoints, and the exact signed message (docs/ledger.md).
//!
//! The key is the configured seed (`--ledger-signing-key` / `LOGBOOK_LEDGER_SIGNING_KEY`, 32
//! bytes as hex or base64) or, when none is configured, a seed generated on first start and kept
//! in `server_settings`, so every process sharing the database signs with the same key.

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::error::{AppError, AppResult};

/// The one signature algorithm checkpoints use.
pub const ALGORITHM: &str = "ed25519";
/// First element of the signed JSON array; names the message format.
pub const CHECKPOINT_FORMAT: &str = "logbook-checkpoint-v1";
/// `server_settings` row holding the generated seed (hex) when no key is configured.
const SETTING: &str = "ledger_signing_seed";

/// The checkpoint signing key. `Debug` shows only the public half.
#[derive(Clone)]
pub struct LedgerKey {
    signing: SigningKey,
}

impl std::fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerKey(public {})", self.public_key_hex())
    }
}

impl LedgerKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        LedgerKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// A 32-byte seed written as 64 hex digits or as base64 (standard or URL-safe).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| e.to_string())?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE.decode(text))
                .or_else(|_| URL_SAFE_NO_PAD.decode(text))
                .map_err(|_| "the ledger signing key is neither 64 hex digits nor base64")?
        };
        let seed: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "the ledger signing key must be a 32-byte ed25519 seed, got {} bytes",
                b.len()
            )
        })?;
        Ok(Self::from_seed(seed))
    }

    /// The configured key, else the one persisted in the database (created on first use).
    pub async fn load(db: &DatabaseConnection, configured: Option<&str>) -> AppResult<Self> {
        if let Some(text) = configured {
            return Self::parse(text).map_err(AppError::internal);
        }
        let seed = crate::db::shared_secret(db, SETTING).await?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| AppError::internal("the stored ledger signing seed is not 32 bytes"))?;
        Ok(Self::from_seed(seed))
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key())
    }

    /// Signs `message`; the signature in standard base64.
    pub fn sign(&self, message: &[u8]) -> String {
        STANDARD.encode(self.signing.sign(message).to_bytes())
    }
}

/// The exact bytes a checkpoint signature covers: the UTF-8 text of the canonical JSON array
/// `["logbook-checkpoint-v1", tenant_id, tree_size, root_hash_hex, issued_at]` (no whitespace,
/// `issued_at` RFC 3339 UTC with six fractional digits and `Z`).
pub fn checkpoint_message(
    tenant_id: &str,
    tree_size: u64,
    root_hash_hex: &str,
    issued_at: DateTime<Utc>,
) -> String {
    json!([
        CHECKPOINT_FORMAT,
        tenant_id,
        tree_size,
        root_hash_hex,
        issued_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    ])
    .to_string()
}

/// Checks a base64 signature over `message` with a hex public key.
pub fn verify_signature(
    public_key_hex: &str,
    message: &[u8],
    signature_b64: &str,
) -> Result<(), String> {
    let key: [u8; 32] = hex::decode(public_key_hex.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the public key is not 64 hex digits")?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| "the public key is not an ed25519 key")?;
    let signature: [u8; 64] = STANDARD
        .decode(signature_b64.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the signature is not 64 bytes of base64")?;
    key.verify(message, &Signature::from_bytes(&signature))
        .map_err(|_| "the signature does not verify".to_owned())
}

/// A public key given as 64 hex digits or base64 of 32 bytes, as hex.
pub fn normalize_public_key(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(text.to_ascii_lowercase());
    }
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()
        .filter(|b| b.len() == 32)
        .map(hex::encode)
        .ok_or_else(|| "the public key must be 32 bytes as 64 hex digits or base64".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn signs_and_verifies_the_documented_message() {
        let key = LedgerKey::parse(&"07".repeat(32)).expect("hex seed");
        let same = LedgerKey::parse(&STANDARD.encode([7u8; 32])).expect("base64 seed");
        assert_eq!(key.public_key_hex(), same.public_key_hex());
        let at = Utc
            .with_ymd_and_hms(2026, 11, 28, 1, 2, 3)
            .single()
            .expect("time");
        let msg = checkpoint_message("acme", 5, &"ab".repeat(32), at);
        assert_eq!(
            msg,
            format!(
                r#"["logbook-checkpoint-v1","acme",5,"{}","2026-11-28T01:02:03.000000Z"]"#,
                "ab".repeat(32)
            )
        );
        let sig = key.sign(msg.as_bytes());
        assert!(verify_signature(&key.public_key_hex(), msg.as_bytes(), &sig).is_ok());
        assert!(verify_signature(&key.public_key_hex(), b"other", &sig).is_err());
        assert!(LedgerKey::parse("short").is_err());
    }
}
