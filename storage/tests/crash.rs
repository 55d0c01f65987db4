//! Crash test: a child process writes, clones, concatenates and deletes blobs, printing each
//! operation before it starts and again once acknowledged; the parent SIGKILLs it at random
//! moments, reopens the store (running recovery) and checks that
//!   - every acknowledged blob reads back byte-exact, every acknowledged delete stayed done;
//!   - nothing unacknowledged is visible (only the single in-flight operation may have landed);
//!   - scrub finds no orphan chunk, no missing chunk and reference counts equal to manifests.
//!
//! Slow background readers make some deletes wait for their readers (a deferred delete,
//! which recovery must finish when the kill comes first).
//!
//! The same rounds run against format v2 (content-defined chunks in packs), where the child
//! also compacts packs now and then, so kills land inside compactions too; there scrub must
//! also find every referenced record in a pack that exists (no chunk lost with a compacted
//! pack) and group counts equal to the manifests.
//!
//! `GLINT_CRASH_ROUNDS` sets the number of rounds per format (default 50; the long mode is
//! e.g. 2000).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pattern;
use glint_storage::{BlobId, DigestSet, Format, ScrubOptions, StoreConfig, WriteOptions};
use rand::{Rng, SeedableRng};

const CHUNK: usize = 16 << 10;

/// Content of a put, from its seed: whole chunks drawn from a small palette (so chunks are
/// shared between blobs), zero chunks, unique chunks, and a partial last chunk.
fn generate(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut k = 0u64;
    while out.len() < len {
        let pick = (seed.wrapping_mul(31).wrapping_add(k * 7)) % 8;
        let block = match pick {
            0 => vec![0u8; CHUNK],
            1..=4 => pattern(pick, CHUNK),
            _ => pattern(seed.wrapping_mul(1000).wrapping_add(k + 10), CHUNK),
        };
        out.extend_from_slice(&block);
        k += 1;
    }
    out.truncate(len);
    out
}

fn config(dir: &std::path::Path, format: Format) -> StoreConfig {
    let mut cfg = common::config(dir, CHUNK);
    common::set_format(&mut cfg, format);
    // Small packs, so that a run fills and rolls over several, and compaction has work.
    cfg.pack_target = 1 << 20;
    cfg
}

fn format_from_env() -> Format {
    match std::env::var("GLINT_CRASH_FORMAT").as_deref() {
        Ok("v2") => Format::V2,
        _ => Format::V1,
    }
}

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("GLINT_CRASH_CHILD_DIR") else {
        return;
    };
    let seed: u64 = std::env::var("GLINT_CRASH_SEED").unwrap().parse().unwrap();
    println!(); // end the harness's "test crash_child ... " line: protocol lines start clean
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let format = format_from_env();
        let store = glint_storage::Store::open(config(std::path::Path::new(&dir), format)).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut ids = store.list_blobs().await.unwrap();
        // The parent's kill timer starts now: recovery at open takes what the machine's
        // load makes it take, and the rounds must still get work done.
        println!("READY");
        loop {
            // Slow readers in the background, so that deletes also land on blobs being
            // read (deferred until the reader ends, or finished by recovery after the kill).
            if !ids.is_empty() && rng.gen_range(0..4) == 0 {
                let (store, id) = (store.clone(), ids[rng.gen_range(0..ids.len())]);
                tokio::spawn(async move {
                    use futures::StreamExt;
                    if let Ok((_, mut r)) = store.read(id, None).await {
                        while let Some(Ok(_)) = r.next().await {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                });
            }
            let roll = rng.gen_range(0..100);
            if roll < 45 || ids.is_empty() {
                let s: u64 = rng.gen();
                let len = rng.gen_range(0..40 * CHUNK);
                let staged = store
                    .write_bytes(
                        generate(s, len),
                        WriteOptions {
                            digests: DigestSet::MD5,
                            max_size: None,
                        },
                    )
                    .await
                    .unwrap();
                println!("BEGIN PUT {} {s} {len}", staged.id());
                let id = store.commit(staged).await.unwrap();
                println!("ACK PUT {id}");
                ids.push(id);
            } else if roll < 70 {
                let id = ids.swap_remove(rng.gen_range(0..ids.len()));
                println!("BEGIN DEL {id}");
                store.delete(id).await.unwrap();
                println!("ACK DEL {id}");
            } else if format == Format::V2 && roll < 75 {
                // Compaction, interrupted by some kills; it changes no blob.
                let r = store.compact(0.9).await.unwrap();
                println!("COMPACTED {} {}", r.packs_rewritten, r.packs_removed);
            } else if roll < 85 {
                let src = ids[rng.gen_range(0..ids.len())];
                let size = store.blob_info(src).await.unwrap().unwrap().size;
                let a = rng.gen_range(0..=size);
                let b = rng.gen_range(a..=size);
                println!("BEGIN CLONE {src} {a} {b}");
                let id = store.clone_blob(src, Some(a..b)).await.unwrap();
                println!("ACK CLONE {id}");
                ids.push(id);
            } else {
                let x = ids[rng.gen_range(0..ids.len())];
                let y = ids[rng.gen_range(0..ids.len())];
                println!("BEGIN CONCAT {x} {y}");
                let id = store
                    .transact(move |tx| tx.concat(&[(x, None), (y, None)]))
                    .await
                    .unwrap();
                println!("ACK CONCAT {id}");
                ids.push(id);
            }
        }
    });
}

/// What an operation in flight at the kill would have produced.
enum InFlight {
    None,
    Put(BlobId, Vec<u8>),
    Del(BlobId),
    Derived(Vec<u8>),
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    crash_rounds(Format::V1);
}

