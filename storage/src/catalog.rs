//! The RocksDB catalog: one `TransactionDB` with a column family per kind of record.
//!
//! Engine families: `blobs` (blob id → size, extent count), `manifests` (blob id ‖ start →
//! segment of extents), `chunks` (chunk id → reference count, an i64 kept by a merge operator
//! so concurrent commits add without reading), `meta` (data directory ids, clean-shutdown
//! state). Front-end families are opaque to the engine: see [`Catalog`].

use std::path::Path;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, MergeOperands, Options, SingleThreaded, TransactionDB,
    TransactionDBOptions,
};

use crate::error::Result;

pub(crate) type Db = TransactionDB<SingleThreaded>;

pub(crate) const CF_BLOBS: &str = "blobs";
pub(crate) const CF_MANIFESTS: &str = "manifests";
pub(crate) const CF_CHUNKS: &str = "chunks";
pub(crate) const CF_META: &str = "meta";
/// Blobs deleted while being read: the last reader (or the next open) finishes the delete.
pub(crate) const CF_DOOMED: &str = "doomed";
/// Format v2: where each group of chunks lives in the packs (group.rs).
pub(crate) const CF_GROUPS: &str = "groups";
/// Format v2: per-slot reference counts of each group, kept by an add merge operator.
pub(crate) const CF_GROUP_REFS: &str = "group_refs";
/// Format v2 dedup index: the first 64 bits of a chunk's BLAKE3 name → its number. A hit
/// is confirmed against the full name in the pack record's header before it is used.
pub(crate) const CF_CHUNK_INDEX: &str = "chunk_index";

/// Column families the front ends keep their records in. Each write to them goes through a
/// [`crate::Tx`], in the same atomic batch as the blob changes it goes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Catalog {
    Buckets,
    Objects,
    Uploads,
    Parts,
    Credentials,
    Images,
    Tasks,
    /// Metadata definitions (namespaces and what they hold, resource types).
    Metadefs,
}

/// Families earlier versions created and nothing uses (image members and tags live in the
/// image record): dropped when a store that has them opens.
const RETIRED: &[&str] = &["image_members", "image_tags", "settings"];

impl Catalog {
    pub const ALL: [Catalog; 8] = [
        Catalog::Buckets,
        Catalog::Objects,
        Catalog::Uploads,
        Catalog::Parts,
        Catalog::Credentials,
        Catalog::Images,
        Catalog::Tasks,
        Catalog::Metadefs,
    ];

    pub(crate) fn cf_name(self) -> &'static str {
        match self {
            Catalog::Buckets => "s3_buckets",
            Catalog::Objects => "s3_objects",
            Catalog::Uploads => "s3_uploads",
            Catalog::Parts => "s3_parts",
            Catalog::Credentials => "credentials",
            Catalog::Images => "images",
            Catalog::Tasks => "tasks",
            Catalog::Metadefs => "metadefs",
        }
    }
}

/// Sums i64 deltas; the stored value is the current reference count.
fn add_refcounts(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    let mut total = existing.map(decode_count).unwrap_or(0);
    for op in operands {
        total = total.wrapping_add(decode_count(op));
    }
    Some(total.to_le_bytes().to_vec())
}

pub(crate) fn decode_count(v: &[u8]) -> i64 {
    v.try_into().map(i64::from_le_bytes).unwrap_or(0)
}

pub(crate) fn encode_count(n: i64) -> [u8; 8] {
    n.to_le_bytes()
}

