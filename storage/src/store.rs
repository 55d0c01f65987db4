//! The store: opening (with recovery), the pin table that keeps chunks of in-flight writes
//! alive, reclamation of unreferenced chunks, and the catalog read helpers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::catalog::{decode_count, Catalog};
use crate::datadirs::{self, DataDir, DataDirs, Probe};
use crate::error::{Result, StoreError};
use crate::ids::{BlobId, ChunkId};
use crate::kv::{self, Family, Kv, Op, PgKv, RocksKv};
use crate::lease::Leases;
use crate::manifest::BlobInfo;

/// Engine configuration; `etc/glance-api.conf` maps onto it in the server.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// One directory per disk. Each must exist and be writable.
    pub data_dirs: Vec<PathBuf>,
    /// Where the RocksDB catalog lives (created if missing); unused with `catalog_url`.
    pub catalog_dir: PathBuf,
    /// A PostgreSQL catalog instead of the embedded RocksDB (`postgresql://…`, upstream's
    /// `[database] connection`): the catalog cluster mode shares between nodes.
    pub catalog_url: Option<String>,
    /// The PostgreSQL schema this store's tables live in (stores sharing one database each
    /// take their own: the default store `glint`, a Glance backend `glint_backend_<id>`).
    pub catalog_schema: String,
    /// Cluster mode: packs are uploaded to this S3-compatible object store before anything
    /// references them, and read from it where this node has no copy (format v2 only).
    pub pack_store: Option<crate::RemotePackConfig>,
    /// Fixed chunk size in bytes (see README for how the default was chosen).
    pub chunk_size: usize,
    /// Blobs no larger than this are kept inline in the catalog (one synced write, no file).
    pub inline_max: usize,
    /// Chunks hashed and written concurrently during one ingest.
    pub write_parallelism: usize,
    /// Chunks read ahead of the consumer during one read.
    pub read_ahead: usize,
    /// Chunk reads in flight across all readers: many concurrent readers of warm data
    /// otherwise keep dozens of 1 MiB copies going at once on a few cores, thrashing the
    /// caches (see benches/README.md); cold disks still get this queue depth.
    pub read_parallelism: usize,
    /// Reads always verify the CRC32C of each 64 KiB block they return; this adds the full
    /// BLAKE3 check of every chunk read (and so reads whole chunks even for small ranges).
    /// Off by default: see the README for the measured cost. Scrub always checks BLAKE3.
    pub verify_full_hash_on_read: bool,
    /// How new blobs are written: v1 (fixed-size chunk files) or v2 (content-defined chunks
    /// in packs). Blobs of either format are read, cloned and deleted whatever this says.
    pub format: Format,
    /// Format v2 chunk size bounds (see storage/README.md for how the average was chosen).
    pub cdc: crate::cdc::CdcParams,
    /// Format v2 chunk codec: `Lz4` stores a chunk compressed when that saves 1/8 or more.
    pub codec: crate::pack::Codec,
    /// Format v2: a pack is retired from appends once it reaches this many bytes.
    pub pack_target: u64,
    /// Format v2: `gc` rewrites packs whose live bytes fall under this fraction of their size.
    pub compact_below: f64,
    /// Format v2: compact in the background this long after a delete (deletes coming in the
    /// meantime share the pass), so deleted data's space comes back without `glint gc`.
    /// `None`: only `gc` and `compact` compact.
    pub compact_delay: Option<Duration>,
}

/// The engine's on-disk format for new writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Fixed-size chunks, one file each, named by BLAKE3.
    V1,
    /// Content-defined 4 KiB-aligned chunks appended to pack files, optionally compressed.
    V2,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Format, String> {
        match s.trim() {
            "v1" | "1" => Ok(Format::V1),
            "v2" | "2" => Ok(Format::V2),
            other => Err(format!("store_format must be v1 or v2, not {other:?}")),
        }
    }
}

pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;

impl StoreConfig {
    pub fn new(data_dirs: Vec<PathBuf>, catalog_dir: PathBuf) -> StoreConfig {
        StoreConfig {
            data_dirs,
            catalog_dir,
            catalog_url: None,
            catalog_schema: "glint".into(),
            pack_store: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            inline_max: 16 << 10,
            write_parallelism: 4,
            read_ahead: 4,
            read_parallelism: std::thread::available_parallelism().map_or(4, |n| 2 * n.get()),
            verify_full_hash_on_read: false,
            format: Format::V2,
            cdc: crate::cdc::CdcParams::DEFAULT,
            codec: crate::pack::Codec::Lz4,
            pack_target: 32 << 20,
            compact_below: 0.5,
            compact_delay: None,
        }
    }

