//! Property test: random sequences of put / clone / concat / range-read / delete / gc agree
//! with an in-memory model, and the store scrubs clean after every sequence; in format v1
//! and in format v2 (small packs, so gc's compaction rewrites and removes them).

mod common;

use std::time::Duration;

use common::pattern;
use glint_storage::{BlobId, DigestSet, Format, ScrubOptions, Store, WriteOptions};
use proptest::prelude::*;

const CHUNK: usize = 4096;

#[derive(Clone, Debug)]
enum Op {
    /// Content built from blocks: Some(seed) is pattern data (few seeds, so blocks repeat
    /// and dedup happens), None a zero block; plus an unaligned tail.
    Put(Vec<Option<u8>>, u16),
    Clone(usize, u16, u16),
    Concat(usize, usize),
    Read(usize, u16, u16),
    Delete(usize),
    /// `gc`: v1 reclamation, v2 compaction (at this live-fraction threshold, in tenths).
    Gc(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (prop::collection::vec(prop::option::weighted(0.7, 0u8..4), 0..6), 0u16..5000)
            .prop_map(|(b, t)| Op::Put(b, t)),
        2 => (any::<usize>(), any::<u16>(), any::<u16>()).prop_map(|(i, a, b)| Op::Clone(i, a, b)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Op::Concat(i, j)),
        3 => (any::<usize>(), any::<u16>(), any::<u16>()).prop_map(|(i, a, b)| Op::Read(i, a, b)),
        2 => any::<usize>().prop_map(Op::Delete),
        1 => (1u8..=10).prop_map(Op::Gc),
    ]
}

fn content(blocks: &[Option<u8>], tail: u16) -> Vec<u8> {
    let mut v = Vec::new();
    for b in blocks {
        match b {
            Some(seed) => v.extend(pattern(*seed as u64 + 100, CHUNK)),
            None => v.extend(vec![0u8; CHUNK]),
        }
    }
    v.extend(pattern(tail as u64, tail as usize));
    v
}

/// Maps two fractions onto an ordered range within `len`.
fn range(len: usize, a: u16, b: u16) -> std::ops::Range<usize> {
    let (x, y) = (a as usize * len / 65535, b as usize * len / 65535);
    x.min(y)..x.max(y)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_model(ops in prop::collection::vec(op(), 1..25)) {
        run(ops, Format::V1);
    }

    #[test]
    fn v2_store_agrees_with_model(ops in prop::collection::vec(op(), 1..25)) {
        run(ops, Format::V2);
    }
}

fn run(ops: Vec<Op>, format: Format) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = common::config(dir.path(), CHUNK);
        common::set_format(&mut cfg, format);
        cfg.pack_target = 16 << 10;
        let store = Store::open(cfg).unwrap();
        let mut live: Vec<(BlobId, Vec<u8>)> = Vec::new();
        for op in ops {
            match op {
                Op::Put(blocks, tail) => {
                    let data = content(&blocks, tail);
                    let staged = store
                        .write_bytes(
                            data.clone(),
                            WriteOptions {
                                digests: DigestSet::MD5,
                                max_size: None,
                            },
                        )
                        .await
                        .unwrap();
                    live.push((store.commit(staged).await.unwrap(), data));
                }
                Op::Clone(i, a, b) if !live.is_empty() => {
                    let (src, data) = live[i % live.len()].clone();
                    let r = range(data.len(), a, b);
                    let id = store
                        .clone_blob(src, Some(r.start as u64..r.end as u64))
                        .await
                        .unwrap();
                    live.push((id, data[r].to_vec()));
                }
                Op::Concat(i, j) if !live.is_empty() => {
                    let (a, da) = live[i % live.len()].clone();
                    let (b, db) = live[j % live.len()].clone();
                    let id = store
                        .transact(move |tx| tx.concat(&[(a, None), (b, None)]))
                        .await
                        .unwrap();
                    live.push((id, [da, db].concat()));
                }
                Op::Read(i, a, b) if !live.is_empty() => {
                    let (id, data) = &live[i % live.len()];
                    let r = range(data.len(), a, b);
                    let got = store
                        .read_to_vec(*id, Some(r.start as u64..r.end as u64))
                        .await
                        .unwrap();
                    assert_eq!(&got[..], &data[r]);
                }
                Op::Delete(i) if !live.is_empty() => {
                    let (id, _) = live.remove(i % live.len());
                    store.delete(id).await.unwrap();
                }
                Op::Gc(tenths) => {
                    store.compact(tenths as f64 / 10.0).await.unwrap();
                    store.gc(Duration::ZERO).await.unwrap();
                }
                _ => {}
            }
        }
        for (id, data) in &live {
            assert_eq!(&store.read_to_vec(*id, None).await.unwrap(), data);
        }
        let mut ids = store.list_blobs().await.unwrap();
        ids.sort();
        let mut want: Vec<BlobId> = live.iter().map(|(id, _)| *id).collect();
        want.sort();
        assert_eq!(ids, want);
        let report = store
            .scrub(ScrubOptions {
                verify_data: true,
                repair: false,
                grace: Duration::ZERO,
            })
            .await
            .unwrap();
        assert!(report.is_clean(), "{report:?}");
        for (id, _) in live {
            store.delete(id).await.unwrap();
        }
        store.gc(Duration::ZERO).await.unwrap();
        let u = store.usage(false).await.unwrap();
        assert_eq!((u.chunk_files, u.packs, u.blobs), (0, 0, 0), "{u:?}");
    });
}
