//! Streaming reads of a whole blob or a byte range. A pump task walks the manifest from the
//! segment holding the first byte and keeps up to `read_ahead` chunk reads in flight on
//! blocking threads (so a cold disk sees a queue, and verification runs on both cores),
//! delivering their bytes in order through a one-buffer queue. Each chunk read
//! touches only the 64 KiB blocks the range needs and verifies their CRC32C before the
//! bytes leave.

use std::collections::HashMap;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::{self, BoxFuture};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;

use crate::datadirs::DataDirs;
use crate::error::{Result, StoreError};
use crate::ids::{BlobId, ChunkId};
use crate::lease::ReadLease;
use crate::manifest::{BlobInfo, Extent};
use crate::store::{Inner, Store};

const ZERO_BUF: usize = 1 << 20;
static ZEROS: [u8; ZERO_BUF] = [0; ZERO_BUF];
/// Extents fetched from the catalog per step of the pump.
const EXTENT_BATCH: usize = 256;

/// The bytes of a blob (or a range of it), in order. An integrity failure arrives as an
/// `Err` item and ends the stream: bytes that fail verification are never yielded.
pub struct BlobReader {
    rx: mpsc::Receiver<Result<Bytes>>,
}

impl Stream for BlobReader {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Store {
    /// Opens `range` (or all) of blob `id` for reading. Returns the blob's record first so a
    /// front end can send its length before any byte.
    pub async fn read(
        &self,
        id: BlobId,
        range: Option<Range<u64>>,
    ) -> Result<(BlobInfo, BlobReader)> {
        // The lease first: a delete that commits after it waits for this read to end.
        let inner = self.inner.clone();
        let (lease, info) =
            tokio::task::spawn_blocking(move || ReadLease::acquire(&inner, id)).await??;
        let info = info.ok_or(StoreError::BlobNotFound(id))?;
        let range = range.unwrap_or(0..info.size);
        if range.start > range.end || range.end > info.size {
            return Err(StoreError::InvalidRange {
                start: range.start,
                end: range.end,
                size: info.size,
            });
        }
        // The read-ahead lives in the in-flight chunk reads; one finished buffer waits for the
        // consumer, so each reader holds about `read_ahead + 2` chunks.
        let (tx, rx) = mpsc::channel(1);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let result = pump(inner, id, range, &tx).await;
            // Released before the stream ends, so a reader that deletes the blob right
            // after reading it is not deferred behind its own lease.
            drop(lease);
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok((info, BlobReader { rx }))
    }

