//! Interoperable image import (`POST /v2/images/{id}/import`, API.md §9): glance-direct
//! (adopts the staged blob), web-download (fetches an allowed URI, streaming), copy-image
//! (one store: nothing to copy), and Glint's own `glint-s3-object`, which makes an image of
//! an S3 object already in this store without copying a byte (the image references the
//! object's chunks). Each import is a task (`api_image_import`) that runs in the
//! background; the image shows progress through its status and `os_glance_*` properties.

use crate::images::repo;
use crate::images::ImageStatus;
use std::sync::Arc;

use crate::request_body::RequestBody;
use futures::StreamExt;
use glint_storage::{BlobId, DigestSet, Hasher};
use http::StatusCode;
use serde_json::{json, Value};

use super::data::{activate, image_digests, ingest, multihash, refused, size_limit, NewData};
use super::image::{load_visible, update};
use super::inspect::Inspector;
use super::record::ImageRecord;
use super::tasks::{self, TaskRecord};
use super::{read_json_body, ApiError, ApiResult, Caller, Glance};

const LOCK: &str = "os_glance_import_task";
const IMPORTING: &str = "os_glance_importing_to_stores";
const FAILED: &str = "os_glance_failed_import";

/// What an import request asked for, validated.
enum Method {
    GlanceDirect,
    WebDownload(super::uri_filter::Target),
    CopyImage,
    S3Object { blob: BlobId },
}

pub async fn start(
    g: &Arc<Glance>,
    caller: &Caller,
    id: &str,
    headers: &http::HeaderMap,
    incoming: RequestBody,
) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    let body = read_json_body(incoming).await?;
    g.enforce("modify_image", caller, &rec)?;
    let name = method_name(g, &body)?;
    check_importable(&rec, name)?;
    let method = resolve_method(g, caller, &rec, name, &body).await?;
    let copying = matches!(method, Method::CopyImage);
    let targets = targets(g, &rec, &body, headers, copying)?;
    if copying && targets.is_empty() {
        // Every store has the image already (or there is one store): nothing to copy.
        return accepted();
    }
    let input =
        json!({"image_id": rec.id, "import_req": Value::Object(body.clone()), "backend": [null]});
    let mut task = TaskRecord::new("api_image_import", caller, Some(rec.id.clone()), input);
    let worker = g.store.node_id().await?;
    task.worker = worker;
    tasks::save(g, &task).await?;
    let task_id = task.id.clone();
    let from = rec.status;
    let to_stores = targets.join(",");
    update(g, &rec.id, move |r| {
        if r.status != from || r.extra.contains_key(LOCK) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Image changed while the import was being set up",
            ));
        }
        if !copying && !r.move_status(from, ImageStatus::Importing) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Image status transition from {from} to importing is not allowed"),
            ));
        }
        r.extra.insert(LOCK.into(), task_id.clone());
        r.worker = worker;
        r.extra.insert(IMPORTING.into(), to_stores.clone());
        r.extra.insert(FAILED.into(), String::new());
        Ok(())
    })
    .await?;
    let g = g.clone();
    let image = rec.clone();
    g.background.clone().spawn(async move {
        let _ = tasks::set_status(&g, &mut task, "processing", "").await;
        // A stop cuts the import short; it then fails as it would on an error.
        let outcome = tokio::select! {
            r = run(&g, &image, method, &targets) => r,
            _ = g.background.stopping() => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The import was interrupted: the server is stopping.",
            )),
        };
        match outcome {
            Ok(message) => {
                if let Ok(now) = load_current(&g, &image.id).await {
                    g.notifier.image("image.activate", &now);
                }
                let _ = tasks::set_status(&g, &mut task, "success", message).await;
            }
            Err(e) => {
                tracing::warn!(image = %image.id, error = %e.message, "import failed");
                fail(&g, &image.id).await;
                let _ = tasks::set_status(&g, &mut task, "failure", e.message).await;
            }
        }
    });
    accepted()
}

/// The import method the body names, if enabled (400 otherwise).
fn method_name<'a>(
    g: &Glance,
    body: &'a serde_json::Map<String, Value>,
) -> Result<&'a str, ApiError> {
    for flag in ["all_stores", "all_stores_must_succeed"] {
        if body.get(flag).is_some_and(|v| !v.is_boolean()) {
            return Err(ApiError::bad(format!("{flag} must be a boolean")));
        }
    }
    let name = body
        .get("method")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("Import request requires a 'method' field."))?;
    if !g.opts().enabled_import_methods.iter().any(|m| m == name) {
        return Err(ApiError::bad(format!(
            "Unknown import method name '{name}'."
        )));
    }
    Ok(name)
}

