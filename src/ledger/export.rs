//! The ledger export format (docs/ledger.md): NDJSON, one header line, one line per entry with
//! every hashed field in `seq` order, and a final signed checkpoint covering exactly those
//! entries. `logbook ledger export` writes it, `logbook ledger verify --file` reads it, and
//! AUDIT exports can embed the same lines through the `pub` functions here.

use std::io::{BufRead, Write};

use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::signing::{self, LedgerKey};
use super::verify::{self, BadEntry, ChainWalker, FailureReason, VerificationReport};
use super::{store, CheckpointSnapshot};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};

pub const FORMAT: &str = "logbook-ledger-export";
pub const VERSION: u32 = 1;

/// One audit entry with every field its hash covers, as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntryRecord {
    pub tenant_id: String,
    pub seq: i64,
    pub prev_hash: String,
    pub id: String,
    pub event_type: String,
    pub entity_type: String,
    pub entity_id: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action_reason: Option<String>,
    pub before_state: Option<Value>,
    pub after_state: Option<Value>,
    pub correlation_id: Option<String>,
    pub run_id: Option<String>,
    /// RFC 3339 UTC with six fractional digits and `Z`, exactly as hashed.
    pub created_at: String,
    pub hash_version: i32,
    pub entry_hash: String,
}

/// The final line: a signed checkpoint of the exported entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    pub algorithm: String,
    pub tenant_id: String,
    pub tree_size: u64,
    pub root_hash: String,
    pub issued_at: String,
    pub public_key: String,
    pub signature: String,
    /// The exact signed text, for convenience; verifiers rebuild it from the fields.
    pub signed_message: String,
}

/// Any line of the file, tagged by `"type"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    Header {
        format: String,
        version: u32,
        tenant_id: String,
        hash_version: i32,
    },
    Entry(Box<LedgerEntryRecord>),
    Checkpoint(CheckpointRecord),
}

fn to_line(line: &ExportLine) -> String {
    // Serializing plain strings, numbers and JSON values cannot fail.
    serde_json::to_string(line).unwrap_or_default()
}

pub fn header_line(tenant_id: &str) -> String {
    to_line(&ExportLine::Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        tenant_id: tenant_id.to_owned(),
        hash_version: crate::audit::chain::HASH_VERSION,
    })
}

pub fn entry_line(entry: &LedgerEntryRecord) -> String {
    to_line(&ExportLine::Entry(Box::new(entry.clone())))
}

pub fn checkpoint_line(checkpoint: &CheckpointSnapshot) -> String {
    to_line(&ExportLine::Checkpoint(CheckpointRecord {
        algorithm: signing::ALGORITHM.to_owned(),
        tenant_id: checkpoint.tenant_id.clone(),
        tree_size: checkpoint.tree_size,
        root_hash: checkpoint.root_hash.clone(),
        issued_at: checkpoint
            .issued_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        public_key: checkpoint.public_key.clone(),
        signature: checkpoint.signature.clone(),
        signed_message: checkpoint.signed_message(),
    }))
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub entries: u64,
    pub checkpoint: CheckpointSnapshot,
}

