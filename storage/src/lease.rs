//! Read leases: a blob being read is not torn down under its reader.
//!
//! A compute node may be halfway through a multi-GiB image when the image is deleted, or an
//! S3 GET may be streaming an object that is overwritten. Like an open file descriptor on
//! an unlinked file, the read must finish with the bytes it started with. So every read
//! holds a lease on its blob, and deleting a leased blob is *deferred*: the transaction that
//! deletes it (and the front end's record with it) commits, but instead of dropping the
//! manifest and references it writes the blob id to the `doomed` column family. The last
//! reader's lease finishes the delete; a crash before that leaves the `doomed` key, and the
//! next open finishes it (no reader survives a restart).
//!
//! Races, all settled under one mutex:
//! - a delete that finds no reader marks the blob *deleting* until its transaction ends, and
//!   a read that starts meanwhile is refused (`BlobNotFound`), as it would be a moment later;
//! - a deferred delete, once committed, either sees the readers already gone (and finishes
//!   at once) or records the blob as doomed for the last lease to finish.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::error::{Result, StoreError};
use crate::ids::BlobId;
use crate::manifest::BlobInfo;
use crate::store::Inner;

#[derive(Default)]
pub(crate) struct Leases {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    readers: HashMap<BlobId, u32>,
    /// Deletes in progress (transaction not yet ended) of blobs without readers.
    deleting: HashSet<BlobId>,
    /// Deletes committed as deferred, waiting for the last reader.
    doomed: HashSet<BlobId>,
}

impl Leases {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("leases")
    }

    /// Whether a delete of `id` must be deferred (it has readers). Otherwise the blob is
    /// marked deleting until [`Leases::end_delete`].
    pub(crate) fn begin_delete(&self, id: BlobId) -> bool {
        let mut s = self.state();
        if s.readers.contains_key(&id) {
            return true;
        }
        s.deleting.insert(id);
        false
    }

    pub(crate) fn end_delete(&self, ids: &[BlobId]) {
        if ids.is_empty() {
            return;
        }
        let mut s = self.state();
        for id in ids {
            s.deleting.remove(id);
        }
    }

    /// After a deferred delete of `id` committed: true when its readers are already gone
    /// (the caller finishes the delete now); otherwise the last lease will.
    pub(crate) fn deferred(&self, id: BlobId) -> bool {
        let mut s = self.state();
        if s.readers.contains_key(&id) {
            s.doomed.insert(id);
            false
        } else {
            true
        }
    }

    fn acquire(&self, id: BlobId) -> Result<()> {
        let mut s = self.state();
        if s.deleting.contains(&id) || s.doomed.contains(&id) {
            return Err(StoreError::BlobNotFound(id));
        }
        *s.readers.entry(id).or_insert(0) += 1;
        Ok(())
    }

    /// True when this was the last reader of a doomed blob.
    fn release(&self, id: BlobId) -> bool {
        let mut s = self.state();
        let Some(n) = s.readers.get_mut(&id) else {
            return false;
        };
        *n -= 1;
        if *n > 0 {
            return false;
        }
        s.readers.remove(&id);
        s.doomed.remove(&id)
    }
}

/// Held by a read for as long as it runs. With a shared catalog it is a catalog row too
/// (cluster.rs), so that deletes on other nodes wait for it.
pub(crate) struct ReadLease {
    inner: Arc<Inner>,
    id: BlobId,
    row: Option<Vec<u8>>,
}

impl ReadLease {
    /// The lease and the blob's record (`None`: no such blob). Blocking with a shared
    /// catalog, where the lease is a catalog row taken in the same round trip as the record.
    pub(crate) fn acquire(inner: &Arc<Inner>, id: BlobId) -> Result<(ReadLease, Option<BlobInfo>)> {
        inner.leases.acquire(id)?;
        let mut lease = ReadLease {
            inner: inner.clone(),
            id,
            row: None,
        };
        let info = match &inner.node {
            Some(node) => {
                let (row, record) = inner.lease_in_catalog(node, id)?;
                lease.row = Some(row);
                Some(BlobInfo::decode(id, &record)?)
            }
            None => inner.blob_info(id)?,
        };
        Ok((lease, info))
    }
}

impl Drop for ReadLease {
    fn drop(&mut self) {
        let last_of_doomed = self.inner.leases.release(self.id);
        let row = self.row.take();
        if !last_of_doomed && row.is_none() {
            return;
        }
        let id = self.id;
        self.inner.in_background(move |inner| {
            let doomed = match row {
                // The row goes first: whoever removes the last lease sees the blob doomed.
                Some(row) => match inner.kv.drop_lease(&id.0, &row) {
                    Ok(doomed) => doomed,
                    Err(e) => {
                        tracing::warn!(blob = %id, error = %e, "dropping a read lease from the catalog failed; it goes when this node does");
                        false
                    }
                },
                None => false,
            };
            if !(last_of_doomed || doomed) {
                return;
            }
            if let Err(e) = inner.finish_doomed(id) {
                tracing::warn!(blob = %id, error = %e, "finishing a deferred delete failed; the next open retries");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_wait_for_readers_and_block_new_ones() {
        let l = Leases::default();
        let (a, b) = (BlobId::random(), BlobId::random());
        l.acquire(a).unwrap();
        assert!(l.begin_delete(a), "a read blob's delete is deferred");
        assert!(!l.deferred(a), "the reader is still there");
        assert!(l.release(a), "the last reader finishes the delete");
        assert!(!l.begin_delete(b), "no reader: deleted now");
        assert!(matches!(l.acquire(b), Err(StoreError::BlobNotFound(_))));
        l.end_delete(&[b]);
        l.acquire(b).unwrap();
        assert!(!l.release(b), "not doomed");
    }
}
