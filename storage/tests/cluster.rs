//! Two engine instances ("nodes") with data directories of their own, sharing one catalog in
//! PostgreSQL and one pack store in an S3-compatible object store (cluster mode): what one
//! writes the other reads byte for byte from the object store, a delete through one is seen
//! by the other at once, concurrent writers on both never collide on group numbers, and
//! dedup finds chunks the other node stored.
//!
//! Needs `GLINT_TEST_CATALOG_URL` and `GLINT_TEST_PACK_STORE` (scripts/test.sh starts
//! PostgreSQL and SeaweedFS); without them it says so and passes.

mod common;

use common::pattern;
use glint_storage::{DigestSet, Format, Store, StoreConfig, WriteOptions};

fn node(shared: &std::path::Path, own: &std::path::Path) -> Option<Store> {
    let mut cfg = StoreConfig::single(own);
    std::fs::create_dir_all(&cfg.data_dirs[0]).unwrap();
    cfg.format = Format::V2;
    cfg.catalog_url = Some(glint_storage::testing::catalog_url_for(shared)?);
    cfg.pack_store = Some(glint_storage::testing::pack_store_for(shared)?);
    Some(Store::open(cfg).unwrap())
}

/// Two nodes on one catalog and one pack prefix, each with a data directory of its own (the
/// directories live as long as the first element); `None`, said, without the engines.
fn two_nodes() -> Option<([tempfile::TempDir; 3], Store, Store)> {
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let Some(a) = node(dirs[0].path(), dirs[1].path()) else {
        eprintln!("no PostgreSQL and object store given: cluster test skipped");
        return None;
    };
    let b = node(dirs[0].path(), dirs[2].path()).unwrap();
    Some((dirs, a, b))
}

fn opts() -> WriteOptions {
    WriteOptions {
        digests: DigestSet::MD5,
        max_size: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_blobs_through_the_catalog_and_the_object_store() {
    let Some((dirs, a, b)) = two_nodes() else {
        return;
    };

    // Written on A, read on B (whose data directory holds no pack: ranged GETs).
    let one = pattern(1, 5 << 20);
    let staged = a.write_bytes(one.clone(), opts()).await.unwrap();
    let id_one = a.commit(staged).await.unwrap();
    assert_eq!(b.read_to_vec(id_one, None).await.unwrap(), one);
    assert_eq!(
        b.read_to_vec(id_one, Some(1_000_000..1_065_536))
            .await
            .unwrap(),
        one[1_000_000..1_065_536]
    );
    assert!(
        std::fs::read_dir(dirs[2].path().join("data/packs"))
            .unwrap()
            .next()
            .is_none(),
        "node B read from its own disk"
    );

    // Writers on both nodes at once: distinct group numbers, every blob intact on both.
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let data = pattern(100 + i, (1 << 20) + i as usize * 4099);
            let staged = node.write_bytes(data.clone(), opts()).await.unwrap();
            (node.commit(staged).await.unwrap(), data)
        }));
    }
    let mut written = Vec::new();
    for t in tasks {
        written.push(t.await.unwrap());
    }
    for (id, data) in &written {
        assert_eq!(&a.read_to_vec(*id, None).await.unwrap(), data);
        assert_eq!(&b.read_to_vec(*id, None).await.unwrap(), data);
    }

    // Dedup across nodes: B storing A's bytes again adds (almost) no pack bytes.
    let before = b.usage(false).await.unwrap().pack_bytes;
    let staged = b.write_bytes(one.clone(), opts()).await.unwrap();
    let id_again = b.commit(staged).await.unwrap();
    let after = b.usage(false).await.unwrap().pack_bytes;
    assert!(
        after - before < 64 << 10,
        "a second copy cost {} bytes",
        after - before
    );
    assert_eq!(a.read_to_vec(id_again, None).await.unwrap(), one);

    // A delete through B is seen by A at once; the other copy still reads.
    b.delete(id_one).await.unwrap();
    assert!(a
        .read_to_vec(id_one, None)
        .await
        .unwrap_err()
        .to_string()
        .contains("not found"));
    assert_eq!(a.read_to_vec(id_again, None).await.unwrap(), one);

    // Both nodes' scrubs agree that the shared store is sound.
    for n in [&a, &b] {
        let r = n
            .scrub(glint_storage::ScrubOptions {
                verify_data: true,
                repair: false,
                grace: std::time::Duration::ZERO,
            })
            .await
            .unwrap();
        assert!(r.is_clean(), "{r:?}");
    }
}