/// Writes the tenant's whole ledger as of now: the head is fixed first, signed (or its
/// checkpoint reused), then entries `1..=size` stream out, then the checkpoint line.
pub async fn write_tenant(
    db: &DatabaseConnection,
    key: &LedgerKey,
    tenant: &TenantId,
    out: &mut impl Write,
) -> AppResult<ExportSummary> {
    let size = store::tree_size(db, tenant).await?;
    if size == 0 {
        return Err(AppError::NotFound("ledger entries of this tenant"));
    }
    let checkpoint = store::checkpoint(db, key, tenant, size).await?;
    let io = |e: std::io::Error| AppError::internal(format!("writing the export: {e}"));
    writeln!(out, "{}", header_line(tenant.as_str())).map_err(io)?;
    let mut written = 0u64;
    let mut failed = None;
    verify::for_each_entry(db, tenant, Some(size as i64), |entry| {
        match writeln!(out, "{}", entry_line(&entry)) {
            Ok(()) => {
                written += 1;
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })
    .await?;
    if let Some(e) = failed {
        return Err(io(e));
    }
    writeln!(out, "{}", checkpoint_line(&checkpoint)).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(ExportSummary {
        entries: written,
        checkpoint,
    })
}

fn malformed(tenant: &str, message: String) -> VerificationReport {
    ChainWalker::new(tenant, None)
        .report(None, None)
        .with_failure(message)
}

impl VerificationReport {
    fn with_failure(mut self, message: String) -> Self {
        self.ok = false;
        self.failure = Some((FailureReason::MalformedExport, message));
        self
    }
}

/// Verifies an exported file against a trusted public key (hex): every entry's hash and link,
/// then the final checkpoint's key, signature, size and root. `Err` only when the file cannot
/// be read at all.
pub fn verify_file(
    reader: impl BufRead,
    trusted_public_key_hex: &str,
) -> Result<VerificationReport, String> {
    verify_file_against(reader, trusted_public_key_hex, None)
}

/// [`verify_file`], and (after the entries themselves) that the file extends `trusted`, a
/// checkpoint the client saved earlier and already checked against the same key (see
/// `super::trusted`): the file's first `tree_size` entries must have its root.
pub fn verify_file_against(
    reader: impl BufRead,
    trusted_public_key_hex: &str,
    trusted: Option<&CheckpointSnapshot>,
) -> Result<VerificationReport, String> {
    if let Some(t) = trusted {
        let problem = if !t.public_key.eq_ignore_ascii_case(trusted_public_key_hex) {
            Some(format!(
                "the trusted checkpoint is signed by key {}, not by the trusted key {}",
                t.public_key, trusted_public_key_hex
            ))
        } else {
            t.verify_signature()
                .err()
                .map(|why| format!("the trusted checkpoint's signature: {why}"))
        };
        if let Some(message) = problem {
            let mut report = ChainWalker::new(&t.tenant_id, None).report(None, None);
            report.ok = false;
            report.failure = Some((FailureReason::BadSignature, message));
            return Ok(report);
        }
    }
    let start = |tenant: &str| {
        let mut w = ChainWalker::new(tenant, None);
        if let Some(t) = trusted {
            w.expect_trusted(t.clone());
        }
        w
    };
    let mut walker: Option<ChainWalker> = None;
    let mut tenant = String::new();
    let mut checkpoint: Option<CheckpointSnapshot> = None;
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("reading line {}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        if checkpoint.is_some() {
            return Ok(malformed(
                &tenant,
                format!("line {}: nothing may follow the checkpoint line", n + 1),
            ));
        }
        let parsed: ExportLine = match serde_json::from_str(&line) {
            Ok(parsed) => parsed,
            Err(e) => {
                return Ok(malformed(
                    &tenant,
                    format!("line {} is not a ledger export record: {e}", n + 1),
                ))
            }
        };
        match parsed {
            ExportLine::Header {
                format, tenant_id, ..
            } => {
                if format != FORMAT || walker.is_some() {
                    return Ok(malformed(
                        &tenant_id,
                        format!("line {}: unexpected header", n + 1),
                    ));
                }
                tenant.clone_from(&tenant_id);
                walker = Some(start(&tenant_id));
            }
            ExportLine::Entry(entry) => {
                let w = walker.get_or_insert_with(|| {
                    tenant.clone_from(&entry.tenant_id);
                    start(&entry.tenant_id)
                });
                if let Err(bad) = w.check(&entry) {
                    return Ok(w.report(None, Some(bad)));
                }
            }
            ExportLine::Checkpoint(c) => {
                let issued_at = match chrono::DateTime::parse_from_rfc3339(&c.issued_at) {
                    Ok(at) => at.with_timezone(&chrono::Utc),
                    Err(_) => {
                        return Ok(malformed(
                            &tenant,
                            format!("line {}: issued_at is not RFC 3339", n + 1),
                        ))
                    }
                };
                checkpoint = Some(CheckpointSnapshot {
                    id: String::new(),
                    tenant_id: c.tenant_id,
                    tree_size: c.tree_size,
                    root_hash: c.root_hash,
                    public_key: c.public_key,
                    signature: c.signature,
                    issued_at,
                });
            }
        }
    }
    let walker = walker.unwrap_or_else(|| start(&tenant));
    let Some(checkpoint) = checkpoint else {
        return Ok(walker
            .report(None, None)
            .with_failure("the file ends without a signed checkpoint line".into()));
    };
    let mut report = walker.report(Some(checkpoint.clone()), None);
    let failure = if let Some(found) = verify::check_trusted(&walker, None) {
        Some(found)
    } else if checkpoint.tree_size < walker.size() {
        Some((
            FailureReason::MalformedExport,
            format!(
                "the checkpoint covers {} entries but the file holds {}",
                checkpoint.tree_size,
                walker.size()
            ),
        ))
    } else if let Some(found) =
        verify::check_checkpoint(&walker, &checkpoint, Some(trusted_public_key_hex))
    {
        Some(found)
    } else if checkpoint.root_hash != walker.root_hex() {
        Some((
            FailureReason::RootMismatch,
            format!(
                "the entries' Merkle root {} differs from the signed root {}",
                walker.root_hex(),
                checkpoint.root_hash
            ),
        ))
    } else {
        None
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
