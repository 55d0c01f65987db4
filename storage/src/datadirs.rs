//! Chunk files on local disks: one data directory per disk, chunks placed by rendezvous hashing
//! of their id over the directories (adding a disk moves only its share of new placements; a
//! chunk not found where it is placed is looked for in the others).
//!
//! Layout of each directory:
//!   GLINT-DATADIR     marker holding the directory's id (a missing marker on a directory the
//!                     catalog knows means an unmounted or wrong disk: refuse to start)
//!   chunks/ab/<hex>   a chunk, named by the BLAKE3 hash of its data; `ab` = first hex byte
//!                     (256 subdirs). File = header ‖ data, header = b"GLC\x01", block count
//!                     (u32 LE), data length (u64 LE), then one CRC32C (u32 LE) per 64 KiB
//!                     block of data. Reads verify the CRCs of just the blocks they return
//!                     (a 64 KiB range read touches 64 KiB, not the whole chunk); scrub checks
//!                     the BLAKE3 name too.
//!   tmp/              chunks being written; renamed into chunks/ once complete and fsynced

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::error::{Result, StoreError};
use crate::ids::ChunkId;

pub(crate) const MARKER: &str = "GLINT-DATADIR";

/// Granularity of read verification.
pub(crate) const BLOCK: usize = 64 << 10;
const MAGIC: [u8; 4] = *b"GLC\x01";
const FIXED_HEADER: usize = 16;

fn blocks_for(len: usize) -> usize {
    len.div_ceil(BLOCK)
}

fn chunk_header(data: &[u8]) -> Vec<u8> {
    let n = blocks_for(data.len());
    let mut h = Vec::with_capacity(FIXED_HEADER + 4 * n);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&(n as u32).to_le_bytes());
    h.extend_from_slice(&(data.len() as u64).to_le_bytes());
    for block in data.chunks(BLOCK) {
        h.extend_from_slice(&crc32c::crc32c(block).to_le_bytes());
    }
    h
}

pub(crate) struct DataDir {
    pub root: PathBuf,
    pub id: u64,
}

pub(crate) struct DataDirs {
    dirs: Vec<DataDir>,
}

