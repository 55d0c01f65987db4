//! Bucket operations: list, create, head, delete, location, ACL.

use crate::request_body::RequestBody;
use glint_storage::{Catalog, StoreError};
use http::{Response, StatusCode};

use super::acl;
use super::authz::Authorized;
use super::error::S3Error;
use super::records::{iso8601, now_ms, object_prefix, valid_bucket_name, BucketRecord};
use super::{read_small_body, requested_acl, xml, xml_response, Ctx, S3Result, S3};
use crate::body;

fn name(ctx: &Ctx) -> &str {
    ctx.bucket.as_deref().unwrap_or_default()
}

fn require_identity(ctx: &Ctx) -> Result<&str, S3Error> {
    ctx.project().ok_or_else(S3Error::access_denied)
}

/// ListBuckets: the caller's buckets, filtered by `prefix` and `bucket-region`, a page of
/// `max-buckets` at a time (the continuation token is the last name listed, encoded).
pub async fn list_buckets(s3: &S3, ctx: &Ctx) -> S3Result {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let project = require_identity(ctx)?.to_string();
    let prefix = ctx.q("prefix").unwrap_or("");
    let region = ctx.q("bucket-region");
    let max: usize = match ctx.q("max-buckets") {
        None => usize::MAX,
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                S3Error::invalid_argument()
                    .with_message("max-buckets must be an integer between 1 and 10000")
            })?,
    };
    let after: Option<Vec<u8>> = match ctx.q("continuation-token") {
        None => None,
        Some(t) => Some(B64.decode(t).map_err(|_| {
            S3Error::invalid_argument().with_message("The continuation token provided is incorrect")
        })?),
    };
    let all = s3
        .store
        .scan(
            Catalog::Buckets,
            prefix.as_bytes().to_vec(),
            after,
            usize::MAX,
        )
        .await?;
    let mut w = xml::Writer::new();
    w.open("ListAllMyBucketsResult");
    w.principal("Owner", &project);
    w.open("Buckets");
    let mut listed = 0;
    let mut last: Vec<u8> = Vec::new();
    let mut next = None;
    for (k, v) in all {
        let Ok(rec) = serde_json::from_slice::<BucketRecord>(&v) else {
            continue;
        };
        if rec.owner != project || region.is_some_and(|r| r != rec.region) {
            continue;
        }
        if listed == max {
            next = Some(B64.encode(&last));
            break;
        }
        listed += 1;
        last.clone_from(&k);
        w.open("Bucket");
        w.elem("Name", &String::from_utf8_lossy(&k));
        w.elem("CreationDate", &iso8601(rec.created_ms));
        w.elem("BucketRegion", &rec.region);
        w.close("Bucket");
    }
    w.close("Buckets");
    if let Some(t) = next {
        w.elem("ContinuationToken", &t);
    }
    if ctx.has("prefix") {
        w.elem("Prefix", prefix);
    }
    w.close("ListAllMyBucketsResult");
    xml_response(StatusCode::OK, w.finish())
}

