//! Publishes every signed checkpoint outside the database (docs/ledger.md, "Custody"), so a
//! rewrite of the database cannot also rewrite what was already published: to a directory (one
//! file per checkpoint, written atomically and never overwritten) and/or an HTTP endpoint (one
//! POST per checkpoint).
//!
//! The database stays the source: publishing happens after a checkpoint is committed, by a
//! background publisher per sink that reads `ledger_checkpoints` in `created_at` order, so a
//! checkpoint issued by any process (another server, `logbook ledger export`) is published, and
//! a sink that is down is filled in once it is back. Publishing is idempotent: a file with the
//! same bytes is fine; a file with *different* bytes for the same tenant, key and tree size is an
//! alarm (logged as an error, the new content kept beside it as evidence, never overwritten).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use entity::ledger_checkpoints::{Column, Entity};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};

use super::store::statement;
use super::CheckpointSnapshot;
use crate::error::{AppError, AppResult};

pub use crate::config::SinkSettings;

/// A checkpoint may commit (or another process's clock may run) this much behind one already
/// seen; each pass re-reads this window so such late rows are not skipped.
const OVERLAP: Duration = Duration::from_secs(600);
/// Checkpoints read per query.
const PAGE: u64 = 500;
/// The longest wait between retries of a failing sink.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

static WAKE: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

/// Called once a new checkpoint is committed: wakes this process's publishers (others find it
/// by polling).
pub(crate) fn checkpoint_issued() {
    WAKE.notify_waiters();
}

/// The bytes published for a checkpoint: the export file's checkpoint line (docs/ledger.md)
/// and a newline. Deterministic, so every process publishes identical bytes.
pub fn document(checkpoint: &CheckpointSnapshot) -> String {
    let mut line = super::export::checkpoint_line(checkpoint);
    line.push('\n');
    line
}

/// A successful publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Written (or accepted by the endpoint) now.
    New,
    /// The sink already held exactly these bytes.
    Identical,
}

/// A failed publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The sink holds a different checkpoint for the same tenant, key and tree size: history
    /// was rewritten (or the database restored from another timeline). Never retried.
    Conflict(String),
    /// The sink could not be written now; retried later.
    Failed(String),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Conflict(m) | PublishError::Failed(m) => f.write_str(m),
        }
    }
}

