//! The embedded catalog: one RocksDB `TransactionDB`, a column family per [`Family`].
//! Counters are merge operands (an i64 for `chunks`, a varint array for `group_refs`), so
//! concurrent commits add without reading or locking.

use std::path::{Path, PathBuf};

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBAccess, DBRawIteratorWithThreadMode, ErrorKind,
    MergeOperands, Options, SingleThreaded, TransactionDB, TransactionDBOptions,
    TransactionOptions, WriteBatchWithTransaction, WriteOptions,
};

use super::{Family, Kv, KvRead, KvTxn, Op, Visit};
use crate::catalog::{decode_count, encode_count};
use crate::error::{CatalogError, Result, StoreError};

type Db = TransactionDB<SingleThreaded>;

/// Families earlier versions created and nothing uses (image members and tags live in the
/// image record): dropped when a store that has them opens.
const RETIRED: &[&str] = &["image_members", "image_tags", "settings"];

pub(crate) struct RocksKv {
    db: Db,
    dir: PathBuf,
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        let retry = matches!(
            e.kind(),
            ErrorKind::Busy | ErrorKind::TimedOut | ErrorKind::TryAgain
        );
        StoreError::Catalog(if retry {
            CatalogError::conflict(e.to_string())
        } else {
            CatalogError::other(e.to_string())
        })
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

/// The `group_refs` merge operator: element-wise sum of the stored array and every operand.
fn add_slot_counts(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    use crate::group::{decode_counts, encode_counts};
    let mut total = existing.map(decode_counts).unwrap_or_default();
    for op in operands {
        for (i, d) in decode_counts(op).into_iter().enumerate() {
            if i >= total.len() {
                total.resize(i + 1, 0);
            }
            total[i] = total[i].wrapping_add(d);
        }
    }
    Some(encode_counts(&total))
}

/// A counter family's merge operand for `deltas`.
fn encode_add(fam: Family, deltas: &[i64]) -> Vec<u8> {
    match fam {
        Family::Chunks => encode_count(deltas.iter().sum()).to_vec(),
        _ => crate::group::encode_counts(deltas),
    }
}

impl RocksKv {
    pub(crate) fn open(path: &Path) -> Result<RocksKv> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        // Each commit is a synced WAL write; recycling WAL files avoids growing new ones.
        opts.set_recycle_log_file_num(4);
        let mut cfs: Vec<ColumnFamilyDescriptor> = Family::all()
            .map(|f| ColumnFamilyDescriptor::new(f.name(), family_options(f)))
            .collect();
        let mut txn_opts = TransactionDBOptions::default();
        // Lock waits are short: every transaction is a handful of catalog reads and one write.
        txn_opts.set_txn_lock_timeout(5_000);
        std::fs::create_dir_all(path).map_err(|e| StoreError::io(path, e))?;
        // RocksDB opens a database only with all its families named: retired ones are
        // opened too, then dropped.
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
        Ok(RocksKv {
            db,
            dir: path.to_path_buf(),
        })
    }

    fn cf(&self, fam: Family) -> &ColumnFamily {
        self.db
            .cf_handle(fam.name())
            .expect("column family created at open")
    }
}

fn family_options(fam: Family) -> Options {
    let mut o = Options::default();
    match fam {
        Family::Chunks => o.set_merge_operator_associative("glint_refcount_add", add_refcounts),
        Family::GroupRefs => {
            o.set_merge_operator_associative("glint_group_refs_add", add_slot_counts)
        }
        // The dedup index is asked about every new chunk, and most answers are "no": a
        // Bloom filter answers those from memory.
        Family::ChunkIndex => {
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_bloom_filter(10.0, false);
            table.set_cache_index_and_filter_blocks(false);
            o.set_block_based_table_factory(&table);
        }
        _ => {}
    }
    o
}

fn walk_iter<D: DBAccess>(
    mut it: DBRawIteratorWithThreadMode<'_, D>,
    from: &[u8],
    visit: &mut Visit<'_>,
) -> Result<()> {
    it.seek(from);
    while it.valid() {
        if !visit(it.key().expect("valid"), it.value().expect("valid"))? {
            return Ok(());
        }
        it.next();
    }
    Ok(it.status()?)
}

fn walk_back_iter<D: DBAccess>(
    mut it: DBRawIteratorWithThreadMode<'_, D>,
    below: Option<&[u8]>,
    visit: &mut Visit<'_>,
) -> Result<()> {
    match below {
        None => it.seek_to_last(),
        Some(b) => {
            it.seek_for_prev(b);
            if it.valid() && it.key() == Some(b) {
                it.prev();
            }
        }
    }
    while it.valid() {
        if !visit(it.key().expect("valid"), it.value().expect("valid"))? {
            return Ok(());
        }
        it.prev();
    }
    Ok(it.status()?)
}

fn floor_iter<D: DBAccess>(
    mut it: DBRawIteratorWithThreadMode<'_, D>,
    key: &[u8],
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    it.seek_for_prev(key);
    if it.valid() {
        let (k, v) = (it.key().expect("valid"), it.value().expect("valid"));
        return Ok(Some((k.to_vec(), v.to_vec())));
    }
    it.status()?;
    Ok(None)
}

impl KvRead for RocksKv {
    fn get(&self, fam: Family, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(fam), key)?)
    }

    fn walk(&self, fam: Family, from: &[u8], visit: &mut Visit<'_>) -> Result<()> {
        walk_iter(self.db.raw_iterator_cf(self.cf(fam)), from, visit)
    }

    fn floor(&self, fam: Family, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        floor_iter(self.db.raw_iterator_cf(self.cf(fam)), key)
    }

    fn walk_back(&self, fam: Family, below: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<()> {
        walk_back_iter(self.db.raw_iterator_cf(self.cf(fam)), below, visit)
    }
}

