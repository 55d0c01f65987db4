//! Engine benchmarks (criterion). Run with `bash benches/storage.sh`, which also measures the
//! machine's limits in the same run and writes the ratios into storage/README.md's table.
//!
//!   ingest/*       256 MiB of incompressible data, streamed in 64 KiB pieces (as a socket
//!                  delivers it), MD5 only or MD5 + SHA-512, at several chunk sizes
//!   ingest_dedup   the same 256 MiB again while the first copy is stored
//!   read_cached/*  the whole blob from the page cache, CRC-verified (and BLAKE3-verified)
//!   read_cold      the whole blob after dropping its chunk files from the page cache
//!   range_64k/*    1000 random 64 KiB ranged reads

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use glint_storage::{BlobId, DigestSet, Format, Store, StoreConfig, WriteOptions};
use rand::{Rng, RngCore, SeedableRng};

const SIZE: usize = 256 << 20;
const PIECE: usize = 64 << 10;

fn bench_root() -> PathBuf {
    let base = std::env::var_os("GLINT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("glint-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh store in its own directory under `root` (earlier stores may still be open).
fn open(root: &Path, chunk: usize, full_hash: bool) -> Store {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = root.join(
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string(),
    );
    let mut cfg = StoreConfig::single(&dir);
    std::fs::create_dir_all(&cfg.data_dirs[0]).unwrap();
    // The chunk-size benchmarks are format v1's (fixed-size chunks).
    cfg.format = Format::V1;
    cfg.chunk_size = chunk;
    cfg.verify_full_hash_on_read = full_hash;
    Store::open(cfg).unwrap()
}

fn data() -> Bytes {
    let mut v = vec![0u8; SIZE];
    rand::rngs::StdRng::seed_from_u64(42).fill_bytes(&mut v);
    Bytes::from(v)
}

fn pieces(data: &Bytes) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let d = data.clone();
    futures::stream::iter(
        (0..d.len())
            .step_by(PIECE)
            .map(move |i| Ok(d.slice(i..(i + PIECE).min(d.len())))),
    )
}

async fn ingest(store: &Store, data: &Bytes, digests: DigestSet) -> BlobId {
    let staged = store
        .write(
            pieces(data),
            WriteOptions {
                digests,
                max_size: None,
            },
        )
        .await
        .unwrap();
    store.commit(staged).await.unwrap()
}

async fn drain(store: &Store, id: BlobId, range: Option<std::ops::Range<u64>>) -> usize {
    let (_, mut r) = store.read(id, range).await.unwrap();
    let mut n = 0;
    while let Some(b) = r.next().await {
        n += b.unwrap().len();
    }
    n
}

fn drop_page_cache(store: &Store) {
    fn walk(p: &Path) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path);
            } else if let Ok(f) = std::fs::File::open(&path) {
                // SAFETY: plain syscall on a valid descriptor.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
        }
    }
    walk(&store.config().data_dirs[0]);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let data = data();
    let root = bench_root();

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Bytes(SIZE as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    for (name, digests, chunks) in [
        ("md5", DigestSet::MD5, &[256 << 10, 1 << 20, 4 << 20][..]),
        (
            "md5+sha512",
            DigestSet::MD5 | DigestSet::SHA512,
            &[1 << 20][..],
        ),
    ] {
        for &chunk in chunks {
            let store = open(&root, chunk, false);
            g.bench_function(BenchmarkId::new(name, format!("{}KiB", chunk >> 10)), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (store, data) = (store.clone(), data.clone());
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let t = Instant::now();
                            let id = ingest(&store, &data, digests).await;
                            total += t.elapsed();
                            store.delete(id).await.unwrap(); // next round writes afresh
                        }
                        total
                    }
                })
            });
        }
    }
    let store = open(&root, 1 << 20, false);
    let first = rt.block_on(ingest(&store, &data, DigestSet::MD5));
    g.bench_function("dedup_second_copy", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (store, data) = (store.clone(), data.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let id = ingest(&store, &data, DigestSet::MD5).await;
                    total += t.elapsed();
                    store.delete(id).await.unwrap();
                }
                total
            }
        })
    });
    let _ = first;
    g.finish();

    let mut g = c.benchmark_group("read_cached");
    g.throughput(Throughput::Bytes(SIZE as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (label, chunk, full_hash) in [
        ("crc_256KiB", 256 << 10, false),
        ("crc_1024KiB", 1 << 20, false),
        ("crc_4096KiB", 4 << 20, false),
        ("blake3_1024KiB", 1 << 20, true),
    ] {
        let store = open(&root, chunk, full_hash);
        let id = rt.block_on(ingest(&store, &data, DigestSet::NONE));
        rt.block_on(drain(&store, id, None)); // warm the page cache
        g.bench_function(label, |b| b.to_async(&rt).iter(|| drain(&store, id, None)));
    }
    g.finish();

    let mut g = c.benchmark_group("read_cold");
    g.throughput(Throughput::Bytes(SIZE as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let store = open(&root, 1 << 20, false);
    let id = rt.block_on(ingest(&store, &data, DigestSet::NONE));
    g.bench_function("crc_1024KiB", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    drop_page_cache(&store);
                    let t = Instant::now();
                    drain(&store, id, None).await;
                    total += t.elapsed();
                }
                total
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("range_64k");
    g.throughput(Throughput::Elements(1000)).sample_size(10);
    for chunk in [256 << 10, 1 << 20, 4 << 20] {
        let store = open(&root, chunk, false);
        let id = rt.block_on(ingest(&store, &data, DigestSet::NONE));
        rt.block_on(drain(&store, id, None));
        g.bench_function(format!("{}KiB", chunk >> 10), |b| {
            b.to_async(&rt).iter(|| {
                let store = store.clone();
                async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
                    for _ in 0..1000 {
                        let at = rng.gen_range(0..(SIZE - PIECE) as u64);
                        drain(&store, id, Some(at..at + PIECE as u64)).await;
                    }
                }
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&root);
}

/// Content-defined chunking (engine v2, issue 10) against single-core MD5 on the same
/// bytes in memory: chunking must stay far from the ingest limit, which MD5 sets.
fn chunking(c: &mut Criterion) {
    use md5::Digest;
    let data = data();
    let mut g = c.benchmark_group("chunking");
    g.throughput(Throughput::Bytes(SIZE as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    g.bench_function("cdc_4k_aligned_avg16k", |b| {
        b.iter(|| glint_storage::cdc::chunks(&data, glint_storage::cdc::CdcParams::DEFAULT).len())
    });
    g.bench_function("md5", |b| b.iter(|| md5::Md5::digest(&data[..])));
    g.finish();
}

/// A store in format v1 (1 MiB chunk files) or v2 (content-defined chunks in packs).
fn open_format(root: &Path, format: Format) -> Store {
    open_format_with(root, format, glint_storage::Codec::Lz4)
}

fn open_format_with(root: &Path, format: Format, codec: glint_storage::Codec) -> Store {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = root.join(format!(
        "f{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut cfg = StoreConfig::single(&dir);
    std::fs::create_dir_all(&cfg.data_dirs[0]).unwrap();
    cfg.format = format;
    cfg.codec = codec;
    Store::open(cfg).unwrap()
}

/// `data` made unique for round `n`: every 4 KiB block gets the round number in its first
/// bytes, so no round dedups against an earlier (deleted but not yet compacted) one.
fn fresh(data: &Bytes, n: u64) -> Bytes {
    let mut v = data.to_vec();
    for block in v.chunks_mut(4096) {
        block[..8].copy_from_slice(&n.to_le_bytes());
    }
    Bytes::from(v)
}

/// A later "release" of `data`: 12 KiB inserted every 8 MiB, so every later chunk of a
/// fixed-size chunker moves, while content-defined chunks are found again in the first
/// copy's packs.
fn release(data: &Bytes) -> Bytes {
    let mut v = Vec::with_capacity(data.len() + data.len() / 512);
    for (i, piece) in data.chunks(8 << 20).enumerate() {
        v.extend_from_slice(piece);
        v.extend_from_slice(&[i as u8 ^ 0x5a; 12 << 10]);
    }
    Bytes::from(v)
}

/// Format v1 against v2 in the same minutes (issue 10's ratios): ingest with MD5 +
/// SHA-512, whole reads warm and cold, a deduplicated later release, 64 KiB ranges.
fn formats(c: &mut Criterion) {
    let rt = runtime();
    let data = data();
    let root = bench_root();
    let both = [("v1", Format::V1), ("v2", Format::V2)];

    let mut g = c.benchmark_group("format_ingest");
    g.throughput(Throughput::Bytes(SIZE as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    for (label, format, codec) in [
        ("v1", Format::V1, glint_storage::Codec::Lz4),
        ("v2", Format::V2, glint_storage::Codec::Lz4),
        ("v2_uncompressed", Format::V2, glint_storage::Codec::Raw),
    ] {
        let store = open_format_with(&root, format, codec);
        let round = std::sync::atomic::AtomicU64::new(1);
        g.bench_function(format!("md5+sha512/{label}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let store = store.clone();
                let inputs: Vec<Bytes> = (0..iters)
                    .map(|_| {
                        fresh(
                            &data,
                            round.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        )
                    })
                    .collect();
                async move {
                    let mut total = Duration::ZERO;
                    for input in inputs {
                        let t = Instant::now();
                        let id = ingest(&store, &input, DigestSet::MD5 | DigestSet::SHA512).await;
                        total += t.elapsed();
                        // Free the space as a running store would (v1 at once, v2 by
                        // compaction), so both formats write into reused disk blocks.
                        store.delete(id).await.unwrap();
                        store.gc(Duration::ZERO).await.unwrap();
                    }
                    total
                }
            })
        });
    }
    // A second copy of stored bytes: every chunk a dedup hit, which v1 confirms by comparing
    // the chunk file with the bytes in hand and v2 by reading the record and checking its CRC.
    for (label, format) in both {
        let store = open_format(&root, format);
        let input = fresh(&data, 0);
        let _first = rt.block_on(ingest(&store, &input, DigestSet::MD5 | DigestSet::SHA512));
        g.bench_function(format!("dedup_second_copy/{label}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (store, input) = (store.clone(), input.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let t = Instant::now();
                        let id = ingest(&store, &input, DigestSet::MD5 | DigestSet::SHA512).await;
                        total += t.elapsed();
                        store.delete(id).await.unwrap();
                    }
                    total
                }
            })
        });
    }
    g.finish();

    let later = release(&data);
    let mut stores = Vec::new();
    let mut g = c.benchmark_group("format_read");
    g.throughput(Throughput::Bytes(SIZE as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (label, format) in both {
        let store = open_format(&root, format);
        let first = rt.block_on(ingest(&store, &data, DigestSet::NONE));
        let second = rt.block_on(ingest(&store, &later, DigestSet::NONE));
        for (what, id) in [("fresh", first), ("later_release", second)] {
            rt.block_on(drain(&store, id, None));
            g.bench_function(format!("warm_{what}/{label}"), |b| {
                b.to_async(&rt).iter(|| drain(&store, id, None))
            });
            g.bench_function(format!("cold_{what}/{label}"), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let store = store.clone();
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            drop_page_cache(&store);
                            let t = Instant::now();
                            drain(&store, id, None).await;
                            total += t.elapsed();
                        }
                        total
                    }
                })
            });
        }
        stores.push((label, store, first));
    }
    g.finish();

    let mut g = c.benchmark_group("format_range_64k");
    g.throughput(Throughput::Elements(1000)).sample_size(10);
    for (label, store, first) in &stores {
        rt.block_on(drain(store, *first, None));
        g.bench_function(*label, |b| {
            b.to_async(&rt).iter(|| {
                let store = store.clone();
                let first = *first;
                async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
                    for _ in 0..1000 {
                        let at = rng.gen_range(0..(SIZE - PIECE) as u64);
                        drain(&store, first, Some(at..at + PIECE as u64)).await;
                    }
                }
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(storage, benches, chunking, formats);
criterion_main!(storage);
