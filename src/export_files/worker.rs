//! The export worker: one tokio task per server process that claims due jobs and produces
//! their artefacts.
//!
//! List scopes stream from the database in keyset batches over the same filtered select as the
//! list (`(created_at, id)` descending, `created_at <= asOf`), so the export holds exactly what
//! the console's list showed, in the same order. A blocking writer thread encodes each batch and
//! writes it through the hashing writer while the next batch is fetched; at most a few batches
//! are in memory at any time. The worker uses its own small connection pool, so its polling
//! never shows up in the server's per-request statement counters.
//!
//! Partial files: an attempt writes `<file>.part-<attempt>` and renames it when complete. Its
//! [`PartFiles`] guard removes whatever of them is left when the attempt ends, however it ends
//! (an error, a panic, the task aborted). A process killed outright runs no destructor, so every
//! worker also sweeps the export directory when it starts and every `sweep_interval`: a partial
//! file whose attempt is not the live leased attempt of its job is deleted. Several processes
//! share the directory, so a file of an attempt whose lease is still live is never touched, nor
//! one whose job this database does not know.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, IntoIden};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, QueryTrait, Select, TransactionTrait,
};
use tokio::sync::Notify;

use super::bundle::BundleSubject;
use super::columns::COLUMN_SET_VERSION;
use super::formats::{Encoder, ExportRow, FileDigest, HashingWriter};
use super::manifest::{self, ColumnSet, Manifest};
use super::{ExportRequest, ExportSubject};
use crate::audit::append::{append_entry, NewAuditEntry};
use crate::audit::store::AuditList;
use crate::audit::{ActorType, AuditEntityType, AuditEventType};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::exports::jobs::{self, Claimed, Completion, JobSnapshot, JobStage, Progress};
use crate::ledger::signing::LedgerKey;
use crate::pagination::Listed;
use crate::pagination::Position;
use crate::runs::store::RunList;
use crate::state::AppState;
use crate::system::store::SystemList;
use crate::traces::store::TraceList;

static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Wakes this process's idle workers (a job was just created).
pub fn wake() {
    WAKE.notify_waiters();
}

/// Starts the worker of this process, unless disabled in the settings.
/// Starts this process's export worker (none when `Config::exports.worker` is off); it signs
/// audit-export ledger files with `ledger_key`.
/// The worker task; it ends by itself once `AppState::shutdown` is triggered, having handed
/// back the job it held.
pub fn spawn(state: AppState, ledger_key: LedgerKey) -> Option<tokio::task::JoinHandle<()>> {
    if !state.config.exports.worker {
        return None;
    }
    Some(tokio::spawn(run(state, ledger_key)))
}

