//! Format v2 garbage collection: packs whose live fraction fell under a threshold are
//! rewritten (their live records copied into a new pack, the rest dropped) or, with nothing
//! live, removed. Readers are never blocked: the old pack stays readable until its groups
//! point elsewhere, open descriptors keep it readable after that, and a reader that finds it
//! gone plans its read again from the catalog (packread.rs).
//!
//! Why it is safe (see storage/README.md, "Compaction"):
//! - a chunk is *live* when its count is positive or an in-flight write pins it; a writer
//!   pins a chunk number before it reads the group record that says where the chunk is;
//! - compaction copies every chunk live at the survey, then, in one transaction that locks
//!   each group's counts, re-checks them, and — holding the pin table lock until the commit —
//!   re-checks the pins of every chunk it drops. A chunk revived in between (a count raised
//!   or a pin taken) leaves that pack for a later pass; a writer pinning after the commit
//!   reads the new group record, finds the slot gone and stores the chunk afresh;
//! - the new pack is fsynced before that commit (the same commit rule as ingest), and the
//!   old file is unlinked only after it.

use crate::stats;
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::group::{
    decode_counts, group_key, parse_group_key, ChunkNo, GroupLocation, Reader, Slot,
};
use crate::ingest::{index_key, IndexKey};
use crate::kv::Family;
use crate::pack::{RecordHeader, RECORD_HEADER};
use crate::store::{Inner, PinKey, Store};

/// What a compaction pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub packs_examined: usize,
    /// Packs with nothing live, unlinked.
    pub packs_removed: usize,
    /// Packs whose live records were copied into a new pack.
    pub packs_rewritten: usize,
    /// Pack bytes freed (old sizes minus what was copied).
    pub bytes_reclaimed: u64,
    /// Chunks dropped because nothing referenced them.
    pub chunks_dropped: u64,
    /// Packs left for a later pass: a writer revived one of their chunks meanwhile, or a
    /// record failed its CRC (scrub reports it).
    pub deferred: usize,
    /// Nothing was done: another node of a shared catalog is running maintenance.
    pub busy_elsewhere: bool,
}

/// The catalog-wide lock of compaction and repairing scrubs.
pub(crate) const MAINTENANCE: &str = "maintenance";

struct Group {
    id: u64,
    loc: GroupLocation,
    counts: Vec<i64>,
}

impl Group {
    fn live(&self, slot: usize, pins: &HashMap<PinKey, u32>) -> bool {
        !self.loc.slots[slot].gone
            && (self.counts.get(slot).copied().unwrap_or(0) > 0
                || pins.contains_key(&PinKey::No(ChunkNo::new(self.id, slot))))
    }
}

impl Store {
    /// Compacts every sealed pack whose live bytes are under `threshold` of its size (0.5
    /// is the default used by `gc`). Safe while the store serves reads and writes.
    pub async fn compact(&self, threshold: f64) -> Result<CompactReport> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.compact(threshold)).await?
    }
}

impl Inner {
    /// Every group, with its counts, by pack.
    fn survey(&self) -> Result<HashMap<u64, Vec<Group>>> {
        let snap = self.kv.snapshot()?;
        let mut counts: HashMap<u64, Vec<i64>> = HashMap::new();
        snap.walk(Family::GroupRefs, &[], &mut |k, v| {
            counts.insert(parse_group_key(k)?, decode_counts(v));
            Ok(true)
        })?;
        let mut by_pack: HashMap<u64, Vec<Group>> = HashMap::new();
        snap.walk(Family::Groups, &[], &mut |k, v| {
            let id = parse_group_key(k)?;
            let loc = GroupLocation::decode(v)?;
            let counts = counts.remove(&id).unwrap_or_default();
            by_pack
                .entry(loc.pack)
                .or_default()
                .push(Group { id, loc, counts });
            Ok(true)
        })?;
        Ok(by_pack)
    }

    pub(crate) fn compact(self: &Arc<Self>, threshold: f64) -> Result<CompactReport> {
        self.compact_tracked(threshold, &crate::progress::Progress::default())
    }

