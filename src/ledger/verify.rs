//! Whole-chain verification: recompute every entry hash and link in `seq` order, rebuild the
//! Merkle root alongside, and compare it with a signed checkpoint. The same walker checks the
//! live database (`ledger { verify }`, `logbook ledger verify --tenant`) and an exported file
//! (`logbook ledger verify --file --public-key`), and stops at the first bad entry.
//!
//! A checkpoint the client saved earlier (`--trusted-checkpoint`) anchors the check outside the
//! database: the current ledger must extend it (RFC 6962 consistency proof, and the entries' own
//! root at its size), which a rewrite re-signed with the real key cannot fake.

use entity::audit_ledger;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::export::LedgerEntryRecord;
use super::merkle::{self, TreeBuilder};
use super::store::{self, parse_hash};
use super::CheckpointSnapshot;
use crate::audit::chain::{self, ChainFields, GENESIS_PREV_HASH, HASH_VERSION};
use crate::auth::TenantId;
use crate::error::AppResult;

/// Entries read per query while walking the database.
const WALK_BATCH: u64 = 5_000;

/// Why a ledger does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(name = "LedgerFailureReason")]
pub enum FailureReason {
    /// An entry's `seq` is not the next number (a gap, a repeat, or the chain does not start
    /// at 1).
    SeqGap,
    /// An entry belongs to another tenant than the ledger.
    TenantMismatch,
    /// An entry's `hash_version` is not one this verifier knows.
    UnsupportedHashVersion,
    /// `prev_hash` is not the previous entry's `entry_hash`.
    PrevHashMismatch,
    /// The recomputed hash of the entry's fields differs from its `entry_hash`.
    EntryHashMismatch,
    /// A signed checkpoint covers more entries than the ledger holds: entries were removed.
    MissingEntries,
    /// The Merkle root recomputed from the entries differs from the signed checkpoint's root.
    RootMismatch,
    /// The checkpoint's signature does not verify, or it was signed by another key.
    BadSignature,
    /// The stored subtree hashes (which proofs are built from) disagree with the entries.
    StoredTreeMismatch,
    /// An exported file has no signed checkpoint, or a malformed line.
    MalformedExport,
}

/// The first entry that failed a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry {
    pub seq: i64,
    /// The entry's id; none when the entry is missing.
    pub entry_id: Option<String>,
    pub reason: FailureReason,
    pub message: String,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationReport {
    pub tenant_id: String,
    pub ok: bool,
    /// Entries whose hash and link verified (the walk stops at the first bad one).
    pub entries_checked: u64,
    /// Merkle root recomputed over the checked entries, hex.
    pub root_hash: String,
    /// The signed checkpoint the root was compared with, if any.
    pub checkpoint: Option<CheckpointSnapshot>,
    /// The client's saved checkpoint the ledger was checked against, if any.
    pub trusted: Option<CheckpointSnapshot>,
    pub failure: Option<(FailureReason, String)>,
    pub first_bad_entry: Option<BadEntry>,
}

impl VerificationReport {
    /// One line for the command line.
    pub fn summary(&self) -> String {
        match (&self.failure, &self.first_bad_entry) {
            (None, _) => format!(
                "ledger of tenant {} is valid: {} entries, root {}{}{}",
                self.tenant_id,
                self.entries_checked,
                self.root_hash,
                self.checkpoint.as_ref().map_or(String::new(), |c| format!(
                    ", signed checkpoint of size {} verified",
                    c.tree_size
                )),
                self.trusted.as_ref().map_or(String::new(), |t| format!(
                    "; consistent with the trusted checkpoint of size {} (root {}, issued {}, \
                     key {})",
                    t.tree_size,
                    t.root_hash,
                    crate::scalars::format_utc(t.issued_at),
                    t.public_key
                ))
            ),
            (Some(_), Some(bad)) => format!(
                "ledger of tenant {} is INVALID: first bad entry seq {} (id {}): {}",
                self.tenant_id,
                bad.seq,
                bad.entry_id.as_deref().unwrap_or("missing"),
                bad.message
            ),
            (Some((_, message)), None) => {
                format!("ledger of tenant {} is INVALID: {message}", self.tenant_id)
            }
        }
    }
}

/// Checks entries one by one in `seq` order and keeps the Merkle root of those checked.
pub struct ChainWalker {
    tenant_id: String,
    prev_hash: String,
    builder: TreeBuilder,
    /// `(size, root hex)`: the root the tree must have after `size` entries.
    expect_root: Option<(u64, String)>,
    root_mismatch: bool,
    /// A checkpoint saved outside the database, and the entries' root at its size once reached.
    trusted: Option<CheckpointSnapshot>,
    root_at_trusted: Option<String>,
}