    /// A store rooted in one directory: `<root>/data` and `<root>/catalog`.
    pub fn single(root: impl Into<PathBuf>) -> StoreConfig {
        let root = root.into();
        StoreConfig::new(vec![root.join("data")], root.join("catalog"))
    }

    fn validate(&self) -> Result<()> {
        if self.data_dirs.is_empty() {
            return Err(StoreError::Config(
                "at least one data directory is required".into(),
            ));
        }
        if !(4096..=(64 << 20)).contains(&self.chunk_size) {
            return Err(StoreError::Config(
                "chunk_size must be between 4 KiB and 64 MiB".into(),
            ));
        }
        if self.inline_max >= self.chunk_size {
            return Err(StoreError::Config(
                "inline_max must be below chunk_size".into(),
            ));
        }
        self.cdc.validate().map_err(StoreError::Config)?;
        if !(0.0..=1.0).contains(&self.compact_below) {
            return Err(StoreError::Config(
                "compact_below must be between 0 and 1".into(),
            ));
        }
        if self.cdc.max > u32::MAX as usize / 2 {
            return Err(StoreError::Config("cdc max chunk size is too large".into()));
        }
        if self.pack_store.is_some() && self.format != Format::V2 {
            return Err(StoreError::Config(
                "an object-store pack store needs store_format = v2".into(),
            ));
        }
        if self.write_parallelism == 0 || self.read_ahead == 0 {
            return Err(StoreError::Config(
                "write_parallelism and read_ahead must be positive".into(),
            ));
        }
        Ok(())
    }
}

pub(crate) struct Inner {
    /// The catalog (kv/): RocksDB by default.
    pub kv: Box<dyn Kv>,
    pub dirs: DataDirs,
    pub cfg: StoreConfig,
    /// Chunks (and v2 packs) that in-flight writes have written or found, not yet covered
    /// by a committed reference. Reclamation and compaction skip them; see `reclaim`.
    pins: Mutex<HashMap<PinKey, u32>>,
    /// Reclaims scheduled from `Drop` and not yet finished (see `Store::settle`).
    pub(crate) pending_reclaims: AtomicUsize,
    /// Blobs being read, and deletes waiting for their readers (lease.rs).
    pub(crate) leases: Leases,
    /// Bounds chunk reads in flight across readers (`read_parallelism`).
    pub read_slots: Arc<tokio::sync::Semaphore>,
    /// Format v2 pack files.
    pub packs: crate::packs::Packs,
    /// Chunk group numbers this store may hand out next (format v2): a block taken from the
    /// catalog when it is shared by several nodes, else counted here. Allocated groups that
    /// never commit are simply skipped.
    next_groups: Mutex<std::ops::Range<u64>>,
    /// One compaction at a time (compact.rs).
    pub compacting: Mutex<()>,
    /// A commit dropped references to v2 chunks since the last scheduled compaction.
    pub compaction_due: AtomicBool,
    /// A background compaction is waiting for `compact_delay` to pass.
    compaction_scheduled: AtomicBool,
    /// Format v2 records known to be damaged, waiting for a good copy (heal.rs).
    pub damage: crate::heal::DamageMap,
    /// With a shared catalog: this node, whose pins and leases are catalog rows as well
    /// (cluster.rs).
    pub node: Option<crate::cluster::Node>,
    /// What this process's engine has done (stats.rs), for the metrics.
    pub stats: crate::stats::EngineStats,
}

/// The blob engine. Cheap to clone; all clones share one catalog and set of data directories.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// Floors of `read_ahead` and `read_parallelism` with packs in an object store.
const REMOTE_READ_AHEAD: usize = 16;
const REMOTE_READ_PARALLELISM: usize = 64;

const META_DIRS: &[u8] = b"datadirs";
const META_CLEAN: &[u8] = b"clean_shutdown";

/// This process's key for a per-node `meta` record. A catalog shared by several nodes holds
/// one record per node, told apart by the node's first data directory; an embedded catalog
/// has a single node and keeps the plain key.
fn node_meta_key(cfg: &StoreConfig, name: &[u8]) -> Vec<u8> {
    let mut key = name.to_vec();
    if cfg.catalog_url.is_some() {
        let node = blake3::hash(cfg.data_dirs[0].to_string_lossy().as_bytes());
        key.push(b'/');
        key.extend_from_slice(node.to_hex()[..16].as_bytes());
    }
    key
}

