//! `GET /exports/{id}/download`, `/exports/{id}/manifest` and (AUDIT exports)
//! `/exports/{id}/ledger`: stream a completed export's artefact, its manifest or its ledger file
//! from disk in 64 KiB chunks (memory stays flat whatever the size).
//!
//! - `Authorization: Bearer <key>` with read permission; the export is looked up in the key's
//!   tenant only, so another tenant's export gets the same 404 body as a missing one. So does
//!   an export requested before the tenant's read window (docs/api.md §4.1), as `logExport`.
//! - `ETag` is the quoted sha256 hex, `Digest: sha-256=<base64>` the same digest (RFC 3230), of
//!   the whole file; `If-None-Match` gives 304.
//! - One `Range: bytes=…` range gives 206 with `Content-Range`; an unsatisfiable or malformed
//!   range gives 416 with `Content-Range: bytes */<size>`; `If-Range` with another validator
//!   serves the whole file. Several ranges in one request are answered with the whole file.

use std::io::SeekFrom;
use std::path::PathBuf;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sea_orm::sea_query::{Alias, Expr};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::manifest;
use crate::auth::{self, Permission, TenantId};
use crate::error::{AppError, REQUEST_ID};
use crate::exports::{store, ExportStatus};
use crate::state::AppState;

const CHUNK: usize = 64 * 1024;

/// Registers the routes (handed to `app::serve` by `crate::server`).
pub fn routes(cfg: &mut web::ServiceConfig, state: &AppState) {
    cfg.service(
        web::scope("/exports")
            .app_data(web::Data::new(state.clone()))
            .route("/{id}/{file}", web::get().to(export_file)),
    );
}

/// The `export_jobs` column the retention job (`crate::retention`) sets when it deletes an
/// export's files.
pub const ARTEFACT_EXPIRED_MS: &str = "artefact_expired_ms";

/// Whether retention has deleted the files of this tenant's export.
async fn artefact_expired(
    db: &DatabaseConnection,
    tenant: &TenantId,
    export_id: &str,
) -> crate::error::AppResult<bool> {
    use entity::export_jobs::{Column, Entity};
    let expired: Option<Option<i64>> = Entity::find()
        .select_only()
        .expr(Expr::col(Alias::new(ARTEFACT_EXPIRED_MS)))
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::ExportId.eq(export_id))
        .into_tuple()
        .one(db)
        .await?;
    Ok(matches!(expired, Some(Some(_))))
}

/// Which file of an export a route serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Artefact,
    Manifest,
    Ledger,
}

/// The one error body of plain HTTP routes (`AppError::respond`), with the request id.
fn error(status: StatusCode, err: AppError) -> HttpResponse {
    let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
    err.respond(status, &request_id)
}

fn not_found() -> HttpResponse {
    error(StatusCode::NOT_FOUND, AppError::NotFound("export"))
}

fn internal(e: AppError) -> HttpResponse {
    error(e.http_status(), e)
}

/// The caller's tenant (a key that may read), or the error response.
async fn tenant_of(req: &HttpRequest, state: &AppState) -> Result<TenantId, HttpResponse> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    let principal = auth::authenticate(&state.keys, header, Permission::Read)
        .await
        .map_err(internal)?;
    Ok(principal.tenant_id)
}

/// A completed export's file: path, sha256 (hex), MIME type and download name.
struct Served {
    path: PathBuf,
    sha256: String,
    content_type: &'static str,
    name: String,
}

async fn locate(
    req: &HttpRequest,
    state: &AppState,
    export_id: &str,
    which: Which,
) -> Result<Served, HttpResponse> {
    let tenant = tenant_of(req, state).await?;
    let export = store::get(&state.db, &tenant, export_id)
        .await
        .map_err(internal)?
        .ok_or_else(not_found)?;
    // Outside the tenant's read window (on the request time, as `logExport`): as absent as
    // another tenant's. Downloads are rare: the tier is read here, not cached.
    let tier = crate::read_window::TierCache::default()
        .tier(&state.db, &tenant)
        .await
        .map_err(internal)?;
    if export.request.created_at < crate::read_window::start(tier, crate::scalars::now()) {
        return Err(not_found());
    }
    let latest = export.latest();
    if latest.status != ExportStatus::Completed {
        return Err(error(
            StatusCode::CONFLICT,
            AppError::Unavailable(format!(
                "export {export_id} has no artefact yet (status {}); follow exportProgress",
                latest.status.as_str()
            )),
        ));
    }
    let job = crate::exports::jobs::get(&state.db, &tenant, export_id)
        .await
        .map_err(internal)?;
    // Retention deleted the files (docs/retention.md): gone for good, not missing.
    if artefact_expired(&state.db, &tenant, export_id)
        .await
        .map_err(internal)?
    {
        return Err(error(
            StatusCode::GONE,
            AppError::NotFound("export files (deleted by retention)"),
        ));
    }
    let artefact = match job.as_ref().and_then(|j| j.artefact_path.clone()) {
        Some(p) => PathBuf::from(p),
        None => match &job {
            Some(j) => state.config.exports.dir.join(manifest::artefact_name(j)),
            None => return Err(not_found()),
        },
    };
    let format = export.request.format;
    let name_of = |path: &std::path::Path| {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let served = match which {
        Which::Manifest => {
            let path = manifest::manifest_path(&artefact);
            Served {
                name: name_of(&path),
                path,
                sha256: latest.manifest_sha256.clone().unwrap_or_default(),
                content_type: "application/json",
            }
        }
        Which::Artefact => Served {
            name: name_of(&artefact),
            path: artefact,
            sha256: latest.checksum.clone().unwrap_or_default(),
            content_type: manifest::content_type(format),
        },
        Which::Ledger => {
            // The ledger file's digest is in the manifest, whose own digest is on the row.
            let bytes = tokio::fs::read(manifest::manifest_path(&artefact))
                .await
                .map_err(|e| internal(AppError::internal(e)))?;
            let parsed: manifest::Manifest =
                serde_json::from_slice(&bytes).map_err(|e| internal(AppError::internal(e)))?;
            let Some(ledger) = parsed.ledger else {
                // Only AUDIT exports have one.
                return Err(error(
                    StatusCode::NOT_FOUND,
                    AppError::NotFound("ledger file of this export"),
                ));
            };
            let path = manifest::ledger_path(&artefact);
            Served {
                name: name_of(&path),
                path,
                sha256: ledger.file.sha256,
                content_type: "application/x-ndjson",
            }
        }
    };
    Ok(served)
}

/// `GET /exports/{id}/{file}`: `download`, `manifest` or `ledger`.
async fn export_file(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (id, file) = path.into_inner();
    let which = match file.as_str() {
        "download" => Which::Artefact,
        "manifest" => Which::Manifest,
        "ledger" => Which::Ledger,
        _ => return not_found(),
    };
    let request_id = crate::request::request_id_of(&req);
    REQUEST_ID
        .scope(request_id, async {
            match locate(&req, &state, &id, which).await {
                Ok(served) => serve(&req, served).await,
                Err(response) => response,
            }
        })
        .await
}

/// A parsed `Range` header against a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    Whole,
    /// Inclusive byte range.
    Part(u64, u64),
    Unsatisfiable,
}

