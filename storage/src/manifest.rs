//! Manifests: a blob is an ordered list of extents, each a slice of a stored chunk (format v1),
//! a run of consecutive chunk numbers in packs (format v2), a run of zeros (stored as nothing)
//! or, for tiny blobs, inline bytes. Extents are grouped into
//! segments of at most `SEGMENT_EXTENTS`, each stored under `blob id ‖ start offset (BE)`, so a
//! range read seeks straight to its segment instead of loading a multi-GiB image's whole list.

use bytes::Bytes;

use crate::error::{Result, StoreError};
use crate::group::{put_varint, ChunkNo, Reader};
use crate::ids::{BlobId, ChunkId};

pub(crate) const SEGMENT_EXTENTS: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extent {
    /// `len` bytes of chunk `id` starting at `offset` within the chunk.
    Chunk { id: ChunkId, offset: u32, len: u32 },
    /// `len` zero bytes; nothing is stored.
    Zero { len: u64 },
    /// Bytes kept in the catalog itself (blobs no larger than `inline_max`).
    Inline { data: Bytes },
    /// `len` bytes of the chunks numbered `first .. first + count` (format v2, in packs),
    /// concatenated, starting `skip` bytes into them. The extent references (and counts a
    /// reference on) every chunk of the run, even one a slice no longer covers.
    Run {
        first: ChunkNo,
        count: u32,
        skip: u64,
        len: u64,
    },
}

