//! The locations API (Glance 2024.2, API.md §14): `POST /v2/images/{id}/locations` gives a
//! queued image data that already exists, checked against the caller's `validation_data`;
//! `GET` lists where an image's data is (for services such as Nova and Cinder). Glint's
//! locations are its own: an S3 object in this store (`s3://bucket/key`, adopted by
//! reference, no byte copied) or an image backend's blob (`glint://store/blob`, listed).

use crate::images::ImageStatus;
use crate::request_body::RequestBody;
use glint_storage::DigestSet;
use http::StatusCode;
use serde_json::{json, Value};

use super::image::load_visible;
use super::{json, read_json_body, ApiError, ApiResult, Caller, Glance};

pub async fn add(g: &Glance, caller: &Caller, id: &str, incoming: RequestBody) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    g.enforce("add_image_location", caller, &rec)?;
    let body = read_json_body(incoming).await?;
    let url = body
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("'url' is required"))?;
    let validation = body.get("validation_data").cloned().unwrap_or(Value::Null);
    let value = validation.get("os_hash_value").and_then(Value::as_str);
    // As upstream: a value without an algorithm is of `hashing_algorithm`.
    let algo = validation
        .get("os_hash_algo")
        .and_then(Value::as_str)
        .or(value.map(|_| g.opts().hashing_algorithm.name()));
    let want = match (algo, value) {
        (None, None) => None,
        (Some(a @ ("sha512" | "sha256" | "sha1" | "md5")), Some(v)) => {
            Some((a, v.to_ascii_lowercase()))
        }
        _ => return Err(ApiError::bad(
            "validation_data needs os_hash_value (and os_hash_algo sha512, sha256, sha1 or md5)",
        )),
    };
    if rec.status != ImageStatus::Queued {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Image status {} does not allow adding a location",
                rec.status
            ),
        ));
    }
    if !url.starts_with("s3://") {
        return Err(ApiError::bad(format!(
            "Unsupported location {url}: Glint adopts s3://bucket/key objects of this store"
        )));
    }
    let blob = super::import::s3_object(g, caller, Some(url)).await?;
    let (_, reader) = g.store.read(blob, None).await?;
    let set = DigestSet::MD5 | DigestSet::SHA512 | DigestSet::SHA1 | DigestSet::SHA256;
    let (size, d, findings) = super::import::hash_blob(reader, set).await?;
    if let Some((a, v)) = want {
        let got = match a {
            "sha512" => d.sha512.map(hex::encode),
            "sha256" => d.sha256.map(hex::encode),
            "sha1" => d.sha1.map(hex::encode),
            _ => d.md5.map(hex::encode),
        };
        if got.as_deref() != Some(v.as_str()) {
            return Err(ApiError::bad(format!(
                "os_hash_value of the data at {url} does not match validation_data"
            )));
        }
    }
    let virtual_size = if rec.container_format.as_deref() == Some("bare") {
        let declared = rec.disk_format.clone().unwrap_or_default();
        findings
            .verdict(&declared)
            .map_err(|r| super::data::refused(&r))?
            .virtual_size
    } else {
        None
    };
    let store = g.stores.default_id().map(str::to_string);
    let meta = (size, &d, virtual_size);
    if !super::import::adopt_main_blob(g, &rec.id, ImageStatus::Queued, store, blob, meta, |_| {})
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "The image changed while its location was being added",
        ));
    }
    Ok(http::Response::builder()
        .status(StatusCode::ACCEPTED)
        .header("content-type", "text/html; charset=UTF-8")
        .body(crate::body::empty())
        .expect("valid"))
}

pub async fn list(g: &Glance, caller: &Caller, id: &str) -> ApiResult {
    let rec = load_visible(g, caller, id).await?;
    g.enforce("fetch_image_location", caller, &rec)?;
    let locations: Vec<Value> = rec
        .locations()
        .into_iter()
        .map(|(store, blob)| {
            let store = store.unwrap_or("main");
            json!({"url": format!("glint://{store}/{blob}"), "metadata": {"store": store}})
        })
        .collect();
    Ok(json(StatusCode::OK, &Value::Array(locations)))
}
