//! Image data: `PUT /v2/images/{id}/file` streams into the engine computing size, MD5
//! (`checksum`) and SHA-512 (`os_hash_value`) in one pass, with the status machine of
//! API.md §5 (queued → saving → active; any failure back to queued with nothing kept);
//! `PUT /v2/images/{id}/stage` keeps the data for a later glance-direct import;
//! `GET /v2/images/{id}/file` streams it back with `Content-MD5`, Range and 204.
//! `ingest` and `activate` are shared with the import methods.

use crate::images::repo;
use crate::images::ImageStatus;
use std::sync::{Arc, Mutex};

use crate::request_body::RequestBody;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use glint_storage::{BlobId, DigestSet, StagedBlob, WriteOptions};
use http::{Response, StatusCode};
use http_body_util::BodyExt;

use super::image::{load_visible, update};
use super::inspect::{Findings, Inspector, Refusal};
use super::record::{ImageRecord, Multihash, Staged};
use super::{ApiError, ApiResult, Caller, Glance};
use crate::body;
use crate::config::HashAlgo;

/// Data written to the engine (not yet part of any image) and what it is.
pub struct Ingested {
    pub staged: StagedBlob,
    pub size: u64,
    pub md5: Option<String>,
    pub os_hash: Option<Multihash>,
    pub findings: Findings,
}

/// The digests an image's data needs: MD5 (`checksum`) and the multihash's algorithm.
pub fn image_digests(algo: HashAlgo) -> DigestSet {
    DigestSet::MD5
        | match algo {
            HashAlgo::Sha512 => DigestSet::SHA512,
            HashAlgo::Sha256 => DigestSet::SHA256,
            HashAlgo::Sha1 => DigestSet::SHA1,
            HashAlgo::Md5 => DigestSet::MD5,
        }
}

/// The multihash under `algo` of data whose digests are `d` (None if it was not computed).
pub fn multihash(algo: HashAlgo, d: &glint_storage::Digests) -> Option<Multihash> {
    let value = match algo {
        HashAlgo::Sha512 => d.sha512.map(hex::encode),
        HashAlgo::Sha256 => d.sha256.map(hex::encode),
        HashAlgo::Sha1 => d.sha1.map(hex::encode),
        HashAlgo::Md5 => d.md5.map(hex::encode),
    }?;
    Some(Multihash {
        algo: algo.name().into(),
        value,
    })
}

/// The most bytes an image of `owner` may take now: `image_size_cap`, and what is left of
/// the project's `user_storage_quota` (the data of its images, staged data included).
pub async fn size_limit(g: &Glance, owner: Option<&str>) -> Result<u64, glint_storage::StoreError> {
    let cap = g.cfg.image_size_cap;
    let quota = g.opts().user_storage_quota;
    let Some(owner) = owner.filter(|_| quota > 0) else {
        return Ok(cap);
    };
    let used: u64 = crate::images::index::owned_by(&g.store, owner)
        .await?
        .iter()
        .filter(|r| r.owner.as_deref() == Some(owner))
        .map(|r| {
            let data = if r.blob.is_some() {
                r.size.unwrap_or(0)
            } else {
                0
            };
            data + r.staged.as_ref().map_or(0, |s| s.size)
        })
        .sum();
    Ok(cap.min(quota.saturating_sub(used)))
}

/// Streams `stream` into the engine, hashing and inspecting it on the way; memory stays
/// bounded whatever the size. At most `limit` bytes are taken (413 beyond).
pub async fn ingest<S, E>(
    store: &glint_storage::Store,
    stream: S,
    limit: u64,
    algo: HashAlgo,
) -> Result<Ingested, glint_storage::StoreError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let inspector = Arc::new(Mutex::new(Inspector::new()));
    let tap = inspector.clone();
    let stream = stream.inspect_ok(move |piece| {
        tap.lock().expect("inspector lock").feed(piece);
    });
    let staged = store
        .write(
            stream,
            WriteOptions {
                digests: image_digests(algo),
                max_size: Some(limit),
            },
        )
        .await?;
    let inspector = std::mem::take(&mut *inspector.lock().expect("inspector lock"));
    let d = staged.digests().clone();
    let size = staged.size();
    Ok(Ingested {
        findings: inspector.conclude(size),
        md5: d.md5.map(hex::encode),
        os_hash: multihash(algo, &d),
        size,
        staged,
    })
}

