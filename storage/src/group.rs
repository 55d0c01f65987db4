//! Chunk groups (engine format v2): where chunks live in packs, and how many references each
//! has, kept per group of up to 64 consecutive chunk numbers rather than per chunk.
//!
//! A chunk number is `group << 6 | slot`. One writer fills a group with chunks it appended
//! back to back to one pack, so a group's location is one pack id and one offset plus each
//! slot's lengths, codec and CRC: about 10 bytes per chunk in the catalog instead of a
//! 32-byte key and a value per chunk (see storage/README.md for the per-GiB budget).
//! Compaction rewrites a group as a whole: its live records are copied contiguously into a
//! new pack and the dead slots become `gone` (occupying nothing).
//!
//! ```text
//! groups      group (u64 BE) → version 1 ‖ pack id (u64 LE) ‖ first offset (varint) ‖ n (u8)
//!                              ‖ n × [flags (u8: codec | GONE) ‖ raw length (varint;
//!                                     absent when raw) ‖ stored length (varint) ‖ CRC32C]
//! group_refs  group (u64 BE) → per-slot reference counts, zigzag varints
//! ```
//!
//! `group_refs` values and merge operands have the same form — an array of per-slot numbers
//! — and merge by adding element-wise, so commits and deletes add their deltas without
//! reading (associative; RocksDB may combine operands in any grouping).

use crate::error::{Result, StoreError};
use crate::pack::{Codec, RECORD_HEADER};

pub(crate) const SLOT_BITS: u32 = 6;
pub(crate) const GROUP_SLOTS: usize = 1 << SLOT_BITS;

/// A chunk's number: its group and its slot in the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkNo(pub u64);

impl ChunkNo {
    pub fn new(group: u64, slot: usize) -> ChunkNo {
        debug_assert!(slot < GROUP_SLOTS);
        ChunkNo(group << SLOT_BITS | slot as u64)
    }
    pub fn group(self) -> u64 {
        self.0 >> SLOT_BITS
    }
    pub fn slot(self) -> usize {
        (self.0 & (GROUP_SLOTS as u64 - 1)) as usize
    }
}

/// One past the highest group any catalog record names (locations or counts), so that a
/// reopened store never hands out a number something may still refer to.
pub(crate) fn first_free_group(kv: &dyn crate::kv::KvRead) -> Result<u64> {
    use crate::kv::Family;
    let mut next = 0;
    for family in [Family::Groups, Family::GroupRefs] {
        if let Some(k) = crate::kv::last_key(kv, family, 8)? {
            next = next.max(parse_group_key(&k)? + 1);
        }
    }
    Ok(next)
}

pub(crate) fn group_key(group: u64) -> [u8; 8] {
    group.to_be_bytes()
}

pub(crate) fn parse_group_key(k: &[u8]) -> Result<u64> {
    k.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Malformed("group key length"))
}

const GONE: u8 = 0x80;
const VERSION: u8 = 1;

/// One slot of a group: a chunk's record in the group's pack, or nothing (`gone`: its chunk
/// was unreferenced when its pack was compacted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub codec: Codec,
    pub raw_len: u32,
    pub stored_len: u32,
    pub crc: u32,
    pub gone: bool,
}

/// Where a group's chunks are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupLocation {
    pub pack: u64,
    /// Offset of the first present slot's record header in the pack.
    pub first: u64,
    pub slots: Vec<Slot>,
}

/// Where one chunk's stored bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkLocation {
    pub pack: u64,
    /// Offset of the record header; the stored bytes follow it.
    pub record: u64,
    pub slot: Slot,
}

impl ChunkLocation {
    pub fn data_offset(&self) -> u64 {
        self.record + RECORD_HEADER as u64
    }
}

impl GroupLocation {
    /// Locations of every present slot, in order (gone slots occupy nothing in the pack).
    pub fn locate_all(&self) -> Vec<Option<ChunkLocation>> {
        let mut at = self.first;
        self.slots
            .iter()
            .map(|s| {
                if s.gone {
                    return None;
                }
                let here = ChunkLocation {
                    pack: self.pack,
                    record: at,
                    slot: *s,
                };
                at += RECORD_HEADER as u64 + s.stored_len as u64;
                Some(here)
            })
            .collect()
    }