/// A tenant id as one safe path component: ASCII letters, digits, `-` and `_` kept, every other
/// byte `%XX` (so `.`, `/` and `..` cannot escape the directory).
fn path_component(tenant: &str) -> String {
    if tenant.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(tenant.len());
    for b in tenant.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The directory sink: `<root>/<tenant>/<tree size, 20 digits>-<first 16 hex of the key>.json`.
#[derive(Debug, Clone)]
pub struct DirSink {
    root: PathBuf,
}

impl DirSink {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirSink { root: root.into() }
    }

    /// The file of one checkpoint.
    pub fn path_for(&self, checkpoint: &CheckpointSnapshot) -> PathBuf {
        let key = checkpoint
            .public_key
            .get(..16)
            .unwrap_or(&checkpoint.public_key);
        self.root
            .join(path_component(&checkpoint.tenant_id))
            .join(format!("{:020}-{key}.json", checkpoint.tree_size))
    }

    /// Writes the checkpoint's file unless it exists: to a temporary file, synced, then
    /// hard-linked to its name (which, unlike a rename, never replaces an existing file), then
    /// the directory synced. An existing file must hold the same bytes; different bytes are a
    /// [`PublishError::Conflict`], and the refused bytes are kept beside it as
    /// `<name>.rejected-<sha256 prefix>` for investigation. Blocking.
    pub fn publish(&self, checkpoint: &CheckpointSnapshot) -> Result<Published, PublishError> {
        let path = self.path_for(checkpoint);
        let bytes = document(checkpoint).into_bytes();
        match std::fs::read(&path) {
            Ok(existing) => return compare(&path, &existing, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(PublishError::Failed(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        }
        match write_new(&path, &bytes) {
            Ok(true) => Ok(Published::New),
            Ok(false) => {
                let existing = std::fs::read(&path).map_err(|e| {
                    PublishError::Failed(format!("cannot read {}: {e}", path.display()))
                })?;
                compare(&path, &existing, &bytes)
            }
            Err(e) => Err(PublishError::Failed(format!(
                "cannot write {}: {e}",
                path.display()
            ))),
        }
    }
}

/// Creates `path` with `bytes` atomically; `Ok(false)` when it already exists (left untouched).
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("a sink file has no directory"))?;
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut file = std::fs::File::create_new(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir);
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes a new directory entry durable (unix; elsewhere a no-op).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn compare(path: &Path, existing: &[u8], bytes: &[u8]) -> Result<Published, PublishError> {
    if existing == bytes {
        return Ok(Published::Identical);
    }
    let digest = hex::encode(Sha256::digest(bytes));
    let mut evidence = path.as_os_str().to_owned();
    evidence.push(format!(".rejected-{}", &digest[..16]));
    let evidence = PathBuf::from(evidence);
    let kept = match write_new(&evidence, bytes) {
        Ok(_) => format!("the refused checkpoint is kept in {}", evidence.display()),
        Err(e) => format!("the refused checkpoint could not be kept: {e}"),
    };
    Err(PublishError::Conflict(format!(
        "{} already holds a different checkpoint for this tenant, key and tree size; it was not \
         overwritten ({kept})",
        path.display()
    )))
}

/// The HTTP sink: each checkpoint POSTed as `application/json` (the bytes of [`document`]) with
/// an `Idempotency-Key` header (the checkpoint id). 2xx is success, 409 a conflict (the
/// endpoint holds a different checkpoint for the same tenant, key and size), anything else is
/// retried later.
#[derive(Debug, Clone)]
pub struct UrlSink {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl UrlSink {
    pub fn new(url: &str) -> Result<Self, String> {
        let url =
            reqwest::Url::parse(url).map_err(|e| format!("--ledger-checkpoint-url {url}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "--ledger-checkpoint-url {url}: only http and https are supported"
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the checkpoint sink's HTTP client: {e}"))?;
        Ok(UrlSink { url, client })
    }

    pub async fn publish(
        &self,
        checkpoint: &CheckpointSnapshot,
    ) -> Result<Published, PublishError> {
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", checkpoint.id.as_str())
            .body(document(checkpoint))
            .send()
            .await
            .map_err(|e| PublishError::Failed(format!("POST {}: {e}", self.url)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Published::New);
        }
        let body: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        if status == reqwest::StatusCode::CONFLICT {
            return Err(PublishError::Conflict(format!(
                "{} answered 409: it holds a different checkpoint for this tenant, key and tree \
                 size ({body})",
                self.url
            )));
        }
        Err(PublishError::Failed(format!(
            "POST {} answered {status}: {body}",
            self.url
        )))
    }
}

enum Target {
    Dir(DirSink),
    Url(UrlSink),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Dir(d) => format!("directory {}", d.root.display()),
            Target::Url(u) => format!("endpoint {}", u.url),
        }
    }

    async fn publish(&self, checkpoint: &CheckpointSnapshot) -> Result<Published, PublishError> {
        match self {
            Target::Dir(d) => {
                let (d, c) = (d.clone(), checkpoint.clone());
                tokio::task::spawn_blocking(move || d.publish(&c))
                    .await
                    .map_err(|e| PublishError::Failed(format!("the writer task failed: {e}")))?
            }
            Target::Url(u) => u.publish(checkpoint).await,
        }
    }

    /// The `server_settings` row keeping an endpoint's progress, shared by every process that
    /// publishes to it. A directory needs none: each process re-checks it in full at start.
    fn cursor_setting(&self) -> Option<String> {
        match self {
            Target::Dir(_) => None,
            Target::Url(u) => {
                let digest = hex::encode(Sha256::digest(u.url.as_str().as_bytes()));
                Some(format!("ledger_checkpoint_sink:{}", &digest[..16]))
            }
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub published: u64,
    pub identical: u64,
    pub conflicts: u64,
}

/// Publishes a database's checkpoints to one sink, in `created_at` order from a cursor.
pub struct Publisher {
    db: DatabaseConnection,
    target: Target,
    /// Everything issued before `cursor - OVERLAP` is published.
    cursor: Option<DateTime<Utc>>,
    /// Checkpoints of the overlap window already handled by this process, by id and signature
    /// (the id only names tenant, key and size; a re-signed rewrite has the same id). An
    /// optimisation: a checkpoint handled twice is harmless.
    recent: HashMap<(String, String), DateTime<Utc>>,
}

impl Publisher {
    pub fn to_dir(db: DatabaseConnection, dir: impl Into<PathBuf>) -> Self {
        Self::new(db, Target::Dir(DirSink::new(dir)))
    }

    pub fn to_url(db: DatabaseConnection, url: &str) -> Result<Self, String> {
        Ok(Self::new(db, Target::Url(UrlSink::new(url)?)))
    }

    fn new(db: DatabaseConnection, target: Target) -> Self {
        Publisher {
            db,
            target,
            cursor: None,
            recent: HashMap::new(),
        }
    }

    async fn load_cursor(&mut self) -> AppResult<()> {
        let Some(name) = self.target.cursor_setting() else {
            return Ok(());
        };
        let row = entity::server_settings::Entity::find_by_id(name)
            .one(&self.db)
            .await?;
        if let Some(row) = row {
            let at = DateTime::parse_from_rfc3339(&row.value)
                .map_err(|e| AppError::internal(format!("a sink cursor is malformed: {e}")))?;
            let at = at.with_timezone(&Utc);
            self.cursor = Some(self.cursor.map_or(at, |c| c.max(at)));
        }
        Ok(())
    }

    async fn save_cursor(&self) -> AppResult<()> {
        let (Some(name), Some(at)) = (self.target.cursor_setting(), self.cursor) else {
            return Ok(());
        };
        // Fixed-width UTC text, so the textual comparison keeps the cursor monotonic across
        // processes.
        let value = at.to_rfc3339_opts(SecondsFormat::Micros, true);
        self.db
            .execute_raw(statement(
                &self.db,
                "INSERT INTO server_settings (name, value, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value \
                 WHERE server_settings.value < excluded.value",
                vec![name.into(), value.into(), crate::scalars::now().into()],
            ))
            .await?;
        Ok(())
    }

    /// Publishes every checkpoint from the cursor (minus the overlap window) on, oldest first,
    /// and moves the cursor. Stops at the first checkpoint the sink cannot take now (`Err`,
    /// retried by the next pass); a conflict is logged as an error and skipped.
    pub async fn pass(&mut self) -> Result<PassReport, String> {
        let mut report = PassReport::default();
        let overlap = chrono::Duration::from_std(OVERLAP).unwrap_or_default();
        let since = self.cursor.map(|c| c - overlap);
        let mut after: Option<(DateTime<Utc>, String)> = None;
        let outcome = loop {
            let mut query = Entity::find();
            if let Some(since) = since {
                query = query.filter(Column::CreatedAt.gte(since));
            }
            if let Some((at, id)) = &after {
                query = query.filter(
                    Condition::any().add(Column::CreatedAt.gt(*at)).add(
                        Condition::all()
                            .add(Column::CreatedAt.eq(*at))
                            .add(Column::Id.gt(id.clone())),
                    ),
                );
            }
            let rows = match query
                .order_by_asc(Column::CreatedAt)
                .order_by_asc(Column::Id)
                .limit(PAGE)
                .all(&self.db)
                .await
            {
                Ok(rows) => rows,
                Err(e) => break Err(format!("reading checkpoints: {e}")),
            };
            let last_page = (rows.len() as u64) < PAGE;
            let mut failed = None;
            for row in rows {
                let checkpoint = super::store::checkpoint_from_model(row);
                let at = checkpoint.issued_at;
                after = Some((at, checkpoint.id.clone()));
                let seen = (checkpoint.id.clone(), checkpoint.signature.clone());
                if self.recent.contains_key(&seen) {
                    continue;
                }
                match self.target.publish(&checkpoint).await {
                    Ok(Published::New) => report.published += 1,
                    Ok(Published::Identical) => report.identical += 1,
                    Err(PublishError::Conflict(why)) => {
                        report.conflicts += 1;
                        tracing::error!(
                            tenant = %checkpoint.tenant_id,
                            tree_size = checkpoint.tree_size,
                            root_hash = %checkpoint.root_hash,
                            public_key = %checkpoint.public_key,
                            sink = %self.target.describe(),
                            "LEDGER CHECKPOINT CONFLICT: the database holds a checkpoint that \
                             contradicts one published earlier, so the audit ledger was \
                             rewritten or restored from another history; the published one \
                             stands. Run `logbook ledger verify --tenant T --trusted-checkpoint \
                             FILE` with the published checkpoint. {why}"
                        );
                    }
                    Err(PublishError::Failed(why)) => {
                        failed = Some(why);
                        break;
                    }
                }
                self.recent.insert(seen, at);
                self.cursor = Some(self.cursor.map_or(at, |c| c.max(at)));
            }
            if let Some(why) = failed {
                break Err(why);
            }
            if last_page {
                break Ok(());
            }
        };
        if let Some(cursor) = self.cursor {
            let floor = cursor - overlap;
            self.recent.retain(|_, at| *at >= floor);
        }
        if let Err(e) = self.save_cursor().await {
            tracing::warn!(error = %e.message(), "saving the checkpoint sink's cursor failed");
        }
        outcome.map(|()| report)
    }

    /// Publishes forever: a pass at start (a directory is checked in full), then one whenever
    /// this process issues a checkpoint or `poll` elapses; a failing sink is retried with
    /// growing waits, the cursor kept where it stopped.
    pub async fn run(mut self, poll: Duration) {
        let sink = self.target.describe();
        if let Err(e) = self.load_cursor().await {
            tracing::warn!(sink = %sink, error = %e.message(), "reading the checkpoint sink's cursor failed; publishing from the start");
        }
        let mut backoff = poll;
        loop {
            let woken = WAKE.notified();
            let wait = match self.pass().await {
                Ok(report) => {
                    if report.published > 0 {
                        tracing::debug!(sink = %sink, published = report.published, "published ledger checkpoints");
                    }
                    backoff = poll;
                    poll
                }
                Err(why) => {
                    tracing::warn!(sink = %sink, error = %why, retry_in = ?backoff, "publishing ledger checkpoints failed; they stay in the database and are published once the sink is back");
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF.max(poll));
                    wait
                }
            };
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Starts one publisher per configured sink on the current runtime (none when nothing is
/// configured). A URL that does not parse is logged and skipped (`serve` checks it first).
pub fn spawn(db: &DatabaseConnection, settings: &SinkSettings) -> Vec<tokio::task::AbortHandle> {
    let mut tasks = Vec::new();
    if let Some(dir) = &settings.dir {
        let publisher = Publisher::to_dir(db.clone(), dir.clone());
        tasks.push(tokio::spawn(publisher.run(settings.poll_interval)).abort_handle());
    }
    if let Some(url) = &settings.url {
        match Publisher::to_url(db.clone(), url) {
            Ok(publisher) => {
                tasks.push(tokio::spawn(publisher.run(settings.poll_interval)).abort_handle())
            }
            Err(e) => tracing::error!(error = %e, "ledger checkpoints will not be published"),
        }
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_become_one_safe_path_component() {
        assert_eq!(path_component("acme-1_x"), "acme-1_x");
        assert_eq!(path_component("../etc"), "%2E%2E%2Fetc");
        assert_eq!(path_component("a.b c"), "a%2Eb%20c");
        assert_eq!(path_component(""), "%");
    }
}