async fn run(state: AppState, ledger_key: LedgerKey) {
    let worker = format!(
        "worker-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut settings = state.config.database.clone();
    settings.max_connections = 4;
    let shutdown = state.shutdown.clone();
    let db = loop {
        if shutdown.is_triggered() {
            return;
        }
        match crate::db::connect(&settings).await {
            Ok(db) => break db,
            Err(e) => {
                tracing::warn!(error = %e.message(), "export worker cannot connect; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    };
    let lease = state.config.exports.lease_ttl;
    let dir = state.config.exports.dir.clone();
    let mut swept_at: Option<Instant> = None;
    loop {
        if swept_at.is_none_or(|at| at.elapsed() >= state.config.exports.sweep_interval) {
            swept_at = Some(Instant::now());
            match sweep_partial_files(&db, &dir).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(files = n, "removed partial export files of dead attempts"),
                Err(e) => {
                    tracing::warn!(error = %e.message(), "sweeping partial export files failed")
                }
            }
        }
        let woken = WAKE.notified();
        match jobs::claim(&db, &worker, lease).await {
            Ok(Some(Claimed::Job(job))) => {
                let held = (*job).clone();
                tokio::select! {
                    _ = run_attempt(&state, &ledger_key, &db, &worker, *job) => continue,
                    // Dropping the attempt removes its partial files.
                    _ = shutdown.triggered() => {
                        match jobs::release(&db, &held, &worker).await {
                            Ok(true) => tracing::info!(export_id = %held.export_id, "handed an export job back for another process"),
                            Ok(false) => {}
                            Err(e) => tracing::warn!(error = ?e, "handing an export job back failed; its lease will expire"),
                        }
                        let tenant = TenantId::trusted(held.tenant_id.clone());
                        state.events.publish(Topic::ExportProgress, &tenant).await;
                        return;
                    }
                }
            }
            Ok(Some(Claimed::Exhausted)) => continue,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = ?e, "claiming an export job failed"),
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(state.config.exports.poll_interval) => {}
            _ = shutdown.triggered() => return,
        }
    }
}

/// Why an attempt stopped early.
pub(super) enum Stop {
    /// Another worker owns the job now, or it was cancelled: leave it alone.
    LeaseLost,
    /// The job was cancelled (seen between batches).
    Cancelled,
    /// The attempt failed. `retryable`: whether another attempt could succeed (I/O and
    /// database errors) or not (the subject is gone, the request is invalid); a job whose
    /// attempt failed for good is failed at once, whatever attempts remain.
    Failed { message: String, retryable: bool },
}

impl Stop {
    /// A failure no retry can cure.
    pub(super) fn fatal(message: impl Into<String>) -> Self {
        Stop::Failed {
            message: message.into(),
            retryable: false,
        }
    }
}

impl From<AppError> for Stop {
    /// What the request names cannot change between attempts (`NOT_FOUND`, `BAD_USER_INPUT`);
    /// anything else (the database unavailable, an internal error) may be transient.
    fn from(e: AppError) -> Self {
        let retryable = !matches!(e, AppError::NotFound(_) | AppError::BadUserInput { .. });
        Stop::Failed {
            message: describe(&e),
            retryable,
        }
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        tracing::error!(error = %e, "export file I/O failed");
        Stop::Failed {
            message: format!("writing the artefact failed: {}", e.kind()),
            retryable: true,
        }
    }
}

/// A message safe to show the tenant (internal causes go to the log only).
fn describe(e: &AppError) -> String {
    match e {
        AppError::Internal(cause) => {
            tracing::error!(cause = %cause, "export attempt failed");
            "internal error (see the server log)".to_owned()
        }
        other => other.message(),
    }
}

/// One attempt: produce, then complete or record the failure.
async fn run_attempt(
    state: &AppState,
    ledger_key: &LedgerKey,
    db: &DatabaseConnection,
    worker: &str,
    job: JobSnapshot,
) {
    // Dropped last: after the failure is recorded, or when this future is dropped mid-way.
    let _parts = PartFiles::of(&state.config.exports.dir, &job);
    let tenant = TenantId::trusted(job.tenant_id.clone());
    state.events.publish(Topic::ExportProgress, &tenant).await;
    let started = Instant::now();
    let mut attempt = Attempt {
        state,
        ledger_key,
        db,
        worker,
        job: &job,
        tenant: tenant.clone(),
        started,
        last_beat: None,
    };
    let outcome = match attempt.produce().await {
        Ok(done) => attempt.finish(done).await,
        Err(stop) => Err(stop),
    };
    match outcome {
        Ok(()) => {}
        Err(Stop::LeaseLost | Stop::Cancelled) => {
            match jobs::is_cancelled(db, &job.export_id).await {
                Ok(true) => {
                    tracing::info!(export_id = %job.export_id, "export cancelled; its attempt stopped");
                    // A cancellation that came between the artefact's rename and the completion
                    // leaves finished files no export owns.
                    remove_finished_files(&state.config.exports.dir, &job).await;
                }
                Ok(false) => {
                    tracing::warn!(export_id = %job.export_id, "lost the lease of an export job; leaving it")
                }
                Err(e) => tracing::warn!(error = ?e, "reading an export job's state failed"),
            }
        }
        Err(Stop::Failed { message, retryable }) => {
            let duration = started.elapsed().as_millis() as i64;
            match jobs::fail_attempt(db, &job, worker, &message, retryable, duration).await {
                Ok(_) => {}
                Err(e) => tracing::error!(error = ?e, "recording a failed export attempt failed"),
            }
        }
    }
    state.events.publish(Topic::ExportProgress, &tenant).await;
}

/// What an attempt produced before it is recorded.
pub(super) struct Produced {
    pub(super) artefact: FileDigest,
    pub(super) files: Vec<FileDigest>,
    pub(super) row_counts: std::collections::BTreeMap<String, u64>,
    pub(super) column_set: Option<ColumnSet>,
    pub(super) path: PathBuf,
    pub(super) rows: u64,
    /// Bundles: the completeness JSON of `evidence.json` (the hash is computed from `files`).
    pub(super) completeness: Option<serde_json::Value>,
}

pub(super) struct Attempt<'a> {
    state: &'a AppState,
    ledger_key: &'a LedgerKey,
    pub(super) db: &'a DatabaseConnection,
    worker: &'a str,
    pub(super) job: &'a JobSnapshot,
    pub(super) tenant: TenantId,
    started: Instant,
    last_beat: Option<Instant>,
}

/// ETA of docs/domain.md §10.2: `(100 − pct) / (pct / elapsed)`, none before any progress.
pub fn eta_seconds(percent: f64, elapsed_secs: f64) -> Option<i64> {
    if percent <= 0.0 || elapsed_secs <= 0.0 {
        return None;
    }
    let eta = (100.0 - percent) / (percent / elapsed_secs);
    eta.is_finite().then_some(eta as i64)
}

impl Attempt<'_> {
    pub(super) fn dir(&self) -> &Path {
        &self.state.config.exports.dir
    }

    fn settings(&self) -> &crate::config::ExportSettings {
        &self.state.config.exports
    }

    pub(super) fn batch_size(&self) -> u64 {
        std::cmp::max(self.settings().batch_size, 1)
    }

    /// Records progress (at most every half second unless `force`), renewing the lease, and
    /// wakes `exportProgress` subscribers.
    pub(super) async fn progress(
        &mut self,
        stage: JobStage,
        done: u64,
        total: Option<u64>,
        force: bool,
    ) -> Result<(), Stop> {
        let beat_every = std::time::Duration::from_millis(500).min(self.settings().lease_ttl / 3);
        if !force && self.last_beat.is_some_and(|at| at.elapsed() < beat_every) {
            return Ok(());
        }
        self.last_beat = Some(Instant::now());
        let percent = match total {
            Some(0) => 100.0,
            Some(t) => done as f64 / t as f64 * 100.0,
            None => 0.0,
        };
        let p = Progress {
            stage,
            percent,
            eta_seconds: eta_seconds(percent, self.started.elapsed().as_secs_f64()),
            rows_done: done as i64,
            rows_total: total.map(|t| t as i64),
        };
        match jobs::heartbeat(
            self.db,
            &self.job.export_id,
            self.worker,
            self.settings().lease_ttl,
            &p,
        )
        .await?
        {
            Ok(()) => {}
            Err(jobs::LeaseLost) => return Err(Stop::LeaseLost),
        }
        self.state
            .events
            .publish(Topic::ExportProgress, &self.tenant)
            .await;
        Ok(())
    }

    /// After each batch: stops if the job was cancelled (from any process: the job row says
    /// so), then the test hooks (injected failure, pause).
    pub(super) async fn after_batch(&self) -> Result<(), Stop> {
        if jobs::is_cancelled(self.db, &self.job.export_id).await? {
            return Err(Stop::Cancelled);
        }
        let settings = self.settings();
        if self.job.attempt as u32 <= settings.fail_first_attempts {
            return Err(Stop::Failed {
                message: format!(
                    "injected failure of attempt {} (test hook)",
                    self.job.attempt
                ),
                retryable: true,
            });
        }
        if !settings.batch_delay.is_zero() {
            tokio::time::sleep(settings.batch_delay).await;
        }
        Ok(())
    }

    async fn produce(&mut self) -> Result<Produced, Stop> {
        tokio::fs::create_dir_all(self.dir()).await?;
        self.progress(JobStage::Starting, 0, None, true).await?;
        let as_of = self.job.as_of;
        // A request this version cannot read will not read better on the next attempt.
        let request = ExportRequest::of(self.job).map_err(|e| Stop::fatal(describe(&e)))?;
        match request.subject {
            ExportSubject::LlmRuns { filter } => self.list::<RunList>("llm_runs", &filter).await,
            ExportSubject::SystemRecords { filter } => {
                self.list::<SystemList>("system_records", &filter).await
            }
            ExportSubject::Audit { filter } => self.list::<AuditList>("audit", &filter).await,
            ExportSubject::Traces { filter } => self.list::<TraceList>("traces", &filter).await,
            ExportSubject::RunBundle { run_id } => {
                self.bundle(BundleSubject::Run(run_id), as_of).await
            }
            ExportSubject::TraceBundle { trace_id } => {
                self.bundle(BundleSubject::Trace(trace_id), as_of).await
            }
            ExportSubject::IncidentBundle { incident_id } => {
                self.bundle(BundleSubject::Incident(incident_id), as_of)
                    .await
            }
            ExportSubject::Compliance {
                incident_id,
                period,
            } => {
                self.bundle(BundleSubject::Compliance(incident_id, period), as_of)
                    .await
            }
        }
    }

    pub(super) fn part_path(&self) -> PathBuf {
        part_of(
            &self.dir().join(manifest::artefact_name(self.job)),
            self.job.attempt,
        )
    }

    /// A list scope: keyset batches → writer thread → file.
    /// A list scope: the list's own filtered select, in keyset batches on its order, under the
    /// column set `name`.
    async fn list<L: Listed>(&mut self, name: &str, filter: &L::Filter) -> Result<Produced, Stop>
    where
        L::Row: ExportRow,
    {
        let select = L::select_on(self.db.get_database_backend(), &self.tenant, filter, None);
        let (created_at, id) = L::ORDER;
        let (snapshot, position) = (L::ROW, L::POSITION);
        let as_of = self.job.as_of;
        let total = PaginatorTrait::count(select.clone().filter(created_at.lte(as_of)), self.db)
            .await
            .map_err(AppError::from)?;
        self.progress(JobStage::Running, 0, Some(total), true)
            .await?;
        let batches = KeysetBatches {
            db: self.db.clone(),
            select,
            created_at,
            id,
            as_of,
            batch: self.batch_size(),
            snapshot,
            position,
            last: None,
            done: false,
        };
        // Three stages, each a batch ahead of the next: the fetcher task reads raw rows (the
        // database works on batch n+1 while batch n is decoded), this loop decodes them into
        // snapshots, the writer thread encodes, hashes and writes. Bounded channels keep at
        // most a few batches in memory.
        let (raw_tx, mut raw_rx) = tokio::sync::mpsc::channel(1);
        let fetcher = tokio::spawn(batches.feed(raw_tx));
        let part = self.part_path();
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<L::Row>>(2);
        let format = self.job.format;
        let writer = {
            let part = part.clone();
            tokio::task::spawn_blocking(move || write_rows::<L::Row>(&part, format, rx))
        };
        let mut done = 0u64;
        let fed: Result<(), Stop> = async {
            while let Some(raw) = raw_rx.recv().await {
                let batch = decode_rows::<L::Entity, L::Row>(raw?, snapshot)?;
                done += batch.len() as u64;
                if tx.send(batch).await.is_err() {
                    // The writer stopped: its error is reported below.
                    break;
                }
                self.progress(JobStage::Running, done, Some(total), false)
                    .await?;
                self.after_batch().await?;
            }
            Ok(())
        }
        .await;
        drop(raw_rx);
        fetcher.abort();
        drop(tx);
        let written = writer
            .await
            .map_err(|e| AppError::internal(format!("export writer panicked: {e}")))?;
        // On any early return the attempt's `PartFiles` guard removes the part file.
        fed?;
        let (sha256, bytes, rows) = written?;
        let file_name = manifest::artefact_name(self.job);
        let path = self.dir().join(&file_name);
        tokio::fs::rename(&part, &path).await?;
        Ok(Produced {
            artefact: FileDigest {
                name: file_name,
                bytes,
                sha256,
                rows: Some(rows),
            },
            files: Vec::new(),
            row_counts: [("rows".to_owned(), rows)].into(),
            column_set: Some(ColumnSet {
                name: name.to_owned(),
                version: COLUMN_SET_VERSION,
                columns: L::Row::columns().iter().map(|c| (*c).to_owned()).collect(),
            }),
            path,
            rows,
            completeness: None,
        })
    }

    /// Writes the manifest, anchors its hash in the audit ledger and completes the job, all
    /// ledger and job writes in one transaction.
    async fn finish(&mut self, done: Produced) -> Result<(), Stop> {
        self.progress(JobStage::Completing, done.rows, Some(done.rows), true)
            .await?;
        let job = self.job;
        let request = ExportRequest::of(job)?;
        let subject = match &request.subject {
            ExportSubject::RunBundle { run_id } => Some(serde_json::json!({ "run_id": run_id })),
            ExportSubject::TraceBundle { trace_id } => {
                Some(serde_json::json!({ "trace_id": trace_id }))
            }
            ExportSubject::IncidentBundle { incident_id }
            | ExportSubject::Compliance { incident_id, .. } => {
                Some(serde_json::json!({ "incident_id": incident_id }))
            }
            _ => None,
        };
        let bundle_sha256 = (!done.files.is_empty()).then(|| manifest::bundle_sha256(&done.files));
        let ledger = if job.scope == crate::exports::ExportScope::Audit {
            super::ledger_file::write(
                self.db,
                self.ledger_key,
                &self.tenant,
                &done.path,
                job.attempt,
            )
            .await?
        } else {
            None
        };
        let manifest = Manifest {
            manifest_version: manifest::MANIFEST_VERSION,
            generator: manifest::generator(),
            export_id: job.export_id.clone(),
            tenant_id: job.tenant_id.clone(),
            scope: job.scope.as_str().to_owned(),
            format: job.format.as_str().to_owned(),
            filter: request.subject.filter_json(),
            subject,
            as_of: crate::scalars::format_utc(job.as_of),
            requested_at: crate::scalars::format_utc(job.created_at),
            completed_at: crate::scalars::format_utc(crate::scalars::now()),
            row_counts: done.row_counts,
            column_set: done.column_set,
            artefact: done.artefact.clone(),
            files: done.files,
            ledger,
            bundle_sha256: bundle_sha256.clone(),
        };
        let bytes = manifest.to_bytes();
        let manifest_sha256 = manifest::sha256_hex(&bytes);
        let manifest_path = manifest::manifest_path(&done.path);
        let tmp = part_of(&manifest_path, job.attempt);
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::rename(&tmp, &manifest_path).await?;

        let completion = Completion {
            checksum: done.artefact.sha256.clone(),
            row_count: done.rows as i64,
            byte_size: done.artefact.bytes as i64,
            manifest_sha256: manifest_sha256.clone(),
            artefact_path: done.path.to_string_lossy().into_owned(),
            duration_ms: self.started.elapsed().as_millis() as i64,
            bundle_sha256,
            bundle_completeness: done.completeness,
        };
        let txn = self.db.begin().await.map_err(AppError::from)?;
        // The ledger append first: on SQLite it takes the write lock before anything is read.
        append_entry(
            &txn,
            NewAuditEntry {
                tenant_id: self.tenant.clone(),
                event_type: AuditEventType::ExportCompleted,
                entity_type: AuditEntityType::Export,
                entity_id: job.export_id.clone(),
                actor_type: ActorType::System,
                actor_id: Some(self.worker.chars().take(64).collect()),
                reason: Some("export manifest anchored".to_owned()),
                before_state: None,
                after_state: Some(serde_json::json!({
                    "kind": "export_manifest",
                    "export_id": job.export_id,
                    "manifest_sha256": manifest_sha256,
                    "artefact_sha256": done.artefact.sha256,
                    "artefact_bytes": done.artefact.bytes,
                    "scope": job.scope.as_str(),
                    "format": job.format.as_str(),
                    "rows": done.rows,
                    "as_of": crate::scalars::format_utc(job.as_of),
                })),
                run_id: None,
                correlation_id: Some(job.export_id.clone()),
            },
        )
        .await?;
        match jobs::complete(&txn, job, self.worker, &completion).await? {
            Ok(()) => {
                txn.commit().await.map_err(AppError::from)?;
                crate::telemetry::export_job(jobs::JobState::Completed.as_str());
                crate::telemetry::export_rows(u64::try_from(completion.row_count).unwrap_or(0));
                Ok(())
            }
            Err(jobs::LeaseLost) => {
                let _ = txn.rollback().await;
                Err(Stop::LeaseLost)
            }
        }
    }
}

/// Removes an export's finished files (artefact, manifest, AUDIT ledger file), if any.
async fn remove_finished_files(dir: &Path, job: &JobSnapshot) {
    let artefact = dir.join(manifest::artefact_name(job));
    for path in [
        manifest::manifest_path(&artefact),
        manifest::ledger_path(&artefact),
        artefact,
    ] {
        match tokio::fs::remove_file(&path).await {
            Ok(()) => tracing::info!(path = %path.display(), "removed a cancelled export's file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a cancelled export's file")
            }
        }
    }
}

