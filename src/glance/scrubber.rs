//! Delayed delete (`delayed_delete = True`): deleting an image that has data only marks it
//! `pending_delete` (invisible through the API at once, its bytes kept); the scrubber
//! purges such images once they have waited `scrub_time`, or restores one to `active`.
//! It runs inside the server every `wakeup_time` seconds, or as `glint scrubber` while the
//! server is stopped (the embedded catalog admits one process at a time).

use std::time::Duration;

use glint_storage::{BlobId, Catalog, Store};

use super::image::{read_image, write_image};
use super::listing::parse_time;
use super::record::ImageRecord;

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScrubPass {
    pub purged: usize,
    /// Pending images still inside their `scrub_time`.
    pub waiting: usize,
}

/// Purges every `pending_delete` image deleted at least `scrub_time` ago.
pub async fn scrub_once(store: &Store, scrub_time: Duration) -> glint_storage::Result<ScrubPass> {
    let rows = store
        .scan(Catalog::Images, Vec::new(), None, usize::MAX)
        .await?;
    let now = time::OffsetDateTime::now_utc();
    let mut pass = ScrubPass::default();
    for (key, value) in rows {
        let Some(rec) = ImageRecord::decode(&value).filter(|r| r.status == "pending_delete") else {
            continue;
        };
        let due = rec
            .deleted_at
            .as_deref()
            .and_then(parse_time)
            .is_none_or(|t| now - t >= scrub_time);
        if !due {
            pass.waiting += 1;
            continue;
        }
        let id = String::from_utf8_lossy(&key).into_owned();
        let purged = store
            .transact(move |tx| {
                let Some(cur) = read_image(tx, &id)?.filter(|r| r.status == "pending_delete")
                else {
                    return Ok(false);
                };
                purge(tx, &cur)?;
                Ok(true)
            })
            .await?;
        if purged {
            tracing::info!(image = %rec.id, "scrubber purged the image");
            pass.purged += 1;
        }
    }
    Ok(pass)
}

/// Deletes an image record and its data (the staged data too) in `tx`.
pub fn purge(tx: &mut glint_storage::Tx<'_>, rec: &ImageRecord) -> glint_storage::Result<()> {
    let staged = rec.staged.as_ref().map(|s| s.blob.as_str());
    for b in [rec.blob.as_deref(), staged].into_iter().flatten() {
        if let Ok(b) = b.parse::<BlobId>() {
            tx.delete_blob(b)?;
        }
    }
    tx.delete(Catalog::Images, rec.id.as_bytes())
}

/// Brings a `pending_delete` image back to `active`; false when there is no such image.
pub async fn restore(store: &Store, id: &str) -> glint_storage::Result<bool> {
    let key = id.to_string();
    store
        .transact(move |tx| {
            let Some(mut rec) = read_image(tx, &key)?.filter(|r| r.status == "pending_delete")
            else {
                return Ok(false);
            };
            rec.status = "active".into();
            rec.deleted_at = None;
            write_image(tx, &mut rec)?;
            Ok(true)
        })
        .await
}

/// The in-process scrubber: a pass every `wakeup`.
pub fn spawn_periodic(store: Store, scrub_time: Duration, wakeup: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(wakeup.max(Duration::from_secs(1)));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = scrub_once(&store, scrub_time).await {
                tracing::error!(error = %e, "scrubber pass failed");
            }
        }
    });
}
