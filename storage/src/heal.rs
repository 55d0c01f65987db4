//! Healing of damaged format-v2 records: a record whose stored bytes fail their CRC (found
//! by a dedup hit, a read or scrub) is noted, and the next copy of the same chunk the store
//! sees — a write of the same bytes, or a good copy scrub finds through the index — replaces
//! it in place of the damaged one, so every blob that shares the chunk reads whole again.
//!
//! A group lives contiguously in one pack, so a slot cannot be repointed alone: its group is
//! copied into a new pack with the good record in the damaged one's place (the other records
//! byte for byte), made durable, and the group's location switched in one transaction — the
//! same commit rule as compaction, under the same one-at-a-time lock. The old records become
//! garbage that compaction reclaims. Readers are not blocked: they read the old pack (and
//! meet the damage, as before) until the switch, the new one after it.
//!
//! Which damage is known is kept in memory: after a restart, the next scrub notes it again
//! (and heals it at once when a good copy is already stored).

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::group::{group_key, ChunkNo, GroupLocation, Slot};
use crate::ids::ChunkId;
use crate::ingest::{index_key, IndexKey};
use crate::kv::Family;
use crate::pack::{self, Encoded, RecordHeader, RECORD_HEADER};
use crate::store::Inner;

/// A record known to be damaged.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Damaged {
    pub no: ChunkNo,
    /// The chunk's full name, when its record header survived; otherwise the index key
    /// (the map's key), the length and the catalog's CRC of its stored bytes identify it.
    pub name: Option<ChunkId>,
    pub raw_len: u32,
    pub crc: u32,
}

impl Damaged {
    /// Whether a record with this header holds the damaged chunk's bytes.
    pub fn is_restored_by(&self, good: &RecordHeader) -> bool {
        self.raw_len == good.raw_len
            && match self.name {
                Some(n) => n == good.name,
                None => self.crc == good.crc,
            }
    }
}

/// Damaged records by the index key of their chunk's name. Usually empty.
#[derive(Default)]
pub(crate) struct DamageMap(std::sync::Mutex<HashMap<IndexKey, Damaged>>);

impl DamageMap {
    pub fn note(&self, key: IndexKey, d: Damaged) {
        tracing::warn!(
            chunk = d.no.0,
            "damaged chunk record noted; the next copy of its bytes replaces it"
        );
        self.0.lock().expect("damage").insert(key, d);
    }

    /// The damaged record that `good` (a chunk about to be, or already, stored) can replace.
    pub fn replaced_by(&self, good: &RecordHeader) -> Option<ChunkNo> {
        let map = self.0.lock().expect("damage");
        if map.is_empty() {
            return None;
        }
        map.get(&index_key(&good.name))
            .filter(|d| d.is_restored_by(good))
            .map(|d| d.no)
    }

    fn forget(&self, no: ChunkNo) {
        self.0.lock().expect("damage").retain(|_, d| d.no != no);
    }
}

impl Inner {
    /// Notes damage to chunk `no` (whose slot says `raw_len` and `crc`) found by a read: the
    /// header read with it names the chunk (a damaged header leaves it to scrub, which finds
    /// the name through the index).
    pub(crate) fn note_damaged_record(&self, no: ChunkNo, header: &[u8], raw_len: u32, crc: u32) {
        if let Some(h) = RecordHeader::decode(header).filter(|h| h.raw_len == raw_len) {
            self.damage.note(
                index_key(&h.name),
                Damaged {
                    no,
                    name: Some(h.name),
                    raw_len,
                    crc,
                },
            );
        }
    }

    /// Replaces damaged records with good copies: `(damaged chunk, good record)` pairs.
    /// Returns how many were replaced; a pair whose damaged record is gone, sound again or
    /// not the same chunk is skipped.
    pub(crate) fn heal(self: &Arc<Self>, pairs: &[(ChunkNo, &Encoded)]) -> Result<usize> {
        let _one_at_a_time = self.compacting.lock().expect("compacting");
        let mut by_group: HashMap<u64, Vec<(usize, &Encoded)>> = HashMap::new();
        for (no, good) in pairs {
            by_group
                .entry(no.group())
                .or_default()
                .push((no.slot(), good));
        }
        let mut healed = 0;
        for (group, goods) in by_group {
            healed += self.heal_group(group, &goods)?;
            for (slot, _) in goods {
                self.damage.forget(ChunkNo::new(group, slot));
            }
        }
        Ok(healed)
    }

