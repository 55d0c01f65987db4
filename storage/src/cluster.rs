//! Cluster mode: what a node's writers and readers hold, kept as catalog rows so that
//! compaction and deletes on *any* node respect them (storage/README.md, "Cluster mode").
//!
//! On one node, pins (store.rs) and read leases (lease.rs) live in memory and compaction
//! checks them under a mutex. Nodes sharing a catalog cannot see each other's memory, so
//! with a shared catalog the same facts are also written as rows, and the catalog's key
//! locks take the mutex's place:
//!
//! - **Liveness.** Each node holds a session-level catalog lock named after its node id
//!   for as long as it runs (a PostgreSQL advisory lock: it dies with the session, so a
//!   killed node frees it at once, with no clock and no heartbeat). A row belongs to a live
//!   node exactly when that lock cannot be taken. A node whose session was lost takes a
//!   new id, so a node found dead stays dead and its rows can be cleared.
//! - **Group pins** (`g` ‖ group ‖ node ‖ token): a dedup hit writes one in a transaction
//!   that holds the group's `group_refs` key lock *shared*, before it reads where the
//!   group is. Compaction holds that key *exclusive* while it decides, so either the pin is
//!   there (the pack waits) or compaction committed first (the writer reads the new
//!   location and finds the slot gone: a dedup miss).
//! - **Pack pins** (`p` ‖ pack ‖ node ‖ token): a writer pins each pack it creates before
//!   the pack can be uploaded, and unpins it after its commit. Compaction skips a pack with
//!   a live pin; a pack without one either has its groups committed (compaction's second
//!   survey sees them) or is debris of a writer that died or gave up.
//! - **Fencing.** A node that was presumed dead may still be running (a lost session, a
//!   pause). Compaction deletes a dead node's pins under the exclusive locks before it drops
//!   anything; a writer's commit takes its pins' locks shared and checks that every pin is
//!   still there, and otherwise fails (503, retry) instead of referencing what compaction
//!   removed.
//! - **Read leases** (blob ‖ node ‖ token): a read writes one under the blob's key lock
//!   shared, after checking that the blob exists and is not being deleted. A delete holds
//!   that lock exclusive; a live lease defers it (`doomed`), and the last reader — or the
//!   maintenance pass, once the readers' nodes are gone — finishes it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{CatalogError, Result, StoreError};
use crate::group::group_key;
use crate::ids::BlobId;
use crate::kv::{self, Family, Kv, KvTxn, Op, Singleton};
use crate::store::Inner;

const GROUP_PIN: u8 = b'g';
const PACK_PIN: u8 = b'p';

/// This process as a member of a shared catalog.
pub(crate) struct Node {
    id: AtomicU64,
    /// The session lock that says this node is alive.
    liveness: Mutex<Option<Singleton>>,
    /// Nodes found dead (ids are never reused, so they stay dead).
    dead: Mutex<HashSet<u64>>,
    tokens: AtomicU64,
}

fn liveness_lock(node: u64) -> String {
    format!("node/{node:016x}")
}

impl Node {
    pub(crate) fn join(kv: &dyn Kv) -> Result<Node> {
        let node = Node {
            id: AtomicU64::new(0),
            liveness: Mutex::new(None),
            dead: Mutex::new(HashSet::new()),
            tokens: AtomicU64::new(0),
        };
        node.register(kv, &mut node.liveness.lock().expect("liveness"))?;
        Ok(node)
    }

    fn register(&self, kv: &dyn Kv, held: &mut Option<Singleton>) -> Result<()> {
        loop {
            let id: u64 = rand::random();
            if let Some(lock) = kv.singleton(&liveness_lock(id))? {
                *held = Some(lock);
                self.id.store(id, Ordering::Release);
                tracing::info!(node = format!("{id:016x}"), "joined the shared catalog");
                return Ok(());
            }
        }
    }

    /// This node's id, after taking a new one if the session that proved it alive was lost
    /// (other nodes may have cleared the old id's rows since).
    pub(crate) fn id(&self, kv: &dyn Kv) -> Result<u64> {
        let mut held = self.liveness.lock().expect("liveness");
        if !held.as_ref().is_some_and(Singleton::alive) {
            tracing::warn!("the catalog session that kept this node alive was lost; rejoining");
            *held = None;
            self.register(kv, &mut held)?;
        }
        Ok(self.id.load(Ordering::Acquire))
    }