/// Compaction and repairing scrubs run on one node at a time: while node A holds the
/// catalog-wide maintenance lock, node B's compaction does nothing and says so, and its
/// repairing scrub is refused; once A lets go, B's run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_runs_on_one_node_at_a_time() {
    let Some((_dirs, a, b)) = two_nodes() else {
        return;
    };
    let held = a.debug_hold_maintenance().await.unwrap();
    assert!(held.is_some());
    assert!(b.debug_hold_maintenance().await.unwrap().is_none());
    let r = b.compact(0.5).await.unwrap();
    assert!(r.busy_elsewhere, "{r:?}");
    let repair = glint_storage::ScrubOptions {
        verify_data: false,
        repair: true,
        grace: std::time::Duration::ZERO,
    };
    assert!(b.scrub(repair).await.is_err());
    drop(held);
    let r = b.compact(0.5).await.unwrap();
    assert!(!r.busy_elsewhere, "{r:?}");
    assert!(b.scrub(repair).await.unwrap().is_clean());
}

const SCRUB: glint_storage::ScrubOptions = glint_storage::ScrubOptions {
    verify_data: true,
    repair: false,
    grace: std::time::Duration::ZERO,
};

/// Compaction over every pack (threshold above 1: even fully live packs are rewritten, so
/// every group moves and every dead chunk goes).
const EVERYTHING: f64 = 1.01;

/// Writers on node A store, again and again, the bytes of a blob that node B deletes and
/// then compacts away at the same moment. Whatever the interleaving, A's new blob must read
/// back byte for byte on both nodes: its dedup hits either pinned the old chunks before B's
/// compaction decided (the pack waits) or found them gone (stored afresh). Scrub is clean
/// after every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_and_deleters_race_across_nodes() {
    let Some((_dirs, a, b)) = two_nodes() else {
        return;
    };
    let rounds: u64 = std::env::var("GLINT_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let data = pattern(7, 3 << 20);
    let staged = a.write_bytes(data.clone(), opts()).await.unwrap();
    let mut old = a.commit(staged).await.unwrap();
    for round in 0..rounds {
        let deleter = {
            let b = b.clone();
            tokio::spawn(async move {
                b.delete(old).await.unwrap();
                // Stagger against the writer differently every round.
                tokio::time::sleep(std::time::Duration::from_millis(round % 4 * 7)).await;
                b.compact(EVERYTHING).await.unwrap()
            })
        };
        let writer = {
            let (a, data) = (a.clone(), data.clone());
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(round % 3 * 5)).await;
                let staged = a.write_bytes(data, opts()).await.unwrap();
                a.commit(staged).await
            })
        };
        deleter.await.unwrap();
        // A commit may only fail as fenced (never here: both nodes live) — so it must not.
        let new = writer.await.unwrap().unwrap();
        assert_eq!(
            a.read_to_vec(new, None).await.unwrap(),
            data,
            "round {round}"
        );
        assert_eq!(
            b.read_to_vec(new, None).await.unwrap(),
            data,
            "round {round}"
        );
        // And nothing is lost once every pass has had its say.
        b.compact(EVERYTHING).await.unwrap();
        assert_eq!(
            b.read_to_vec(new, None).await.unwrap(),
            data,
            "round {round}"
        );
        let r = a.scrub(SCRUB).await.unwrap();
        assert!(r.is_clean(), "round {round}: {r:?}");
        old = new;
    }
}

/// A download streaming on node B survives a delete and a compaction on node A: B's lease
/// row defers the delete, and the last reader finishes it, after which compaction reclaims
/// the bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_on_one_node_outlives_a_delete_on_another() {
    use futures::StreamExt;
    let Some((_dirs, a, b)) = two_nodes() else {
        return;
    };
    for round in 0..4u64 {
        let data = pattern(50 + round, 6 << 20);
        let staged = a.write_bytes(data.clone(), opts()).await.unwrap();
        let id = a.commit(staged).await.unwrap();
        let (_, mut reader) = b.read(id, None).await.unwrap();
        let mut got = reader.next().await.unwrap().unwrap().to_vec();
        a.delete(id).await.unwrap();
        // Gone for everyone else at once…
        assert!(a.read_to_vec(id, None).await.is_err());
        assert!(b.read_to_vec(id, None).await.is_err());
        let r = a.compact(EVERYTHING).await.unwrap();
        assert!(!r.busy_elsewhere);
        // …yet the running download reads every byte.
        while let Some(piece) = reader.next().await {
            got.extend_from_slice(&piece.unwrap());
        }
        assert_eq!(got.len(), data.len(), "round {round}");
        assert!(
            got == data,
            "round {round}: the download changed under a delete"
        );
        drop(reader);
        b.settle().await;
        // The delete finished when the download did: compaction now reclaims everything.
        a.compact(EVERYTHING).await.unwrap();
        assert_eq!(a.usage(false).await.unwrap().blobs, 0, "round {round}");
    }
    assert_eq!(a.usage(false).await.unwrap().pack_bytes, 0);
    assert!(a.scrub(SCRUB).await.unwrap().is_clean());
}

