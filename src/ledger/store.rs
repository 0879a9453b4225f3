//! Storage of the ledger's Merkle tree and checkpoints. Every query is scoped to one tenant.
//!
//! `ledger_merkle_nodes` holds the hash of every complete subtree of level ≥ 1 up to the tree
//! size in `ledger_merkle_heads`; leaves (level 0) are `SHA-256(0x00 || entry_hash)` of the
//! audit row itself. The nodes are filled lazily: any request that needs the tree at size `n`
//! first catches the stored nodes up to `n` (in chunks, from the stored frontier), then reads
//! the O(log n) rows its proof needs. Node values are determined by the entries, so two
//! processes catching up at once insert the same rows and `ON CONFLICT DO NOTHING` keeps one.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use chrono::{DateTime, Utc};
use entity::ledger_checkpoints::{self, Column, Entity};
use entity::{ledger_merkle_heads as heads, ledger_merkle_nodes as nodes};
use sea_orm::sea_query::{Alias, Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityName,
    EntityTrait, IdenStatic, QueryFilter, QueryOrder, QuerySelect, Select, Statement,
    TransactionTrait, Value,
};
use sha2::{Digest, Sha256};

use super::merkle::{self, Hash, NodeId, Recorder, TreeBuilder};
use super::signing::LedgerKey;
use super::{CheckpointSnapshot, ConsistencyProofSnapshot, HeadSnapshot, InclusionProofSnapshot};
use crate::auth::TenantId;
use crate::error::{AppError, AppResult};
use crate::pagination::{Listed, Position};

/// Leaves read and hashed per catch-up step (one transaction each).
const CATCH_UP_CHUNK: u64 = 50_000;
/// Node rows per INSERT (4 parameters each).
const INSERT_BATCH: usize = 1_000;