    pub(crate) fn debug_lose_liveness(&self) {
        *self.liveness.lock().expect("liveness") = None;
    }

    fn token(&self) -> u64 {
        self.tokens.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether `node` is running: its liveness lock is held.
    pub(crate) fn alive(&self, kv: &dyn Kv, node: u64) -> Result<bool> {
        if node == self.id.load(Ordering::Acquire) {
            return Ok(true);
        }
        if self.dead.lock().expect("dead").contains(&node) {
            return Ok(false);
        }
        // Taken (and at once released) only when nobody holds it: the node is gone.
        if kv.singleton(&liveness_lock(node))?.is_some() {
            self.dead.lock().expect("dead").insert(node);
            return Ok(false);
        }
        Ok(true)
    }
}

/// A catalog row held for an in-flight write, and the key lock that guards it.
#[derive(Clone, Debug)]
pub(crate) struct PinRow {
    lock: (Family, Vec<u8>),
    row: Vec<u8>,
}

fn pack_lock_key(pack: u64) -> Vec<u8> {
    let mut k = vec![PACK_PIN];
    k.extend_from_slice(&pack.to_be_bytes());
    k
}

fn group_pin_prefix(group: u64) -> Vec<u8> {
    let mut k = vec![GROUP_PIN];
    k.extend_from_slice(&group_key(group));
    k
}

/// `prefix` ‖ node ‖ token.
fn row_key(prefix: &[u8], node: u64, token: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&node.to_be_bytes());
    k.extend_from_slice(&token.to_be_bytes());
    k
}

/// The node a row (`prefix` ‖ node ‖ token) belongs to.
fn row_node(row: &[u8]) -> Option<u64> {
    let n = row.len().checked_sub(16)?;
    Some(u64::from_be_bytes(row[n..n + 8].try_into().ok()?))
}

fn fenced() -> StoreError {
    StoreError::Catalog(CatalogError::unavailable(
        "this node's pins were cleared while it was presumed dead; the write must be retried",
    ))
}

impl Inner {
    /// Pins groups for a write that is about to use chunks in them (see the module doc).
    pub(crate) fn pin_groups_in_catalog(&self, node: &Node, groups: &[u64]) -> Result<Vec<PinRow>> {
        let rows: Vec<PinRow> = {
            let id = node.id(&*self.kv)?;
            groups
                .iter()
                .map(|&g| PinRow {
                    lock: (Family::GroupRefs, group_key(g).to_vec()),
                    row: row_key(&group_pin_prefix(g), id, node.token()),
                })
                .collect()
        };
        self.write_pins(&rows)?;
        Ok(rows)
    }

    /// Pins a pack this node is creating, before it can be uploaded.
    pub(crate) fn pin_pack_in_catalog(&self, node: &Node, pack: u64) -> Result<Vec<PinRow>> {
        let lock = pack_lock_key(pack);
        let rows = vec![PinRow {
            row: row_key(&lock, node.id(&*self.kv)?, node.token()),
            lock: (Family::Pins, lock),
        }];
        self.write_pins(&rows)?;
        Ok(rows)
    }

    fn write_pins(&self, rows: &[PinRow]) -> Result<()> {
        self.in_transaction(true, |txn| {
            lock_rows(txn, rows, false)?;
            for r in rows {
                txn.put(Family::Pins, &r.row, &[])?;
            }
            Ok(())
        })
    }

    /// Runs `f` in a catalog transaction, retried on lock conflicts. `volatile` for new
    /// pins and leases: they only matter while the catalog keeps its sessions, and a crash
    /// of the catalog ends them all (so no commit waits for a WAL flush). Clearing a dead
    /// node's rows is durable: a removal may follow it.
    fn in_transaction(
        &self,
        volatile: bool,
        mut f: impl FnMut(&dyn KvTxn) -> Result<()>,
    ) -> Result<()> {
        crate::tx::retry_conflicts(|| {
            let txn = match volatile {
                true => self.kv.begin_volatile()?,
                false => self.kv.begin()?,
            };
            f(&*txn)?;
            txn.commit()
        })
    }

