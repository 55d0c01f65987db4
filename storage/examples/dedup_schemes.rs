//! Measures what different chunking schemes and chunk codecs would store for a sequence of
//! image files uploaded one after the other (issue 10: the numbers that pick the engine's
//! chunking and compression). Zero chunks cost nothing in every scheme, as in the engine.
//!
//! ```text
//! cargo run --release -p glint-storage --example dedup_schemes -- A.raw B.raw
//! cargo run --release -p glint-storage --example dedup_schemes -- --codecs A.raw
//! ```
//!
//! For each scheme it prints the bytes stored after the first file and after all of them,
//! and their ratio. `--codecs` compresses the unique chunks of the default scheme with each
//! candidate codec and reports the stored fraction (a chunk stays raw when compressing does
//! not save 1/8) and single-core compress / decompress rates.

use std::collections::HashSet;
use std::time::Instant;

use glint_storage::cdc::{self, CdcParams};

enum Scheme {
    Fixed(usize),
    Aligned(CdcParams),
}

impl Scheme {
    fn name(&self) -> String {
        match self {
            Scheme::Fixed(n) => format!("fixed {} KiB", n >> 10),
            Scheme::Aligned(p) => format!(
                "aligned CDC avg {} KiB ({}-{} KiB)",
                p.avg >> 10,
                p.min >> 10,
                p.max >> 10
            ),
        }
    }

    fn chunks<'a>(&self, data: &'a [u8]) -> Vec<&'a [u8]> {
        match self {
            Scheme::Fixed(n) => data.chunks(*n).collect(),
            Scheme::Aligned(p) => cdc::chunks(data, *p)
                .into_iter()
                .map(|(o, l)| &data[o as usize..o as usize + l])
                .collect(),
        }
    }
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

fn aligned(avg: usize) -> Scheme {
    Scheme::Aligned(CdcParams {
        avg,
        ..CdcParams::DEFAULT
    })
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let codecs = args.iter().any(|a| a == "--codecs");
    args.retain(|a| a != "--codecs");
    if args.is_empty() {
        eprintln!("usage: dedup_schemes [--codecs] FILE...");
        std::process::exit(2);
    }
    let files: Vec<Vec<u8>> = args
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .collect();
    let nonzero: Vec<u64> = files
        .iter()
        .map(|f| {
            f.chunks(4096)
                .filter(|b| !is_zero(b))
                .map(|b| b.len() as u64)
                .sum()
        })
        .collect();
    for (p, nz) in args.iter().zip(&nonzero) {
        println!("file\t{p}\tnonzero_4k_blocks_bytes\t{nz}");
    }
    let schemes = [
        Scheme::Fixed(1 << 20),
        Scheme::Fixed(4096),
        aligned(16 << 10),
        aligned(32 << 10),
        aligned(64 << 10),
    ];
    for s in &schemes {
        let mut seen: HashSet<[u8; 32]> = HashSet::new();
        let mut stored = Vec::new();
        let mut total = 0u64;
        let mut count = 0u64;
        for f in &files {
            for c in s.chunks(f) {
                if is_zero(c) {
                    continue;
                }
                if seen.insert(*blake3::hash(c).as_bytes()) {
                    total += c.len() as u64;
                    count += 1;
                }
            }
            stored.push(total);
        }
        let first = stored[0];
        println!(
            "scheme\t{}\tfirst\t{}\tall\t{}\tratio\t{:.3}\tunique_chunks\t{}",
            s.name(),
            first,
            total,
            total as f64 / first as f64,
            count
        );
    }
    if codecs {
        compare_codecs(&files[0]);
    }
}

fn compare_codecs(data: &[u8]) {
    let mut seen = HashSet::new();
    let chunks: Vec<&[u8]> = cdc::chunks(data, CdcParams::DEFAULT)
        .into_iter()
        .map(|(o, l)| &data[o as usize..o as usize + l])
        .filter(|c| !is_zero(c) && seen.insert(*blake3::hash(c).as_bytes()))
        .collect();
    let raw: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    // Contexts are reused across chunks, as the engine would.
    type Codec = (
        &'static str,
        Box<dyn FnMut(&[u8]) -> Vec<u8>>,
        Box<dyn FnMut(&[u8], usize) -> Vec<u8>>,
    );
    let zstd = |level: i32| -> Codec {
        let mut c = zstd::bulk::Compressor::new(level).expect("zstd");
        let mut d = zstd::bulk::Decompressor::new().expect("zstd");
        (
            ["zstd-1", "zstd-3", "zstd-6"][(level.max(1) as usize / 3).min(2)],
            Box::new(move |x| c.compress(x).expect("zstd")),
            Box::new(move |x, n| d.decompress(x, n).expect("zstd")),
        )
    };
    let codecs: Vec<Codec> = vec![
        (
            "lz4",
            Box::new(lz4_flex::block::compress),
            Box::new(|c, n| lz4_flex::block::decompress(c, n).expect("lz4")),
        ),
        zstd(1),
        zstd(3),
        zstd(6),
    ];
    for (name, mut compress, mut decompress) in codecs {
        let t = Instant::now();
        let packed: Vec<(Vec<u8>, usize)> = chunks.iter().map(|c| (compress(c), c.len())).collect();
        let ct = t.elapsed().as_secs_f64();
        let stored: u64 = packed
            .iter()
            .map(|(p, n)| if p.len() * 8 < n * 7 { p.len() } else { *n } as u64)
            .sum();
        let t = Instant::now();
        let mut check = 0usize;
        for (p, n) in &packed {
            check += decompress(p, *n).len();
        }
        let dt = t.elapsed().as_secs_f64();
        assert_eq!(check as u64, raw);
        let mib = raw as f64 / (1 << 20) as f64;
        println!(
            "codec\t{name}\traw\t{raw}\tstored\t{stored}\tfraction\t{:.3}\tcompress_mib_s\t{:.0}\tdecompress_mib_s\t{:.0}",
            stored as f64 / raw as f64,
            mib / ct,
            mib / dt
        );
    }
}
