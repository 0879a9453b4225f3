//! The ledger file of an AUDIT export (issue 4: "audit exports include what offline verify
//! needs"). Next to the artefact, `<artefact>.ledger.ndjson` holds the tenant's whole chain in
//! the ledger export format of docs/ledger.md, ending in a signed checkpoint, so
//! `logbook ledger verify --file F --public-key K` checks it offline and every exported entry
//! (by `id` and `entryHash`) can be found in it. Whole chain, not just the filtered rows: a
//! chain only verifies from `seq` 1.
//!
//! The head is fixed when the file is written, after the export's `asOf`, so every exported
//! entry (created at or before `asOf`) is inside the checkpoint.

use std::io::BufWriter;
use std::path::Path;

use sea_orm::DatabaseConnection;

use super::formats::{FileDigest, HashingWriter};
use super::manifest::{ledger_path, LedgerFile};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::ledger::export::write_tenant;
use crate::ledger::signing::LedgerKey;

/// Writes the ledger file beside `artefact` (through a `.part` file, renamed when complete).
/// `None` when the tenant has no ledger entries yet: there is nothing to verify.
pub async fn write(
    db: &DatabaseConnection,
    key: &LedgerKey,
    tenant: &TenantId,
    artefact: &Path,
    attempt: i32,
) -> AppResult<Option<LedgerFile>> {
    if crate::ledger::store::tree_size(db, tenant).await? == 0 {
        return Ok(None);
    }
    let path = ledger_path(artefact);
    let part = path.with_extension(format!("ndjson.part-{attempt}"));
    let io = |e: std::io::Error| AppError::internal(format!("writing the ledger file: {e}"));
    let file = std::fs::File::create(&part).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, HashingWriter::new(file));
    let written = write_tenant(db, key, tenant, &mut out).await;
    let summary = match written {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    let hashing = out.into_inner().map_err(|e| io(e.into_error()))?;
    let (file, sha256, bytes) = hashing.finish();
    file.sync_all().map_err(io)?;
    std::fs::rename(&part, &path).map_err(io)?;
    Ok(Some(LedgerFile {
        file: FileDigest {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            bytes,
            sha256,
            rows: Some(summary.entries),
        },
        tree_size: summary.checkpoint.tree_size,
        root_hash: summary.checkpoint.root_hash,
        public_key: summary.checkpoint.public_key,
    }))
}