impl ChainWalker {
    pub fn new(tenant_id: &str, expect_root: Option<(u64, String)>) -> Self {
        ChainWalker {
            tenant_id: tenant_id.to_owned(),
            prev_hash: GENESIS_PREV_HASH.to_owned(),
            builder: TreeBuilder::default(),
            expect_root,
            root_mismatch: false,
            trusted: None,
            root_at_trusted: None,
        }
    }

    /// Also checks the entries against a checkpoint saved outside the database (its signature
    /// is the caller's to check): see [`check_trusted`].
    pub fn expect_trusted(&mut self, trusted: CheckpointSnapshot) {
        self.trusted = Some(trusted);
    }

    pub fn size(&self) -> u64 {
        self.builder.size()
    }

    pub fn root_hex(&self) -> String {
        hex::encode(self.builder.root())
    }

    /// Whether the root at the expected size differed (known once that size was reached).
    pub fn root_mismatch(&self) -> bool {
        self.root_mismatch
    }

    /// Checks the next entry.
    pub fn check(&mut self, e: &LedgerEntryRecord) -> Result<(), BadEntry> {
        let bad = |reason, message: String| BadEntry {
            seq: e.seq,
            entry_id: Some(e.id.clone()),
            reason,
            message,
        };
        let expected = self.builder.size() as i64 + 1;
        if e.seq != expected {
            return Err(bad(
                FailureReason::SeqGap,
                format!("seq is {} where {expected} was expected", e.seq),
            ));
        }
        if e.tenant_id != self.tenant_id {
            return Err(bad(
                FailureReason::TenantMismatch,
                format!("the entry belongs to tenant {}", e.tenant_id),
            ));
        }
        if e.hash_version != HASH_VERSION {
            return Err(bad(
                FailureReason::UnsupportedHashVersion,
                format!("hash_version {} is not {HASH_VERSION}", e.hash_version),
            ));
        }
        if e.prev_hash != self.prev_hash {
            return Err(bad(
                FailureReason::PrevHashMismatch,
                format!(
                    "prev_hash {} is not the entry_hash {} of seq {}",
                    e.prev_hash,
                    self.prev_hash,
                    e.seq - 1
                ),
            ));
        }
        let created_at = chrono::DateTime::parse_from_rfc3339(&e.created_at)
            .map_err(|_| {
                bad(
                    FailureReason::EntryHashMismatch,
                    format!("created_at {} is not RFC 3339", e.created_at),
                )
            })?
            .with_timezone(&chrono::Utc);
        let recomputed = chain::entry_hash(&ChainFields {
            tenant_id: &e.tenant_id,
            seq: e.seq,
            prev_hash: &e.prev_hash,
            id: &e.id,
            event_type: &e.event_type,
            entity_type: &e.entity_type,
            entity_id: &e.entity_id,
            actor_type: &e.actor_type,
            actor_id: e.actor_id.as_deref(),
            action_reason: e.action_reason.as_deref(),
            before_state: e.before_state.as_ref(),
            after_state: e.after_state.as_ref(),
            correlation_id: e.correlation_id.as_deref(),
            run_id: e.run_id.as_deref(),
            created_at,
        });
        let stored = parse_hash(&e.entry_hash);
        if recomputed != e.entry_hash || stored.is_none() {
            return Err(bad(
                FailureReason::EntryHashMismatch,
                format!(
                    "the fields hash to {recomputed}, the entry says {}",
                    e.entry_hash
                ),
            ));
        }
        if let Some(hash) = stored {
            self.builder.push(merkle::leaf_hash(&hash), |_, _| {});
        }
        self.prev_hash.clone_from(&e.entry_hash);
        if let Some((size, root)) = &self.expect_root {
            if *size == self.builder.size() && &self.root_hex() != root {
                self.root_mismatch = true;
            }
        }
        if self
            .trusted
            .as_ref()
            .is_some_and(|t| t.tree_size == self.builder.size())
        {
            self.root_at_trusted = Some(self.root_hex());
        }
        Ok(())
    }

    /// The report for a walk that ended here, cleanly or at `bad`.
    pub fn report(
        &self,
        checkpoint: Option<CheckpointSnapshot>,
        bad: Option<BadEntry>,
    ) -> VerificationReport {
        let failure = bad.as_ref().map(|b| (b.reason, b.message.clone()));
        VerificationReport {
            tenant_id: self.tenant_id.clone(),
            ok: failure.is_none(),
            entries_checked: self.builder.size(),
            root_hash: self.root_hex(),
            checkpoint,
            trusted: self.trusted.clone(),
            failure,
            first_bad_entry: bad,
        }
    }
}

