//! `logbook export verify FILE`: recomputes an export's digests against its manifest, offline.
//!
//! FILE is the downloaded artefact (its manifest is `FILE.manifest.json` beside it, as
//! `/exports/{id}/manifest` names it) or the manifest itself (the artefact is the file the
//! manifest names, beside it). Checked: the artefact's size and sha256; for a ZIP bundle, every
//! member's size and sha256 and that no member is missing or extra. The manifest's own sha256
//! is printed to compare with `LogExport.manifestSha256` and the audit ledger.
//!
//! An AUDIT export also has a ledger file (`/exports/{id}/ledger`, beside the artefact): its
//! digest is checked against the manifest. With `--public-key K` the ledger file is verified
//! as `logbook ledger verify --file` does (every hash and link, the signed checkpoint), and
//! every exported entry of an NDJSON or JSON artefact must be in it with the same `seq` and
//! `entryHash`, so the export is shown to be a faithful slice of the signed ledger.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::{bundle_sha256, manifest_path, sha256_hex, Manifest};

/// What a successful verification checked.
#[derive(Debug)]
pub struct Verified {
    pub manifest_path: PathBuf,
    pub manifest_sha256: String,
    pub artefact_path: PathBuf,
    pub artefact_sha256: String,
    pub members: usize,
    pub rows: u64,
    /// AUDIT exports: what was checked of the ledger file.
    pub ledger: Option<LedgerChecked>,
}

/// The checks made on an AUDIT export's ledger file.
#[derive(Debug)]
pub struct LedgerChecked {
    pub path: PathBuf,
    pub tree_size: u64,
    /// With a trusted key: the ledger verification's summary line.
    pub signature: Option<String>,
    /// With a trusted key, NDJSON and JSON artefacts: exported entries found in the ledger.
    pub rows_matched: Option<u64>,
}

fn digest_reader(mut reader: impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// Verifies `file` (artefact or manifest). The error names the first mismatch.
pub fn verify(
    file: &Path,
    manifest_override: Option<&Path>,
    public_key: Option<&str>,
) -> Result<Verified, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    // Only a manifest is read whole; an artefact may be gigabytes.
    let is_manifest = file
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".manifest.json"));
    let given = if manifest_override.is_none() && is_manifest {
        read(file)?
    } else {
        Vec::new()
    };
    let parsed_given = serde_json::from_slice::<Manifest>(&given).ok();
    let (manifest_file, manifest_bytes, artefact_file) = match (manifest_override, parsed_given) {
        (Some(m), _) => (m.to_path_buf(), read(m)?, file.to_path_buf()),
        (None, Some(_)) => {
            let manifest: Manifest = serde_json::from_slice(&given)
                .map_err(|e| format!("{}: not a manifest: {e}", file.display()))?;
            let artefact = file.with_file_name(&manifest.artefact.name);
            (file.to_path_buf(), given, artefact)
        }
        (None, None) => {
            let m = manifest_path(file);
            let bytes = read(&m).map_err(|e| {
                format!("{e} (download it from /exports/<id>/manifest next to the artefact)")
            })?;
            (m, bytes, file.to_path_buf())
        }
    };
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| format!("{}: not a manifest: {e}", manifest_file.display()))?;
    let manifest_sha256 = sha256_hex(&manifest_bytes);

    let f = File::open(&artefact_file)
        .map_err(|e| format!("cannot read {}: {e}", artefact_file.display()))?;
    let (sha, bytes) = digest_reader(BufReader::new(f))
        .map_err(|e| format!("cannot read {}: {e}", artefact_file.display()))?;
    if bytes != manifest.artefact.bytes {
        return Err(format!(
            "mismatch: {} is {bytes} bytes, the manifest says {}",
            artefact_file.display(),
            manifest.artefact.bytes
        ));
    }
    if sha != manifest.artefact.sha256 {
        return Err(format!(
            "mismatch: sha256 of {} is {sha}, the manifest says {}",
            artefact_file.display(),
            manifest.artefact.sha256
        ));
    }
    if !manifest.files.is_empty() {
        let f = File::open(&artefact_file).map_err(|e| e.to_string())?;
        let mut archive = zip::ZipArchive::new(BufReader::new(f))
            .map_err(|e| format!("{}: not a readable ZIP: {e}", artefact_file.display()))?;
        if archive.len() != manifest.files.len() {
            return Err(format!(
                "mismatch: the archive has {} members, the manifest lists {}",
                archive.len(),
                manifest.files.len()
            ));
        }
        for expected in &manifest.files {
            let member = archive
                .by_name(&expected.name)
                .map_err(|_| format!("mismatch: member {} is missing", expected.name))?;
            let (sha, bytes) = digest_reader(member)
                .map_err(|e| format!("member {}: cannot read: {e}", expected.name))?;
            if sha != expected.sha256 || bytes != expected.bytes {
                return Err(format!(
                    "mismatch: member {} has sha256 {sha} ({bytes} bytes), the manifest says {} ({} bytes)",
                    expected.name, expected.sha256, expected.bytes
                ));
            }
        }
    }
    // The members just checked make up the bundle hash the manifest states.
    if let Some(stated) = &manifest.bundle_sha256 {
        let computed = bundle_sha256(&manifest.files);
        if *stated != computed {
            return Err(format!(
                "mismatch: the bundle hash of the members is {computed}, the manifest says {stated}"
            ));
        }
    }
    let ledger = match &manifest.ledger {
        Some(ledger) => Some(check_ledger(&manifest, ledger, &artefact_file, public_key)?),
        None if public_key.is_some() => {
            return Err(
                "--public-key checks an AUDIT export's ledger file; this export has none".into(),
            )
        }
        None => None,
    };
    Ok(Verified {
        manifest_path: manifest_file,
        manifest_sha256,
        artefact_path: artefact_file,
        artefact_sha256: sha,
        members: manifest.files.len(),
        rows: manifest.row_counts.values().sum(),
        ledger,
    })
}