/// Whether the image can take an import by `name` now: its status (409s first, as upstream
/// checks them), no import under way, formats set.
fn check_importable(rec: &ImageRecord, name: &str) -> Result<(), ApiError> {
    let conflict = |m: String| Err(ApiError::new(StatusCode::CONFLICT, m));
    match (name, rec.status) {
        ("copy-image", ImageStatus::Active) => {}
        ("copy-image", _) => {
            return conflict("Only images with status active can be targeted for copying".into())
        }
        ("glance-direct", ImageStatus::Uploading) => {}
        ("glance-direct", ImageStatus::Queued) => {
            return conflict(
                "Image needs to be staged before 'glance-direct' method can be used".into(),
            )
        }
        (_, ImageStatus::Queued) if name != "glance-direct" => {}
        (_, status) => {
            return conflict(format!(
                "Image with status {status} cannot be target for import"
            ))
        }
    }
    if rec.extra.contains_key(LOCK) {
        return conflict("Image is already being imported".into());
    }
    if name != "copy-image" && (rec.disk_format.is_none() || rec.container_format.is_none()) {
        return conflict(
            "'disk_format' and 'container_format' need to be set before import".into(),
        );
    }
    Ok(())
}

/// What the method needs, checked: a filtered URI, the right to copy, a readable S3 object.
async fn resolve_method(
    g: &Glance,
    caller: &Caller,
    rec: &ImageRecord,
    name: &str,
    body: &serde_json::Map<String, Value>,
) -> Result<Method, ApiError> {
    let uri = body["method"].get("uri").and_then(Value::as_str);
    Ok(match name {
        "glance-direct" => Method::GlanceDirect,
        "web-download" => {
            let target = match uri {
                Some(u) => super::uri_filter::check(u, &g.opts().import_filter).await,
                None => None,
            };
            Method::WebDownload(target.ok_or_else(|| {
                ApiError::bad(format!(
                    "URI for web-download does not pass filtering: {}",
                    uri.unwrap_or("None")
                ))
            })?)
        }
        "copy-image" => {
            g.enforce("copy_image", caller, rec)?;
            // Copying reads the image's bytes: the one read check applies.
            g.images
                .readable(caller, &rec.id)
                .await
                .map_err(|e| super::image::read_error(e, &rec.id))?;
            Method::CopyImage
        }
        "glint-s3-object" => Method::S3Object {
            blob: s3_object(g, caller, uri).await?,
        },
        other => {
            return Err(ApiError::bad(format!(
                "Unknown import method name '{other}'."
            )))
        }
    })
}

/// The stores an import fills, first one first: `stores` in the body, or every store with
/// `all_stores`, or `X-Image-Meta-Store`, or the default. copy-image lists only stores that
/// lack the image (naming one that has it is 400). Empty with one store.
fn targets(
    g: &Glance,
    rec: &ImageRecord,
    body: &serde_json::Map<String, Value>,
    headers: &http::HeaderMap,
    copying: bool,
) -> Result<Vec<String>, ApiError> {
    if !g.stores.multi() {
        return Ok(Vec::new());
    }
    let all = body.get("all_stores").and_then(Value::as_bool) == Some(true);
    let mut named: Vec<String> = match body.get("stores") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad("'stores' must be a list of store ids"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::bad("'stores' must be a list of store ids")),
    };
    if all {
        named = g.stores.ids().map(str::to_string).collect();
    } else if named.is_empty() && !copying {
        named.push(super::data::target_store(g, headers)?.unwrap_or_default());
    }
    for s in &named {
        if !g.stores.known(s) {
            return Err(ApiError::bad(format!("Store {s} is not available")));
        }
    }
    let have = rec.store_ids();
    if copying {
        if named.is_empty() {
            return Err(ApiError::bad("copy-image needs 'stores' or 'all_stores'"));
        }
        if !all {
            if let Some(s) = named.iter().find(|s| have.contains(&s.as_str())) {
                return Err(ApiError::bad(format!(
                    "Image {} already exists in store {s}",
                    rec.id
                )));
            }
        }
        named.retain(|s| !have.contains(&s.as_str()));
    }
    named.dedup();
    Ok(named)
}

