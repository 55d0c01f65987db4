//! Images: the record, its JSON form, and the calls of this first slice.

use std::collections::BTreeMap;

use glint_storage::{BlobId, Catalog, DigestSet, StoreError, WriteOptions};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{json, uuid_v4, ApiError, ApiResult, Caller, Glance};
use crate::body;

const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
const CONTAINER_FORMATS: &[&str] = &[
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];
const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];
/// Set by the server, never by a request (403 "Attribute 'X' is read-only.").
const READ_ONLY: &[&str] = &[
    "status",
    "checksum",
    "size",
    "virtual_size",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "direct_url",
    "self",
    "file",
    "schema",
    "stores",
    "locations",
];
const RESERVED: &[&str] = &["location", "deleted", "deleted_at"];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub visibility: String,
    pub protected: bool,
    pub os_hidden: bool,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub owner: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub tags: Vec<String>,
    pub extra: BTreeMap<String, String>,
    /// The engine blob holding the data, once uploaded.
    pub blob: Option<String>,
}

impl ImageRecord {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("status".into(), json!(self.status));
        m.insert("visibility".into(), json!(self.visibility));
        m.insert("protected".into(), json!(self.protected));
        m.insert("os_hidden".into(), json!(self.os_hidden));
        m.insert("checksum".into(), json!(self.checksum));
        m.insert("os_hash_algo".into(), json!(self.os_hash_algo));
        m.insert("os_hash_value".into(), json!(self.os_hash_value));
        m.insert("size".into(), json!(self.size));
        m.insert("virtual_size".into(), json!(self.virtual_size));
        m.insert("disk_format".into(), json!(self.disk_format));
        m.insert("container_format".into(), json!(self.container_format));
        m.insert("min_disk".into(), json!(self.min_disk));
        m.insert("min_ram".into(), json!(self.min_ram));
        m.insert("owner".into(), json!(self.owner));
        m.insert("created_at".into(), json!(self.created_at));
        m.insert("updated_at".into(), json!(self.updated_at));
        m.insert("tags".into(), json!(self.tags));
        for (k, v) in &self.extra {
            m.insert(k.clone(), json!(v));
        }
        m.insert("self".into(), json!(format!("/v2/images/{}", self.id)));
        m.insert("file".into(), json!(format!("/v2/images/{}/file", self.id)));
        m.insert("schema".into(), json!("/v2/schemas/image"));
        Value::Object(m)
    }

    /// Whether `caller` may see this image (first slice: owner, admin, public, community).
    fn visible_to(&self, caller: &Caller) -> bool {
        caller.is_admin()
            || matches!(self.visibility.as_str(), "public" | "community")
            || (self.owner.is_some() && self.owner == caller.project)
    }

    fn may_modify(&self, caller: &Caller) -> bool {
        caller.is_admin()
            || (caller.roles.iter().any(|r| r == "member")
                && self.owner.is_some()
                && self.owner == caller.project)
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

fn valid_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

pub async fn route(
    g: &Glance,
    caller: &Caller,
    parts: &http::request::Parts,
    incoming: Incoming,
) -> ApiResult {
    let segs: Vec<&str> = parts
        .uri
        .path()
        .trim_start_matches("/v2/")
        .split('/')
        .collect();
    match (&parts.method, segs.as_slice()) {
        (&Method::POST, ["images"]) => create(g, caller, incoming).await,
        (&Method::GET, ["images"]) => list(g, caller, parts.uri.query().unwrap_or("")).await,
        (&Method::GET, ["images", id]) => Ok(json(
            StatusCode::OK,
            &load_visible(g, caller, id).await?.to_json(),
        )),
        (&Method::DELETE, ["images", id]) => delete(g, caller, id).await,
        (&Method::PUT, ["images", id, "file"]) => upload(g, caller, id, parts, incoming).await,
        (&Method::GET, ["images", id, "file"]) => download(g, caller, id, parts).await,
        (&Method::PUT, ["images", id, "tags", tag]) => tag_op(g, caller, id, tag, true).await,
        (&Method::DELETE, ["images", id, "tags", tag]) => tag_op(g, caller, id, tag, false).await,
        (&Method::POST, ["images", id, "actions", action @ ("deactivate" | "reactivate")]) => {
            activation(g, caller, id, action).await
        }
        (_, ["images"]) | (_, ["images", _]) | (_, ["images", _, "file"]) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The request method is not allowed for this resource.",
        )),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        )),
    }
}

