//! Images: create / show / update / delete, tags and deactivate/reactivate (the routes are
//! in `router.rs`). Data, listing, members and discovery live in their own modules.

use crate::images::repo;
use crate::images::ImageStatus;
use crate::request_body::RequestBody;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use super::record::{now, EditRules, ImageRecord};

use super::read_json_body;
use super::{json, listing, no_content, patch};
use super::{uuid_v4, ApiError, ApiResult, Caller, Glance};
use crate::body;

/// The image if `caller` may see it; 404 otherwise (never 403: that would reveal it).
pub async fn load_visible(g: &Glance, caller: &Caller, id: &str) -> Result<ImageRecord, ApiError> {
    g.images
        .visible(caller, id)
        .await
        .map_err(|e| read_error(e, id))
}

/// The image as upstream's database layer shows it to `caller` (owner, public, community,
/// member, admin), before any policy: the handlers that look an image up first and apply
/// their own rule after it (the cache API, the members listing) start here.
pub async fn load_listed(g: &Glance, caller: &Caller, id: &str) -> Result<ImageRecord, ApiError> {
    repo::get(&g.store, id)
        .await?
        .filter(|r| r.visible_to(caller))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Image {id} not found.")))
}

/// The Images API's answer to a refused or failed read through the image repository.
pub fn read_error(e: repo::ReadError, id: &str) -> ApiError {
    match e {
        repo::ReadError::Denied(d) => super::denied(d, id),
        repo::ReadError::Store(e) => e.into(),
    }
}

fn rules(g: &Glance, creating: bool) -> EditRules<'_> {
    EditRules {
        creating,
        policy: &g.policy,
        opts: g.opts(),
        schema: &g.schema,
    }
}

pub(super) async fn create(
    g: &Glance,
    caller: &Caller,
    parts: &http::request::Parts,
    incoming: RequestBody,
) -> ApiResult {
    let fields = read_json_body(incoming).await?;
    let rec = create_record(g, caller, &fields).await?;
    g.notifier.image("image.create", &rec);
    let mut resp = json(StatusCode::CREATED, &rec.to_json());
    // Absolute, as upstream writes it.
    let base = parts
        .extensions
        .get::<super::BaseUrl>()
        .map_or("", |b| b.0.as_str());
    if let Ok(v) = format!("{base}/v2/images/{}", rec.id).parse() {
        resp.headers_mut().insert("location", v);
    }
    if let Ok(v) = g.opts().enabled_import_methods.join(",").parse() {
        resp.headers_mut()
            .insert("openstack-image-import-methods", v);
    }
    if g.stores.multi() {
        if let Ok(v) = g.stores.ids().collect::<Vec<_>>().join(",").parse() {
            resp.headers_mut().insert("openstack-image-store-ids", v);
        }
    }
    Ok(resp)
}

/// Validates `fields` as a new image of `caller`'s and stores it (`queued`).
pub async fn create_record(
    g: &Glance,
    caller: &Caller,
    fields: &serde_json::Map<String, Value>,
) -> Result<ImageRecord, ApiError> {
    let mut rec = ImageRecord::new(uuid_v4(), caller.project.clone(), now());
    // The role check first (a reader is refused whatever it sends); the owner it names is
    // checked once the properties are in.
    g.enforce("add_image", caller, &rec)?;
    let rules = rules(g, true);
    // Read-only and reserved names are refused before any value is looked at.
    for k in fields.keys() {
        if k != "id" && !super::record::BASE_WRITABLE.contains(&k.as_str()) {
            super::record::check_writable(k)?;
        }
    }
    for (k, v) in fields {
        rec.set_property(k, v, caller, &rules)?;
    }
    g.enforce("add_image", caller, &rec)?;
    let created = g.images.create(&rec).await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Image with identifier {} already exists!", rec.id),
        ));
    }
    Ok(rec)
}

pub(super) async fn list(g: &Glance, caller: &Caller, query: &str) -> ApiResult {
    g.enforce_own("get_images", caller)?;
    let request = listing::parse(query, g.opts())?;
    let page = g
        .images
        .list(caller, &request.query)
        .await?
        .ok_or_else(|| {
            let marker = request.query.marker.as_deref().unwrap_or_default();
            ApiError::bad(format!("marker {marker} could not be found"))
        })?;
    let mut out = serde_json::json!({
        "images": page.images.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
        "first": request.first_link(),
        "schema": "/v2/schemas/images",
    });
    if page.full {
        if let Some(last) = page.images.last() {
            out["next"] = Value::String(request.next_link(&last.id));
        }
    }
    Ok(json(StatusCode::OK, &out))
}

