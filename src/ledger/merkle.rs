//! The RFC 6962 Merkle tree over a tenant's audit entries (RFC 6962 section 2.1, the same as
//! RFC 9162 section 2.1). Pure functions: no I/O, so the store can run every algorithm twice, once
//! to learn which stored subtree hashes it reads and once over the rows it fetched.
//!
//! Leaves are the entries in `seq` order (leaf index = `seq - 1`); the leaf bytes are the 32 raw
//! bytes of the entry's `entry_hash`. Every subtree the algorithms touch is a *complete, aligned*
//! subtree `NodeId { level, index }` covering leaves `[index·2^level, (index+1)·2^level)`, which is
//! what makes them storable once and for all.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// `MTH({})`: the hash of an empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 || entry_hash)`.
pub fn leaf_hash(entry_hash: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry_hash);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A complete subtree of `2^level` leaves starting at leaf `index · 2^level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u32,
    pub index: u64,
}

/// Where complete subtree hashes come from. `Err` names a node the source does not have.
pub trait NodeSource {
    fn node(&self, id: NodeId) -> Result<Hash, NodeId>;
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start:end])` for a range that is an RFC 6962 subtree (start aligned to its split).
pub fn subtree_root(src: &impl NodeSource, start: u64, end: u64) -> Result<Hash, NodeId> {
    let n = end - start;
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        return src.node(NodeId {
            level,
            index: start >> level,
        });
    }
    let k = split(n);
    Ok(node_hash(
        &subtree_root(src, start, start + k)?,
        &subtree_root(src, start + k, end)?,
    ))
}

/// `MTH(D[0:n])`.
pub fn root(src: &impl NodeSource, n: u64) -> Result<Hash, NodeId> {
    if n == 0 {
        return Ok(empty_root());
    }
    subtree_root(src, 0, n)
}

/// The audit path `PATH(m, D[n])` of RFC 6962 2.1.1, leaf side first. Requires `m < n`.
pub fn inclusion_path(src: &impl NodeSource, m: u64, n: u64) -> Result<Vec<Hash>, NodeId> {
    fn walk(
        src: &impl NodeSource,
        m: u64,
        start: u64,
        end: u64,
        out: &mut Vec<Hash>,
    ) -> Result<(), NodeId> {
        let n = end - start;
        if n <= 1 {
            return Ok(());
        }
        let k = split(n);
        if m < k {
            walk(src, m, start, start + k, out)?;
            out.push(subtree_root(src, start + k, end)?);
        } else {
            walk(src, m - k, start + k, end, out)?;
            out.push(subtree_root(src, start, start + k)?);
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(src, m, 0, n, &mut out)?;
    Ok(out)
}

/// The consistency proof `PROOF(m, D[n])` of RFC 6962 2.1.2. Requires `0 < m <= n`; empty when
/// `m == n`.
pub fn consistency_path(src: &impl NodeSource, m: u64, n: u64) -> Result<Vec<Hash>, NodeId> {
    fn sub(
        src: &impl NodeSource,
        m: u64,
        start: u64,
        end: u64,
        whole: bool,
        out: &mut Vec<Hash>,
    ) -> Result<(), NodeId> {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(subtree_root(src, start, end)?);
            }
            return Ok(());
        }
        let k = split(n);
        if m <= k {
            sub(src, m, start, start + k, whole, out)?;
            out.push(subtree_root(src, start + k, end)?);
        } else {
            sub(src, m - k, start + k, end, false, out)?;
            out.push(subtree_root(src, start, start + k)?);
        }
        Ok(())
    }
    let mut out = Vec::new();
    if m < n {
        sub(src, m, 0, n, true, &mut out)?;
    }
    Ok(out)
}

/// Checks a consistency proof (RFC 9162 2.1.4.2): that the tree of `second` leaves with root
/// `second_hash` extends the tree of `first` leaves with root `first_hash`. This is what a
/// client holding an old checkpoint runs; it reads nothing but its arguments.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_hash: &Hash,
    second_hash: &Hash,
    proof: &[Hash],
) -> bool {
    if first == second {
        return proof.is_empty() && first_hash == second_hash;
    }
    if first == 0 || first > second || proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_hash);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &fr == first_hash && &sr == second_hash
}

/// A source that hands out zero hashes and remembers what was asked: the first pass of a proof,
/// which tells the store which rows to fetch.
#[derive(Default)]
pub struct Recorder(std::cell::RefCell<std::collections::BTreeSet<NodeId>>);

impl Recorder {
    pub fn into_ids(self) -> std::collections::BTreeSet<NodeId> {
        self.0.into_inner()
    }
}

impl NodeSource for Recorder {
    fn node(&self, id: NodeId) -> Result<Hash, NodeId> {
        self.0.borrow_mut().insert(id);
        Ok([0; 32])
    }
}

impl NodeSource for std::collections::HashMap<NodeId, Hash> {
    fn node(&self, id: NodeId) -> Result<Hash, NodeId> {
        self.get(&id).copied().ok_or(id)
    }
}

