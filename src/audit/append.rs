//! Appending to the audit ledger: the rules of docs/domain.md §4.2, then one link of the tenant's
//! hash chain (`docs/ledger.md`).
//!
//! Appends of one tenant are serialised on its row in `audit_chain_heads`. The first statement
//! of an append is `UPDATE audit_chain_heads SET seq = seq + 1 … RETURNING`: on PostgreSQL it
//! takes the row lock, and a waiting writer re-reads the row its predecessor committed; on
//! SQLite, as the first write of the transaction, it takes the database write lock before
//! anything is read, so no writer works from a stale head. The new entry's `seq` is the returned
//! one, its `prev_hash` the head's hash; the entry is inserted and the head's hash moved to it,
//! all in the caller's transaction: a rolled-back append leaves the head untouched, so `seq`
//! stays gapless, and `UNIQUE(tenant_id, seq)` backs the lock up.
//!
//! `created_at` strictly increases along each chain (at least 1 µs after the head entry, whose
//! time the head row keeps in `updated_at`), so the newest-first list order and `seq` agree and
//! a reader that pages after a cursor never misses an entry committed later.

use chrono::{DateTime, Duration, Utc};
use entity::{audit_chain_heads, audit_ledger};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Set, Statement, TransactionTrait,
};
use serde_json::Value;

use super::chain::{entry_hash, ChainFields, GENESIS_PREV_HASH, HASH_VERSION};
use super::SuppressionExpiry;
use super::{suppression_expiry, ActorType, AuditEntityType, AuditEntrySnapshot, AuditEventType};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::redaction::{redacted, redacted_text};

/// Longest id-like value (`entity_id`, `actor_id`, `run_id`, `correlation_id`): the columns are
/// 64 characters wide.
pub const MAX_ID_LEN: usize = 64;
/// Longest `action_reason`.
pub const MAX_REASON_LEN: usize = 4_000;

/// One event to record. The tenant comes from the caller's authenticated key (or the operator).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub tenant_id: TenantId,
    pub event_type: AuditEventType,
    pub entity_type: AuditEntityType,
    /// For SIGNAL entities, the signal fingerprint.
    pub entity_id: String,
    pub actor_type: ActorType,
    pub actor_id: Option<String>,
    /// The actor's justification; stored as `action_reason`.
    pub reason: Option<String>,
    pub before_state: Option<Value>,
    pub after_state: Option<Value>,
    /// The run the entry concerns. When absent, taken from the states' `run_id` or
    /// `source_run_id` (docs/domain.md §4.3: that is how governance events name their run).
    pub run_id: Option<String>,
    pub correlation_id: Option<String>,
}

/// Which state snapshots an event carries (docs/domain.md §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateConvention {
    /// create, approve, reject, acknowledge, close, breach, grant, activate, signal events:
    /// the new state (or payload) in `after_state`, no `before_state`.
    AfterOnly,
    /// modify, update, resolve, revoke, deactivate events: both.
    BeforeAndAfter,
    /// retire: the retired object's state in `before_state`, no `after_state`.
    BeforeOnly,
}

impl AuditEventType {
    /// The one entity type this event is about.
    pub fn entity_type(self) -> AuditEntityType {
        use AuditEventType::*;
        match self {
            PolicyRuleCreated | PolicyRuleModified | PolicyRuleRetired => {
                AuditEntityType::PolicyRule
            }
            // An emergency override suspends the tenant's blocking policy rules.
            EmergencyOverrideActivated | EmergencyOverrideDeactivated => {
                AuditEntityType::PolicyRule
            }
            PolicyProposalApproved | PolicyProposalRejected => AuditEntityType::PolicyProposal,
            LimitCreated | LimitUpdated | LimitBreached | LimitOverrideGranted
            | LimitOverrideRevoked => AuditEntityType::Limit,
            IncidentAcknowledged | IncidentResolved | IncidentManuallyClosed => {
                AuditEntityType::Incident
            }
            SignalAcknowledged | SignalSuppressed | SignalEscalated => AuditEntityType::Signal,
            ExportCompleted => AuditEntityType::Export,
        }
    }

    pub fn state_convention(self) -> StateConvention {
        use AuditEventType::*;
        match self {
            PolicyRuleModified
            | LimitUpdated
            | IncidentResolved
            | LimitOverrideRevoked
            | EmergencyOverrideDeactivated => StateConvention::BeforeAndAfter,
            PolicyRuleRetired => StateConvention::BeforeOnly,
            _ => StateConvention::AfterOnly,
        }
    }

