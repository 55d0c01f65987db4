//! Image data: `PUT /v2/images/{id}/file` streams into the engine computing size, MD5
//! (`checksum`) and SHA-512 (`os_hash_value`) in one pass, with the status machine of
//! API.md §5 (queued → saving → active; any failure back to queued with nothing kept);
//! `GET /v2/images/{id}/file` streams it back with `Content-MD5`, Range and 204.

use glint_storage::{BlobId, DigestSet, WriteOptions};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use std::sync::{Arc, Mutex};

use futures::TryStreamExt;

use super::image::{load_visible, read_image, update, write_image};
use super::inspect::Inspector;
use super::{ApiError, ApiResult, Caller, Glance};
use crate::body;

pub async fn upload(
    g: &Glance,
    caller: &Caller,
    id: &str,
    parts: &http::request::Parts,
    incoming: Incoming,
) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    if !rec.may_modify(caller) {
        return Err(ApiError::forbidden(
            "You are not authorized to complete upload_image action.",
        ));
    }
    if parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        != Some("application/octet-stream")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Content-Type",
        ));
    }
    if let Some(v) = parts.headers.get("x-openstack-image-size") {
        if v.to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_none()
        {
            return Err(ApiError::bad(
                "x-openstack-image-size header must be an integer",
            ));
        }
    }
    if rec.status != "queued" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Image status transition from {} to saving is not allowed",
                rec.status
            ),
        ));
    }
    if rec.disk_format.is_none() || rec.container_format.is_none() {
        return Err(ApiError::bad(
            "Properties disk_format, container_format must be set prior to saving data.",
        ));
    }
    update(g, &rec.id, |r| match r.status.as_str() {
        "queued" => {
            r.status = "saving".into();
            Ok(())
        }
        other => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Image status transition from {other} to saving is not allowed"),
        )),
    })
    .await?;
    // With container_format bare the bytes are inspected on their way to the engine.
    let inspector = (rec.container_format.as_deref() == Some("bare"))
        .then(|| Arc::new(Mutex::new(Inspector::new())));
    let tap = inspector.clone();
    let stream = incoming.into_data_stream().inspect_ok(move |piece| {
        if let Some(i) = &tap {
            i.lock().expect("inspector lock").feed(piece);
        }
    });
    let written = g
        .store
        .write(
            stream,
            WriteOptions {
                digests: DigestSet::MD5 | DigestSet::SHA512,
                max_size: Some(g.cfg.image_size_cap),
            },
        )
        .await;
    let staged = match written {
        Ok(s) => s,
        Err(e) => {
            // Its chunks are already released.
            restore_queued(g, &rec.id).await;
            return Err(e.into());
        }
    };
    let d = staged.digests().clone();
    let size = staged.size();
    let mut virtual_size = None;
    if let Some(i) = inspector {
        let inspector = std::mem::take(&mut *i.lock().expect("inspector lock"));
        let declared = rec.disk_format.clone().unwrap_or_default();
        match inspector.finish(&declared, size) {
            Ok(v) => virtual_size = v.virtual_size,
            Err(refusal) => {
                drop(staged); // unpinned: its chunks are reclaimed
                restore_queued(g, &rec.id).await;
                tracing::warn!(image = %rec.id, %refusal, "upload refused by format inspection");
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "The request media type application/octet-stream is not supported by this server.\n\n{refusal}"
                    ),
                ));
            }
        }
    }
    let key = rec.id.clone();
    let activated = g
        .store
        .transact(move |tx| {
            let Some(mut rec) = read_image(tx, &key)?.filter(|r| r.status == "saving") else {
                return Ok(false);
            };
            let blob = tx.add_blob(&staged)?;
            rec.blob = Some(blob.to_hex());
            rec.status = "active".into();
            rec.size = Some(size);
            rec.virtual_size = virtual_size;
            rec.checksum = d.md5.map(hex::encode);
            rec.os_hash_algo = Some("sha512".into());
            rec.os_hash_value = d.sha512.map(hex::encode);
            write_image(tx, &mut rec)?;
            Ok(true)
        })
        .await?;
    if !activated {
        return Err(ApiError::new(
            StatusCode::GONE,
            "Image was deleted during the upload",
        ));
    }
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("content-type", "text/html; charset=UTF-8")
        .body(body::empty())
        .expect("valid"))
}

/// A failed upload returns the image to `queued` with no size. An image deleted meanwhile
/// has nothing to restore: the upload's own error stands.
async fn restore_queued(g: &Glance, id: &str) {
    let _ = update(g, id, |r| {
        if r.status == "saving" {
            r.status = "queued".into();
            r.size = None;
            r.virtual_size = None;
        }
        Ok(())
    })
    .await;
}

pub async fn download(
    g: &Glance,
    caller: &Caller,
    id: &str,
    parts: &http::request::Parts,
) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    if !caller.is_admin() && !caller.has_role("member") {
        return Err(ApiError::forbidden(
            "You are not authorized to complete download_image action.",
        ));
    }
    if rec.status == "deactivated" && !caller.is_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    let (Some(blob), Some(size)) = (
        rec.blob.as_deref().and_then(|b| b.parse::<BlobId>().ok()),
        rec.size,
    ) else {
        return Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(body::empty())
            .expect("valid"));
    };
    let mut status = StatusCode::OK;
    let mut range = None;
    // A legacy `Content-Range: bytes a-b/*` request header also asks for a range.
    let legacy = parts
        .headers
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes "))
        .and_then(|v| v.split('/').next())
        .map(|r| format!("bytes={r}"));
    let requested = parts
        .headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(legacy);
    if let Some(r) = requested {
        let spec = r
            .trim()
            .strip_prefix("bytes=")
            .ok_or_else(|| ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "Invalid Range"))?;
        if spec.contains(',') {
            return Err(ApiError::bad("Multiple ranges are not supported"));
        }
        let (a, b) = spec
            .split_once('-')
            .ok_or_else(|| ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "Invalid Range"))?;
        let unsat = || {
            ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "Requested range not satisfiable",
            )
        };
        let (start, end) = match (a.trim().parse::<u64>(), b.trim().parse::<u64>()) {
            (Ok(a), Ok(b)) if a <= b => (a, (b + 1).min(size)),
            (Ok(a), Err(_)) if b.trim().is_empty() => (a, size),
            (Err(_), Ok(n)) if a.trim().is_empty() && n > 0 => (size.saturating_sub(n), size),
            _ => return Err(unsat()),
        };
        if start >= size {
            return Err(unsat());
        }
        status = StatusCode::PARTIAL_CONTENT;
        range = Some(start..end);
    }
    let (_, reader) = g.store.read(blob, range.clone()).await?;
    let len = range.as_ref().map_or(size, |r| r.end - r.start);
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/octet-stream")
        .header("content-length", len);
    if let Some(c) = &rec.checksum {
        b = b.header("content-md5", c.as_str());
    }
    if let Some(r) = &range {
        b = b.header(
            "content-range",
            format!("bytes {}-{}/{}", r.start, r.end - 1, size),
        );
    }
    Ok(b.body(body::blob(reader)).expect("valid"))
}