/// What recovery did at open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub unclean_shutdown: bool,
    pub temp_files_removed: usize,
    pub orphan_chunks_removed: usize,
    /// Deletes deferred for readers that the previous run did not get to finish.
    pub deferred_deletes_finished: usize,
}

impl Store {
    /// Opens (or creates) a store. Blocking: call it before serving, or in `spawn_blocking`.
    pub fn open(cfg: StoreConfig) -> Result<Store> {
        Self::open_with_report(cfg).map(|(s, _)| s)
    }

    pub fn open_with_report(mut cfg: StoreConfig) -> Result<(Store, RecoveryReport)> {
        cfg.validate()?;
        if cfg.pack_store.is_some() {
            // Ranged GETs to an object store are bound by round trips, not by disks or
            // cores: keep more of them in flight (each ≤ 1 MiB, so memory stays bounded).
            cfg.read_ahead = cfg.read_ahead.max(REMOTE_READ_AHEAD);
            cfg.read_parallelism = cfg.read_parallelism.max(REMOTE_READ_PARALLELISM);
        }
        let mut probes = Vec::new();
        for root in &cfg.data_dirs {
            probes.push((root.clone(), datadirs::probe(root)?));
        }
        let kv: Box<dyn Kv> = match &cfg.catalog_url {
            Some(url) => Box::new(PgKv::open(url, &cfg.catalog_schema)?),
            None => Box::new(RocksKv::open(&cfg.catalog_dir)?),
        };
        let known: Vec<(PathBuf, u64)> =
            match kv.get(Family::Meta, &node_meta_key(&cfg, META_DIRS))? {
                Some(v) => decode_dirs(&v)?,
                None => Vec::new(),
            };
        let mut dirs = Vec::new();
        for (root, probe) in probes {
            let id = match probe {
                Probe::Initialized(id) => {
                    if let Some((_, want)) =
                        known.iter().find(|(p, want)| *p == root && *want != id)
                    {
                        return Err(StoreError::DataDir {
                            path: root,
                            reason: format!(
                                "holds data directory {id:016x} but the catalog expects {want:016x} \
                                 (a different disk mounted here?); refusing to start"
                            ),
                        });
                    }
                    id
                }
                Probe::Empty => {
                    if known.iter().any(|(p, _)| *p == root) {
                        return Err(StoreError::DataDir {
                            path: root,
                            reason: format!(
                                "the catalog knows this directory but its {} marker is gone \
                                 (disk not mounted?); refusing to start",
                                datadirs::MARKER
                            ),
                        });
                    }
                    datadirs::initialize(&root)?
                }
            };
            dirs.push(DataDir { root, id });
        }
        let record: Vec<(PathBuf, u64)> = dirs.iter().map(|d| (d.root.clone(), d.id)).collect();
        kv.write(
            &[Op::Put(
                Family::Meta,
                node_meta_key(&cfg, META_DIRS),
                encode_dirs(&record),
            )],
            true,
        )?;
        // A brand-new catalog has nothing to recover.
        let clean = known.is_empty()
            || kv
                .get(Family::Meta, &node_meta_key(&cfg, META_CLEAN))?
                .is_some_and(|v| v == b"1");
        // From here until a clean close, a crash means recovery must scan.
        kv.write(
            &[Op::Put(
                Family::Meta,
                node_meta_key(&cfg, META_CLEAN),
                b"0".to_vec(),
            )],
            true,
        )?;

        let node = match kv.shared() {
            true => Some(crate::cluster::Node::join(&*kv)?),
            false => None,
        };
        let remote = match &cfg.pack_store {
            Some(p) => Some(crate::remote::RemotePacks::open(p)?),
            None => None,
        };
        let packs = crate::packs::Packs::open(&cfg.data_dirs, cfg.pack_target, remote)?;
        let first_free = crate::group::first_free_group(&*kv)?;
        let store = Store {
            inner: Arc::new(Inner {
                packs,
                next_groups: Mutex::new(first_free..first_free),
                compacting: Mutex::new(()),
                compaction_due: AtomicBool::new(false),
                compaction_scheduled: AtomicBool::new(false),
                damage: Default::default(),
                stats: Default::default(),
                kv,
                dirs: DataDirs::new(dirs),
                read_slots: Arc::new(tokio::sync::Semaphore::new(cfg.read_parallelism.max(1))),
                cfg,
                pins: Mutex::new(HashMap::new()),
                pending_reclaims: AtomicUsize::new(0),
                leases: Leases::default(),
                node,
            }),
        };
        let mut report = RecoveryReport {
            unclean_shutdown: !clean,
            ..Default::default()
        };
        // Deletes deferred for readers of the previous run: none of those readers is left.
        // A shared catalog's may wait for readers on other nodes: the maintenance pass
        // finishes those once their readers are gone (compact.rs).
        if store.inner.node.is_none() {
            for id in store.inner.doomed_blobs()? {
                store.inner.finish_doomed(id)?;
                report.deferred_deletes_finished += 1;
            }
        }
        if !clean {
            // No writer is running yet, so every temp file and every unreferenced chunk is
            // debris of an interrupted write or delete: no grace period is needed.
            report.temp_files_removed = store.inner.dirs.clean_tmp(None)?;
            report.orphan_chunks_removed = store.inner.collect_garbage(Duration::ZERO)?;
            if report.temp_files_removed + report.orphan_chunks_removed > 0 {
                tracing::warn!(?report, "recovered from an unclean shutdown");
            }
        }
        Ok((store, report))
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// The blob's record, or `None`.
    pub async fn blob_info(&self, id: BlobId) -> Result<Option<BlobInfo>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.blob_info(id)).await?
    }

    /// One catalog value, read outside any transaction.
    pub async fn get(&self, cat: Catalog, key: Vec<u8>) -> Result<Option<Vec<u8>>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> Result<_> { inner.kv.get(Family::Front(cat), &key) })
            .await?
    }

    /// Up to `limit` entries of `cat` whose keys start with `prefix`, from the first key
    /// strictly after `after` (or from the prefix's start). For listings.
    pub async fn scan(
        &self,
        cat: Catalog,
        prefix: Vec<u8>,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            kv::scan(
                &*inner.kv,
                Family::Front(cat),
                &prefix,
                after.as_deref(),
                limit,
            )
        })
        .await?
    }

    /// Runs `f` on a blocking thread with reads of the committed catalog: for answers that
    /// take several dependent reads (a listing walks an index, then fetches the records it
    /// names), so they cost one hop off the runtime, not one per read.
    pub async fn read_catalog<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&CatalogReader<'_>) -> Result<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&CatalogReader { kv: &*inner.kv })).await?
    }

    /// The engine's counters since this process opened the store (for metrics exporters).
    pub fn stats(&self) -> &crate::stats::EngineStats {
        &self.inner.stats
    }

    /// Removes unreferenced chunk files older than `grace` that no in-flight write holds, and
    /// temp files older than `grace`. Safe while writers run: a writer pins its chunks before
    /// it looks for or writes them, and a pinned or young file is never removed.
    ///
    /// Format v2 packs are compacted too (`compact_below`): the count includes the chunks
    /// that dropped.
    pub async fn gc(&self, grace: Duration) -> Result<usize> {
        let report = self.gc_tracked(grace, Arc::default()).await?;
        Ok(report.chunk_files_removed + report.compaction.chunks_dropped as usize)
    }

    /// [`Store::gc`], telling `progress` how far it has got (phases: chunk files,
    /// compaction), and returning what each part did.
    pub async fn gc_tracked(
        &self,
        grace: Duration,
        progress: Arc<crate::progress::Progress>,
    ) -> Result<GcReport> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            progress.phase("chunk files", crate::progress::ProgressUnit::Entries, 0);
            inner.dirs.clean_tmp(Some(grace))?;
            let chunk_files_removed = inner.collect_garbage(grace)?;
            let compaction = inner.compact_tracked(inner.cfg.compact_below, &progress)?;
            Ok(GcReport {
                chunk_files_removed,
                compaction,
            })
        })
        .await?
    }

    /// Waits until reclamations scheduled by dropped in-flight writes have finished.
    pub async fn settle(&self) {
        while self.inner.pending_reclaims.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Holds the catalog-wide maintenance lock (compaction, repairing scrubs) until the
    /// returned guard drops; `None` when another node holds it. For tests of the singleton.
    #[doc(hidden)]
    pub async fn debug_hold_maintenance(&self) -> Result<Option<impl Send>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.kv.singleton(crate::compact::MAINTENANCE)).await?
    }

    /// This process's node id when it shares its catalog with others (cluster mode), for
    /// front ends to record who runs an operation; `None` on the embedded catalog.
    pub async fn node_id(&self) -> Result<Option<u64>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || match &inner.node {
            Some(node) => node.id(&*inner.kv).map(Some),
            None => Ok(None),
        })
        .await?
    }

    /// Whether the node with this id still runs (its catalog session holds its liveness
    /// lock). Always true on the embedded catalog, where this process is the only node.
    pub async fn node_alive(&self, id: u64) -> Result<bool> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || match &inner.node {
            Some(node) => node.alive(&*inner.kv, id),
            None => Ok(true),
        })
        .await?
    }

    /// Gives up this node's liveness lock, as a node whose catalog session was lost does:
    /// other nodes then presume it dead and may clear its pins and leases. For the fencing
    /// test; the node takes a new id at its next pin or lease.
    #[doc(hidden)]
    pub fn debug_lose_liveness(&self) {
        if let Some(node) = &self.inner.node {
            node.debug_lose_liveness();
        }
    }

    /// Adds `delta` to a chunk's reference count, bypassing every invariant. Only for tests
    /// that need to damage a store to see scrub find and repair it.
    #[doc(hidden)]
    pub async fn debug_add_refcount(&self, id: ChunkId, delta: i64) -> Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            inner
                .kv
                .write(&[Op::Add(Family::Chunks, id.0.to_vec(), vec![delta])], true)
        })
        .await?
    }

    /// Adds `delta` to a v2 chunk's reference count (by chunk number), bypassing every
    /// invariant: only for tests that damage a store to see scrub repair it.
    #[doc(hidden)]
    pub async fn debug_add_chunk_no_refcount(&self, no: u64, delta: i64) -> Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let no = crate::group::ChunkNo(no);
            let mut deltas = vec![0i64; no.slot() + 1];
            deltas[no.slot()] = delta;
            inner.kv.write(
                &[Op::Add(
                    Family::GroupRefs,
                    crate::group::group_key(no.group()).to_vec(),
                    deltas,
                )],
                true,
            )
        })
        .await?
    }

    /// Ids of every committed blob (for tests and tools; a full scan).
    pub async fn list_blobs(&self) -> Result<Vec<BlobId>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<BlobId>> {
            // A blob deleted while being read is gone for everyone but its readers.
            let doomed: std::collections::HashSet<BlobId> =
                inner.doomed_blobs()?.into_iter().collect();
            let mut out = Vec::new();
            inner.kv.walk(Family::Blobs, &[], &mut |k, _| {
                let id = BlobId::from_key(k).ok_or(StoreError::Malformed("blob key"))?;
                if !doomed.contains(&id) {
                    out.push(id);
                }
                Ok(true)
            })?;
            Ok(out)
        })
        .await?
    }

    /// What the store holds and what that costs on disk (the engine's own accounting, for
    /// `glint status` and the dedup benchmark). With `flush`, memtables are written out
    /// first so the catalog's size is its on-disk size (call it on a quiet store).
    pub async fn usage(&self, flush: bool) -> Result<Usage> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.usage(flush)).await?
    }

    /// Number of stored chunk files (for tests and reports).
    pub fn chunk_file_count(&self) -> Result<usize> {
        let mut n = 0;
        self.inner.dirs.list_chunks(|_, _, _| n += 1)?;
        Ok(n)
    }
}