/// The bytes an image is about to become active with.
pub enum NewData {
    /// Just written: committed with the image.
    Fresh(Box<StagedBlob>),
    /// Already a committed blob (staged data, a cloned S3 object): the image takes it over.
    Committed(BlobId),
}

/// Makes the image active with the given data if it is still in `from` (the status its
/// upload or import moved it to); false when it is not (deleted or changed meanwhile: the
/// caller's data is then dropped and reclaimed). `also` applies further changes in the same
/// transaction.
#[allow(clippy::too_many_arguments)]
pub async fn activate<F>(
    g: &Glance,
    id: &str,
    from: ImageStatus,
    store: Option<String>,
    data: NewData,
    meta: (u64, Option<String>, Option<Multihash>, Option<u64>),
    also: F,
) -> Result<bool, ApiError>
where
    F: Fn(&mut ImageRecord) + Send + 'static,
{
    let key = id.to_string();
    let (size, md5, os_hash, virtual_size) = meta;
    // Data for another backend is committed there first (see stores.rs).
    let (data, elsewhere) = match data {
        NewData::Fresh(staged) if !g.stores.is_main(store.as_deref()) => {
            let b = g.stores.store(store.as_deref()).commit(*staged).await?;
            (NewData::Committed(b), Some(b))
        }
        other => (other, None),
    };
    let target = store.clone();
    let activated = g
        .store
        .transact(move |tx| {
            let Some(mut rec) = repo::read_locked(tx, &key)? else {
                return Ok(false);
            };
            if !rec.move_status(from, ImageStatus::Active) {
                return Ok(false);
            }
            let blob = match &data {
                NewData::Fresh(staged) => tx.add_blob(staged)?,
                NewData::Committed(b) => *b,
            };
            rec.blob = Some(blob);
            rec.store = target.clone();
            rec.copies.clear();
            rec.size = Some(size);
            rec.virtual_size = virtual_size;
            rec.checksum = md5.clone();
            rec.set_multihash(os_hash.clone());
            also(&mut rec);
            repo::write(tx, &mut rec)?;
            Ok(true)
        })
        .await?;
    if let (false, Some(b)) = (activated, elsewhere) {
        let _ = g.stores.store(store.as_deref()).delete(b).await;
    }
    Ok(activated)
}

/// The backend a request's data goes to: `X-Image-Meta-Store` (multiple stores only; an
/// unknown id is 400) or the default.
pub fn target_store(g: &Glance, headers: &http::HeaderMap) -> Result<Option<String>, ApiError> {
    if !g.stores.multi() {
        return Ok(None);
    }
    match headers
        .get("x-image-meta-store")
        .and_then(|v| v.to_str().ok())
    {
        Some(id) if g.stores.known(id.trim()) => Ok(Some(id.trim().to_string())),
        Some(id) => Err(ApiError::bad(format!(
            "Store for identifier {id} not found"
        ))),
        None => Ok(g.stores.default_id().map(str::to_string)),
    }
}

/// Upstream's answer to data that fails inspection.
pub fn refused(refusal: &Refusal) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "The request media type application/octet-stream is not supported by this server.\n\n{refusal}"
        ),
    )
}

/// The checks upload and stage share: policy, Content-Type, the size hint.
async fn check_data_request(
    g: &Glance,
    caller: &Caller,
    id: &str,
    parts: &http::request::Parts,
    action: &str,
) -> Result<ImageRecord, ApiError> {
    let rec = load_visible(g, caller, id).await?;
    g.enforce(action, caller, &rec)?;
    if parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
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
    Ok(rec)
}

