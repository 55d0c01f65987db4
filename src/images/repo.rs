//! Where image records live: the catalog's `images` family (key = image id), read and written
//! only here, in one encoding. Records carry a format number; one from a newer Glint is an
//! error, never misread. A point read of a record that does not decode is an error (the
//! caller answers 500); a scan skips it and logs an error naming it, so that one damaged
//! record cannot take listing down for everyone.
//!
//! [`ImageRepo`] adds the policy: loading what a caller may see, and the one function through
//! which every read of image bytes is authorized ([`ImageRepo::readable`]).

use std::sync::Arc;

use glint_storage::{BlobId, Catalog, Store, StoreError, Tx};

use super::access::{check_download, may_see, Denied};
use super::caller::Caller;
use super::index;
use super::listing::{ListQuery, Page};
use super::policy::Policy;
use super::record::{now, valid_uuid, ImageRecord};
use super::status::ImageStatus;
use super::stores::Stores;

/// The record format this build writes (and the newest it reads).
pub const FORMAT: u32 = 1;

fn malformed(id: &[u8], why: impl std::fmt::Display) -> StoreError {
    tracing::error!(image = %String::from_utf8_lossy(id), %why, "image record cannot be decoded");
    StoreError::Malformed("image record")
}

/// A record as stored: JSON with its `format`.
pub fn encode(rec: &ImageRecord) -> Vec<u8> {
    serde_json::to_vec(rec).expect("an image record serializes")
}

/// A stored record; an error when it is not one, or is of a newer format than this build's.
pub fn decode(id: &[u8], bytes: &[u8]) -> Result<ImageRecord, StoreError> {
    let rec: ImageRecord = serde_json::from_slice(bytes).map_err(|e| malformed(id, e))?;
    if rec.format > FORMAT {
        return Err(malformed(
            id,
            format!("format {} is newer than this build's {FORMAT}", rec.format),
        ));
    }
    Ok(rec)
}

/// The record of `id`, if any.
pub async fn get(store: &Store, id: &str) -> Result<Option<ImageRecord>, StoreError> {
    if !valid_uuid(id) {
        return Ok(None);
    }
    store
        .get(Catalog::Images, id.as_bytes().to_vec())
        .await?
        .map(|v| decode(id.as_bytes(), &v))
        .transpose()
}

/// Every record, in id order (records that do not decode are logged and skipped).
pub async fn all(store: &Store) -> Result<Vec<ImageRecord>, StoreError> {
    let rows = store
        .scan(Catalog::Images, Vec::new(), None, usize::MAX)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| decode(&k, &v).ok())
        .collect())
}

/// Inside a transaction: the record of `id`, locked for update.
pub fn read_locked(tx: &Tx<'_>, id: &str) -> glint_storage::Result<Option<ImageRecord>> {
    tx.get_for_update(Catalog::Images, id.as_bytes())?
        .map(|v| decode(id.as_bytes(), &v))
        .transpose()
}

/// Inside a transaction: the record of `id` as stored (for the index entries a change
/// replaces; one that does not decode has none to replace).
fn stored(tx: &Tx<'_>, id: &str) -> glint_storage::Result<Option<ImageRecord>> {
    Ok(tx
        .get(Catalog::Images, id.as_bytes())?
        .and_then(|v| decode(id.as_bytes(), &v).ok()))
}

/// Inside a transaction: stores `rec`, stamping `updated_at`, with its listing index entries.
pub fn write(tx: &Tx<'_>, rec: &mut ImageRecord) -> glint_storage::Result<()> {
    rec.updated_at = now();
    rec.format = FORMAT;
    let old = stored(tx, &rec.id)?;
    index::sync(tx, old.as_ref(), Some(rec))?;
    tx.put(Catalog::Images, rec.id.as_bytes(), &encode(rec))
}

/// Inside a transaction: stores a new record unless its id is taken; whether it was stored.
pub fn insert(tx: &Tx<'_>, rec: &ImageRecord) -> glint_storage::Result<bool> {
    if tx
        .get_for_update(Catalog::Images, rec.id.as_bytes())?
        .is_some()
    {
        return Ok(false);
    }
    index::sync(tx, None, Some(rec))?;
    tx.put(Catalog::Images, rec.id.as_bytes(), &encode(rec))?;
    Ok(true)
}

/// Inside a transaction: removes the record of `id` and its index entries.
pub fn remove(tx: &Tx<'_>, id: &str) -> glint_storage::Result<()> {
    let old = stored(tx, id)?;
    index::sync(tx, old.as_ref(), None)?;
    tx.delete(Catalog::Images, id.as_bytes())
}

/// Inside a transaction: deletes an image record and its data in the main store (staged
/// data too); returns the blobs other backends hold, for `Stores::delete_elsewhere` once
/// `tx` has committed.
pub fn purge(
    tx: &mut Tx<'_>,
    rec: &ImageRecord,
    stores: &Stores,
) -> glint_storage::Result<Vec<(String, BlobId)>> {
    let mut elsewhere = Vec::new();
    if let Some(b) = rec.staged.as_ref().map(|s| s.blob) {
        tx.delete_blob(b)?;
    }
    for (store, blob) in rec.locations() {
        match store {
            Some(s) if !stores.is_main(Some(s)) => elsewhere.push((s.to_string(), blob)),
            _ => tx.delete_blob(blob)?,
        }
    }
    remove(tx, &rec.id)?;
    Ok(elsewhere)
}

