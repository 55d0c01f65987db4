//! The images bucket: a read-only S3 view of the Glance images in the same store (beyond
//! upstream). Key = image id. An S3 key carries a project only, so its holder is judged as a
//! member of that project by the Images API's own policy (`glance::access`): it lists the
//! images `get_image` shows it and reads the bytes only where `download_image` allows, as
//! `GET /v2/images/{id}/file` would for that caller. The bytes are the image's own blob,
//! streamed as for any object (ranges, conditional requests); the ETag is the image's MD5
//! `checksum`. Writes are refused.

use crate::images::ImageStatus;

use super::list::{parse_list, render_list, select};
use super::object::{serve_record, RespondError};
use super::records::ObjectRecord;
use super::{Ctx, S3Result, S3};
use crate::images::access::Denied;
use crate::images::repo::ReadError;
use crate::images::{Caller, ImageRecord};
use crate::s3::error::S3Error;
use http::Method;

pub async fn handle(s3: &S3, ctx: &Ctx) -> S3Result {
    let project = ctx.project().ok_or_else(S3Error::access_denied)?;
    // S3 keys carry a project only: its holder acts as a member of that project.
    let caller = Caller {
        request_id: String::new(),
        user: None,
        project: Some(project.to_string()),
        roles: vec!["member".into(), "reader".into()],
        ..Default::default()
    };
    match (&ctx.method, ctx.key.as_deref()) {
        (&Method::GET, None) if ctx.has("location") => super::xml_response(
            http::StatusCode::OK,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{}</LocationConstraint>",
                s3.cfg.s3_region
            ),
        ),
        (&Method::GET, None) => list(s3, ctx, &caller).await,
        (&Method::HEAD, None) => Ok(http::Response::builder()
            .status(http::StatusCode::OK)
            .header("x-amz-bucket-region", &s3.cfg.s3_region)
            .body(crate::body::empty())
            .expect("valid")),
        (&Method::GET | &Method::HEAD, Some(key)) if reads_data(ctx) => {
            let rec = readable(s3, &caller, key).await?;
            let store = s3.image_stores.store(rec.store.as_deref());
            match serve_record(store, ctx, &as_object(&rec)).await {
                Ok(r) => Ok(r),
                Err(RespondError::S3(e)) => Err(e),
                Err(RespondError::Gone) => Err(S3Error::no_such_key()),
            }
        }
        _ => Err(S3Error::access_denied()
            .with_message("The images bucket is a read-only view of the Glance images")),
    }
}

/// The image whose bytes `caller` may read, by the Images API's rules (the repository's
/// one read check).
async fn readable(s3: &S3, caller: &Caller, id: &str) -> Result<ImageRecord, S3Error> {
    match s3.images.readable(caller, id).await {
        Ok(rec) if has_data(&rec) => Ok(rec),
        Ok(_) | Err(ReadError::Denied(Denied::NotFound)) => Err(S3Error::no_such_key()),
        Err(ReadError::Denied(Denied::Forbidden(_))) => Err(S3Error::access_denied()),
        Err(ReadError::Store(e)) => Err(e.into()),
    }
}

fn has_data(r: &ImageRecord) -> bool {
    r.status == ImageStatus::Active && r.blob.is_some()
}

fn as_object(r: &ImageRecord) -> ObjectRecord {
    let mut rec = ObjectRecord {
        blob: r.blob.map(|b| b.to_hex()).unwrap_or_default(),
        size: r.size.unwrap_or(0),
        etag: format!("\"{}\"", r.checksum.as_deref().unwrap_or("")),
        modified_ms: crate::images::record::timestamp_ms(&r.updated_at),
        owner: r.owner.clone().unwrap_or_default(),
        acl: "private".into(),
        ..Default::default()
    };
    rec.headers
        .insert("content-type".into(), "application/octet-stream".into());
    for (k, v) in [
        ("disk-format", &r.disk_format),
        ("container-format", &r.container_format),
        ("name", &r.name),
    ] {
        if let Some(v) = v.as_ref().filter(|v| v.is_ascii()) {
            rec.meta.insert(k.into(), v.clone());
        }
    }
    rec
}

async fn list(s3: &S3, ctx: &Ctx, caller: &Caller) -> S3Result {
    let req = parse_list(ctx)?;
    // Listed: the images the caller may see (as `GET /v2/images` shows them) with data, in
    // id order (the catalog's key order).
    let visible = s3.images.list_visible(caller).await?;
    let objects = visible
        .into_iter()
        .filter(has_data)
        .map(|r| (r.id.clone(), as_object(&r)));
    let (entries, truncated) = select(objects, &req);
    let bucket = ctx.bucket.as_deref().unwrap_or_default();
    render_list(ctx, bucket, &req, &entries, truncated)
}

/// Whether a GET/HEAD on an image key asks for its bytes: no sub-resource (acl, tagging,
/// attributes, …) in the query, only what a plain object read may carry — presigned-URL
/// authentication (SigV4 `X-Amz-*`, SigV2 `AWSAccessKeyId`/`Signature`/`Expires`),
/// `response-*` overrides, `partNumber`, `versionId` (`null`: checked by the router) and the
/// SDKs' `x-id` operation hint.
fn reads_data(ctx: &Ctx) -> bool {
    ctx.query.keys().all(|k| {
        k.starts_with("X-Amz-")
            || k.starts_with("x-amz-")
            || k.starts_with("response-")
            || matches!(
                k.as_str(),
                "AWSAccessKeyId" | "Signature" | "Expires" | "partNumber" | "versionId" | "x-id"
            )
    })
}