/// Moves the image from queued to `to` (409 from any other status).
async fn begin(g: &Glance, id: &str, to: ImageStatus, need_formats: bool) -> Result<(), ApiError> {
    // Whose operation this is, for a cluster whose other nodes may have to roll it back.
    let worker = g.store.node_id().await?;
    update(g, id, move |r| {
        if !(r.status == ImageStatus::Queued && r.status.can_become(to)) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "Image status transition from {} to {to} is not allowed",
                    r.status
                ),
            ));
        }
        if need_formats && (r.disk_format.is_none() || r.container_format.is_none()) {
            return Err(ApiError::bad(
                "Properties disk_format, container_format must be set prior to saving data.",
            ));
        }
        r.move_status(ImageStatus::Queued, to);
        r.worker = worker;
        Ok(())
    })
    .await
    .map(|_| ())
}

pub async fn upload(
    g: &Glance,
    caller: &Caller,
    id: &str,
    parts: &http::request::Parts,
    incoming: RequestBody,
) -> ApiResult {
    let rec = check_data_request(g, caller, id, parts, "upload_image").await?;
    let target = target_store(g, &parts.headers)?;
    begin(g, &rec.id, ImageStatus::Saving, true).await?;
    g.notifier.image("image.prepare", &rec);
    let limit = size_limit(g, rec.owner.as_deref()).await?;
    let store = g.stores.store(target.as_deref()).clone();
    let algo = g.opts().hashing_algorithm;
    let data = match ingest(&store, incoming.into_data_stream(), limit, algo).await {
        Ok(d) => d,
        Err(e) => {
            restore_queued(g, &rec.id, ImageStatus::Saving, None).await;
            return Err(e.into());
        }
    };
    // Inspection applies to bare containers only, as upstream.
    let mut virtual_size = None;
    if rec.container_format.as_deref() == Some("bare") {
        let declared = rec.disk_format.clone().unwrap_or_default();
        match data
            .findings
            .verdict_with(&declared, g.opts().require_image_format_match)
        {
            Ok(v) => virtual_size = v.virtual_size,
            Err(refusal) => {
                tracing::warn!(image = %rec.id, %refusal, "upload refused by format inspection");
                // Upstream keeps the refused bytes' checksums on the queued image.
                let sums = (data.md5.clone(), data.os_hash.clone());
                drop(data); // unpinned: its chunks are reclaimed
                restore_queued(g, &rec.id, ImageStatus::Saving, Some(sums)).await;
                return Err(refused(&refusal));
            }
        }
    }
    let meta = (data.size, data.md5, data.os_hash, virtual_size);
    if !activate(
        g,
        &rec.id,
        ImageStatus::Saving,
        target,
        NewData::Fresh(Box::new(data.staged)),
        meta,
        |_| {},
    )
    .await?
    {
        return Err(ApiError::new(
            StatusCode::GONE,
            "Image was deleted during the upload",
        ));
    }
    if let Ok(now) = load_visible(g, caller, &rec.id).await {
        g.notifier.image("image.upload", &now);
        g.notifier.image("image.activate", &now);
    }
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("content-type", "text/html; charset=UTF-8")
        .body(body::empty())
        .expect("valid"))
}