/// What `glint gc` did.
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    /// Format v1: unreferenced chunk files removed.
    pub chunk_files_removed: usize,
    /// Format v2: the compaction pass.
    pub compaction: crate::compact::CompactReport,
}

/// See [`Store::usage`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub blobs: u64,
    /// Sum of the blobs' sizes: what clients stored.
    pub logical_bytes: u64,
    /// Format v1 chunk files and their bytes.
    pub chunk_files: u64,
    pub chunk_file_bytes: u64,
    /// Format v2 pack files and their bytes (live records and garbage alike).
    pub packs: u64,
    pub pack_bytes: u64,
    /// Bytes of the blobs that are zero runs (recorded as holes, nothing stored).
    pub zero_bytes: u64,
    /// The catalog's table files (every family: blob records, manifests, chunk counts and
    /// locations, the dedup index, and the front ends' records; not the write-ahead log).
    pub catalog_bytes: u64,
}

impl Inner {
    fn usage(&self, flush: bool) -> Result<Usage> {
        let mut u = Usage::default();
        self.kv.walk(Family::Blobs, &[], &mut |k, v| {
            let id = BlobId::from_key(k).ok_or(StoreError::Malformed("blob key"))?;
            u.blobs += 1;
            u.logical_bytes += BlobInfo::decode(id, v)?.size;
            Ok(true)
        })?;
        self.kv.walk(Family::Manifests, &[], &mut |_, v| {
            for e in crate::manifest::decode_segment(v)? {
                if let crate::manifest::Extent::Zero { len } = e {
                    u.zero_bytes += len;
                }
            }
            Ok(true)
        })?;
        self.dirs.list_chunks(|_, p, _| {
            u.chunk_files += 1;
            u.chunk_file_bytes += std::fs::metadata(&p).map_or(0, |m| m.len());
        })?;
        for (_, size) in self.packs.sizes()? {
            u.packs += 1;
            u.pack_bytes += size;
        }
        u.catalog_bytes = self.kv.stored_bytes(flush)?;
        Ok(u)
    }