/// `sql` uses `$1, $2, …`; SQLite gets the same numbered parameters as `?1, ?2, …`.
pub(crate) fn statement(db: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// A 64-digit hex hash as bytes.
pub fn parse_hash(text: &str) -> Option<Hash> {
    if text.len() != 64 {
        return None;
    }
    hex::decode(text).ok()?.try_into().ok()
}

fn missing(id: NodeId) -> AppError {
    AppError::internal(format!(
        "ledger Merkle node level {} index {} is missing",
        id.level, id.index
    ))
}

/// The number of entries in the tenant's ledger (its highest `seq`; the chain is gapless).
pub async fn tree_size(db: &impl ConnectionTrait, tenant: &TenantId) -> AppResult<u64> {
    let row = db
        .query_one_raw(statement(
            db,
            "SELECT MAX(seq) AS n FROM audit_ledger WHERE tenant_id = $1",
            vec![tenant.as_str().into()],
        ))
        .await?;
    let n: Option<i64> = match row {
        Some(row) => row.try_get("", "n")?,
        None => None,
    };
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// An audit entry located for a proof: its `id` and `seq`, with the tenant's tree size (head).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedEntry {
    pub id: String,
    pub seq: u64,
    pub head: u64,
}

/// The tenant's entry with this id, recorded at or after `since` (the start of the tenant's
/// read window), and the current tree size, in one statement; `None` when the tenant has no
/// such entry.
pub async fn locate_entry(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    id: &str,
    since: DateTime<Utc>,
) -> AppResult<Option<LocatedEntry>> {
    let row = db
        .query_one_raw(statement(
            db,
            "SELECT e.id, e.seq, (SELECT MAX(h.seq) FROM audit_ledger h WHERE h.tenant_id = $1) \
             AS head FROM audit_ledger e WHERE e.tenant_id = $1 AND e.id = $2 \
             AND e.created_at >= $3",
            vec![tenant.as_str().into(), id.into(), since.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let head: Option<i64> = row.try_get("", "head")?;
    Ok(Some(LocatedEntry {
        id: row.try_get("", "id")?,
        seq: row.try_get::<i64>("", "seq")?.max(1) as u64,
        head: head.unwrap_or(0).max(0) as u64,
    }))
}

/// The tree size up to which subtree hashes are stored.
async fn stored_size(db: &impl ConnectionTrait, tenant: &TenantId) -> AppResult<u64> {
    let size: Option<i64> = heads::Entity::find_by_id(tenant.as_str())
        .select_only()
        .column(heads::Column::TreeSize)
        .into_tuple()
        .one(db)
        .await?;
    Ok(size.map_or(0, |n| n.max(0) as u64))
}

/// Pads a list of bind tuples to a multiple of this by repeating its last tuple, so the SQL text
/// of the node read takes few distinct shapes: PostgreSQL then reuses one prepared statement and
/// its generic plan per shape instead of planning every request.
const SHAPE_STEP: usize = 8;

/// Reads the given nodes in one statement: leaves from `audit_ledger`, the rest from
/// `ledger_merkle_nodes`, plus the stored tree size from `ledger_merkle_heads` (0 when none).
/// Nodes that are not stored are simply absent from the map.
async fn fetch_nodes(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    ids: &BTreeSet<NodeId>,
) -> AppResult<(u64, HashMap<NodeId, Hash>)> {
    let (text_type, blob_type) = match db.get_database_backend() {
        DbBackend::Postgres => ("text", "bytea"),
        _ => ("TEXT", "BLOB"),
    };
    // Raw: one UNION ALL over three tables with a row-value `IN (VALUES …)` whose text takes
    // few shapes (see SHAPE_STEP); column and table names still come from the entities.
    let (heads_table, size, head_tenant) = (
        heads::Entity.table_name(),
        heads::Column::TreeSize.as_str(),
        heads::Column::TenantId.as_str(),
    );
    let mut values: Vec<Value> = vec![tenant.as_str().into()];
    let mut sql = format!(
        "SELECT -1 AS level, {size} AS idx, CAST(NULL AS {text_type}) AS leaf, \
         CAST(NULL AS {blob_type}) AS hash FROM {heads_table} WHERE {head_tenant} = $1"
    );
    let mut leaves: Vec<i64> = ids
        .iter()
        .filter(|id| id.level == 0)
        .map(|id| id.index as i64 + 1)
        .collect();
    if let Some(&last) = leaves.last() {
        while leaves.len() % 2 != 0 {
            leaves.push(last);
        }
        let marks: Vec<String> = leaves
            .iter()
            .map(|seq| {
                values.push((*seq).into());
                format!("${}", values.len())
            })
            .collect();
        sql.push_str(&format!(
            " UNION ALL SELECT 0, seq - 1, entry_hash, NULL FROM audit_ledger \
             WHERE tenant_id = $1 AND seq IN ({})",
            marks.join(", ")
        ));
    }
    let mut inner: Vec<NodeId> = ids.iter().filter(|id| id.level > 0).copied().collect();
    if let Some(&last) = inner.last() {
        while inner.len() % SHAPE_STEP != 0 {
            inner.push(last);
        }
        let pairs: Vec<String> = inner
            .iter()
            .map(|id| {
                values.push((id.level as i32).into());
                values.push((id.index as i64).into());
                format!("(${}, ${})", values.len() - 1, values.len())
            })
            .collect();
        let (nodes_table, level, idx, hash, node_tenant) = (
            nodes::Entity.table_name(),
            nodes::Column::Level.as_str(),
            nodes::Column::Idx.as_str(),
            nodes::Column::Hash.as_str(),
            nodes::Column::TenantId.as_str(),
        );
        sql.push_str(&format!(
            " UNION ALL SELECT {level}, {idx}, NULL, {hash} FROM {nodes_table} \
             WHERE {node_tenant} = $1 AND ({level}, {idx}) IN (VALUES {})",
            pairs.join(", ")
        ));
    }
    let mut stored = 0;
    let mut out = HashMap::with_capacity(ids.len());
    for row in db.query_all_raw(statement(db, &sql, values)).await? {
        let level: i32 = row.try_get("", "level")?;
        let index: i64 = row.try_get("", "idx")?;
        match level {
            -1 => stored = index.max(0) as u64,
            0 => {
                let text: String = row.try_get("", "leaf")?;
                let hash = parse_hash(&text).ok_or_else(|| {
                    AppError::internal(format!(
                        "audit entry seq {} has a malformed entry_hash",
                        index + 1
                    ))
                })?;
                out.insert(
                    NodeId {
                        level: 0,
                        index: index as u64,
                    },
                    merkle::leaf_hash(&hash),
                );
            }
            _ => {
                let bytes: Vec<u8> = row.try_get("", "hash")?;
                let hash: Hash = bytes
                    .try_into()
                    .map_err(|_| AppError::internal("a stored Merkle node is not 32 bytes"))?;
                out.insert(
                    NodeId {
                        level: level as u32,
                        index: index as u64,
                    },
                    hash,
                );
            }
        }
    }
    Ok((stored, out))
}

/// [`fetch_nodes`], failing when one of `ids` is absent.
async fn fetch_all_nodes(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    ids: &BTreeSet<NodeId>,
) -> AppResult<HashMap<NodeId, Hash>> {
    let (_, nodes) = fetch_nodes(db, tenant, ids).await?;
    if let Some(id) = ids.iter().find(|id| !nodes.contains_key(id)) {
        return Err(missing(*id));
    }
    Ok(nodes)
}

/// One async lock per tenant, so one process catches a tenant up once rather than once per
/// concurrent request (other processes may still race; their rows are identical).
fn tenant_lock(tenant: &TenantId) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Mutex::default);
    let mut map = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(tenant.as_str().to_owned()).or_default().clone()
}

/// Stores every complete subtree of the first `target` leaves that is not stored yet. Cheap
/// when nothing is missing (one indexed read).
pub async fn catch_up(db: &DatabaseConnection, tenant: &TenantId, target: u64) -> AppResult<()> {
    if stored_size(db, tenant).await? >= target {
        return Ok(());
    }
    let lock = tenant_lock(tenant);
    let _guard = lock.lock().await;
    let stored = stored_size(db, tenant).await?;
    if stored >= target {
        return Ok(());
    }
    let ids: BTreeSet<NodeId> = merkle::frontier_ids(stored).into_iter().collect();
    let nodes = fetch_all_nodes(db, tenant, &ids).await?;
    let frontier = merkle::frontier_ids(stored)
        .into_iter()
        .map(|id| (id, nodes[&id]))
        .collect();
    let mut builder = TreeBuilder::resume(stored, frontier);
    while builder.size() < target {
        let from = builder.size();
        let to = target.min(from + CATCH_UP_CHUNK);
        let rows = db
            .query_all_raw(statement(
                db,
                "SELECT seq, entry_hash FROM audit_ledger \
                 WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq",
                vec![
                    tenant.as_str().into(),
                    (from as i64).into(),
                    (to as i64).into(),
                ],
            ))
            .await?;
        let mut completed: Vec<(NodeId, Hash)> = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get("", "seq")?;
            if seq as u64 != builder.size() + 1 {
                return Err(AppError::internal(format!(
                    "the audit chain of tenant {} has no entry with seq {}",
                    tenant.as_str(),
                    builder.size() + 1
                )));
            }
            let text: String = row.try_get("", "entry_hash")?;
            let hash = parse_hash(&text).ok_or_else(|| {
                AppError::internal(format!("audit entry seq {seq} has a malformed entry_hash"))
            })?;
            builder.push(merkle::leaf_hash(&hash), |id, h| completed.push((id, h)));
        }
        if builder.size() != to {
            return Err(AppError::internal(format!(
                "the audit chain of tenant {} ends at seq {} before {to}",
                tenant.as_str(),
                builder.size()
            )));
        }
        let txn = db.begin().await?;
        // Nodes are deterministic: a concurrent catch-up inserted the same rows.
        for batch in completed.chunks(INSERT_BATCH) {
            nodes::Entity::insert_many(batch.iter().map(|(id, hash)| nodes::ActiveModel {
                tenant_id: Set(tenant.as_str().to_owned()),
                level: Set(id.level as i32),
                idx: Set(id.index as i64),
                hash: Set(hash.to_vec()),
            }))
            .on_conflict(
                OnConflict::columns([
                    nodes::Column::TenantId,
                    nodes::Column::Level,
                    nodes::Column::Idx,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        // The stored size only grows, whichever catch-up commits last.
        let stored_size = Expr::col((heads::Entity, heads::Column::TreeSize));
        let new_size = Expr::col((Alias::new("excluded"), heads::Column::TreeSize));
        heads::Entity::insert(heads::ActiveModel {
            tenant_id: Set(tenant.as_str().to_owned()),
            tree_size: Set(to as i64),
            updated_at: Set(crate::scalars::now()),
        })
        .on_conflict(
            OnConflict::column(heads::Column::TenantId)
                .update_columns([heads::Column::TreeSize, heads::Column::UpdatedAt])
                .action_and_where(sea_orm::sea_query::ExprTrait::lt(stored_size, new_size))
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
    }
    Ok(())
}

/// Runs `compute` once over a [`Recorder`] to learn which nodes it reads, fetches exactly those,
/// and runs it again over them. One statement when the stored nodes already cover `size` (it
/// reads the stored size with the nodes); otherwise catches up first and reads them again.
async fn with_nodes<T>(
    db: &DatabaseConnection,
    tenant: &TenantId,
    size: u64,
    compute: impl Fn(&dyn Fn(NodeId) -> Result<Hash, NodeId>) -> Result<T, NodeId>,
) -> AppResult<T> {
    let recorder = Recorder::default();
    compute(&|id| merkle::NodeSource::node(&recorder, id)).map_err(missing)?;
    let ids = recorder.into_ids();
    let (stored, mut nodes) = fetch_nodes(db, tenant, &ids).await?;
    if stored < size {
        catch_up(db, tenant, size).await?;
        nodes = fetch_nodes(db, tenant, &ids).await?.1;
    }
    if let Some(id) = ids.iter().find(|id| !nodes.contains_key(id)) {
        return Err(missing(*id));
    }
    compute(&|id| merkle::NodeSource::node(&nodes, id)).map_err(missing)
}

/// Adapts a closure to [`merkle::NodeSource`].
struct FnSource<'a>(&'a dyn Fn(NodeId) -> Result<Hash, NodeId>);

impl merkle::NodeSource for FnSource<'_> {
    fn node(&self, id: NodeId) -> Result<Hash, NodeId> {
        (self.0)(id)
    }
}

fn hexes(hashes: Vec<Hash>) -> Vec<String> {
    hashes.into_iter().map(hex::encode).collect()
}

/// `MTH` of the first `size` entries.
pub async fn root_at(db: &DatabaseConnection, tenant: &TenantId, size: u64) -> AppResult<Hash> {
    with_nodes(db, tenant, size, |get| merkle::root(&FnSource(get), size)).await
}

/// The head: size, root and last entry. An empty ledger has size 0 and `SHA-256("")` as root.
pub async fn head(db: &DatabaseConnection, tenant: &TenantId) -> AppResult<HeadSnapshot> {
    let row = db
        .query_one_raw(statement(
            db,
            "SELECT seq, id, entry_hash FROM audit_ledger WHERE tenant_id = $1 \
             ORDER BY seq DESC LIMIT 1",
            vec![tenant.as_str().into()],
        ))
        .await?;
    let (size, id, hash) = match row {
        Some(row) => (
            row.try_get::<i64>("", "seq")? as u64,
            Some(row.try_get::<String>("", "id")?),
            Some(row.try_get::<String>("", "entry_hash")?),
        ),
        None => (0, None, None),
    };
    let root = root_at(db, tenant, size).await?;
    Ok(HeadSnapshot {
        tenant_id: tenant.as_str().to_owned(),
        tree_size: size,
        root_hash: hex::encode(root),
        last_entry_id: id,
        last_entry_hash: hash,
    })
}

/// The inclusion proof of the entry with `seq` (`1 ≤ seq ≤ size`) in the tree of `size`.
pub async fn inclusion_proof(
    db: &DatabaseConnection,
    tenant: &TenantId,
    entry_id: &str,
    seq: u64,
    size: u64,
) -> AppResult<InclusionProofSnapshot> {
    let m = seq - 1;
    let leaf_id = NodeId { level: 0, index: m };
    let (leaf, path, root) = with_nodes(db, tenant, size, |get| {
        let src = FnSource(get);
        Ok((
            get(leaf_id)?,
            merkle::inclusion_path(&src, m, size)?,
            merkle::root(&src, size)?,
        ))
    })
    .await?;
    Ok(InclusionProofSnapshot {
        entry_id: entry_id.to_owned(),
        leaf_index: m,
        tree_size: size,
        leaf_hash: hex::encode(leaf),
        audit_path: hexes(path),
        root_hash: hex::encode(root),
    })
}

/// The consistency proof between the trees of `from` and `to` entries (`1 ≤ from ≤ to`).
pub async fn consistency_proof(
    db: &DatabaseConnection,
    tenant: &TenantId,
    from: u64,
    to: u64,
) -> AppResult<ConsistencyProofSnapshot> {
    let (path, from_root, to_root) = with_nodes(db, tenant, to, |get| {
        let src = FnSource(get);
        Ok((
            merkle::consistency_path(&src, from, to)?,
            merkle::root(&src, from)?,
            merkle::root(&src, to)?,
        ))
    })
    .await?;
    Ok(ConsistencyProofSnapshot {
        from_size: from,
        to_size: to,
        from_root: hex::encode(from_root),
        to_root: hex::encode(to_root),
        path: hexes(path),
    })
}

pub(crate) fn checkpoint_from_model(m: ledger_checkpoints::Model) -> CheckpointSnapshot {
    CheckpointSnapshot {
        id: m.id,
        tenant_id: m.tenant_id,
        tree_size: m.tree_size.max(0) as u64,
        root_hash: m.root_hash,
        public_key: m.public_key,
        signature: m.signature,
        issued_at: m.created_at,
    }
}

fn checkpoint_snapshot(m: ledger_checkpoints::Model) -> AppResult<CheckpointSnapshot> {
    Ok(checkpoint_from_model(m))
}

fn checkpoint_id(tenant: &TenantId, public_key: &str, size: u64) -> String {
    let mut h = Sha256::new();
    h.update(tenant.as_str().as_bytes());
    h.update([0]);
    h.update(public_key.as_bytes());
    h.update([0]);
    h.update(size.to_string().as_bytes());
    hex::encode(&h.finalize()[..16])
}

async fn find_checkpoint(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
    public_key: &str,
    size: u64,
) -> AppResult<Option<CheckpointSnapshot>> {
    Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .filter(Column::PublicKey.eq(public_key))
        .filter(Column::TreeSize.eq(size as i64))
        .one(db)
        .await?
        .map(checkpoint_snapshot)
        .transpose()
}

/// The checkpoint of the tree of `size` entries (`1 ≤ size ≤ head`) signed with `key`: the one
/// issued before, or a new one signed now and stored. One checkpoint per (tenant, key, size), so
/// reading the head repeatedly writes nothing. A new one is then published outside the database
/// by the sink publishers (`super::sink`), which this wakes.
pub async fn checkpoint(
    db: &DatabaseConnection,
    key: &LedgerKey,
    tenant: &TenantId,
    size: u64,
) -> AppResult<CheckpointSnapshot> {
    let public_key = key.public_key_hex();
    if let Some(found) = find_checkpoint(db, tenant, &public_key, size).await? {
        return Ok(found);
    }
    let root = hex::encode(root_at(db, tenant, size).await?);
    let issued_at = crate::scalars::now();
    let message = super::signing::checkpoint_message(tenant.as_str(), size, &root, issued_at);
    let signature = key.sign(message.as_bytes());
    let inserted = db
        .execute_raw(statement(
            db,
            "INSERT INTO ledger_checkpoints \
         (id, tenant_id, tree_size, root_hash, public_key, signature, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            vec![
                checkpoint_id(tenant, &public_key, size).into(),
                tenant.as_str().into(),
                (size as i64).into(),
                root.into(),
                public_key.clone().into(),
                signature.into(),
                issued_at.into(),
            ],
        ))
        .await?;
    if inserted.rows_affected() > 0 {
        super::sink::checkpoint_issued();
    }
    // Whoever won a concurrent first issue, everyone returns the stored one.
    find_checkpoint(db, tenant, &public_key, size)
        .await?
        .ok_or_else(|| AppError::internal("a ledger checkpoint vanished after insert"))
}

/// The checkpoint of the largest tree ever signed for the tenant (any key).
pub async fn latest_checkpoint(
    db: &impl ConnectionTrait,
    tenant: &TenantId,
) -> AppResult<Option<CheckpointSnapshot>> {
    Entity::find()
        .filter(Column::TenantId.eq(tenant.as_str()))
        .order_by_desc(Column::TreeSize)
        .order_by_desc(Column::CreatedAt)
        .limit(1)
        .one(db)
        .await?
        .map(checkpoint_snapshot)
        .transpose()
}

/// Issued checkpoints, most recently issued first (`ledger.checkpoints`).
pub struct CheckpointList;

impl Listed for CheckpointList {
    type Entity = Entity;
    type Filter = ();
    type Row = CheckpointSnapshot;
    const NAME: &'static str = "ledgerCheckpoints";
    const ORDER: (Column, Column) = (Column::CreatedAt, Column::Id);
    const ROW: fn(ledger_checkpoints::Model) -> AppResult<CheckpointSnapshot> = checkpoint_snapshot;
    const POSITION: fn(&CheckpointSnapshot) -> Position = |c| Position::of(c.issued_at, &c.id);

    fn select(tenant: &TenantId, _: &(), _: Option<DateTime<Utc>>) -> Select<Entity> {
        Entity::find().filter(Column::TenantId.eq(tenant.as_str()))
    }
}