    /// Events only the server appends; `recordAuditEvent` refuses them so a client cannot
    /// forge an export's anchor.
    pub fn server_only(self) -> bool {
        matches!(self, AuditEventType::ExportCompleted)
    }

    /// Events that lift, bypass or remove a control must say why: granting a limit override,
    /// activating an emergency override, closing an incident by hand, suppressing a signal,
    /// retiring a policy rule.
    pub fn requires_reason(self) -> bool {
        use AuditEventType::*;
        matches!(
            self,
            LimitOverrideGranted
                | EmergencyOverrideActivated
                | IncidentManuallyClosed
                | SignalSuppressed
                | PolicyRuleRetired
        )
    }
}

impl ActorType {
    /// A person or an agent is always named; the platform itself may stay anonymous.
    pub fn requires_actor_id(self) -> bool {
        matches!(self, ActorType::Human | ActorType::Agent)
    }
}

impl NewAuditEntry {
    /// The entry as it may be stored: the producer's free text (`action_reason`, both states)
    /// redacted (docs/domain.md §12), so that the hash chain, which can never be rewritten,
    /// never holds a secret. Ids and enums are not free text and stay as given.
    pub fn redacted(mut self) -> Self {
        self.reason = redacted_text(self.reason);
        self.before_state = self.before_state.map(redacted);
        self.after_state = self.after_state.map(redacted);
        self
    }

    /// Checks the rules of docs/domain.md §4.2. Errors name the field as
    /// `<prefix>.<camelCaseField>` (the mutation passes `"input"`).
    pub fn validate(&self, prefix: &str) -> AppResult<()> {
        let bad = |field: &str, message: String| {
            Err(AppError::bad_input(format!("{prefix}.{field}"), message))
        };
        let event = self.event_type.as_str();
        let expected = self.event_type.entity_type();
        if self.entity_type != expected {
            return bad(
                "entityType",
                format!(
                    "{event} is about a {} entity, not {}",
                    expected.as_str(),
                    self.entity_type.as_str()
                ),
            );
        }
        check_text("entityId", Some(&self.entity_id), MAX_ID_LEN).or_else(|(f, m)| bad(f, m))?;
        check_text("actorId", self.actor_id.as_deref(), MAX_ID_LEN).or_else(|(f, m)| bad(f, m))?;
        check_text("actionReason", self.reason.as_deref(), MAX_REASON_LEN)
            .or_else(|(f, m)| bad(f, m))?;
        check_text("runId", self.run_id.as_deref(), MAX_ID_LEN).or_else(|(f, m)| bad(f, m))?;
        check_text("correlationId", self.correlation_id.as_deref(), MAX_ID_LEN)
            .or_else(|(f, m)| bad(f, m))?;
        if self.actor_type.requires_actor_id() && self.actor_id.is_none() {
            return bad(
                "actorId",
                format!(
                    "an actor of type {} must be named by actorId",
                    self.actor_type.as_str()
                ),
            );
        }
        if self.event_type.requires_reason() && self.reason.is_none() {
            return bad(
                "actionReason",
                format!("{event} requires an actionReason (the justification)"),
            );
        }
        let (before, after) = match self.event_type.state_convention() {
            StateConvention::AfterOnly => (false, true),
            StateConvention::BeforeAndAfter => (true, true),
            StateConvention::BeforeOnly => (true, false),
        };
        for (field, value, wanted, what) in [
            (
                "beforeState",
                &self.before_state,
                before,
                "the state before the change",
            ),
            (
                "afterState",
                &self.after_state,
                after,
                "the state after the change or the event's payload",
            ),
        ] {
            match (value, wanted) {
                (None, true) => {
                    return bad(field, format!("{event} requires {field} ({what})"));
                }
                (Some(_), false) => {
                    return bad(field, format!("{event} carries no {field}; leave it out"));
                }
                (Some(v), true) if !v.is_object() => {
                    return bad(field, format!("{field} must be a JSON object"));
                }
                (Some(v), true) if has_nul(v) => {
                    return bad(field, format!("{field} must not contain NUL characters"));
                }
                _ => {}
            }
        }
        if self.event_type == AuditEventType::SignalSuppressed
            && suppression_expiry(self.after_state.as_ref()) == SuppressionExpiry::Unreadable
        {
            return bad(
                "afterState",
                "afterState.suppressed_until must be an RFC 3339 timestamp or null".to_owned(),
            );
        }
        Ok(())
    }

