//! `logbook export verify FILE`: recomputes an export's digests against its manifest, offline.
//!
//! FILE is the downloaded artefact (its manifest is `FILE.manifest.json` beside it, as
//! `/exports/{id}/manifest` names it) or the manifest itself (the artefact is the file the
//! manifest names, beside it). Checked: the artefact's size and sha256; for a ZIP bundle, every
//! member's size and sha256 and that no member is missing or extra. The manifest's own sha256
//! is printed to compare with `LogExport.manifestSha256` and the audit ledger.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::{manifest_path, sha256_hex, Manifest};

/// What a successful verification checked.
#[derive(Debug)]
pub struct Verified {
    pub manifest_path: PathBuf,
    pub manifest_sha256: String,
    pub artefact_path: PathBuf,
    pub artefact_sha256: String,
    pub members: usize,
    pub rows: u64,
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
pub fn verify(file: &Path, manifest_override: Option<&Path>) -> Result<Verified, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let given = read(file)?;
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
    Ok(Verified {
        manifest_path: manifest_file,
        manifest_sha256,
        artefact_path: artefact_file,
        artefact_sha256: sha,
        members: manifest.files.len(),
        rows: manifest.row_counts.values().sum(),
    })
}