fn accepted() -> ApiResult {
    Ok(http::Response::builder()
        .status(StatusCode::ACCEPTED)
        .header("content-type", "text/html; charset=UTF-8")
        .body(crate::body::empty())
        .expect("valid"))
}

/// The import's work, after the image went to `importing` (copy-image: stayed `active`).
/// `targets` are the stores to fill, the first taking the data (multiple stores; empty with
/// one store).
async fn run(
    g: &Glance,
    image: &ImageRecord,
    method: Method,
    targets: &[String],
) -> Result<String, ApiError> {
    let job = Job::new(g, image, targets);
    let (size, activated) = match method {
        Method::GlanceDirect => job.staged().await?,
        Method::WebDownload(target) if job.conversion().is_some() => {
            let limit = size_limit(g, image.owner.as_deref()).await?;
            job.converted(download(&target).await?, limit).await?
        }
        Method::WebDownload(target) => {
            let limit = size_limit(g, image.owner.as_deref()).await?;
            let data = fetch(g, g.stores.store(job.first.as_deref()), &target, limit).await?;
            let virtual_size = job.verdict(&data.findings)?;
            activate_fresh(g, &image.id, job.first.clone(), data, virtual_size).await?
        }
        Method::S3Object { blob } => job.s3_object(blob).await?,
        Method::CopyImage => {
            for t in targets {
                copy_to(g, &image.id, t).await?;
            }
            let _ = update(g, &image.id, |r| {
                r.extra.remove(LOCK);
                r.extra.insert(IMPORTING.into(), String::new());
                Ok(())
            })
            .await;
            return Ok(format!("Copied {} MiB", image.size.unwrap_or(0) >> 20));
        }
    };
    if !activated {
        return Err(ApiError::new(
            StatusCode::GONE,
            "The image was deleted during the import",
        ));
    }
    // The other requested stores get copies.
    for t in targets.iter().skip(1) {
        copy_to(g, &image.id, t).await?;
    }
    Ok(format!("Copied {} MiB", size >> 20))
}

/// One import under way: the image, the store its data goes to first, and how the data is
/// judged (bare images are inspected against their `disk_format`).
struct Job<'a> {
    g: &'a Glance,
    image: &'a ImageRecord,
    first: Option<String>,
    first_is_main: bool,
}

