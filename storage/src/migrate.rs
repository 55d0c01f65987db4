//! Migration from format v1 to v2: a blob's bytes are read and written again through the v2
//! ingest (content-defined chunks, deduplicated against everything already in packs), then
//! one transaction swaps its manifest under the *same blob id* — the front ends' records
//! (S3 objects, images) name blobs by id and need no change — and drops the v1 references;
//! v1 chunk files left without references are reclaimed after the commit.
//!
//! Run it with the server stopped (`glint migrate-store`): a v1 chunk freed here would cut
//! short a download of the same blob running in another process. Each blob is migrated in
//! its own transaction, so an interrupted migration leaves every blob whole, in one format
//! or the other, and a second run continues where the first stopped.

use futures::StreamExt;

use crate::digest::DigestSet;
use crate::error::{Result, StoreError};
use crate::group::group_key;
use crate::ids::BlobId;
use crate::kv::Family;
use crate::manifest::{encode_segment, segment_key, segments, BlobInfo, Extent};
use crate::store::Store;
use crate::tx::Tx;
use crate::write::{StagedBlob, WriteOptions};

impl Store {
    /// Whether blob `id` still has format v1 extents.
    pub async fn has_v1_extents(&self, id: BlobId) -> Result<bool> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut v1 = false;
            inner.walk_extents(id, 0..u64::MAX, |e| {
                v1 |= matches!(e, Extent::Chunk { .. });
                !v1
            })?;
            Ok(v1)
        })
        .await?
    }

    /// Rewrites blob `id` in format v2 under the same id. `Ok(false)` when it had nothing
    /// in format v1 (or is gone).
    pub async fn migrate_blob(&self, id: BlobId) -> Result<bool> {
        if !self.has_v1_extents(id).await? {
            return Ok(false);
        }
        let (info, reader) = match self.read(id, None).await {
            Ok(r) => r,
            Err(StoreError::BlobNotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let staged = self
            .write_v2(
                reader.map(|r| r.map_err(std::io::Error::other)),
                WriteOptions {
                    digests: DigestSet::NONE,
                    max_size: Some(info.size),
                },
            )
            .await?;
        if staged.size() != info.size {
            return Err(StoreError::Malformed("a migrated blob changed size"));
        }
        self.transact(move |tx| tx.replace_manifest(id, &staged))
            .await
    }
}

impl Tx<'_> {
    /// Gives blob `id` the extents of `staged` (same bytes, new format), in this transaction.
    /// `Ok(false)` if the blob is gone.
    fn replace_manifest(&mut self, id: BlobId, staged: &StagedBlob) -> Result<bool> {
        let Some(rec) = self.txn().get_locked(Family::Blobs, &id.0, true)? else {
            return Ok(false);
        };
        let old = BlobInfo::decode(id, &rec)?;
        if old.size != staged.size() {
            return Err(StoreError::Malformed("a migrated blob changed size"));
        }
        let mut refs = self.drop_manifest(id)?;
        for (g, loc) in &staged.groups {
            self.txn()
                .put(Family::Groups, &group_key(*g), &loc.encode())?;
        }
        for (start, seg) in segments(&staged.extents) {
            self.txn().put(
                Family::Manifests,
                &segment_key(id, start),
                &encode_segment(seg),
            )?;
        }
        for e in &staged.extents {
            refs.add(e, 1);
        }
        let info = BlobInfo {
            extents: staged.extents.len() as u64,
            ..old
        };
        self.txn().put(Family::Blobs, &id.0, &info.encode())?;
        self.packs_lowered |= refs.lowers_groups();
        let lowered = refs.apply(self.txn())?;
        self.note_decremented(lowered);
        Ok(true)
    }
}
