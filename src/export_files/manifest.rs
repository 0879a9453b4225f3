//! The manifest of an export: what it contains and the digest of every file, as a JSON file
//! next to the artefact (`<artefact name>.manifest.json`, served at `/exports/{id}/manifest`).
//! The manifest's own sha256 is on the completed `log_exports` row and in the audit ledger, so
//! a ledger proof covers the manifest and the manifest covers every byte of the artefact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::formats::FileDigest;
use crate::exports::jobs::JobSnapshot;
use crate::exports::ExportFormat;

pub const MANIFEST_VERSION: u32 = 1;

/// What produced the artefact.
pub fn generator() -> String {
    format!("logbook/{}", env!("CARGO_PKG_VERSION"))
}

/// The column set of a list export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSet {
    pub name: String,
    pub version: u32,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub generator: String,
    pub export_id: String,
    pub tenant_id: String,
    /// `ExportScope` stored value (`llm_runs`, `run_bundle`, ...).
    pub scope: String,
    pub format: String,
    /// The list filter (canonical form) for list scopes.
    pub filter: Option<serde_json::Value>,
    /// The bundle subject (run, trace or incident id) for bundle scopes.
    pub subject: Option<serde_json::Value>,
    /// Watermark: only rows recorded at or before it are in the export.
    pub as_of: String,
    pub requested_at: String,
    pub completed_at: String,
    /// Rows in the artefact (lists) or per member file (bundles).
    pub row_counts: BTreeMap<String, u64>,
    pub column_set: Option<ColumnSet>,
    /// The downloadable file.
    pub artefact: FileDigest,
    /// The files inside a ZIP bundle (digests of their uncompressed bytes).
    #[serde(default)]
    pub files: Vec<FileDigest>,
    /// AUDIT exports: the tenant's ledger file (docs/ledger.md export format), served at
    /// `/exports/{id}/ledger`, for `logbook ledger verify --file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerFile>,
    /// Bundles: the bundle's own content hash over its members ([`bundle_sha256`] of `files`),
    /// also on the export (`LogExport.bundleHash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_sha256: Option<String>,
}

/// The content hash of a bundle: SHA-256 (hex) over its members in canonical order (by name,
/// bytewise), each contributing `<name>\n<sha256 of its uncompressed bytes>\n`. It names what the
/// bundle holds independently of how the ZIP was compressed or laid out.
pub fn bundle_sha256(files: &[FileDigest]) -> String {
    let mut members: Vec<&FileDigest> = files.iter().collect();
    members.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut hasher = Sha256::new();
    for member in members {
        hasher.update(member.name.as_bytes());
        hasher.update(b"\n");
        hasher.update(member.sha256.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// The ledger file of an AUDIT export: the tenant's whole chain up to a signed checkpoint,
/// which covers every exported entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerFile {
    pub file: FileDigest,
    /// Entries in the file, `seq` 1 to `tree_size`; the checkpoint's size.
    pub tree_size: u64,
    /// The signed checkpoint's Merkle root (hex).
    pub root_hash: String,
    /// The ed25519 public key (hex) that signed it; compare with `ledger { publicKey }`.
    pub public_key: String,
}

impl Manifest {
    /// The bytes stored and served: pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// File extension of a format.
pub fn extension(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Json => "json",
        ExportFormat::Ndjson => "ndjson",
        ExportFormat::Csv => "csv",
        ExportFormat::Zip => "zip",
    }
}

/// Name of the artefact file (also its download name).
pub fn artefact_name(job: &JobSnapshot) -> String {
    format!("logbook-export-{}.{}", job.export_id, extension(job.format))
}

/// The manifest file that belongs to an artefact file.
pub fn manifest_path(artefact: &Path) -> PathBuf {
    let mut name = artefact.file_name().unwrap_or_default().to_os_string();
    name.push(".manifest.json");
    artefact.with_file_name(name)
}

/// The ledger file that belongs to an AUDIT export's artefact file.
pub fn ledger_path(artefact: &Path) -> PathBuf {
    let mut name = artefact.file_name().unwrap_or_default().to_os_string();
    name.push(".ledger.ndjson");
    artefact.with_file_name(name)
}

/// MIME type of a format.
pub fn content_type(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Json => "application/json",
        ExportFormat::Ndjson => "application/x-ndjson",
        ExportFormat::Csv => "text/csv; charset=utf-8; header=present",
        ExportFormat::Zip => "application/zip",
    }
}
