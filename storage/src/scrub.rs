//! Scrub (fsck): checks that the catalog and the chunk files agree and that every chunk's
//! bytes still hash to its name. Reference counts are recomputed from the manifests under one
//! RocksDB snapshot, so a scrub can run while the store serves traffic; repairs are applied as
//! deltas through the merge operator, which commute with concurrent commits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::catalog::decode_count;
use crate::datadirs::DataDirs;
use crate::error::{Result, StoreError};
use crate::ids::{BlobId, ChunkId};
use crate::kv::{Family, Op};
use crate::manifest::{decode_segment, parse_segment_key, BlobInfo};
use crate::progress::{Progress, ProgressUnit};
use crate::store::{Inner, Store};

#[derive(Clone, Copy, Debug)]
pub struct ScrubOptions {
    /// Read every chunk and check its BLAKE3 hash (slow: reads all data).
    pub verify_data: bool,
    /// Fix reference counts and remove orphan chunks.
    pub repair: bool,
    /// Orphans younger than this are left alone (they may belong to a write in progress).
    pub grace: Duration,
}

impl Default for ScrubOptions {
    fn default() -> Self {
        ScrubOptions {
            verify_data: true,
            repair: false,
            grace: Duration::from_secs(3600),
        }
    }
}

/// What scrub found. `is_clean` is true when nothing needs attention.
#[derive(Clone, Debug, Default)]
pub struct ScrubReport {
    pub blobs: u64,
    pub chunks: u64,
    pub bytes_verified: u64,
    /// Chunk files whose bytes no longer hash to their name.
    pub corrupt: Vec<(ChunkId, PathBuf)>,
    /// Chunks that manifests reference but no data directory holds.
    pub missing: Vec<ChunkId>,
    /// Chunk files nothing references (older than the grace period).
    pub orphans: Vec<ChunkId>,
    /// (chunk, stored count, count the manifests imply).
    pub refcount_mismatches: Vec<(ChunkId, i64, i64)>,
    /// Blobs whose record and manifest disagree, or manifests without a record.
    pub bad_blobs: Vec<BlobId>,
    /// Files in chunk directories whose names are not chunk ids.
    pub stray_files: Vec<PathBuf>,
    /// Blobs that reference a corrupt or missing chunk: what the damage costs. A write of
    /// the same content (any blob, any front end) replaces a corrupt chunk file; until then
    /// reads of these blobs fail where they meet the damaged chunk.
    pub damaged_blobs: Vec<BlobId>,
    pub repaired: u64,
    /// Format v2: pack files seen.
    pub packs: u64,
    /// Format v2: (pack, record offset, chunk number) of records that fail their CRC32C,
    /// do not decode or do not hash to the name in their header.
    pub corrupt_records: Vec<(u64, u64, u64)>,
    /// Format v2: chunk numbers manifests reference whose record is gone or whose pack is
    /// missing.
    pub missing_records: Vec<u64>,
    /// Format v2: (chunk number, stored count, count the manifests imply).
    pub group_count_mismatches: Vec<(u64, i64, i64)>,
    /// Format v2: pack bytes no live chunk uses (compaction reclaims them; not an error).
    pub garbage_bytes: u64,
    /// Format v2: packs holding no live chunk: an uncommitted write's, or debris of one
    /// that failed or whose node died, which compaction removes (not an error).
    pub dead_packs: u64,
    /// Format v2, with `repair`: damaged records replaced by a good copy already stored
    /// (no longer listed in `corrupt_records`).
    pub records_healed: u64,
}

impl ScrubReport {
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
            && self.missing.is_empty()
            && self.orphans.is_empty()
            && self.refcount_mismatches.is_empty()
            && self.bad_blobs.is_empty()
            && self.stray_files.is_empty()
            && self.corrupt_records.is_empty()
            && self.missing_records.is_empty()
            && self.group_count_mismatches.is_empty()
    }

    /// Damage no repair can undo: data that fails verification or is gone.
    pub fn has_damage(&self) -> bool {
        !self.corrupt.is_empty()
            || !self.missing.is_empty()
            || !self.corrupt_records.is_empty()
            || !self.missing_records.is_empty()
    }
}

impl Store {
    pub async fn scrub(&self, opts: ScrubOptions) -> Result<ScrubReport> {
        self.scrub_tracked(opts, Arc::default()).await
    }

    /// [`Store::scrub`], telling `progress` how far it has got (phases: catalog, packs,
    /// chunk files).
    pub async fn scrub_tracked(
        &self,
        opts: ScrubOptions,
        progress: Arc<Progress>,
    ) -> Result<ScrubReport> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || scrub(&inner, opts, &progress)).await?
    }
}

