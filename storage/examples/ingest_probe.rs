//! Times the phases of one ingest (staging vs commit), v1 against v2: a profiling aid.
use std::time::Instant;

use bytes::Bytes;
use glint_storage::{DigestSet, Format, Store, StoreConfig, WriteOptions};
use rand::{RngCore, SeedableRng};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let size = 256 << 20;
    let mut v = vec![0u8; size];
    rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut v);
    let data = Bytes::from(v);
    let root = std::env::args().nth(1).expect("dir");
    for (i, (format, digests)) in [
        (Format::V1, DigestSet::NONE),
        (Format::V2, DigestSet::NONE),
        (Format::V1, DigestSet::MD5 | DigestSet::SHA512),
        (Format::V2, DigestSet::MD5 | DigestSet::SHA512),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = std::path::Path::new(&root).join(i.to_string());
        let mut cfg = StoreConfig::single(&dir);
        std::fs::create_dir_all(&cfg.data_dirs[0]).unwrap();
        cfg.format = format;
        let store = Store::open(cfg).unwrap();
        let d = data.clone();
        let pieces = futures::stream::iter(
            (0..d.len())
                .step_by(65536)
                .map(move |i| Ok::<_, std::io::Error>(d.slice(i..i + 65536))),
        );
        let t = Instant::now();
        let staged = store
            .write(
                pieces,
                WriteOptions {
                    digests,
                    max_size: None,
                },
            )
            .await
            .unwrap();
        let staged_at = t.elapsed();
        store.commit(staged).await.unwrap();
        let total = t.elapsed();
        println!(
            "{format:?} {digests:?}: staged {:.0} ms, commit {:.0} ms, {:.0} MiB/s",
            staged_at.as_secs_f64() * 1e3,
            (total - staged_at).as_secs_f64() * 1e3,
            256.0 / total.as_secs_f64()
        );
    }
}