/// The complete subtrees that make up a tree of `size` leaves, left to right (one per set bit of
/// `size`, largest first): the right edge a builder resumes from.
pub fn frontier_ids(size: u64) -> Vec<NodeId> {
    (0..64u32)
        .rev()
        .filter(|level| size >> level & 1 == 1)
        .map(|level| NodeId {
            level,
            index: (size >> level) - 1,
        })
        .collect()
}

/// Builds a tree leaf by leaf, in O(log n) memory: the stack holds the frontier. Every node it
/// completes is reported, so the store can persist the subtrees as it goes.
#[derive(Debug, Clone, Default)]
pub struct TreeBuilder {
    stack: Vec<(NodeId, Hash)>,
    size: u64,
}

impl TreeBuilder {
    /// Resumes at `size` leaves from the hashes of [`frontier_ids`]`(size)`, in that order.
    pub fn resume(size: u64, frontier: Vec<(NodeId, Hash)>) -> Self {
        TreeBuilder {
            stack: frontier,
            size,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next leaf (its leaf hash); `completed` receives each subtree of level ≥ 1 it
    /// closes.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(NodeId, Hash)) {
        self.stack.push((
            NodeId {
                level: 0,
                index: self.size,
            },
            leaf,
        ));
        self.size += 1;
        while self.stack.len() >= 2 {
            let (right_id, right) = self.stack[self.stack.len() - 1];
            let (left_id, left) = self.stack[self.stack.len() - 2];
            if left_id.level != right_id.level {
                break;
            }
            self.stack.truncate(self.stack.len() - 2);
            let id = NodeId {
                level: left_id.level + 1,
                index: left_id.index / 2,
            };
            let hash = node_hash(&left, &right);
            completed(id, hash);
            self.stack.push((id, hash));
        }
    }

    /// `MTH` of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some((_, last)) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, (_, left)| node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&Sha256::digest(i.to_be_bytes()).into()))
            .collect()
    }

    /// MTH straight from the RFC's recursive definition.
    fn reference(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference(&leaves[..k]), &reference(&leaves[k..]))
            }
        }
    }

    #[test]
    fn builder_matches_the_definition_and_stores_every_complete_node() {
        for n in 0..40u64 {
            let ls = leaves(n);
            let mut nodes: HashMap<NodeId, Hash> = HashMap::new();
            let mut b = TreeBuilder::default();
            for (i, l) in ls.iter().enumerate() {
                nodes.insert(
                    NodeId {
                        level: 0,
                        index: i as u64,
                    },
                    *l,
                );
                b.push(*l, |id, h| {
                    nodes.insert(id, h);
                });
            }
            assert_eq!(b.root(), reference(&ls), "size {n}");
            assert_eq!(root(&nodes, n).expect("nodes"), reference(&ls));
            // Resuming from the frontier gives the same tree.
            let frontier = frontier_ids(n)
                .into_iter()
                .map(|id| (id, nodes[&id]))
                .collect();
            let mut resumed = TreeBuilder::resume(n, frontier);
            let extra = leaves(n + 5);
            for l in &extra[n as usize..] {
                resumed.push(*l, |_, _| {});
            }
            assert_eq!(resumed.root(), reference(&extra));
        }
    }

    #[test]
    fn consistency_proofs_verify_and_forgeries_do_not() {
        let ls = leaves(40);
        let mut nodes: HashMap<NodeId, Hash> = HashMap::new();
        let mut b = TreeBuilder::default();
        for (i, l) in ls.iter().enumerate() {
            nodes.insert(
                NodeId {
                    level: 0,
                    index: i as u64,
                },
                *l,
            );
            b.push(*l, |id, h| {
                nodes.insert(id, h);
            });
        }
        for n in 1..=40u64 {
            let root_n = reference(&ls[..n as usize]);
            for m in 1..=n {
                let root_m = reference(&ls[..m as usize]);
                let proof = consistency_path(&nodes, m, n).expect("nodes");
                assert!(
                    verify_consistency(m, n, &root_m, &root_n, &proof),
                    "{m}->{n}"
                );
                // A different old root (one leaf of the old tree rewritten) never verifies.
                let mut forged = ls[..m as usize].to_vec();
                forged[(m as usize - 1) / 2] = leaf_hash(&[9; 32]);
                let forged_root = reference(&forged);
                assert!(!verify_consistency(m, n, &forged_root, &root_n, &proof));
                if m < n {
                    assert!(!verify_consistency(m, n, &root_m, &root_m, &proof));
                }
            }
        }
    }

    #[test]
    fn recorder_asks_for_logarithmically_many_nodes() {
        let recorder = Recorder::default();
        let n = 1_000_003;
        inclusion_path(&recorder, 777_777, n).expect("recording");
        root(&recorder, n).expect("recording");
        assert!(recorder.into_ids().len() <= 64);
    }
}
