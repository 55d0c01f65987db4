//! The pack files of every data directory (format v2): which packs exist and where, writers
//! lent to ingests, and positioned reads through a small cache of open descriptors.
//!
//! Each ingest borrows one writer for its whole duration and appends its new chunks to it in
//! stream order, so an image's chunks sit back to back and a later read coalesces them into
//! large I/Os. A writer returns to the idle list when the ingest ends and is retired once it
//! passes `target` bytes; concurrent ingests use different packs. Packs are placed on the data
//! directory with the most free space when they are created.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::error::{Result, StoreError};
use crate::pack::{self, PackWriter};

/// Open read descriptors kept (packs are tens of MiB, so this covers GiBs of hot data).
const READ_FDS: usize = 512;
/// Cluster mode: a local pack copy younger than this is never dropped (it may still be on
/// its way to the object store).
const KEEP_YOUNG: Duration = Duration::from_secs(60);

pub(crate) struct Packs {
    /// `<data dir>/packs` of each data directory.
    dirs: Vec<PathBuf>,
    /// Roll over to a new pack past this size.
    target: u64,
    idle: Mutex<Vec<PackWriter>>,
    /// Packs lent to an ingest right now (never compacted while lent).
    lent: Mutex<std::collections::HashSet<u64>>,
    /// Pack id → index into `dirs`.
    placed: Mutex<HashMap<u64, usize>>,
    read_fds: Mutex<HashMap<u64, Arc<File>>>,
    /// Cluster mode: the object store every pack is uploaded to before it is referenced.
    /// Local files are then the packs this node wrote or fetched, read in its stead.
    remote: Option<crate::remote::RemotePacks>,
    /// Cluster mode: bytes of local pack files, as last counted plus what was added since
    /// (an estimate that starts `evict_copies` once it passes the bound, which recounts).
    local_bytes: AtomicU64,
    evicting: AtomicBool,
}

/// A writer lent to one ingest. `new_entry` is set when the pack was created for it: its
/// directory must be fsynced before anything references the pack.
pub(crate) struct Lent {
    pub writer: PackWriter,
    pub new_entry: Option<PathBuf>,
}

impl Packs {
    /// Creates `packs/` in each data directory if needed and indexes the packs found.
    pub fn open(
        data_dirs: &[PathBuf],
        target: u64,
        remote: Option<crate::remote::RemotePacks>,
    ) -> Result<Packs> {
        let mut dirs = Vec::new();
        let mut placed = HashMap::new();
        for (i, root) in data_dirs.iter().enumerate() {
            let d = root.join("packs");
            if !d.is_dir() {
                std::fs::create_dir_all(&d).map_err(|e| StoreError::io(&d, e))?;
                crate::datadirs::fsync_dir(&d)?;
                crate::datadirs::fsync_dir(root)?;
            }
            for entry in std::fs::read_dir(&d).map_err(|e| StoreError::io(&d, e))? {
                let entry = entry.map_err(|e| StoreError::io(&d, e))?;
                if let Some(id) = entry.file_name().to_str().and_then(pack::parse_file_name) {
                    placed.insert(id, i);
                }
            }
            dirs.push(d);
        }
        let local_bytes = placed
            .iter()
            .filter_map(|(id, i)| std::fs::metadata(dirs[*i].join(pack::file_name(*id))).ok())
            .map(|m| m.len())
            .sum();
        Ok(Packs {
            dirs,
            target,
            idle: Mutex::new(Vec::new()),
            lent: Mutex::new(std::collections::HashSet::new()),
            placed: Mutex::new(placed),
            read_fds: Mutex::new(HashMap::new()),
            remote,
            local_bytes: AtomicU64::new(local_bytes),
            evicting: AtomicBool::new(false),
        })
    }

    /// Whether packs live in an object store (cluster mode).
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Makes what `w` holds durable before anything references it: the file's data (and,
    /// for a new pack, the directory entry `new_entry`), then in cluster mode the object.
    pub fn make_durable(&self, w: &mut PackWriter, new_entry: Option<&Path>) -> Result<()> {
        w.sync()?;
        if let Some(d) = new_entry {
            crate::datadirs::fsync_dir(d)?;
        }
        if let Some(remote) = &self.remote {
            let path = self.path(w.id).ok_or(StoreError::PackMissing(w.id))?;
            remote.upload(w.id, &path)?;
            self.added_local(w.len());
        }
        Ok(())
    }

