//! Streaming ingest. One pass over the input feeds three kinds of work, all on blocking
//! threads so the async side only moves buffers:
//!   - one thread per digest group (MD5 + CRCs, SHA-512, SHA-1 + SHA-256), in input order;
//!   - up to `write_parallelism` chunk tasks, each BLAKE3-hashing, pinning and durably
//!     writing one chunk (or finding it already stored: dedup; or all zeros: nothing).
//!
//! Bounded queues between them cap memory at a few chunks whatever the blob's size, and the
//! slowest digest (MD5 on one core) sets the pace.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::digest::{DigestSet, Digests};
use crate::error::{Result, StoreError};
use crate::ids::{BlobId, ChunkId};
use crate::manifest::{push_extent, Extent};
use crate::store::{Inner, PinGuard, Store};

/// Chunks queued per digest thread.
const DIGEST_QUEUE: usize = 4;

/// What a write should compute and enforce.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    pub digests: DigestSet,
    /// Fail with `TooLarge` as soon as the input exceeds this many bytes.
    pub max_size: Option<u64>,
}

/// A blob whose chunks are durable but which nothing references yet. Commit it with
/// [`crate::Tx::add_blob`]; dropping it uncommitted releases its chunks for reclamation.
pub struct StagedBlob {
    pub(crate) id: BlobId,
    pub(crate) extents: Vec<Extent>,
    size: u64,
    digests: Digests,
    pub(crate) _pins: PinGuard,
    /// Format v2: locations of the chunk groups this write appended, committed with the blob.
    pub(crate) groups: Vec<(u64, crate::group::GroupLocation)>,
}

impl StagedBlob {
    pub(crate) fn new_v2(
        id: BlobId,
        extents: Vec<Extent>,
        size: u64,
        digests: Digests,
        pins: PinGuard,
        groups: Vec<(u64, crate::group::GroupLocation)>,
    ) -> StagedBlob {
        StagedBlob {
            id,
            extents,
            size,
            digests,
            _pins: pins,
            groups,
        }
    }

    pub fn id(&self) -> BlobId {
        self.id
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn digests(&self) -> &Digests {
        &self.digests
    }
}

impl std::fmt::Debug for StagedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedBlob")
            .field("id", &self.id)
            .field("size", &self.size)
            .finish()
    }
}

struct StoredChunk {
    extent: Extent,
    pin: Option<PinGuard>,
    new_dir_entry: Option<PathBuf>,
}

pub(crate) fn is_zero(data: &[u8]) -> bool {
    // OR-folding a block vectorizes; checking per block exits early on ordinary data.
    data.chunks(4096)
        .all(|b| b.iter().fold(0u8, |acc, &x| acc | x) == 0)
}

fn store_chunk(inner: &Arc<Inner>, data: Bytes) -> Result<StoredChunk> {
    let len = data.len() as u32;
    if is_zero(&data) {
        return Ok(StoredChunk {
            extent: Extent::Zero { len: len as u64 },
            pin: None,
            new_dir_entry: None,
        });
    }
    let id = ChunkId::of(&data);
    // Pin before looking for the file: from now on reclamation leaves this chunk alone.
    let pin = inner.pin(id);
    let new_dir_entry = inner.dirs.write_chunk(&id, &data)?;
    Ok(StoredChunk {
        extent: Extent::Chunk { id, offset: 0, len },
        pin: Some(pin),
        new_dir_entry,
    })
}

struct Ingest {
    inner: Arc<Inner>,
    digest_queues: Vec<mpsc::Sender<Bytes>>,
    digest_tasks: Vec<JoinHandle<Digests>>,
    in_flight: FuturesOrdered<JoinHandle<Result<StoredChunk>>>,
    extents: Vec<Extent>,
    pins: PinGuard,
    dirs_to_sync: BTreeSet<PathBuf>,
    chunks_dispatched: usize,
}

impl Ingest {
    fn new(inner: Arc<Inner>, digests: DigestSet) -> Ingest {
        let (digest_queues, digest_tasks) = crate::digest::spawn_threads(digests, DIGEST_QUEUE);
        let pins = PinGuard::empty(&inner);
        Ingest {
            inner,
            digest_queues,
            digest_tasks,
            in_flight: FuturesOrdered::new(),
            extents: Vec::new(),
            pins,
            dirs_to_sync: BTreeSet::new(),
            chunks_dispatched: 0,
        }
    }

    async fn digest(&self, data: &Bytes) -> Result<()> {
        for q in &self.digest_queues {
            q.send(data.clone())
                .await
                .map_err(|_| StoreError::Task("digest thread stopped".into()))?;
        }
        Ok(())
    }