fn scrub(inner: &Arc<Inner>, opts: ScrubOptions, progress: &Progress) -> Result<ScrubReport> {
    let kv = &*inner.kv;
    let mut report = ScrubReport::default();
    // A repairing scrub changes counts and removes orphans: one node at a time, and never
    // beside a compaction elsewhere.
    let _singleton = match opts.repair {
        true => Some(kv.singleton(crate::compact::MAINTENANCE)?.ok_or_else(|| {
            StoreError::Task("another node is running compaction or a repairing scrub".into())
        })?),
        false => None,
    };
    let snap = kv.snapshot()?;
    progress.phase("catalog", ProgressUnit::Entries, 0);

    // 1. What the manifests say: expected reference counts and per-blob totals.
    let mut expected: HashMap<ChunkId, i64> = HashMap::new();
    // The v2 side of the same count: per group slot, as a delete would drop them.
    let mut expected_groups = crate::refs::Refs::default();
    let mut totals: HashMap<BlobId, (u64, u64)> = HashMap::new();
    snap.walk(Family::Manifests, &[], &mut |k, v| {
        let (blob, _) = parse_segment_key(k)?;
        progress.advance(1);
        let t = totals.entry(blob).or_default();
        for e in decode_segment(v)? {
            t.0 += e.len();
            t.1 += 1;
            if let Some(c) = e.chunk() {
                *expected.entry(c).or_default() += 1;
            }
            expected_groups.add(&e, 1);
        }
        Ok(true)
    })?;

    // 2. Blob records against their manifests.
    snap.walk(Family::Blobs, &[], &mut |k, v| {
        let id = BlobId(
            k.try_into()
                .map_err(|_| StoreError::Malformed("blob key"))?,
        );
        let info = BlobInfo::decode(id, v)?;
        report.blobs += 1;
        let (size, extents) = totals.remove(&id).unwrap_or((0, 0));
        if size != info.size || extents != info.extents {
            report.bad_blobs.push(id);
        }
        Ok(true)
    })?;
    report.bad_blobs.extend(totals.keys().copied()); // manifests whose record is gone

    // 3. Stored counts against expected ones.
    let mut stored: HashMap<ChunkId, i64> = HashMap::new();
    snap.walk(Family::Chunks, &[], &mut |k, v| {
        let id = ChunkId(
            k.try_into()
                .map_err(|_| StoreError::Malformed("chunk key"))?,
        );
        stored.insert(id, decode_count(v));
        Ok(true)
    })?;
    crate::scrub_packs::scrub_packs(inner, &*snap, &expected_groups, opts, progress, &mut report)?;
    drop(snap);
    let mut all: Vec<ChunkId> = expected.keys().chain(stored.keys()).copied().collect();
    all.sort_unstable();
    all.dedup();
    for id in &all {
        let (have, want) = (
            stored.get(id).copied().unwrap_or(0),
            expected.get(id).copied().unwrap_or(0),
        );
        if have != want {
            report.refcount_mismatches.push((*id, have, want));
            if opts.repair {
                kv.write(
                    &[Op::Add(Family::Chunks, id.0.to_vec(), vec![want - have])],
                    true,
                )?;
                report.repaired += 1;
            }
        }
    }

    // 4. The files themselves.
    let now = SystemTime::now();
    let mut files: Vec<(ChunkId, PathBuf, SystemTime)> = Vec::new();
    report.stray_files = inner.dirs.list_chunks(|id, p, t| files.push((id, p, t)))?;
    progress.phase("chunk files", ProgressUnit::Entries, files.len() as u64);
    let mut present = std::collections::HashSet::new();
    let mut orphans = Vec::new();
    for (id, path, mtime) in files {
        progress.advance(1);
        report.chunks += 1;
        present.insert(id);
        if opts.verify_data {
            match DataDirs::verify_file(&path, &id) {
                Ok(n) => report.bytes_verified += n,
                Err(StoreError::Corrupt { .. }) => report.corrupt.push((id, path.clone())),
                Err(e) => return Err(e),
            }
        }
        if !expected.contains_key(&id)
            && now.duration_since(mtime).unwrap_or_default() >= opts.grace
        {
            orphans.push(id);
        }
    }
    // A chunk referenced in the snapshot may have been released since; only report it
    // missing if it is still referenced now.
    for id in expected.keys().filter(|id| !present.contains(id)) {
        let now_count = kv
            .get(Family::Chunks, &id.0)?
            .as_deref()
            .map(decode_count)
            .unwrap_or(0);
        if now_count > 0 && inner.dirs.find(id).is_none() {
            report.missing.push(*id);
        }
    }
    if report.has_damage() {
        let damaged: std::collections::HashSet<ChunkId> = report
            .corrupt
            .iter()
            .map(|(id, _)| *id)
            .chain(report.missing.iter().copied())
            .collect();
        let damaged_v2: std::collections::HashSet<u64> = report
            .corrupt_records
            .iter()
            .map(|r| r.2)
            .chain(report.missing_records.iter().copied())
            .collect();
        report.damaged_blobs = blobs_referencing(inner, &damaged, &damaged_v2)?;
    }
    if opts.repair {
        report.repaired += inner.reclaim(&orphans)? as u64;
        // What reclaim kept was pinned or referenced by a commit after the snapshot.
        orphans.retain(|id| inner.dirs.find(id).is_some());
    }
    report.orphans = orphans;
    Ok(report)
}

/// The blobs whose manifests reference any of `chunks` (a second pass over the manifests,
/// made only when scrub found damage).
fn blobs_referencing(
    inner: &Arc<Inner>,
    chunks: &std::collections::HashSet<ChunkId>,
    numbers: &std::collections::HashSet<u64>,
) -> Result<Vec<BlobId>> {
    let mut out: Vec<BlobId> = Vec::new();
    inner.kv.walk(Family::Manifests, &[], &mut |k, v| {
        let (blob, _) = parse_segment_key(k)?;
        if out.last() != Some(&blob)
            && decode_segment(v)?.iter().any(|e| {
                e.chunk().is_some_and(|c| chunks.contains(&c))
                    || crate::scrub_packs::references_any(e, numbers)
            })
        {
            out.push(blob);
        }
        Ok(true)
    })?;
    Ok(out)
}