/// The partial file of `file` written by attempt `attempt`: `<file>.part-<attempt>`.
fn part_of(file: &Path, attempt: i32) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".part-{attempt}"));
    file.with_file_name(name)
}

/// The export id and attempt of a partial file's name
/// (`logbook-export-<export id>.<ext>[.manifest.json|.ledger.ndjson].part-<attempt>`).
fn parse_part_name(name: &str) -> Option<(&str, i32)> {
    let rest = name.strip_prefix("logbook-export-")?;
    let (export_id, _) = rest.split_once('.')?;
    let (_, attempt) = rest.rsplit_once(".part-")?;
    if export_id.is_empty() || attempt.is_empty() || !attempt.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((export_id, attempt.parse().ok()?))
}

/// The partial files one attempt may write (artefact, manifest, AUDIT ledger file), removed on
/// drop: whatever of them still exists when the attempt ends is unfinished. A completed attempt
/// renamed them all, so nothing is left to remove; no other attempt writes these names.
struct PartFiles {
    paths: [PathBuf; 3],
}

impl PartFiles {
    fn of(dir: &Path, job: &JobSnapshot) -> Self {
        let artefact = dir.join(manifest::artefact_name(job));
        PartFiles {
            paths: [
                part_of(&artefact, job.attempt),
                part_of(&manifest::manifest_path(&artefact), job.attempt),
                // As `ledger_file::write` names it.
                part_of(&manifest::ledger_path(&artefact), job.attempt),
            ],
        }
    }
}

