//! Reading format v2 runs: a run of chunk numbers becomes a few large positioned reads of
//! pack files (chunks that sit back to back in one pack are read with one `preadv`, up to
//! `MAX_READ` of output), each chunk checked against its CRC32C before a byte leaves, and
//! decompressed when stored compressed. Raw chunks wanted whole are read straight into the
//! output buffer (their record headers into scratch space), so a full read of an image
//! copies nothing it does not have to.

use std::collections::HashMap;

use bytes::Bytes;

use crate::error::{Result, StoreError};
use crate::group::{group_key, ChunkLocation, ChunkNo, GroupLocation};
use crate::kv::Family;
use crate::pack::{self, Codec, RECORD_HEADER};
use crate::store::Inner;

/// Output bytes gathered by one read.
const MAX_READ: usize = 1 << 20;

/// One chunk's part in a read: its record and the slice of its raw bytes wanted.
#[derive(Clone, Copy, Debug)]
struct Want {
    at: ChunkLocation,
    no: ChunkNo,
    from: u32,
    to: u32,
}

/// Contiguous records of one pack, read with one call.
#[derive(Debug)]
pub(crate) struct PackRead {
    pack: u64,
    wants: Vec<Want>,
}

impl PackRead {
    fn out_len(&self) -> usize {
        self.wants.iter().map(|w| (w.to - w.from) as usize).sum()
    }

    fn end(&self) -> u64 {
        self.wants.last().map_or(0, |w| {
            w.at.record + RECORD_HEADER as u64 + w.at.slot.stored_len as u64
        })
    }
}

impl Inner {
    pub(crate) fn group_location(&self, group: u64) -> Result<GroupLocation> {
        let v = self
            .kv
            .get(Family::Groups, &group_key(group))?
            .ok_or(StoreError::Malformed(
                "a manifest names a chunk group that does not exist",
            ))?;
        GroupLocation::decode(&v)
    }

