//! The catalog seam: every catalog read and write of the engine and the front ends goes
//! through these traits, so the catalog can live in the embedded RocksDB (`rocks.rs`, the
//! default) or in a shared database for cluster mode.
//!
//! The model is RocksDB's, kept small: named families of byte keys and values in byte
//! order; point reads; forward walks from a key and "the last key at or before" (for
//! seeking into a manifest); pessimistic transactions with shared and exclusive row locks
//! that read their own writes; and two commutative counter kinds — a chunk's reference
//! count (one i64) and a group's per-slot counts (an i64 per slot) — that a transaction
//! adds to without reading, so concurrent commits never conflict on them.

mod pg;
mod rocks;

pub(crate) use pg::PgKv;
pub(crate) use rocks::RocksKv;

use crate::catalog::Catalog;
use crate::error::Result;

/// A family of records: the engine's own, or one a front end keeps its records in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    /// Blob id → size, extent count, creation time.
    Blobs,
    /// Blob id ‖ start offset → a segment of extents.
    Manifests,
    /// Format v1: chunk id → reference count (an add counter).
    Chunks,
    /// Data directory ids, the clean-shutdown mark.
    Meta,
    /// Blobs deleted while being read (lease.rs).
    Doomed,
    /// Format v2: group → pack location and per-slot record descriptions.
    Groups,
    /// Format v2: group → per-slot reference counts (an add counter per slot).
    GroupRefs,
    /// Format v2 dedup index: name prefix → chunk number.
    ChunkIndex,
    /// Cluster mode: what a node's in-flight writes hold (cluster.rs).
    Pins,
    /// Cluster mode: blobs being read, by node (cluster.rs).
    Leases,
    Front(Catalog),
}

impl Family {
    pub(crate) const ENGINE: [Family; 10] = [
        Family::Blobs,
        Family::Manifests,
        Family::Chunks,
        Family::Meta,
        Family::Doomed,
        Family::Groups,
        Family::GroupRefs,
        Family::ChunkIndex,
        Family::Pins,
        Family::Leases,
    ];

    /// Every family, engine first.
    pub(crate) fn all() -> impl Iterator<Item = Family> {
        Family::ENGINE
            .into_iter()
            .chain(Catalog::ALL.into_iter().map(Family::Front))
    }

    /// The family's name (a RocksDB column family; a table name elsewhere).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::Blobs => "blobs",
            Family::Manifests => "manifests",
            Family::Chunks => "chunks",
            Family::Meta => "meta",
            Family::Doomed => "doomed",
            Family::Groups => "groups",
            Family::GroupRefs => "group_refs",
            Family::ChunkIndex => "chunk_index",
            Family::Pins => "pins",
            Family::Leases => "leases",
            Family::Front(c) => c.cf_name(),
        }
    }
}

/// Called with each entry of a walk; returns whether to go on.
pub(crate) type Visit<'v> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'v;