impl Drop for PartFiles {
    fn drop(&mut self) {
        for path in &self.paths {
            match std::fs::remove_file(path) {
                Ok(()) => tracing::info!(path = %path.display(), "removed a partial export file"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a partial export file")
                }
            }
        }
    }
}

/// Deletes the partial files in `dir` that no live attempt owns: those whose job's current
/// attempt is another one, or is not running under an unexpired lease (a process killed
/// mid-write leaves them). Files of an attempt whose lease is live, and of export ids this
/// database has no job for (another deployment's, if directories are shared), are kept.
/// Returns how many files were deleted.
pub async fn sweep_partial_files(db: &DatabaseConnection, dir: &Path) -> AppResult<usize> {
    let io = |e: std::io::Error| AppError::internal(format!("listing {}: {e}", dir.display()));
    // List first, then read the jobs: an attempt claimed in between is seen as live.
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(e)),
    };
    let mut parts = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(io)? {
        let name = entry.file_name();
        let Some((export_id, attempt)) = name.to_str().and_then(parse_part_name) else {
            continue;
        };
        if entry.file_type().await.map_err(io)?.is_file() {
            parts.push((export_id.to_owned(), attempt, entry.path()));
        }
    }
    if parts.is_empty() {
        return Ok(0);
    }
    let mut ids: Vec<String> = parts.iter().map(|(id, _, _)| id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let live = jobs::live_attempts(db, &ids).await?;
    let mut deleted = 0;
    for (export_id, attempt, path) in parts {
        let dead = match live.get(&export_id) {
            None => false,
            Some(live) => *live != Some(attempt),
        };
        if !dead {
            continue;
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a partial export file")
            }
        }
    }
    Ok(deleted)
}

