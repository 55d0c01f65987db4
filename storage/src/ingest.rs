//! Streaming ingest in format v2: content-defined chunks, deduplicated against the whole
//! store through the chunk index, new ones compressed and appended to a pack.
//!
//! ```text
//! input ─► chunker (4 KiB-aligned cuts) ─► batches of whole chunks (≥ 1 MiB)
//!            │                                │
//!            └► digest threads (MD5, SHA-512…) └► examine tasks, up to write_parallelism:
//!                                                  zero test, BLAKE3, index lookup (+ pin),
//!                                                  compression of new chunks
//!                                                     │ in stream order
//!                                                  appender thread: in-blob dedup, append to
//!                                                  the ingest's pack, chunk numbers, extents
//! ```
//!
//! At the end the pack is fsynced (and its directory, if the pack is new) before the staged
//! blob is returned: the same commit rule as format v1, with one `fdatasync` per pack
//! instead of one per chunk.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cdc::Chunker;
use crate::digest::Digests;
use crate::error::{Result, StoreError};
use crate::group::{group_key, ChunkLocation, ChunkNo, GroupLocation, Slot, GROUP_SLOTS};
use crate::ids::{BlobId, ChunkId};
use crate::kv::{Family, Op};
use crate::manifest::{push_extent, Extent};
use crate::pack::{self, Encoded, RecordHeader, RECORD_HEADER};
use crate::stats;
use crate::store::{Inner, PinGuard, Store};
use crate::write::{is_zero, StagedBlob, WriteOptions};

/// Bytes of whole chunks handed to one examine task.
const BATCH: usize = 1 << 20;
/// Batches queued per digest thread.
const DIGEST_QUEUE: usize = 4;

/// The dedup index key of a chunk name: its first 64 bits. A key is a hint, never trusted:
/// a hit is confirmed against the full 256-bit name in the pack record. Two chunks whose
/// keys collide (about one pair among 6 × 10⁹ chunks, or one forged with 2³² work) only cost
/// a missed dedup — the later one takes the entry — never wrong data. Eight bytes instead
/// of sixteen keep the index near 23 bytes per chunk (storage/README.md).
pub(crate) type IndexKey = [u8; 8];

pub(crate) fn index_key(name: &ChunkId) -> IndexKey {
    name.0[..8].try_into().expect("8")
}

/// What one chunk of a batch turned out to be.
enum Piece {
    Zero(u64),
    /// Already stored under this number (pinned).
    Known {
        no: ChunkNo,
        len: u32,
    },
    New(Encoded),
}

struct Examined {
    pieces: Vec<Piece>,
    pins: PinGuard,
}

impl Inner {
    /// The chunk number the dedup index holds under `key` (a hint: see [`IndexKey`]).
    pub(crate) fn indexed(&self, key: IndexKey) -> Result<Option<ChunkNo>> {
        Ok(self
            .kv
            .get(Family::ChunkIndex, &key)?
            .and_then(|v| crate::group::Reader(&v).varint().map(ChunkNo)))
    }

    /// Where chunk `no`'s record is now, if its group has it.
    pub(crate) fn locate_chunk(&self, no: ChunkNo) -> Result<Option<ChunkLocation>> {
        match self.kv.get(Family::Groups, &group_key(no.group()))? {
            Some(g) => Ok(GroupLocation::decode(&g)?.locate(no.slot())),
            None => Ok(None),
        }
    }

    /// The stored chunk with this name and length, if the index knows one and its pack record
    /// confirms the full name. Pins it first, so compaction keeps it from then on.
    /// `prefetched`: the batch's index entries read together (a remote catalog), else `None`
    /// and the index is asked now.
    fn find_chunk(
        self: &Arc<Self>,
        name: &ChunkId,
        raw_len: u32,
        prefetched: Option<&HashMap<Vec<u8>, Vec<u8>>>,
        pins: &mut PinGuard,
    ) -> Result<Option<ChunkNo>> {
        let key = index_key(name);
        let indexed = match prefetched {
            Some(entries) => entries
                .get(&key[..])
                .and_then(|v| crate::group::Reader(v).varint().map(ChunkNo)),
            None => self.indexed(key)?,
        };
        match indexed {
            Some(no) => self.confirm_chunk(no, name, raw_len, pins),
            None => Ok(None),
        }
    }