/// Parses a single `bytes=` range (RFC 9110 14.1.2): `a-b`, `a-`, `-n`.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(value) = header else {
        return RangeRequest::Whole;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Unsatisfiable;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Unsatisfiable;
    };
    let (start, end) = (start.trim(), end.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (start.is_empty(), end.is_empty()) {
        (true, true) => RangeRequest::Unsatisfiable,
        (true, false) => match parse(end) {
            Some(0) | None => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Part(size.saturating_sub(n), size - 1),
        },
        (false, _) => {
            let Some(a) = parse(start) else {
                return RangeRequest::Unsatisfiable;
            };
            let b = if end.is_empty() {
                Some(size.saturating_sub(1))
            } else {
                parse(end)
            };
            match b {
                Some(b) if a < size && a <= b => RangeRequest::Part(a, b.min(size - 1)),
                _ => RangeRequest::Unsatisfiable,
            }
        }
    }
}

async fn serve(req: &HttpRequest, served: Served) -> HttpResponse {
    let mut file = match tokio::fs::File::open(&served.path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %served.path.display(), error = %e, "export file missing");
            return error(
                StatusCode::GONE,
                AppError::NotFound("the export's stored file"),
            );
        }
    };
    let size = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return internal(AppError::internal(e)),
    };
    let etag = format!("\"{}\"", served.sha256);
    let digest = hex::decode(&served.sha256)
        .map(|raw| format!("sha-256={}", STANDARD.encode(raw)))
        .unwrap_or_default();
    let header_str = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let base = |status: StatusCode| {
        let mut b = HttpResponse::build(status);
        b.insert_header((header::ETAG, etag.clone()))
            .insert_header(("Digest", digest.clone()))
            .insert_header((header::ACCEPT_RANGES, "bytes"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", served.name),
            ));
        b
    };
    if header_str(header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return base(StatusCode::NOT_MODIFIED).finish();
    }
    let if_range_ok = header_str(header::IF_RANGE).is_none_or(|v| v.trim() == etag);
    let range = if if_range_ok {
        parse_range(header_str(header::RANGE).as_deref(), size)
    } else {
        RangeRequest::Whole
    };
    let (status, start, len) = match range {
        RangeRequest::Whole => (StatusCode::OK, 0, size),
        RangeRequest::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        RangeRequest::Unsatisfiable => {
            let refused = AppError::bad_input("range", "the requested range is not satisfiable");
            let mut response = error(StatusCode::RANGE_NOT_SATISFIABLE, refused);
            for (name, value) in base(StatusCode::RANGE_NOT_SATISFIABLE).finish().headers() {
                response.headers_mut().insert(name.clone(), value.clone());
            }
            if let Ok(value) = header::HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
    };
    if start > 0 {
        if let Err(e) = file.seek(SeekFrom::Start(start)).await {
            return internal(AppError::internal(e));
        }
    }
    let mut response = base(status);
    response.content_type(served.content_type).no_chunking(len);
    if status == StatusCode::PARTIAL_CONTENT {
        response.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        ));
    }
    let body = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(web::Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    response.streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), RangeRequest::Part(0, 3));
        assert_eq!(parse_range(Some("bytes=4-"), 10), RangeRequest::Part(4, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), RangeRequest::Part(7, 9));
        assert_eq!(
            parse_range(Some("bytes=5-100"), 10),
            RangeRequest::Part(5, 9)
        );
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=5-2"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("items=0-1"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=x-1"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), RangeRequest::Whole);
    }
}