async fn load(g: &Glance, id: &str) -> Result<Option<ImageRecord>, ApiError> {
    if !valid_uuid(id) {
        return Ok(None);
    }
    let v = g.store.get(Catalog::Images, id.as_bytes().to_vec()).await?;
    Ok(v.and_then(|v| serde_json::from_slice::<ImageRecord>(&v).ok()))
}

async fn load_visible(g: &Glance, caller: &Caller, id: &str) -> Result<ImageRecord, ApiError> {
    load(g, id)
        .await?
        .filter(|r| r.visible_to(caller))
        .ok_or_else(|| ApiError::not_found(id))
}

fn string_or_null(v: &Value, key: &str, max: usize) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= max => Ok(Some(s.clone())),
        _ => Err(ApiError::bad(format!("Invalid value for '{key}'"))),
    }
}

fn enum_value(v: &Value, key: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match string_or_null(v, key, 64)? {
        Some(s) if !allowed.contains(&s.as_str()) => {
            Err(ApiError::bad(format!("Invalid value '{s}' for '{key}'")))
        }
        other => Ok(other),
    }
}

async fn create(g: &Glance, caller: &Caller, incoming: Incoming) -> ApiResult {
    if !caller.is_admin() && !caller.roles.iter().any(|r| r == "member") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "You are not authorized to complete add_image action.",
        ));
    }
    let raw = incoming
        .collect()
        .await
        .map_err(|_| ApiError::bad("request body could not be read"))?
        .to_bytes();
    if raw.len() > 1 << 20 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large",
        ));
    }
    let body: Value = if raw.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&raw)
            .map_err(|_| ApiError::bad("Malformed JSON in request body."))?
    };
    let Value::Object(fields) = body else {
        return Err(ApiError::bad("Body expected in request."));
    };
    let stamp = now();
    let mut rec = ImageRecord {
        id: uuid_v4(),
        name: None,
        status: "queued".into(),
        visibility: "shared".into(),
        protected: false,
        os_hidden: false,
        checksum: None,
        os_hash_algo: None,
        os_hash_value: None,
        size: None,
        virtual_size: None,
        disk_format: None,
        container_format: None,
        min_disk: 0,
        min_ram: 0,
        owner: caller.project.clone(),
        created_at: stamp.clone(),
        updated_at: stamp,
        tags: Vec::new(),
        extra: BTreeMap::new(),
        blob: None,
    };
    for (k, v) in &fields {
        match k.as_str() {
            "id" => match v.as_str().filter(|s| valid_uuid(s)) {
                Some(id) => rec.id = id.to_ascii_lowercase(),
                None => return Err(ApiError::bad("Invalid value for 'id'")),
            },
            "name" => rec.name = string_or_null(v, k, 255)?,
            "visibility" => {
                let vis = enum_value(v, k, VISIBILITIES)?.unwrap_or_else(|| "shared".into());
                if vis == "public" && !caller.is_admin() {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "You are not authorized to complete publicize_image action.",
                    ));
                }
                rec.visibility = vis;
            }
            "protected" | "os_hidden" => {
                let b = v
                    .as_bool()
                    .ok_or_else(|| ApiError::bad(format!("Invalid value for '{k}'")))?;
                if k == "protected" {
                    rec.protected = b
                } else {
                    rec.os_hidden = b
                }
            }
            "disk_format" => rec.disk_format = enum_value(v, k, DISK_FORMATS)?,
            "container_format" => rec.container_format = enum_value(v, k, CONTAINER_FORMATS)?,
            "min_disk" | "min_ram" => {
                let n = v
                    .as_i64()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| ApiError::bad(format!("Invalid value for '{k}'")))?;
                if k == "min_disk" {
                    rec.min_disk = n
                } else {
                    rec.min_ram = n
                }
            }
            "owner" => {
                let owner = string_or_null(v, k, 255)?;
                if owner != caller.project && !caller.is_admin() {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "You are not permitted to create images owned by another project.",
                    ));
                }
                rec.owner = owner;
            }
            "tags" => {
                let tags = v
                    .as_array()
                    .ok_or_else(|| ApiError::bad("Invalid value for 'tags'"))?;
                for t in tags {
                    let t = t
                        .as_str()
                        .filter(|t| t.chars().count() <= 255)
                        .ok_or_else(|| ApiError::bad("Invalid tag"))?;
                    if !rec.tags.iter().any(|x| x == t) {
                        rec.tags.push(t.to_string());
                    }
                }
            }
            k if READ_ONLY.contains(&k) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("Attribute '{k}' is read-only."),
                ));
            }
            k if RESERVED.contains(&k) || k.starts_with("os_glance") => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("Attribute '{k}' is reserved."),
                ));
            }
            k => {
                let s = v.as_str().ok_or_else(|| {
                    ApiError::bad(format!(
                        "Invalid value for '{k}': properties must be strings"
                    ))
                })?;
                if k.chars().count() > 255 {
                    return Err(ApiError::bad(
                        "Property names are limited to 255 characters",
                    ));
                }
                rec.extra.insert(k.to_string(), s.to_string());
            }
        }
    }
    let value = serde_json::to_vec(&rec).expect("serializable");
    let id = rec.id.clone();
    let created = g
        .store
        .transact(move |tx| {
            if tx.get_for_update(Catalog::Images, id.as_bytes())?.is_some() {
                return Ok(false);
            }
            tx.put(Catalog::Images, id.as_bytes(), &value)?;
            Ok(true)
        })
        .await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Image with identifier {} already exists!", rec.id),
        ));
    }
    let mut resp = json(StatusCode::CREATED, &rec.to_json());
    if let Ok(v) = format!("/v2/images/{}", rec.id).parse() {
        resp.headers_mut().insert("location", v);
    }
    Ok(resp)
}