impl<'a> Job<'a> {
    fn new(g: &'a Glance, image: &'a ImageRecord, targets: &[String]) -> Job<'a> {
        let first = targets.first().cloned();
        Job {
            g,
            image,
            first_is_main: g.stores.is_main(first.as_deref()),
            first,
        }
    }

    /// The virtual size the inspector found, or the refusal (a bare image whose data does
    /// not match its disk format, or fails the safety checks).
    fn verdict(&self, findings: &super::inspect::Findings) -> Result<Option<u64>, ApiError> {
        if self.image.container_format.as_deref() != Some("bare") {
            return Ok(None);
        }
        let declared = self.image.disk_format.as_deref().unwrap_or_default();
        Ok(findings
            .verdict_with(declared, self.g.opts().require_image_format_match)
            .map_err(|r| refused(&r))?
            .virtual_size)
    }

    /// The image_conversion plugin's options, when it converts this image.
    fn conversion(&self) -> Option<&crate::config::ConversionOptions> {
        self.g.opts().image_conversion.as_ref().filter(|o| {
            super::convert::applies(
                o,
                self.image.disk_format.as_deref(),
                self.image.container_format.as_deref(),
            )
        })
    }

    /// With the image_conversion plugin: the image becomes active with `source` converted
    /// (judged before conversion) in its new disk format.
    async fn converted<S, E>(&self, source: S, limit: u64) -> Result<(u64, bool), ApiError>
    where
        S: futures::Stream<Item = Result<bytes::Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let g = self.g;
        let opts = self.conversion().expect("checked by the caller");
        let first = self.first.clone();
        let c = super::convert::convert(
            opts,
            g.stores.store(first.as_deref()),
            g.opts().hashing_algorithm,
            source,
            self.image.disk_format.as_deref().unwrap_or_default(),
            limit,
            |f| self.verdict(f),
        )
        .await?;
        let size = c.data.size;
        let meta = (c.data.size, c.data.md5, c.data.os_hash, c.virtual_size);
        let disk_format = c.disk_format;
        let ok = activate(
            g,
            &self.image.id,
            ImageStatus::Importing,
            first,
            NewData::Fresh(Box::new(c.data.staged)),
            meta,
            move |r| {
                unlock_import(r);
                r.disk_format = Some(disk_format.clone());
            },
        )
        .await?;
        Ok((size, ok))
    }

    /// glance-direct: the image adopts its staged blob (copied first when its data goes to
    /// another store; converted, with the image_conversion plugin).
    async fn staged(&self) -> Result<(u64, bool), ApiError> {
        let (g, id) = (self.g, &self.image.id);
        let staged = load_current(g, id)
            .await?
            .staged
            .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "No staged data"))?;
        let blob: BlobId = staged.blob;
        if self.conversion().is_some() {
            let (_, reader) = g.store.read(blob, None).await?;
            let (size, ok) = self.converted(reader, g.cfg.image_size_cap).await?;
            if ok {
                let _ = g.store.delete(blob).await;
            }
            return Ok((size, ok));
        }
        let meta = (
            staged.size,
            staged.md5.clone(),
            staged.multihash(),
            self.verdict(&staged.findings)?,
        );
        let first = self.first.clone();
        if self.first_is_main {
            let ok = activate(
                g,
                id,
                ImageStatus::Importing,
                first,
                NewData::Committed(blob),
                meta,
                unlock_import,
            )
            .await?;
            return Ok((staged.size, ok));
        }
        let copy = copy_blob(&g.store, blob, g.stores.store(first.as_deref())).await?;
        let ok = activate(
            g,
            id,
            ImageStatus::Importing,
            first,
            NewData::Fresh(Box::new(copy)),
            meta,
            unlock_import,
        )
        .await?;
        if ok {
            let _ = g.store.delete(blob).await;
        }
        Ok((staged.size, ok))
    }

    /// glint-s3-object: in the main store the image shares the object's chunks through a
    /// clone (the object is read once, to hash and inspect it); another store gets a copy.
    async fn s3_object(&self, blob: BlobId) -> Result<(u64, bool), ApiError> {
        let (g, image) = (self.g, self.image);
        let limit = size_limit(g, image.owner.as_deref()).await?;
        let (info, reader) = g.store.read(blob, None).await?;
        if info.size > limit {
            return Err(glint_storage::StoreError::TooLarge { limit }.into());
        }
        if self.conversion().is_some() {
            return self.converted(reader, limit).await;
        }
        let first = self.first.clone();
        if !self.first_is_main {
            let algo = g.opts().hashing_algorithm;
            let data = ingest(g.stores.store(first.as_deref()), reader, limit, algo).await?;
            let virtual_size = self.verdict(&data.findings)?;
            return activate_fresh(g, &image.id, first, data, virtual_size).await;
        }
        let (size, d, findings) =
            hash_blob(reader, image_digests(g.opts().hashing_algorithm)).await?;
        let virtual_size = self.verdict(&findings)?;
        let ok = adopt_main_blob(
            g,
            &image.id,
            ImageStatus::Importing,
            first,
            blob,
            (size, &d, virtual_size),
            unlock_import,
        )
        .await?;
        Ok((size, ok))
    }
}

/// Streams a blob from one engine into another. The image's digests and format are already
/// known, so nothing but the chunk names is computed on the way.
async fn copy_blob(
    from: &glint_storage::Store,
    blob: BlobId,
    to: &glint_storage::Store,
) -> Result<glint_storage::StagedBlob, ApiError> {
    let (_, reader) = from.read(blob, None).await?;
    Ok(to.write(reader, Default::default()).await?)
}

/// Makes the image active with a clone of `blob`, a blob of the main store (no byte
/// copied), if it is still in `from`; the clone goes again when it is not.
pub async fn adopt_main_blob<F>(
    g: &Glance,
    id: &str,
    from: ImageStatus,
    store: Option<String>,
    blob: BlobId,
    (size, d, virtual_size): (u64, &glint_storage::Digests, Option<u64>),
    also: F,
) -> Result<bool, ApiError>
where
    F: Fn(&mut ImageRecord) + Send + 'static,
{
    let clone = g.store.clone_blob(blob, None).await?;
    let meta = (
        size,
        d.md5.map(hex::encode),
        multihash(g.opts().hashing_algorithm, d),
        virtual_size,
    );
    let ok = activate(g, id, from, store, NewData::Committed(clone), meta, also).await?;
    if !ok {
        let _ = g.store.delete(clone).await;
    }
    Ok(ok)
}

