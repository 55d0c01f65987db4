//! What other parts of Glint may ask of the object layer, without its records: the blob of
//! an object a project may read (the Images API's `glint-s3-object` import and image
//! locations adopt it without copying a byte).

use glint_storage::{BlobId, Catalog, Store, StoreError};

use super::acl::{Caller, Permission};
use super::records::{object_key, ObjectRecord};

/// The blob of `bucket/key` if the object exists and `project` may read it by the object's
/// ACL (its owner always may), or `any_project` (an administrator) is set.
pub async fn readable_blob(
    store: &Store,
    bucket: &str,
    key: &str,
    project: Option<&str>,
    any_project: bool,
) -> Result<Option<BlobId>, StoreError> {
    let Some(v) = store.get(Catalog::Objects, object_key(bucket, key)).await? else {
        return Ok(None);
    };
    let rec: ObjectRecord =
        serde_json::from_slice(&v).map_err(|_| StoreError::Malformed("object record"))?;
    let caller = Caller {
        project: project.map(str::to_string),
        authenticated: project.is_some(),
    };
    if !any_project && !rec.access().allows(&caller, Permission::Read) {
        return Ok(None);
    }
    Ok(rec.blob.parse().ok())
}
