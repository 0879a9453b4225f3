//! What `logbook ledger verify|export|keygen` do, as library functions (the binary only parses
//! flags): each returns the one-line outcome, or `Err` with the one-line reason the command exits
//! non-zero with (naming the first bad entry, or the first failing check, when there is one).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::export;
use super::signing::{self, LedgerKey};
use super::{trusted, verify};
use crate::auth::TenantId;
use crate::config::Config;

async fn connect(config: &Config) -> Result<sea_orm::DatabaseConnection, String> {
    let db = crate::db::connect(&config.database)
        .await
        .map_err(|e| e.message())?;
    crate::db::migrate(&db).await.map_err(|e| e.message())?;
    Ok(db)
}

fn outcome(report: verify::VerificationReport) -> Result<String, String> {
    if report.ok {
        Ok(report.summary())
    } else {
        Err(report.summary())
    }
}

/// Verifies the tenant's ledger in the database.
pub async fn verify_online(config: &Config, tenant: &str) -> Result<String, String> {
    let db = connect(config).await?;
    let report = verify::verify_tenant(&db, &TenantId::trusted(tenant))
        .await
        .map_err(|e| e.message())?;
    let _ = db.close().await;
    outcome(report)
}

/// Reads a saved checkpoint and checks its signature: by `public_key` (hex or base64) when
/// given, else by the key the checkpoint names.
fn trusted_checkpoint(
    file: &Path,
    tenant: Option<&str>,
    public_key: Option<&str>,
) -> Result<super::CheckpointSnapshot, String> {
    let pinned = public_key.map(signing::normalize_public_key).transpose()?;
    let mut checkpoint = trusted::read(file, tenant)?;
    trusted::check_signature(&mut checkpoint, pinned.as_deref()).map_err(|why| {
        format!(
            "the trusted checkpoint {} is not usable: {why}",
            file.display()
        )
    })?;
    Ok(checkpoint)
}

/// Verifies the tenant's ledger in the database and that it extends a checkpoint the client
/// saved earlier (`trusted_file`), signed by `public_key` when given (else by the key the saved
/// checkpoint names).
pub async fn verify_online_against(
    config: &Config,
    tenant: &str,
    trusted_file: &Path,
    public_key: Option<&str>,
) -> Result<String, String> {
    let checkpoint = trusted_checkpoint(trusted_file, Some(tenant), public_key)?;
    if checkpoint.tenant_id != tenant {
        return Err(format!(
            "the trusted checkpoint {} is for tenant {}, not {tenant}",
            trusted_file.display(),
            checkpoint.tenant_id
        ));
    }
    let db = connect(config).await?;
    let report = verify::verify_tenant_against(&db, &TenantId::trusted(tenant), Some(checkpoint))
        .await
        .map_err(|e| e.message())?;
    let _ = db.close().await;
    outcome(report)
}

/// Verifies an exported file against a trusted public key (hex or base64).
pub fn verify_offline(file: &Path, public_key: &str) -> Result<String, String> {
    verify_offline_against(file, public_key, None)
}

/// [`verify_offline`], and that the file extends the checkpoint saved in `trusted_file` (which
/// must be signed by the same key).
pub fn verify_offline_against(
    file: &Path,
    public_key: &str,
    trusted_file: Option<&Path>,
) -> Result<String, String> {
    let key = signing::normalize_public_key(public_key)?;
    let mut reader = std::fs::File::open(file)
        .map(BufReader::new)
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    // The file's tenant (its header), for a saved checkpoint that does not name its own.
    let mut first = String::new();
    reader
        .read_line(&mut first)
        .map_err(|e| format!("reading {}: {e}", file.display()))?;
    let tenant = match serde_json::from_str(&first) {
        Ok(export::ExportLine::Header { tenant_id, .. }) => Some(tenant_id),
        _ => None,
    };
    let checkpoint = trusted_file
        .map(|t| trusted_checkpoint(t, tenant.as_deref(), Some(&key)))
        .transpose()?;
    let reader = std::io::Cursor::new(first).chain(reader);
    outcome(export::verify_file_against(
        reader,
        &key,
        checkpoint.as_ref(),
    )?)
}

/// Writes the tenant's ledger export (NDJSON) to `out`, ending with a signed checkpoint.
pub async fn export(config: &Config, tenant: &str, out: &Path) -> Result<String, String> {
    let db = connect(config).await?;
    let key = LedgerKey::from_config(&db, config)
        .await
        .map_err(|e| e.message())?;
    let file =
        std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut writer = BufWriter::new(file);
    let summary = export::write_tenant(&db, &key, &TenantId::trusted(tenant), &mut writer)
        .await
        .map_err(|e| e.message())?;
    let _ = db.close().await;
    Ok(format!(
        "exported {} entries of tenant {tenant} to {}; checkpoint root {} signed by {}",
        summary.entries,
        out.display(),
        summary.checkpoint.root_hash,
        summary.checkpoint.public_key
    ))
}

/// Creates a new signing key file at `out` (which must not exist; mode 600 on unix) and returns
/// its public key, hex.
pub fn keygen(out: &Path) -> Result<String, String> {
    let seed = LedgerKey::generate_seed_hex()?;
    let key = LedgerKey::parse(&seed)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(out)
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    writeln!(file, "{seed}")
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(key.public_key_hex())
}
