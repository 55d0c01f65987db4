//! The S3 front end: routing (path-style and virtual-hosted-style), authentication, and the
//! mapping of every outcome to an S3 response. Handlers live in `bucket`, `object`, `list`.

mod acl;
pub mod auth;
pub mod authz;
mod bucket;
pub mod chunked;
mod crc_combine;
pub mod error;
mod features;
#[doc(hidden)]
pub mod fuzzing;
mod images_view;
mod list;
pub mod multipart;
mod object;
pub mod object_source;
pub mod records;
mod request_stream;
pub mod xml;

use std::collections::HashMap;
use std::sync::Arc;

use crate::request_body::RequestBody;
use bytes::Bytes;
use glint_storage::{Catalog, Store};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use percent_encoding::percent_decode_str;

use crate::body::{self, Body};
use crate::config::Config;
use crate::credentials::Credential;
use auth::{Identity, Payload, SignedRequest};
use authz::Op;
use error::S3Error;
use records::BucketRecord;

pub struct S3 {
    pub store: Store,
    pub cfg: Arc<Config>,
    /// The image backends, for the read-only images bucket.
    pub image_stores: Arc<crate::images::stores::Stores>,
    /// The image records and the Images API's policy, which the images bucket obeys too.
    pub images: crate::images::ImageRepo,
}

/// Everything a handler needs about the request.
pub struct Ctx {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: HashMap<String, String>,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub identity: Option<Identity>,
    pub payload: Payload,
}

impl Ctx {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.query.contains_key(name)
    }

    pub fn project(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.project.as_str())
    }
}

pub type S3Result = Result<Response<Body>, S3Error>;

pub fn request_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

pub async fn handle(
    s3: Arc<S3>,
    req: http::Request<RequestBody>,
    request_id: String,
) -> Response<Body> {
    let (parts, incoming) = req.into_parts();
    let resource = parts.uri.path().to_string();
    let is_head = parts.method == Method::HEAD;
    let mut named = Named::default();
    let mut resp = match route(&s3, parts, incoming, &mut named).await {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() && e.status != StatusCode::NOT_IMPLEMENTED {
                tracing::error!(code = e.code, detail = %e.message, "request failed");
            } else {
                tracing::info!(code = e.code, detail = %e.message, "request refused");
            }
            error_response(&e, &resource, &request_id, is_head)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amz-request-id", v.clone());
        resp.headers_mut().insert("x-amz-id-2", v);
    }
    resp.headers_mut()
        .insert("server", HeaderValue::from_static("Glint"));
    // For the metrics: AWS's operation name (none when the request was refused before it
    // named one, e.g. a bad signature).
    let name = named.op.map_or("unknown", Op::name);
    resp.extensions_mut()
        .insert(crate::metrics::Operation(name));
    resp.extensions_mut().insert(crate::metrics::RequestInfo {
        id: request_id,
        project: named.project,
    });
    resp
}

/// What routing learned about a request, for the metrics and the access log.
#[derive(Default)]
struct Named {
    op: Option<Op>,
    project: Option<String>,
}

fn error_response(e: &S3Error, resource: &str, request_id: &str, is_head: bool) -> Response<Body> {
    let mut b = Response::builder().status(e.status);
    if e.status == StatusCode::NOT_MODIFIED || is_head {
        return b.body(body::empty()).expect("valid response");
    }
    b = b.header("content-type", "application/xml");
    b.body(body::full(e.render(resource, request_id)))
        .expect("valid response")
}

/// Splits host and path into (bucket, key) for both addressing styles.
/// The third value tells whether the bucket came from the host name.
fn address(
    cfg: &Config,
    headers: &HeaderMap,
    raw_path: &str,
) -> Result<(Option<String>, Option<String>, bool), S3Error> {
    let path = percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| S3Error::invalid_request().with_message("the path is not valid UTF-8"))?
        .into_owned();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let host = host
        .rsplit_once(':')
        .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let vhost_bucket = cfg
        .s3_domain
        .as_deref()
        .and_then(|d| host.strip_suffix(d))
        .and_then(|b| b.strip_suffix('.'))
        .filter(|b| !b.is_empty());
    let rest = path.strip_prefix('/').unwrap_or(&path);
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(match vhost_bucket {
        Some(b) => (Some(b.to_string()), non_empty(rest), true),
        None => match rest.split_once('/') {
            Some((b, k)) => (non_empty(b), non_empty(k), false),
            None => (non_empty(rest), None, false),
        },
    })
}