#[test]
fn acknowledged_writes_survive_sigkill_v2_with_compaction() {
    crash_rounds(Format::V2);
}

fn crash_rounds(format: Format) {
    let rounds: usize = std::env::var("GLINT_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6c69_6e74);
    let mut live: HashMap<BlobId, Vec<u8>> = HashMap::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut acked_total, mut recovered_orphans, mut deferred_finished) = (0usize, 0usize, 0usize);
    let mut packs_compacted = 0usize;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("GLINT_CRASH_CHILD_DIR", dir.path())
            .env("GLINT_CRASH_SEED", rng.gen::<u64>().to_string())
            .env(
                "GLINT_CRASH_FORMAT",
                if format == Format::V2 { "v2" } else { "v1" },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // The child's lines, collected by a thread that tells when the store is open.
        let out = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(out).split(b'\n') {
                let line = String::from_utf8(line.unwrap()).unwrap();
                if line == "READY" {
                    let _ = ready_tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        // One round in five times its kill from the start, so kills also land in the
        // recovery that opening the store does.
        if round % 5 != 4 {
            let _ = ready_rx.recv_timeout(Duration::from_secs(120));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(60..400)));
        assert!(
            child.try_wait().unwrap().is_none(),
            "round {round}: the child stopped before the kill"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut in_flight = InFlight::None;
        let mut child_spoke = false;
        for line in reader.join().unwrap() {
            let w: Vec<&str> = line.split_whitespace().collect();
            child_spoke |= w.first().is_some_and(|f| *f == "BEGIN");
            match w.as_slice() {
                ["BEGIN", "PUT", id, s, len] => {
                    in_flight = InFlight::Put(
                        id.parse().unwrap(),
                        generate(s.parse().unwrap(), len.parse().unwrap()),
                    )
                }
                ["BEGIN", "DEL", id] => in_flight = InFlight::Del(id.parse().unwrap()),
                ["BEGIN", "CLONE", src, a, b] => {
                    let d = &live[&src.parse::<BlobId>().unwrap()];
                    in_flight = InFlight::Derived(
                        d[a.parse::<usize>().unwrap()..b.parse::<usize>().unwrap()].to_vec(),
                    );
                }
                ["BEGIN", "CONCAT", x, y] => {
                    let (x, y) = (
                        &live[&x.parse::<BlobId>().unwrap()],
                        &live[&y.parse::<BlobId>().unwrap()],
                    );
                    in_flight = InFlight::Derived([x.as_slice(), y.as_slice()].concat());
                }
                ["ACK", kind, id] => {
                    let id: BlobId = id.parse().unwrap();
                    match std::mem::replace(&mut in_flight, InFlight::None) {
                        InFlight::Put(pid, data) => {
                            assert_eq!(pid, id);
                            live.insert(id, data);
                        }
                        InFlight::Del(did) => {
                            assert_eq!(did, id);
                            live.remove(&id);
                        }
                        InFlight::Derived(data) => {
                            live.insert(id, data);
                        }
                        InFlight::None => panic!("ACK {kind} without BEGIN"),
                    }
                    acked_total += 1;
                }
                ["COMPACTED", rewritten, removed] => {
                    packs_compacted += rewritten.parse::<usize>().unwrap_or(0)
                        + removed.parse::<usize>().unwrap_or(0);
                }
                _ => {} // a line cut by the kill, or test-harness chatter
            }
        }

        rt.block_on(async {
            let (store, report) =
                glint_storage::Store::open_with_report(config(dir.path(), format)).unwrap();
            assert!(
                report.unclean_shutdown || !child_spoke,
                "round {round}: a killed writer is an unclean shutdown"
            );
            recovered_orphans += report.orphan_chunks_removed;
            deferred_finished += report.deferred_deletes_finished;
            let visible = store.list_blobs().await.unwrap();
            let mut extra: Vec<BlobId> = visible
                .iter()
                .filter(|id| !live.contains_key(id))
                .copied()
                .collect();
            match in_flight {
                InFlight::Put(id, data) if extra == [id] => {
                    extra.clear();
                    live.insert(id, data);
                }
                InFlight::Derived(data) if extra.len() == 1 => {
                    let got = store.read_to_vec(extra[0], None).await.unwrap();
                    assert_eq!(
                        got, data,
                        "round {round}: in-flight derived blob has wrong content"
                    );
                    live.insert(extra.pop().unwrap(), data);
                }
                InFlight::Del(id) if !visible.contains(&id) => {
                    live.remove(&id);
                }
                _ => {}
            }
            assert!(
                extra.is_empty(),
                "round {round}: unacknowledged blobs visible: {extra:?}"
            );
            for (id, data) in &live {
                assert!(
                    visible.contains(id),
                    "round {round}: acknowledged blob {id} lost"
                );
                let got = store.read_to_vec(*id, None).await.unwrap();
                assert!(
                    got == *data,
                    "round {round}: blob {id} differs after recovery"
                );
            }
            let scrub = store
                .scrub(ScrubOptions {
                    verify_data: true,
                    repair: false,
                    grace: Duration::ZERO,
                })
                .await
                .unwrap();
            assert!(scrub.is_clean(), "round {round}: {scrub:?}");
        });
    }
    eprintln!(
        "crash test ({format:?}): {rounds} rounds, {acked_total} acknowledged operations, {} live blobs, \
         {recovered_orphans} orphan chunks removed by recovery, {deferred_finished} deletes \
         deferred for readers finished by recovery, {packs_compacted} packs compacted",
        live.len()
    );
    if format == Format::V2 {
        assert!(
            packs_compacted > 0,
            "compaction must have run between kills"
        );
    }
    assert!(
        acked_total > rounds,
        "the child must get work done between kills"
    );
}