    async fn dispatch(&mut self, chunk: Bytes) -> Result<()> {
        self.digest(&chunk).await?;
        if self.in_flight.len() >= self.inner.cfg.write_parallelism {
            self.complete_one().await?;
        }
        let inner = self.inner.clone();
        self.in_flight
            .push_back(tokio::task::spawn_blocking(move || {
                store_chunk(&inner, chunk)
            }));
        self.chunks_dispatched += 1;
        Ok(())
    }

    async fn complete_one(&mut self) -> Result<()> {
        if let Some(done) = self.in_flight.next().await {
            let stored = done??;
            if let Some(p) = stored.pin {
                self.pins.absorb(p);
            }
            if let Some(d) = stored.new_dir_entry {
                self.dirs_to_sync.insert(d);
            }
            push_extent(&mut self.extents, stored.extent);
        }
        Ok(())
    }

    async fn drain(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.complete_one().await?;
        }
        Ok(())
    }

    /// After a failure: waits for every chunk task so their pins are released (and their
    /// chunks reclaimed) before the error is returned.
    async fn abandon(&mut self) {
        while let Some(done) = self.in_flight.next().await {
            drop(done);
        }
    }
}

impl Store {
    /// Streams `input` into durable chunks and returns the staged blob with its digests.
    pub async fn write<S, E>(&self, input: S, opts: WriteOptions) -> Result<StagedBlob>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if self.inner.cfg.format == crate::store::Format::V2 {
            return self.write_v2(input, opts).await;
        }
        let chunk_size = self.inner.cfg.chunk_size;
        let mut ingest = Ingest::new(self.inner.clone(), opts.digests);
        let mut buf = BytesMut::new();
        let mut total = 0u64;
        let result: Result<()> = async {
            futures::pin_mut!(input);
            while let Some(item) = input.next().await {
                let mut data = item.map_err(|e| StoreError::Input(e.into()))?;
                total += data.len() as u64;
                if let Some(limit) = opts.max_size {
                    if total > limit {
                        return Err(StoreError::TooLarge { limit });
                    }
                }
                while !data.is_empty() {
                    if buf.is_empty() && data.len() >= chunk_size {
                        // Whole chunk inside one input buffer: no copy.
                        ingest.dispatch(data.split_to(chunk_size)).await?;
                        continue;
                    }
                    if buf.capacity() == 0 {
                        buf.reserve(chunk_size);
                    }
                    let take = (chunk_size - buf.len()).min(data.len());
                    buf.extend_from_slice(&data.split_to(take));
                    if buf.len() == chunk_size {
                        ingest.dispatch(buf.split().freeze()).await?;
                    }
                }
            }
            if !buf.is_empty() {
                let tail = buf.split().freeze();
                if ingest.chunks_dispatched == 0
                    && tail.len() <= self.inner.cfg.inline_max
                    && !is_zero(&tail)
                {
                    ingest.digest(&tail).await?;
                    push_extent(&mut ingest.extents, Extent::Inline { data: tail });
                } else {
                    ingest.dispatch(tail).await?;
                }
            }
            ingest.drain().await
        }
        .await;
        // Close the digest queues so their threads finish, whatever happened.
        ingest.digest_queues.clear();
        let mut digests = Digests::default();
        for t in std::mem::take(&mut ingest.digest_tasks) {
            let d = t.await?;
            digests.merge(d);
        }
        if let Err(e) = result {
            // Let in-flight chunk tasks finish so their pins drop (and their chunks are
            // reclaimed) now rather than whenever the runtime gets to them.
            ingest.abandon().await;
            return Err(e);
        }
        // Make the new chunk names durable before anything can reference them.
        let dirs: Vec<PathBuf> = std::mem::take(&mut ingest.dirs_to_sync)
            .into_iter()
            .collect();
        if !dirs.is_empty() {
            tokio::task::spawn_blocking(move || {
                dirs.iter().try_for_each(|d| crate::datadirs::fsync_dir(d))
            })
            .await??;
        }
        Ok(StagedBlob {
            id: BlobId::random(),
            extents: std::mem::take(&mut ingest.extents),
            size: total,
            digests,
            _pins: std::mem::replace(&mut ingest.pins, PinGuard::empty(&self.inner)),
            groups: Vec::new(),
        })
    }

    /// Convenience for callers holding the whole input already (tests, small values).
    pub async fn write_bytes(
        &self,
        data: impl Into<Bytes>,
        opts: WriteOptions,
    ) -> Result<StagedBlob> {
        let data: Bytes = data.into();
        self.write(futures::stream::iter([Ok::<_, std::io::Error>(data)]), opts)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::is_zero;

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[]));
        assert!(is_zero(&vec![0u8; 10_000]));
        let mut v = vec![0u8; 10_000];
        v[9_999] = 1;
        assert!(!is_zero(&v));
    }
}
