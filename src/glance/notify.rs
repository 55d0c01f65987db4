//! Notifications in oslo.messaging's message shape (`message_id`, `publisher_id`,
//! `event_type`, `priority`, `payload`, `timestamp`), one JSON document per line to the file
//! `[oslo_messaging_notifications] jsonl_file` names (no file, or `driver = noop`: off).
//! A dedicated thread appends and flushes each line, so request handlers never wait on disk.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;

use serde_json::{json, Value};

use super::record::ImageRecord;

pub struct Notifier {
    tx: Option<mpsc::Sender<String>>,
    publisher: String,
}

impl Notifier {
    pub fn open(path: Option<&Path>) -> std::io::Result<Notifier> {
        let publisher = format!(
            "image.{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into())
        );
        let Some(path) = path else {
            return Ok(Notifier {
                tx: None,
                publisher,
            });
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("glint-notify".into())
            .spawn(move || {
                for line in rx {
                    if let Err(e) = file.write_all(line.as_bytes()).and_then(|_| file.flush()) {
                        tracing::error!(error = %e, "notification could not be written");
                    }
                }
            })?;
        Ok(Notifier {
            tx: Some(tx),
            publisher,
        })
    }

    pub fn emit(&self, event_type: &str, payload: Value) {
        let Some(tx) = &self.tx else { return };
        let timestamp = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
            ))
            .unwrap_or_default();
        let msg = json!({
            "message_id": super::uuid_v4(),
            "publisher_id": self.publisher,
            "event_type": event_type,
            "priority": "INFO",
            "payload": payload,
            "timestamp": timestamp,
        });
        let _ = tx.send(format!("{msg}\n"));
    }

    /// An image event with upstream's image payload.
    pub fn image(&self, event_type: &str, rec: &ImageRecord) {
        if self.tx.is_some() {
            self.emit(event_type, image_payload(rec));
        }
    }
}

/// The image as Glance's notifier formats it.
pub fn image_payload(r: &ImageRecord) -> Value {
    json!({
        "id": r.id, "name": r.name, "status": r.status, "created_at": r.created_at,
        "updated_at": r.updated_at, "min_disk": r.min_disk, "min_ram": r.min_ram,
        "protected": r.protected, "checksum": r.checksum, "owner": r.owner,
        "disk_format": r.disk_format, "container_format": r.container_format, "size": r.size,
        "virtual_size": r.virtual_size, "is_public": r.visibility == "public",
        "visibility": r.visibility, "properties": r.extra, "tags": r.tags,
        "deleted": r.status.is_deleted(),
        "deleted_at": r.deleted_at, "os_hash_algo": r.os_hash_algo,
        "os_hash_value": r.os_hash_value, "os_hidden": r.os_hidden,
    })
}