    /// Reads a range into memory (tests and small values only).
    pub async fn read_to_vec(&self, id: BlobId, range: Option<Range<u64>>) -> Result<Vec<u8>> {
        let (_, mut r) = self.read(id, range).await?;
        let mut out = Vec::new();
        while let Some(b) = r.next().await {
            out.extend_from_slice(&b?);
        }
        Ok(out)
    }
}

fn read_chunk(inner: &Inner, id: &ChunkId, from: usize, to: usize) -> Result<Bytes> {
    let (file, path) = inner.dirs.open_chunk(id)?;
    DataDirs::read_range(
        &file,
        &path,
        id,
        from,
        to,
        inner.cfg.verify_full_hash_on_read,
    )
}

async fn pump(
    inner: Arc<Inner>,
    id: BlobId,
    range: Range<u64>,
    tx: &mpsc::Sender<Result<Bytes>>,
) -> Result<()> {
    let depth = inner.cfg.read_ahead;
    let mut in_flight: FuturesOrdered<BoxFuture<'static, Result<Bytes>>> = FuturesOrdered::new();
    let mut pos = range.start;
    while pos < range.end {
        let walker = inner.clone();
        let span = pos..range.end;
        let batch = tokio::task::spawn_blocking(move || {
            // The response is already under way: a catalog that is briefly unreachable (a
            // database restart) is waited out rather than cutting the body short.
            retry_transient(|| {
                let mut batch = Vec::new();
                walker.walk_extents(id, span.clone(), |e| {
                    batch.push(e);
                    batch.len() < EXTENT_BATCH
                })?;
                // Runs of v2 chunks become planned pack reads here, off the async threads.
                let mut groups = HashMap::new();
                batch
                    .into_iter()
                    .map(|e| match e {
                        Extent::Run {
                            first,
                            count,
                            skip,
                            len,
                        } => Ok(Item::Packs {
                            len,
                            reads: walker.plan_run(first, count, skip, len, &mut groups)?,
                        }),
                        e => Ok(Item::Extent(e)),
                    })
                    .collect::<Result<Vec<Item>>>()
            })
        })
        .await??;
        if batch.is_empty() {
            return Err(StoreError::Malformed(
                "manifest shorter than its blob record",
            ));
        }
        for item in batch {
            let e = match item {
                Item::Extent(e) => e,
                Item::Packs { len, reads } => {
                    pos += len;
                    for r in reads {
                        let reader = inner.clone();
                        let slots = inner.read_slots.clone();
                        let job = async move {
                            let slot = slots.acquire_owned().await.map_err(|_| closing())?;
                            tokio::task::spawn_blocking(move || {
                                let _slot = slot;
                                reader.read_pack(&r)
                            })
                            .await
                            .map_err(StoreError::from)?
                        };
                        in_flight.push_back(job.boxed());
                        if !deliver(&mut in_flight, depth - 1, tx).await? {
                            return Ok(());
                        }
                    }
                    continue;
                }
            };
            pos += e.len();
            match e {
                Extent::Chunk {
                    id: chunk,
                    offset,
                    len,
                } => {
                    let reader = inner.clone();
                    let (from, to) = (offset as usize, offset as usize + len as usize);
                    let slots = inner.read_slots.clone();
                    let job = async move {
                        // Closed only on drop of the store: then the read fails as cancelled.
                        let slot = slots.acquire_owned().await.map_err(|_| closing())?;
                        tokio::task::spawn_blocking(move || {
                            let _slot = slot;
                            read_chunk(&reader, &chunk, from, to)
                        })
                        .await
                        .map_err(StoreError::from)?
                    };
                    in_flight.push_back(job.boxed());
                }
                Extent::Zero { len } => {
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(ZERO_BUF as u64) as usize;
                        in_flight
                            .push_back(future::ready(Ok(Bytes::from_static(&ZEROS[..n]))).boxed());
                        left -= n as u64;
                        if !deliver(&mut in_flight, depth - 1, tx).await? {
                            return Ok(());
                        }
                    }
                }
                Extent::Inline { data } => in_flight.push_back(future::ready(Ok(data)).boxed()),
                // Planned as pack reads when the batch was fetched.
                Extent::Run { .. } => return Err(StoreError::Malformed("unplanned run")),
            }
            if !deliver(&mut in_flight, depth - 1, tx).await? {
                return Ok(());
            }
        }
    }
    deliver(&mut in_flight, 0, tx).await.map(|_| ())
}

/// What the pump works through: plain extents, and runs of v2 chunks already planned as
/// pack reads.
enum Item {
    Extent(Extent),
    Packs {
        len: u64,
        reads: Vec<crate::packread::PackRead>,
    },
}

/// The read semaphore closes only when the store is dropped: reads then fail as cancelled.
fn closing() -> StoreError {
    StoreError::Io {
        path: std::path::PathBuf::new(),
        source: std::io::Error::other("store closing"),
    }
}

/// Sends finished reads, in order, until at most `keep` remain in flight. False when the
/// reader has gone away (the remaining reads are dropped with the pump).
async fn deliver(
    in_flight: &mut FuturesOrdered<BoxFuture<'static, Result<Bytes>>>,
    keep: usize,
    tx: &mpsc::Sender<Result<Bytes>>,
) -> Result<bool> {
    while in_flight.len() > keep {
        let b = in_flight.next().await.expect("non-empty")?;
        if tx.send(Ok(b)).await.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// How long a read under way waits out a transient catalog failure before giving up.
const TRANSIENT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `f` again (with backoff) while it fails transiently, for up to `TRANSIENT_PATIENCE`.
fn retry_transient<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(50);
    loop {
        match f() {
            Err(e) if e.is_transient() && started.elapsed() < TRANSIENT_PATIENCE => {
                tracing::debug!(error = %e, "a read waits for the catalog");
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
            other => return other,
        }
    }
}