impl Extent {
    pub fn len(&self) -> u64 {
        match self {
            Extent::Chunk { len, .. } => *len as u64,
            Extent::Zero { len } => *len,
            Extent::Inline { data } => data.len() as u64,
            Extent::Run { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sub-extent `[from, to)` of this extent (offsets relative to its start).
    pub fn slice(&self, from: u64, to: u64) -> Extent {
        debug_assert!(from <= to && to <= self.len());
        match self {
            Extent::Chunk { id, offset, .. } => Extent::Chunk {
                id: *id,
                offset: offset + from as u32,
                len: (to - from) as u32,
            },
            Extent::Zero { .. } => Extent::Zero { len: to - from },
            Extent::Inline { data } => Extent::Inline {
                data: data.slice(from as usize..to as usize),
            },
            Extent::Run {
                first, count, skip, ..
            } => Extent::Run {
                first: *first,
                count: *count,
                skip: skip + from,
                len: to - from,
            },
        }
    }

    pub fn chunk(&self) -> Option<ChunkId> {
        match self {
            Extent::Chunk { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// Appends `e` to `list`, merging it into a preceding zero run.
pub(crate) fn push_extent(list: &mut Vec<Extent>, e: Extent) {
    if e.is_empty() {
        return;
    }
    if let (Some(Extent::Zero { len: prev }), Extent::Zero { len }) = (list.last_mut(), &e) {
        *prev += len;
        return;
    }
    list.push(e);
}

const TAG_CHUNK: u8 = 1;
const TAG_ZERO: u8 = 2;
const TAG_INLINE: u8 = 3;
const TAG_RUN: u8 = 4;

pub(crate) fn encode_segment(extents: &[Extent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + extents.len() * 41);
    out.extend_from_slice(&(extents.len() as u32).to_le_bytes());
    for e in extents {
        match e {
            Extent::Chunk { id, offset, len } => {
                out.push(TAG_CHUNK);
                out.extend_from_slice(&id.0);
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
            }
            Extent::Zero { len } => {
                out.push(TAG_ZERO);
                out.extend_from_slice(&len.to_le_bytes());
            }
            Extent::Inline { data } => {
                out.push(TAG_INLINE);
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            Extent::Run {
                first,
                count,
                skip,
                len,
            } => {
                out.push(TAG_RUN);
                put_varint(&mut out, first.0);
                put_varint(&mut out, *count as u64);
                put_varint(&mut out, *skip);
                put_varint(&mut out, *len);
            }
        }
    }
    out
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(StoreError::Malformed("truncated manifest segment"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn varint(&mut self) -> Result<u64> {
        let mut r = Reader(self.0);
        let v = r
            .varint()
            .ok_or(StoreError::Malformed("bad varint in manifest segment"))?;
        self.0 = r.0;
        Ok(v)
    }
}

pub(crate) fn decode_segment(buf: &[u8]) -> Result<Vec<Extent>> {
    let mut c = Cursor(buf);
    let n = c.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(SEGMENT_EXTENTS * 4));
    for _ in 0..n {
        let tag = c.take(1)?[0];
        out.push(match tag {
            TAG_CHUNK => {
                let id = ChunkId(c.take(32)?.try_into().expect("32"));
                let offset = c.u32()?;
                let len = c.u32()?;
                Extent::Chunk { id, offset, len }
            }
            TAG_ZERO => Extent::Zero { len: c.u64()? },
            TAG_INLINE => {
                let len = c.u32()? as usize;
                Extent::Inline {
                    data: Bytes::copy_from_slice(c.take(len)?),
                }
            }
            TAG_RUN => {
                let first = ChunkNo(c.varint()?);
                let count =
                    u32::try_from(c.varint()?).map_err(|_| StoreError::Malformed("run length"))?;
                let skip = c.varint()?;
                let len = c.varint()?;
                if count == 0 || first.0.checked_add(count as u64).is_none() {
                    return Err(StoreError::Malformed("run of chunks"));
                }
                Extent::Run {
                    first,
                    count,
                    skip,
                    len,
                }
            }
            _ => return Err(StoreError::Malformed("unknown extent tag")),
        });
    }
    if !c.0.is_empty() {
        return Err(StoreError::Malformed("trailing bytes in manifest segment"));
    }
    Ok(out)
}

pub(crate) fn segment_key(blob: BlobId, start: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(&blob.0);
    k[16..].copy_from_slice(&start.to_be_bytes());
    k
}

pub(crate) fn parse_segment_key(key: &[u8]) -> Result<(BlobId, u64)> {
    if key.len() != 24 {
        return Err(StoreError::Malformed("manifest key length"));
    }
    Ok((
        BlobId(key[..16].try_into().expect("16")),
        u64::from_be_bytes(key[16..].try_into().expect("8")),
    ))
}

/// Splits an extent list into `(start offset, extents)` segments.
pub(crate) fn segments(extents: &[Extent]) -> Vec<(u64, &[Extent])> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for seg in extents.chunks(SEGMENT_EXTENTS) {
        out.push((start, seg));
        start += seg.iter().map(Extent::len).sum::<u64>();
    }
    out
}

/// The per-blob record: what a reader needs before the first byte (size) and what delete
/// and scrub need to walk the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub id: BlobId,
    pub size: u64,
    pub extents: u64,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

const BLOB_RECORD_VERSION: u8 = 1;

impl BlobInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(25);
        v.push(BLOB_RECORD_VERSION);
        v.extend_from_slice(&self.size.to_le_bytes());
        v.extend_from_slice(&self.extents.to_le_bytes());
        v.extend_from_slice(&self.created.to_le_bytes());
        v
    }

    pub(crate) fn decode(id: BlobId, buf: &[u8]) -> Result<BlobInfo> {
        if buf.len() != 25 || buf[0] != BLOB_RECORD_VERSION {
            return Err(StoreError::Malformed("blob record"));
        }
        let mut c = Cursor(&buf[1..]);
        Ok(BlobInfo {
            id,
            size: c.u64()?,
            extents: c.u64()?,
            created: c.u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_round_trip() {
        let list = vec![
            Extent::Chunk {
                id: ChunkId::of(b"a"),
                offset: 7,
                len: 100,
            },
            Extent::Zero { len: 1 << 40 },
            Extent::Inline {
                data: Bytes::from_static(b"tiny"),
            },
            Extent::Run {
                first: ChunkNo::new(1 << 40, 3),
                count: 64,
                skip: 5,
                len: 1 << 20,
            },
        ];
        let enc = encode_segment(&list);
        assert_eq!(decode_segment(&enc).unwrap(), list);
        assert!(decode_segment(&enc[..enc.len() - 1]).is_err());
    }

    #[test]
    fn zero_runs_merge_and_slices_are_relative() {
        let mut l = Vec::new();
        push_extent(&mut l, Extent::Zero { len: 5 });
        push_extent(&mut l, Extent::Zero { len: 6 });
        push_extent(&mut l, Extent::Inline { data: Bytes::new() });
        assert_eq!(l, vec![Extent::Zero { len: 11 }]);
        let c = Extent::Chunk {
            id: ChunkId::of(b"x"),
            offset: 10,
            len: 50,
        };
        assert_eq!(
            c.slice(5, 15),
            Extent::Chunk {
                id: ChunkId::of(b"x"),
                offset: 15,
                len: 10
            }
        );
    }

    #[test]
    fn segments_carry_start_offsets() {
        let list: Vec<Extent> = (0..600)
            .map(|_| Extent::Inline {
                data: Bytes::from_static(b"ab"),
            })
            .collect();
        let segs = segments(&list);
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[1].0, 2 * SEGMENT_EXTENTS as u64);
        assert_eq!(segs[2].1.len(), 600 - 2 * SEGMENT_EXTENTS);
    }
}