/// Reads: of the committed state, of a snapshot, or of a transaction (its own writes
/// included).
pub(crate) trait KvRead {
    fn get(&self, fam: Family, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits the entries with keys ≥ `from`, in key order, until `visit` returns false.
    fn walk(&self, fam: Family, from: &[u8], visit: &mut Visit<'_>) -> Result<()>;

    /// The entry with the greatest key ≤ `key`.
    fn floor(&self, fam: Family, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>>;

    /// Visits the entries with keys < `below` (every entry when `None`), in descending key
    /// order, until `visit` returns false: newest-first listings walk their index this way.
    fn walk_back(&self, fam: Family, below: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<()>;
}

/// One open transaction. Dropping it without `commit` rolls it back.
pub(crate) trait KvTxn: KvRead {
    /// Reads `key` and locks it until the end of the transaction: exclusively (other
    /// lockers wait) or shared (other shared lockers proceed, exclusive ones wait).
    fn get_locked(&self, fam: Family, key: &[u8], exclusive: bool) -> Result<Option<Vec<u8>>>;
    /// Locks each of `keys` as [`KvTxn::get_locked`] does, without reading them (one round
    /// trip where that matters; in a fixed order, so two lockers of overlapping sets do not
    /// deadlock each other).
    fn lock_many(&self, fam: Family, keys: &[Vec<u8>], exclusive: bool) -> Result<()> {
        let mut keys: Vec<&Vec<u8>> = keys.iter().collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            self.get_locked(fam, k, exclusive)?;
        }
        Ok(())
    }
    fn put(&self, fam: Family, key: &[u8], value: &[u8]) -> Result<()>;
    fn delete(&self, fam: Family, key: &[u8]) -> Result<()>;
    /// Adds to a counter family's value (`Chunks`: one count; `GroupRefs`: per slot, from
    /// slot 0; missing slots count as zero).
    fn add(&self, fam: Family, key: &[u8], deltas: &[i64]) -> Result<()>;
    /// Makes every change durable and visible at once.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// A held [`Kv::singleton`] lock; released on drop.
pub(crate) struct Singleton {
    /// What keeps the lock (a session, for PostgreSQL); dropped with the guard.
    pub(crate) held: Option<Box<dyn Held>>,
}

/// What keeps a [`Singleton`] held.
pub(crate) trait Held: Send {
    /// False once the lock is lost (its session died): another process may hold it now.
    fn alive(&self) -> bool;
}

impl Singleton {
    pub(crate) fn alive(&self) -> bool {
        self.held.as_ref().is_none_or(|h| h.alive())
    }
}

/// A change written outside any transaction (`Kv::write`).
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Put(Family, Vec<u8>, Vec<u8>),
    Delete(Family, Vec<u8>),
    Add(Family, Vec<u8>, Vec<i64>),
}

/// A catalog backend.
pub(crate) trait Kv: KvRead + Send + Sync {
    fn begin(&self) -> Result<Box<dyn KvTxn + '_>>;

    /// A transaction whose commit need not be durable, only visible: for rows that mean
    /// nothing after a crash of the catalog (pins and leases: every session, and so every
    /// node's liveness, dies with it). Defaults to [`Kv::begin`].
    fn begin_volatile(&self) -> Result<Box<dyn KvTxn + '_>> {
        self.begin()
    }

    /// A consistent read-only view of the committed state (for surveys that must not see
    /// a change halfway: scrub, compaction).
    fn snapshot(&self) -> Result<Box<dyn KvRead + '_>>;

    /// Applies `ops` atomically, outside any transaction; `sync` makes them durable before
    /// returning (otherwise the next synced commit does).
    fn write(&self, ops: &[Op], sync: bool) -> Result<()>;

    /// Bytes the catalog occupies on disk (after writing out buffered writes with `flush`).
    fn stored_bytes(&self, flush: bool) -> Result<u64>;

    /// Whether other processes share this catalog (cluster mode): what one node holds in
    /// memory (pins, read leases) must then be catalog rows as well (cluster.rs).
    fn shared(&self) -> bool {
        false
    }

    /// Whether reads are worth batching: each read is a network round trip (PostgreSQL),
    /// not a lookup in local memory and disk.
    fn batches_reads(&self) -> bool {
        false
    }

    /// The values of those of `keys` that exist (one round trip where that matters).
    fn get_many(
        &self,
        fam: Family,
        keys: &[Vec<u8>],
    ) -> Result<std::collections::HashMap<Vec<u8>, Vec<u8>>> {
        let mut out = std::collections::HashMap::new();
        for k in keys {
            if let Some(v) = self.get(fam, k)? {
                out.insert(k.clone(), v);
            }
        }
        Ok(out)
    }

    /// Takes a read lease (cluster.rs): under the shared key lock of `Blobs[blob]`, adds
    /// `Leases[row]` if the blob exists and is not doomed, and returns its record (`None`
    /// otherwise). Volatile (see [`Kv::begin_volatile`]). One round trip where that matters:
    /// every read takes one, and needs the record next.
    fn take_lease(&self, blob: &[u8], row: &[u8]) -> Result<Option<Vec<u8>>> {
        let txn = self.begin_volatile()?;
        let record = txn.get_locked(Family::Blobs, blob, false)?;
        let found = record.is_some() && txn.get(Family::Doomed, blob)?.is_none();
        if found {
            txn.put(Family::Leases, row, &[])?;
        }
        txn.commit()?;
        Ok(record.filter(|_| found))
    }

    /// Ends a read lease: removes `Leases[row]`, then tells whether `Doomed[blob]` exists
    /// (the caller then tries to finish the delete).
    fn drop_lease(&self, blob: &[u8], row: &[u8]) -> Result<bool> {
        self.write(&[Op::Delete(Family::Leases, row.to_vec())], false)?;
        Ok(self.get(Family::Doomed, blob)?.is_some())
    }

    /// A block of chunk group numbers reserved for this process, when the catalog is shared
    /// with other processes; `None` when this process is its only writer (it counts on from
    /// the highest number in use).
    fn group_block(&self) -> Result<Option<std::ops::Range<u64>>> {
        Ok(None)
    }

    /// Holds the catalog-wide lock `name` until the guard drops, or `None` when another
    /// process holds it. A process that dies releases it. With one process per catalog the
    /// lock is always granted (callers serialize their own threads).
    fn singleton(&self, _name: &str) -> Result<Option<Singleton>> {
        debug_assert!(!self.shared(), "a shared catalog implements singleton");
        Ok(Some(Singleton { held: None }))
    }
}

/// Up to `limit` entries whose keys start with `prefix`, from the first key strictly after
/// `after` (or from the prefix's start).
pub(crate) fn scan(
    read: &(impl KvRead + ?Sized),
    fam: Family,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let from = match after {
        Some(a) if a >= prefix => a,
        _ => prefix,
    };
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    read.walk(fam, from, &mut |k, v| {
        if !k.starts_with(prefix) {
            return Ok(false);
        }
        if after != Some(k) {
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// Up to `limit` entries whose keys start with `prefix`, in descending key order, from the
/// greatest key strictly before `before` (or from the prefix's end).
pub(crate) fn scan_back(
    read: &(impl KvRead + ?Sized),
    fam: Family,
    prefix: &[u8],
    before: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let end = successor(prefix);
    let below = match before {
        Some(b) if end.as_deref().is_none_or(|e| b < e) => Some(b),
        _ => end.as_deref(),
    };
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    read.walk_back(fam, below, &mut |k, v| {
        if !k.starts_with(prefix) {
            return Ok(false);
        }
        out.push((k.to_vec(), v.to_vec()));
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// The least key greater than every key that starts with `prefix`; `None` when there is
/// none (the prefix is empty or all 0xff).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// Visits every entry of `fam` whose key starts with `prefix`.
pub(crate) fn walk_prefix(
    read: &(impl KvRead + ?Sized),
    fam: Family,
    prefix: &[u8],
    visit: &mut Visit<'_>,
) -> Result<()> {
    read.walk(fam, prefix, &mut |k, v| {
        if !k.starts_with(prefix) {
            return Ok(false);
        }
        visit(k, v)
    })
}

/// The greatest key of `fam`, whose keys are at most `max_len` bytes long.
pub(crate) fn last_key(
    read: &(impl KvRead + ?Sized),
    fam: Family,
    max_len: usize,
) -> Result<Option<Vec<u8>>> {
    Ok(read.floor(fam, &vec![0xff; max_len + 1])?.map(|(k, _)| k))
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn prefix_successor() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b""), None);
    }
}
