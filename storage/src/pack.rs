//! Pack files (engine format v2): chunks of ~16 KiB appended to large files instead of one
//! file per chunk. A pack is written once, front to back, by one writer at a time, made
//! durable with one `fdatasync` before any catalog commit references it, and never modified
//! afterwards: compaction copies the live records of a pack into a new one and deletes the
//! old file (see storage/README.md, "Format v2").
//!
//! ```text
//! pack   = header record*
//! header = "GLP\x02" (4) ‖ pack id (u64 LE) ‖ reserved (u32, 0)                   16 bytes
//! record = "GCK\x02" (4) ‖ codec (u8) ‖ reserved (3) ‖ raw length (u32 LE)
//!          ‖ stored length (u32 LE) ‖ CRC32C of the stored bytes (u32 LE)
//!          ‖ BLAKE3-256 of the raw bytes (32) ‖ CRC32C of the 52 bytes before (u32 LE)
//!          ‖ stored bytes                                                     56 + stored
//! ```
//!
//! The catalog holds everything a read needs (pack, offset, lengths, CRC), so reads never
//! parse headers; the headers make a pack self-describing: scrub verifies every record's
//! BLAKE3 name without the catalog, a dedup hit is confirmed against the full 256-bit name
//! (the catalog's dedup index keys only 64 bits of it), and a lost catalog could be rebuilt.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::ids::ChunkId;

pub(crate) const PACK_MAGIC: [u8; 4] = *b"GLP\x02";
pub(crate) const RECORD_MAGIC: [u8; 4] = *b"GCK\x02";
pub(crate) const PACK_HEADER: usize = 16;
pub(crate) const RECORD_HEADER: usize = 56;

/// How a chunk's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    Raw = 0,
    Lz4 = 1,
}

impl Codec {
    pub(crate) fn from_u8(b: u8) -> Option<Codec> {
        match b {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Lz4),
            _ => None,
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Codec, String> {
        match s.trim() {
            "lz4" => Ok(Codec::Lz4),
            "none" | "raw" => Ok(Codec::Raw),
            other => Err(format!("chunk_codec must be lz4 or none, not {other:?}")),
        }
    }
}

/// What a record header says about its chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub codec: Codec,
    pub raw_len: u32,
    pub stored_len: u32,
    pub crc: u32,
    pub name: ChunkId,
}

impl RecordHeader {
    pub fn encode(&self) -> [u8; RECORD_HEADER] {
        let mut h = [0u8; RECORD_HEADER];
        h[..4].copy_from_slice(&RECORD_MAGIC);
        h[4] = self.codec as u8;
        h[8..12].copy_from_slice(&self.raw_len.to_le_bytes());
        h[12..16].copy_from_slice(&self.stored_len.to_le_bytes());
        h[16..20].copy_from_slice(&self.crc.to_le_bytes());
        h[20..52].copy_from_slice(&self.name.0);
        let own = crc32c::crc32c(&h[..52]);
        h[52..].copy_from_slice(&own.to_le_bytes());
        h
    }

    /// `None` when the bytes are not an intact record header.
    pub fn decode(h: &[u8]) -> Option<RecordHeader> {
        if h.len() < RECORD_HEADER || h[..4] != RECORD_MAGIC || h[5..8] != [0, 0, 0] {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4"));
        if crc32c::crc32c(&h[..52]) != u32_at(52) {
            return None;
        }
        Some(RecordHeader {
            codec: Codec::from_u8(h[4])?,
            raw_len: u32_at(8),
            stored_len: u32_at(12),
            crc: u32_at(16),
            name: ChunkId(h[20..52].try_into().expect("32")),
        })
    }
}

/// A chunk prepared for a pack: its name, and the bytes to store (compressed when that pays).
pub(crate) struct Encoded {
    pub header: RecordHeader,
    pub stored: bytes::Bytes,
}

/// Compressing must save at least this fraction (1/8) of a chunk, or the chunk stays raw:
/// decoding costs on every read, and small savings do not pay for it.
const MIN_SAVING_SHIFT: u32 = 3;

/// Names a chunk and encodes it with `codec` (or raw, if compression does not pay).
pub(crate) fn encode(raw: bytes::Bytes, codec: Codec) -> Encoded {
    let name = ChunkId::of(&raw);
    encode_named(raw, name, codec)
}

/// [`encode`] for a chunk already named.
pub(crate) fn encode_named(raw: bytes::Bytes, name: ChunkId, codec: Codec) -> Encoded {
    let raw_len = raw.len() as u32;
    let (codec, stored) = match codec {
        Codec::Raw => (Codec::Raw, raw),
        Codec::Lz4 => {
            let packed = lz4_flex::block::compress(&raw);
            if (packed.len() as u64) < raw.len() as u64 - (raw.len() as u64 >> MIN_SAVING_SHIFT) {
                (Codec::Lz4, bytes::Bytes::from(packed))
            } else {
                (Codec::Raw, raw)
            }
        }
    };
    Encoded {
        header: RecordHeader {
            codec,
            raw_len,
            stored_len: stored.len() as u32,
            crc: crc32c::crc32c(&stored),
            name,
        },
        stored,
    }
}

/// Decodes a record's stored bytes (already CRC-checked) back to the chunk.
pub(crate) fn decode(codec: Codec, stored: &[u8], raw_len: u32) -> Result<Vec<u8>> {
    match codec {
        Codec::Raw => Ok(stored.to_vec()),
        Codec::Lz4 => {
            let out = lz4_flex::block::decompress(stored, raw_len as usize)
                .map_err(|_| StoreError::Malformed("lz4 chunk does not decode"))?;
            if out.len() != raw_len as usize {
                return Err(StoreError::Malformed(
                    "lz4 chunk decodes to the wrong length",
                ));
            }
            Ok(out)
        }
    }
}

pub(crate) fn pack_header(id: u64) -> [u8; PACK_HEADER] {
    let mut h = [0u8; PACK_HEADER];
    h[..4].copy_from_slice(&PACK_MAGIC);
    h[4..12].copy_from_slice(&id.to_le_bytes());
    h
}

/// The file name of pack `id` within a data directory's `packs/` (hex, so `ls` sorts them
/// and tools can name them).
pub(crate) fn file_name(id: u64) -> String {
    format!("{id:016x}.pack")
}

pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".pack")?;
    (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
}

