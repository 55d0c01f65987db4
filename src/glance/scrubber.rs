//! Delayed delete (`delayed_delete = True`): deleting an image that has data only marks it
//! `pending_delete` (invisible through the API at once, its bytes kept); the scrubber
//! purges such images once they have waited `scrub_time`, or restores one to `active`.
//! It runs inside the server every `wakeup_time` seconds, or as `glint scrubber` while the
//! server is stopped (the embedded catalog admits one process at a time).

use crate::images::repo;
use crate::images::ImageStatus;
use std::time::Duration;

use std::sync::Arc;

use glint_storage::BlobId;

use super::listing::parse_time;
use super::record::ImageRecord;
use super::stores::Stores;

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScrubPass {
    pub purged: usize,
    /// Pending images still inside their `scrub_time`.
    pub waiting: usize,
}

/// Purges every `pending_delete` image deleted at least `scrub_time` ago.
pub async fn scrub_once(stores: &Stores, scrub_time: Duration) -> glint_storage::Result<ScrubPass> {
    let store = stores.main();
    let now = time::OffsetDateTime::now_utc();
    let mut pass = ScrubPass::default();
    for rec in repo::all(store).await? {
        if rec.status != ImageStatus::PendingDelete {
            continue;
        }
        let due = rec
            .deleted_at
            .as_deref()
            .and_then(parse_time)
            .is_none_or(|t| now - t >= scrub_time);
        if !due {
            pass.waiting += 1;
            continue;
        }
        let id = rec.id.clone();
        let main_id = stores.default_id().map(str::to_string);
        let purged = store
            .transact(move |tx| {
                let Some(cur) =
                    repo::read_locked(tx, &id)?.filter(|r| r.status == ImageStatus::PendingDelete)
                else {
                    return Ok(None);
                };
                purge(tx, &cur, main_id.as_deref()).map(Some)
            })
            .await?;
        if let Some(elsewhere) = purged {
            delete_elsewhere(stores, elsewhere).await;
            tracing::info!(image = %rec.id, "scrubber purged the image");
            pass.purged += 1;
        }
    }
    Ok(pass)
}

/// Deletes an image record and its data in the main store (the staged data too) in `tx`;
/// returns the blobs other backends hold, for `delete_elsewhere` once `tx` has committed
/// (`main_id`: the default backend's id, whose data is in the main store).
pub fn purge(
    tx: &mut glint_storage::Tx<'_>,
    rec: &ImageRecord,
    main_id: Option<&str>,
) -> glint_storage::Result<Vec<(String, BlobId)>> {
    let mut elsewhere = Vec::new();
    if let Some(b) = rec.staged.as_ref().map(|s| s.blob) {
        tx.delete_blob(b)?;
    }
    for (store, blob) in rec.locations() {
        match store {
            Some(s) if Some(s) != main_id => elsewhere.push((s.to_string(), blob)),
            _ => tx.delete_blob(blob)?,
        }
    }
    repo::remove(tx, &rec.id)?;
    Ok(elsewhere)
}

/// Deletes blobs in other backends after the image record that named them is gone (a
/// failure leaves an orphan that `Stores::reconcile` removes at the next start).
pub async fn delete_elsewhere(stores: &Stores, blobs: Vec<(String, BlobId)>) {
    for (store, blob) in blobs {
        if let Err(e) = stores.store(Some(&store)).delete(blob).await {
            tracing::warn!(%store, %blob, error = %e, "backend blob left for reconciliation");
        }
    }
}

/// Brings a `pending_delete` image back to `active`; false when there is no such image.
pub async fn restore(stores: &Stores, id: &str) -> glint_storage::Result<bool> {
    let key = id.to_string();
    stores
        .main()
        .transact(move |tx| {
            let Some(mut rec) = repo::read_locked(tx, &key)? else {
                return Ok(false);
            };
            if !rec.move_status(ImageStatus::PendingDelete, ImageStatus::Active) {
                return Ok(false);
            }
            rec.deleted_at = None;
            repo::write(tx, &mut rec)?;
            Ok(true)
        })
        .await
}

/// The in-process scrubber: a pass every `wakeup`, until the server stops.
pub fn spawn_periodic(
    background: &crate::shutdown::Background,
    stores: Arc<Stores>,
    scrub_time: Duration,
    wakeup: Duration,
) {
    let bg = background.clone();
    background.spawn(async move {
        let mut tick = tokio::time::interval(wakeup.max(Duration::from_secs(1)));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = bg.stopping() => return,
            }
            if let Err(e) = scrub_once(&stores, scrub_time).await {
                tracing::error!(error = %e, "scrubber pass failed");
            }
        }
    });
}
