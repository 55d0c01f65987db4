//! Packs in an S3-compatible object store (cluster mode): Ceph RGW, SeaweedFS, MinIO, AWS.
//!
//! A pack is written locally first, as on one node: records appended to a spool file, which
//! is then synced. Before the catalog commit that references it, the whole pack is uploaded
//! as one immutable object `<prefix>/<pack file name>`. The upload is a single PUT, or a
//! multipart upload of 8 MiB parts for larger packs, read from the file part by part. An
//! object is complete or absent, never half-written, so the commit rule ("packs durable
//! before the commit") holds across machines. Nothing appends to an uploaded pack again.
//! Reads are ranged GETs, and a compacted-away pack answers 404 (`PackMissing`), after which
//! the reader re-locates its group from the catalog, as local reads already do. The node
//! that wrote a pack keeps its spool file and reads from it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig, WriteMultipart,
};

use crate::bridge::Bridge;
use crate::error::{Result, StoreError};

/// Where the packs go: `[chunk_store]` in glance-api.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemotePackConfig {
    /// `http(s)://host:port` of the S3 endpoint.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Key prefix of this store's packs (stores sharing a bucket take different ones).
    pub prefix: String,
    /// At most this many bytes of pack copies stay on the local data directories (the packs
    /// this node wrote or fetched whole); the least recently written go first, once the object
    /// store holds them. `None`: no bound.
    pub local_cache_bytes: Option<u64>,
}

const PART: usize = 8 << 20;

pub(crate) struct RemotePacks {
    bridge: Bridge,
    s3: Arc<AmazonS3>,
    prefix: String,
    /// `RemotePackConfig::local_cache_bytes`.
    pub(crate) local_cache_bytes: Option<u64>,
}

fn remote_error(what: &str, id: u64, e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::PackMissing(id),
        e => StoreError::Remote(format!("{what} pack {id:016x}: {e}")),
    }
}