/// One record found by [`scan`]: where it starts and what its header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScannedRecord {
    pub offset: u64,
    pub header: RecordHeader,
}

/// Walks a pack file's records front to back (scrub, recovery, migration checks). Stops at
/// the first byte that is not an intact record header: a torn tail left by a crash before
/// the pack was made durable (nothing committed can point there). Returns the records and
/// where the intact part ends.
pub(crate) fn scan(file: &File, path: &Path) -> Result<(Vec<ScannedRecord>, u64)> {
    let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
    let mut head = [0u8; PACK_HEADER];
    if len < PACK_HEADER as u64 {
        return Ok((Vec::new(), 0));
    }
    file.read_exact_at(&mut head, 0)
        .map_err(|e| StoreError::io(path, e))?;
    if head[..4] != PACK_MAGIC {
        return Err(StoreError::Malformed("not a pack file"));
    }
    let mut out = Vec::new();
    let mut pos = PACK_HEADER as u64;
    let mut h = [0u8; RECORD_HEADER];
    while pos + RECORD_HEADER as u64 <= len {
        file.read_exact_at(&mut h, pos)
            .map_err(|e| StoreError::io(path, e))?;
        let Some(header) = RecordHeader::decode(&h) else {
            break;
        };
        let end = pos + RECORD_HEADER as u64 + header.stored_len as u64;
        if end > len {
            break;
        }
        out.push(ScannedRecord {
            offset: pos,
            header,
        });
        pos = end;
    }
    Ok((out, pos))
}

/// Appends records to a new pack file. Not thread-safe by itself: the pack pool hands each
/// writer to one ingest at a time.
pub(crate) struct PackWriter {
    pub id: u64,
    pub path: PathBuf,
    file: File,
    len: u64,
    /// Bytes appended since the last `sync`.
    unsynced: bool,
    /// Where writeback was last started (see `append`).
    flushed_to: u64,
}

/// Appended bytes after which writeback is started in the background.
const FLUSH_AHEAD: u64 = 4 << 20;

impl PackWriter {
    /// Creates `<dir>/<id>.pack` (fails if it exists) with its header.
    pub fn create(dir: &Path, id: u64) -> Result<PackWriter> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(file_name(id));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o640)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        file.write_all_at(&pack_header(id), 0)
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(PackWriter {
            id,
            path,
            file,
            len: PACK_HEADER as u64,
            unsynced: true,
            flushed_to: 0,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Appends records in order with one write; returns the offset of each.
    pub fn append(&mut self, records: &[&Encoded]) -> Result<Vec<u64>> {
        // Headers and chunk bytes go out as one vectored write, without copying the chunks.
        let headers: Vec<[u8; RECORD_HEADER]> = records.iter().map(|r| r.header.encode()).collect();
        let mut offsets = Vec::with_capacity(records.len());
        let mut parts: Vec<&[u8]> = Vec::with_capacity(2 * records.len());
        let mut at = self.len;
        for (h, r) in headers.iter().zip(records) {
            offsets.push(at);
            at += (RECORD_HEADER + r.stored.len()) as u64;
            parts.push(h);
            parts.push(&r.stored);
        }
        if let Err(e) = write_all_vectored_at(&self.file, &parts, self.len) {
            // Whatever part landed is an unreferenced tail; later appends go after it only
            // if the length is known, so this writer is retired by the caller.
            return Err(StoreError::io(&self.path, e));
        }
        self.len = at;
        self.unsynced = true;
        if self.len - self.flushed_to >= FLUSH_AHEAD {
            // Start writeback of what is appended so far without waiting for it, so the
            // `fdatasync` before the commit finds little left to write (one sync per 32 MiB
            // pack otherwise stalls the ingest at the end instead of overlapping it).
            // SAFETY: a plain syscall on an open descriptor; failure only loses the hint.
            unsafe {
                use std::os::fd::AsRawFd;
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.flushed_to as libc::off64_t,
                    (self.len - self.flushed_to) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.flushed_to = self.len;
        }
        Ok(offsets)
    }

    /// Appends whole records copied from another pack (compaction); returns where they
    /// start.
    pub fn append_raw(&mut self, records: &[u8]) -> Result<u64> {
        let at = self.len;
        self.file
            .write_all_at(records, at)
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.len += records.len() as u64;
        self.unsynced = true;
        Ok(at)
    }

    /// Makes everything appended so far durable (data and, the first time, the file's size
    /// and directory entry: the caller fsyncs `packs/` once for a new pack).
    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.file
                .sync_data()
                .map_err(|e| StoreError::io(&self.path, e))?;
            self.unsynced = false;
        }
        Ok(())
    }
}