/// Checks a finished walk against its checkpoint: signature, size and root.
pub fn check_checkpoint(
    walker: &ChainWalker,
    checkpoint: &CheckpointSnapshot,
    trusted_key_hex: Option<&str>,
) -> Option<(FailureReason, String)> {
    if let Some(key) = trusted_key_hex {
        if !checkpoint.public_key.eq_ignore_ascii_case(key) {
            return Some((
                FailureReason::BadSignature,
                format!(
                    "the checkpoint is signed by key {}, not by the trusted key {key}",
                    checkpoint.public_key
                ),
            ));
        }
    }
    if let Err(why) = checkpoint.verify_signature() {
        return Some((
            FailureReason::BadSignature,
            format!("the checkpoint of size {}: {why}", checkpoint.tree_size),
        ));
    }
    if checkpoint.tenant_id != walker.tenant_id {
        return Some((
            FailureReason::TenantMismatch,
            format!("the checkpoint is for tenant {}", checkpoint.tenant_id),
        ));
    }
    if checkpoint.tree_size > walker.size() {
        return Some((
            FailureReason::MissingEntries,
            format!(
                "a checkpoint signed {} entries but the ledger holds {}: entries were removed",
                checkpoint.tree_size,
                walker.size()
            ),
        ));
    }
    if walker.root_mismatch() {
        return Some((
            FailureReason::RootMismatch,
            format!(
                "the Merkle root of the first {} entries differs from the signed checkpoint's {}",
                checkpoint.tree_size, checkpoint.root_hash
            ),
        ));
    }
    None
}

/// Checks a finished walk against the trusted checkpoint (if any): same tenant, no entries
/// removed below its size, and the first `tree_size` entries still have its root. `proof_ok`
/// is the outcome of the RFC 6962 consistency proof from the trusted tree to the walked one
/// (online: built by the store from its nodes; offline there is none, the entries are all
/// there). Its signature is checked before the walk.
pub fn check_trusted(
    walker: &ChainWalker,
    proof_ok: Option<bool>,
) -> Option<(FailureReason, String)> {
    let t = walker.trusted.as_ref()?;
    let what = format!(
        "the trusted checkpoint of size {} (root {}, issued {})",
        t.tree_size,
        t.root_hash,
        crate::scalars::format_utc(t.issued_at)
    );
    if t.tenant_id != walker.tenant_id {
        return Some((
            FailureReason::TenantMismatch,
            format!("{what} is for tenant {}", t.tenant_id),
        ));
    }
    if t.tree_size > walker.size() {
        return Some((
            FailureReason::MissingEntries,
            format!(
                "NOT CONSISTENT WITH THE TRUSTED CHECKPOINT: {what} covers {} entries but the \
                 ledger holds {}: entries were removed after it was issued",
                t.tree_size,
                walker.size()
            ),
        ));
    }
    let entries_root = walker.root_at_trusted.as_deref().unwrap_or_default();
    let entries_differ = entries_root != t.root_hash;
    match (proof_ok, entries_differ) {
        (Some(false), false) => Some((
            FailureReason::StoredTreeMismatch,
            format!(
                "the entries agree with {what}, but the consistency proof built from the stored \
                 Merkle tree from size {} to {} does not verify: the stored tree is wrong",
                t.tree_size,
                walker.size()
            ),
        )),
        (proof, true) => {
            let proof = match proof {
                Some(false) => format!(
                    "the consistency proof from size {} to the current size {} (root {}) does \
                     not verify, and ",
                    t.tree_size,
                    walker.size(),
                    walker.root_hex()
                ),
                _ => String::new(),
            };
            Some((
                FailureReason::RootMismatch,
                format!(
                    "NOT CONSISTENT WITH THE TRUSTED CHECKPOINT: {proof}the first {} entries now \
                     hash to {entries_root}, not to the root of {what}: an entry at or below seq \
                     {} was changed after that checkpoint was issued (even though every hash, \
                     link and current signature may check out: history was rewritten)",
                    t.tree_size, t.tree_size
                ),
            ))
        }
        _ => None,
    }
}

pub(crate) fn record_from_model(m: audit_ledger::Model) -> LedgerEntryRecord {
    LedgerEntryRecord {
        tenant_id: m.tenant_id,
        seq: m.seq,
        prev_hash: m.prev_hash,
        id: m.id,
        event_type: m.event_type,
        entity_type: m.entity_type,
        entity_id: m.entity_id,
        actor_type: m.actor_type,
        actor_id: m.actor_id,
        action_reason: m.action_reason,
        before_state: m.before_state,
        after_state: m.after_state,
        correlation_id: m.correlation_id,
        run_id: m.run_id,
        created_at: m
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        hash_version: m.hash_version,
        entry_hash: m.entry_hash,
    }
}