    /// Blobs whose delete waits for their readers (the `doomed` column family; usually empty).
    pub(crate) fn doomed_blobs(&self) -> Result<Vec<BlobId>> {
        let mut ids = Vec::new();
        self.kv.walk(Family::Doomed, &[], &mut |k, _| {
            ids.extend(BlobId::from_key(k));
            Ok(true)
        })?;
        Ok(ids)
    }

    /// A chunk group number no other writer, on this node or another, will use.
    pub(crate) fn new_group(&self) -> Result<u64> {
        let mut next = self.next_groups.lock().expect("group numbers");
        if next.is_empty() {
            *next = match self.kv.group_block()? {
                Some(block) => block,
                None => next.end..next.end + 1024,
            };
        }
        let n = next.start;
        next.start += 1;
        Ok(n)
    }

    /// Completes a delete that was deferred for readers (lease.rs), unless it was already
    /// completed or a reader came back meanwhile (then it stays deferred).
    pub(crate) fn finish_doomed(&self, id: BlobId) -> Result<()> {
        self.transact_blocking(|tx| tx.finish_doomed(id))
    }

    pub fn blob_info(&self, id: BlobId) -> Result<Option<BlobInfo>> {
        match self.kv.get(Family::Blobs, &id.0)? {
            Some(v) => Ok(Some(BlobInfo::decode(id, &v)?)),
            None => Ok(None),
        }
    }