    pub fn locate(&self, slot: usize) -> Option<ChunkLocation> {
        let here = *self.slots.get(slot)?;
        if here.gone {
            return None;
        }
        let before: u64 = self.slots[..slot]
            .iter()
            .filter(|s| !s.gone)
            .map(|s| RECORD_HEADER as u64 + s.stored_len as u64)
            .sum();
        Some(ChunkLocation {
            pack: self.pack,
            record: self.first + before,
            slot: here,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(20 + self.slots.len() * 10);
        v.push(VERSION);
        v.extend_from_slice(&self.pack.to_le_bytes());
        put_varint(&mut v, self.first);
        v.push(self.slots.len() as u8);
        for s in &self.slots {
            v.push(s.codec as u8 | if s.gone { GONE } else { 0 });
            // A raw chunk's raw length is its stored length: written once.
            if s.codec != Codec::Raw {
                put_varint(&mut v, s.raw_len as u64);
            }
            put_varint(&mut v, s.stored_len as u64);
            v.extend_from_slice(&s.crc.to_le_bytes());
        }
        v
    }

    pub fn decode(buf: &[u8]) -> Result<GroupLocation> {
        let bad = || StoreError::Malformed("group record");
        let mut r = Reader(buf);
        if r.take(1).ok_or_else(bad)?[0] != VERSION {
            return Err(bad());
        }
        let pack = u64::from_le_bytes(r.take(8).ok_or_else(bad)?.try_into().expect("8"));
        let first = r.varint().ok_or_else(bad)?;
        let n = r.take(1).ok_or_else(bad)?[0] as usize;
        if n == 0 || n > GROUP_SLOTS {
            return Err(bad());
        }
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            let flags = r.take(1).ok_or_else(bad)?[0];
            let codec = Codec::from_u8(flags & !GONE).ok_or_else(bad)?;
            let raw_len = match codec {
                Codec::Raw => None,
                _ => Some(u32::try_from(r.varint().ok_or_else(bad)?).map_err(|_| bad())?),
            };
            let stored_len = u32::try_from(r.varint().ok_or_else(bad)?).map_err(|_| bad())?;
            let raw_len = raw_len.unwrap_or(stored_len);
            let crc = u32::from_le_bytes(r.take(4).ok_or_else(bad)?.try_into().expect("4"));
            slots.push(Slot {
                codec,
                raw_len,
                stored_len,
                crc,
                gone: flags & GONE != 0,
            });
        }
        if !r.0.is_empty() {
            return Err(bad());
        }
        Ok(GroupLocation { pack, first, slots })
    }
}

/// Per-slot reference counts (or deltas: the same form).
pub(crate) fn encode_counts(counts: &[i64]) -> Vec<u8> {
    let mut v = Vec::with_capacity(counts.len());
    for &c in counts {
        put_varint(&mut v, zigzag(c));
    }
    v
}

/// Decodes a count array; a malformed value reads as no counts (logged by scrub, which
/// recomputes counts from the manifests and repairs them).
pub(crate) fn decode_counts(buf: &[u8]) -> Vec<i64> {
    let mut r = Reader(buf);
    let mut out = Vec::new();
    while !r.0.is_empty() && out.len() < GROUP_SLOTS {
        match r.varint() {
            Some(z) => out.push(unzigzag(z)),
            None => break,
        }
    }
    out
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

pub(crate) fn put_varint(v: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        v.push(n as u8 | 0x80);
        n >>= 7;
    }
    v.push(n as u8);
}

pub(crate) struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    /// LEB128, at most 10 bytes (a longer or overflowing run is malformed).
    pub fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for i in 0..10 {
            let b = *self.0.first()?;
            self.0 = &self.0[1..];
            if i == 9 && b > 1 {
                return None;
            }
            n |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(stored_len: u32, gone: bool) -> Slot {
        Slot {
            codec: if stored_len < 16384 {
                Codec::Lz4
            } else {
                Codec::Raw
            },
            raw_len: 16384,
            stored_len,
            crc: 0xdead_beef,
            gone,
        }
    }

    #[test]
    fn locations_round_trip_and_skip_gone_slots() {
        let g = GroupLocation {
            pack: 0x1234_5678_9abc,
            first: 1 << 33,
            slots: vec![slot(16384, false), slot(100, true), slot(5000, false)],
        };
        let enc = g.encode();
        assert!(enc.len() < 20 + 3 * 10, "{} bytes", enc.len());
        assert_eq!(GroupLocation::decode(&enc).unwrap(), g);
        let at = g.locate_all();
        assert_eq!(at[0].unwrap().record, 1 << 33);
        assert_eq!(at[1], None);
        assert_eq!(at[2].unwrap().record, (1 << 33) + 56 + 16384);
        assert_eq!(at[2].unwrap().data_offset(), (1 << 33) + 2 * 56 + 16384);
        for i in 0..4 {
            assert_eq!(g.locate(i), at.get(i).copied().flatten(), "slot {i}");
        }
        for cut in 0..enc.len() {
            assert!(GroupLocation::decode(&enc[..cut]).is_err(), "cut {cut}");
        }
        let mut extra = enc.clone();
        extra.push(0);
        assert!(GroupLocation::decode(&extra).is_err());
    }

    #[test]
    fn counts_merge_element_wise() {
        for n in [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(n)), n);
        }
        let a = encode_counts(&[1, 0, 2]);
        assert_eq!(decode_counts(&a), vec![1, 0, 2]);
        assert!(decode_counts(&[0xff; 12]).is_empty());
    }

    #[test]
    fn chunk_numbers() {
        let n = ChunkNo::new(5, 63);
        assert_eq!((n.group(), n.slot()), (5, 63));
        assert_eq!(ChunkNo(n.0 + 1), ChunkNo::new(6, 0));
    }
}