pub(crate) fn open(path: &Path) -> Result<Db> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    // Each commit is a synced WAL write; recycling WAL files avoids growing new ones.
    opts.set_recycle_log_file_num(4);
    let mut chunk_opts = Options::default();
    chunk_opts.set_merge_operator_associative("glint_refcount_add", add_refcounts);
    let mut group_ref_opts = Options::default();
    group_ref_opts.set_merge_operator_associative("glint_group_refs_add", crate::group::add_counts);
    // The dedup index is asked about every new chunk, and most answers are "no": a Bloom
    // filter answers those from memory.
    let mut index_opts = Options::default();
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(false);
    index_opts.set_block_based_table_factory(&table);
    let mut cfs = vec![
        ColumnFamilyDescriptor::new(CF_BLOBS, Options::default()),
        ColumnFamilyDescriptor::new(CF_MANIFESTS, Options::default()),
        ColumnFamilyDescriptor::new(CF_CHUNKS, chunk_opts),
        ColumnFamilyDescriptor::new(CF_META, Options::default()),
        ColumnFamilyDescriptor::new(CF_DOOMED, Options::default()),
        ColumnFamilyDescriptor::new(CF_GROUPS, Options::default()),
        ColumnFamilyDescriptor::new(CF_GROUP_REFS, group_ref_opts),
        ColumnFamilyDescriptor::new(CF_CHUNK_INDEX, index_opts),
    ];
    cfs.extend(
        Catalog::ALL
            .iter()
            .map(|c| ColumnFamilyDescriptor::new(c.cf_name(), Options::default())),
    );
    let mut txn_opts = TransactionDBOptions::default();
    // Lock waits are short: every transaction is a handful of catalog reads and one write.
    txn_opts.set_txn_lock_timeout(5_000);
    std::fs::create_dir_all(path).map_err(|e| crate::StoreError::io(path, e))?;
    // RocksDB opens a database only with all its families named: retired ones are opened
    // too, then dropped.
    let existing = Db::list_cf(&opts, path).unwrap_or_default();
    let retired: Vec<&str> = RETIRED
        .iter()
        .copied()
        .filter(|r| existing.iter().any(|e| e == r))
        .collect();
    cfs.extend(
        retired
            .iter()
            .map(|r| ColumnFamilyDescriptor::new(*r, Options::default())),
    );
    let mut db = Db::open_cf_descriptors(&opts, &txn_opts, path, cfs)?;
    for r in retired {
        db.drop_cf(r)?;
    }
    Ok(db)
}

/// Every family the store opens (for accounting).
pub(crate) fn families() -> Vec<&'static str> {
    let mut v = vec![
        CF_BLOBS,
        CF_MANIFESTS,
        CF_CHUNKS,
        CF_META,
        CF_DOOMED,
        CF_GROUPS,
        CF_GROUP_REFS,
        CF_CHUNK_INDEX,
    ];
    v.extend(Catalog::ALL.iter().map(|c| c.cf_name()));
    v
}

pub(crate) fn cf<'a>(db: &'a Db, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name).expect("column family created at open")
}

/// Up to `limit` entries whose keys start with `prefix`, from the first key strictly after
/// `after` (or from the prefix's start); shared by plain and transactional scans.
pub(crate) fn scan<D: rocksdb::DBAccess>(
    mut it: rocksdb::DBRawIteratorWithThreadMode<'_, D>,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    match after {
        Some(a) if a >= prefix => it.seek(a),
        _ => it.seek(prefix),
    }
    let mut out = Vec::new();
    while it.valid() && out.len() < limit {
        let (k, v) = (it.key().expect("valid"), it.value().expect("valid"));
        if !k.starts_with(prefix) {
            break;
        }
        if after != Some(k) {
            out.push((k.to_vec(), v.to_vec()));
        }
        it.next();
    }
    it.status()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_families_are_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // A catalog as an older version left it.
        let old: Vec<&str> = RETIRED.iter().copied().chain(["images"]).collect();
        drop(Db::open_cf(&opts, &TransactionDBOptions::default(), dir.path(), &old).unwrap());
        drop(open(dir.path()).unwrap());
        let now = Db::list_cf(&opts, dir.path()).unwrap();
        assert!(
            RETIRED.iter().all(|r| !now.iter().any(|n| n == r)),
            "{now:?}"
        );
        assert!(now.iter().any(|n| n == "images"));
        drop(open(dir.path()).unwrap());
    }
}