    pub fn pin(self: &Arc<Self>, id: ChunkId) -> PinGuard {
        self.pin_key(PinKey::Chunk(id))
    }

    pub fn pin_key(self: &Arc<Self>, key: PinKey) -> PinGuard {
        *self.pins.lock().expect("pins").entry(key).or_insert(0) += 1;
        PinGuard {
            rows: Vec::new(),
            groups: Default::default(),
            inner: self.clone(),
            ids: vec![key],
        }
    }

    /// Runs `f` with the pin table locked: nothing can pin or unpin meanwhile (compaction
    /// checks pins and commits under it, as `reclaim` does for v1 chunks).
    pub fn with_pins<R>(&self, f: impl FnOnce(&HashMap<PinKey, u32>) -> R) -> R {
        f(&self.pins.lock().expect("pins"))
    }

    /// Releases pins; returns the v1 chunks no longer pinned by anyone.
    fn unpin(&self, ids: &[PinKey]) -> Vec<ChunkId> {
        let mut pins = self.pins.lock().expect("pins");
        let mut released = Vec::new();
        for id in ids {
            if let Some(n) = pins.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(id);
                    if let PinKey::Chunk(c) = id {
                        released.push(*c);
                    }
                }
            }
        }
        released
    }

    /// Deletes each candidate chunk whose reference count is zero and that no write pins.
    ///
    /// Why this is race-free: a count can rise from zero only through a writer that stores
    /// (or finds) that chunk, and writers pin first; clone and concatenate raise counts of
    /// chunks that their locked source blob already references (count ≥ 1). The pin check,
    /// the count read and the unlink all happen under the pin lock, so a writer either pins
    /// before (and the chunk stays) or after (and finds no file, so writes it again).
    pub fn reclaim(&self, candidates: &[ChunkId]) -> Result<usize> {
        if candidates.is_empty() {
            return Ok(0);
        }
        let pins = self.pins.lock().expect("pins");
        let mut removed = 0;
        for id in candidates {
            if pins.contains_key(&PinKey::Chunk(*id)) {
                continue;
            }
            let stored = self.kv.get(Family::Chunks, &id.0)?;
            if stored.as_deref().map(decode_count).unwrap_or(0) > 0 {
                continue;
            }
            self.dirs.remove_chunk(id)?;
            if stored.is_some() {
                self.kv
                    .write(&[Op::Delete(Family::Chunks, id.0.to_vec())], false)?;
            }
            removed += 1;
        }
        Ok(removed)
    }

    /// Reclaims every unreferenced chunk file older than `grace`, and drops count records
    /// at zero whose file is already gone.
    pub fn collect_garbage(&self, grace: Duration) -> Result<usize> {
        let now = std::time::SystemTime::now();
        let mut candidates = Vec::new();
        self.dirs.list_chunks(|id, _, mtime| {
            if now.duration_since(mtime).unwrap_or_default() >= grace {
                candidates.push(id);
            }
        })?;
        let mut unreferenced = Vec::new();
        for id in candidates {
            let count = self
                .kv
                .get(Family::Chunks, &id.0)?
                .as_deref()
                .map(decode_count)
                .unwrap_or(0);
            if count <= 0 {
                unreferenced.push(id);
            }
        }
        let mut zero_records = Vec::new();
        self.kv.walk(Family::Chunks, &[], &mut |k, v| {
            if decode_count(v) <= 0 {
                if let Ok(k) = <[u8; 32]>::try_from(k) {
                    zero_records.push(ChunkId(k));
                }
            }
            Ok(true)
        })?;
        let removed = self.reclaim(&unreferenced)?;
        self.reclaim(&zero_records)?;
        Ok(removed)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.kv.write(
            &[Op::Put(
                Family::Meta,
                node_meta_key(&self.cfg, META_CLEAN),
                b"1".to_vec(),
            )],
            true,
        ) {
            tracing::error!(error = %e, "could not record a clean shutdown");
        }
    }
}

