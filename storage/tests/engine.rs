//! Engine behaviour through its public API: round trips, ranges, dedup, zeros, inline blobs,
//! clone and concatenation, delete and reclamation, data directory checks, corruption and a
//! full disk.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{open, pattern, TmpFs};
use futures::stream;
use glint_storage::{
    BlobId, Catalog, DigestSet, ScrubOptions, Store, StoreConfig, StoreError, WriteOptions,
};

const CHUNK: usize = 64 << 10;

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

fn scrub_now() -> ScrubOptions {
    ScrubOptions {
        verify_data: true,
        repair: false,
        grace: Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_digests_across_odd_input_framing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    let data = pattern(1, 5 * CHUNK + 12345);
    // Feed it in uneven pieces so chunk boundaries fall inside input buffers.
    let pieces: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(7777)
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
    assert_eq!(store.read_to_vec(id, None).await.unwrap(), data);
    let info = store.blob_info(id).await.unwrap().unwrap();
    assert_eq!(info.size, data.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_cross_chunk_boundaries_and_bad_ranges_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    let data = pattern(2, 3 * CHUNK + 100);
    let id = put(&store, &data).await;
    for (a, b) in [
        (0, 1),
        (CHUNK - 1, CHUNK + 1),
        (10, 3 * CHUNK + 100),
        (3 * CHUNK, 3 * CHUNK + 100),
        (5, 5),
    ] {
        let got = store
            .read_to_vec(id, Some(a as u64..b as u64))
            .await
            .unwrap();
        assert_eq!(got, &data[a..b], "range {a}..{b}");
    }
    let err = store
        .read(id, Some(0..(data.len() as u64 + 1)))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::InvalidRange { .. }));
    let err = store.read(BlobId::random(), None).await.err().unwrap();
    assert!(matches!(err, StoreError::BlobNotFound(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_chunks_are_stored_once_and_zeros_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    let mut data = pattern(3, 4 * CHUNK);
    data.extend(vec![0u8; 8 * CHUNK]); // a sparse tail, as in raw VM images
    let a = put(&store, &data).await;
    assert_eq!(store.chunk_file_count().unwrap(), 4);
    let b = put(&store, &data).await; // a second copy: no new files
    assert_eq!(store.chunk_file_count().unwrap(), 4);
    assert_eq!(
        store
            .read_to_vec(b, Some(3 * CHUNK as u64..6 * CHUNK as u64))
            .await
            .unwrap(),
        &data[3 * CHUNK..6 * CHUNK]
    );
    store.delete(a).await.unwrap();
    assert_eq!(
        store.chunk_file_count().unwrap(),
        4,
        "still referenced by b"
    );
    store.delete(b).await.unwrap();
    assert_eq!(
        store.chunk_file_count().unwrap(),
        0,
        "reclaimed at zero references"
    );
    assert!(store.scrub(scrub_now()).await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_and_empty_blobs_need_no_chunk_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    let tiny = put(&store, b"hello").await;
    let empty = put(&store, b"").await;
    assert_eq!(store.chunk_file_count().unwrap(), 0);
    assert_eq!(store.read_to_vec(tiny, None).await.unwrap(), b"hello");
    assert_eq!(store.read_to_vec(tiny, Some(1..3)).await.unwrap(), b"el");
    assert!(store.read_to_vec(empty, None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_and_concat_touch_metadata_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    let a_data = pattern(4, 2 * CHUNK + 5000);
    let b_data = pattern(5, CHUNK / 2);
    let a = put(&store, &a_data).await;
    let b = put(&store, &b_data).await;
    let files = store.chunk_file_count().unwrap();
    let part = store
        .clone_blob(a, Some(1000..CHUNK as u64 + 7))
        .await
        .unwrap();
    let joined = store
        .transact(move |tx| tx.concat(&[(a, None), (b, Some(10..20)), (a, Some(0..3))]))
        .await
        .unwrap();
    assert_eq!(store.chunk_file_count().unwrap(), files, "no bytes copied");
    assert_eq!(
        store.read_to_vec(part, None).await.unwrap(),
        &a_data[1000..CHUNK + 7]
    );
    let mut want = a_data.clone();
    want.extend_from_slice(&b_data[10..20]);
    want.extend_from_slice(&a_data[..3]);
    assert_eq!(store.read_to_vec(joined, None).await.unwrap(), want);
    // Sources can go; the copies keep their chunks alive.
    store.delete(a).await.unwrap();
    store.delete(b).await.unwrap();
    assert_eq!(
        store
            .read_to_vec(joined, Some(5..CHUNK as u64 * 2))
            .await
            .unwrap(),
        &want[5..CHUNK * 2]
    );
    assert!(store.scrub(scrub_now()).await.unwrap().is_clean());
    let err = store.clone_blob(a, None).await.unwrap_err();
    assert!(matches!(err, StoreError::BlobNotFound(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_records_commit_atomically_with_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    let staged = store
        .write_bytes(pattern(6, 3 * CHUNK), md5_only())
        .await
        .unwrap();
    let id = store
        .transact(move |tx| {
            let id = tx.add_blob(&staged)?;
            tx.put(Catalog::Objects, b"bucket/key", &id.0)?;
            Ok(id)
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .get(Catalog::Objects, b"bucket/key".to_vec())
            .await
            .unwrap(),
        Some(id.0.to_vec())
    );
    // A failing transaction leaves nothing: the record and the blob delete both roll back.
    let err = store
        .transact(move |tx| {
            tx.delete_blob(id)?;
            tx.delete(Catalog::Objects, b"bucket/key")?;
            Err::<(), _>(StoreError::Config("abort".into()))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Config(_)));
    assert!(store.blob_info(id).await.unwrap().is_some());
    assert!(store
        .get(Catalog::Objects, b"bucket/key".to_vec())
        .await
        .unwrap()
        .is_some());
    let listed = store
        .scan(Catalog::Objects, b"bucket/".to_vec(), None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_and_failed_writes_leave_no_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    // Dropped without commit.
    let staged = store
        .write_bytes(pattern(7, 4 * CHUNK), md5_only())
        .await
        .unwrap();
    assert_eq!(store.chunk_file_count().unwrap(), 4);
    drop(staged);
    store.settle().await;
    assert_eq!(store.chunk_file_count().unwrap(), 0);
    // The input fails half-way.
    let items: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(pattern(8, 3 * CHUNK))),
        Err(std::io::Error::other("client went away")),
    ];
    let err = store
        .write(stream::iter(items), md5_only())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Input(_)));
    store.settle().await;
    assert_eq!(store.chunk_file_count().unwrap(), 0);
    // Over the size cap.
    let opts = WriteOptions {
        digests: DigestSet::MD5,
        max_size: Some(2 * CHUNK as u64),
    };
    let err = store
        .write_bytes(pattern(9, 3 * CHUNK), opts)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }));
    store.settle().await;
    assert_eq!(store.chunk_file_count().unwrap(), 0);
    assert!(store.scrub(scrub_now()).await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_commit_and_double_delete_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    let staged = std::sync::Arc::new(
        store
            .write_bytes(pattern(10, CHUNK * 2), md5_only())
            .await
            .unwrap(),
    );
    let s2 = staged.clone();
    let id = store.transact(move |tx| tx.add_blob(&s2)).await.unwrap();
    let s3 = staged.clone();
    assert!(matches!(
        store.transact(move |tx| tx.add_blob(&s3)).await,
        Err(StoreError::AlreadyCommitted(_))
    ));
    let (s1, s2) = (store.clone(), store.clone());
    let (r1, r2) = tokio::join!(s1.delete(id), s2.delete(id));
    assert!(
        r1.is_ok() != r2.is_ok(),
        "exactly one concurrent delete wins"
    );
    drop(staged);
    store.settle().await;
    let report = store.scrub(scrub_now()).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_deleted_while_read_is_read_to_the_end() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    let data = pattern(21, CHUNK * 40);
    let id = put(&store, &data).await;
    let (_, mut reader) = store.read(id, None).await.unwrap();
    let mut got = reader.next().await.unwrap().unwrap().to_vec();
    // Deleted with a reader halfway: gone for everyone else at once...
    store.delete(id).await.unwrap();
    assert!(store.list_blobs().await.unwrap().is_empty());
    assert!(matches!(
        store.read(id, None).await,
        Err(StoreError::BlobNotFound(_))
    ));
    assert!(matches!(
        store.delete(id).await,
        Err(StoreError::BlobNotFound(_)) | Ok(())
    ));
    // ...while the reader gets every byte it started with.
    while let Some(piece) = reader.next().await {
        got.extend_from_slice(&piece.unwrap());
    }
    assert!(got == data, "the reader's bytes differ");
    drop(reader);
    store.settle().await;
    assert_eq!(
        store.chunk_file_count().unwrap(),
        0,
        "the last reader finished the delete"
    );
    assert!(store.scrub(scrub_now()).await.unwrap().is_clean());

    // A reader that goes away early finishes the delete too.
    let id = put(&store, &data).await;
    let (_, mut reader) = store.read(id, None).await.unwrap();
    reader.next().await.unwrap().unwrap();
    store.delete(id).await.unwrap();
    drop(reader);
    for _ in 0..200 {
        store.settle().await;
        if store.chunk_file_count().unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.chunk_file_count().unwrap(), 0);
    assert!(store.scrub(scrub_now()).await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_is_a_typed_error_and_scrub_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    let victim_data = pattern(11, 3 * CHUNK);
    let victim = put(&store, &victim_data).await;
    let other_data = pattern(12, 2 * CHUNK);
    let other = put(&store, &other_data).await;
    // Flip one byte in the chunk that holds the victim's second 64 KiB.
    let target = glint_storage::ChunkId::of(&victim_data[CHUNK..2 * CHUNK]).to_hex();
    let path = dir
        .path()
        .join("data/chunks")
        .join(&target[..2])
        .join(&target);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();

    let err = store
        .read_to_vec(victim, Some(CHUNK as u64 + 10..CHUNK as u64 + 20))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    // Bytes before the damage stream; the damage ends the stream with the error.
    let err = store.read_to_vec(victim, None).await.unwrap_err();
    assert!(err.is_integrity());
    assert_eq!(
        store
            .read_to_vec(victim, Some(0..CHUNK as u64))
            .await
            .unwrap(),
        &victim_data[..CHUNK]
    );
    assert_eq!(store.read_to_vec(other, None).await.unwrap(), other_data);
    let report = store.scrub(scrub_now()).await.unwrap();
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].0.to_hex(), target);
    // A removed chunk is reported missing.
    std::fs::remove_file(&path).unwrap();
    let report = store.scrub(scrub_now()).await.unwrap();
    assert_eq!(report.missing.len(), 1);
    assert!(matches!(
        store.read_to_vec(victim, None).await.unwrap_err(),
        StoreError::ChunkMissing(_)
    ));
}

/// Dedup reuses a stored chunk only if it holds exactly the bytes being written: a damaged
/// data byte, a damaged header (its block CRC) or a truncated file is replaced by the
/// writer's bytes, healing every blob that shares the chunk. Scrub names the blobs a damaged
/// chunk hurts until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_of_the_same_bytes_heals_a_damaged_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    let data = pattern(21, 2 * CHUNK);
    let first = put(&store, &data).await;
    let target = glint_storage::ChunkId::of(&data[..CHUNK]).to_hex();
    let path = dir
        .path()
        .join("data/chunks")
        .join(&target[..2])
        .join(&target);
    let pristine = std::fs::read(&path).unwrap();
    let damages: [fn(&mut Vec<u8>); 3] = [
        |b| *b.last_mut().unwrap() ^= 1, // a data byte
        |b| b[17] ^= 0x80,               // the first block's CRC in the header
        |b| b.truncate(b.len() - 4096),  // a torn file
    ];
    let mut sharing = vec![first];
    for damage in damages {
        let mut bytes = pristine.clone();
        damage(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        assert!(store
            .read_to_vec(first, None)
            .await
            .unwrap_err()
            .is_integrity());
        let report = store.scrub(scrub_now()).await.unwrap();
        let mut damaged = report.damaged_blobs.clone();
        damaged.sort();
        sharing.sort();
        assert_eq!(damaged, sharing, "every blob sharing the chunk");
        let second = put(&store, &data).await;
        sharing.push(second);
        assert_eq!(std::fs::read(&path).unwrap(), pristine, "replaced");
        assert_eq!(store.read_to_vec(first, None).await.unwrap(), data);
        assert_eq!(store.read_to_vec(second, None).await.unwrap(), data);
        let report = store.scrub(scrub_now()).await.unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert!(report.damaged_blobs.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_repairs_reference_counts_and_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), CHUNK);
    let data = pattern(13, 2 * CHUNK);
    let _a = put(&store, &data).await;
    // Damage: one count too high, and a chunk file nothing references.
    store
        .debug_add_refcount(glint_storage::ChunkId::of(&data[..CHUNK]), 1)
        .await
        .unwrap();
    let orphan = pattern(14, CHUNK);
    let id = glint_storage::ChunkId::of(&orphan).to_hex();
    std::fs::write(
        dir.path().join("data/chunks").join(&id[..2]).join(&id),
        &orphan,
    )
    .unwrap();
    let report = store.scrub(scrub_now()).await.unwrap();
    assert_eq!(report.orphans.len(), 1, "{report:?}");
    assert_eq!(report.refcount_mismatches.len(), 1, "{report:?}");
    assert_eq!(report.refcount_mismatches[0].1, 2);
    assert_eq!(report.refcount_mismatches[0].2, 1);
    let report = store
        .scrub(ScrubOptions {
            repair: true,
            ..scrub_now()
        })
        .await
        .unwrap();
    assert_eq!(report.repaired, 2);
    let report = store.scrub(scrub_now()).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(store.read_to_vec(_a, None).await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_data_dirs_share_the_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("disk{i}")))
        .collect();
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut cfg = StoreConfig::new(dirs.clone(), dir.path().join("catalog"));
    cfg.format = glint_storage::Format::V1;
    cfg.chunk_size = CHUNK;
    let store = Store::open(cfg.clone()).unwrap();
    let data = pattern(15, 30 * CHUNK);
    let id = put(&store, &data).await;
    let per_dir: Vec<usize> = dirs.iter().map(|d| walk_count(&d.join("chunks"))).collect();
    assert_eq!(per_dir.iter().sum::<usize>(), 30);
    assert!(
        per_dir.iter().all(|&n| n > 0),
        "placement spreads chunks: {per_dir:?}"
    );
    assert_eq!(store.read_to_vec(id, None).await.unwrap(), data);
    drop(store);

    // A known directory that lost its marker (unmounted disk) refuses to start.
    std::fs::remove_file(dirs[1].join("GLINT-DATADIR")).unwrap();
    let err = Store::open(cfg.clone()).err().unwrap();
    assert!(matches!(err, StoreError::DataDir { .. }), "{err}");
}

fn walk_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read_dir(e.unwrap().path()).unwrap().count())
        .sum()
}

#[test]
fn missing_or_unusable_data_dirs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(vec![dir.path().join("nope")], dir.path().join("catalog"));
    let err = Store::open(cfg).err().unwrap();
    assert!(matches!(err, StoreError::DataDir { .. }));
    assert!(err.to_string().contains("nope"), "{err}");

    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(StoreConfig::new(vec![file], dir.path().join("catalog2")))
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a directory"), "{err}");

    let ro = dir.path().join("ro");
    match TmpFs::mount(&ro, 1 << 20, true) {
        Some(_mount) => {
            let err = Store::open(StoreConfig::new(
                vec![ro.clone()],
                dir.path().join("catalog3"),
            ))
            .err()
            .unwrap();
            assert!(err.to_string().contains("not writable"), "{err}");
        }
        None => {
            eprintln!("SKIP read-only data dir: cannot mount a read-only tmpfs here (not root)")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_cleanly_and_keeps_the_store_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let Some(_mount) = TmpFs::mount(&data_dir, 2 << 20, false) else {
        eprintln!("SKIP disk-full test: cannot mount a small tmpfs here (not root)");
        return;
    };
    let store = open(dir.path(), CHUNK);
    let kept_data = pattern(16, 8 * CHUNK); // 512 KiB fits
    let kept = put(&store, &kept_data).await;
    let err = store
        .write_bytes(pattern(17, 64 * CHUNK), md5_only())
        .await
        .unwrap_err(); // 4 MiB does not
    assert!(matches!(err, StoreError::StorageFull { .. }), "{err:?}");
    store.settle().await;
    assert_eq!(store.read_to_vec(kept, None).await.unwrap(), kept_data);
    let report = store.scrub(scrub_now()).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        store.chunk_file_count().unwrap(),
        8,
        "the failed write's chunks are gone"
    );
    // Space is usable again.
    let again = put(&store, &pattern(18, 4 * CHUNK)).await;
    assert_eq!(
        store.read_to_vec(again, None).await.unwrap().len(),
        4 * CHUNK
    );
}