/// `PUT /v2/images/{id}/stage`: queued → uploading with the data kept (committed as its
/// own blob) for a glance-direct import; its size shows, its checksums come with the
/// import. Formats are checked at import, not here.
pub async fn stage(
    g: &Glance,
    caller: &Caller,
    id: &str,
    parts: &http::request::Parts,
    incoming: RequestBody,
) -> ApiResult {
    if !g
        .opts()
        .enabled_import_methods
        .iter()
        .any(|m| m == "glance-direct")
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        ));
    }
    let rec = check_data_request(g, caller, id, parts, "modify_image").await?;
    begin(g, &rec.id, ImageStatus::Uploading, false).await?;
    let limit = size_limit(g, rec.owner.as_deref()).await?;
    // Staged data lives in the main store (upstream's os_glance_staging_store).
    let algo = g.opts().hashing_algorithm;
    let data = match ingest(&g.store, incoming.into_data_stream(), limit, algo).await {
        Ok(d) => d,
        Err(e) => {
            restore_queued(g, &rec.id, ImageStatus::Uploading, None).await;
            return Err(e.into());
        }
    };
    let key = rec.id.clone();
    let kept = g
        .store
        .transact(move |tx| {
            let Some(mut r) =
                repo::read_locked(tx, &key)?.filter(|r| r.status == ImageStatus::Uploading)
            else {
                return Ok(false);
            };
            let blob = tx.add_blob(&data.staged)?;
            r.size = Some(data.size);
            r.staged = Some(Staged {
                blob,
                size: data.size,
                md5: data.md5.clone(),
                os_hash: data.os_hash.clone(),
                legacy_sha512: None,
                findings: data.findings.clone(),
            });
            repo::write(tx, &mut r)?;
            Ok(true)
        })
        .await?;
    if !kept {
        return Err(ApiError::new(
            StatusCode::GONE,
            "Image was deleted during the upload",
        ));
    }
    super::no_content()
}

/// A failed upload or stage returns the image from `from` to `queued` with no size;
/// `sums` are kept when inspection refused the bytes (as upstream). An image deleted
/// meanwhile has nothing to restore: the upload's own error stands.
async fn restore_queued(
    g: &Glance,
    id: &str,
    from: ImageStatus,
    sums: Option<(Option<String>, Option<Multihash>)>,
) {
    let _ = update(g, id, move |r| {
        if r.move_status(from, ImageStatus::Queued) {
            r.size = None;
            r.virtual_size = None;
            if let Some((md5, os_hash)) = &sums {
                r.checksum = md5.clone();
                r.set_multihash(os_hash.clone());
            }
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
    // The one check before image bytes leave (the S3 images bucket makes the same call).
    let rec = g
        .images
        .readable(caller, id)
        .await
        .map_err(|e| super::image::read_error(e, id))?;
    // `?prefer=a,b` orders the stores to read from (multiple stores; unknown ids are 400).
    let prefer: Vec<String> = crate::http_util::query_params(parts.uri.query().unwrap_or(""))
        .into_iter()
        .filter(|(k, _)| k == "prefer")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = prefer
        .iter()
        .find(|p| g.stores.multi() && !g.stores.known(p))
    {
        return Err(ApiError::bad(format!(
            "Store for identifier {bad} not found"
        )));
    }
    let locations = rec.locations();
    let chosen = prefer
        .iter()
        .find_map(|p| locations.iter().find(|(s, _)| *s == Some(p.as_str())))
        .or(locations.first())
        .map(|(s, b)| (s.map(str::to_string), *b));
    let (Some((store_id, blob)), Some(size)) = (chosen, rec.size) else {
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
        // As upstream (webob's Range): several ranges are 400, anything unparsable or
        // unsatisfiable (including `first > last`) 416; a last position past the end clips.
        let unsat = || {
            ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "Requested range not satisfiable",
            )
        };
        let span = match crate::range::parse(&r) {
            Ok(r) => r.resolve(size).ok_or_else(unsat)?,
            Err(crate::range::RangeError::Multiple) => {
                return Err(ApiError::bad("Multiple ranges are not supported"))
            }
            Err(crate::range::RangeError::Invalid) => {
                return Err(ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "Invalid Range",
                ))
            }
        };
        status = StatusCode::PARTIAL_CONTENT;
        range = Some(span);
    }
    let (_, reader) = g
        .stores
        .store(store_id.as_deref())
        .read(blob, range.clone())
        .await?;
    g.notifier.emit(
        "image.send",
        serde_json::json!({
            "image_id": rec.id, "owner_id": rec.owner,
            "receiver_tenant_id": caller.project, "receiver_user_id": caller.user,
            "bytes_sent": range.as_ref().map_or(size, |r| r.end - r.start),
        }),
    );
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
    Ok(b.body(body::blob(reader).await?).expect("valid"))
}
