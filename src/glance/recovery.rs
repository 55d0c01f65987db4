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
//!
//! With a catalog shared by several nodes (cluster mode) an operation in progress may be a
//! live node's, so nothing is rolled back at start. Instead each operation records its
//! node (`worker`), and every node runs [`reap`] from time to time: what a node that is
//! gone left mid-way is rolled back exactly as above.

use std::collections::HashSet;
use std::sync::Arc;

use glint_storage::{Catalog, Store, StoreError};

use super::import::release_failed_import;
use super::tasks::TaskRecord;
use crate::images::{index, repo, ImageRecord, ImageStatus};

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

/// Whose operations a pass rolls back.
#[derive(Clone)]
enum Whose {
    /// Every one: at start, with this process the catalog's only user.
    All,
    /// Those run by these nodes, found gone (cluster mode).
    Nodes(Arc<HashSet<u64>>),
}

impl Whose {
    fn covers(&self, worker: Option<u64>) -> bool {
        match self {
            Whose::All => true,
            Whose::Nodes(dead) => worker.is_some_and(|w| dead.contains(&w)),
        }
    }
}

/// Runs the pass over the main store's catalog, at start, before anything runs.
pub async fn recover(store: &Store, task_ttl_hours: u64) -> Result<Recovered, StoreError> {
    let (images, tasks) = (repo::all(store).await?, running_tasks(store).await?);
    roll_back(store, task_ttl_hours, images, tasks, Whose::All, "at start").await
}

/// Cluster mode, on every node from time to time: rolls back the operations whose node is
/// gone (a node that dies mid-upload leaves its image `saving`; any live node puts it
/// back to `queued`, and fails its import tasks, as a restart would on one node).
pub async fn reap(store: &Store, task_ttl_hours: u64) -> Result<Recovered, StoreError> {
    let tasks = running_tasks(store).await?;
    let images = in_flight(store, &tasks).await?;
    let workers: HashSet<u64> = images
        .iter()
        .filter(|r| settle(&mut (*r).clone()).is_some())
        .filter_map(|r| r.worker)
        .chain(tasks.iter().filter_map(|(_, t)| t.worker))
        .collect();
    let mut dead = HashSet::new();
    for w in workers {
        if !store.node_alive(w).await? {
            dead.insert(w);
        }
    }
    if dead.is_empty() {
        return Ok(Recovered::default());
    }
    roll_back(
        store,
        task_ttl_hours,
        images,
        tasks,
        Whose::Nodes(Arc::new(dead)),
        "after its node died",
    )
    .await
}

/// Runs [`reap`] every `every` until the server stops.
pub fn spawn_reaper(
    background: &crate::shutdown::Background,
    store: Store,
    task_ttl_hours: u64,
    every: std::time::Duration,
) {
    let bg = background.clone();
    background.spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = bg.stopping() => return,
            }
            match reap(&store, task_ttl_hours).await {
                Ok(r) if !r.is_empty() => tracing::warn!(?r, "rolled back operations of nodes that are gone"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "looking for operations of nodes that are gone failed"),
            }
        }
    });
}

/// The images an operation may be under way on: those in a passing status (from the
/// listing index's status scopes, not a decode of every record) and those a running task
/// holds (an import's lock on an image of any status).
async fn in_flight(
    store: &Store,
    tasks: &[(Vec<u8>, TaskRecord)],
) -> Result<Vec<ImageRecord>, StoreError> {
    let mut images = index::with_status(store, &["saving", "uploading", "importing"]).await?;
    let mut seen: HashSet<String> = images.iter().map(|r| r.id.clone()).collect();
    for id in tasks.iter().filter_map(|(_, t)| t.image_id.as_deref()) {
        if seen.insert(id.to_string()) {
            images.extend(repo::get(store, id).await?);
        }
    }
    Ok(images)
}

async fn running_tasks(store: &Store) -> Result<Vec<(Vec<u8>, TaskRecord)>, StoreError> {
    let rows = store
        .scan(Catalog::Tasks, Vec::new(), None, usize::MAX)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| Some((k, serde_json::from_slice::<TaskRecord>(&v).ok()?)))
        .filter(|(_, t)| t.is_running())
        .collect())
}

/// Rolls back the operations of `whose` among `images` and `tasks` (read by the caller;
/// each is read again under its lock before it changes).
async fn roll_back(
    store: &Store,
    task_ttl_hours: u64,
    images: Vec<ImageRecord>,
    tasks: Vec<(Vec<u8>, TaskRecord)>,
    whose: Whose,
    when: &'static str,
) -> Result<Recovered, StoreError> {
    let mut out = Recovered::default();
    for rec in images {
        if !whose.covers(rec.worker) {
            continue;
        }
        let id = rec.id.clone();
        let whose = whose.clone();
        let kind = store
            .transact(move |tx| {
                let Some(mut r) = repo::read_locked(tx, &id)? else {
                    return Ok(None);
                };
                // Under the lock: still the same operation of a node found gone.
                if !whose.covers(r.worker) {
                    return Ok(None);
                }
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
        tracing::warn!(image = %rec.id, what, when, "an interrupted operation was rolled back");
    }
    for (key, task) in tasks {
        if !whose.covers(task.worker) {
            continue;
        }
        let whose = whose.clone();
        let failed = store
            .transact(move |tx| {
                // Under the lock: still running, still the gone node's.
                let Some(value) = tx.get_for_update(Catalog::Tasks, &key)? else {
                    return Ok(false);
                };
                let Ok(mut task) = serde_json::from_slice::<TaskRecord>(&value) else {
                    return Ok(false);
                };
                if !task.is_running() || !whose.covers(task.worker) {
                    return Ok(false);
                }
                task.set_status(
                    "failure",
                    "The task was interrupted: the server running it stopped before it finished.",
                    task_ttl_hours,
                );
                let value = serde_json::to_vec(&task).expect("serializable");
                tx.put(Catalog::Tasks, &key, &value)?;
                Ok(true)
            })
            .await?;
        out.tasks_failed += usize::from(failed);
        if failed {
            tracing::warn!(task = %task.id, when, "an interrupted task was failed");
        }
    }
    Ok(out)
}
