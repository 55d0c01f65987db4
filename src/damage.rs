//! Names what scrub's damaged blobs are to the people who stored them: S3 objects (and parts
//! of multipart uploads under way) and Glance images (their data, a copy in a backend, or
//! data staged for an import). The engine knows only blob ids; the front ends' records live
//! in the same catalog.

use std::collections::{BTreeMap, HashSet};

use glint_storage::{BlobId, Catalog, Store};

use crate::s3::records::ObjectRecord;

/// One line per damaged blob that a front-end record uses, e.g.
/// `s3://bucket/key` or `image 7c1e… (cirros, data in store "fast")`.
pub async fn describe(
    store: &Store,
    blobs: &[BlobId],
) -> Result<Vec<String>, glint_storage::StoreError> {
    let damaged: HashSet<BlobId> = blobs.iter().copied().collect();
    let mut names: BTreeMap<String, ()> = BTreeMap::new();
    for (k, v) in store
        .scan(Catalog::Objects, Vec::new(), None, usize::MAX)
        .await?
    {
        let Ok(rec) = serde_json::from_slice::<ObjectRecord>(&v) else {
            continue;
        };
        if rec.blob.parse().is_ok_and(|b| damaged.contains(&b)) {
            names.insert(format!("s3://{}", object_path(&k)), ());
        }
    }
    for (_, v) in store
        .scan(Catalog::Parts, Vec::new(), None, usize::MAX)
        .await?
    {
        if let Ok(p) = serde_json::from_slice::<crate::s3::multipart::PartRecord>(&v) {
            if p.blob.parse().is_ok_and(|b| damaged.contains(&b)) {
                names.insert(
                    format!("a part of a multipart upload (blob {})", p.blob),
                    (),
                );
            }
        }
    }
    for rec in crate::images::repo::all(store).await? {
        let label = |what: String| {
            format!(
                "image {} ({}, {what})",
                rec.id,
                rec.name.as_deref().unwrap_or("unnamed")
            )
        };
        if rec.blob.is_some_and(|b| damaged.contains(&b)) {
            names.insert(label("its data".into()), ());
        }
        for c in rec.copies.iter().filter(|c| damaged.contains(&c.blob)) {
            names.insert(label(format!("its copy in store {:?}", c.store)), ());
        }
        if rec
            .staged
            .as_ref()
            .is_some_and(|s| damaged.contains(&s.blob))
        {
            names.insert(label("data staged for import".into()), ());
        }
    }
    Ok(names.into_keys().collect())
}

/// `bucket/key` from an object's catalog key (`bucket \0 key`).
fn object_path(k: &[u8]) -> String {
    let s = String::from_utf8_lossy(k);
    match s.split_once('\0') {
        Some((b, key)) => format!("{b}/{key}"),
        None => s.into_owned(),
    }
}