    /// The run the entry concerns: the given one, else the first of `after_state.run_id`,
    /// `after_state.source_run_id`, `before_state.run_id`, `before_state.source_run_id` that
    /// is a usable id.
    fn effective_run_id(&self) -> Option<String> {
        if self.run_id.is_some() {
            return self.run_id.clone();
        }
        [&self.after_state, &self.before_state]
            .into_iter()
            .flatten()
            .flat_map(|state| [state.get("run_id"), state.get("source_run_id")])
            .flatten()
            .filter_map(Value::as_str)
            .find(|id| check_text("runId", Some(id), MAX_ID_LEN).is_ok())
            .map(str::to_owned)
    }
}

/// A present text must be non-blank, short enough, and free of NUL (PostgreSQL refuses it).
fn check_text(
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<(), (&'static str, String)> {
    let Some(value) = value else { return Ok(()) };
    if value.trim().is_empty() {
        return Err((field, format!("{field} must not be blank")));
    }
    if value.chars().count() > max {
        return Err((field, format!("{field} is longer than {max} characters")));
    }
    if value.contains('\0') {
        return Err((field, format!("{field} must not contain NUL characters")));
    }
    Ok(())
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The chain head after claiming `n` more seqs: `last_seq` is the last claimed one,
/// `entry_hash` and `at` are those of the entry before the first claimed one.
struct ClaimedHead {
    last_seq: i64,
    prev_hash: String,
    prev_at: DateTime<Utc>,
}

/// Appends `entry` inside the caller's transaction (`conn` should be a transaction: the entry
/// then commits atomically with the change it describes). Validates first; nothing is written
/// when the entry breaks a rule. On SQLite, call it before any other statement of the
/// transaction if possible (a transaction that read before its first write cannot wait for the
/// write lock and fails with "database is locked"; [`append_committed`] retries that).
pub async fn append_entry<C: ConnectionTrait>(
    conn: &C,
    entry: NewAuditEntry,
) -> AppResult<AuditEntrySnapshot> {
    append_entries(conn, vec![entry])
        .await?
        .pop()
        .ok_or_else(|| AppError::internal("audit append returned no entry"))
}

/// Appends several entries of one tenant, in order, inside the caller's transaction: one claim
/// of the head, one multi-row insert, one head update, whatever their number.
pub async fn append_entries<C: ConnectionTrait>(
    conn: &C,
    entries: Vec<NewAuditEntry>,
) -> AppResult<Vec<AuditEntrySnapshot>> {
    let Some(tenant) = entries.first().map(|e| e.tenant_id.clone()) else {
        return Ok(Vec::new());
    };
    for entry in &entries {
        entry.validate("auditEntry")?;
        if entry.tenant_id != tenant {
            return Err(AppError::internal(
                "one audit append batch spans two tenants",
            ));
        }
    }
    let count = i64::try_from(entries.len()).map_err(AppError::internal)?;
    let head = claim(conn, &tenant, count).await?;
    let mut seq = head.last_seq - count;
    let mut prev_hash = head.prev_hash;
    let mut prev_at = head.prev_at;
    let now = crate::scalars::now();
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        seq += 1;
        let snapshot = chain_link(
            entry,
            seq,
            prev_hash,
            now.max(prev_at + Duration::microseconds(1)),
        );
        prev_hash = snapshot.entry_hash.clone();
        prev_at = snapshot.created_at;
        out.push(snapshot);
    }
    for chunk in out.chunks(INSERT_CHUNK) {
        audit_ledger::Entity::insert_many(chunk.iter().map(row))
            .exec_without_returning(conn)
            .await?;
    }
    audit_chain_heads::Entity::update_many()
        .col_expr(audit_chain_heads::Column::EntryHash, Expr::value(prev_hash))
        .col_expr(audit_chain_heads::Column::UpdatedAt, Expr::value(prev_at))
        .filter(audit_chain_heads::Column::TenantId.eq(tenant.as_str()))
        .exec(conn)
        .await?;
    Ok(out)
}

/// Rows per INSERT statement (17 bind parameters each; SQLite allows 32 766 per statement).
const INSERT_CHUNK: usize = 500;

/// The stored entry: `entry` at position `seq` after `prev_hash`, hashed (docs/ledger.md).
fn chain_link(
    entry: NewAuditEntry,
    seq: i64,
    prev_hash: String,
    created_at: DateTime<Utc>,
) -> AuditEntrySnapshot {
    let run_id = entry.effective_run_id();
    let id = uuid::Uuid::new_v4().to_string();
    let hash = entry_hash(&ChainFields {
        tenant_id: entry.tenant_id.as_str(),
        seq,
        prev_hash: &prev_hash,
        id: &id,
        event_type: entry.event_type.as_str(),
        entity_type: entry.entity_type.as_str(),
        entity_id: &entry.entity_id,
        actor_type: entry.actor_type.as_str(),
        actor_id: entry.actor_id.as_deref(),
        action_reason: entry.reason.as_deref(),
        before_state: entry.before_state.as_ref(),
        after_state: entry.after_state.as_ref(),
        correlation_id: entry.correlation_id.as_deref(),
        run_id: run_id.as_deref(),
        created_at,
    });
    AuditEntrySnapshot {
        id,
        tenant_id: entry.tenant_id.as_str().to_owned(),
        seq,
        event_type: entry.event_type,
        entity_type: entry.entity_type,
        entity_id: entry.entity_id,
        actor_type: entry.actor_type,
        actor_id: entry.actor_id,
        action_reason: entry.reason,
        before_state: entry.before_state,
        after_state: entry.after_state,
        run_id,
        correlation_id: entry.correlation_id,
        prev_hash,
        entry_hash: hash,
        hash_version: HASH_VERSION,
        created_at,
    }
}

fn row(s: &AuditEntrySnapshot) -> audit_ledger::ActiveModel {
    audit_ledger::ActiveModel {
        id: Set(s.id.clone()),
        tenant_id: Set(s.tenant_id.clone()),
        seq: Set(s.seq),
        event_type: Set(s.event_type.as_str().to_owned()),
        entity_type: Set(s.entity_type.as_str().to_owned()),
        entity_id: Set(s.entity_id.clone()),
        actor_type: Set(s.actor_type.as_str().to_owned()),
        actor_id: Set(s.actor_id.clone()),
        action_reason: Set(s.action_reason.clone()),
        before_state: Set(s.before_state.clone()),
        after_state: Set(s.after_state.clone()),
        run_id: Set(s.run_id.clone()),
        correlation_id: Set(s.correlation_id.clone()),
        prev_hash: Set(s.prev_hash.clone()),
        entry_hash: Set(s.entry_hash.clone()),
        hash_version: Set(s.hash_version),
        created_at: Set(s.created_at),
    }
}

/// How often [`append_committed`] retries a SQLite append that found the database locked.
const SQLITE_ATTEMPTS: u32 = 8;

/// [`append_entry`] in a transaction of its own, committed before it returns.
pub async fn append_committed(
    db: &DatabaseConnection,
    entry: NewAuditEntry,
) -> AppResult<AuditEntrySnapshot> {
    append_committed_many(db, vec![entry])
        .await?
        .pop()
        .ok_or_else(|| AppError::internal("audit append returned no entry"))
}

/// [`append_entries`] in a transaction of its own, committed before it returns. On SQLite a
/// "database is locked" failure (another process held the write lock past the busy timeout)
/// is retried with a short backoff; on PostgreSQL the row lock queues writers, so nothing is
/// retried there.
pub async fn append_committed_many(
    db: &DatabaseConnection,
    entries: Vec<NewAuditEntry>,
) -> AppResult<Vec<AuditEntrySnapshot>> {
    for entry in &entries {
        entry.validate("auditEntry")?;
    }
    let retry = !crate::db::is_postgres(db);
    let mut attempt = 1;
    loop {
        let result = async {
            let txn = db.begin().await?;
            let snapshots = append_entries(&txn, entries.clone()).await?;
            txn.commit().await?;
            Ok::<_, AppError>(snapshots)
        }
        .await;
        match result {
            Err(AppError::Unavailable(_)) if retry && attempt < SQLITE_ATTEMPTS => {
                let jitter = rand::random::<u64>() % 20;
                tokio::time::sleep(std::time::Duration::from_millis(
                    10 * u64::from(attempt) + jitter,
                ))
                .await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Claims the next `count` seqs of the tenant's chain and locks its head until the transaction
/// ends. Creates the head row on the tenant's first append (from the ledger's last entry,
/// should rows exist without a head).
async fn claim<C: ConnectionTrait>(
    conn: &C,
    tenant: &TenantId,
    count: i64,
) -> AppResult<ClaimedHead> {
    let backend = conn.get_database_backend();
    let (p1, p2) = if backend == DbBackend::Postgres {
        ("$1", "$2")
    } else {
        ("?", "?")
    };
    let claim = Statement::from_sql_and_values(
        backend,
        format!(
            "UPDATE audit_chain_heads SET seq = seq + {p1} WHERE tenant_id = {p2} \
             RETURNING seq, entry_hash, updated_at"
        ),
        [count.into(), tenant.as_str().into()],
    );
    for _ in 0..3 {
        if let Some(row) = conn.query_one_raw(claim.clone()).await? {
            return Ok(ClaimedHead {
                last_seq: row.try_get("", "seq")?,
                prev_hash: row.try_get("", "entry_hash")?,
                prev_at: row.try_get("", "updated_at")?,
            });
        }
        create_head(conn, tenant).await?;
    }
    Err(AppError::internal(format!(
        "audit chain head of tenant {} cannot be created",
        tenant.as_str()
    )))
}

/// Inserts the tenant's head if absent (concurrent creators agree on whichever row won).
async fn create_head<C: ConnectionTrait>(conn: &C, tenant: &TenantId) -> AppResult<()> {
    let last = audit_ledger::Entity::find()
        .filter(audit_ledger::Column::TenantId.eq(tenant.as_str()))
        .order_by_desc(audit_ledger::Column::Seq)
        .one(conn)
        .await?;
    let (seq, hash, at) = match last {
        Some(row) => (row.seq, row.entry_hash, row.created_at),
        None => (
            0,
            GENESIS_PREV_HASH.to_owned(),
            crate::scalars::now() - Duration::microseconds(1),
        ),
    };
    audit_chain_heads::Entity::insert(audit_chain_heads::ActiveModel {
        tenant_id: Set(tenant.as_str().to_owned()),
        seq: Set(seq),
        entry_hash: Set(hash),
        updated_at: Set(at),
    })
    .on_conflict_do_nothing_on([audit_chain_heads::Column::TenantId])
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(event: AuditEventType) -> NewAuditEntry {
        NewAuditEntry {
            tenant_id: TenantId::trusted("t"),
            event_type: event,
            entity_type: event.entity_type(),
            entity_id: "x".into(),
            actor_type: ActorType::Human,
            actor_id: Some("alice".into()),
            reason: Some("because".into()),
            before_state: matches!(
                event.state_convention(),
                StateConvention::BeforeAndAfter | StateConvention::BeforeOnly
            )
            .then(|| json!({"a": 1})),
            after_state: matches!(
                event.state_convention(),
                StateConvention::BeforeAndAfter | StateConvention::AfterOnly
            )
            .then(|| json!({"a": 2})),
            run_id: None,
            correlation_id: None,
        }
    }

    fn field(result: AppResult<()>) -> String {
        match result {
            Err(AppError::BadUserInput { field, .. }) => field,
            other => panic!("expected bad input, got {other:?}"),
        }
    }

    #[test]
    fn every_event_has_a_valid_form() {
        for event in AuditEventType::ALL {
            entry(event).validate("input").expect("valid");
        }
    }

    #[test]
    fn rules_name_the_field() {
        let mut e = entry(AuditEventType::LimitCreated);
        e.entity_type = AuditEntityType::Signal;
        assert_eq!(field(e.validate("input")), "input.entityType");
        let mut e = entry(AuditEventType::LimitCreated);
        e.before_state = Some(json!({}));
        assert_eq!(field(e.validate("input")), "input.beforeState");
        let mut e = entry(AuditEventType::PolicyRuleRetired);
        e.after_state = Some(json!({}));
        assert_eq!(field(e.validate("input")), "input.afterState");
        let mut e = entry(AuditEventType::LimitUpdated);
        e.before_state = None;
        assert_eq!(field(e.validate("input")), "input.beforeState");
        let mut e = entry(AuditEventType::SignalAcknowledged);
        e.actor_id = None;
        assert_eq!(field(e.validate("input")), "input.actorId");
        e.actor_type = ActorType::System;
        e.validate("input")
            .expect("a system actor may be anonymous");
        let mut e = entry(AuditEventType::SignalSuppressed);
        e.reason = None;
        assert_eq!(field(e.validate("input")), "input.actionReason");
        let mut e = entry(AuditEventType::SignalSuppressed);
        e.after_state = Some(json!({"suppressed_until": "soon"}));
        assert_eq!(field(e.validate("input")), "input.afterState");
        let mut e = entry(AuditEventType::LimitCreated);
        e.after_state = Some(json!([1]));
        assert_eq!(field(e.validate("input")), "input.afterState");
        let mut e = entry(AuditEventType::LimitCreated);
        e.entity_id = "x".repeat(65);
        assert_eq!(field(e.validate("input")), "input.entityId");
    }

    #[test]
    fn run_id_falls_back_to_the_states() {
        let mut e = entry(AuditEventType::IncidentResolved);
        e.after_state = Some(json!({"source_run_id": "run-9"}));
        assert_eq!(e.effective_run_id().as_deref(), Some("run-9"));
        e.run_id = Some("run-1".into());
        assert_eq!(e.effective_run_id().as_deref(), Some("run-1"));
    }
}