/// Reads a blob once, computing `digests` (on blocking threads) and inspecting it.
pub async fn hash_blob(
    mut reader: glint_storage::BlobReader,
    digests: DigestSet,
) -> Result<(u64, glint_storage::Digests, super::inspect::Findings), ApiError> {
    let mut hasher = Some(Hasher::new(digests));
    let mut inspector = Inspector::new();
    let mut size = 0u64;
    while let Some(piece) = reader.next().await {
        let piece = piece?;
        size += piece.len() as u64;
        inspector.feed(&piece);
        let mut h = hasher.take().expect("hasher present");
        hasher = Some(
            tokio::task::spawn_blocking(move || {
                h.update(&piece);
                h
            })
            .await
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "hashing failed"))?,
        );
    }
    let d = hasher.take().expect("hasher present").finish();
    Ok((size, d, inspector.conclude(size)))
}

/// The end of an import whose bytes were just written to `store`: the image becomes active
/// with them and its import lock goes. (size, whether the image was still there).
async fn activate_fresh(
    g: &Glance,
    id: &str,
    store: Option<String>,
    data: super::data::Ingested,
    virtual_size: Option<u64>,
) -> Result<(u64, bool), ApiError> {
    let size = data.size;
    let meta = (data.size, data.md5, data.os_hash, virtual_size);
    let ok = activate(
        g,
        id,
        ImageStatus::Importing,
        store,
        NewData::Fresh(Box::new(data.staged)),
        meta,
        unlock_import,
    )
    .await?;
    Ok((size, ok))
}

/// Releases the import lock as an import ends well.
fn unlock_import(r: &mut ImageRecord) {
    r.extra.remove(LOCK);
    r.extra.insert(IMPORTING.into(), String::new());
    r.staged = None;
}

/// Copies an active image's data into store `target` (from its first location) and records
/// the copy; nothing when the image already has one there.
async fn copy_to(g: &Glance, id: &str, target: &str) -> Result<(), ApiError> {
    let rec = load_current(g, id).await?;
    if rec.store_ids().contains(&target) {
        return Ok(());
    }
    let (src_store, src_blob) = rec
        .locations()
        .first()
        .map(|(s, b)| (s.map(str::to_string), *b))
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "The image has no data to copy"))?;
    let copy = copy_blob(
        g.stores.store(src_store.as_deref()),
        src_blob,
        g.stores.store(Some(target)),
    )
    .await?;
    let main = g.stores.is_main(Some(target));
    // Main-store data commits with the record; another backend's first (see stores.rs).
    let (staged, committed) = if main {
        (Some(copy), None)
    } else {
        (None, Some(g.stores.store(Some(target)).commit(copy).await?))
    };
    let key = id.to_string();
    let store_id = target.to_string();
    let recorded = g
        .store
        .transact(move |tx| {
            let Some(mut r) =
                repo::read_locked(tx, &key)?.filter(|r| r.status == ImageStatus::Active)
            else {
                return Ok(false);
            };
            if r.store_ids().contains(&store_id.as_str()) {
                return Ok(false);
            }
            let blob = match (&staged, committed) {
                (Some(s), _) => tx.add_blob(s)?,
                (None, Some(b)) => b,
                (None, None) => return Ok(false),
            };
            r.copies.push(super::record::StoredCopy {
                store: store_id.clone(),
                blob,
            });
            repo::write(tx, &mut r)?;
            Ok(true)
        })
        .await?;
    if let (false, Some(b)) = (recorded, committed) {
        let _ = g.stores.store(Some(target)).delete(b).await;
    }
    Ok(())
}

async fn load_current(g: &Glance, id: &str) -> Result<ImageRecord, ApiError> {
    let key = id.to_string();
    g.store
        .transact(move |tx| repo::read_locked(tx, &key))
        .await?
        .ok_or_else(|| ApiError::not_found(id))
}

/// A failed import returns the image to `queued` (its staged data, if any, is dropped) and
/// releases the import lock.
pub(super) async fn fail(g: &Glance, id: &str) {
    let key = id.to_string();
    let _ = g
        .store
        .transact(move |tx| {
            let Some(mut r) = repo::read_locked(tx, &key)? else {
                return Ok(());
            };
            if let Some(outcome) = release_failed_import(&mut r) {
                if let Some(b) = outcome {
                    tx.delete_blob(b)?;
                }
                repo::write(tx, &mut r)?;
            }
            Ok(())
        })
        .await;
}

