//! What `logbook ledger verify|export` do, as library functions (the binary only parses flags):
//! each returns the one-line outcome, or `Err` with the one-line reason the command exits
//! non-zero with (naming the first bad entry when there is one).

use std::io::{BufReader, BufWriter};
use std::path::Path;

use super::export;
use super::signing::{self, LedgerKey};
use super::verify;
use crate::auth::TenantId;
use crate::config::Config;

async fn connect(config: &Config) -> Result<sea_orm::DatabaseConnection, String> {
    let db = crate::db::connect(&config.database)
        .await
        .map_err(|e| e.message())?;
    crate::db::migrate(&db).await.map_err(|e| e.message())?;
    Ok(db)
}

/// Verifies the tenant's ledger in the database.
pub async fn verify_online(config: &Config, tenant: &str) -> Result<String, String> {
    let db = connect(config).await?;
    let report = verify::verify_tenant(&db, &TenantId::trusted(tenant))
        .await
        .map_err(|e| e.message())?;
    let _ = db.close().await;
    if report.ok {
        Ok(report.summary())
    } else {
        Err(report.summary())
    }
}

/// Verifies an exported file against a trusted public key (hex or base64).
pub fn verify_offline(file: &Path, public_key: &str) -> Result<String, String> {
    let key = signing::normalize_public_key(public_key)?;
    let reader = std::fs::File::open(file)
        .map(BufReader::new)
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let report = export::verify_file(reader, &key)?;
    if report.ok {
        Ok(report.summary())
    } else {
        Err(report.summary())
    }
}

/// Writes the tenant's ledger export (NDJSON) to `out`, ending with a signed checkpoint.
pub async fn export(config: &Config, tenant: &str, out: &Path) -> Result<String, String> {
    let db = connect(config).await?;
    let key = LedgerKey::load(&db, config.ledger_signing_key.as_deref())
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
