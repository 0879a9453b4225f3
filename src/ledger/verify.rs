//! Whole-chain verification: recompute every entry hash and link in `seq` order, rebuild the
//! Merkle root alongside, and compare it with a signed checkpoint. The same walker checks the
//! live database (`ledger { verify }`, `logbook ledger verify --tenant`) and an exported file
//! (`logbook ledger verify --file --public-key`), and stops at the first bad entry.

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
    pub failure: Option<(FailureReason, String)>,
    pub first_bad_entry: Option<BadEntry>,
}

impl VerificationReport {
    /// One line for the command line.
    pub fn summary(&self) -> String {
        match (&self.failure, &self.first_bad_entry) {
            (None, _) => format!(
                "ledger of tenant {} is valid: {} entries, root {}{}",
                self.tenant_id,
                self.entries_checked,
                self.root_hash,
                self.checkpoint.as_ref().map_or(String::new(), |c| format!(
                    ", signed checkpoint of size {} verified",
                    c.tree_size
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
}

impl ChainWalker {
    pub fn new(tenant_id: &str, expect_root: Option<(u64, String)>) -> Self {
        ChainWalker {
            tenant_id: tenant_id.to_owned(),
            prev_hash: GENESIS_PREV_HASH.to_owned(),
            builder: TreeBuilder::default(),
            expect_root,
            root_mismatch: false,
        }
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
pub async fn verify_tenant(
    db: &DatabaseConnection,
    tenant: &TenantId,
) -> AppResult<VerificationReport> {
    let checkpoint = store::latest_checkpoint(db, tenant).await?;
    let mut walker = ChainWalker::new(
        tenant.as_str(),
        checkpoint
            .as_ref()
            .map(|c| (c.tree_size, c.root_hash.clone())),
    );
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
    let failure = match &checkpoint {
        Some(c) => check_checkpoint(&walker, c, None),
        None => None,
    };
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
