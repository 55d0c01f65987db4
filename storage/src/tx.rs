//! Transactions: every logical change — a blob committed with the catalog record that names
//! it, a clone, a concatenation, a delete — is one catalog transaction (kv/), committed as
//! one synced write. Pessimistic locks (`get_for_update`) serialize conflicting changes:
//! a delete locks the blob record exclusively, a clone or concatenation locks its sources
//! shared, and front ends lock their own keys (an object name, an image id) the same way.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::catalog::Catalog;
use crate::error::{CatalogErrorKind, Result, StoreError};
use crate::group::group_key;
use crate::ids::{BlobId, ChunkId};
use crate::kv::{self, Family, KvTxn};
use crate::manifest::{
    decode_segment, encode_segment, parse_segment_key, push_extent, segment_key, segments,
    BlobInfo, Extent,
};
use crate::refs::Refs;
use crate::store::{Inner, Store};
use crate::write::StagedBlob;

const MAX_ATTEMPTS: u32 = 20;

/// An open transaction, handed to the closure given to [`Store::transact`].
pub struct Tx<'a> {
    inner: &'a Inner,
    txn: Box<dyn KvTxn + 'a>,
    decremented: Vec<ChunkId>,
    /// Deletes deferred because the blob is being read (lease.rs).
    deferred: Vec<BlobId>,
    /// Deletes of unread blobs: new reads are refused until the transaction ends.
    deleting: Vec<BlobId>,
    /// Whether this change dropped references to v2 chunks (compaction may have work).
    pub(crate) packs_lowered: bool,
    /// Front-end records this transaction holds exclusively (read with `get_for_update`),
    /// as they stand in it (its own writes applied): a later `get` of one needs no catalog
    /// round trip, since nothing else can change it before the commit. Blind writes are
    /// not kept (a transaction that writes many records holds no copies of them).
    known: std::cell::RefCell<KnownRecords>,
}

/// Records by (catalog, key): their value in the transaction, or `None` (deleted, absent).
type KnownRecords = std::collections::HashMap<(Catalog, Vec<u8>), Option<Vec<u8>>>;

fn retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Catalog(c) if c.kind == CatalogErrorKind::Conflict)
}

/// Runs `f` until it does not fail with a lock conflict (at most `MAX_ATTEMPTS` times,
/// backing off), for the small catalog transactions outside [`Store::transact`].
pub(crate) fn retry_conflicts<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f() {
            Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                std::thread::sleep(Duration::from_millis(1 << attempt.min(6)));
            }
            other => return other,
        }
    }
}

impl Store {
    /// Runs `f` in a transaction on a blocking thread and commits it durably. `f` may run
    /// more than once: on a lock timeout or deadlock the transaction is retried from scratch.
    pub async fn transact<R, F>(&self, f: F) -> Result<R>
    where
        F: FnMut(&mut Tx<'_>) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.inner.clone();
        let r = tokio::task::spawn_blocking(move || inner.transact_blocking(f)).await?;
        self.inner.schedule_compaction_if_due();
        r
    }

    /// Commits a staged blob on its own (no catalog record with it) and returns its id.
    pub async fn commit(&self, staged: StagedBlob) -> Result<BlobId> {
        self.transact(move |tx| tx.add_blob(&staged)).await
    }

    /// Deletes a blob on its own.
    pub async fn delete(&self, id: BlobId) -> Result<()> {
        self.transact(move |tx| tx.delete_blob(id)).await
    }

    /// A new blob holding `range` (or all) of `src`; metadata only.
    pub async fn clone_blob(&self, src: BlobId, range: Option<Range<u64>>) -> Result<BlobId> {
        self.transact(move |tx| tx.concat(&[(src, range.clone())]))
            .await
    }
}

