//! The ed25519 key that signs ledger checkpoints, where it comes from, and the exact signed
//! message (docs/ledger.md).
//!
//! The key is a 32-byte seed (hex or base64) read from a file (`--ledger-signing-key-file` /
//! `LOGBOOK_LEDGER_SIGNING_KEY_FILE`, refused when group or others may access it) or given
//! directly (`--ledger-signing-key` / `LOGBOOK_LEDGER_SIGNING_KEY`). Without either, a seed is
//! generated on first start and kept in `server_settings`, so every process sharing the database
//! signs with the same key: convenient, but whoever can write the database can then also read
//! the key and re-sign a rewritten history, so that case is warned about loudly.

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::json;

use crate::config::Config;
use crate::error::{AppError, AppResult};

/// The one signature algorithm checkpoints use.
pub const ALGORITHM: &str = "ed25519";
/// First element of the signed JSON array; names the message format.
pub const CHECKPOINT_FORMAT: &str = "logbook-checkpoint-v1";
/// `server_settings` row holding the generated seed (hex) when no key is configured.
pub const SETTING: &str = "ledger_signing_seed";

/// What `serve` prints (and every process logs) when the key lives in the database.
pub const DATABASE_KEY_WARNING: &str = "WARNING: the ledger signing key is kept in the database \
(server_settings.ledger_signing_seed). Anyone who can write the database can read it, rewrite \
audit history, recompute the hash chain and Merkle tree and re-sign checkpoints so that \
`logbook ledger verify` still passes. Keep the key outside the database with \
--ledger-signing-key-file PATH (LOGBOOK_LEDGER_SIGNING_KEY_FILE; create one with \
`logbook ledger keygen --out PATH`) or --ledger-signing-key (LOGBOOK_LEDGER_SIGNING_KEY), publish \
checkpoints with --ledger-checkpoint-dir / --ledger-checkpoint-url, and have clients verify \
with `logbook ledger verify --trusted-checkpoint` (docs/ledger.md).";

/// Where the signing key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `--ledger-signing-key` / `LOGBOOK_LEDGER_SIGNING_KEY` (or a seed handed to the library).
    Configured,
    /// `--ledger-signing-key-file` / `LOGBOOK_LEDGER_SIGNING_KEY_FILE`.
    File,
    /// Generated and kept in `server_settings`: readable by whoever can rewrite the ledger.
    Database,
}

/// The checkpoint signing key. `Debug` shows only the public half.
#[derive(Clone)]
pub struct LedgerKey {
    signing: SigningKey,
    source: KeySource,
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
            source: KeySource::Configured,
        }
    }

    /// Where this key came from.
    pub fn source(&self) -> KeySource {
        self.source
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

    /// Reads a seed (64 hex digits or base64, surrounding whitespace ignored) from a file. On
    /// unix the file must not be accessible by group or others (`chmod 600`): a key others can
    /// read lets them sign checkpoints.
    pub fn read_file(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read the ledger signing key file {shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!(
                "the ledger signing key file {shown} is not a regular file"
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "refusing the ledger signing key file {shown}: its mode {mode:03o} lets group \
                     or others access it; restrict it with `chmod 600 {shown}` (on Kubernetes, \
                     mount the secret with defaultMode 0400)"
                ));
            }
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the ledger signing key file {shown}: {e}"))?;
        let mut key = Self::parse(&text).map_err(|e| format!("{shown}: {e}"))?;
        key.source = KeySource::File;
        Ok(key)
    }

    /// The configured key, else the one persisted in the database (created on first use, and
    /// warned about: see [`DATABASE_KEY_WARNING`]).
    pub async fn load(db: &DatabaseConnection, configured: Option<&str>) -> AppResult<Self> {
        if let Some(text) = configured {
            return Self::parse(text).map_err(config_error);
        }
        let seed = crate::db::shared_secret(db, SETTING).await?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| AppError::internal("the stored ledger signing seed is not 32 bytes"))?;
        let mut key = Self::from_seed(seed);
        key.source = KeySource::Database;
        tracing::warn!(public_key = %key.public_key_hex(), "{DATABASE_KEY_WARNING}");
        Ok(key)
    }

    /// The key the configuration names: the key file, else the key text, else the database's
    /// (see [`Self::load`]). With a key configured, a seed still kept in the database is
    /// reported: checkpoints signed by it can be forged by whoever reads the database.
    pub async fn from_config(db: &DatabaseConnection, config: &Config) -> AppResult<Self> {
        let key = match (&config.ledger_signing_key_file, &config.ledger_signing_key) {
            (Some(_), Some(_)) => {
                return Err(config_error(
                    "configure the ledger signing key once: a key file or a key, not both",
                ))
            }
            (Some(path), None) => Self::read_file(path).map_err(config_error)?,
            (None, text) => return Self::load(db, text.as_deref()).await,
        };
        if let Some(row) = entity::server_settings::Entity::find_by_id(SETTING.to_owned())
            .one(db)
            .await?
        {
            let old = hex::decode(&row.value)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(|seed| Self::from_seed(seed).public_key_hex())
                .unwrap_or_default();
            if old != key.public_key_hex() {
                tracing::warn!(
                    old_public_key = %old,
                    "the database still holds a generated ledger signing seed \
                     (server_settings.ledger_signing_seed) from before a key was configured; \
                     whoever reads the database can sign with it, so trust only checkpoints \
                     signed by the configured key (public key {}) from now on, and delete that \
                     row once no one needs to re-sign with the old key",
                    key.public_key_hex()
                );
            }
        }
        Ok(key)
    }

    /// A new random seed (from the operating system), as the 64 hex digits a key file holds.
    pub fn generate_seed_hex() -> Result<String, String> {
        use rand::TryRngCore;
        let mut seed = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| format!("the operating system's random source failed: {e}"))?;
        Ok(hex::encode(seed))
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

/// A key that is configured but unusable: the server cannot start, and the operator must see
/// why (an internal error would hide it).
fn config_error(why: impl Into<String>) -> AppError {
    AppError::Unavailable(why.into())
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