    /// In a write's commit: holds its pins' locks shared to the end of `txn` and fails if
    /// any pin was cleared (fencing).
    pub(crate) fn check_pins(&self, txn: &dyn KvTxn, rows: &[PinRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        lock_rows(txn, rows, false)?;
        // Read outside `txn`: the rows were committed before, and while the locks are held
        // nobody can clear them.
        let keys: Vec<Vec<u8>> = rows.iter().map(|r| r.row.clone()).collect();
        if self.kv.get_many(Family::Pins, &keys)?.len() < keys.len() {
            return Err(fenced());
        }
        Ok(())
    }

    /// Drops pins after their write committed or gave up.
    pub(crate) fn unpin_in_catalog(&self, rows: &[PinRow]) -> Result<()> {
        let ops: Vec<Op> = rows
            .iter()
            .map(|r| Op::Delete(Family::Pins, r.row.clone()))
            .collect();
        self.kv.write(&ops, false)
    }

    /// Under the exclusive lock of the pins with `prefix`: whether a live node holds one.
    /// Dead nodes' pins are deleted in `txn` (fencing).
    fn live_rows(&self, node: &Node, txn: &dyn KvTxn, fam: Family, prefix: &[u8]) -> Result<bool> {
        let mut rows = Vec::new();
        kv::walk_prefix(txn, fam, prefix, &mut |k, _| {
            rows.push(k.to_vec());
            Ok(true)
        })?;
        let mut live = false;
        for row in rows {
            match row_node(&row) {
                Some(n) if node.alive(&*self.kv, n)? => live = true,
                _ => txn.delete(fam, &row)?,
            }
        }
        Ok(live)
    }

    /// Compaction, holding group `group`'s key exclusive in `txn`: whether a writer on a
    /// live node pins it.
    pub(crate) fn group_pinned_in_catalog(
        &self,
        node: &Node,
        txn: &dyn KvTxn,
        group: u64,
    ) -> Result<bool> {
        self.live_rows(node, txn, Family::Pins, &group_pin_prefix(group))
    }

    /// Compaction, before its second survey: `packs` without a live writer's pin. Dead
    /// writers' pins are cleared (and committed) first, so that such a writer can no longer
    /// commit a reference into a pack removed after this.
    pub(crate) fn unpinned_packs(&self, node: &Node, packs: Vec<u64>) -> Result<Vec<u64>> {
        let mut keep = Vec::new();
        self.in_transaction(false, |txn| {
            keep.clear();
            let keys: Vec<Vec<u8>> = packs.iter().map(|&p| pack_lock_key(p)).collect();
            txn.lock_many(Family::Pins, &keys, true)?;
            for (&p, key) in packs.iter().zip(&keys) {
                if !self.live_rows(node, txn, Family::Pins, key)? {
                    keep.push(p);
                }
            }
            Ok(())
        })?;
        Ok(keep)
    }

    /// A read lease on blob `id` (its row) and the blob's record, in one round trip:
    /// refused (`BlobNotFound`) when the blob is gone or being deleted.
    pub(crate) fn lease_in_catalog(&self, node: &Node, id: BlobId) -> Result<(Vec<u8>, Vec<u8>)> {
        let row = row_key(&id.0, node.id(&*self.kv)?, node.token());
        match crate::tx::retry_conflicts(|| self.kv.take_lease(&id.0, &row))? {
            Some(record) => Ok((row, record)),
            None => Err(StoreError::BlobNotFound(id)),
        }
    }

    /// In a delete holding blob `id`'s key exclusive: whether a reader on a live node
    /// holds a lease on it (dead readers' leases are deleted in `txn`).
    pub(crate) fn leased_in_catalog(
        &self,
        node: &Node,
        txn: &dyn KvTxn,
        id: BlobId,
    ) -> Result<bool> {
        self.live_rows(node, txn, Family::Leases, &id.0)
    }
}

/// Locks the keys guarding `rows`, family by family.
fn lock_rows(txn: &dyn KvTxn, rows: &[PinRow], exclusive: bool) -> Result<()> {
    let mut by_family: HashMap<Family, Vec<Vec<u8>>> = HashMap::new();
    for r in rows {
        by_family
            .entry(r.lock.0)
            .or_default()
            .push(r.lock.1.clone());
    }
    for (fam, keys) in by_family {
        txn.lock_many(fam, &keys, exclusive)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_their_node() {
        let k = row_key(&group_pin_prefix(7), 0xabcd, 3);
        assert_eq!(row_node(&k), Some(0xabcd));
        assert!(k.starts_with(&group_pin_prefix(7)));
        let lease = row_key(&[9u8; 16], 42, 0);
        assert_eq!(row_node(&lease), Some(42));
        assert_eq!(row_node(&[1, 2]), None);
    }
}
