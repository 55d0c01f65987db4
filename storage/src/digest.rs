//! Whole-blob digests computed in the same pass as chunking: MD5 (S3 ETag, Glance `checksum`),
//! SHA-512 (Glance `os_hash_value`) and the S3 `x-amz-checksum-*` family.
//!
//! Digests are grouped so that each expensive one gets its own blocking thread during ingest
//! (see `write.rs`): MD5 with the cheap CRCs, SHA-512 alone, SHA-1 with SHA-256.

use md5::Digest as _;

/// Which digests a write should compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigestSet(u8);

impl DigestSet {
    pub const NONE: DigestSet = DigestSet(0);
    pub const MD5: DigestSet = DigestSet(1);
    pub const SHA1: DigestSet = DigestSet(1 << 1);
    pub const SHA256: DigestSet = DigestSet(1 << 2);
    pub const SHA512: DigestSet = DigestSet(1 << 3);
    pub const CRC32: DigestSet = DigestSet(1 << 4);
    pub const CRC32C: DigestSet = DigestSet(1 << 5);
    pub const CRC64NVME: DigestSet = DigestSet(1 << 6);
    pub const ALL: DigestSet = DigestSet(0x7f);

    pub fn contains(self, other: DigestSet) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Splits the set into groups that each deserve one thread.
    pub(crate) fn thread_groups(self) -> Vec<DigestSet> {
        let cheap = DigestSet(self.0 & (Self::CRC32.0 | Self::CRC32C.0 | Self::CRC64NVME.0));
        let groups = [
            DigestSet(self.0 & Self::MD5.0) | cheap,
            DigestSet(self.0 & Self::SHA512.0),
            DigestSet(self.0 & (Self::SHA1.0 | Self::SHA256.0)),
        ];
        groups.into_iter().filter(|g| !g.is_empty()).collect()
    }
}

impl std::ops::BitOr for DigestSet {
    type Output = DigestSet;
    fn bitor(self, rhs: DigestSet) -> DigestSet {
        DigestSet(self.0 | rhs.0)
    }
}

/// Digest values; a field is `Some` exactly when it was asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digests {
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
    pub sha256: Option<[u8; 32]>,
    pub sha512: Option<[u8; 64]>,
    pub crc32: Option<u32>,
    pub crc32c: Option<u32>,
    pub crc64nvme: Option<u64>,
}

impl Digests {
    /// Takes the fields of `other` that are set.
    pub(crate) fn merge(&mut self, other: Digests) {
        self.md5 = self.md5.or(other.md5);
        self.sha1 = self.sha1.or(other.sha1);
        self.sha256 = self.sha256.or(other.sha256);
        self.sha512 = self.sha512.or(other.sha512);
        self.crc32 = self.crc32.or(other.crc32);
        self.crc32c = self.crc32c.or(other.crc32c);
        self.crc64nvme = self.crc64nvme.or(other.crc64nvme);
    }
}

/// Incremental computation of a `DigestSet`.
/// Starts one blocking thread per digest group of `set`, each hashing what its queue
/// delivers, in order, until the queue is closed. Returns the queues (each holding up to
/// `depth` buffers) and the threads, which return their digests.
pub(crate) fn spawn_threads(
    set: DigestSet,
    depth: usize,
) -> (
    Vec<tokio::sync::mpsc::Sender<bytes::Bytes>>,
    Vec<tokio::task::JoinHandle<Digests>>,
) {
    let mut queues = Vec::new();
    let mut threads = Vec::new();
    for group in set.thread_groups() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(depth);
        threads.push(tokio::task::spawn_blocking(move || {
            let mut h = Hasher::new(group);
            while let Some(b) = rx.blocking_recv() {
                h.update(&b);
            }
            h.finish()
        }));
        queues.push(tx);
    }
    (queues, threads)
}

pub struct Hasher {
    md5: Option<md5::Md5>,
    sha1: Option<sha1::Sha1>,
    sha256: Option<sha2::Sha256>,
    sha512: Option<openssl::sha::Sha512>,
    crc32: Option<crc32fast::Hasher>,
    crc32c: Option<u32>,
    crc64nvme: Option<crc64fast_nvme::Digest>,
}

impl Hasher {
    pub fn new(set: DigestSet) -> Hasher {
        Hasher {
            md5: set.contains(DigestSet::MD5).then(md5::Md5::new),
            sha1: set.contains(DigestSet::SHA1).then(sha1::Sha1::new),
            sha256: set.contains(DigestSet::SHA256).then(sha2::Sha256::new),
            sha512: set
                .contains(DigestSet::SHA512)
                .then(openssl::sha::Sha512::new),
            crc32: set.contains(DigestSet::CRC32).then(crc32fast::Hasher::new),
            crc32c: set.contains(DigestSet::CRC32C).then_some(0),
            crc64nvme: set
                .contains(DigestSet::CRC64NVME)
                .then(crc64fast_nvme::Digest::new),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
        if let Some(h) = &mut self.crc32 {
            h.update(data);
        }
        if let Some(c) = &mut self.crc32c {
            *c = crc32c::crc32c_append(*c, data);
        }
        if let Some(h) = &mut self.crc64nvme {
            h.write(data);
        }
    }

    pub fn finish(self) -> Digests {
        Digests {
            md5: self.md5.map(|h| h.finalize().into()),
            sha1: self.sha1.map(|h| h.finalize().into()),
            sha256: self.sha256.map(|h| h.finalize().into()),
            sha512: self.sha512.map(|h| h.finish()),
            crc32: self.crc32.map(|h| h.finalize()),
            crc32c: self.crc32c,
            crc64nvme: self.crc64nvme.map(|h| h.sum64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let mut h = Hasher::new(DigestSet::ALL);
        h.update(b"hello ");
        h.update(b"world");
        let d = h.finish();
        assert_eq!(
            hex::encode(d.md5.unwrap()),
            "5eb63bbbe01eeed093cb22bb8f5acdc3"
        );
        assert_eq!(
            hex::encode(d.sha1.unwrap()),
            "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
        );
        assert_eq!(
            hex::encode(d.sha256.unwrap()),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert!(hex::encode(d.sha512.unwrap()).starts_with("309ecc489c12d6eb4cc40f50c902f2b4"));
        assert_eq!(d.crc32, Some(0x0d4a_1185));
        assert_eq!(d.crc32c, Some(0xc994_65aa));
        assert!(d.crc64nvme.is_some());
    }

    #[test]
    fn only_requested_digests_are_set() {
        let mut h = Hasher::new(DigestSet::MD5 | DigestSet::CRC32C);
        h.update(b"x");
        let d = h.finish();
        assert!(d.md5.is_some() && d.crc32c.is_some());
        assert!(d.sha512.is_none() && d.sha1.is_none() && d.crc32.is_none());
    }

    #[test]
    fn groups_cover_the_set() {
        assert_eq!(DigestSet::ALL.thread_groups().len(), 3);
        assert_eq!((DigestSet::MD5 | DigestSet::CRC32).thread_groups().len(), 1);
        assert!(DigestSet::NONE.thread_groups().is_empty());
    }
}
