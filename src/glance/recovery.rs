//! Start-up recovery of image states. Uploads, stages and imports run inside the server
//! process; after a crash or restart none of them is still running, so every image a dead
//! process left mid-way is put where a failure would have put it, in one pass before the
//! listeners open:
//!
//! - `saving` (an upload cut off): back to `queued` with no data, as a failed upload;
//! - `uploading` without staged data (a stage cut off): back to `queued`; with staged data
//!   the stage finished and the image waits for its import, as upstream;
//! - an import lock (`os_glance_import_task`): the import failed — an image being imported
//!   returns to `queued` and drops its staged data, a copy-image leaves the image as it was
//!   and lists the stores it did not reach in `os_glance_failed_import`;
//! - tasks still `pending` or `processing`: `failure`, with the reason.
//!
//! The engine's own recovery (chunks of unfinished writes) has run by then (`Store::open`).

use glint_storage::{Catalog, Store, StoreError};

use super::import::release_failed_import;
use super::tasks::TaskRecord;
use crate::images::{repo, ImageRecord, ImageStatus};

/// What one pass found and set right.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub uploads_requeued: usize,
    pub stages_requeued: usize,
    pub imports_failed: usize,
    pub tasks_failed: usize,
}

impl Recovered {
    pub fn is_empty(&self) -> bool {
        *self == Recovered::default()
    }
}

/// What recovery does to one image; None when it was left in a resting state.
fn settle(r: &mut ImageRecord) -> Option<(Kind, Option<glint_storage::BlobId>)> {
    if let Some(staged) = release_failed_import(r) {
        return Some((Kind::Import, staged));
    }
    if r.move_status(ImageStatus::Saving, ImageStatus::Queued) {
        clear_data(r);
        return Some((Kind::Upload, None));
    }
    if r.staged.is_none() && r.move_status(ImageStatus::Uploading, ImageStatus::Queued) {
        clear_data(r);
        return Some((Kind::Stage, None));
    }
    None
}

enum Kind {
    Upload,
    Stage,
    Import,
}

fn clear_data(r: &mut ImageRecord) {
    r.size = None;
    r.virtual_size = None;
    r.checksum = None;
    r.set_multihash(None);
}

/// Runs the pass over the main store's catalog.
pub async fn recover(store: &Store, task_ttl_hours: u64) -> Result<Recovered, StoreError> {
    let mut out = Recovered::default();
    for rec in repo::all(store).await? {
        let id = rec.id.clone();
        let kind = store
            .transact(move |tx| {
                let Some(mut r) = repo::read_locked(tx, &id)? else {
                    return Ok(None);
                };
                let Some((kind, staged)) = settle(&mut r) else {
                    return Ok(None);
                };
                if let Some(b) = staged {
                    tx.delete_blob(b)?;
                }
                repo::write(tx, &mut r)?;
                Ok(Some(kind))
            })
            .await?;
        let Some(kind) = kind else { continue };
        let (counter, what) = match kind {
            Kind::Upload => (&mut out.uploads_requeued, "upload"),
            Kind::Stage => (&mut out.stages_requeued, "stage"),
            Kind::Import => (&mut out.imports_failed, "import"),
        };
        *counter += 1;
        tracing::warn!(image = %rec.id, what, "an interrupted operation was rolled back at start");
    }
    let rows = store
        .scan(Catalog::Tasks, Vec::new(), None, usize::MAX)
        .await?;
    for (key, value) in rows {
        let Ok(mut task) = serde_json::from_slice::<TaskRecord>(&value) else {
            continue;
        };
        if !task.is_running() {
            continue;
        }
        task.set_status(
            "failure",
            "The task was interrupted: the server stopped before it finished.",
            task_ttl_hours,
        );
        let value = serde_json::to_vec(&task).expect("serializable");
        store
            .transact(move |tx| tx.put(Catalog::Tasks, &key, &value))
            .await?;
        out.tasks_failed += 1;
    }
    Ok(out)
}