async fn list(g: &Glance, caller: &Caller, query: &str) -> ApiResult {
    let params: Vec<(String, String)> = crate::s3::auth::query_params(query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let limit: usize = match get("limit") {
        None => 25,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad("limit param must be an integer"))?
            .try_into()
            .map_err(|_| ApiError::bad("limit param must be positive"))?,
    };
    let limit = limit.min(1000);
    let all = g
        .store
        .scan(Catalog::Images, Vec::new(), None, usize::MAX)
        .await?;
    let mut images: Vec<ImageRecord> = all
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice::<ImageRecord>(&v).ok())
        .filter(|r| r.visible_to(caller) && !r.os_hidden && r.status != "killed")
        .filter(|r| r.visibility != "community" || r.owner == caller.project)
        .collect();
    // Default order: created_at desc, id as the tie-break.
    images.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    if let Some(marker) = get("marker") {
        let pos = images
            .iter()
            .position(|r| r.id == marker)
            .ok_or_else(|| ApiError::bad(format!("marker {marker} could not be found")))?;
        images.drain(..=pos);
    }
    let full_page = images.len() >= limit && limit > 0;
    images.truncate(limit);
    let mut out = json!({
        "images": images.iter().map(ImageRecord::to_json).collect::<Vec<_>>(),
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    });
    if full_page {
        if let Some(last) = images.last() {
            out["next"] = json!(format!("/v2/images?marker={}&limit={limit}", last.id));
        }
    }
    Ok(json(StatusCode::OK, &out))
}

async fn delete(g: &Glance, caller: &Caller, id: &str) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    if !rec.may_modify(caller) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "You are not authorized to complete delete_image action.",
        ));
    }
    if rec.protected {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Image {id} is protected and cannot be deleted."),
        ));
    }
    let key = rec.id.clone();
    g.store
        .transact(move |tx| {
            if let Some(cur) = read_image(tx, &key)? {
                if let Some(b) = cur.blob.as_deref().and_then(|b| b.parse::<BlobId>().ok()) {
                    tx.delete_blob(b)?;
                }
                tx.delete(Catalog::Images, key.as_bytes())?;
            }
            Ok(())
        })
        .await?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(body::empty())
        .expect("valid"))
}

/// The image record under `key` as this transaction sees it.
fn read_image(tx: &glint_storage::Tx<'_>, key: &str) -> glint_storage::Result<Option<ImageRecord>> {
    match tx.get_for_update(Catalog::Images, key.as_bytes())? {
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|_| StoreError::Malformed("image record")),
        None => Ok(None),
    }
}