    /// Cluster mode: `n` more bytes of local pack copies; past the bound, drops the oldest.
    fn added_local(&self, n: u64) {
        let Some(cap) = self.remote.as_ref().and_then(|r| r.local_cache_bytes) else {
            return;
        };
        let total = self.local_bytes.fetch_add(n, Ordering::AcqRel) + n;
        if total > cap && !self.evicting.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.evict_copies(cap) {
                tracing::warn!(error = %e, "dropping local pack copies failed; retried later");
            }
            self.evicting.store(false, Ordering::Release);
        }
    }

    /// Cluster mode: drops local pack copies, least recently written first, until they take
    /// at most 90 % of `cap` bytes. Only a copy the object store holds whole is dropped, never
    /// one lent to a writer or written in the last minute. Reads then go to the object store;
    /// a read holding the dropped file open finishes on it (an unlinked file stays readable).
    pub(crate) fn evict_copies(&self, cap: u64) -> Result<u64> {
        let Some(remote) = &self.remote else {
            return Ok(0);
        };
        let mut files: Vec<(SystemTime, u64, u64)> = Vec::new();
        for id in self.local_ids() {
            if let Some(m) = self.path(id).and_then(|p| std::fs::metadata(p).ok()) {
                files.push((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), id, m.len()));
            }
        }
        let mut total: u64 = files.iter().map(|f| f.2).sum();
        let goal = cap / 10 * 9;
        let young = SystemTime::now() - KEEP_YOUNG;
        files.sort_unstable();
        let mut dropped = 0;
        for (mtime, id, len) in files {
            if total <= goal {
                break;
            }
            if mtime > young || self.is_lent(id) || remote.size(id)? != Some(len) {
                continue;
            }
            let Some(path) = self.path(id) else { continue };
            // Forget it first: from here on reads of it go to the object store.
            self.placed.lock().expect("packs").remove(&id);
            self.read_fds.lock().expect("packs").remove(&id);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&path, e)),
            }
            total -= len;
            dropped += len;
        }
        self.local_bytes.store(total, Ordering::Release);
        if dropped > 0 {
            tracing::debug!(dropped, kept = total, "dropped local pack copies");
        }
        Ok(dropped)
    }

    /// Every pack's id and size: local files, and in cluster mode the object store's.
    pub fn sizes(&self) -> Result<Vec<(u64, u64)>> {
        let mut all: HashMap<u64, u64> = HashMap::new();
        for id in self.local_ids() {
            if let Some(m) = self.path(id).and_then(|p| std::fs::metadata(p).ok()) {
                all.insert(id, m.len());
            }
        }
        if let Some(remote) = &self.remote {
            all.extend(remote.list()?);
        }
        let mut v: Vec<(u64, u64)> = all.into_iter().collect();
        v.sort_unstable();
        Ok(v)
    }

    /// A local file holding pack `id`, fetched from the object store if this node has none
    /// (header scans by compaction and scrub).
    pub fn local_copy(&self, id: u64) -> Result<PathBuf> {
        if let Some(p) = self.path(id) {
            return Ok(p);
        }
        let remote = self.remote.as_ref().ok_or(StoreError::PackMissing(id))?;
        let dir = self.roomiest_dir();
        let tmp = crate::remote::download_temp(&self.dirs[dir], id);
        remote.download(id, &tmp)?;
        let path = self.dirs[dir].join(pack::file_name(id));
        std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
        self.placed.lock().expect("packs").insert(id, dir);
        if let Ok(m) = std::fs::metadata(&path) {
            self.added_local(m.len());
        }
        Ok(path)
    }

    /// Ids of every pack (scrub, compaction): local files, and in cluster mode the object
    /// store's.
    pub fn ids(&self) -> Result<Vec<u64>> {
        Ok(self.sizes()?.into_iter().map(|(id, _)| id).collect())
    }

    fn local_ids(&self) -> Vec<u64> {
        self.placed.lock().expect("packs").keys().copied().collect()
    }

    pub fn path(&self, id: u64) -> Option<PathBuf> {
        let i = *self.placed.lock().expect("packs").get(&id)?;
        Some(self.dirs[i].join(pack::file_name(id)))
    }

    /// A writer for one ingest: an idle pack with room, or a new one.
    pub fn lend(&self) -> Result<Lent> {
        if let Some(writer) = self.idle.lock().expect("packs").pop() {
            self.lent.lock().expect("packs").insert(writer.id);
            return Ok(Lent {
                writer,
                new_entry: None,
            });
        }
        self.lend_new()
    }

    /// A writer on a brand-new pack (compaction's output, which no ingest shares).
    pub fn lend_new(&self) -> Result<Lent> {
        let dir = self.roomiest_dir();
        loop {
            let id: u64 = rand::random();
            match PackWriter::create(&self.dirs[dir], id) {
                Ok(writer) => {
                    self.placed.lock().expect("packs").insert(id, dir);
                    self.lent.lock().expect("packs").insert(id);
                    return Ok(Lent {
                        writer,
                        new_entry: Some(self.dirs[dir].clone()),
                    });
                }
                // A random id already taken (never in practice): draw again.
                Err(StoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes a writer back after its ingest: kept for the next one while it has room.
    pub fn give_back(&self, writer: PackWriter) {
        self.lent.lock().expect("packs").remove(&writer.id);
        // An uploaded pack is an immutable object: nothing appends to it again.
        if writer.len() < self.target && self.remote.is_none() {
            self.idle.lock().expect("packs").push(writer);
        }
    }

    pub fn is_lent(&self, id: u64) -> bool {
        self.lent.lock().expect("packs").contains(&id)
    }

    /// Seals pack `id` for compaction: true when no ingest holds it (an idle writer is
    /// dropped, so nothing appends to it again); false while it is lent.
    pub fn seal(&self, id: u64) -> bool {
        // Lock order: idle, then lent (as in `lend`).
        let mut idle = self.idle.lock().expect("packs");
        if self.lent.lock().expect("packs").contains(&id) {
            return false;
        }
        idle.retain(|w| w.id != id);
        true
    }

    /// Seals a writer that will not be appended to again (compaction's output).
    pub fn retire(&self, writer: PackWriter) {
        self.lent.lock().expect("packs").remove(&writer.id);
    }

    fn roomiest_dir(&self) -> usize {
        if self.dirs.len() == 1 {
            return 0;
        }
        (0..self.dirs.len())
            .max_by_key(|&i| free_bytes(&self.dirs[i]).unwrap_or(0))
            .unwrap_or(0)
    }

    fn read_fd(&self, id: u64) -> Result<Arc<File>> {
        if let Some(f) = self.read_fds.lock().expect("packs").get(&id) {
            return Ok(f.clone());
        }
        let path = self.path(id).ok_or(StoreError::PackMissing(id))?;
        let f = Arc::new(File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::PackMissing(id),
            _ => StoreError::io(&path, e),
        })?);
        let mut fds = self.read_fds.lock().expect("packs");
        if fds.len() >= READ_FDS {
            // Any victim will do: a descriptor is cheap to reopen.
            if let Some(&victim) = fds.keys().next() {
                fds.remove(&victim);
            }
        }
        fds.insert(id, f.clone());
        Ok(f)
    }

    /// Reads `buf.len()` bytes of pack `id` at `offset`.
    pub fn read_exact_at(&self, id: u64, offset: u64, buf: &mut [u8]) -> Result<()> {
        if let Some(got) = self.read_remote(id, offset, buf.len())? {
            buf.copy_from_slice(&got);
            return Ok(());
        }
        let f = match self.read_fd(id) {
            Err(StoreError::PackMissing(_)) if self.remote.is_some() => {
                // Its local copy was dropped between the lookup and the open.
                buf.copy_from_slice(&self.read_from_store(id, offset, buf.len())?);
                return Ok(());
            }
            f => f?,
        };
        f.read_exact_at(buf, offset).map_err(|e| {
            let path = self.path(id).unwrap_or_default();
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::Malformed("pack shorter than its catalog records")
            } else {
                StoreError::io(path, e)
            }
        })
    }

    /// Reads one range of a pack into scattered buffers with one system call per
    /// `IOV_MAX` pieces (headers into scratch space, chunk data straight into its place).
    pub fn read_vectored_at(&self, id: u64, offset: u64, bufs: &mut [&mut [u8]]) -> Result<()> {
        use std::os::fd::AsRawFd;
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        if let Some(got) = self.read_remote(id, offset, want)? {
            scatter(&got, bufs);
            return Ok(());
        }
        let f = match self.read_fd(id) {
            Err(StoreError::PackMissing(_)) if self.remote.is_some() => {
                // Its local copy was dropped between the lookup and the open.
                scatter(&self.read_from_store(id, offset, want)?, bufs);
                return Ok(());
            }
            f => f?,
        };
        let all: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut done = 0usize;
        while done < want {
            let iov = pack::remaining_iovecs(&all, done);
            // SAFETY: every iovec points into a live, exclusively borrowed buffer of the
            // stated length; the kernel writes at most that many bytes into each.
            let r = unsafe {
                libc::preadv(
                    f.as_raw_fd(),
                    iov.as_ptr(),
                    iov.len() as libc::c_int,
                    (offset + done as u64) as libc::off_t,
                )
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(StoreError::io(self.path(id).unwrap_or_default(), e));
            }
            if r == 0 {
                return Err(StoreError::Malformed(
                    "pack shorter than its catalog records",
                ));
            }
            done += r as usize;
        }
        Ok(())
    }

    fn read_from_store(&self, id: u64, offset: u64, len: usize) -> Result<bytes::Bytes> {
        let remote = self.remote.as_ref().ok_or(StoreError::PackMissing(id))?;
        remote.read(id, offset, len)
    }

    /// In cluster mode, the bytes of a pack this node has no file of (one range GET).
    fn read_remote(&self, id: u64, offset: u64, len: usize) -> Result<Option<bytes::Bytes>> {
        match &self.remote {
            Some(remote) if self.path(id).is_none() => remote.read(id, offset, len).map(Some),
            _ => Ok(None),
        }
    }

    /// Removes pack `id` (after compaction moved what it held). Open descriptors stay valid
    /// for reads already under way.
    pub fn remove(&self, id: u64) -> Result<()> {
        if let Some(remote) = &self.remote {
            remote.delete(id)?;
        }
        let Some(path) = self.path(id) else {
            return Ok(());
        };
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(&path, e)),
        }
        self.placed.lock().expect("packs").remove(&id);
        self.read_fds.lock().expect("packs").remove(&id);
        Ok(())
    }
}

fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statvfs.
    (unsafe { libc::statvfs(c.as_ptr(), &mut s) } == 0)
        .then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

/// Copies `got` into `bufs`, in order (their lengths sum to its length).
fn scatter(got: &[u8], bufs: &mut [&mut [u8]]) {
    let mut at = 0;
    for b in bufs.iter_mut() {
        b.copy_from_slice(&got[at..at + b.len()]);
        at += b.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{encode, Codec, RECORD_HEADER};
    use bytes::Bytes;

    #[test]
    fn lend_append_read_back_vectored() {
        let root = tempfile::tempdir().unwrap();
        let packs = Packs::open(&[root.path().to_path_buf()], 1 << 20, None).unwrap();
        let mut lent = packs.lend().unwrap();
        assert!(lent.new_entry.is_some());
        let a = encode(Bytes::from(vec![7u8; 8192]), Codec::Raw);
        let b = encode(Bytes::from(vec![9u8; 4096]), Codec::Raw);
        let offs = lent.writer.append(&[&a, &b]).unwrap();
        lent.writer.sync().unwrap();
        let id = lent.writer.id;
        packs.give_back(lent.writer);
        // The idle writer is lent again, no new file.
        let again = packs.lend().unwrap();
        assert!(again.new_entry.is_none());
        assert_eq!(again.writer.id, id);
        // Headers into scratch, data contiguous.
        let mut out = vec![0u8; 8192 + 4096];
        let (da, db) = out.split_at_mut(8192);
        let mut h1 = [0u8; RECORD_HEADER];
        let mut h2 = [0u8; RECORD_HEADER];
        packs
            .read_vectored_at(id, offs[0], &mut [&mut h1, da, &mut h2, db])
            .unwrap();
        assert!(out[..8192].iter().all(|&x| x == 7) && out[8192..].iter().all(|&x| x == 9));
        assert_eq!(pack::RecordHeader::decode(&h2), Some(b.header));
        // Reopened: the pack is found on disk.
        let reopened = Packs::open(&[root.path().to_path_buf()], 1 << 20, None).unwrap();
        assert_eq!(reopened.ids().unwrap(), vec![id]);
        reopened.remove(id).unwrap();
        assert!(reopened.ids().unwrap().is_empty());
        assert!(matches!(
            reopened.read_exact_at(id, 0, &mut [0u8; 4]),
            Err(StoreError::PackMissing(_))
        ));
    }
}