/// The writer thread of a list export: encodes batches as they arrive.
fn write_rows<T: ExportRow>(
    path: &Path,
    format: crate::exports::ExportFormat,
    mut rx: tokio::sync::mpsc::Receiver<Vec<T>>,
) -> std::io::Result<(String, u64, u64)> {
    let file = std::fs::File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, HashingWriter::new(file));
    let mut encoder = Encoder::new(format, T::columns())
        .ok_or_else(|| std::io::Error::other("a list export cannot be a ZIP"))?;
    encoder.begin();
    let mut rows = 0u64;
    while let Some(batch) = rx.blocking_recv() {
        for row in &batch {
            encoder.row(row);
        }
        rows += batch.len() as u64;
        encoder.drain_into(&mut out)?;
    }
    encoder.end();
    encoder.drain_into(&mut out)?;
    out.flush()?;
    let hashing = out.into_inner().map_err(|e| e.into_error())?;
    let (file, sha, bytes) = hashing.finish();
    file.sync_all()?;
    Ok((sha, bytes, rows))
}

/// Batches of a filtered list in list order (`(created_at, id)` descending, at or before
/// `as_of`), each fetched with a keyset bound after the previous one: never OFFSET.
pub(super) struct KeysetBatches<E: EntityTrait, T> {
    pub(super) db: DatabaseConnection,
    pub(super) select: Select<E>,
    pub(super) created_at: E::Column,
    pub(super) id: E::Column,
    pub(super) as_of: DateTime<Utc>,
    pub(super) batch: u64,
    pub(super) snapshot: fn(E::Model) -> AppResult<T>,
    pub(super) position: fn(&T) -> Position,
    pub(super) last: Option<Position>,
    pub(super) done: bool,
}