async fn lookup_credential(s3: &S3, access_key: &str) -> Result<Credential, S3Error> {
    crate::credentials::get(&s3.store, access_key)
        .await?
        .ok_or_else(S3Error::invalid_access_key)
}

async fn authenticate(
    s3: &S3,
    req: &SignedRequest<'_>,
    vhost_bucket: Option<&str>,
) -> Result<(Option<Identity>, Payload), S3Error> {
    let now = time::OffsetDateTime::now_utc();
    if let Some(claims) = auth::parse_v4(req)? {
        let cred = lookup_credential(s3, &claims.access_key).await?;
        let payload = auth::verify_v4(req, &claims, &cred.secret, now)?;
        return Ok((
            Some(Identity {
                access_key: claims.access_key,
                project: cred.project,
            }),
            payload,
        ));
    }
    if let Some(claims) = auth::parse_v2(req)? {
        let cred = lookup_credential(s3, &claims.access_key).await?;
        auth::verify_v2(req, &claims, &cred.secret, vhost_bucket, now)?;
        return Ok((
            Some(Identity {
                access_key: claims.access_key,
                project: cred.project,
            }),
            Payload::Unsigned,
        ));
    }
    Ok((None, Payload::Unsigned))
}

async fn route(
    s3: &S3,
    parts: http::request::Parts,
    incoming: RequestBody,
    named: &mut Named,
) -> S3Result {
    let raw_path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or("");
    if parts.method == Method::OPTIONS {
        // A CORS preflight; Glint has no CORS configuration to answer it with.
        return Err(S3Error::invalid_request()
            .with_message("Insufficient information. Origin request header needed."));
    }
    let signed = SignedRequest {
        method: &parts.method,
        raw_path,
        raw_query,
        headers: &parts.headers,
    };
    let (bucket, key, vhost) = address(&s3.cfg, &parts.headers, raw_path)?;
    let (identity, payload) =
        authenticate(s3, &signed, vhost.then_some(bucket.as_deref()).flatten()).await?;
    named.project = identity.as_ref().map(|i| i.project.clone());
    let ctx = Ctx {
        method: parts.method.clone(),
        headers: parts.headers,
        query: auth::query_params(raw_query).into_iter().collect(),
        bucket,
        key,
        identity,
        payload,
    };
    features::subresources(&ctx)?;
    let op = Op::of(&ctx)?;
    named.op = Some(op);
    features::check(op, &ctx)?;
    if ctx.bucket.is_some() && ctx.bucket == s3.cfg.s3_images_bucket {
        return images_view::handle(s3, &ctx).await;
    }
    // Every check happens here, before a handler runs and before the body is read.
    let az = authz::authorize(s3, &ctx, op).await?;
    dispatch(s3, &ctx, op, az, incoming).await
}

/// Runs the handler of an authorized operation.
async fn dispatch(
    s3: &S3,
    ctx: &Ctx,
    op: Op,
    az: authz::Authorized,
    incoming: RequestBody,
) -> S3Result {
    match op {
        Op::ListBuckets => bucket::list_buckets(s3, ctx).await,
        Op::CreateBucket => bucket::create(s3, ctx, incoming).await,
        Op::HeadBucket => bucket::head(&az),
        Op::DeleteBucket => bucket::delete(s3, ctx).await,
        Op::GetBucketLocation => bucket::location(&az),
        Op::GetBucketAcl => bucket::get_acl(&az),
        Op::PutBucketAcl => bucket::put_acl(s3, ctx, incoming).await,
        // Buckets are never versioned: an empty configuration, as S3 reports for those.
        Op::GetBucketVersioning => xml_response(
            StatusCode::OK,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>".into(),
        ),
        Op::ListObjects | Op::ListObjectsV2 => list::list_objects(s3, ctx).await,
        Op::ListObjectVersions => list::list_versions(s3, ctx).await,
        Op::ListMultipartUploads => multipart::list_uploads(s3, ctx).await,
        Op::DeleteObjects => object::delete_many(s3, ctx, incoming).await,
        Op::PutObject => object::put(s3, ctx, &az, incoming).await,
        Op::CopyObject => object::copy(s3, ctx, &az).await,
        Op::GetObject | Op::HeadObject => object::get(s3, ctx, op, az).await,
        Op::GetObjectAttributes => object::attributes(ctx, &az).await,
        Op::GetObjectAcl => object::get_acl(&az),
        Op::PutObjectAcl => object::put_acl(s3, ctx, incoming).await,
        Op::DeleteObject => object::delete(s3, ctx).await,
        Op::CreateMultipartUpload => multipart::create(s3, ctx, &az).await,
        Op::UploadPart => multipart::upload_part(s3, ctx, &az, incoming).await,
        Op::UploadPartCopy => multipart::upload_part_copy(s3, ctx, &az).await,
        Op::CompleteMultipartUpload => multipart::complete(s3, ctx, &az, incoming).await,
        Op::AbortMultipartUpload => multipart::abort(s3, ctx, &az).await,
        Op::ListParts => multipart::list_parts(s3, ctx, &az).await,
    }
}

