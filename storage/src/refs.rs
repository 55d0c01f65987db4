//! Reference-count deltas of a change, gathered per chunk (format v1) and per group slot
//! (format v2) so each catalog key gets one merge per transaction however many extents
//! touch it.

use std::collections::{BTreeMap, HashMap};

use crate::error::Result;
use crate::group::{group_key, ChunkNo, GROUP_SLOTS};
use crate::ids::ChunkId;
use crate::kv::{Family, KvTxn};
use crate::manifest::Extent;

#[derive(Default)]
pub(crate) struct Refs {
    chunks: HashMap<ChunkId, i64>,
    groups: BTreeMap<u64, [i64; GROUP_SLOTS]>,
}

impl Refs {
    /// Counts `sign` (+1 for a new reference, -1 for a dropped one) on every chunk `e` holds.
    pub fn add(&mut self, e: &Extent, sign: i64) {
        match e {
            Extent::Chunk { id, .. } => *self.chunks.entry(*id).or_default() += sign,
            Extent::Run { first, count, .. } => {
                for n in first.0..first.0 + *count as u64 {
                    let no = ChunkNo(n);
                    self.groups.entry(no.group()).or_insert([0; GROUP_SLOTS])[no.slot()] += sign;
                }
            }
            Extent::Zero { .. } | Extent::Inline { .. } => {}
        }
    }

    /// The per-slot deltas gathered for each v2 group (scrub: the counts manifests imply).
    pub fn groups(&self) -> &BTreeMap<u64, [i64; GROUP_SLOTS]> {
        &self.groups
    }

    /// Whether any v2 chunk loses a reference (compaction may then have work).
    pub fn lowers_groups(&self) -> bool {
        self.groups.values().any(|d| d.iter().any(|&x| x < 0))
    }

    /// Merges the deltas into the transaction; returns the v1 chunks whose count went down
    /// (candidates for reclamation after the commit).
    pub fn apply(self, txn: &dyn KvTxn) -> Result<Vec<ChunkId>> {
        let mut lowered = Vec::new();
        for (c, n) in self.chunks {
            if n != 0 {
                txn.add(Family::Chunks, &c.0, &[n])?;
            }
            if n < 0 {
                lowered.push(c);
            }
        }
        for (g, deltas) in self.groups {
            let used = deltas.iter().rposition(|&d| d != 0).map_or(0, |i| i + 1);
            if used > 0 {
                txn.add(Family::GroupRefs, &group_key(g), &deltas[..used])?;
            }
        }
        Ok(lowered)
    }
}