    /// The reads that deliver `len` bytes of the chunks `first ..`, from `skip` bytes in.
    pub(crate) fn plan_run(
        &self,
        first: ChunkNo,
        count: u32,
        skip: u64,
        len: u64,
        groups: &mut HashMap<u64, Vec<Option<ChunkLocation>>>,
    ) -> Result<Vec<PackRead>> {
        let mut reads: Vec<PackRead> = Vec::new();
        let mut pos = 0u64; // bytes of the run before chunk `n`
        let want_end = skip + len;
        for n in first.0..first.0 + count as u64 {
            if pos >= want_end {
                break;
            }
            let no = ChunkNo(n);
            let group = match groups.entry(no.group()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(self.group_location(no.group())?.locate_all())
                }
            };
            let at = group
                .get(no.slot())
                .copied()
                .flatten()
                .ok_or(StoreError::Malformed(
                    "a manifest names a chunk that is gone",
                ))?;
            let raw = at.slot.raw_len as u64;
            let (from, to) = (skip.max(pos), want_end.min(pos + raw));
            pos += raw;
            if from >= to {
                continue;
            }
            let want = Want {
                at,
                no,
                from: (from - (pos - raw)) as u32,
                to: (to - (pos - raw)) as u32,
            };
            match reads.last_mut() {
                Some(r)
                    if r.pack == at.pack
                        && r.end() == at.record
                        && r.out_len() + (want.to - want.from) as usize <= MAX_READ =>
                {
                    r.wants.push(want)
                }
                _ => reads.push(PackRead {
                    pack: at.pack,
                    wants: vec![want],
                }),
            }
        }
        if pos < want_end {
            return Err(StoreError::Malformed("a run is shorter than its extent"));
        }
        Ok(reads)
    }

    /// Performs one planned read: verified, decoded bytes. A pack compacted away since the
    /// read was planned (its file gone) is not an error: the chunks are located again from
    /// the catalog, which already points at their new place.
    pub(crate) fn read_pack(&self, r: &PackRead) -> Result<Bytes> {
        match self.read_planned(r) {
            Err(StoreError::PackMissing(_)) => {
                let mut out = Vec::with_capacity(r.out_len());
                for w in &r.wants {
                    let at = self
                        .group_location(w.no.group())?
                        .locate(w.no.slot())
                        .ok_or(StoreError::Malformed(
                            "a manifest names a chunk that is gone",
                        ))?;
                    let again = PackRead {
                        pack: at.pack,
                        wants: vec![Want { at, ..*w }],
                    };
                    out.extend_from_slice(&self.read_planned(&again)?);
                }
                Ok(Bytes::from(out))
            }
            other => other,
        }
    }

    fn read_planned(&self, r: &PackRead) -> Result<Bytes> {
        let out_len = r.out_len();
        // A pooled buffer: warm reads reuse resident memory instead of faulting in and
        // zeroing a fresh MiB per read (bufpool.rs).
        let mut out = crate::bufpool::take(out_len);
        // Where each chunk's stored bytes land: straight into `out`, or into scratch.
        let direct: Vec<bool> = r
            .wants
            .iter()
            .map(|w| w.at.slot.codec == Codec::Raw && w.from == 0 && w.to == w.at.slot.raw_len)
            .collect();
        let mut headers = vec![[0u8; RECORD_HEADER]; r.wants.len()];
        let mut scratch: Vec<Vec<u8>> = r
            .wants
            .iter()
            .zip(&direct)
            .map(|(w, d)| {
                if *d {
                    Vec::new()
                } else {
                    vec![0u8; w.at.slot.stored_len as usize]
                }
            })
            .collect();
        {
            let mut bufs: Vec<&mut [u8]> = Vec::with_capacity(2 * r.wants.len());
            let mut rest: &mut [u8] = &mut out;
            for ((h, s), (w, d)) in headers
                .iter_mut()
                .zip(scratch.iter_mut())
                .zip(r.wants.iter().zip(&direct))
            {
                bufs.push(h);
                // Each chunk's place in `out`; a chunk not read in place is copied there
                // after decoding.
                let (place, later) =
                    std::mem::take(&mut rest).split_at_mut((w.to - w.from) as usize);
                rest = later;
                bufs.push(if *d { place } else { s });
            }
            self.packs
                .read_vectored_at(r.pack, r.wants[0].at.record, &mut bufs)?;
        }
        let mut pos = 0usize;
        for (i, w) in r.wants.iter().enumerate() {
            let n = (w.to - w.from) as usize;
            let stored: &[u8] = if direct[i] {
                &out[pos..pos + n]
            } else {
                &scratch[i]
            };
            if crc32c::crc32c(stored) != w.at.slot.crc {
                crate::stats::add(&self.stats.corrupt_reads, 1);
                self.note_damaged_record(w.no, &headers[i], w.at.slot.raw_len, w.at.slot.crc);
                return Err(self.corrupt(r.pack, w));
            }
            let decoded;
            let raw: &[u8] = match (w.at.slot.codec, direct[i]) {
                (_, true) => stored,
                (Codec::Raw, false) => stored,
                (Codec::Lz4, false) => {
                    decoded =
                        pack::decode(Codec::Lz4, stored, w.at.slot.raw_len).map_err(|_| {
                            crate::stats::add(&self.stats.corrupt_reads, 1);
                            self.corrupt(r.pack, w)
                        })?;
                    &decoded
                }
            };
            if self.cfg.verify_full_hash_on_read {
                let named = pack::RecordHeader::decode(&headers[i]).map(|h| h.name);
                if named != Some(crate::ids::ChunkId::of(raw)) {
                    crate::stats::add(&self.stats.corrupt_reads, 1);
                    return Err(self.corrupt(r.pack, w));
                }
            }
            if !direct[i] {
                let part = raw[w.from as usize..w.to as usize].to_vec();
                out[pos..pos + n].copy_from_slice(&part);
            }
            pos += n;
        }
        crate::stats::add(&self.stats.chunks_read, r.wants.len() as u64);
        crate::stats::add(&self.stats.chunk_bytes_read, out_len as u64);
        Ok(crate::bufpool::freeze(out))
    }

    fn corrupt(&self, pack: u64, w: &Want) -> StoreError {
        StoreError::CorruptRecord {
            pack,
            offset: w.at.record,
            chunk: w.no.0,
        }
    }
}
