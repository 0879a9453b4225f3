//! The verifiable ledger over each tenant's audit hash chain (docs/ledger.md): an RFC 6962
//! Merkle tree over the entries in `seq` order, signed checkpoints of its root, inclusion and
//! consistency proofs, whole-chain verification online and offline, and the NDJSON export that
//! offline verification reads.
//!
//! `merkle` is the pure tree, `store` keeps its complete subtrees and the checkpoints,
//! `signing` the ed25519 key (and where it comes from) and the signed message, `sink` publishes
//! checkpoints outside the database, `trusted` reads a checkpoint a client saved, `verify` walks
//! a chain, `export` writes and reads the file format, `graphql` serves `ledger { … }`.

pub mod cli;
pub mod export;
pub mod graphql;
pub mod merkle;
pub mod signing;
pub mod sink;
pub mod store;
pub mod trusted;
pub mod verify;

use chrono::{DateTime, Utc};

/// A signed statement "tenant T's ledger had `tree_size` entries with this root at `issued_at`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSnapshot {
    pub id: String,
    pub tenant_id: String,
    pub tree_size: u64,
    /// Lower-case hex.
    pub root_hash: String,
    /// Lower-case hex of the ed25519 public key that signed it.
    pub public_key: String,
    /// Standard base64 of the 64-byte ed25519 signature over [`Self::signed_message`].
    pub signature: String,
    pub issued_at: DateTime<Utc>,
}

impl CheckpointSnapshot {
    /// The exact text the signature covers (docs/ledger.md).
    pub fn signed_message(&self) -> String {
        signing::checkpoint_message(
            &self.tenant_id,
            self.tree_size,
            &self.root_hash,
            self.issued_at,
        )
    }

    /// Checks the signature with the checkpoint's own public key.
    pub fn verify_signature(&self) -> Result<(), String> {
        signing::verify_signature(
            &self.public_key,
            self.signed_message().as_bytes(),
            &self.signature,
        )
    }
}

/// The current end of a tenant's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadSnapshot {
    pub tenant_id: String,
    pub tree_size: u64,
    pub root_hash: String,
    /// Id and `entry_hash` of the entry with the highest `seq`; none for an empty ledger.
    pub last_entry_id: Option<String>,
    pub last_entry_hash: Option<String>,
}

/// `PATH(m, D[n])` of RFC 6962 for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProofSnapshot {
    pub entry_id: String,
    /// `seq - 1`.
    pub leaf_index: u64,
    pub tree_size: u64,
    /// `SHA-256(0x00 || entry_hash)`, hex.
    pub leaf_hash: String,
    /// Sibling hashes from the leaf up, hex.
    pub audit_path: Vec<String>,
    pub root_hash: String,
}

/// `PROOF(m, D[n])` of RFC 6962 between two tree sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProofSnapshot {
    pub from_size: u64,
    pub to_size: u64,
    pub from_root: String,
    pub to_root: String,
    pub path: Vec<String>,
}