/// Keeps chunks pinned while an uncommitted write holds them. On drop, the chunks that are
/// no longer pinned are checked for reclamation (an abandoned upload leaves nothing behind).
pub(crate) struct PinGuard {
    inner: Arc<Inner>,
    ids: Vec<PinKey>,
    /// With a shared catalog: the same pins as catalog rows (cluster.rs), and the groups
    /// they cover.
    pub(crate) rows: Vec<crate::cluster::PinRow>,
    groups: std::collections::HashSet<u64>,
}

/// What a pin holds: a v1 chunk file, a v2 chunk (by number), or a v2 pack an ingest wrote
/// records into that no committed group describes yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PinKey {
    Chunk(ChunkId),
    No(crate::group::ChunkNo),
    Pack(u64),
}

impl PinGuard {
    pub fn absorb(&mut self, mut other: PinGuard) {
        self.ids.append(&mut std::mem::take(&mut other.ids));
        self.rows.append(&mut std::mem::take(&mut other.rows));
        self.groups.extend(other.groups.drain());
    }

    pub fn empty(inner: &Arc<Inner>) -> PinGuard {
        PinGuard {
            inner: inner.clone(),
            ids: Vec::new(),
            rows: Vec::new(),
            groups: Default::default(),
        }
    }

    /// Pins v2 chunk `no` for this write: in memory, and with a shared catalog its group as
    /// a catalog row (once per group per guard). Call before reading where the chunk is.
    pub fn pin_chunk(&mut self, no: crate::group::ChunkNo) -> Result<()> {
        let pin = self.inner.pin_key(PinKey::No(no));
        self.absorb(pin);
        if let Some(node) = &self.inner.node {
            if self.groups.insert(no.group()) {
                let rows = self.inner.pin_groups_in_catalog(node, &[no.group()])?;
                self.rows.extend(rows);
            }
        }
        Ok(())
    }

    /// Pins a pack this write creates, before anything can upload it.
    pub fn pin_pack(&mut self, pack: u64) -> Result<()> {
        let pin = self.inner.pin_key(PinKey::Pack(pack));
        self.absorb(pin);
        if let Some(node) = &self.inner.node {
            let rows = self.inner.pin_pack_in_catalog(node, pack)?;
            self.rows.extend(rows);
        }
        Ok(())
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if !self.rows.is_empty() {
            let rows = std::mem::take(&mut self.rows);
            self.inner.in_background(move |inner| {
                if let Err(e) = inner.unpin_in_catalog(&rows) {
                    tracing::warn!(error = %e, "dropping pins from the catalog failed; they go when this node does");
                }
            });
        }
        if self.ids.is_empty() {
            return;
        }
        let released = self.inner.unpin(&self.ids);
        if released.is_empty() {
            return;
        }
        self.inner.in_background(move |inner| {
            if let Err(e) = inner.reclaim(&released) {
                tracing::warn!(error = %e, "reclaiming chunks of an abandoned write failed; gc will retry");
            }
        });
    }
}