fn check_ledger(
    manifest: &Manifest,
    ledger: &super::manifest::LedgerFile,
    artefact: &Path,
    public_key: Option<&str>,
) -> Result<LedgerChecked, String> {
    let path = artefact.with_file_name(&ledger.file.name);
    let f = File::open(&path).map_err(|e| {
        format!(
            "cannot read {}: {e} (download it from /exports/{}/ledger next to the artefact)",
            path.display(),
            manifest.export_id
        )
    })?;
    let (sha, bytes) =
        digest_reader(BufReader::new(f)).map_err(|e| format!("{}: {e}", path.display()))?;
    if sha != ledger.file.sha256 || bytes != ledger.file.bytes {
        return Err(format!(
            "mismatch: the ledger file {} has sha256 {sha} ({bytes} bytes), the manifest says {} ({} bytes)",
            path.display(),
            ledger.file.sha256,
            ledger.file.bytes
        ));
    }
    let mut checked = LedgerChecked {
        path,
        tree_size: ledger.tree_size,
        signature: None,
        rows_matched: None,
    };
    if let Some(key) = public_key {
        checked.signature = Some(crate::ledger::cli::verify_offline(&checked.path, key)?);
        checked.rows_matched = match manifest.format.as_str() {
            "ndjson" | "json" => Some(match_rows(&checked.path, artefact, &manifest.format)?),
            _ => None,
        };
    }
    Ok(checked)
}

/// Every exported entry (`seq`, `entryHash`) must be the ledger file's entry at that `seq`.
fn match_rows(ledger: &Path, artefact: &Path, format: &str) -> Result<u64, String> {
    use crate::ledger::export::ExportLine;
    let mut hashes: HashMap<i64, String> = HashMap::new();
    let f = File::open(ledger).map_err(|e| format!("{}: {e}", ledger.display()))?;
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|e| format!("{}: {e}", ledger.display()))?;
        if let Ok(ExportLine::Entry(entry)) = serde_json::from_str::<ExportLine>(&line) {
            hashes.insert(entry.seq, entry.entry_hash);
        }
    }
    let check = |row: &serde_json::Value| -> Result<(), String> {
        let seq = row["seq"].as_i64();
        let hash = row["entryHash"].as_str();
        let (Some(seq), Some(hash)) = (seq, hash) else {
            return Err(format!(
                "{}: a row without seq and entryHash: {row}",
                artefact.display()
            ));
        };
        match hashes.get(&seq) {
            Some(h) if h == hash => Ok(()),
            Some(h) => Err(format!(
                "mismatch: exported entry seq {seq} has entryHash {hash}, the signed ledger has {h}"
            )),
            None => Err(format!(
                "mismatch: exported entry seq {seq} is not in the signed ledger file"
            )),
        }
    };
    let f = File::open(artefact).map_err(|e| format!("{}: {e}", artefact.display()))?;
    let mut n = 0u64;
    if format == "json" {
        let rows: Vec<serde_json::Value> = serde_json::from_reader(BufReader::new(f))
            .map_err(|e| format!("{}: not a JSON array: {e}", artefact.display()))?;
        for row in &rows {
            check(row)?;
            n += 1;
        }
    } else {
        for line in BufReader::new(f).lines() {
            let line = line.map_err(|e| format!("{}: {e}", artefact.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let row: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| format!("{}: not NDJSON: {e}", artefact.display()))?;
            check(&row)?;
            n += 1;
        }
    }
    Ok(n)
}
