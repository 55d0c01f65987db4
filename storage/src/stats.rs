//! What the engine has done since the process started, as counters a metrics exporter reads
//! (the server's `/metrics`): relaxed atomic adds on paths that already do a system call or
//! a hash per event, so counting costs nothing measurable. Nothing here is persisted: these
//! are rates for monitoring, not the store's accounting (`Store::usage` is that).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the catalog transaction latency buckets: RocksDB commits take
/// tens of microseconds, PostgreSQL round trips a millisecond or more.
pub const CATALOG_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// The engine's counters. Every field only grows.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// New chunks written (format v2 records appended), their bytes before and after the
    /// codec.
    pub chunks_written: AtomicU64,
    pub chunk_bytes_written: AtomicU64,
    pub chunk_bytes_stored: AtomicU64,
    /// Chunks of a write found already stored (the index or earlier in the same write),
    /// and their bytes: what deduplication saved.
    pub dedup_hits: AtomicU64,
    pub dedup_bytes: AtomicU64,
    /// All-zero chunks recorded as holes instead of being stored, and their bytes.
    pub zero_chunks: AtomicU64,
    pub zero_bytes: AtomicU64,
    /// Chunks read from packs and their decoded bytes (verified by CRC32C).
    pub chunks_read: AtomicU64,
    pub chunk_bytes_read: AtomicU64,
    /// Reads that found a record failing its CRC32C, its codec or its hash.
    pub corrupt_reads: AtomicU64,
    /// Compaction passes (background or `glint gc`), packs removed or rewritten, chunks
    /// dropped and pack bytes reclaimed by them.
    pub compactions: AtomicU64,
    pub packs_removed: AtomicU64,
    pub packs_rewritten: AtomicU64,
    pub chunks_reclaimed: AtomicU64,
    pub bytes_reclaimed: AtomicU64,
    /// Catalog transactions committed, and their latency (begin to commit, conflicts
    /// retried inside).
    pub catalog_commits: AtomicU64,
    pub catalog: LatencyHistogram,
}

/// A fixed-bucket latency histogram ([`CATALOG_BUCKETS`]) of atomics.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Per bucket (not cumulative); the last slot counts what exceeds every bound.
    counts: [AtomicU64; CATALOG_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A reading of a [`LatencyHistogram`] (per-bucket counts: exporters accumulate them).
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramReading {
    pub sum_seconds: f64,
    pub count: u64,
    /// (upper bound, observations over the previous bound and at or under this one); the
    /// last bound is +Inf.
    pub buckets: Vec<(f64, u64)>,
}

impl LatencyHistogram {
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = CATALOG_BUCKETS.partition_point(|&b| b < secs);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn read(&self) -> HistogramReading {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Relaxed);
            total += n;
            buckets.push((CATALOG_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        HistogramReading {
            sum_seconds: self.sum_nanos.load(Relaxed) as f64 / 1e9,
            count: total,
            buckets,
        }
    }
}

/// Adds to a counter (relaxed: readers want totals, not ordering).
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_the_last_bucket_takes_the_rest() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(100)); // exactly the first bound
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_secs(10)); // over every bound
        let r = h.read();
        assert_eq!(r.count, 3);
        assert_eq!(r.buckets[0], (0.0001, 1));
        assert_eq!(r.buckets[1], (0.00025, 0));
        assert_eq!(r.buckets[2], (0.0005, 1));
        assert_eq!(r.buckets.last().copied(), Some((f64::INFINITY, 1)));
        assert!((r.sum_seconds - 10.0004).abs() < 1e-9);
    }
}