impl Inner {
    /// After a commit that dropped v2 references: with `compact_delay` set and no pass
    /// already waiting, starts one that runs after the delay. The waiting task holds only a
    /// weak handle, so it never keeps a closing store open.
    pub(crate) fn schedule_compaction_if_due(self: &Arc<Self>) {
        let Some(delay) = self.cfg.compact_delay else {
            return;
        };
        if !self.compaction_due.load(Ordering::Acquire)
            || self.compaction_scheduled.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.compaction_scheduled.store(false, Ordering::Release);
            return;
        };
        let weak = Arc::downgrade(self);
        rt.spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(inner) = weak.upgrade() else { return };
            // Deletes from here on schedule the next pass.
            inner.compaction_due.store(false, Ordering::Release);
            inner.compaction_scheduled.store(false, Ordering::Release);
            let threshold = inner.cfg.compact_below;
            let job = inner.clone();
            drop(inner);
            match tokio::task::spawn_blocking(move || job.compact(threshold)).await {
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "background compaction failed; gc retries")
                }
                Err(e) => tracing::warn!(error = %e, "background compaction stopped"),
                Ok(Ok(_)) => {}
            }
        });
    }

    /// Runs catalog or disk work scheduled from a `Drop` (which cannot wait for it) on a
    /// blocking thread, counted until done so that [`Store::settle`] can wait for it.
    pub(crate) fn in_background(self: &Arc<Self>, job: impl FnOnce(&Inner) + Send + 'static) {
        let inner = self.clone();
        inner.pending_reclaims.fetch_add(1, Ordering::AcqRel);
        let run = move |inner: Arc<Inner>| {
            job(&inner);
            inner.pending_reclaims.fetch_sub(1, Ordering::AcqRel);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(move || run(inner));
            }
            Err(_) => run(inner),
        }
    }
}

fn encode_dirs(dirs: &[(PathBuf, u64)]) -> Vec<u8> {
    let mut s = String::new();
    for (p, id) in dirs {
        s.push_str(&format!("{id:016x} {}\n", p.display()));
    }
    s.into_bytes()
}

fn decode_dirs(v: &[u8]) -> Result<Vec<(PathBuf, u64)>> {
    let s = std::str::from_utf8(v).map_err(|_| StoreError::Malformed("data directory list"))?;
    s.lines()
        .map(|l| {
            let (id, p) = l
                .split_once(' ')
                .ok_or(StoreError::Malformed("data directory list"))?;
            let id = u64::from_str_radix(id, 16)
                .map_err(|_| StoreError::Malformed("data directory id"))?;
            Ok((PathBuf::from(p), id))
        })
        .collect()
}

/// Reads of the committed catalog (`Store::read_catalog`), outside any transaction: each read sees
/// the latest commit, so one that depends on another must re-check what it relies on.
pub struct CatalogReader<'a> {
    kv: &'a dyn Kv,
}

impl CatalogReader<'_> {
    pub fn get(&self, cat: Catalog, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.kv.get(Family::Front(cat), key)
    }

    /// The values of those of `keys` that exist (one round trip with PostgreSQL).
    pub fn get_many(&self, cat: Catalog, keys: &[Vec<u8>]) -> Result<HashMap<Vec<u8>, Vec<u8>>> {
        self.kv.get_many(Family::Front(cat), keys)
    }

    /// As [`Store::scan`].
    pub fn scan(
        &self,
        cat: Catalog,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        kv::scan(self.kv, Family::Front(cat), prefix, after, limit)
    }

    /// How many entries have keys that start with `prefix`.
    pub fn count(&self, cat: Catalog, prefix: &[u8]) -> Result<u64> {
        let mut n = 0;
        kv::walk_prefix(self.kv, Family::Front(cat), prefix, &mut |_, _| {
            n += 1;
            Ok(true)
        })?;
        Ok(n)
    }

    /// Up to `limit` entries whose keys start with `prefix`, in descending key order, from
    /// the greatest key strictly before `before` (or from the prefix's end).
    pub fn scan_back(
        &self,
        cat: Catalog,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        kv::scan_back(self.kv, Family::Front(cat), prefix, before, limit)
    }
}