impl Kv for RocksKv {
    fn begin(&self) -> Result<Box<dyn KvTxn + '_>> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut topts = TransactionOptions::default();
        topts.set_deadlock_detect(true);
        Ok(Box::new(RocksTxn {
            kv: self,
            txn: self.db.transaction_opt(&wo, &topts),
        }))
    }

    fn snapshot(&self) -> Result<Box<dyn KvRead + '_>> {
        Ok(Box::new(RocksSnapshot {
            kv: self,
            snap: self.db.snapshot(),
        }))
    }

    fn write(&self, ops: &[Op], sync: bool) -> Result<()> {
        let mut batch = WriteBatchWithTransaction::<true>::default();
        for op in ops {
            match op {
                Op::Put(f, k, v) => batch.put_cf(self.cf(*f), k, v),
                Op::Delete(f, k) => batch.delete_cf(self.cf(*f), k),
                Op::Add(f, k, d) => batch.merge_cf(self.cf(*f), k, encode_add(*f, d)),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        Ok(self.db.write_opt(batch, &wo)?)
    }

    fn stored_bytes(&self, flush: bool) -> Result<u64> {
        if flush {
            for f in Family::all() {
                self.db.flush_cf(self.cf(f))?;
            }
        }
        // The table files (not the write-ahead log, which is recycled and bounded).
        let mut total = 0;
        let dir = &self.dir;
        for e in std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
            let e = e.map_err(|e| StoreError::io(dir, e))?;
            if e.file_name().to_string_lossy().ends_with(".sst") {
                total += e.metadata().map_or(0, |m| m.len());
            }
        }
        Ok(total)
    }
}

struct RocksSnapshot<'a> {
    kv: &'a RocksKv,
    snap: rocksdb::SnapshotWithThreadMode<'a, Db>,
}

impl KvRead for RocksSnapshot<'_> {
    fn get(&self, fam: Family, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.snap.get_cf(self.kv.cf(fam), key)?)
    }

    fn walk(&self, fam: Family, from: &[u8], visit: &mut Visit<'_>) -> Result<()> {
        walk_iter(self.snap.raw_iterator_cf(self.kv.cf(fam)), from, visit)
    }

    fn floor(&self, fam: Family, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        floor_iter(self.snap.raw_iterator_cf(self.kv.cf(fam)), key)
    }

    fn walk_back(&self, fam: Family, below: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<()> {
        walk_back_iter(self.snap.raw_iterator_cf(self.kv.cf(fam)), below, visit)
    }
}

struct RocksTxn<'a> {
    kv: &'a RocksKv,
    txn: rocksdb::Transaction<'a, Db>,
}

impl KvRead for RocksTxn<'_> {
    fn get(&self, fam: Family, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.txn.get_cf(self.kv.cf(fam), key)?)
    }

    fn walk(&self, fam: Family, from: &[u8], visit: &mut Visit<'_>) -> Result<()> {
        walk_iter(self.txn.raw_iterator_cf(self.kv.cf(fam)), from, visit)
    }

    fn floor(&self, fam: Family, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        floor_iter(self.txn.raw_iterator_cf(self.kv.cf(fam)), key)
    }

    fn walk_back(&self, fam: Family, below: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<()> {
        walk_back_iter(self.txn.raw_iterator_cf(self.kv.cf(fam)), below, visit)
    }
}

impl KvTxn for RocksTxn<'_> {
    fn get_locked(&self, fam: Family, key: &[u8], exclusive: bool) -> Result<Option<Vec<u8>>> {
        Ok(self
            .txn
            .get_for_update_cf(self.kv.cf(fam), key, exclusive)?)
    }

    fn put(&self, fam: Family, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.txn.put_cf(self.kv.cf(fam), key, value)?)
    }

    fn delete(&self, fam: Family, key: &[u8]) -> Result<()> {
        Ok(self.txn.delete_cf(self.kv.cf(fam), key)?)
    }

    fn add(&self, fam: Family, key: &[u8], deltas: &[i64]) -> Result<()> {
        Ok(self
            .txn
            .merge_cf(self.kv.cf(fam), key, encode_add(fam, deltas))?)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        Ok(self.txn.commit()?)
    }
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
        drop(RocksKv::open(dir.path()).unwrap());
        let now = Db::list_cf(&opts, dir.path()).unwrap();
        assert!(
            RETIRED.iter().all(|r| !now.iter().any(|n| n == r)),
            "{now:?}"
        );
        assert!(now.iter().any(|n| n == "images"));
        drop(RocksKv::open(dir.path()).unwrap());
    }

    #[test]
    fn counters_add_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let kv = RocksKv::open(dir.path()).unwrap();
        let t = kv.begin().unwrap();
        t.add(Family::Chunks, b"c", &[2]).unwrap();
        t.add(Family::GroupRefs, b"g", &[1, 0, 3]).unwrap();
        t.commit().unwrap();
        kv.write(
            &[
                Op::Add(Family::Chunks, b"c".to_vec(), vec![-1]),
                Op::Add(Family::GroupRefs, b"g".to_vec(), vec![1, 1]),
            ],
            true,
        )
        .unwrap();
        assert_eq!(
            kv.get(Family::Chunks, b"c")
                .unwrap()
                .map(|v| decode_count(&v)),
            Some(1)
        );
        let g = kv.get(Family::GroupRefs, b"g").unwrap().unwrap();
        assert_eq!(crate::group::decode_counts(&g), vec![2, 1, 3]);
    }
}
