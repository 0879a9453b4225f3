//! GraphQL for the verifiable ledger: `ledger { publicKey head checkpoint checkpoints
//! inclusionProof consistencyProof verify }`. Hashes are lower-case hex; sizes and indexes are
//! `BigInt` (64-bit); signatures and keys follow docs/ledger.md.

use async_graphql::{Context, Enum, Object, ID};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::signing::LedgerKey;
use super::verify::{self, BadEntry, FailureReason, VerificationReport};
use super::{
    store, CheckpointSnapshot, ConsistencyProofSnapshot, HeadSnapshot, InclusionProofSnapshot,
};
use crate::audit::graphql::AuditEntry;
use crate::audit::store as audit_store;
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, AppResult};
use crate::ids::{self, NodeKind};
use crate::pagination::{self, PageRequest};
use crate::scalars::{BigInt, DateTime};
use crate::state::AppState;
use crate::system::graphql::record_id_from;

/// Signature algorithms of ledger checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum SignatureAlgorithm {
    /// Ed25519 (RFC 8032), 32-byte public keys, 64-byte signatures.
    #[graphql(name = "ED25519")]
    Ed25519,
}

fn big(n: u64) -> BigInt {
    BigInt(n as i64)
}

fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

/// The process's checkpoint signing key (schema data, installed by `crate::server`).
fn signing_key<'a>(ctx: &Context<'a>) -> &'a LedgerKey {
    ctx.data_unchecked::<LedgerKey>()
}

async fn entry(ctx: &Context<'_>, tenant: &TenantId, record_id: &str) -> AppResult<AuditEntry> {
    audit_store::get(&state(ctx).db, tenant, record_id)
        .await?
        .map(AuditEntry)
        .ok_or(AppError::NotFound("AuditEntry"))
}

/// The key that signs this deployment's checkpoints.
pub struct LedgerPublicKey {
    bytes: [u8; 32],
}

#[Object]
impl LedgerPublicKey {
    async fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::Ed25519
    }
    /// The 32-byte public key, lower-case hex.
    async fn hex(&self) -> String {
        hex::encode(self.bytes)
    }
    /// The same key, standard base64.
    async fn base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }
}

/// A signed statement: the tenant's ledger had `treeSize` entries with Merkle root `rootHash`
/// when it was issued. Verify `signature` over the bytes of `signedMessage` (which anyone can
/// rebuild from the other fields, see docs/ledger.md) with `publicKey`.
pub struct SignedCheckpoint(pub CheckpointSnapshot);

#[Object]
impl SignedCheckpoint {
    async fn tree_size(&self) -> BigInt {
        big(self.0.tree_size)
    }
    /// RFC 6962 Merkle tree hash of the first `treeSize` entries, hex.
    async fn root_hash(&self) -> &str {
        &self.0.root_hash
    }
    /// When the checkpoint was signed (part of the signed message).
    async fn issued_at(&self) -> DateTime {
        self.0.issued_at.into()
    }
    async fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::Ed25519
    }
    /// The signing public key, hex (keys can rotate; each checkpoint names its own).
    async fn public_key(&self) -> &str {
        &self.0.public_key
    }
    /// The 64-byte ed25519 signature, standard base64.
    async fn signature(&self) -> &str {
        &self.0.signature
    }
    /// The exact UTF-8 text that was signed.
    async fn signed_message(&self) -> String {
        self.0.signed_message()
    }
}

crate::connection_types!(
    SignedCheckpointConnection,
    SignedCheckpointEdge,
    SignedCheckpoint
);

impl crate::plain::PlainFields for SignedCheckpoint {}

/// The current end of the ledger.
pub struct LedgerHead(HeadSnapshot);