pub async fn create(s3: &S3, ctx: &Ctx, incoming: RequestBody) -> S3Result {
    let project = require_identity(ctx)?.to_string();
    let bucket = name(ctx).to_string();
    if !valid_bucket_name(&bucket) {
        return Err(S3Error::invalid_bucket_name().with("BucketName", bucket));
    }
    let acl = requested_acl(ctx)?;
    let doc = read_small_body(incoming, ctx, 64 << 10).await?;
    let mut region = s3.cfg.s3_region.clone();
    if !doc.iter().all(u8::is_ascii_whitespace) {
        let doc = xml::parse(&doc).ok_or_else(S3Error::malformed_xml)?;
        let el = doc.root();
        if let Some(loc) = el
            .child_text("LocationConstraint")
            .filter(|l| !l.is_empty())
        {
            if loc != s3.cfg.s3_region {
                return Err(S3Error::invalid_request()
                    .with_message(format!(
                        "The specified location-constraint is not valid; this endpoint serves {}",
                        s3.cfg.s3_region
                    ))
                    .with("LocationConstraint", loc));
            }
            region = loc.to_string();
        }
    }
    let rec = BucketRecord {
        owner: project.clone(),
        created_ms: now_ms(),
        region,
        acl,
        grants: acl::header_grants(ctx)?.unwrap_or_default(),
    };
    let value = serde_json::to_vec(&rec).expect("serializable");
    let key = bucket.clone();
    let outcome = s3
        .store
        .transact(move |tx| {
            if let Some(old) = tx.get_for_update(Catalog::Buckets, key.as_bytes())? {
                let owner = serde_json::from_slice::<BucketRecord>(&old)
                    .map(|r| r.owner)
                    .unwrap_or_default();
                return Ok(Some(owner));
            }
            tx.put(Catalog::Buckets, key.as_bytes(), &value)?;
            Ok(None)
        })
        .await?;
    match outcome {
        Some(owner) if owner != project => {
            Err(S3Error::bucket_already_exists().with("BucketName", bucket))
        }
        // Re-creating one's own bucket succeeds and changes nothing, as in S3's us-east-1 and
        // Ceph RGW (other S3 regions answer 409 BucketAlreadyOwnedByYou).
        _ => Ok(Response::builder()
            .status(StatusCode::OK)
            .header("location", format!("/{bucket}"))
            .body(body::empty())
            .expect("valid")),
    }
}

pub fn head(az: &Authorized) -> S3Result {
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("x-amz-bucket-region", &az.bucket().region)
        .body(body::empty())
        .expect("valid"))
}

pub async fn delete(s3: &S3, ctx: &Ctx) -> S3Result {
    let bucket = name(ctx).to_string();
    let result = s3
        .store
        .transact(move |tx| {
            tx.get_for_update(Catalog::Buckets, bucket.as_bytes())?
                .ok_or(StoreError::Config("no such bucket".into()))?;
            // Objects are written under a lock on their own key, not the bucket's: a PUT racing
            // this delete re-checks the bucket inside its transaction (see object::put).
            if !tx
                .scan(Catalog::Objects, &object_prefix(&bucket), None, 1)?
                .is_empty()
            {
                return Ok(Err(
                    S3Error::bucket_not_empty().with("BucketName", bucket.clone())
                ));
            }
            tx.delete(Catalog::Buckets, bucket.as_bytes())?;
            Ok(Ok(()))
        })
        .await;
    match result {
        Ok(Ok(())) => Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(body::empty())
            .expect("valid")),
        Ok(Err(e)) => Err(e),
        Err(StoreError::Config(_)) => Err(S3Error::no_such_bucket().with("BucketName", name(ctx))),
        Err(e) => Err(e.into()),
    }
}

pub fn location(az: &Authorized) -> S3Result {
    let rec = az.bucket();
    let mut w = xml::Writer::new();
    // us-east-1 is reported as an empty constraint, as S3 does.
    if rec.region == "us-east-1" {
        w.raw("<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"></LocationConstraint>");
    } else {
        w.open("LocationConstraint");
        w.raw(&rec.region);
        w.close("LocationConstraint");
    }
    xml_response(StatusCode::OK, w.finish())
}

pub fn get_acl(az: &Authorized) -> S3Result {
    xml_response(StatusCode::OK, acl::document(&az.bucket().access(), None))
}

pub async fn put_acl(s3: &S3, ctx: &Ctx, incoming: RequestBody) -> S3Result {
    let doc = read_small_body(incoming, ctx, 64 << 10).await?;
    let (acl, grants) = acl::requested(ctx, &doc)?;
    let bucket = name(ctx).to_string();
    let outcome = s3
        .store
        .transact(move |tx| {
            let Some(v) = tx.get_for_update(Catalog::Buckets, bucket.as_bytes())? else {
                return Ok(Err(S3Error::no_such_bucket()));
            };
            let mut rec: BucketRecord =
                serde_json::from_slice(&v).map_err(|_| StoreError::Malformed("bucket record"))?;
            rec.acl = acl.clone();
            rec.grants = grants.clone();
            tx.put(
                Catalog::Buckets,
                bucket.as_bytes(),
                &serde_json::to_vec(&rec).expect("serializable"),
            )?;
            Ok(Ok(()))
        })
        .await?;
    outcome?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .body(body::empty())
        .expect("valid"))
}