/// What a failed (or interrupted) import leaves: an image being imported returns to
/// `queued` without data; a copy-image of an active image keeps the image as it was and
/// records the stores it did not reach. The lock goes either way. None when the image had no
/// import under way; otherwise the staged blob to delete, if any.
pub fn release_failed_import(r: &mut ImageRecord) -> Option<Option<BlobId>> {
    if r.status != ImageStatus::Importing {
        r.extra.remove(LOCK)?;
        let failed = r.extra.insert(IMPORTING.into(), String::new());
        r.extra.insert(FAILED.into(), failed.unwrap_or_default());
        return Some(None);
    }
    let staged = r.staged.take().map(|s| s.blob);
    r.move_status(ImageStatus::Importing, ImageStatus::Queued);
    r.size = None;
    r.virtual_size = None;
    r.extra.remove(LOCK);
    r.extra.insert(IMPORTING.into(), String::new());
    Some(staged)
}

/// Streams a web-download into the engine through the address the filter checked.
async fn fetch(
    g: &Glance,
    store: &glint_storage::Store,
    target: &super::uri_filter::Target,
    limit: u64,
) -> Result<super::data::Ingested, ApiError> {
    ingest(
        store,
        download(target).await?,
        limit,
        g.opts().hashing_algorithm,
    )
    .await
    .map_err(ApiError::from)
}

/// The body of a web-download, from the address the filter checked.
async fn download(
    target: &super::uri_filter::Target,
) -> Result<impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + use<>, ApiError> {
    let failed = |e: String| ApiError::bad(format!("web-download of {} failed: {e}", target.url));
    let client = reqwest::Client::builder()
        // Connect to the address that passed the filter, not to a fresh DNS answer.
        .resolve(&target.host, target.addr)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let resp = client
        .get(target.url.clone())
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(failed(format!("the server answered {}", resp.status())));
    }
    Ok(resp.bytes_stream())
}

/// The blob of an S3 object (`s3://bucket/key`) the caller's project may read by the
/// object's ACL (or any, for an admin). An object of the images bucket is an image: read
/// access to it is the images' one read check, and its data must be in the default store.
pub async fn s3_object(g: &Glance, caller: &Caller, uri: Option<&str>) -> Result<BlobId, ApiError> {
    let bad = || {
        ApiError::bad(format!(
            "Not an S3 object this project can read: {}",
            uri.unwrap_or("None")
        ))
    };
    let (bucket, key) = uri
        .and_then(|u| u.strip_prefix("s3://"))
        .and_then(|rest| rest.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(bad)?;
    if g.cfg.s3_images_bucket.as_deref() == Some(bucket) {
        let image = g
            .images
            .readable(caller, key)
            .await
            .map_err(|e| super::image::read_error(e, key))?;
        return image
            .locations()
            .into_iter()
            .find(|(store, _)| g.stores.is_main(*store))
            .map(|(_, blob)| blob)
            .ok_or_else(bad);
    }
    crate::s3::object_source::readable_blob(
        &g.store,
        bucket,
        key,
        caller.project.as_deref(),
        caller.is_admin(),
    )
    .await?
    .ok_or_else(bad)
}

/// The legacy `import` task: the new image goes straight to `importing` and is filled from
/// `uri` (already filtered by the caller).
pub async fn legacy_web_download(g: &Glance, image_id: &str, uri: &str) -> Result<(), ApiError> {
    let target = super::uri_filter::check(uri, &g.opts().import_filter)
        .await
        .ok_or_else(|| {
            ApiError::bad(format!(
                "URI for legacy import task does not pass filtering: {uri}"
            ))
        })?;
    let worker = g.store.node_id().await?;
    let image = update(g, image_id, move |r| {
        if r.move_status(ImageStatus::Queued, ImageStatus::Importing) {
            r.worker = worker;
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "Image status transition from {} to importing is not allowed",
                    r.status
                ),
            ))
        }
    })
    .await?;
    let targets: Vec<String> = g
        .stores
        .default_id()
        .map(str::to_string)
        .into_iter()
        .collect();
    match run(g, &image, Method::WebDownload(target), &targets).await {
        Ok(_) => Ok(()),
        Err(e) => {
            fail(g, image_id).await;
            Err(e)
        }
    }
}