/// `DELETE /v2/stores/{store}/{id}`: drops the image's data from one store (multiple stores,
/// admin by default): unknown store or inactive image 409, not in that store 404, the last
/// copy 403.
pub(super) async fn delete_from_store(
    g: &Glance,
    caller: &Caller,
    store: &str,
    id: &str,
) -> ApiResult {
    if !g.stores.multi() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Multi backend is not supported at this site.",
        ));
    }
    let rec = load_visible(g, caller, id).await?;
    g.enforce("delete_image_location", caller, &rec)?;
    if !g.stores.known(store) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Unknown store {store}."),
        ));
    }
    if rec.status != ImageStatus::Active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "It's not allowed to remove image data from store if image status is not 'active'",
        ));
    }
    let ids = rec.store_ids();
    if !ids.contains(&store) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Image {id} does not have data in store {store}"),
        ));
    }
    if ids.len() == 1 {
        return Err(ApiError::forbidden(
            "Cannot delete the last location of an image",
        ));
    }
    let key = rec.id.clone();
    let target = store.to_string();
    let main_id = g.stores.default_id().map(str::to_string);
    let dropped = g
        .store
        .transact(move |tx| {
            let Some(mut r) = repo::read_locked(tx, &key)? else {
                return Ok(None);
            };
            let locations: Vec<(Option<String>, glint_storage::BlobId)> = r
                .locations()
                .into_iter()
                .map(|(s, b)| (s.map(str::to_string), b))
                .collect();
            let here = |s: &Option<String>| s.as_deref() == Some(target.as_str());
            let Some(blob) = locations.iter().find(|(s, _)| here(s)).map(|(_, b)| *b) else {
                return Ok(None);
            };
            let rest: Vec<_> = locations.iter().filter(|(s, _)| !here(s)).collect();
            let Some(first) = rest.first() else {
                return Ok(None);
            };
            r.store = first.0.clone();
            r.blob = Some(first.1);
            r.copies = rest[1..]
                .iter()
                .map(|(s, b)| super::record::StoredCopy {
                    store: s.clone().unwrap_or_default(),
                    blob: *b,
                })
                .collect();
            repo::write(tx, &mut r)?;
            if Some(target.as_str()) == main_id.as_deref() {
                tx.delete_blob(blob)?;
                return Ok(Some(Vec::new()));
            }
            Ok(Some(vec![(target.clone(), blob)]))
        })
        .await?;
    match dropped {
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "The image changed meanwhile",
        )),
        Some(elsewhere) => {
            g.stores.delete_elsewhere(elsewhere).await;
            no_content()
        }
    }
}

/// `PATCH /v2/images/{id}`.
pub(super) async fn update_image(
    g: &Glance,
    caller: &Caller,
    id: &str,
    parts: &http::request::Parts,
    incoming: RequestBody,
) -> ApiResult {
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let dialect = patch::dialect(content_type)?;
    let rec = load_visible(g, caller, id).await?;
    g.enforce("modify_image", caller, &rec)?;
    let raw = read_body(incoming).await?;
    let ops = patch::parse(&raw, dialect)?;
    if ops.is_empty() {
        return Ok(json(StatusCode::OK, &rec.to_json()));
    }
    let caller = caller.clone();
    let opts = g.opts().clone();
    let schema = g.schema.clone();
    let policy = g.policy.clone();
    let rec = update(g, &rec.id, move |r| {
        let rules = EditRules {
            creating: false,
            policy: &policy,
            opts: &opts,
            schema: &schema,
        };
        patch::apply(r, &ops, dialect, &caller, &rules)
    })
    .await?;
    g.notifier.image("image.update", &rec);
    Ok(json(StatusCode::OK, &rec.to_json()))
}

/// A small request document (JSON bodies are capped at 1 MiB).
pub async fn read_body(incoming: RequestBody) -> Result<bytes::Bytes, ApiError> {
    let limited = http_body_util::Limited::new(incoming, 1 << 20);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large",
        )),
        Err(_) => Err(ApiError::bad("The request body could not be read")),
    }
}

pub(super) async fn delete(g: &Glance, caller: &Caller, id: &str) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    g.enforce("delete_image", caller, &rec)?;
    if rec.protected {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Image {id} is protected and cannot be deleted."),
        ));
    }
    g.notifier.image("image.delete", &rec);
    let mode = if g.opts().delayed_delete {
        repo::DeleteMode::Delayed
    } else {
        repo::DeleteMode::Now
    };
    g.images.delete(&rec.id, mode).await?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(body::empty())
        .expect("valid"))
}

/// Applies `change` to the image under its lock (read-modify-write in one transaction);
/// `change` may refuse with an API error, which leaves the record untouched.
pub async fn update<F>(g: &Glance, id: &str, change: F) -> Result<ImageRecord, ApiError>
where
    F: Fn(&mut ImageRecord) -> Result<(), ApiError> + Send + 'static,
{
    g.images
        .update(id, change)
        .await?
        .unwrap_or_else(|| Err(ApiError::not_found(id)))
}

/// `PUT`/`DELETE /v2/images/{id}/tags/{tag}`: tags are a set (adding twice is a no-op);
/// removing an absent tag is 404; at most 128 tags (`image_tag_quota`).
pub(super) async fn tag_op(
    g: &Glance,
    caller: &Caller,
    id: &str,
    tag: &str,
    add: bool,
) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    g.enforce("modify_image", caller, &rec)?;
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
    .await
    .inspect(|r| g.notifier.image("image.update", r))?;
    no_content()
}

/// `POST .../actions/deactivate|reactivate`: active ⇄ deactivated; repeating is a no-op;
/// any other status is 403, as upstream.
pub(super) async fn activation(g: &Glance, caller: &Caller, id: &str, action: &str) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    g.enforce(action, caller, &rec)?;
    let (from, to) = if action == "deactivate" {
        (ImageStatus::Active, ImageStatus::Deactivated)
    } else {
        (ImageStatus::Deactivated, ImageStatus::Active)
    };
    let verb = action.to_string();
    update(g, &rec.id, move |r| {
        if r.status == to || r.move_status(from, to) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Not allowed to {verb} image in status '{}'", r.status),
            ))
        }
    })
    .await
    .inspect(|r| g.notifier.image("image.update", r))?;
    no_content()
}
