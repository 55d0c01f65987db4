//! Scrub of format v2: group counts against what the manifests imply, every group's records
//! present in its pack, and (with `verify_data`) every live record's CRC32C and BLAKE3 name.
//! Records no group describes (a failed or abandoned write, or the space compaction has not
//! yet freed) are garbage, reported as bytes, not as errors: compaction reclaims them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::group::{decode_counts, group_key, parse_group_key, ChunkNo, GroupLocation, Reader};
use crate::heal::Damaged;
use crate::ids::ChunkId;
use crate::ingest::{index_key, IndexKey};
use crate::kv::{Family, KvRead, Op};
use crate::manifest::Extent;
use crate::pack::{self, RECORD_HEADER};
use crate::refs::Refs;
use crate::scrub::{ScrubOptions, ScrubReport};
use crate::store::Inner;

pub(crate) fn scrub_packs(
    inner: &Arc<Inner>,
    snap: &dyn KvRead,
    expected: &Refs,
    opts: ScrubOptions,
    progress: &crate::progress::Progress,
    report: &mut ScrubReport,
) -> Result<()> {
    let mut stored: HashMap<u64, Vec<i64>> = HashMap::new();
    snap.walk(Family::GroupRefs, &[], &mut |k, v| {
        stored.insert(parse_group_key(k)?, decode_counts(v));
        Ok(true)
    })?;
    let mut groups: Vec<(u64, GroupLocation)> = Vec::new();
    snap.walk(Family::Groups, &[], &mut |k, v| {
        groups.push((parse_group_key(k)?, GroupLocation::decode(v)?));
        Ok(true)
    })?;

    // Counts.
    let expected = expected.groups();
    let mut all: Vec<u64> = expected.keys().chain(stored.keys()).copied().collect();
    all.sort_unstable();
    all.dedup();
    for g in all {
        let have = stored.get(&g).map_or(&[][..], Vec::as_slice);
        let want = expected.get(&g).map_or(&[][..], |a| &a[..]);
        let n = have.len().max(want.len());
        let mut delta = vec![0i64; n];
        for (i, d) in delta.iter_mut().enumerate() {
            let (h, w) = (
                have.get(i).copied().unwrap_or(0),
                want.get(i).copied().unwrap_or(0),
            );
            *d = w - h;
            if h != w {
                report
                    .group_count_mismatches
                    .push((ChunkNo::new(g, i).0, h, w));
            }
        }
        if opts.repair && delta.iter().any(|&d| d != 0) {
            inner.kv.write(
                &[Op::Add(Family::GroupRefs, group_key(g).to_vec(), delta)],
                true,
            )?;
            report.repaired += 1;
        }
    }

    // Every referenced chunk has a present slot in a pack that exists.
    let referenced = |no: ChunkNo| {
        expected
            .get(&no.group())
            .and_then(|v| v.get(no.slot()))
            .is_some_and(|&c| c > 0)
    };
    let located: HashMap<u64, &GroupLocation> = groups.iter().map(|(g, l)| (*g, l)).collect();
    for (&g, want) in expected {
        for (slot, &c) in want.iter().enumerate() {
            if c <= 0 {
                continue;
            }
            let present = located
                .get(&g)
                .and_then(|l| l.slots.get(slot))
                .is_some_and(|s| !s.gone);
            if !present {
                report.missing_records.push(ChunkNo::new(g, slot).0);
            }
        }
    }

    // The packs.
    let mut by_pack: HashMap<u64, Vec<(u64, &GroupLocation)>> = HashMap::new();
    for (g, l) in &groups {
        by_pack.entry(l.pack).or_default().push((*g, l));
    }
    let all_packs = inner.packs.ids()?;
    let on_disk: HashSet<u64> = all_packs.iter().copied().collect();
    for (&p, gs) in &by_pack {
        if !on_disk.contains(&p) {
            for (g, l) in gs {
                for (slot, _) in l.slots.iter().enumerate().filter(|(_, s)| !s.gone) {
                    let no = ChunkNo::new(*g, slot);
                    if referenced(no) {
                        report.missing_records.push(no.0);
                    }
                }
            }
        }
    }
    let sizes: HashMap<u64, u64> = inner.packs.sizes()?.into_iter().collect();
    progress.phase(
        "packs",
        crate::progress::ProgressUnit::Bytes,
        sizes.values().sum(),
    );
    for p in all_packs {
        report.packs += 1;
        progress.advance(sizes.get(&p).copied().unwrap_or(0));
        let path = match inner.packs.local_copy(p) {
            Ok(path) => path,
            Err(StoreError::PackMissing(_)) => continue, // compacted meanwhile
            Err(e) => return Err(e),
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // compacted meanwhile
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let size = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
        let mut live = 0u64;
        for (g, l) in by_pack.get(&p).map_or(&[][..], Vec::as_slice) {
            for (slot, at) in l.locate_all().into_iter().enumerate() {
                let Some(at) = at else { continue };
                let no = ChunkNo::new(*g, slot);
                let len = RECORD_HEADER + at.slot.stored_len as usize;
                if referenced(no) {
                    live += len as u64;
                }
                if !opts.verify_data {
                    continue;
                }
                report.chunks += 1;
                let mut rec = vec![0u8; len];
                let sound = match inner.packs.read_exact_at(p, at.record, &mut rec) {
                    Ok(()) => record_is_sound(&rec, &at.slot),
                    Err(StoreError::Malformed(_)) => false, // truncated pack
                    Err(e) => return Err(e),
                };
                if sound {
                    report.bytes_verified += at.slot.raw_len as u64;
                } else {
                    report.corrupt_records.push((p, at.record, no.0));
                }
            }
        }
        report.garbage_bytes += size.saturating_sub(live + pack::PACK_HEADER as u64);
        report.dead_packs += u64::from(live == 0);
    }
    note_and_heal(inner, &groups, opts, report)
}

/// Notes every damaged record, so that the next write of its bytes replaces it, and with
/// `repair` replaces those of which a good copy is stored already (heal.rs). A record whose
/// header is damaged too is known by its index key, found by one pass over the index.
fn note_and_heal(
    inner: &Arc<Inner>,
    groups: &[(u64, GroupLocation)],
    opts: ScrubOptions,
    report: &mut ScrubReport,
) -> Result<()> {
    if report.corrupt_records.is_empty() {
        return Ok(());
    }
    // no → (pack, offset, raw_len, crc)
    let mut unnamed: HashMap<u64, (u64, u64, u32, u32)> = HashMap::new();
    let mut found: Vec<(IndexKey, Damaged, (u64, u64, u64))> = Vec::new();
    for &(p, off, no) in &report.corrupt_records {
        let no = ChunkNo(no);
        let Some((raw_len, crc)) = inner
            .group_location(no.group())
            .ok()
            .and_then(|l| l.slots.get(no.slot()).map(|s| (s.raw_len, s.crc)))
        else {
            continue;
        };
        let mut h = [0u8; RECORD_HEADER];
        let name = inner
            .packs
            .read_exact_at(p, off, &mut h)
            .ok()
            .and_then(|()| pack::RecordHeader::decode(&h))
            .filter(|h| h.raw_len == raw_len)
            .map(|h| h.name);
        match name {
            Some(n) => found.push((
                index_key(&n),
                Damaged {
                    no,
                    name: Some(n),
                    raw_len,
                    crc,
                },
                (p, off, no.0),
            )),
            None => {
                unnamed.insert(no.0, (p, off, raw_len, crc));
            }
        }
    }
    if !unnamed.is_empty() {
        inner.kv.walk(Family::ChunkIndex, &[], &mut |k, v| {
            let no = Reader(v).varint();
            if let Some((p, off, raw_len, crc)) = no.and_then(|n| unnamed.remove(&n)) {
                let key: IndexKey = k.try_into().unwrap_or_default();
                let no = no.expect("matched");
                found.push((
                    key,
                    Damaged {
                        no: ChunkNo(no),
                        name: None,
                        raw_len,
                        crc,
                    },
                    (p, off, no),
                ));
            }
            Ok(true)
        })?;
    }
    for (key, d, _) in &found {
        inner.damage.note(*key, *d);
    }
    if !opts.repair {
        return Ok(());
    }
    // Good copies: the chunk the index names, else any record with the same bytes (the
    // index holds only hook chunks), found by reading the headers of same-length records.
    let mut copies: HashMap<u64, ChunkNo> = HashMap::new();
    for (key, d, _) in &found {
        if let Some(no) = inner.indexed(*key)? {
            if inner.good_copy(no, d)?.is_some() {
                copies.insert(d.no.0, no);
            }
        }
    }
    let unmatched: Vec<&Damaged> = found
        .iter()
        .map(|(_, d, _)| d)
        .filter(|d| !copies.contains_key(&d.no.0))
        .collect();
    if !unmatched.is_empty() {
        for (g, l) in groups {
            for (slot, at) in l.locate_all().into_iter().enumerate() {
                let Some(at) = at else { continue };
                let wanted: Vec<&&Damaged> = unmatched
                    .iter()
                    .filter(|d| d.raw_len == at.slot.raw_len && !copies.contains_key(&d.no.0))
                    .collect();
                if wanted.is_empty() {
                    continue;
                }
                let mut h = [0u8; RECORD_HEADER];
                if inner
                    .packs
                    .read_exact_at(at.pack, at.record, &mut h)
                    .is_err()
                {
                    continue;
                }
                let Some(header) = pack::RecordHeader::decode(&h) else {
                    continue;
                };
                let no = ChunkNo::new(*g, slot);
                for d in wanted {
                    if d.is_restored_by(&header) && no != d.no {
                        copies.insert(d.no.0, no);
                    }
                }
            }
        }
    }
    for (_, d, entry) in found {
        let Some(&no) = copies.get(&d.no.0) else {
            continue;
        };
        if let Some(good) = inner.good_copy(no, &d)? {
            if inner.heal(&[(d.no, &good)])? > 0 {
                report.corrupt_records.retain(|e| *e != entry);
                report.records_healed += 1;
            }
        }
    }
    Ok(())
}

/// The record's header names it, its stored bytes match the catalog's CRC, and they decode
/// to bytes with that name.
fn record_is_sound(rec: &[u8], slot: &crate::group::Slot) -> bool {
    let Some(h) = pack::RecordHeader::decode(rec) else {
        return false;
    };
    let stored = &rec[RECORD_HEADER..];
    if h.stored_len != slot.stored_len
        || h.raw_len != slot.raw_len
        || h.codec != slot.codec
        || crc32c::crc32c(stored) != slot.crc
    {
        return false;
    }
    pack::decode(h.codec, stored, h.raw_len).is_ok_and(|raw| ChunkId::of(&raw) == h.name)
}

/// Whether extent `e` references any of the chunk numbers in `damaged`.
pub(crate) fn references_any(e: &Extent, damaged: &HashSet<u64>) -> bool {
    match e {
        Extent::Run { first, count, .. } => {
            (first.0..first.0 + *count as u64).any(|n| damaged.contains(&n))
        }
        _ => false,
    }
}
