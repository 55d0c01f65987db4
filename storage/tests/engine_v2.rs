//! Format v2 (content-defined chunks in packs) through the public API: round trips, ranges,
//! dedup of shifted content, zero runs, compression, clone/concat across formats, reopen,
//! and corruption of a pack.

mod common;

use bytes::Bytes;
use common::pattern;
use futures::stream;
use glint_storage::{BlobId, DigestSet, Format, Store, StoreConfig, StoreError, WriteOptions};

fn config(root: &std::path::Path, format: Format) -> StoreConfig {
    let mut cfg = common::config(root, 1 << 20);
    common::set_format(&mut cfg, format);
    cfg
}

fn open(root: &std::path::Path) -> Store {
    Store::open(config(root, Format::V2)).unwrap()
}

/// Whether consecutive writes append to one pack, as they do on local disks. An object
/// store's packs are immutable, so there each write has packs of its own, and the tests
/// built on two blobs sharing a pack do not apply (their rules are covered by the crash and
/// model tests there).
fn ingests_share_packs() -> bool {
    let shared = std::env::var("GLINT_TEST_PACK_STORE").is_err();
    if !shared {
        eprintln!("packs are in an object store: not shared between writes, test skipped");
    }
    shared
}

fn md5_only() -> WriteOptions {
    WriteOptions {
        digests: DigestSet::MD5,
        max_size: None,
    }
}

async fn put(store: &Store, data: &[u8]) -> BlobId {
    let staged = store.write_bytes(data.to_vec(), md5_only()).await.unwrap();
    store.commit(staged).await.unwrap()
}