/// Fencing: a node presumed dead (its catalog session lost) has its pins cleared by
/// compaction elsewhere, so its write in flight must fail at commit rather than reference a
/// pack that compaction removed; the node then rejoins and writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_presumed_dead_cannot_commit_what_compaction_removed() {
    let Some((_dirs, a, b)) = two_nodes() else {
        return;
    };
    let data = pattern(90, 2 << 20);
    let staged = b.write_bytes(data.clone(), opts()).await.unwrap();
    b.debug_lose_liveness();
    // A sees B's pack pinned by a dead node: the pins go, and so does the pack.
    let r = a.compact(EVERYTHING).await.unwrap();
    assert!(r.packs_removed >= 1, "{r:?}");
    let err = b.commit(staged).await.unwrap_err();
    assert!(err.is_transient(), "fenced commits fail retryably: {err}");
    // Rejoined under a new id, B writes and both nodes read.
    let staged = b.write_bytes(data.clone(), opts()).await.unwrap();
    let id = b.commit(staged).await.unwrap();
    a.compact(EVERYTHING).await.unwrap();
    assert_eq!(a.read_to_vec(id, None).await.unwrap(), data);
    assert!(a.scrub(SCRUB).await.unwrap().is_clean());
}

/// A blob larger than a pack: full packs are uploaded while the ingest goes on, and the
/// commit waits for all of them; the other node reads it whole and in ranges.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blob_spanning_many_packs_reads_on_the_other_node() {
    let Some((_dirs, a, b)) = two_nodes() else {
        return;
    };
    let data = pattern(123, 100 << 20);
    let staged = a.write_bytes(data.clone(), opts()).await.unwrap();
    let id = a.commit(staged).await.unwrap();
    assert!(b.read_to_vec(id, None).await.unwrap() == data);
    let r = (70 << 20) + 12_345..(90 << 20);
    assert!(
        b.read_to_vec(id, Some(r.clone())).await.unwrap() == data[r.start as usize..r.end as usize]
    );
    assert!(a.scrub(SCRUB).await.unwrap().is_clean());
}

/// Local pack copies stay under `local_cache_bytes`: once they pass it, the least recently
/// written that the object store holds whole are dropped, and reads of them go to the
/// object store, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_pack_copies_stay_under_their_bound() {
    let dirs = [(); 2].map(|_| tempfile::tempdir().unwrap());
    let mut cfg = StoreConfig::single(dirs[1].path());
    std::fs::create_dir_all(&cfg.data_dirs[0]).unwrap();
    cfg.format = Format::V2;
    let Some(url) = glint_storage::testing::catalog_url_for(dirs[0].path()) else {
        eprintln!("no PostgreSQL and object store given: cluster test skipped");
        return;
    };
    cfg.catalog_url = Some(url);
    let Some(mut remote) = glint_storage::testing::pack_store_for(dirs[0].path()) else {
        return;
    };
    let cap: u64 = 8 << 20;
    remote.local_cache_bytes = Some(cap);
    cfg.pack_store = Some(remote);
    let store = Store::open(cfg).unwrap();
    let packs_dir = dirs[1].path().join("data/packs");
    let local = || -> (u64, usize) {
        let files: Vec<u64> = std::fs::read_dir(&packs_dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        (files.iter().sum(), files.len())
    };
    let mut written = Vec::new();
    for i in 0..6u64 {
        let data = pattern(700 + i, 3 << 20);
        let staged = store.write_bytes(data.clone(), opts()).await.unwrap();
        written.push((store.commit(staged).await.unwrap(), data));
    }
    // Young copies are kept (they may still be on their way to the object store).
    assert!(local().0 > cap, "{:?}", local());
    // Once they are older than a minute, the next write drops the oldest.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    for e in std::fs::read_dir(&packs_dir).unwrap() {
        let f = std::fs::File::options()
            .write(true)
            .open(e.unwrap().path())
            .unwrap();
        f.set_modified(old).unwrap();
    }
    let data = pattern(799, 3 << 20);
    let staged = store.write_bytes(data.clone(), opts()).await.unwrap();
    written.push((store.commit(staged).await.unwrap(), data));
    let (bytes, files) = local();
    assert!(
        bytes <= cap,
        "{bytes} bytes in {files} local packs over the bound {cap}"
    );
    for (id, data) in &written {
        assert_eq!(&store.read_to_vec(*id, None).await.unwrap(), data);
    }
    let report = store.scrub(Default::default()).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}