/// A directory's state before the store decides what to do with it.
pub(crate) enum Probe {
    Initialized(u64),
    Empty,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Checks that `root` exists, is a directory and is writable; reads its marker if any.
pub(crate) fn probe(root: &Path) -> Result<Probe> {
    let err = |reason: String| StoreError::DataDir {
        path: root.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(root).map_err(|e| err(format!("cannot be used: {e}")))?;
    if !meta.is_dir() {
        return Err(err("is not a directory".into()));
    }
    let tmp = root.join("tmp");
    fs::create_dir_all(&tmp).map_err(|e| err(format!("is not writable: {e}")))?;
    let probe = tmp.join(format!(".probe-{}", rand::random::<u64>()));
    File::create(&probe)
        .and_then(|_| fs::remove_file(&probe))
        .map_err(|e| err(format!("is not writable: {e}")))?;
    match fs::read_to_string(root.join(MARKER)) {
        Ok(s) => u64::from_str_radix(s.trim(), 16)
            .map(Probe::Initialized)
            .map_err(|_| err(format!("{MARKER} is malformed"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Probe::Empty),
        Err(e) => Err(err(format!("cannot read {MARKER}: {e}"))),
    }
}

/// Makes `root` a data directory: subdirectories, then the marker, all fsynced.
pub(crate) fn initialize(root: &Path) -> Result<u64> {
    let id: u64 = rand::random();
    let chunks = root.join("chunks");
    for b in 0..=255u8 {
        let d = chunks.join(format!("{b:02x}"));
        fs::create_dir_all(&d).map_err(|e| StoreError::io(&d, e))?;
    }
    for d in (0..=255u8).map(|b| chunks.join(format!("{b:02x}"))) {
        fsync_dir(&d)?;
    }
    fsync_dir(&chunks)?;
    let marker = root.join(MARKER);
    write_file_durably(
        &root.join("tmp").join(MARKER),
        format!("{id:016x}\n").as_bytes(),
    )?;
    fs::rename(root.join("tmp").join(MARKER), &marker).map_err(|e| StoreError::io(&marker, e))?;
    fsync_dir(root)?;
    Ok(id)
}

pub(crate) fn fsync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io(path, e))
}

fn write_file_durably(path: &Path, data: &[u8]) -> Result<()> {
    write_parts_durably(path, &[data])
}

fn write_parts_durably(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    for part in parts {
        f.write_all(part).map_err(|e| StoreError::io(path, e))?;
    }
    f.sync_data().map_err(|e| StoreError::io(path, e))
}

impl DataDirs {
    pub fn new(dirs: Vec<DataDir>) -> DataDirs {
        DataDirs { dirs }
    }

    fn placed(&self, id: &ChunkId) -> &DataDir {
        let key = id.prefix_u64();
        self.dirs
            .iter()
            .max_by_key(|d| splitmix64(key ^ d.id))
            .expect("at least one data directory")
    }

    fn path_in(dir: &DataDir, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        dir.root.join("chunks").join(&hex[..2]).join(hex)
    }

    /// Where `id` is stored, if it is.
    pub fn find(&self, id: &ChunkId) -> Option<PathBuf> {
        let first = self.placed(id);
        std::iter::once(first)
            .chain(self.dirs.iter().filter(|d| d.id != first.id))
            .map(|d| Self::path_in(d, id))
            .find(|p| p.exists())
    }

    /// Writes a chunk durably unless a sound copy is already stored. Returns the directory
    /// whose entry changed (to be fsynced before anything references the chunk), or `None`
    /// on dedup.
    ///
    /// A file found under the chunk's name is reused only if it holds exactly what this write
    /// would have written (header with every block CRC, and every data byte: see
    /// [`Self::holds`]); a damaged one is replaced atomically by the bytes in hand, so any
    /// write of the same content heals it.
    pub fn write_chunk(&self, id: &ChunkId, data: &[u8]) -> Result<Option<PathBuf>> {
        let header = chunk_header(data);
        let final_path = match self.find(id) {
            Some(existing) => {
                if Self::holds(&existing, &header, data)? {
                    return Ok(None);
                }
                tracing::warn!(chunk = %id.to_hex(), path = %existing.display(),
                    "stored chunk is damaged; replacing it with the bytes being written");
                existing
            }
            None => Self::path_in(self.placed(id), id),
        };
        // The temporary file lives on the same disk as the final name (rename is atomic
        // only within one file system): <root>/chunks/ab/<hex> → <root>/tmp.
        let root = final_path
            .ancestors()
            .nth(3)
            .ok_or_else(|| StoreError::Config(format!("odd chunk path {final_path:?}")))?;
        let tmp =
            root.join("tmp")
                .join(format!("{}.{:08x}.tmp", id.to_hex(), rand::random::<u32>()));
        let written = write_parts_durably(&tmp, &[&header, data]).and_then(|_| {
            fs::rename(&tmp, &final_path).map_err(|e| StoreError::io(&final_path, e))
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(final_path.parent().map(Path::to_path_buf))
    }

    /// Whether the file at `path` is exactly `header ‖ data`: its length, then header and
    /// data compared block by block (64 KiB reads, stopping at the first difference). This
    /// is stronger than checking the stored CRCs (it catches a damaged byte whose block CRC
    /// was damaged to match, and a header rewritten for other data) and costs the same read;
    /// a read error counts as damage (the replacement is then written over it).
    fn holds(path: &Path, header: &[u8], data: &[u8]) -> Result<bool> {
        let file = match File::open(path) {
            Ok(f) => f,
            // Moved or removed since `find`: write it afresh.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        let expected_len = (header.len() + data.len()) as u64;
        match file.metadata() {
            Ok(m) if m.len() == expected_len => {}
            Ok(_) => return Ok(false),
            Err(e) => return Err(StoreError::io(path, e)),
        }
        let mut buf = vec![0u8; BLOCK.max(header.len())];
        let mut at = 0u64;
        for want in std::iter::once(header).chain(data.chunks(BLOCK)) {
            let got = &mut buf[..want.len()];
            if file.read_exact_at(got, at).is_err() || got != want {
                return Ok(false);
            }
            at += want.len() as u64;
        }
        Ok(true)
    }

    /// Opens a stored chunk for reading.
    pub fn open_chunk(&self, id: &ChunkId) -> Result<(File, PathBuf)> {
        let path = self.find(id).ok_or(StoreError::ChunkMissing(*id))?;
        match File::open(&path) {
            Ok(f) => Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::ChunkMissing(*id)),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Reads bytes `[from, to)` of a chunk's data, verifying the CRC32C of every 64 KiB
    /// block it touches (and, with `full_hash`, the BLAKE3 name over the whole chunk).
    pub fn read_range(
        file: &File,
        path: &Path,
        id: &ChunkId,
        from: usize,
        to: usize,
        full_hash: bool,
    ) -> Result<Bytes> {
        let corrupt = || StoreError::Corrupt {
            chunk: *id,
            path: path.to_path_buf(),
        };
        let read_at = |buf: &mut [u8], at: u64| -> Result<()> {
            file.read_exact_at(buf, at).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => corrupt(),
                _ => StoreError::io(path, e),
            })
        };
        let mut fixed = [0u8; FIXED_HEADER];
        read_at(&mut fixed, 0)?;
        let n = u32::from_le_bytes(fixed[4..8].try_into().expect("4")) as usize;
        let len = u64::from_le_bytes(fixed[8..16].try_into().expect("8")) as usize;
        if fixed[..4] != MAGIC || n != blocks_for(len) || to > len || from > to {
            return Err(corrupt());
        }
        let data_at = FIXED_HEADER + 4 * n;
        let (b0, b1) = if full_hash {
            (0, n)
        } else {
            (from / BLOCK, to.div_ceil(BLOCK))
        };
        let mut crcs = vec![0u8; 4 * (b1 - b0)];
        read_at(&mut crcs, (FIXED_HEADER + 4 * b0) as u64)?;
        let start = b0 * BLOCK;
        let end = (b1 * BLOCK).min(len);
        let mut buf = crate::bufpool::take(end - start);
        read_at(&mut buf, (data_at + start) as u64)?;
        for (block, crc) in buf.chunks(BLOCK).zip(crcs.chunks_exact(4)) {
            if crc32c::crc32c(block) != u32::from_le_bytes(crc.try_into().expect("4")) {
                return Err(corrupt());
            }
        }
        if full_hash && ChunkId::of(&buf) != *id {
            return Err(corrupt());
        }
        Ok(crate::bufpool::freeze(buf).slice(from - start..to - start))
    }

    /// Reads and fully verifies a whole chunk (CRCs and BLAKE3 name): scrub's check.
    pub fn verify_file(path: &Path, id: &ChunkId) -> Result<u64> {
        let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        let mut fixed = [0u8; FIXED_HEADER];
        file.read_exact_at(&mut fixed, 0)
            .map_err(|_| StoreError::Corrupt {
                chunk: *id,
                path: path.to_path_buf(),
            })?;
        let len = u64::from_le_bytes(fixed[8..16].try_into().expect("8")) as usize;
        let n = blocks_for(len);
        let file_len = file.metadata().map_err(|e| StoreError::io(path, e))?.len() as usize;
        if file_len != FIXED_HEADER + 4 * n + len {
            return Err(StoreError::Corrupt {
                chunk: *id,
                path: path.to_path_buf(),
            });
        }
        Self::read_range(&file, path, id, 0, len, true).map(|b| b.len() as u64)
    }

    /// Removes a chunk from whichever directory holds it. Missing is not an error.
    pub fn remove_chunk(&self, id: &ChunkId) -> Result<()> {
        for d in &self.dirs {
            let p = Self::path_in(d, id);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&p, e)),
            }
        }
        Ok(())
    }

    /// Every chunk file: (id, path, modification time). Files whose names are not chunk ids
    /// are skipped (and reported by scrub through `stray`).
    pub fn list_chunks(
        &self,
        mut f: impl FnMut(ChunkId, PathBuf, SystemTime),
    ) -> Result<Vec<PathBuf>> {
        let mut stray = Vec::new();
        for d in &self.dirs {
            let chunks = d.root.join("chunks");
            for b in 0..=255u8 {
                let sub = chunks.join(format!("{b:02x}"));
                let entries = match fs::read_dir(&sub) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io(&sub, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| StoreError::io(&sub, e))?;
                    let path = entry.path();
                    let name = entry.file_name();
                    match name.to_str().and_then(ChunkId::from_hex) {
                        Some(id) => {
                            let mtime = entry
                                .metadata()
                                .and_then(|m| m.modified())
                                .unwrap_or(SystemTime::UNIX_EPOCH);
                            f(id, path, mtime)
                        }
                        None => stray.push(path),
                    }
                }
            }
        }
        Ok(stray)
    }

    /// Deletes temporary files left by interrupted writes; with `older_than`, only those not
    /// touched for that long (a concurrent writer's file is young).
    pub fn clean_tmp(&self, older_than: Option<Duration>) -> Result<usize> {
        let mut removed = 0;
        let now = SystemTime::now();
        for d in &self.dirs {
            let tmp = d.root.join("tmp");
            let entries = fs::read_dir(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
            for entry in entries.flatten() {
                let old_enough = match older_than {
                    None => true,
                    Some(grace) => entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .map(|t| now.duration_since(t).unwrap_or_default() >= grace)
                        .unwrap_or(false),
                };
                if old_enough && fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}
