use super::*;

fn example() -> Status {
    Status {
        usage: Usage {
            blobs: 1204,
            logical_bytes: 40 << 30,
            chunk_files: 0,
            chunk_file_bytes: 0,
            packs: 210,
            pack_bytes: 10 << 30,
            zero_bytes: 8 << 30,
            catalog_bytes: 48 << 20,
        },
        buckets: 12,
        objects: 1130,
        images: vec![("queued", 4), ("active", 70), ("killed", 0)],
        dirs: vec![("/var/lib/glint/data".into(), Some((2 << 40, 1 << 40)))],
    }
}

#[test]
fn status_table() {
    let mut cfg = Config::defaults();
    cfg.catalog_dir = "/var/lib/glint/catalog".into();
    let text = status_text(&cfg, &example());
    let expected = "\
Catalog: RocksDB at /var/lib/glint/catalog

DATA DIRECTORY       FILESYSTEM      FREE  FREE %
/var/lib/glint/data    2.00 TiB  1.00 TiB     50%

CONTENTS    COUNT
blobs       1,204
S3 buckets     12
S3 objects  1,130
images         74
  queued        4
  active       70

SPACE                              BYTES
logical (what clients stored)  40.00 GiB
  zero runs (not stored)        8.00 GiB
stored (chunk data)            10.00 GiB  210 packs, 0 chunk files
catalog                        48.00 MiB

logical / stored: 4.00× (zero elision 1.25×, dedup and compression 3.20×)
";
    assert_eq!(text, expected, "\n{text}");
    // The README's example is this output.
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&format!("status\n{expected}```")),
        "README.md's `glint status` example differs from:\n{expected}"
    );
    let v = status_json(&cfg, &example());
    assert_eq!(v["images"]["active"], 70);
    assert_eq!(v["ratio"], 4.0);
    assert_eq!(v["stored_bytes"], 10u64 << 30);
}

#[test]
fn scrub_exit_codes_follow_fsck() {
    let clean = ScrubReport::default();
    assert_eq!(scrub_exit_code(&clean, false), 0);
    let orphans = ScrubReport {
        orphans: vec![glint_storage::ChunkId([0; 32])],
        ..ScrubReport::default()
    };
    assert_eq!(scrub_exit_code(&orphans, false), 4);
    let repaired = ScrubReport {
        repaired: 1,
        ..ScrubReport::default()
    };
    assert_eq!(scrub_exit_code(&repaired, true), 1);
    let damaged = ScrubReport {
        missing_records: vec![7],
        ..ScrubReport::default()
    };
    assert_eq!(scrub_exit_code(&damaged, true), 4);
}