/// The iovecs for what remains of `all` once `done` bytes went through, at most `IOV_MAX`
/// of them: positioned vectored I/O resumes after a short transfer from here.
pub(crate) fn remaining_iovecs(all: &[libc::iovec], done: usize) -> Vec<libc::iovec> {
    let mut skip = done;
    let mut out = Vec::with_capacity(all.len().min(1024));
    for v in all {
        if out.len() == 1024 {
            break;
        }
        if skip >= v.iov_len {
            skip -= v.iov_len;
            continue;
        }
        out.push(libc::iovec {
            // SAFETY: `skip < iov_len`, so the pointer stays inside the same buffer.
            iov_base: unsafe { v.iov_base.cast::<u8>().add(skip) }.cast(),
            iov_len: v.iov_len - skip,
        });
        skip = 0;
    }
    out
}

/// `pwritev` until every byte of `parts` is written at `offset` (short writes resumed).
fn write_all_vectored_at(file: &File, parts: &[&[u8]], offset: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let all: Vec<libc::iovec> = parts
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut done = 0usize;
    while done < total {
        let iov = remaining_iovecs(&all, done);
        // SAFETY: every iovec points into a live buffer of the stated length, only read.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                (offset + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        done += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn text(n: usize) -> Bytes {
        Bytes::from(
            (0..n)
                .map(|i| b"the quick brown fox "[i % 20])
                .collect::<Vec<u8>>(),
        )
    }

    fn noise(n: usize) -> Bytes {
        Bytes::from((0..n).map(|_| rand::random::<u8>()).collect::<Vec<u8>>())
    }

    #[test]
    fn headers_round_trip_and_detect_damage() {
        let e = encode(text(16384), Codec::Lz4);
        let h = e.header.encode();
        assert_eq!(RecordHeader::decode(&h), Some(e.header));
        for i in 0..RECORD_HEADER {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert_eq!(RecordHeader::decode(&bad), None, "byte {i}");
        }
    }

    #[test]
    fn compression_only_when_it_pays() {
        let t = encode(text(16384), Codec::Lz4);
        assert_eq!(t.header.codec, Codec::Lz4);
        assert!(t.stored.len() < 2000);
        assert_eq!(
            decode(t.header.codec, &t.stored, t.header.raw_len).unwrap(),
            text(16384).to_vec()
        );
        let n = encode(noise(16384), Codec::Lz4);
        assert_eq!(n.header.codec, Codec::Raw);
        assert_eq!(n.stored.len(), 16384);
        let r = encode(text(8192), Codec::Raw);
        assert_eq!((r.header.codec, r.stored.len()), (Codec::Raw, 8192));
        assert!(decode(Codec::Lz4, &[0xff; 10], 100).is_err());
    }

    #[test]
    fn written_records_scan_back_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = PackWriter::create(dir.path(), 7).unwrap();
        let recs: Vec<Encoded> = (0..5)
            .map(|i| {
                encode(
                    if i % 2 == 0 {
                        text(4096 * (i + 1))
                    } else {
                        noise(4096)
                    },
                    Codec::Lz4,
                )
            })
            .collect();
        let offs = w.append(&recs.iter().collect::<Vec<_>>()).unwrap();
        w.sync().unwrap();
        assert!(PackWriter::create(dir.path(), 7).is_err(), "never reused");
        let path = dir.path().join(file_name(7));
        let f = File::open(&path).unwrap();
        let (found, end) = scan(&f, &path).unwrap();
        assert_eq!(end, w.len());
        assert_eq!(found.iter().map(|r| r.offset).collect::<Vec<_>>(), offs);
        for (s, r) in found.iter().zip(&recs) {
            assert_eq!(s.header, r.header);
        }
        // A crash mid-append: half a record at the end.
        let half = encode(noise(8192), Codec::Raw);
        let mut torn = half.header.encode().to_vec();
        torn.extend_from_slice(&half.stored[..100]);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        f.write_all_at(&torn, end).unwrap();
        let (found, intact) = scan(&f, &path).unwrap();
        assert_eq!((found.len(), intact), (5, end));
    }

    #[test]
    fn file_names() {
        assert_eq!(parse_file_name(&file_name(0xabc)), Some(0xabc));
        assert_eq!(parse_file_name("0000000000000abc.tmp"), None);
        assert_eq!(parse_file_name("abc.pack"), None);
    }
}