#[Object]
impl LedgerHead {
    /// Number of entries (the highest `seq`); 0 for an empty ledger.
    async fn tree_size(&self) -> BigInt {
        big(self.0.tree_size)
    }
    /// Merkle tree hash of all entries, hex (`SHA-256("")` when empty).
    async fn root_hash(&self) -> &str {
        &self.0.root_hash
    }
    /// `seq` of the last entry; null when empty.
    async fn last_seq(&self) -> Option<BigInt> {
        (self.0.tree_size > 0).then(|| big(self.0.tree_size))
    }
    /// `entryHash` of the last entry; null when empty.
    async fn last_entry_hash(&self) -> Option<&str> {
        self.0.last_entry_hash.as_deref()
    }
    /// The last entry; null when empty.
    async fn last_entry(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AuditEntry>> {
        let Some(id) = &self.0.last_entry_id else {
            return Ok(None);
        };
        let tenant = TenantId::trusted(self.0.tenant_id.clone());
        Ok(Some(entry(ctx, &tenant, id).await?))
    }
    /// A signed checkpoint of exactly this head (issued on first request); null when empty.
    async fn checkpoint(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<SignedCheckpoint>> {
        if self.0.tree_size == 0 {
            return Ok(None);
        }
        let s = state(ctx);
        let tenant = TenantId::trusted(self.0.tenant_id.clone());
        let c = store::checkpoint(&s.db, signing_key(ctx), &tenant, self.0.tree_size).await?;
        Ok(Some(SignedCheckpoint(c)))
    }
}

/// RFC 6962 inclusion proof: hashing `leafHash` with `auditPath` (RFC 9162 2.1.3.2) gives
/// `rootHash`, the root of the first `treeSize` entries.
pub struct InclusionProof {
    proof: InclusionProofSnapshot,
    tenant: TenantId,
}

#[Object]
impl InclusionProof {
    async fn entry(&self, ctx: &Context<'_>) -> async_graphql::Result<AuditEntry> {
        Ok(entry(ctx, &self.tenant, &self.proof.entry_id).await?)
    }
    /// `seq - 1`.
    async fn leaf_index(&self) -> BigInt {
        big(self.proof.leaf_index)
    }
    async fn tree_size(&self) -> BigInt {
        big(self.proof.tree_size)
    }
    /// `SHA-256(0x00 || entryHash bytes)`, hex.
    async fn leaf_hash(&self) -> &str {
        &self.proof.leaf_hash
    }
    /// Sibling hashes from the leaf up to the root, hex.
    async fn audit_path(&self) -> &[String] {
        &self.proof.audit_path
    }
    async fn root_hash(&self) -> &str {
        &self.proof.root_hash
    }
    /// A signed checkpoint of `treeSize`, so the root can be trusted.
    async fn checkpoint(&self, ctx: &Context<'_>) -> async_graphql::Result<SignedCheckpoint> {
        let s = state(ctx);
        let c =
            store::checkpoint(&s.db, signing_key(ctx), &self.tenant, self.proof.tree_size).await?;
        Ok(SignedCheckpoint(c))
    }
}

/// RFC 6962 consistency proof: the tree of `toSize` entries extends the tree of `fromSize`
/// (RFC 9162 2.1.4.2 verifies `path` against both roots).
pub struct ConsistencyProof(ConsistencyProofSnapshot);

#[Object]
impl ConsistencyProof {
    async fn from_size(&self) -> BigInt {
        big(self.0.from_size)
    }
    async fn to_size(&self) -> BigInt {
        big(self.0.to_size)
    }
    async fn from_root(&self) -> &str {
        &self.0.from_root
    }
    async fn to_root(&self) -> &str {
        &self.0.to_root
    }
    /// The proof's hashes, hex (empty when the sizes are equal).
    async fn path(&self) -> &[String] {
        &self.0.path
    }
}

/// The first entry that failed verification.
pub struct LedgerBadEntry(BadEntry);

#[Object]
impl LedgerBadEntry {
    async fn seq(&self) -> BigInt {
        BigInt(self.0.seq)
    }
    /// The entry's global id; null when the entry is missing.
    async fn entry_id(&self) -> Option<ID> {
        self.0
            .entry_id
            .as_deref()
            .map(|id| ids::encode(NodeKind::AuditEntry, id))
    }
    /// The entry's own id; null when the entry is missing.
    async fn record_id(&self) -> Option<&str> {
        self.0.entry_id.as_deref()
    }
    async fn reason(&self) -> FailureReason {
        self.0.reason
    }
    async fn message(&self) -> &str {
        &self.0.message
    }
}

/// The result of walking the whole ledger.
pub struct LedgerVerification(VerificationReport);

#[Object]
impl LedgerVerification {
    /// Every entry hash and link, the latest signed checkpoint and the stored tree agree.
    async fn ok(&self) -> bool {
        self.0.ok
    }
    /// Entries whose hash and link verified before the walk ended.
    async fn entries_checked(&self) -> BigInt {
        big(self.0.entries_checked)
    }
    /// Merkle root recomputed from the checked entries, hex.
    async fn root_hash(&self) -> &str {
        &self.0.root_hash
    }
    /// The latest signed checkpoint, compared with the recomputed tree; null when none was
    /// ever issued.
    async fn checkpoint(&self) -> Option<SignedCheckpoint> {
        self.0.checkpoint.clone().map(SignedCheckpoint)
    }
    /// Why the ledger does not verify; null when `ok`.
    async fn failure_reason(&self) -> Option<FailureReason> {
        self.0.failure.as_ref().map(|(r, _)| *r)
    }
    /// A sentence naming what failed; null when `ok`.
    async fn message(&self) -> Option<&str> {
        self.0.failure.as_ref().map(|(_, m)| m.as_str())
    }
    /// The first bad (or missing) entry, when the failure is tied to one.
    async fn first_bad_entry(&self) -> Option<LedgerBadEntry> {
        self.0.first_bad_entry.clone().map(LedgerBadEntry)
    }
}

/// The tenant's verifiable audit ledger (docs/ledger.md): an RFC 6962 Merkle tree over the
/// hash-chained entries in `seq` order, with signed checkpoints and proofs.
pub struct Ledger {
    tenant: TenantId,
}

/// A size argument: at least 1 and at most `head`.
fn size_arg(field: &str, value: BigInt, head: u64) -> AppResult<u64> {
    if value.0 < 1 {
        return Err(AppError::bad_input(
            field,
            format!("`{field}` must be at least 1"),
        ));
    }
    if value.0 as u64 > head {
        return Err(AppError::bad_input(
            field,
            format!(
                "`{field}` {} is beyond the ledger head ({head} entries)",
                value.0
            ),
        ));
    }
    Ok(value.0 as u64)
}

#[Object]
impl Ledger {
    /// The key checkpoints are signed with.
    async fn public_key(&self, ctx: &Context<'_>) -> LedgerPublicKey {
        LedgerPublicKey {
            bytes: signing_key(ctx).public_key(),
        }
    }

    /// Size, root and last entry now, with a signed checkpoint of exactly this head.
    async fn head(&self, ctx: &Context<'_>) -> async_graphql::Result<LedgerHead> {
        Ok(LedgerHead(store::head(&state(ctx).db, &self.tenant).await?))
    }

    /// The signed checkpoint of the first `treeSize` entries (issued now if never before).
    async fn checkpoint(
        &self,
        ctx: &Context<'_>,
        tree_size: BigInt,
    ) -> async_graphql::Result<SignedCheckpoint> {
        let s = state(ctx);
        let head = store::tree_size(&s.db, &self.tenant).await?;
        let size = size_arg("treeSize", tree_size, head)?;
        Ok(SignedCheckpoint(
            store::checkpoint(&s.db, signing_key(ctx), &self.tenant, size).await?,
        ))
    }

    /// Checkpoints issued so far, most recently issued first.
    #[graphql(complexity = "crate::limits::list_cost(first, last, child_complexity)")]
    async fn checkpoints(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<SignedCheckpointConnection> {
        let s = state(ctx);
        let request = PageRequest::new(first, after, last, before, None)
            .sized(crate::pagination::page_sizes(ctx));
        let page = pagination::page::<store::CheckpointList>(
            &s.db,
            &s.cursors,
            &self.tenant,
            &(),
            &request,
        )
        .await?
        .map(SignedCheckpoint);
        Ok(SignedCheckpointConnection(page))
    }

    /// Proof that an entry is in the tree of `treeSize` entries (default: the head). An entry
    /// outside the tenant's read window is `NOT_FOUND`, as in `auditEntry`.
    async fn inclusion_proof(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The entry's `id` (or its `recordId`).")] entry_id: ID,
        tree_size: Option<BigInt>,
    ) -> async_graphql::Result<InclusionProof> {
        let s = state(ctx);
        let record_id = record_id_from(&entry_id, NodeKind::AuditEntry);
        // One statement for the entry and the head, one for the nodes (docs/ledger.md).
        let since = crate::pagination::read_window_start(ctx, &self.tenant).await?;
        let found = store::locate_entry(&s.db, &self.tenant, &record_id, since)
            .await?
            .ok_or(AppError::NotFound("AuditEntry"))?;
        let head = found.head;
        let size = match tree_size {
            Some(t) => size_arg("treeSize", t, head)?,
            None => head,
        };
        let seq = found.seq;
        if seq > size {
            return Err(AppError::bad_input(
                "treeSize",
                format!("the entry (seq {seq}) is not in a tree of {size} entries"),
            )
            .into());
        }
        let proof = store::inclusion_proof(&s.db, &self.tenant, &found.id, seq, size).await?;
        Ok(InclusionProof {
            proof,
            tenant: self.tenant.clone(),
        })
    }

    /// Proof that the tree of `toSize` entries (default: the head) extends that of `fromSize`.
    async fn consistency_proof(
        &self,
        ctx: &Context<'_>,
        from_size: BigInt,
        to_size: Option<BigInt>,
    ) -> async_graphql::Result<ConsistencyProof> {
        let s = state(ctx);
        let head = store::tree_size(&s.db, &self.tenant).await?;
        let to = match to_size {
            Some(t) => size_arg("toSize", t, head)?,
            None if head == 0 => {
                return Err(AppError::bad_input("fromSize", "the ledger is empty").into())
            }
            None => head,
        };
        let from = size_arg("fromSize", from_size, head)?;
        if from > to {
            return Err(AppError::bad_input(
                "fromSize",
                format!("`fromSize` {from} is greater than `toSize` {to}"),
            )
            .into());
        }
        Ok(ConsistencyProof(
            store::consistency_proof(&s.db, &self.tenant, from, to).await?,
        ))
    }

    /// Walks the whole chain: recomputes every entry hash and link and the Merkle root, and
    /// compares them with the latest signed checkpoint. Costly on large ledgers.
    #[graphql(complexity = "crate::limits::LEDGER_VERIFY_COST")]
    async fn verify(&self, ctx: &Context<'_>) -> async_graphql::Result<LedgerVerification> {
        let report = verify::verify_tenant(&state(ctx).db, &self.tenant).await?;
        Ok(LedgerVerification(report))
    }
}

#[derive(Default)]
pub struct LedgerQuery;

#[Object]
impl LedgerQuery {
    /// The tenant's verifiable audit ledger: head, signed checkpoints, proofs, verification.
    async fn ledger(&self, ctx: &Context<'_>) -> async_graphql::Result<Ledger> {
        let principal = auth::require(ctx, Permission::Read).await?;
        Ok(Ledger {
            tenant: principal.tenant_id,
        })
    }
}
