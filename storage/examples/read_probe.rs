//! Times warm whole reads of one 256 MiB blob, v1 against v2: a profiling aid
//! (`perf record` it with an argument of `v1` or `v2` to look at one format alone).
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use glint_storage::{DigestSet, Format, Store, StoreConfig, WriteOptions};
use rand::{RngCore, SeedableRng};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut v = vec![0u8; 256 << 20];
    rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut v);
    let data = Bytes::from(v);
    let root = std::env::args().nth(1).expect("dir");
    let only = std::env::args().nth(2);
    for (name, format) in [("v1", Format::V1), ("v2", Format::V2)] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let dir = std::path::Path::new(&root).join(name);
        let mut cfg = StoreConfig::single(&dir);
        std::fs::create_dir_all(&cfg.data_dirs[0]).unwrap();
        cfg.format = format;
        let store = Store::open(cfg).unwrap();
        let staged = store
            .write_bytes(
                data.clone(),
                WriteOptions {
                    digests: DigestSet::NONE,
                    max_size: None,
                },
            )
            .await
            .unwrap();
        let id = store.commit(staged).await.unwrap();
        let mut best = f64::MAX;
        for _ in 0..30 {
            let t = Instant::now();
            let (_, mut r) = store.read(id, None).await.unwrap();
            let mut n = 0;
            while let Some(b) = r.next().await {
                n += b.unwrap().len();
            }
            assert_eq!(n, data.len());
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name}: best warm read {:.2} GiB/s", 0.25 / best);
    }
}