/// How `ImageRepo::delete` removes an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteMode {
    /// Record and data go now.
    Now,
    /// `delayed_delete`: an image with data becomes `pending_delete` (gone from the API, its
    /// bytes kept until the scrubber purges them); one without data goes now.
    Delayed,
}

/// Why a read through the repository failed.
#[derive(Debug)]
pub enum ReadError {
    Denied(Denied),
    Store(StoreError),
}

impl From<StoreError> for ReadError {
    fn from(e: StoreError) -> Self {
        ReadError::Store(e)
    }
}

/// The image records with the policy that decides who may see and read them.
#[derive(Clone)]
pub struct ImageRepo {
    /// The main store: its catalog holds the records.
    store: Store,
    /// Every backend an image's data may be in.
    stores: Arc<Stores>,
    policy: Arc<Policy>,
}

impl ImageRepo {
    pub fn new(stores: Arc<Stores>, policy: Arc<Policy>) -> ImageRepo {
        ImageRepo {
            store: stores.main().clone(),
            stores,
            policy,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The image if `caller` may see it (NotFound otherwise: never a hint that it exists).
    pub async fn visible(&self, caller: &Caller, id: &str) -> Result<ImageRecord, ReadError> {
        get(&self.store, id)
            .await?
            .filter(|r| may_see(&self.policy, caller, r))
            .ok_or(ReadError::Denied(Denied::NotFound))
    }

    /// The one check before any of an image's bytes leave, on every path (Images API
    /// download, the S3 images bucket's GET, HEAD and presigned URLs): the image is visible
    /// to `caller` and `download_image` allows it.
    pub async fn readable(&self, caller: &Caller, id: &str) -> Result<ImageRecord, ReadError> {
        let rec = get(&self.store, id)
            .await?
            .ok_or(ReadError::Denied(Denied::NotFound))?;
        check_download(&self.policy, caller, &rec).map_err(ReadError::Denied)?;
        Ok(rec)
    }

    /// Stores a new image; false when its id is taken.
    pub async fn create(&self, rec: &ImageRecord) -> Result<bool, StoreError> {
        let new = rec.clone();
        self.store.transact(move |tx| insert(tx, &new)).await
    }

    /// Applies `change` to the image under its lock (read, change, write in one
    /// transaction). `change` may refuse with the caller's own error, which leaves the record
    /// untouched. None when there is no such image.
    pub async fn update<E, F>(
        &self,
        id: &str,
        change: F,
    ) -> Result<Option<Result<ImageRecord, E>>, StoreError>
    where
        E: Send + 'static,
        F: Fn(&mut ImageRecord) -> Result<(), E> + Send + 'static,
    {
        let key = id.to_string();
        self.store
            .transact(move |tx| {
                let Some(mut rec) = read_locked(tx, &key)? else {
                    return Ok(None);
                };
                if let Err(e) = change(&mut rec) {
                    return Ok(Some(Err(e)));
                }
                write(tx, &mut rec)?;
                Ok(Some(Ok(rec)))
            })
            .await
    }

    /// Deletes the image (the front end has checked `delete_image` and protection): the
    /// record and its data in one transaction, then the copies in other backends.
    pub async fn delete(&self, id: &str, mode: DeleteMode) -> Result<(), StoreError> {
        let key = id.to_string();
        let stores = self.stores.clone();
        let elsewhere = self
            .store
            .transact(move |tx| {
                let Some(mut cur) = read_locked(tx, &key)? else {
                    return Ok(Vec::new());
                };
                if mode == DeleteMode::Delayed
                    && cur.blob.is_some()
                    && cur.status.become_(ImageStatus::PendingDelete).is_ok()
                {
                    cur.deleted_at = Some(now());
                    write(tx, &mut cur)?;
                    Ok(Vec::new())
                } else {
                    purge(tx, &cur, &stores)
                }
            })
            .await?;
        self.stores.delete_elsewhere(elsewhere).await;
        Ok(())
    }

    /// One page of the listing `query` asks for, as `caller` sees it (the front end has
    /// already applied `get_images`). None when the marker is not an image `caller` sees.
    pub async fn list(
        &self,
        caller: &Caller,
        query: &ListQuery,
    ) -> Result<Option<Page>, StoreError> {
        index::page(&self.store, query.clone(), caller.clone()).await
    }

    /// The images `caller` may see, in id order.
    pub async fn list_visible(&self, caller: &Caller) -> Result<Vec<ImageRecord>, StoreError> {
        let mut query = ListQuery::new(usize::MAX);
        query.visibility = Some(super::listing::Visibility::All);
        query.member_status = super::listing::MemberStatus::All;
        let mut out = index::candidates(&self.store, &query, caller).await?;
        out.retain(|r| may_see(&self.policy, caller, r));
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}