    /// Chunk `no`, if its record holds the chunk with this name and length (sound): pinned
    /// into `pins` before its location is read, so compaction keeps it from then on.
    fn confirm_chunk(
        self: &Arc<Self>,
        no: ChunkNo,
        name: &ChunkId,
        raw_len: u32,
        pins: &mut PinGuard,
    ) -> Result<Option<ChunkNo>> {
        pins.pin_chunk(no)?;
        let Some(at) = self.locate_chunk(no)? else {
            return Ok(None);
        };
        if at.slot.raw_len != raw_len {
            return Ok(None);
        }
        // The whole record is read and its stored bytes checked against the catalog's CRC:
        // a new blob must never be acknowledged over damaged bytes. A damaged record is
        // noted and this chunk stored afresh, which then heals it (heal.rs).
        let mut rec = vec![0u8; RECORD_HEADER + at.slot.stored_len as usize];
        match self.packs.read_exact_at(at.pack, at.record, &mut rec) {
            Ok(()) => {}
            Err(e) if e.is_integrity() || matches!(e, StoreError::Malformed(_)) => {
                tracing::warn!(chunk = no.0, error = %e, "indexed chunk unreadable; storing a fresh copy");
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let damaged = |name| crate::heal::Damaged {
            no,
            name,
            raw_len,
            crc: at.slot.crc,
        };
        match RecordHeader::decode(&rec) {
            Some(rh) if rh.name == *name && rh.raw_len == raw_len && rh.crc == at.slot.crc => {
                if crc32c::crc32c(&rec[RECORD_HEADER..]) != at.slot.crc {
                    self.damage.note(index_key(name), damaged(Some(rh.name)));
                    return Ok(None);
                }
                Ok(Some(no))
            }
            // A damaged header where the index points: the record is known by the index key,
            // its length and its CRC (heal.rs).
            None => {
                self.damage.note(index_key(name), damaged(None));
                Ok(None)
            }
            // Another chunk whose name shares the index key: only a missed dedup.
            Some(_) => Ok(None),
        }
    }

    /// Sorts a batch's chunks into zeros, chunks already stored and new ones. A chunk that
    /// follows a found one in the stream is first tried as the next chunk number (a shared
    /// run is stored as consecutive numbers), then looked up in the index; afterwards the
    /// chunks before a found one are tried as the numbers before it. The index holds only
    /// some chunks (see [`indexed_on_write`]); these two walks find the rest of their runs.
    fn examine(self: &Arc<Self>, data: Bytes, ends: Vec<usize>) -> Result<Examined> {
        enum Seen {
            Zero(u64),
            Known(ChunkNo, u32),
            Unknown(Bytes, ChunkId),
        }
        let mut seen = Vec::with_capacity(ends.len());
        let mut pins = PinGuard::empty(self);
        let mut start = 0;
        let mut previous: Option<ChunkNo> = None;
        // Zero tests and names first; with a remote catalog, the batch's index entries are
        // then read in one round trip (entries are hints either way: see `confirm_chunk`).
        let named: Vec<(Bytes, Option<ChunkId>)> = ends
            .iter()
            .map(|&end| {
                let chunk = data.slice(start..end);
                start = end;
                let name = (!is_zero(&chunk)).then(|| ChunkId::of(&chunk));
                (chunk, name)
            })
            .collect();
        let prefetched = match self.kv.batches_reads() {
            true => {
                let keys: Vec<Vec<u8>> = named
                    .iter()
                    .filter_map(|(_, n)| n.as_ref().map(|n| index_key(n).to_vec()))
                    .collect();
                Some(self.kv.get_many(Family::ChunkIndex, &keys)?)
            }
            false => None,
        };
        for (chunk, name) in named {
            let Some(name) = name else {
                seen.push(Seen::Zero(chunk.len() as u64));
                previous = None;
                continue;
            };
            let len = chunk.len() as u32;
            let mut found = match previous {
                Some(p) => self.confirm_chunk(ChunkNo(p.0 + 1), &name, len, &mut pins)?,
                None => None,
            };
            if found.is_none() {
                found = self.find_chunk(&name, len, prefetched.as_ref(), &mut pins)?;
            }
            match found {
                Some(no) => {
                    seen.push(Seen::Known(no, len));
                    previous = Some(no);
                }
                None => {
                    seen.push(Seen::Unknown(chunk, name));
                    previous = None;
                }
            }
        }
        for i in (0..seen.len().saturating_sub(1)).rev() {
            let before = match &seen[i + 1] {
                Seen::Known(no, _) if no.0 > 0 => ChunkNo(no.0 - 1),
                _ => continue,
            };
            if let Seen::Unknown(chunk, name) = &seen[i] {
                let len = chunk.len() as u32;
                if let Some(no) = self.confirm_chunk(before, name, len, &mut pins)? {
                    seen[i] = Seen::Known(no, len);
                }
            }
        }
        let pieces = seen
            .into_iter()
            .map(|s| match s {
                Seen::Zero(n) => Piece::Zero(n),
                Seen::Known(no, len) => Piece::Known { no, len },
                Seen::Unknown(chunk, name) => {
                    Piece::New(pack::encode_named(chunk, name, self.cfg.codec))
                }
            })
            .collect();
        Ok(Examined { pieces, pins })
    }
}

/// Whether a chunk a write appends gets a dedup index entry: one in four by name (hooks,
/// which lead into any long shared run), the first of each run of new chunks in the stream
/// or in a batch, and the first of each group. Every other chunk of a run is found from those through
/// consecutive chunk numbers ([`Inner::examine`]), so an identical upload still finds every
/// chunk while the index — most of the catalog — holds about three in ten chunks
/// (storage/README.md, "Sparse index").
fn indexed_on_write(name: &ChunkId, starts_run: bool, no: ChunkNo) -> bool {
    name.0[31] & 3 == 0 || starts_run || no.slot() == 0
}

/// The group being filled: chunks appended back to back to one pack.
struct OpenGroup {
    id: u64,
    loc: GroupLocation,
}

/// Full packs being uploaded at once by one ingest (cluster mode).
const UPLOADS_IN_FLIGHT: usize = 2;

fn join_upload(u: std::thread::JoinHandle<Result<()>>) -> Result<()> {
    u.join()
        .map_err(|_| StoreError::Task("a pack upload panicked".into()))?
}

/// The appender: owns the ingest's pack and everything that must follow stream order.
struct Appender {
    inner: Arc<Inner>,
    writer: Option<pack::PackWriter>,
    new_pack_dirs: Vec<PathBuf>,
    group: Option<OpenGroup>,
    groups: Vec<(u64, GroupLocation)>,
    index: Vec<(IndexKey, ChunkNo)>,
    /// Chunks this blob already holds, by name: repeats within one upload share a number.
    seen: HashMap<ChunkId, ChunkNo>,
    extents: Vec<Extent>,
    /// The run of consecutive chunk numbers being built: (first, count, bytes).
    run: Option<(ChunkNo, u32, u64)>,
    pins: PinGuard,
    chunks: usize,
    /// Damaged records this write's fresh chunks can replace (heal.rs).
    heals: Vec<(ChunkNo, Encoded)>,
    /// The last piece of the stream so far was a chunk appended by this write.
    after_fresh: bool,
    /// Full packs being made durable (uploaded) in the background; joined before the
    /// blob is handed over for its commit.
    uploads: Vec<std::thread::JoinHandle<Result<()>>>,
}

impl Appender {
    fn new(inner: Arc<Inner>) -> Appender {
        let pins = PinGuard::empty(&inner);
        Appender {
            inner,
            writer: None,
            new_pack_dirs: Vec::new(),
            group: None,
            groups: Vec::new(),
            index: Vec::new(),
            seen: HashMap::new(),
            extents: Vec::new(),
            run: None,
            pins,
            chunks: 0,
            heals: Vec::new(),
            after_fresh: false,
            uploads: Vec::new(),
        }
    }

    fn reference(&mut self, no: ChunkNo, len: u32) {
        self.chunks += 1;
        if let Some((first, count, bytes)) = &mut self.run {
            // A run stays within one group (≤ 64 chunks, ~1 MiB): the manifest's segment
            // offsets then take a ranged read to within a MiB of its first byte.
            if first.0 + *count as u64 == no.0 && first.group() == no.group() {
                *count += 1;
                *bytes += len as u64;
                return;
            }
        }
        self.end_run();
        self.run = Some((no, 1, len as u64));
    }

    fn end_run(&mut self) {
        if let Some((first, count, len)) = self.run.take() {
            self.extents.push(Extent::Run {
                first,
                count,
                skip: 0,
                len,
            });
        }
    }

    fn close_group(&mut self) {
        if let Some(g) = self.group.take() {
            self.groups.push((g.id, g.loc));
        }
    }

    /// A writer with room, rolling the current pack over (made durable now) when full.
    fn writer(&mut self) -> Result<&mut pack::PackWriter> {
        let full = self
            .writer
            .as_ref()
            .is_some_and(|w| w.len() >= self.inner.cfg.pack_target);
        if full {
            self.close_group();
            let mut w = self.writer.take().expect("checked");
            if self.inner.packs.is_remote() {
                // An upload is network-bound: it overlaps the ingest of the next pack, and
                // `finish` waits for every one before the commit (the commit rule).
                while self.uploads.len() >= UPLOADS_IN_FLIGHT {
                    join_upload(self.uploads.remove(0))?;
                }
                let inner = self.inner.clone();
                self.uploads.push(std::thread::spawn(move || {
                    let r = inner.packs.make_durable(&mut w, None);
                    inner.packs.give_back(w);
                    r
                }));
            } else {
                self.inner.packs.make_durable(&mut w, None)?;
                self.inner.packs.give_back(w);
            }
        }
        if self.writer.is_none() {
            let lent = self.inner.packs.lend()?;
            if let Err(e) = self.pins.pin_pack(lent.writer.id) {
                self.inner.packs.give_back(lent.writer);
                return Err(e);
            }
            if let Some(d) = lent.new_entry {
                self.new_pack_dirs.push(d);
            }
            self.writer = Some(lent.writer);
        }
        Ok(self.writer.as_mut().expect("set"))
    }

    fn absorb(&mut self, examined: Examined) -> Result<()> {
        enum Plan {
            Zero(u64),
            Stored(ChunkNo, u32),
            Fresh(usize),
        }
        self.pins.absorb(examined.pins);
        // New chunks are appended with one write, in order; repeats share the first copy.
        let mut fresh: Vec<Encoded> = Vec::new();
        // Per fresh chunk: whether the piece before it in the stream was not the fresh chunk
        // appended just before it (a run of new chunks starts there).
        let mut starts_run: Vec<bool> = Vec::new();
        let mut in_batch: HashMap<ChunkId, usize> = HashMap::new();
        let mut plan = Vec::with_capacity(examined.pieces.len());
        // A batch is examined without its predecessor's last chunk, so a batch's first new
        // chunk is where a later upload of the same bytes must find it by the index.
        self.after_fresh = false;
        for p in examined.pieces {
            let mut appended = false;
            plan.push(match p {
                Piece::Zero(n) => Plan::Zero(n),
                Piece::Known { no, len } => Plan::Stored(no, len),
                Piece::New(e) => {
                    if let Some(&no) = self.seen.get(&e.header.name) {
                        Plan::Stored(no, e.header.raw_len)
                    } else if let Some(&k) = in_batch.get(&e.header.name) {
                        Plan::Fresh(k)
                    } else {
                        in_batch.insert(e.header.name, fresh.len());
                        fresh.push(e);
                        starts_run.push(!self.after_fresh);
                        appended = true;
                        Plan::Fresh(fresh.len() - 1)
                    }
                }
            });
            self.after_fresh = appended;
        }
        let numbers = self.append(&fresh, &starts_run)?;
        // (chunks, bytes) elided as zeros and found already stored.
        let (mut zeros, mut dups) = ((0u64, 0u64), (0u64, 0u64));
        let mut appended = vec![false; fresh.len()];
        for p in plan {
            match p {
                Plan::Zero(n) => {
                    self.end_run();
                    push_extent(&mut self.extents, Extent::Zero { len: n });
                    zeros = (zeros.0 + 1, zeros.1 + n);
                }
                Plan::Stored(no, len) => {
                    self.reference(no, len);
                    dups = (dups.0 + 1, dups.1 + u64::from(len));
                }
                Plan::Fresh(k) => {
                    let len = fresh[k].header.raw_len;
                    self.reference(numbers[k], len);
                    if std::mem::replace(&mut appended[k], true) {
                        dups = (dups.0 + 1, dups.1 + u64::from(len));
                    }
                }
            }
        }
        let s = &self.inner.stats;
        let raw: u64 = fresh.iter().map(|e| u64::from(e.header.raw_len)).sum();
        let stored: u64 = fresh.iter().map(|e| u64::from(e.header.stored_len)).sum();
        stats::add(&s.chunks_written, fresh.len() as u64);
        stats::add(&s.chunk_bytes_written, raw);
        stats::add(&s.chunk_bytes_stored, stored);
        stats::add(&s.zero_chunks, zeros.0);
        stats::add(&s.zero_bytes, zeros.1);
        stats::add(&s.dedup_hits, dups.0);
        stats::add(&s.dedup_bytes, dups.1);
        Ok(())
    }

    /// Appends new records to the pack and gives them numbers in the open group (opening
    /// groups as they fill, or when the pack changes).
    fn append(&mut self, fresh: &[Encoded], starts_run: &[bool]) -> Result<Vec<ChunkNo>> {
        let mut numbers = Vec::with_capacity(fresh.len());
        let mut rest = fresh;
        while !rest.is_empty() {
            let pack_id = self.writer()?.id;
            if self
                .group
                .as_ref()
                .is_some_and(|g| g.loc.pack != pack_id || g.loc.slots.len() == GROUP_SLOTS)
            {
                self.close_group();
            }
            let room = self
                .group
                .as_ref()
                .map_or(GROUP_SLOTS, |g| GROUP_SLOTS - g.loc.slots.len());
            let (now, later) = rest.split_at(room.min(rest.len()));
            rest = later;
            let refs: Vec<&Encoded> = now.iter().collect();
            let writer = self.writer()?;
            let offsets = match writer.append(&refs) {
                Ok(o) => o,
                Err(e) => {
                    // The pack's tail is unknown now: retire this writer (nothing committed
                    // points past what was synced before).
                    self.writer = None;
                    return Err(e);
                }
            };
            if self.group.is_none() {
                self.group = Some(OpenGroup {
                    id: self.inner.new_group()?,
                    loc: GroupLocation {
                        pack: pack_id,
                        first: offsets[0],
                        slots: Vec::new(),
                    },
                });
            }
            let group = self.group.as_mut().expect("just set");
            for e in now {
                let no = ChunkNo::new(group.id, group.loc.slots.len());
                group.loc.slots.push(Slot {
                    codec: e.header.codec,
                    raw_len: e.header.raw_len,
                    stored_len: e.header.stored_len,
                    crc: e.header.crc,
                    gone: false,
                });
                self.seen.insert(e.header.name, no);
                if indexed_on_write(&e.header.name, starts_run[numbers.len()], no) {
                    self.index.push((index_key(&e.header.name), no));
                }
                if let Some(damaged) = self.inner.damage.replaced_by(&e.header) {
                    self.heals.push((
                        damaged,
                        Encoded {
                            header: e.header,
                            stored: e.stored.clone(),
                        },
                    ));
                }
                numbers.push(no);
            }
        }
        Ok(numbers)
    }

    /// Makes the pack durable and returns what the commit needs.
    fn finish(mut self) -> Result<Finished> {
        self.end_run();
        self.close_group();
        if let Some(mut w) = self.writer.take() {
            self.inner.packs.make_durable(&mut w, None)?;
            self.inner.packs.give_back(w);
        }
        for u in std::mem::take(&mut self.uploads) {
            join_upload(u)?;
        }
        for d in std::mem::take(&mut self.new_pack_dirs) {
            crate::datadirs::fsync_dir(&d)?;
        }
        self.heal();
        Ok(Finished {
            extents: std::mem::take(&mut self.extents),
            groups: std::mem::take(&mut self.groups),
            index: std::mem::take(&mut self.index),
            pins: std::mem::replace(&mut self.pins, PinGuard::empty(&self.inner)),
            chunks: self.chunks,
        })
    }
}

impl Appender {
    /// Replaces the damaged records this write brought good copies of: at once, unless a
    /// compaction holds the lock (then in the background, not to make the write wait).
    fn heal(&mut self) {
        let heals = std::mem::take(&mut self.heals);
        if heals.is_empty() {
            return;
        }
        let run = move |inner: &Arc<Inner>| {
            let pairs: Vec<(ChunkNo, &Encoded)> = heals.iter().map(|(n, e)| (*n, e)).collect();
            if let Err(e) = inner.heal(&pairs) {
                tracing::warn!(error = %e, "healing damaged chunk records failed; scrub will retry");
            }
        };
        let idle = self.inner.compacting.try_lock().is_ok();
        if idle {
            run(&self.inner);
        } else {
            let inner = self.inner.clone();
            self.inner.in_background(move |_| run(&inner));
        }
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        // A failed ingest: the pack keeps its (unreferenced) records and serves others.
        if let Some(w) = self.writer.take() {
            self.inner.packs.give_back(w);
        }
    }
}

struct Finished {
    extents: Vec<Extent>,
    groups: Vec<(u64, GroupLocation)>,
    index: Vec<(IndexKey, ChunkNo)>,
    pins: PinGuard,
    chunks: usize,
}

impl Store {
    /// The format v2 write path behind [`Store::write`].
    pub(crate) async fn write_v2<S, E>(&self, input: S, opts: WriteOptions) -> Result<StagedBlob>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = self.inner.clone();
        let (mut digest_queues, digest_tasks) =
            crate::digest::spawn_threads(opts.digests, DIGEST_QUEUE);
        let (to_appender, mut appender_rx) = mpsc::channel::<Examined>(2);
        let appender_inner = inner.clone();
        let appender = tokio::task::spawn_blocking(move || -> Result<Finished> {
            let mut a = Appender::new(appender_inner);
            while let Some(ex) = appender_rx.blocking_recv() {
                a.absorb(ex)?;
            }
            a.finish()
        });
        let mut in_flight: FuturesOrdered<JoinHandle<Result<Examined>>> = FuturesOrdered::new();
        let mut chunker = Chunker::new(inner.cfg.cdc);
        let mut buf = BytesMut::new();
        let mut buf_start = 0u64;
        let mut cuts: Vec<u64> = Vec::new();
        let mut total = 0u64;
        let mut inline: Option<Bytes> = None;

        let result: Result<()> = async {
            futures::pin_mut!(input);
            let mut dispatched = false;
            loop {
                let item = input.next().await;
                let at_end = item.is_none();
                if let Some(item) = item {
                    let data = item.map_err(|e| StoreError::Input(e.into()))?;
                    total += data.len() as u64;
                    if let Some(limit) = opts.max_size {
                        if total > limit {
                            return Err(StoreError::TooLarge { limit });
                        }
                    }
                    chunker.feed(&data, &mut cuts);
                    buf.extend_from_slice(&data);
                    if buf.len() < BATCH || cuts.is_empty() {
                        continue;
                    }
                }
                let mut ends: Vec<usize> =
                    cuts.drain(..).map(|c| (c - buf_start) as usize).collect();
                if at_end {
                    let small = !dispatched && buf.len() <= inner.cfg.inline_max;
                    if small && !buf.is_empty() && !is_zero(&buf) {
                        // A tiny blob lives in the catalog: no pack record, no index entry.
                        let tail = buf.split().freeze();
                        for q in &digest_queues {
                            q.send(tail.clone()).await.map_err(|_| digest_stopped())?;
                        }
                        inline = Some(tail);
                        break;
                    }
                    if ends.last() != Some(&buf.len()) && !buf.is_empty() {
                        ends.push(buf.len());
                    }
                }
                let take = ends.last().copied().unwrap_or(0);
                if take > 0 {
                    let batch = buf.split_to(take).freeze();
                    buf_start += take as u64;
                    for q in &digest_queues {
                        q.send(batch.clone()).await.map_err(|_| digest_stopped())?;
                    }
                    while in_flight.len() >= inner.cfg.write_parallelism {
                        let ex = in_flight.next().await.expect("non-empty")??;
                        to_appender.send(ex).await.map_err(|_| appender_stopped())?;
                    }
                    let worker = inner.clone();
                    in_flight.push_back(tokio::task::spawn_blocking(move || {
                        worker.examine(batch, ends)
                    }));
                    dispatched = true;
                }
                if at_end {
                    break;
                }
            }
            while let Some(ex) = in_flight.next().await {
                to_appender
                    .send(ex??)
                    .await
                    .map_err(|_| appender_stopped())?;
            }
            Ok(())
        }
        .await;
        drop(to_appender);
        digest_queues.clear();
        let mut digests = Digests::default();
        for t in digest_tasks {
            digests.merge(t.await?);
        }
        if let Err(e) = result {
            // Let examine tasks finish so their pins drop now.
            while in_flight.next().await.is_some() {}
            let _ = appender.await;
            return Err(e);
        }
        let finished = appender.await??;
        // The dedup index learns the new chunks now, outside the commit's transaction (one
        // unsynced batch instead of thousands of locked puts; the commit's synced WAL write
        // makes it durable). An entry whose blob never commits names a chunk number no group
        // describes — or, after a restart, one a later group reuses — and `find_chunk`
        // rejects it by the full name in the pack record.
        let index = finished.index;
        let db_inner = inner.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let ops: Vec<Op> = index
                .iter()
                .map(|(k, no)| {
                    let mut v = Vec::with_capacity(10);
                    crate::group::put_varint(&mut v, no.0);
                    Op::Put(Family::ChunkIndex, k.to_vec(), v)
                })
                .collect();
            db_inner.kv.write(&ops, false)
        })
        .await??;
        let mut extents = finished.extents;
        if let Some(data) = inline {
            push_extent(&mut extents, Extent::Inline { data });
        }
        tracing::trace!(
            chunks = finished.chunks,
            groups = finished.groups.len(),
            "v2 ingest staged"
        );
        Ok(StagedBlob::new_v2(
            BlobId::random(),
            extents,
            total,
            digests,
            finished.pins,
            finished.groups,
        ))
    }
}

fn digest_stopped() -> StoreError {
    StoreError::Task("digest thread stopped".into())
}

fn appender_stopped() -> StoreError {
    StoreError::Task("pack appender stopped".into())
}