/// Bytes in the pack files of a store rooted at `root`.
fn pack_bytes(root: &std::path::Path) -> u64 {
    std::fs::read_dir(root.join("data/packs"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Text-like bytes that compress (words from a small vocabulary, xorshift-chosen).
fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "image ",
        "glance ",
        "chunk ",
        "pack ",
        "the ",
        "of ",
        "store ",
        "qcow2 ",
        "raw ",
        "kernel ",
        "initrd ",
        "/usr/lib/",
        "x86_64 ",
        "\n",
        "debian ",
        "bookworm ",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
    }
    out.truncate(len);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_digests_across_odd_input_framing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for (len, piece) in [(5 << 20, 7777), (3 << 20, 4099), (100_000, 1), (4096, 4096)] {
        let data = pattern(len as u64, len);
        let pieces: Vec<Result<Bytes, std::io::Error>> = data
            .chunks(piece)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let staged = store
            .write(
                stream::iter(pieces),
                WriteOptions {
                    digests: DigestSet::ALL,
                    max_size: None,
                },
            )
            .await
            .unwrap();
        let mut h = glint_storage::Hasher::new(DigestSet::ALL);
        h.update(&data);
        assert_eq!(staged.digests(), &h.finish());
        assert_eq!(staged.size(), data.len() as u64);
        let id = store.commit(staged).await.unwrap();
        assert_eq!(
            store.read_to_vec(id, None).await.unwrap(),
            data,
            "len {len}"
        );
    }
    // Empty and tiny blobs: no pack record.
    let before = pack_bytes(dir.path());
    let empty = put(&store, b"").await;
    let tiny = put(&store, b"hello").await;
    assert_eq!(store.read_to_vec(empty, None).await.unwrap(), b"");
    assert_eq!(store.read_to_vec(tiny, None).await.unwrap(), b"hello");
    assert_eq!(pack_bytes(dir.path()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_match_slices() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut data = text(1, 3 << 20);
    data.extend_from_slice(&pattern(2, 2 << 20));
    data.extend_from_slice(&vec![0u8; 1 << 20]);
    data.extend_from_slice(&text(3, 777_777));
    let id = put(&store, &data).await;
    assert_eq!(store.read_to_vec(id, None).await.unwrap(), data);
    let n = data.len() as u64;
    let mut x = 12345u64;
    for _ in 0..200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = (x >> 11) % n;
        let b = (a + (x >> 40) % (300 << 10)).min(n);
        let got = store.read_to_vec(id, Some(a..b)).await;
        assert_eq!(
            got.map_err(|e| format!("{a}..{b}: {e}")).unwrap(),
            &data[a as usize..b as usize],
            "{a}..{b}"
        );
    }
    assert!(matches!(
        store.read_to_vec(id, Some(n - 1..n + 1)).await.unwrap_err(),
        StoreError::InvalidRange { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shifted_content_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Release B = A with 12 KiB inserted 1 MiB in, and 4 KiB changed further on.
    let a = pattern(7, 16 << 20);
    let mut b = a[..1 << 20].to_vec();
    b.extend_from_slice(&pattern(8, 12 << 10));
    b.extend_from_slice(&a[1 << 20..]);
    let at = 9 << 20;
    b[at..at + 4096].copy_from_slice(&pattern(9, 4096));
    let ia = put(&store, &a).await;
    let after_a = pack_bytes(dir.path());
    let ib = put(&store, &b).await;
    let grown = pack_bytes(dir.path()) - after_a;
    assert!(
        grown < (a.len() / 20) as u64,
        "B added {grown} bytes to packs (A took {after_a})"
    );
    assert_eq!(store.read_to_vec(ia, None).await.unwrap(), a);
    assert_eq!(store.read_to_vec(ib, None).await.unwrap(), b);
    // The same bytes again: nothing new at all.
    let again = pack_bytes(dir.path());
    put(&store, &b).await;
    assert_eq!(pack_bytes(dir.path()), again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeros_cost_nothing_and_text_is_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut sparse = vec![0u8; 64 << 20];
    sparse[10 << 20..(10 << 20) + 5000].copy_from_slice(&pattern(3, 5000));
    let id = put(&store, &sparse).await;
    assert!(
        pack_bytes(dir.path()) < 64 << 10,
        "{}",
        pack_bytes(dir.path())
    );
    assert_eq!(store.read_to_vec(id, None).await.unwrap(), sparse);
    let words = text(5, 8 << 20);
    let before = pack_bytes(dir.path());
    let t = put(&store, &words).await;
    let used = pack_bytes(dir.path()) - before;
    assert!(
        used < words.len() as u64 / 2,
        "{used} bytes for 8 MiB of text"
    );
    assert_eq!(store.read_to_vec(t, None).await.unwrap(), words);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_concat_and_delete_across_formats() {
    let dir = tempfile::tempdir().unwrap();
    let v1_data = pattern(21, 3 << 20);
    let v1 = {
        let store = Store::open(config(dir.path(), Format::V1)).unwrap();
        let id = put(&store, &v1_data).await;
        store.settle().await;
        id
    };
    // The same store reopened writing v2: old blobs stay readable, new ones are packed.
    let store = open(dir.path());
    let v2_data = text(22, 3 << 20);
    let v2 = put(&store, &v2_data).await;
    assert_eq!(store.read_to_vec(v1, None).await.unwrap(), v1_data);
    let joined = store
        .transact(move |tx| tx.concat(&[(v1, Some(1000..2 << 20)), (v2, Some(5..(1 << 20) + 3))]))
        .await
        .unwrap();
    let mut want = v1_data[1000..2 << 20].to_vec();
    want.extend_from_slice(&v2_data[5..(1 << 20) + 3]);
    assert_eq!(store.read_to_vec(joined, None).await.unwrap(), want);
    let c = store.clone_blob(v2, Some(777..2_000_000)).await.unwrap();
    store.delete(v2).await.unwrap();
    assert!(matches!(
        store.read_to_vec(v2, None).await.unwrap_err(),
        StoreError::BlobNotFound(_)
    ));
    assert_eq!(
        store.read_to_vec(c, None).await.unwrap(),
        &v2_data[777..2_000_000]
    );
    assert_eq!(
        store.read_to_vec(c, Some(100..200)).await.unwrap(),
        &v2_data[877..977]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_survive_reopen_and_new_groups_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let a = pattern(31, 5 << 20);
    let ia = {
        let store = open(dir.path());
        let id = put(&store, &a).await;
        store.settle().await;
        id
    };
    let store = open(dir.path());
    let b = pattern(32, 5 << 20);
    let ib = put(&store, &b).await;
    assert_eq!(store.read_to_vec(ia, None).await.unwrap(), a);
    assert_eq!(store.read_to_vec(ib, None).await.unwrap(), b);
    // A dedups against what the earlier run stored.
    let before = pack_bytes(dir.path());
    put(&store, &a).await;
    assert_eq!(pack_bytes(dir.path()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_pack_is_a_typed_error_never_wrong_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = pattern(41, 2 << 20);
    let id = put(&store, &data).await;
    let packs: Vec<_> = std::fs::read_dir(dir.path().join("data/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1);
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&packs[0], bytes).unwrap();
    let err = store.read_to_vec(id, None).await.unwrap_err();
    assert!(err.is_integrity(), "{err:?}");
}

fn pack_count(root: &std::path::Path) -> usize {
    std::fs::read_dir(root.join("data/packs")).unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_frees_dead_packs_and_rewrites_sparse_ones() {
    if !ingests_share_packs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = pattern(51, 6 << 20);
    let b = pattern(52, 2 << 20);
    let ia = put(&store, &a).await;
    let ib = put(&store, &b).await; // the same idle pack: A's and B's records side by side
    assert_eq!(pack_count(dir.path()), 1);
    // Nothing dead yet: nothing to do.
    let r = store.compact(0.5).await.unwrap();
    assert_eq!((r.packs_removed, r.packs_rewritten), (0, 0), "{r:?}");
    store.delete(ia).await.unwrap();
    let before = pack_bytes(dir.path());
    let r = store.compact(0.5).await.unwrap();
    assert_eq!(r.packs_rewritten, 1, "{r:?}");
    assert!(r.chunks_dropped > 300, "{r:?}");
    let after = pack_bytes(dir.path());
    assert!(
        after < before / 3 && after > b.len() as u64,
        "{before} → {after}"
    );
    assert_eq!(store.read_to_vec(ib, None).await.unwrap(), b);
    assert_eq!(
        store.read_to_vec(ib, Some(12345..1_000_000)).await.unwrap(),
        &b[12345..1_000_000]
    );
    // B's chunks are still found by the index at their new place.
    put(&store, &b).await;
    assert_eq!(pack_bytes(dir.path()), after);
    // A is gone for good: writing it again stores it again.
    let ia2 = put(&store, &a).await;
    assert!(pack_bytes(dir.path()) > after + a.len() as u64 / 2);
    assert_eq!(store.read_to_vec(ia2, None).await.unwrap(), a);
    // Everything deleted: every pack goes.
    let ids = store.list_blobs().await.unwrap();
    for id in ids {
        store.delete(id).await.unwrap();
    }
    let r = store.compact(0.5).await.unwrap();
    assert!(r.packs_removed >= 1, "{r:?}");
    assert_eq!(pack_bytes(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_chunks_an_uncommitted_write_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = pattern(61, 3 << 20);
    let ia = put(&store, &a).await;
    store.delete(ia).await.unwrap();
    // A write of the same bytes finds the (unreferenced) chunks and pins them...
    let staged = store.write_bytes(a.clone(), md5_only()).await.unwrap();
    // ...so compaction must not drop them before that write commits.
    let r = store.compact(0.5).await.unwrap();
    assert_eq!(r.chunks_dropped, 0, "{r:?}");
    let id = store.commit(staged).await.unwrap();
    store.compact(0.5).await.unwrap();
    assert_eq!(store.read_to_vec(id, None).await.unwrap(), a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_under_way_survives_compaction_of_its_pack() {
    if !ingests_share_packs() {
        return;
    }
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Format::V2);
    cfg.read_ahead = 1;
    let store = Store::open(cfg).unwrap();
    let a = pattern(71, 8 << 20);
    let b = pattern(72, 8 << 20);
    let ia = put(&store, &a).await;
    let ib = put(&store, &b).await;
    let (_, mut reader) = store.read(ib, None).await.unwrap();
    let mut got = Vec::new();
    got.extend_from_slice(&reader.next().await.unwrap().unwrap());
    store.delete(ia).await.unwrap();
    let r = store.compact(0.6).await.unwrap();
    assert_eq!(r.packs_rewritten, 1, "{r:?}");
    while let Some(piece) = reader.next().await {
        got.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(got, b);
}

fn scrub_now(repair: bool) -> glint_storage::ScrubOptions {
    glint_storage::ScrubOptions {
        verify_data: true,
        repair,
        grace: std::time::Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_checks_packs_counts_and_names_damaged_blobs() {
    if !ingests_share_packs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = pattern(81, 3 << 20);
    let b = text(82, 3 << 20);
    let ia = put(&store, &a).await;
    let ib = put(&store, &b).await;
    let clean = store.scrub(scrub_now(false)).await.unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!(clean.packs, 1);
    assert!(clean.bytes_verified >= (a.len() + b.len()) as u64);
    assert!(clean.garbage_bytes < 4096, "{clean:?}");
    // A deleted blob leaves garbage, which is not a problem.
    let ic = put(&store, &pattern(83, 1 << 20)).await;
    store.delete(ic).await.unwrap();
    let r = store.scrub(scrub_now(false)).await.unwrap();
    assert!(r.is_clean() && r.garbage_bytes > 1 << 20, "{r:?}");

    // A damaged count is found and repaired.
    // (Chunk 0 is the first chunk of a fresh store: group 0, slot 0.)
    store.debug_add_chunk_no_refcount(0, 5).await.unwrap();
    let r = store.scrub(scrub_now(false)).await.unwrap();
    assert_eq!(r.group_count_mismatches.len(), 1, "{r:?}");
    assert_eq!(r.group_count_mismatches[0].0, 0);
    store.scrub(scrub_now(true)).await.unwrap();
    assert!(store.scrub(scrub_now(false)).await.unwrap().is_clean());

    // A flipped byte in A's data: a corrupt record, and A named as damaged (B is fine).
    let pack = std::fs::read_dir(dir.path().join("data/packs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = 16 + 56 + 1000; // inside A's first record
    bytes[at] ^= 1;
    std::fs::write(&pack, &bytes).unwrap();
    let r = store.scrub(scrub_now(false)).await.unwrap();
    assert_eq!(r.corrupt_records.len(), 1, "{r:?}");
    assert!(r.has_damage());
    assert_eq!(r.damaged_blobs, vec![ia]);
    assert_eq!(store.read_to_vec(ib, None).await.unwrap(), b);
    // The pack gone: every referenced record is missing.
    std::fs::remove_file(&pack).unwrap();
    let store = {
        drop(store);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        open(dir.path())
    };
    let r = store.scrub(scrub_now(false)).await.unwrap();
    assert!(r.missing_records.len() > 100, "{r:?}");
    let mut named = r.damaged_blobs.clone();
    named.sort();
    let mut want = vec![ia, ib];
    want.sort();
    assert_eq!(named, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_rewrites_v1_blobs_under_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let a = pattern(91, 5 << 20);
    let mut b = a[..1 << 20].to_vec(); // A with 8 KiB inserted: v1 shares nothing after it
    b.extend_from_slice(&pattern(92, 8 << 10));
    b.extend_from_slice(&a[1 << 20..]);
    let mut sparse = vec![0u8; 4 << 20];
    sparse[3 << 20..(3 << 20) + 100].copy_from_slice(&pattern(93, 100));
    let (ia, ib, is, ic) = {
        let store = Store::open(config(dir.path(), Format::V1)).unwrap();
        let ia = put(&store, &a).await;
        let ib = put(&store, &b).await;
        let is = put(&store, &sparse).await;
        let ic = store
            .transact(move |tx| tx.concat(&[(ia, Some(100..3_000_000)), (is, None)]))
            .await
            .unwrap();
        store.settle().await;
        (ia, ib, is, ic)
    };
    let mut c = a[100..3_000_000].to_vec();
    c.extend_from_slice(&sparse);
    let store = open(dir.path());
    let tiny = put(&store, b"tiny").await;
    for id in [ia, ib, is, ic] {
        assert!(store.has_v1_extents(id).await.unwrap());
        assert!(store.migrate_blob(id).await.unwrap());
        assert!(!store.has_v1_extents(id).await.unwrap());
        if id == ib {
            // A and B now share all but the inserted bytes.
            let u = store.usage(false).await.unwrap();
            assert!(u.pack_bytes < (a.len() + a.len() / 10) as u64, "{u:?}");
        }
    }
    assert!(
        !store.migrate_blob(tiny).await.unwrap(),
        "nothing to migrate"
    );
    assert!(!store.migrate_blob(ia).await.unwrap(), "done already");
    store.gc(std::time::Duration::ZERO).await.unwrap();
    let u = store.usage(false).await.unwrap();
    assert_eq!(u.chunk_files, 0, "{u:?}");
    for (id, want) in [(ia, &a), (ib, &b), (is, &sparse), (ic, &c)] {
        assert_eq!(&store.read_to_vec(id, None).await.unwrap(), want);
    }
    let r = store.scrub(scrub_now(false)).await.unwrap();
    assert!(r.is_clean(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_are_compacted_in_the_background_after_a_delay() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Format::V2);
    cfg.compact_delay = Some(std::time::Duration::from_millis(200));
    let store = Store::open(cfg).unwrap();
    let a = pattern(101, 4 << 20);
    let b = pattern(102, 1 << 20);
    let ia = put(&store, &a).await;
    let ib = put(&store, &b).await;
    store.delete(ia).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pack_bytes(dir.path()) > (2 * b.len()) as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "no background compaction: {} pack bytes",
            pack_bytes(dir.path())
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(store.read_to_vec(ib, None).await.unwrap(), b);
    // A waiting pass does not keep a closed store open.
    store.delete(ib).await.unwrap();
    drop(store);
    let mut cfg = config(dir.path(), Format::V2);
    cfg.compact_delay = Some(std::time::Duration::from_millis(200));
    let store = Store::open(cfg).unwrap();
    assert!(store.list_blobs().await.unwrap().is_empty());
}

/// The only pack of a store (tests that write a few MiB).
fn only_pack(root: &std::path::Path) -> std::path::PathBuf {
    let packs: Vec<_> = std::fs::read_dir(root.join("data/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    packs[0].clone()
}

/// Flips one bit at `at` in a file.
fn flip(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 1;
    std::fs::write(path, bytes).unwrap();
}

/// Offsets in a fresh store's first pack: its header (16 bytes), then the first record's
/// header (56 bytes) and stored bytes.
const FIRST_RECORD_HEADER: usize = 16;
const FIRST_RECORD_DATA: usize = 16 + 56;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_is_replaced_by_the_next_write_of_its_bytes() {
    for (what, at) in [
        ("data", FIRST_RECORD_DATA + 1000),
        ("header", FIRST_RECORD_HEADER + 30),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let data = pattern(91, 3 << 20);
        let first = put(&store, &data).await;
        flip(&only_pack(dir.path()), at);
        let r = store.scrub(scrub_now(false)).await.unwrap();
        assert_eq!(r.corrupt_records.len(), 1, "{what}: {r:?}");
        if what == "data" {
            let err = store.read_to_vec(first, None).await.unwrap_err();
            assert!(err.is_integrity(), "{err:?}");
        }
        // The same bytes again: the dedup hit checks the record, finds the damage, stores a
        // fresh copy and moves the damaged record's group onto it.
        let second = put(&store, &data).await;
        for id in [first, second] {
            assert!(
                store.read_to_vec(id, None).await.unwrap() == data,
                "{what}: reads back whole"
            );
        }
        let r = store.scrub(scrub_now(false)).await.unwrap();
        assert!(r.is_clean(), "{what}: {r:?}");
        // Compaction then frees the damaged record's old place.
        store.compact(1.0).await.unwrap();
        let r = store.scrub(scrub_now(false)).await.unwrap();
        assert!(r.is_clean() && r.garbage_bytes < 1 << 20, "{what}: {r:?}");
        for id in [first, second] {
            assert!(store.read_to_vec(id, None).await.unwrap() == data);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_repair_heals_a_damaged_record_from_a_stored_copy() {
    if !ingests_share_packs() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = pattern(92, 2 << 20);
    // Two writes staged before either commits store two copies; the index names the second.
    let a = store.write_bytes(data.clone(), md5_only()).await.unwrap();
    let b = store.write_bytes(data.clone(), md5_only()).await.unwrap();
    let a = store.commit(a).await.unwrap();
    let b = store.commit(b).await.unwrap();
    let pack = only_pack(dir.path());
    flip(&pack, FIRST_RECORD_DATA + 1000); // A's first record
    let r = store.scrub(scrub_now(false)).await.unwrap();
    assert_eq!(r.corrupt_records.len(), 1, "{r:?}");
    assert_eq!(r.damaged_blobs, vec![a]);
    let r = store.scrub(scrub_now(true)).await.unwrap();
    assert_eq!(r.records_healed, 1, "{r:?}");
    assert!(r.corrupt_records.is_empty() && !r.has_damage(), "{r:?}");
    for id in [a, b] {
        assert!(store.read_to_vec(id, None).await.unwrap() == data);
    }
    assert!(store.scrub(scrub_now(false)).await.unwrap().is_clean());

    // Now the copy the index names (B's) is damaged: the good one is found by its header.
    // Records start with the magic "GCK\x02"; in the first pack A's come first (healing
    // copied A's damaged group elsewhere, leaving the old records), then B's, as many.
    let bytes = std::fs::read(&pack).unwrap();
    let starts: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"GCK\x02")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len() % 2, 0, "{} records", starts.len());
    flip(&pack, starts[starts.len() / 2] + 56 + 100);
    let r = store.scrub(scrub_now(true)).await.unwrap();
    assert_eq!(r.records_healed, 1, "{r:?}");
    assert!(!r.has_damage(), "{r:?}");
    for id in [a, b] {
        assert!(store.read_to_vec(id, None).await.unwrap() == data);
    }
}