/// Calls `each` with the tenant's entries in `seq` order, `WALK_BATCH` rows per query; stops
/// early when `each` returns false.
pub(crate) async fn for_each_entry(
    db: &DatabaseConnection,
    tenant: &TenantId,
    up_to: Option<i64>,
    mut each: impl FnMut(LedgerEntryRecord) -> bool,
) -> AppResult<()> {
    let mut after = 0i64;
    loop {
        let mut query = audit_ledger::Entity::find()
            .filter(audit_ledger::Column::TenantId.eq(tenant.as_str()))
            .filter(audit_ledger::Column::Seq.gt(after));
        if let Some(last) = up_to {
            query = query.filter(audit_ledger::Column::Seq.lte(last));
        }
        let rows = query
            .order_by_asc(audit_ledger::Column::Seq)
            .limit(WALK_BATCH)
            .all(db)
            .await?;
        let done = (rows.len() as u64) < WALK_BATCH;
        for row in rows {
            after = row.seq;
            if !each(record_from_model(row)) {
                return Ok(());
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// Verifies the tenant's ledger in the database: every entry, the latest signed checkpoint
/// (signature, size, root) and the stored subtree hashes proofs are served from.
///
/// All of these live in the database: whoever can rewrite it (and read a key kept there) can
/// make this pass. [`verify_tenant_against`] anchors the check in a checkpoint saved outside.
pub async fn verify_tenant(
    db: &DatabaseConnection,
    tenant: &TenantId,
) -> AppResult<VerificationReport> {
    verify_tenant_against(db, tenant, None).await
}

/// [`verify_tenant`], and first of all (after the entries themselves) that the ledger extends
/// `trusted`, a checkpoint the client saved earlier, whose key the caller already pinned (see
/// `super::trusted::check_signature`): its signature verifies, no entry at or below its size
/// was removed, the RFC 6962 consistency proof from its size and root to the current tree
/// verifies, and the entries' own root at its size is its root.
pub async fn verify_tenant_against(
    db: &DatabaseConnection,
    tenant: &TenantId,
    trusted: Option<CheckpointSnapshot>,
) -> AppResult<VerificationReport> {
    let checkpoint = store::latest_checkpoint(db, tenant).await?;
    let mut walker = ChainWalker::new(
        tenant.as_str(),
        checkpoint
            .as_ref()
            .map(|c| (c.tree_size, c.root_hash.clone())),
    );
    if let Some(t) = trusted {
        let signed = t.verify_signature();
        walker.expect_trusted(t);
        if let Err(why) = signed {
            let mut report = walker.report(checkpoint, None);
            report.ok = false;
            report.failure = Some((
                FailureReason::BadSignature,
                format!("the trusted checkpoint's signature: {why}"),
            ));
            return Ok(report);
        }
    }
    let mut bad = None;
    for_each_entry(db, tenant, None, |entry| match walker.check(&entry) {
        Ok(()) => true,
        Err(b) => {
            bad = Some(b);
            false
        }
    })
    .await?;
    if bad.is_some() {
        return Ok(walker.report(checkpoint, bad));
    }
    let mut report = walker.report(checkpoint.clone(), None);
    let proof_ok = match &walker.trusted {
        Some(t) if t.tree_size >= 1 && t.tree_size <= walker.size() => {
            let proof = store::consistency_proof(db, tenant, t.tree_size, walker.size()).await?;
            let path: Option<Vec<merkle::Hash>> =
                proof.path.iter().map(|h| parse_hash(h)).collect();
            Some(
                match (
                    path,
                    parse_hash(&t.root_hash),
                    parse_hash(&walker.root_hex()),
                ) {
                    (Some(path), Some(first), Some(second)) => merkle::verify_consistency(
                        t.tree_size,
                        walker.size(),
                        &first,
                        &second,
                        &path,
                    ),
                    _ => false,
                },
            )
        }
        _ => None,
    };
    let failure = check_trusted(&walker, proof_ok).or_else(|| match &checkpoint {
        Some(c) => check_checkpoint(&walker, c, None),
        None => None,
    });
    let failure = match failure {
        Some(f) => Some(f),
        None if walker.size() > 0 => {
            let stored = hex::encode(store::root_at(db, tenant, walker.size()).await?);
            (stored != walker.root_hex()).then(|| {
                (
                    FailureReason::StoredTreeMismatch,
                    format!(
                        "the stored Merkle tree has root {stored} for {} entries, the entries give {}",
                        walker.size(),
                        walker.root_hex()
                    ),
                )
            })
        }
        None => None,
    };
    if let Some((reason, message)) = failure {
        if reason == FailureReason::MissingEntries {
            report.first_bad_entry = Some(BadEntry {
                seq: walker.size() as i64 + 1,
                entry_id: None,
                reason,
                message: message.clone(),
            });
        }
        report.ok = false;
        report.failure = Some((reason, message));
    }
    Ok(report)
}