/// Stores `rec`, stamping `updated_at`.
fn write_image(tx: &glint_storage::Tx<'_>, rec: &mut ImageRecord) -> glint_storage::Result<()> {
    rec.updated_at = now();
    tx.put(
        Catalog::Images,
        rec.id.as_bytes(),
        &serde_json::to_vec(rec).expect("serializable"),
    )
}

async fn upload(
    g: &Glance,
    caller: &Caller,
    id: &str,
    parts: &http::request::Parts,
    incoming: Incoming,
) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    if !rec.may_modify(caller) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
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
    let stream = incoming.into_data_stream();
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
            // A failed upload returns the image to queued; its chunks are already released.
            // An image deleted meanwhile has nothing to restore: the upload's error stands.
            let _ = update(g, &rec.id, |r| {
                if r.status == "saving" {
                    r.status = "queued".into();
                    r.size = None;
                    r.virtual_size = None;
                }
                Ok(())
            })
            .await;
            return Err(e.into());
        }
    };
    let d = staged.digests().clone();
    let size = staged.size();
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
            rec.virtual_size = Some(size);
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

async fn download(
    g: &Glance,
    caller: &Caller,
    id: &str,
    parts: &http::request::Parts,
) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
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
    if let Some(r) = parts.headers.get("range").and_then(|v| v.to_str().ok()) {
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

/// Applies `change` to the image under its lock (read-modify-write in one transaction);
/// `change` may refuse with an API error, which leaves the record untouched.
async fn update<F>(g: &Glance, id: &str, change: F) -> Result<ImageRecord, ApiError>
where
    F: Fn(&mut ImageRecord) -> Result<(), ApiError> + Send + 'static,
{
    let key = id.to_string();
    let outcome = g
        .store
        .transact(move |tx| {
            let Some(mut rec) = read_image(tx, &key)? else {
                return Ok(Err(ApiError::not_found(&key)));
            };
            if let Err(e) = change(&mut rec) {
                return Ok(Err(e));
            }
            write_image(tx, &mut rec)?;
            Ok(Ok(rec))
        })
        .await?;
    outcome
}

fn no_content() -> ApiResult {
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(body::empty())
        .expect("valid"))
}

/// `PUT`/`DELETE /v2/images/{id}/tags/{tag}`: tags are a set (adding twice is a no-op);
/// removing an absent tag is 404; at most 128 tags (`image_tag_quota`).
async fn tag_op(g: &Glance, caller: &Caller, id: &str, tag: &str, add: bool) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    if !rec.may_modify(caller) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "You are not authorized to complete modify_image action.",
        ));
    }
    let tag = percent_encoding::percent_decode_str(tag)
        .decode_utf8_lossy()
        .into_owned();
    if tag.is_empty() || tag.chars().count() > 255 {
        return Err(ApiError::bad("Tags are limited to 255 characters"));
    }
    update(g, &rec.id, move |r| {
        let present = r.tags.contains(&tag);
        match (add, present) {
            (true, true) => Ok(()),
            (true, false) if r.tags.len() >= 128 => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Maximum number of tags exceeded (128)",
            )),
            (true, false) => {
                r.tags.push(tag.clone());
                Ok(())
            }
            (false, true) => {
                r.tags.retain(|t| *t != tag);
                Ok(())
            }
            (false, false) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Tag {tag} not found"),
            )),
        }
    })
    .await?;
    no_content()
}

/// `POST .../actions/deactivate|reactivate`: active ⇄ deactivated; repeating is a no-op;
/// any other status is 403, as upstream.
async fn activation(g: &Glance, caller: &Caller, id: &str, action: &str) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    if !rec.may_modify(caller) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("You are not authorized to complete {action} action."),
        ));
    }
    let (from, to) = if action == "deactivate" {
        ("active", "deactivated")
    } else {
        ("deactivated", "active")
    };
    let verb = action.to_string();
    update(g, &rec.id, move |r| {
        if r.status == to {
            Ok(())
        } else if r.status == from {
            r.status = to.into();
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Not allowed to {verb} image in status '{}'", r.status),
            ))
        }
    })
    .await?;
    no_content()
}