impl<E, T> KeysetBatches<E, T>
where
    E: EntityTrait,
    E::Column: IntoIden + Copy,
{
    /// The next batch as the database returned it; only its last row is decoded (for the
    /// keyset bound of the batch after it).
    async fn next_raw(&mut self) -> AppResult<Option<Vec<QueryResult>>> {
        if self.done {
            return Ok(None);
        }
        let mut q = self.select.clone().filter(self.created_at.lte(self.as_of));
        if let Some(last) = &self.last {
            let key = Expr::tuple([Expr::col(self.created_at), Expr::col(self.id)]);
            let at = Expr::tuple([Expr::val(last.time()?), Expr::val(last.id.clone())]);
            q = q.filter(key.lt(at));
        }
        let statement = q
            .order_by_desc(self.created_at)
            .order_by_desc(self.id)
            .limit(self.batch)
            .into_query();
        let rows = self.db.query_all(&statement).await?;
        if (rows.len() as u64) < self.batch {
            self.done = true;
        }
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        let last = (self.snapshot)(E::Model::from_query_result(last, "")?)?;
        self.last = Some((self.position)(&last));
        Ok(Some(rows))
    }

    pub(super) async fn next(&mut self) -> AppResult<Option<Vec<T>>> {
        match self.next_raw().await? {
            Some(rows) => Ok(Some(decode_rows::<E, T>(rows, self.snapshot)?)),
            None => Ok(None),
        }
    }

    /// Sends every batch, raw, into `out` (a task of its own, a batch ahead of its reader);
    /// stops at the end, at the first error (sent on) or when the reader is gone.
    async fn feed(mut self, out: tokio::sync::mpsc::Sender<AppResult<Vec<QueryResult>>>) {
        loop {
            let next = self.next_raw().await;
            let last = !matches!(next, Ok(Some(_)));
            let item = match next {
                Ok(Some(rows)) => Ok(rows),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            if out.send(item).await.is_err() || last {
                break;
            }
        }
    }
}

/// Decodes raw rows of `E` into export rows, as `Select::all` and `snapshot` would.
fn decode_rows<E: EntityTrait, T>(
    rows: Vec<QueryResult>,
    snapshot: fn(E::Model) -> AppResult<T>,
) -> AppResult<Vec<T>> {
    rows.iter()
        .map(|row| snapshot(E::Model::from_query_result(row, "")?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_round_trip() {
        let id = "0b4c1f9e-8a8e-4c55-9d0f-3b1f2a8f8d11";
        let artefact = Path::new("/x").join(format!("logbook-export-{id}.ndjson"));
        let parts = [
            part_of(&artefact, 3),
            part_of(&manifest::manifest_path(&artefact), 3),
            part_of(&manifest::ledger_path(&artefact), 3),
        ];
        // The names `finish` and `ledger_file::write` give their partial files.
        assert_eq!(
            parts[1],
            manifest::manifest_path(&artefact).with_extension("json.part-3")
        );
        assert_eq!(
            parts[2],
            manifest::ledger_path(&artefact).with_extension("ndjson.part-3")
        );
        for part in &parts {
            let name = part.file_name().unwrap().to_str().unwrap();
            assert_eq!(parse_part_name(name), Some((id, 3)), "{name}");
        }
        for other in [
            format!("logbook-export-{id}.ndjson"),
            format!("logbook-export-{id}.ndjson.manifest.json"),
            format!("logbook-export-{id}.ndjson.part-"),
            format!("logbook-export-{id}.ndjson.part-1x"),
            "notes.part-1".to_owned(),
            "logbook-export-.csv.part-1".to_owned(),
        ] {
            assert_eq!(parse_part_name(&other), None, "{other}");
        }
    }
}
