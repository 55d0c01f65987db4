//! Glint's blob engine: a content-addressed chunk store on local disks with a RocksDB catalog.
//! Both front ends (S3 objects, Glance images) store their bytes through it.
//!
//! See `storage/README.md` for the design: on-disk layout, commit protocol, crash safety and
//! the garbage-collection rule.
//!
//! ```text
//! write(stream) ──► StagedBlob (chunks durable + pinned, digests)
//!                      │
//! transact(|tx| { tx.add_blob(&staged); tx.put(Catalog::Objects, key, rec) })   one synced batch
//!                      │
//! read(id, range) ──► verified byte stream        delete / concat / clone: metadata only
//! ```

mod bufpool;
mod catalog;
pub mod cdc;
mod datadirs;
mod digest;
mod error;
mod ids;
mod lease;
mod manifest;
mod read;
mod scrub;
mod store;
mod tx;
mod write;

pub use catalog::Catalog;
pub use digest::{DigestSet, Digests, Hasher};
pub use error::{Result, StoreError};
pub use ids::{BlobId, ChunkId};
pub use manifest::BlobInfo;
pub use read::BlobReader;
pub use scrub::{ScrubOptions, ScrubReport};
pub use store::{RecoveryReport, Store, StoreConfig, DEFAULT_CHUNK_SIZE};
pub use tx::Tx;
pub use write::{StagedBlob, WriteOptions};