/// Reads a small request body (XML documents) with a size limit, refusing a declared
/// length over it before reading, and checks every integrity claim the client made
/// (`Content-MD5`, `x-amz-content-sha256`, an `x-amz-checksum-*` header or trailer).
pub async fn read_small_body(
    incoming: RequestBody,
    ctx: &Ctx,
    limit: usize,
) -> Result<Bytes, S3Error> {
    read_document(incoming, ctx, limit, true).await
}

/// `read_small_body` for CompleteMultipartUpload, whose `x-amz-checksum-*` headers are the
/// whole object's checksum, not the document's.
pub async fn read_complete_document(
    incoming: RequestBody,
    ctx: &Ctx,
    limit: usize,
) -> Result<Bytes, S3Error> {
    read_document(incoming, ctx, limit, false).await
}

async fn read_document(
    incoming: RequestBody,
    ctx: &Ctx,
    limit: usize,
    body_checksums: bool,
) -> Result<Bytes, S3Error> {
    let too_large = || S3Error::malformed_xml().with_message("request document too large");
    if declared_length(ctx).is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let (stream, trailers) = request_stream::request_stream_with_trailers(incoming, ctx)?;
    let mut out = Vec::new();
    futures::pin_mut!(stream);
    use futures::StreamExt;
    while let Some(b) = stream.next().await {
        let b = b.map_err(S3Error::from_body)?;
        if out.len() + b.len() > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&b);
    }
    if let Payload::Sha256(want) = &ctx.payload {
        if auth::sha256_hex(&out) != *want {
            return Err(S3Error::sha256_mismatch());
        }
    }
    object::check_small_body(ctx, &out, &trailers, body_checksums)?;
    Ok(Bytes::from(out))
}

/// The body length the request declares: `x-amz-decoded-content-length` for aws-chunked
/// bodies, else `Content-Length`.
pub fn declared_length(ctx: &Ctx) -> Option<u64> {
    ctx.header("x-amz-decoded-content-length")
        .or_else(|| ctx.header("content-length"))
        .and_then(|v| v.trim().parse().ok())
}

/// Loads a bucket record; `NoSuchBucket` when absent.
pub async fn load_bucket(s3: &S3, name: &str) -> Result<BucketRecord, S3Error> {
    let v = s3
        .store
        .get(Catalog::Buckets, name.as_bytes().to_vec())
        .await?
        .ok_or_else(|| S3Error::no_such_bucket().with("BucketName", name))?;
    serde_json::from_slice(&v).map_err(|_| S3Error::internal())
}

pub const CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

/// The canned ACL named by `x-amz-acl`, validated.
pub fn requested_acl(ctx: &Ctx) -> Result<String, S3Error> {
    match ctx.header("x-amz-acl") {
        None => Ok("private".into()),
        Some(a) if CANNED_ACLS.contains(&a) => Ok(a.to_string()),
        Some(_) => Err(S3Error::invalid_argument().with_message("unknown canned ACL")),
    }
}

pub fn xml_response(status: StatusCode, doc: String) -> S3Result {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(body::full(doc))
        .expect("valid response"))
}