impl Inner {
    pub(crate) fn transact_blocking<R>(
        &self,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<R>,
    ) -> Result<R> {
        let mut attempt = 0;
        let started = std::time::Instant::now();
        loop {
            attempt += 1;
            let mut tx = Tx {
                inner: self,
                txn: self.kv.begin()?,
                decremented: Vec::new(),
                deferred: Vec::new(),
                deleting: Vec::new(),
                packs_lowered: false,
                known: Default::default(),
            };
            let result = f(&mut tx);
            let Tx {
                txn,
                decremented,
                deferred,
                deleting,
                packs_lowered,
                ..
            } = tx;
            let outcome = result.and_then(|r| {
                txn.commit()?;
                Ok(r)
            });
            self.leases.end_delete(&deleting);
            match outcome {
                Ok(r) => {
                    crate::stats::add(&self.stats.catalog_commits, 1);
                    self.stats.catalog.observe(started.elapsed());
                    if packs_lowered {
                        self.compaction_due
                            .store(true, std::sync::atomic::Ordering::Release);
                    }
                    // The change is committed: a failure here only delays reclamation.
                    if let Err(e) = self.reclaim(&decremented) {
                        tracing::warn!(error = %e, "reclaiming chunks after a commit failed; gc will retry");
                    }
                    for id in deferred {
                        if self.leases.deferred(id) {
                            if let Err(e) = self.finish_doomed(id) {
                                tracing::warn!(blob = %id, error = %e, "finishing a deferred delete failed; the next open retries");
                            }
                        }
                    }
                    return Ok(r);
                }
                Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    std::thread::sleep(Duration::from_millis(1 << attempt.min(6)));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl<'a> Tx<'a> {
    pub(crate) fn txn(&self) -> &dyn KvTxn {
        &*self.txn
    }

    /// v1 chunks whose count this transaction lowered: reclaimed after the commit.
    pub(crate) fn note_decremented(&mut self, chunks: Vec<ChunkId>) {
        self.decremented.extend(chunks);
    }

    pub fn get(&self, cat: Catalog, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.known.borrow().get(&(cat, key.to_vec())) {
            return Ok(v.clone());
        }
        self.txn.get(Family::Front(cat), key)
    }

    /// Reads `key` and locks it until commit (exclusively: other `get_for_update` callers
    /// wait). Use it for every read-modify-write of a catalog record.
    pub fn get_for_update(&self, cat: Catalog, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let v = self.txn.get_locked(Family::Front(cat), key, true)?;
        self.known
            .borrow_mut()
            .insert((cat, key.to_vec()), v.clone());
        Ok(v)
    }

    /// Reads `key` under a shared lock: other shared readers proceed, an exclusive
    /// `get_for_update` waits (e.g. PUTs into a bucket share its lock; deleting it excludes).
    pub fn get_shared(&self, cat: Catalog, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.txn.get_locked(Family::Front(cat), key, false)
    }

    /// Like [`Store::scan`], seeing this transaction's own writes.
    pub fn scan(
        &self,
        cat: Catalog,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        kv::scan(&*self.txn, Family::Front(cat), prefix, after, limit)
    }

    pub fn put(&self, cat: Catalog, key: &[u8], value: &[u8]) -> Result<()> {
        self.txn.put(Family::Front(cat), key, value)?;
        if let Some(v) = self.known.borrow_mut().get_mut(&(cat, key.to_vec())) {
            *v = Some(value.to_vec());
        }
        Ok(())
    }

    pub fn delete(&self, cat: Catalog, key: &[u8]) -> Result<()> {
        self.txn.delete(Family::Front(cat), key)?;
        if let Some(v) = self.known.borrow_mut().get_mut(&(cat, key.to_vec())) {
            *v = None;
        }
        Ok(())
    }

    /// Commits a staged blob in this transaction.
    pub fn add_blob(&mut self, staged: &StagedBlob) -> Result<BlobId> {
        if self
            .txn
            .get_locked(Family::Blobs, &staged.id.0, true)?
            .is_some()
        {
            return Err(StoreError::AlreadyCommitted(staged.id));
        }
        // With a shared catalog: the pins this write took must all still be there.
        self.inner.check_pins(&*self.txn, &staged._pins.rows)?;
        for (g, loc) in &staged.groups {
            self.txn
                .put(Family::Groups, &group_key(*g), &loc.encode())?;
        }
        self.write_blob(staged.id, &staged.extents)?;
        Ok(staged.id)
    }

    /// A new blob made of the given ranges of existing blobs, in order (a whole blob when the
    /// range is `None`). Only metadata is written: the chunks gain references.
    pub fn concat(&mut self, parts: &[(BlobId, Option<Range<u64>>)]) -> Result<BlobId> {
        let mut extents = Vec::new();
        for (src, range) in parts {
            // A shared lock: concurrent clones proceed, a delete of the source waits.
            let rec = self.txn.get_locked(Family::Blobs, &src.0, false)?;
            let info = BlobInfo::decode(*src, &rec.ok_or(StoreError::BlobNotFound(*src))?)?;
            let range = range.clone().unwrap_or(0..info.size);
            if range.start > range.end || range.end > info.size {
                return Err(StoreError::InvalidRange {
                    start: range.start,
                    end: range.end,
                    size: info.size,
                });
            }
            for e in self.inner.read_extents(*src, range)? {
                push_extent(&mut extents, e);
            }
        }
        let id = BlobId::random();
        self.write_blob(id, &extents)?;
        Ok(id)
    }

    /// Deletes a blob: its record and manifest go, its chunks lose a reference each, and
    /// chunks left with none are reclaimed after the commit. A blob being read is deleted
    /// when its last reader is done (lease.rs); to everyone else it is gone either way.
    pub fn delete_blob(&mut self, id: BlobId) -> Result<()> {
        if self.txn.get_locked(Family::Blobs, &id.0, true)?.is_none() {
            return Err(StoreError::BlobNotFound(id));
        }
        // A reader on any node (this one included) holds a lease row: the last reader,
        // or the maintenance pass once the readers' nodes are gone, finishes the delete.
        if let Some(node) = &self.inner.node {
            if self.inner.leased_in_catalog(node, &*self.txn, id)? {
                self.txn.put(Family::Doomed, &id.0, &[])?;
                return Ok(());
            }
        }
        if self.inner.leases.begin_delete(id) {
            self.txn.put(Family::Doomed, &id.0, &[])?;
            self.deferred.push(id);
            return Ok(());
        }
        self.deleting.push(id);
        self.txn.delete(Family::Doomed, &id.0)?;
        let refs = self.drop_manifest(id)?;
        self.txn.delete(Family::Blobs, &id.0)?;
        self.packs_lowered |= refs.lowers_groups();
        let lowered = refs.apply(&*self.txn)?;
        self.decremented.extend(lowered);
        Ok(())
    }

    /// Deletes blob `id`'s manifest segments in this transaction and returns the references
    /// they held, as -1 deltas (for the caller to apply with whatever replaces them).
    pub(crate) fn drop_manifest(&mut self, id: BlobId) -> Result<Refs> {
        let mut refs = Refs::default();
        let mut keys = Vec::new();
        // The committed manifest (a manifest is written once, by the transaction that
        // creates its blob, and the blob record's lock is held here).
        kv::walk_prefix(&*self.inner.kv, Family::Manifests, &id.0, &mut |k, v| {
            for e in decode_segment(v)? {
                refs.add(&e, -1);
            }
            keys.push(k.to_vec());
            Ok(true)
        })?;
        for k in keys {
            self.txn.delete(Family::Manifests, &k)?;
        }
        Ok(refs)
    }

    /// The end of a deferred delete: a no-op when it already happened.
    pub(crate) fn finish_doomed(&mut self, id: BlobId) -> Result<()> {
        if self.txn.get_locked(Family::Doomed, &id.0, true)?.is_none() {
            return Ok(());
        }
        match self.delete_blob(id) {
            Err(StoreError::BlobNotFound(_)) => self.txn.delete(Family::Doomed, &id.0),
            other => other,
        }
    }

    fn write_blob(&mut self, id: BlobId, extents: &[Extent]) -> Result<()> {
        let size = extents.iter().map(Extent::len).sum();
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let info = BlobInfo {
            id,
            size,
            extents: extents.len() as u64,
            created,
        };
        self.txn.put(Family::Blobs, &id.0, &info.encode())?;
        for (start, seg) in segments(extents) {
            self.txn.put(
                Family::Manifests,
                &segment_key(id, start),
                &encode_segment(seg),
            )?;
        }
        let mut refs = Refs::default();
        for e in extents {
            refs.add(e, 1);
        }
        refs.apply(&*self.txn)?;
        Ok(())
    }
}

impl Inner {
    /// The extents covering `range` of blob `id`, trimmed to it.
    pub(crate) fn read_extents(&self, id: BlobId, range: Range<u64>) -> Result<Vec<Extent>> {
        let mut out = Vec::new();
        self.walk_extents(id, range, |e| {
            out.push(e);
            true
        })?;
        Ok(out)
    }

    /// Calls `f` with each extent overlapping `range`, trimmed, in order; stops when `f`
    /// returns false. Seeks to the segment holding `range.start` rather than scanning.
    pub(crate) fn walk_extents(
        &self,
        id: BlobId,
        range: Range<u64>,
        mut f: impl FnMut(Extent) -> bool,
    ) -> Result<()> {
        if range.start >= range.end {
            return Ok(());
        }
        // Start at the segment holding `range.start`: the last one starting at or before it
        // (the first segment starts at 0, so a read from the start needs no seek: one
        // catalog round trip fewer for every whole-object GET in cluster mode).
        let from = if range.start == 0 {
            segment_key(id, 0).to_vec()
        } else {
            match self
                .kv
                .floor(Family::Manifests, &segment_key(id, range.start))?
            {
                Some((k, _)) if k.starts_with(&id.0) => k,
                _ => segment_key(id, 0).to_vec(),
            }
        };
        self.kv.walk(Family::Manifests, &from, &mut |k, v| {
            let (blob, mut pos) = parse_segment_key(k)?;
            if blob != id || pos >= range.end {
                return Ok(false);
            }
            for e in decode_segment(v)? {
                let len = e.len();
                let (from, to) = (range.start.max(pos), range.end.min(pos + len));
                if from < to && !f(e.slice(from - pos, to - pos)) {
                    return Ok(false);
                }
                pos += len;
                if pos >= range.end {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }
}