    /// [`Inner::compact`], telling `progress` the bytes of the packs it rewrites.
    pub(crate) fn compact_tracked(
        self: &Arc<Self>,
        threshold: f64,
        progress: &crate::progress::Progress,
    ) -> Result<CompactReport> {
        let _one_at_a_time = self.compacting.lock().expect("compacting");
        let mut report = CompactReport::default();
        // One node at a time across a shared catalog.
        let Some(_singleton) = self.kv.singleton(MAINTENANCE)? else {
            tracing::info!("another node holds the maintenance lock: compaction skipped");
            report.busy_elsewhere = true;
            return Ok(report);
        };
        // Choose from a first survey; then seal the chosen packs (no ingest appends to them
        // again), skip those an uncommitted write still pins, and survey again: only groups
        // committed before that second survey can live in a sealed, unpinned pack.
        // Deletes deferred for readers: with a shared catalog, those whose readers' nodes
        // are gone are finished here (a live node's last reader finishes its own).
        if self.node.is_some() {
            for id in self.doomed_blobs()? {
                self.finish_doomed(id)?;
            }
        }
        let first = self.survey()?;
        let sizes: HashMap<u64, u64> = self.packs.sizes()?.into_iter().collect();
        let mut chosen = Vec::new();
        for (&pack, &size) in &sizes {
            if self.packs.is_lent(pack) {
                continue;
            }
            report.packs_examined += 1;
            if live_fraction(size, first.get(&pack).map_or(&[][..], Vec::as_slice), self)
                < threshold
            {
                chosen.push(pack);
            }
        }
        chosen.retain(|&p| {
            self.packs.seal(p) && !self.with_pins(|pins| pins.contains_key(&PinKey::Pack(p)))
        });
        // Packs other nodes are still writing carry their writers' pins (cluster.rs).
        if let Some(node) = &self.node {
            chosen = self.unpinned_packs(node, chosen)?;
        }
        if chosen.is_empty() {
            return Ok(report);
        }
        progress.phase(
            "compaction",
            crate::progress::ProgressUnit::Bytes,
            chosen.iter().map(|p| sizes[p]).sum(),
        );
        let mut survey = self.survey()?;
        for pack in chosen {
            let groups = survey.remove(&pack).unwrap_or_default();
            let size = sizes[&pack];
            progress.advance(size);
            if live_fraction(size, &groups, self) >= threshold {
                continue;
            }
            match self.rewrite(pack, groups)? {
                Some((copied, dropped)) => {
                    self.packs.remove(pack)?;
                    report.bytes_reclaimed += size.saturating_sub(copied);
                    report.chunks_dropped += dropped;
                    if copied == 0 {
                        report.packs_removed += 1;
                    } else {
                        report.packs_rewritten += 1;
                    }
                }
                None => report.deferred += 1,
            }
        }
        if report.packs_removed + report.packs_rewritten > 0 {
            tracing::info!(?report, "compacted packs");
        }
        let s = &self.stats;
        stats::add(&s.compactions, 1);
        stats::add(&s.packs_removed, report.packs_removed as u64);
        stats::add(&s.packs_rewritten, report.packs_rewritten as u64);
        stats::add(&s.chunks_reclaimed, report.chunks_dropped);
        stats::add(&s.bytes_reclaimed, report.bytes_reclaimed);
        Ok(report)
    }