    fn heal_group(self: &Arc<Self>, group: u64, goods: &[(usize, &Encoded)]) -> Result<usize> {
        let Some(before) = self.kv.get(Family::Groups, &group_key(group))? else {
            return Ok(0);
        };
        let loc = GroupLocation::decode(&before)?;
        let at = loc.locate_all();
        // The records of the new group, and its slots.
        let mut records: Vec<Vec<u8>> = Vec::with_capacity(at.len());
        let mut slots: Vec<Slot> = loc.slots.clone();
        let mut replaced = 0;
        for (i, here) in at.iter().enumerate() {
            let Some(here) = here else { continue };
            let mut rec = vec![0u8; RECORD_HEADER + here.slot.stored_len as usize];
            let readable = match self.packs.read_exact_at(loc.pack, here.record, &mut rec) {
                Ok(()) => true,
                Err(e) if e.is_integrity() || matches!(e, StoreError::Malformed(_)) => false,
                Err(e) => return Err(e),
            };
            let good = goods.iter().find(|(s, _)| *s == i).map(|(_, g)| *g);
            let Some(good) = good else {
                records.push(rec); // copied as it is, damaged or not
                continue;
            };
            let header = RecordHeader::decode(&rec);
            let damaged = Damaged {
                no: ChunkNo::new(group, i),
                name: header.map(|h| h.name),
                raw_len: here.slot.raw_len,
                crc: here.slot.crc,
            };
            let same_chunk = damaged.is_restored_by(&good.header);
            let sound = readable
                && header.is_some()
                && crc32c::crc32c(&rec[RECORD_HEADER..]) == here.slot.crc;
            if !same_chunk || sound {
                records.push(rec);
                continue;
            }
            let mut fresh = good.header.encode().to_vec();
            fresh.extend_from_slice(&good.stored);
            slots[i] = Slot {
                codec: good.header.codec,
                raw_len: good.header.raw_len,
                stored_len: good.header.stored_len,
                crc: good.header.crc,
                gone: false,
            };
            records.push(fresh);
            replaced += 1;
        }
        if replaced == 0 {
            return Ok(0);
        }
        let lent = self.packs.lend_new()?;
        let mut pin = crate::store::PinGuard::empty(self);
        if let Err(e) = pin.pin_pack(lent.writer.id) {
            self.packs.retire(lent.writer);
            return Err(e);
        }
        let mut w = lent.writer;
        let first = w.append_raw(&records.concat())?;
        self.packs.make_durable(&mut w, lent.new_entry.as_deref())?;
        let new_pack = w.id;
        self.packs.retire(w);

        let txn = self.kv.begin()?;
        self.check_pins(&*txn, &pin.rows)?;
        if txn
            .get_locked(Family::Groups, &group_key(group), true)?
            .as_deref()
            != Some(&before[..])
        {
            // Only compaction and healing move groups, one at a time under the lock held here.
            return Err(StoreError::Malformed("group moved while being healed"));
        }
        let moved = GroupLocation {
            pack: new_pack,
            first,
            slots,
        };
        txn.put(Family::Groups, &group_key(group), &moved.encode())?;
        txn.commit()?;
        tracing::info!(
            group,
            replaced,
            pack = format!("{new_pack:016x}"),
            "damaged chunk records replaced by good copies"
        );
        Ok(replaced)
    }

    /// The record of chunk `no`, if it is another chunk than `damaged`, holds the same bytes
    /// and is sound: a good copy to heal `damaged` from.
    pub(crate) fn good_copy(&self, no: ChunkNo, damaged: &Damaged) -> Result<Option<Encoded>> {
        if no == damaged.no {
            return Ok(None);
        }
        let Some(at) = self.locate_chunk(no)? else {
            return Ok(None);
        };
        let mut rec = vec![0u8; RECORD_HEADER + at.slot.stored_len as usize];
        if self
            .packs
            .read_exact_at(at.pack, at.record, &mut rec)
            .is_err()
        {
            return Ok(None);
        }
        let Some(h) = RecordHeader::decode(&rec) else {
            return Ok(None);
        };
        let stored = bytes::Bytes::from(rec).slice(RECORD_HEADER..);
        let sound = damaged.is_restored_by(&h)
            && crc32c::crc32c(&stored) == at.slot.crc
            && pack::decode(h.codec, &stored, h.raw_len)
                .is_ok_and(|raw| ChunkId::of(&raw) == h.name);
        Ok(sound.then_some(Encoded { header: h, stored }))
    }
}
