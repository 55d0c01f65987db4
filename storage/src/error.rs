//! The engine's typed errors. Front ends map these to protocol errors in one place.

use std::io;
use std::path::PathBuf;

use crate::ids::{BlobId, ChunkId};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob {0} not found")]
    BlobNotFound(BlobId),
    #[error("chunk {chunk} failed verification (stored at {path})")]
    Corrupt { chunk: ChunkId, path: PathBuf },
    #[error("chunk {0} is missing from every data directory")]
    ChunkMissing(ChunkId),
    #[error("chunk {chunk} failed verification (pack {pack:016x}, record at {offset})")]
    CorruptRecord { pack: u64, offset: u64, chunk: u64 },
    #[error("pack {0:016x} is missing from every data directory")]
    PackMissing(u64),
    #[error("range {start}..{end} is not within a blob of {size} bytes")]
    InvalidRange { start: u64, end: u64, size: u64 },
    #[error("data directory {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error("blob exceeds the size limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("no space left for {path}: {source}")]
    StorageFull { path: PathBuf, source: io::Error },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("catalog: {0}")]
    Catalog(CatalogError),
    /// The object store holding packs failed (cluster mode).
    #[error("object store: {0}")]
    Remote(String),
    #[error("catalog record is malformed: {0}")]
    Malformed(&'static str),
    #[error("input stream failed: {0}")]
    Input(Box<dyn std::error::Error + Send + Sync>),
    #[error("staged blob {0} was already committed")]
    AlreadyCommitted(BlobId),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("background task failed: {0}")]
    Task(String),
}

/// A catalog backend's failure, classified by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CatalogError {
    pub kind: CatalogErrorKind,
    message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogErrorKind {
    /// A lock wait timed out, a deadlock or a serialization conflict: the transaction may
    /// succeed when run again.
    Conflict,
    /// The catalog cannot be reached (a database restarting): answer "try later".
    Unavailable,
    Other,
}

impl CatalogError {
    pub fn conflict(message: impl Into<String>) -> CatalogError {
        CatalogError {
            kind: CatalogErrorKind::Conflict,
            message: message.into(),
        }
    }
    pub fn unavailable(message: impl Into<String>) -> CatalogError {
        CatalogError {
            kind: CatalogErrorKind::Unavailable,
            message: message.into(),
        }
    }
    pub fn other(message: impl Into<String>) -> CatalogError {
        CatalogError {
            kind: CatalogErrorKind::Other,
            message: message.into(),
        }
    }
}

impl StoreError {
    /// Wraps an I/O error with the path it concerns; ENOSPC and EDQUOT become `StorageFull`
    /// so that callers can answer "insufficient storage" rather than a generic failure.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> StoreError {
        let path = path.into();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => StoreError::StorageFull { path, source },
            _ => StoreError::Io { path, source },
        }
    }

    /// True when the same request may succeed later: the catalog or the object store could
    /// not be reached, or the catalog's locks stayed contended through every retry.
    /// Answered 503, never 500.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Catalog(c) => c.kind != CatalogErrorKind::Other,
            StoreError::Remote(_) => true,
            _ => false,
        }
    }

    /// True for the data-integrity failures a reader must never paper over.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::CorruptRecord { .. }
                | StoreError::ChunkMissing(_)
                | StoreError::PackMissing(_)
        )
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        StoreError::Task(e.to_string())
    }
}