impl RemotePacks {
    pub(crate) fn open(cfg: &RemotePackConfig) -> Result<RemotePacks> {
        let s3 = AmazonS3Builder::new()
            // First: `with_allow_http` below is one of these options.
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            )
            .with_endpoint(&cfg.endpoint)
            .with_allow_http(cfg.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(&cfg.access_key)
            .with_secret_access_key(&cfg.secret_key)
            // The object store's own retries stay short: an error that outlasts them is
            // answered 503, and S3 clients and Glance's retry on their own. With the default
            // (10 retries, 3 minutes) a read of a pack on a stopped volume server held its
            // request that long before failing.
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
            })
            .build()
            .map_err(|e| StoreError::Config(format!("[chunk_store]: {e}")))?;
        let remote = RemotePacks {
            bridge: Bridge::new("glint-s3")?,
            s3: Arc::new(s3),
            prefix: cfg.prefix.trim_matches('/').to_string(),
            local_cache_bytes: cfg.local_cache_bytes,
        };
        // Fail at start, with the endpoint named, rather than on the first upload.
        remote.list().map_err(|e| {
            StoreError::Config(format!(
                "[chunk_store] {} bucket {}: {e}",
                cfg.endpoint, cfg.bucket
            ))
        })?;
        Ok(remote)
    }

    fn key(&self, id: u64) -> ObjectPath {
        let name = crate::pack::file_name(id);
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    /// Uploads the synced local pack file `path` as pack `id`.
    pub(crate) fn upload(&self, id: u64, path: &Path) -> Result<()> {
        let mut file = std::fs::File::open(path).map_err(|e| StoreError::io(path, e))?;
        let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
        let key = self.key(id);
        let s3 = self.s3.clone();
        if len as usize <= PART {
            let mut buf = Vec::with_capacity(len as usize);
            file.read_to_end(&mut buf)
                .map_err(|e| StoreError::io(path, e))?;
            return self
                .bridge
                .wait(async move { s3.put(&key, PutPayload::from(buf)).await })?
                .map(drop)
                .map_err(|e| remote_error("uploading", id, e));
        }
        let upload = self
            .bridge
            .wait(async move { s3.put_multipart(&key).await })?
            .map_err(|e| remote_error("uploading", id, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        // One part in memory at a time: read a part, hand it over, wait for room.
        let mut buf = vec![0u8; PART];
        loop {
            let n = read_full(&mut file, &mut buf).map_err(|e| StoreError::io(path, e))?;
            if n == 0 {
                break;
            }
            // Handed over on the bridge's runtime: the part's upload is a task spawned there,
            // whatever thread (inside another runtime or none) is uploading.
            let part = bytes::Bytes::copy_from_slice(&buf[..n]);
            let (w, r) = self.bridge.wait(async move {
                writer.put(part);
                let r = writer.wait_for_capacity(1).await;
                (writer, r)
            })?;
            writer = w;
            r.map_err(|e| remote_error("uploading", id, e))?;
        }
        self.bridge
            .wait(async move { writer.finish().await })?
            .map(drop)
            .map_err(|e| remote_error("uploading", id, e))
    }

    /// `len` bytes of pack `id` from `offset`.
    pub(crate) fn read(&self, id: u64, offset: u64, len: usize) -> Result<Bytes> {
        let (s3, key) = (self.s3.clone(), self.key(id));
        let got = self
            .bridge
            .wait(async move { s3.get_range(&key, offset..offset + len as u64).await })?
            .map_err(|e| remote_error("reading", id, e))?;
        if got.len() != len {
            return Err(StoreError::Malformed(
                "pack shorter than its catalog records",
            ));
        }
        Ok(got)
    }

    /// The size of pack `id` in the store; `None` when it is not there (yet).
    pub(crate) fn size(&self, id: u64) -> Result<Option<u64>> {
        let (s3, key) = (self.s3.clone(), self.key(id));
        match self.bridge.wait(async move { s3.head(&key).await })? {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(remote_error("looking up", id, e)),
        }
    }

    /// Downloads pack `id` to `to` (a temporary name the caller renames).
    pub(crate) fn download(&self, id: u64, to: &Path) -> Result<()> {
        let (s3, key) = (self.s3.clone(), self.key(id));
        let file = std::fs::File::create(to).map_err(|e| StoreError::io(to, e))?;
        let to_owned = to.to_path_buf();
        self.bridge
            .wait(async move {
                use std::io::Write;
                let mut file = file;
                let mut stream = s3.get(&key).await?.into_stream();
                while let Some(piece) = stream.next().await {
                    file.write_all(&piece?)
                        .map_err(|e| object_store::Error::Generic {
                            store: "local spool",
                            source: Box::new(e),
                        })?;
                }
                file.sync_data().map_err(|e| object_store::Error::Generic {
                    store: "local spool",
                    source: Box::new(e),
                })
            })?
            .map_err(|e| match remote_error("downloading", id, e) {
                StoreError::Remote(m) => {
                    StoreError::Remote(format!("{m} to {}", to_owned.display()))
                }
                other => other,
            })
    }

    /// Every pack in the store, with its size.
    pub(crate) fn list(&self) -> Result<Vec<(u64, u64)>> {
        let s3 = self.s3.clone();
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.clone()));
        self.bridge
            .wait(async move {
                let mut out = Vec::new();
                let mut listing = s3.list(prefix.as_ref());
                while let Some(meta) = listing.next().await {
                    let meta = meta?;
                    if let Some(id) = meta
                        .location
                        .filename()
                        .and_then(crate::pack::parse_file_name)
                    {
                        out.push((id, meta.size));
                    }
                }
                Ok::<_, object_store::Error>(out)
            })?
            .map_err(|e| StoreError::Remote(format!("listing packs: {e}")))
    }

    pub(crate) fn delete(&self, id: u64) -> Result<()> {
        let (s3, key) = (self.s3.clone(), self.key(id));
        match self.bridge.wait(async move { s3.delete(&key).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote_error("deleting", id, e)),
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A spool path for a download of pack `id` into `dir`.
pub(crate) fn download_temp(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!(".{}.download", crate::pack::file_name(id)))
}