    /// Copies the live records of `pack` into a new pack and points its groups there, in one
    /// transaction. `Some((bytes copied, chunks dropped))`, or `None` if deferred.
    fn rewrite(self: &Arc<Self>, pack: u64, groups: Vec<Group>) -> Result<Option<(u64, u64)>> {
        // What is live now (counts from the survey, pins as of this moment).
        let keep: Vec<Vec<bool>> = self.with_pins(|pins| {
            groups
                .iter()
                .map(|g| (0..g.loc.slots.len()).map(|i| g.live(i, pins)).collect())
                .collect()
        });
        // Copy, group by group in slot order, so each new group is contiguous.
        let mut writer = None;
        let mut new_entry = None;
        let mut new_pin = crate::store::PinGuard::empty(self);
        let mut copied = 0u64;
        let mut moved: Vec<Option<u64>> = Vec::with_capacity(groups.len());
        let mut names: Vec<Vec<Option<IndexKey>>> = Vec::with_capacity(groups.len());
        for (g, keep) in groups.iter().zip(&keep) {
            let at = g.loc.locate_all();
            let mut group_names = vec![None; at.len()];
            let mut first = None;
            for (i, loc) in at.iter().enumerate() {
                let Some(loc) = loc else { continue };
                let len = RECORD_HEADER + loc.slot.stored_len as usize;
                // A dropped record is only read for its name (to clear its index entry).
                let mut rec = vec![0u8; if keep[i] { len } else { RECORD_HEADER }];
                self.packs.read_exact_at(pack, loc.record, &mut rec)?;
                let header = RecordHeader::decode(&rec);
                group_names[i] = header.map(|h| index_key(&h.name));
                if !keep[i] {
                    continue;
                }
                if crc32c::crc32c(&rec[RECORD_HEADER..]) != loc.slot.crc || header.is_none() {
                    tracing::warn!(
                        pack = format!("{pack:016x}"),
                        record = loc.record,
                        "damaged record: pack left for scrub"
                    );
                    return Ok(None);
                }
                let w = match &mut writer {
                    Some(w) => w,
                    None => {
                        let lent = self.packs.lend_new()?;
                        new_pin.pin_pack(lent.writer.id)?;
                        new_entry = lent.new_entry;
                        writer.insert(lent.writer)
                    }
                };
                let off = w.append_raw(&rec)?;
                first.get_or_insert(off);
                copied += len as u64;
            }
            moved.push(first);
            names.push(group_names);
        }
        if let Some(w) = &mut writer {
            self.packs.make_durable(w, new_entry.as_deref())?;
        }
        let new_pack = writer.as_ref().map(|w| w.id);
        if let Some(w) = writer {
            self.packs.retire(w);
        }

        let txn = self.kv.begin()?;
        self.check_pins(&*txn, &new_pin.rows)?;
        let mut dropped: Vec<ChunkNo> = Vec::new();
        for (((g, keep), first), names) in groups.iter().zip(&keep).zip(&moved).zip(&names) {
            let counts = txn
                .get_locked(Family::GroupRefs, &group_key(g.id), true)?
                .map(|v| decode_counts(&v))
                .unwrap_or_default();
            // A writer on some node is about to reference this group: the pack waits.
            if let Some(node) = &self.node {
                if self.group_pinned_in_catalog(node, &*txn, g.id)? {
                    return Ok(None);
                }
            }
            let mut slots: Vec<Slot> = g.loc.slots.clone();
            for (i, slot) in slots.iter_mut().enumerate() {
                if slot.gone || keep[i] {
                    continue;
                }
                if counts.get(i).copied().unwrap_or(0) > 0 {
                    return Ok(None); // referenced again since the survey
                }
                slot.gone = true;
                let no = ChunkNo::new(g.id, i);
                dropped.push(no);
                if let Some(k) = names[i] {
                    let points_here = txn
                        .get_locked(Family::ChunkIndex, &k, true)?
                        .and_then(|v| Reader(&v).varint())
                        == Some(no.0);
                    if points_here {
                        txn.delete(Family::ChunkIndex, &k)?;
                    }
                }
            }
            match (first, new_pack) {
                (Some(first), Some(new_pack)) => txn.put(
                    Family::Groups,
                    &group_key(g.id),
                    &GroupLocation {
                        pack: new_pack,
                        first: *first,
                        slots,
                    }
                    .encode(),
                )?,
                _ => {
                    txn.delete(Family::Groups, &group_key(g.id))?;
                    if counts.iter().all(|&c| c == 0) {
                        txn.delete(Family::GroupRefs, &group_key(g.id))?;
                    }
                }
            }
        }
        // Pins are checked and the change committed with the pin table locked: a writer
        // either pinned before (and the pack waits) or pins after and sees the new records.
        let committed = self.with_pins(|pins| -> Result<bool> {
            if dropped.iter().any(|no| pins.contains_key(&PinKey::No(*no))) {
                return Ok(false);
            }
            txn.commit()?;
            Ok(true)
        })?;
        if !committed {
            return Ok(None);
        }
        Ok(Some((copied, dropped.len() as u64)))
    }
}

/// Live record bytes of a pack of `size` bytes holding `groups`, over its size.
fn live_fraction(size: u64, groups: &[Group], inner: &Inner) -> f64 {
    let live: u64 = inner.with_pins(|pins| {
        groups
            .iter()
            .flat_map(|g| (0..g.loc.slots.len()).map(move |i| (g, i)))
            .filter(|(g, i)| g.live(*i, pins))
            .map(|(g, i)| (RECORD_HEADER as u32 + g.loc.slots[i].stored_len) as u64)
            .sum()
    });
    live as f64 / size.max(1) as f64
}
