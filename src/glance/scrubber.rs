//! Delayed delete (`delayed_delete = True`): deleting an image that has data only marks it
//! `pending_delete` (invisible through the API at once, its bytes kept); the scrubber
//! purges such images once they have waited `scrub_time`, or restores one to `active`.
//! It runs inside the server every `wakeup_time` seconds, or as `glint scrubber` while the
//! server is stopped (the embedded catalog admits one process at a time).

use crate::images::repo;
use crate::images::ImageStatus;
use std::time::Duration;

use std::sync::Arc;

use super::listing::parse_time;
use super::stores::Stores;

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScrubPass {
    pub purged: usize,
    /// Pending images still inside their `scrub_time`.
    pub waiting: usize,
}

/// Purges every `pending_delete` image deleted at least `scrub_time` ago.
pub async fn scrub_once(
    stores: &Arc<Stores>,
    scrub_time: Duration,
) -> glint_storage::Result<ScrubPass> {
    let store = stores.main();
    let now = time::OffsetDateTime::now_utc();
    let mut pass = ScrubPass::default();
    for rec in crate::images::index::with_status(store, &["pending_delete"]).await? {
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
        let all_stores = stores.clone();
        let purged = store
            .transact(move |tx| {
                let Some(cur) =
                    repo::read_locked(tx, &id)?.filter(|r| r.status == ImageStatus::PendingDelete)
                else {
                    return Ok(None);
                };
                repo::purge(tx, &cur, &all_stores).map(Some)
            })
            .await?;
        if let Some(elsewhere) = purged {
            stores.delete_elsewhere(elsewhere).await;
            tracing::info!(image = %rec.id, "scrubber purged the image");
            pass.purged += 1;
        }
    }
    Ok(pass)
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
