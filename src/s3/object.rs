//! Object operations: PUT (streamed into the engine, every digest in one pass), GET/HEAD
//! (ranges, part numbers, conditionals, response overrides), DELETE, multi-object delete,
//! CopyObject (a zero-copy clone) and object ACLs.

use std::collections::BTreeMap;

use crate::request_body::RequestBody;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use glint_storage::{BlobId, Catalog, DigestSet, Digests, StoreError, WriteOptions};
use http::{Response, StatusCode};
use percent_encoding::percent_decode_str;

use super::acl;
use super::auth::Payload;
use super::authz::{self, Authorized, Op};
use super::error::S3Error;
use super::records::{http_date, iso8601, now_ms, object_key, ObjectRecord};
use super::{read_small_body, requested_acl, xml, xml_response, Ctx, S3Result, S3};
use crate::body;

/// Content headers stored with an object and returned on GET.
const CONTENT_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
];

pub const CHECKSUM_ALGOS: &[&str] = &["crc32", "crc32c", "crc64nvme", "sha1", "sha256"];

pub fn checksum_digest(algo: &str) -> DigestSet {
    match algo {
        "crc32" => DigestSet::CRC32,
        "crc32c" => DigestSet::CRC32C,
        "crc64nvme" => DigestSet::CRC64NVME,
        "sha1" => DigestSet::SHA1,
        "sha256" => DigestSet::SHA256,
        _ => DigestSet::NONE,
    }
}

/// The base64 S3 form of a computed checksum.
pub fn checksum_value(algo: &str, d: &Digests) -> Option<String> {
    Some(match algo {
        "crc32" => B64.encode(d.crc32?.to_be_bytes()),
        "crc32c" => B64.encode(d.crc32c?.to_be_bytes()),
        "crc64nvme" => B64.encode(d.crc64nvme?.to_be_bytes()),
        "sha1" => B64.encode(d.sha1?),
        "sha256" => B64.encode(d.sha256?),
        _ => return None,
    })
}

fn names(ctx: &Ctx) -> (&str, &str) {
    (
        ctx.bucket.as_deref().unwrap_or_default(),
        ctx.key.as_deref().unwrap_or_default(),
    )
}

fn parse_record(v: &[u8]) -> Result<ObjectRecord, StoreError> {
    serde_json::from_slice(v).map_err(|_| StoreError::Malformed("object record"))
}

fn blob_id(rec: &ObjectRecord) -> Result<BlobId, StoreError> {
    rec.blob
        .parse()
        .map_err(|_| StoreError::Malformed("object blob id"))
}

/// Which checksum the client sends (header or trailer), if any.
pub fn requested_checksum(ctx: &Ctx) -> Result<Option<(String, Option<String>)>, S3Error> {
    for algo in CHECKSUM_ALGOS {
        if let Some(v) = ctx.header(&format!("x-amz-checksum-{algo}")) {
            return Ok(Some((algo.to_string(), Some(v.to_string()))));
        }
    }
    if let Some(t) = ctx.header("x-amz-trailer") {
        let algo = t.trim().to_ascii_lowercase();
        let algo = algo
            .strip_prefix("x-amz-checksum-")
            .ok_or_else(|| S3Error::invalid_request().with_message("unsupported x-amz-trailer"))?;
        if !CHECKSUM_ALGOS.contains(&algo) {
            return Err(S3Error::invalid_request()
                .with_message("unsupported checksum algorithm in x-amz-trailer"));
        }
        return Ok(Some((algo.to_string(), None)));
    }
    if let Some(a) = ctx
        .header("x-amz-checksum-algorithm")
        .or(ctx.header("x-amz-sdk-checksum-algorithm"))
    {
        let a = a.to_ascii_lowercase();
        if !CHECKSUM_ALGOS.contains(&a.as_str()) {
            return Err(S3Error::invalid_request()
                .with_message("Checksum algorithm provided is unsupported."));
        }
        return Ok(Some((a, None)));
    }
    Ok(None)
}

/// Streams the request body into a staged blob and checks every integrity claim the client
/// made (Content-MD5, x-amz-content-sha256, x-amz-checksum-* header or trailer, length).
pub async fn stage_body(
    s3: &S3,
    ctx: &Ctx,
    incoming: RequestBody,
    checksum: &Option<(String, Option<String>)>,
) -> Result<(glint_storage::StagedBlob, Option<(String, String)>), S3Error> {
    let content_md5 = content_md5(ctx)?;
    if ctx.header("content-length").is_none() && ctx.header("transfer-encoding").is_none() {
        return Err(S3Error::missing_content_length());
    }
    // A body declared larger than the limit is refused from its headers, unread.
    if super::declared_length(ctx).is_some_and(|n| n > s3.cfg.s3_max_put_size) {
        return Err(
            S3Error::entity_too_large().with("MaxSizeAllowed", s3.cfg.s3_max_put_size.to_string())
        );
    }
    let mut digests = DigestSet::MD5;
    if let Payload::Sha256(_) = ctx.payload {
        digests = digests | DigestSet::SHA256;
    }
    if let Some((algo, _)) = checksum {
        digests = digests | checksum_digest(algo);
    }
    let (stream, trailers) = super::request_stream::request_stream_with_trailers(incoming, ctx)?;
    let staged = s3
        .store
        .write(
            stream,
            WriteOptions {
                digests,
                max_size: Some(s3.cfg.s3_max_put_size),
            },
        )
        .await?;
    let d = staged.digests();
    if let Some(want) = ctx
        .header("x-amz-decoded-content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        if want != staged.size() {
            return Err(S3Error::incomplete_body());
        }
    }
    if let Payload::Sha256(want) = &ctx.payload {
        if d.sha256.map(hex::encode).as_deref() != Some(want.as_str()) {
            return Err(S3Error::sha256_mismatch());
        }
    }
    let stored = check_claims(content_md5, d, checksum, &trailers)?;
    Ok((staged, stored))
}

/// The decoded `Content-MD5`, if sent.
fn content_md5(ctx: &Ctx) -> Result<Option<Vec<u8>>, S3Error> {
    ctx.header("content-md5")
        .map(|v| {
            B64.decode(v.trim())
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(S3Error::invalid_digest)
        })
        .transpose()
}

/// Checks a whole small body (an XML document) against `Content-MD5` and the
/// `x-amz-checksum-*` header or trailer, as `stage_body` checks streamed ones.
pub(crate) fn check_small_body(
    ctx: &Ctx,
    body: &[u8],
    trailers: &crate::s3::chunked::Trailers,
    body_checksums: bool,
) -> Result<(), S3Error> {
    let content_md5 = content_md5(ctx)?;
    let checksum = if body_checksums {
        requested_checksum(ctx)?
    } else {
        None
    };
    let mut set = DigestSet::MD5;
    if let Some((algo, _)) = &checksum {
        set = set | checksum_digest(algo);
    }
    let mut h = glint_storage::Hasher::new(set);
    h.update(body);
    check_claims(content_md5, &h.finish(), &checksum, trailers).map(|_| ())
}

/// Compares what was received with the client's claims; the checksum to store, if any.
fn check_claims(
    content_md5: Option<Vec<u8>>,
    d: &Digests,
    checksum: &Option<(String, Option<String>)>,
    trailers: &crate::s3::chunked::Trailers,
) -> Result<Option<(String, String)>, S3Error> {
    if let Some(md5) = content_md5 {
        if d.md5.map(|m| m.to_vec()) != Some(md5) {
            return Err(S3Error::bad_digest());
        }
    }
    let mut stored_checksum = None;
    if let Some((algo, claimed)) = checksum {
        let computed = checksum_value(algo, d).ok_or_else(S3Error::internal)?;
        let name = format!("x-amz-checksum-{algo}");
        let claimed = claimed.clone().or_else(|| {
            trailers
                .lock()
                .expect("trailers")
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        });
        if let Some(c) = &claimed {
            if *c != computed {
                return Err(S3Error::bad_digest()
                    .with_message(format!("Value for {name} header is invalid.")));
            }
        }
        stored_checksum = Some((algo.clone(), computed));
    }
    Ok(stored_checksum)
}

pub fn collect_metadata(ctx: &Ctx) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut headers = BTreeMap::new();
    let mut meta = BTreeMap::new();
    for (name, value) in &ctx.headers {
        let Ok(v) = value.to_str() else { continue };
        let n = name.as_str();
        if let Some(m) = n.strip_prefix("x-amz-meta-") {
            meta.insert(m.to_string(), v.to_string());
        } else if CONTENT_HEADERS.contains(&n) {
            if n == "content-encoding" {
                // aws-chunked is a transfer detail, never part of the stored object.
                let kept: Vec<&str> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|p| *p != "aws-chunked" && !p.is_empty())
                    .collect();
                if !kept.is_empty() {
                    headers.insert(n.to_string(), kept.join(", "));
                }
            } else {
                headers.insert(n.to_string(), v.to_string());
            }
        }
    }
    (headers, meta)
}

/// Checks If-Match / If-None-Match of a write against the current record.
/// The `If-Match` / `If-None-Match` of a write, detached from the request so that they can
/// be checked inside the transaction that replaces the object.
#[derive(Clone, Debug)]
pub(crate) struct WriteConditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
}

pub(crate) fn write_conditions(ctx: &Ctx) -> WriteConditions {
    WriteConditions {
        if_match: ctx.header("if-match").map(str::to_string),
        if_none_match: ctx.header("if-none-match").map(str::to_string),
    }
}

impl WriteConditions {
    /// Whether the write may replace `current` (None: no object there).
    pub(crate) fn check(&self, current: Option<&ObjectRecord>) -> Result<(), S3Error> {
        if let Some(m) = &self.if_match {
            match current {
                Some(r) if etag_matches(m, &r.etag) => {}
                Some(_) => return Err(S3Error::precondition_failed().with("Condition", "If-Match")),
                None => return Err(S3Error::no_such_key()),
            }
        }
        if let Some(m) = &self.if_none_match {
            if current.is_some_and(|r| etag_matches(m, &r.etag)) {
                return Err(S3Error::precondition_failed().with("Condition", "If-None-Match"));
            }
        }
        Ok(())
    }
}

fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|h| h == "*" || h == etag || h.trim_matches('"') == etag.trim_matches('"'))
}

pub async fn put(s3: &S3, ctx: &Ctx, az: &Authorized, incoming: RequestBody) -> S3Result {
    let (bucket, key) = names(ctx);
    let brec = az.bucket();
    let acl = requested_acl(ctx)?;
    let checksum = requested_checksum(ctx)?;
    let (staged, stored_checksum) = stage_body(s3, ctx, incoming, &checksum).await?;
    let (headers, meta) = collect_metadata(ctx);
    let mut rec = ObjectRecord {
        blob: staged.id().to_hex(),
        size: staged.size(),
        etag: format!(
            "\"{}\"",
            hex::encode(staged.digests().md5.unwrap_or_default())
        ),
        modified_ms: now_ms(),
        owner: ctx.project().unwrap_or(&brec.owner).to_string(),
        acl,
        grants: acl::header_grants(ctx)?.unwrap_or_default(),
        headers,
        meta,
        checksums: BTreeMap::new(),
        parts: Vec::new(),
        checksum_type: None,
        part_checksums: Vec::new(),
    };
    if let Some((algo, v)) = &stored_checksum {
        rec.checksums.insert(algo.clone(), v.clone());
        rec.checksum_type = Some("FULL_OBJECT".into());
    }
    let etag = rec.etag.clone();
    commit_object(s3, ctx, bucket, key, rec, move |tx| {
        tx.add_blob(&staged).map(|_| ())
    })
    .await?;
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header("etag", etag);
    if let Some((algo, v)) = stored_checksum {
        resp = resp.header(format!("x-amz-checksum-{algo}"), v);
    }
    Ok(resp.body(body::empty()).expect("valid"))
}

/// Commits `rec` under `bucket/key` in one transaction: checks the bucket still exists
/// (shared lock), evaluates write preconditions against the current record (locked), runs
/// `attach` (adds or clones the new blob) and deletes the replaced object's blob.
pub async fn commit_object<F>(
    s3: &S3,
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    rec: ObjectRecord,
    mut attach: F,
) -> Result<(), S3Error>
where
    F: FnMut(&mut glint_storage::Tx<'_>) -> glint_storage::Result<()> + Send + 'static,
{
    let (bucket, okey) = (bucket.to_string(), object_key(bucket, key));
    let value = serde_json::to_vec(&rec).expect("serializable");
    let cond = write_conditions(ctx);
    let result = s3
        .store
        .transact(move |tx| {
            if tx
                .get_shared(Catalog::Buckets, bucket.as_bytes())?
                .is_none()
            {
                return Ok(Err(S3Error::no_such_bucket()));
            }
            let current = tx
                .get_for_update(Catalog::Objects, &okey)?
                .map(|v| parse_record(&v))
                .transpose()?;
            if let Err(e) = cond.check(current.as_ref()) {
                return Ok(Err(e));
            }
            attach(tx)?;
            tx.put(Catalog::Objects, &okey, &value)?;
            if let Some(old) = current {
                tx.delete_blob(blob_id(&old)?)?;
            }
            Ok(Ok(()))
        })
        .await?;
    result
}

enum RangeSpec {
    Whole,
    Bytes(u64, u64),
    Unsatisfiable,
}

/// `Range: bytes=a-b | a- | -n`; anything else (several ranges, other units, bad syntax,
/// `first > last`) is ignored as HTTP allows and S3 does, and the whole object is served.
fn parse_range(h: Option<&str>, size: u64) -> RangeSpec {
    match h.map(crate::range::parse) {
        Some(Ok(r)) => match r.resolve(size) {
            Some(span) => RangeSpec::Bytes(span.start, span.end),
            None => RangeSpec::Unsatisfiable,
        },
        _ => RangeSpec::Whole,
    }
}

/// `parse_range` as the fuzz tests see it (`s3::fuzzing`).
pub(crate) fn parse_range_for_fuzz(value: &str, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    match parse_range(Some(value), size) {
        RangeSpec::Whole => Ok(None),
        RangeSpec::Bytes(a, b) => Ok(Some((a, b))),
        RangeSpec::Unsatisfiable => Err(S3Error::invalid_range()),
    }
}

/// A conditional header's HTTP date in Unix seconds; None when absent or unparsable (S3
/// ignores a malformed date condition rather than failing the request).
fn header_date(ctx: &Ctx, name: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(ctx.header(name)?).ok()?;
    Some(
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    )
}

fn read_preconditions(ctx: &Ctx, rec: &ObjectRecord) -> Result<(), S3Error> {
    let modified = rec.modified_ms / 1000;
    let since = |h: &str| header_date(ctx, h);
    let if_match = ctx.header("if-match");
    if let Some(m) = if_match {
        if !etag_matches(m, &rec.etag) {
            return Err(S3Error::precondition_failed().with("Condition", "If-Match"));
        }
    } else if let Some(t) = since("if-unmodified-since") {
        if modified > t {
            return Err(S3Error::precondition_failed().with("Condition", "If-Unmodified-Since"));
        }
    }
    if let Some(m) = ctx.header("if-none-match") {
        if etag_matches(m, &rec.etag) {
            return Err(S3Error::not_modified());
        }
    } else if let Some(t) = since("if-modified-since") {
        if modified <= t {
            return Err(S3Error::not_modified());
        }
    }
    Ok(())
}

pub async fn get(s3: &S3, ctx: &Ctx, op: Op, az: Authorized) -> S3Result {
    let mut az = az;
    // An overwrite can delete the blob between reading the record and opening it: the new
    // record is authorized afresh (its ACL may differ) and served.
    for _ in 0..3 {
        let rec = az.object.as_ref().ok_or_else(S3Error::internal)?;
        match serve_record(&s3.store, ctx, rec).await {
            Err(RespondError::Gone) => az = authz::authorize(s3, ctx, op).await?,
            Err(RespondError::S3(e)) => return Err(e),
            Ok(r) => return Ok(r),
        }
    }
    Err(S3Error::slow_down())
}

/// GET/HEAD of an object the caller may read: conditional headers, ranges, part numbers.
/// `store` holds the record's blob (the main store, or an image backend).
pub(crate) async fn serve_record(
    store: &glint_storage::Store,
    ctx: &Ctx,
    rec: &ObjectRecord,
) -> Result<Response<crate::body::Body>, RespondError> {
    match read_preconditions(ctx, rec) {
        Err(e) if e.status == StatusCode::NOT_MODIFIED => {
            // A 304 still carries the validators.
            return Ok(Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .header("etag", &rec.etag)
                .header("last-modified", http_date(rec.modified_ms))
                .body(body::empty())
                .expect("valid"));
        }
        other => other?,
    }
    respond_with(store, ctx, rec).await
}

pub(crate) enum RespondError {
    Gone,
    S3(S3Error),
}

impl From<S3Error> for RespondError {
    fn from(e: S3Error) -> Self {
        RespondError::S3(e)
    }
}

async fn respond_with(
    store: &glint_storage::Store,
    ctx: &Ctx,
    rec: &ObjectRecord,
) -> Result<Response<crate::body::Body>, RespondError> {
    let size = rec.size;
    let mut status = StatusCode::OK;
    let mut range = None;
    let mut builder = Response::builder();
    if let Some(pn) = ctx.q("partNumber") {
        let n: usize = pn.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            S3Error::invalid_argument()
                .with_message("Part number must be an integer between 1 and 10000, inclusive")
        })?;
        let parts = if rec.parts.is_empty() {
            vec![size]
        } else {
            rec.parts.clone()
        };
        if n > parts.len() {
            return Err(S3Error::invalid_part_number().into());
        }
        let start: u64 = parts[..n - 1].iter().sum();
        let end = start + parts[n - 1];
        builder = builder.header("x-amz-mp-parts-count", parts.len());
        if !rec.parts.is_empty() || n > 1 || size > 0 {
            status = StatusCode::PARTIAL_CONTENT;
            builder = builder.header(
                "content-range",
                format!("bytes {}-{}/{}", start, end.saturating_sub(1), size),
            );
        }
        range = Some(start..end);
    } else {
        match parse_range(ctx.header("range"), size) {
            RangeSpec::Whole => {}
            RangeSpec::Unsatisfiable => {
                return Err(S3Error::invalid_range()
                    .with("ActualObjectSize", size.to_string())
                    .into());
            }
            RangeSpec::Bytes(a, b) => {
                status = StatusCode::PARTIAL_CONTENT;
                builder =
                    builder.header("content-range", format!("bytes {}-{}/{}", a, b - 1, size));
                range = Some(a..b);
            }
        }
    }
    let len = range.as_ref().map_or(size, |r| r.end - r.start);
    builder = builder
        .status(status)
        .header("content-length", len)
        .header("etag", &rec.etag)
        .header("last-modified", http_date(rec.modified_ms))
        .header("accept-ranges", "bytes");
    if !rec.headers.contains_key("content-type") {
        builder = builder.header("content-type", "binary/octet-stream");
    }
    for (k, v) in &rec.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    for (k, v) in &rec.meta {
        builder = builder.header(format!("x-amz-meta-{k}"), v.as_str());
    }
    let part = ctx.q("partNumber").and_then(|p| p.parse::<usize>().ok());
    let mode = ctx
        .header("x-amz-checksum-mode")
        .is_some_and(|m| m.eq_ignore_ascii_case("enabled"));
    if let Some(v) = part.and_then(|n| rec.part_checksums.get(n.wrapping_sub(1))) {
        // A part read of a multipart object returns that part's checksum.
        if let Some(algo) = rec.checksums.keys().next() {
            builder = builder.header(format!("x-amz-checksum-{algo}"), v.as_str());
        }
        if let Some(t) = &rec.checksum_type {
            builder = builder.header("x-amz-checksum-type", t.as_str());
        }
    } else if mode && (range.is_none() || part.is_some()) {
        for (algo, v) in &rec.checksums {
            builder = builder.header(format!("x-amz-checksum-{algo}"), v.as_str());
        }
        if let Some(t) = rec
            .checksum_type
            .as_deref()
            .filter(|_| !rec.checksums.is_empty())
        {
            builder = builder.header("x-amz-checksum-type", t);
        }
    }
    for (q, h) in [
        ("response-content-type", "content-type"),
        ("response-content-language", "content-language"),
        ("response-expires", "expires"),
        ("response-cache-control", "cache-control"),
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
    ] {
        if let Some(v) = ctx.q(q) {
            if let Some(hs) = builder.headers_mut() {
                if let Ok(v) = v.parse() {
                    hs.insert(h, v);
                }
            }
        }
    }
    if ctx.method == http::Method::HEAD {
        return Ok(builder.body(body::empty()).expect("valid"));
    }
    let blob = blob_id(rec).map_err(S3Error::from)?;
    match store.read(blob, range).await {
        Ok((_, reader)) => {
            let body = body::blob(reader).await.map_err(S3Error::from)?;
            Ok(builder.body(body).expect("valid"))
        }
        Err(StoreError::BlobNotFound(_)) => Err(RespondError::Gone),
        Err(e) => Err(S3Error::from(e).into()),
    }
}

pub async fn delete(s3: &S3, ctx: &Ctx) -> S3Result {
    let (bucket, key) = names(ctx);
    let cond = DeleteCondition {
        etag: ctx.header("if-match").map(str::to_string),
        modified_s: ctx
            .header("x-amz-if-match-last-modified-time")
            .map(parse_timestamp)
            .transpose()?,
        size: ctx
            .header("x-amz-if-match-size")
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    S3Error::invalid_argument().with_message("x-amz-if-match-size is not a size")
                })
            })
            .transpose()?,
    };
    delete_one(s3, bucket, key, cond).await?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(body::empty())
        .expect("valid"))
}

/// The conditions S3 defines on a delete (`If-Match`, `x-amz-if-match-last-modified-time`,
/// `x-amz-if-match-size`, or the `ETag`, `LastModifiedTime` and `Size` of a DeleteObjects
/// entry): the object is deleted only if all that are given hold.
#[derive(Clone, Debug, Default)]
struct DeleteCondition {
    etag: Option<String>,
    /// Seconds since the epoch (S3 compares modification times to the second).
    modified_s: Option<i64>,
    size: Option<u64>,
}

impl DeleteCondition {
    fn check(&self, current: Option<&ObjectRecord>) -> Result<(), S3Error> {
        if self.etag.is_none() && self.modified_s.is_none() && self.size.is_none() {
            return Ok(());
        }
        let Some(rec) = current else {
            return Err(S3Error::no_such_key());
        };
        let holds = self
            .etag
            .as_deref()
            .is_none_or(|m| etag_matches(m, &rec.etag))
            && self
                .modified_s
                .is_none_or(|t| t == rec.modified_ms.div_euclid(1000))
            && self.size.is_none_or(|s| s == rec.size);
        if holds {
            Ok(())
        } else {
            Err(S3Error::precondition_failed())
        }
    }
}

/// A timestamp as S3 clients send them: an HTTP date (headers) or ISO 8601 (XML).
pub(crate) fn parse_timestamp(v: &str) -> Result<i64, S3Error> {
    let v = v.trim();
    if let Ok(t) = httpdate::parse_http_date(v) {
        return Ok(t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64));
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| S3Error::invalid_argument().with_message(format!("{v:?} is not a timestamp")))
}

async fn delete_one(
    s3: &S3,
    bucket: &str,
    key: &str,
    cond: DeleteCondition,
) -> Result<(), S3Error> {
    let okey = object_key(bucket, key);
    s3.store
        .transact(move |tx| {
            let current = tx
                .get_for_update(Catalog::Objects, &okey)?
                .map(|v| parse_record(&v))
                .transpose()?;
            if let Err(e) = cond.check(current.as_ref()) {
                return Ok(Err(e));
            }
            if let Some(rec) = current {
                tx.delete(Catalog::Objects, &okey)?;
                tx.delete_blob(blob_id(&rec)?)?;
            }
            Ok(Ok(()))
        })
        .await?
}

/// One `<Object>` of a DeleteObjects document.
fn delete_entry(o: xml::Element<'_>) -> Result<(String, DeleteCondition), S3Error> {
    let key = o
        .child_text("Key")
        .ok_or_else(S3Error::malformed_xml)?
        .to_string();
    if o.child_text("VersionId").is_some_and(|v| v != "null") {
        return Err(S3Error::invalid_argument().with_message("Invalid version id specified"));
    }
    let cond = DeleteCondition {
        etag: o.child_text("ETag").map(str::to_string),
        modified_s: o
            .child_text("LastModifiedTime")
            .map(parse_timestamp)
            .transpose()?,
        size: o
            .child_text("Size")
            .map(|s| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| S3Error::malformed_xml())
            })
            .transpose()?,
    };
    Ok((key, cond))
}

pub async fn delete_many(s3: &S3, ctx: &Ctx, incoming: RequestBody) -> S3Result {
    let bucket = ctx.bucket.as_deref().unwrap_or_default();
    let doc = read_small_body(incoming, ctx, 2 << 20).await?;
    let doc = xml::parse(&doc).ok_or_else(S3Error::malformed_xml)?;
    let el = doc.root();
    if el.name() != "Delete" {
        return Err(S3Error::malformed_xml());
    }
    let quiet = el
        .child_text("Quiet")
        .is_some_and(|q| q.eq_ignore_ascii_case("true"));
    let objects: Vec<xml::Element<'_>> = el.children_named("Object").collect();
    if objects.is_empty() || objects.len() > 1000 {
        return Err(S3Error::malformed_xml());
    }
    // An entry without a key refuses the whole request; a bad version id or condition,
    // or one that does not hold, is that key's error.
    let mut entries = Vec::with_capacity(objects.len());
    for o in objects {
        let key = o.child_text("Key").ok_or_else(S3Error::malformed_xml)?;
        entries.push((key.to_string(), delete_entry(o)));
    }
    let mut w = xml::Writer::new();
    w.open("DeleteResult");
    for (key, entry) in entries {
        let outcome = match entry {
            Ok((_, cond)) => delete_one(s3, bucket, &key, cond).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) if quiet => {}
            Ok(()) => {
                w.open("Deleted");
                w.elem("Key", &key);
                w.close("Deleted");
            }
            Err(e) => {
                w.open("Error");
                w.elem("Key", &key);
                w.elem("Code", e.code);
                w.elem("Message", &e.message);
                w.close("Error");
            }
        }
    }
    w.close("DeleteResult");
    xml_response(StatusCode::OK, w.finish())
}

/// `x-amz-copy-source`: `[/]bucket/key[?versionId=…]`, URL-encoded. Objects have one
/// version, `null`; another version id names nothing.
pub fn copy_source(ctx: &Ctx) -> Result<(String, String), S3Error> {
    let raw = ctx.header("x-amz-copy-source").unwrap_or_default();
    let raw = match raw.split_once("?versionId=") {
        Some((p, "null")) => p,
        Some(_) => {
            return Err(S3Error::invalid_argument()
                .with_message("Invalid version id specified")
                .with("ArgumentName", "x-amz-copy-source"))
        }
        None => raw,
    };
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| S3Error::invalid_argument())?;
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    match decoded.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_string(), k.to_string())),
        _ => Err(S3Error::invalid_argument().with_message(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )),
    }
}

pub fn copy_preconditions(ctx: &Ctx, src: &ObjectRecord) -> Result<(), S3Error> {
    let modified = src.modified_ms / 1000;
    let since = |h: &str| header_date(ctx, h);
    let failed = (ctx
        .header("x-amz-copy-source-if-match")
        .is_some_and(|m| !etag_matches(m, &src.etag)))
        || (ctx
            .header("x-amz-copy-source-if-none-match")
            .is_some_and(|m| etag_matches(m, &src.etag)))
        || since("x-amz-copy-source-if-unmodified-since").is_some_and(|t| modified > t)
        || since("x-amz-copy-source-if-modified-since").is_some_and(|t| modified <= t);
    if failed {
        Err(S3Error::precondition_failed())
    } else {
        Ok(())
    }
}

pub async fn copy(s3: &S3, ctx: &Ctx, az: &Authorized) -> S3Result {
    let (bucket, key) = names(ctx);
    let brec = az.bucket();
    let (sbucket, skey, src) = az.source.as_ref().ok_or_else(S3Error::internal)?;
    copy_preconditions(ctx, src)?;
    // The copy is a clone: it carries the source's checksums, and computing another would
    // mean reading every byte. A checksum the source has is honoured; others are refused.
    if let Some(algo) = ctx.header("x-amz-checksum-algorithm") {
        let algo = algo.to_ascii_lowercase();
        if !CHECKSUM_ALGOS.contains(&algo.as_str()) {
            return Err(S3Error::invalid_request()
                .with_message("Checksum algorithm provided is unsupported."));
        }
        if !src.checksums.contains_key(&algo) {
            return Err(S3Error::not_implemented().with_message(format!(
                "CopyObject keeps the source's checksums; the source has no {algo} checksum and Glint does not compute one on copy."
            )));
        }
    }
    let replace = match ctx.header("x-amz-metadata-directive") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(_) => {
            return Err(S3Error::invalid_argument().with_message("Unknown metadata directive."))
        }
    };
    if sbucket == bucket && skey == key && !replace && ctx.header("x-amz-acl").is_none() {
        return Err(S3Error::invalid_request().with_message(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let mut rec = src.clone();
    rec.modified_ms = now_ms();
    rec.owner = ctx.project().unwrap_or(&brec.owner).to_string();
    rec.acl = requested_acl(ctx)?;
    rec.grants = acl::header_grants(ctx)?.unwrap_or_default();
    if replace {
        let (headers, meta) = collect_metadata(ctx);
        rec.headers = headers;
        rec.meta = meta;
    }
    let (src_key, src_etag) = (object_key(sbucket, skey), src.etag.clone());
    // The clone's id is only known inside the transaction; the record is patched there.
    let placeholder = rec.clone();
    let store = s3.store.clone();
    let (okey, bname) = (object_key(bucket, key), bucket.to_string());
    // If-Match / If-None-Match hold the destination, as for PutObject.
    let cond = write_conditions(ctx);
    let result = store
        .transact(move |tx| {
            if tx.get_shared(Catalog::Buckets, bname.as_bytes())?.is_none() {
                return Ok(Err(S3Error::no_such_bucket()));
            }
            let current = if src_key == okey {
                None
            } else {
                tx.get_for_update(Catalog::Objects, &okey)?
            };
            let Some(sv) = (if src_key == okey {
                tx.get_for_update(Catalog::Objects, &src_key)?
            } else {
                tx.get_shared(Catalog::Objects, &src_key)?
            }) else {
                return Ok(Err(S3Error::no_such_key()));
            };
            let srec = parse_record(&sv)?;
            if srec.etag != src_etag {
                return Ok(Err(S3Error::precondition_failed()
                    .with_message("the source changed during the copy")));
            }
            let replaced = if src_key == okey {
                Some(srec.clone())
            } else {
                current.map(|v| parse_record(&v)).transpose()?
            };
            if let Err(e) = cond.check(replaced.as_ref()) {
                return Ok(Err(e));
            }
            let id = tx.concat(&[(blob_id(&srec)?, None)])?;
            let mut rec = placeholder.clone();
            rec.blob = id.to_hex();
            tx.put(
                Catalog::Objects,
                &okey,
                &serde_json::to_vec(&rec).expect("serializable"),
            )?;
            if let Some(old) = replaced {
                tx.delete_blob(blob_id(&old)?)?;
            }
            Ok(Ok(()))
        })
        .await?;
    result?;
    let mut w = xml::Writer::new();
    w.open("CopyObjectResult");
    w.elem("LastModified", &iso8601(rec.modified_ms));
    w.elem("ETag", &rec.etag);
    w.close("CopyObjectResult");
    xml_response(StatusCode::OK, w.finish())
}

/// GetObjectAttributes: the requested subset of ETag, Checksum, ObjectSize, StorageClass and
/// ObjectParts (count, and the parts' numbers, sizes and checksums a page at a time:
/// `x-amz-max-parts`, `x-amz-part-number-marker`), from the record alone.
pub async fn attributes(ctx: &Ctx, az: &Authorized) -> S3Result {
    let rec = az.object.as_ref().ok_or_else(S3Error::internal)?;
    let wanted: Vec<String> = ctx
        .header("x-amz-object-attributes")
        .unwrap_or("")
        .split(',')
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err(S3Error::invalid_argument()
            .with_message("x-amz-object-attributes must name at least one attribute"));
    }
    let want = |a: &str| wanted.iter().any(|w| w == a);
    let mut w = xml::Writer::new();
    w.raw("<GetObjectAttributesResponse xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    if want("ETag") {
        w.elem("ETag", rec.etag.trim_matches('"'));
    }
    if want("Checksum") && !rec.checksums.is_empty() {
        w.open("Checksum");
        for (algo, v) in &rec.checksums {
            w.elem(&format!("Checksum{}", algo.to_ascii_uppercase()), v);
        }
        if let Some(t) = &rec.checksum_type {
            w.elem("ChecksumType", t);
        }
        w.close("Checksum");
    }
    let number = |h: &str, default: usize| -> Result<usize, S3Error> {
        ctx.header(h).map_or(Ok(default), |v| {
            v.trim().parse().map_err(|_| {
                S3Error::invalid_argument().with_message(format!("{h} is not a number"))
            })
        })
    };
    let (max_parts, marker) = (
        number("x-amz-max-parts", 1000)?.min(1000),
        number("x-amz-part-number-marker", 0)?,
    );
    if want("ObjectParts") && !rec.parts.is_empty() {
        let algo = rec.checksums.keys().next();
        let page: Vec<(usize, u64)> = (1..)
            .zip(rec.parts.iter().copied())
            .filter(|(n, _)| *n > marker)
            .take(max_parts)
            .collect();
        let truncated = page.last().is_some_and(|(n, _)| *n < rec.parts.len());
        w.open("ObjectParts");
        w.elem("TotalPartsCount", &rec.parts.len().to_string());
        w.elem("PartsCount", &rec.parts.len().to_string());
        w.elem("PartNumberMarker", &marker.to_string());
        if let Some((n, _)) = page.last() {
            w.elem("NextPartNumberMarker", &n.to_string());
        }
        w.elem("MaxParts", &max_parts.to_string());
        w.elem("IsTruncated", if truncated { "true" } else { "false" });
        for (n, size) in page {
            w.open("Part");
            w.elem("PartNumber", &n.to_string());
            w.elem("Size", &size.to_string());
            if let (Some(a), Some(v)) = (algo, rec.part_checksums.get(n - 1)) {
                w.elem(&format!("Checksum{}", a.to_ascii_uppercase()), v);
            }
            w.close("Part");
        }
        w.close("ObjectParts");
    }
    if want("StorageClass") {
        w.elem("StorageClass", "STANDARD");
    }
    if want("ObjectSize") {
        w.elem("ObjectSize", &rec.size.to_string());
    }
    w.close("GetObjectAttributesResponse");
    let mut resp = xml_response(StatusCode::OK, w.finish())?;
    if let Ok(v) = http_date(rec.modified_ms).parse() {
        resp.headers_mut().insert("last-modified", v);
    }
    Ok(resp)
}

pub fn get_acl(az: &Authorized) -> S3Result {
    let rec = az.object.as_ref().ok_or_else(S3Error::internal)?;
    xml_response(
        StatusCode::OK,
        acl::document(&rec.access(), Some(&az.bucket().owner)),
    )
}

pub async fn put_acl(s3: &S3, ctx: &Ctx, incoming: RequestBody) -> S3Result {
    let (bucket, key) = names(ctx);
    let doc = read_small_body(incoming, ctx, 64 << 10).await?;
    let (acl, grants) = acl::requested(ctx, &doc)?;
    let okey = object_key(bucket, key);
    let outcome = s3
        .store
        .transact(move |tx| {
            let Some(v) = tx.get_for_update(Catalog::Objects, &okey)? else {
                return Ok(Err(S3Error::no_such_key()));
            };
            let mut rec = parse_record(&v)?;
            rec.acl = acl.clone();
            rec.grants = grants.clone();
            tx.put(
                Catalog::Objects,
                &okey,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert!(matches!(
            parse_range(Some("bytes=0-9"), 100),
            RangeSpec::Bytes(0, 10)
        ));
        assert!(matches!(
            parse_range(Some("bytes=90-200"), 100),
            RangeSpec::Bytes(90, 100)
        ));
        assert!(matches!(
            parse_range(Some("bytes=-10"), 100),
            RangeSpec::Bytes(90, 100)
        ));
        assert!(matches!(
            parse_range(Some("bytes=-200"), 100),
            RangeSpec::Bytes(0, 100)
        ));
        assert!(matches!(
            parse_range(Some("bytes=100-"), 100),
            RangeSpec::Unsatisfiable
        ));
        assert!(matches!(
            parse_range(Some("bytes=0-"), 0),
            RangeSpec::Unsatisfiable
        ));
        assert!(matches!(
            parse_range(Some("bytes=5-1"), 100),
            RangeSpec::Whole
        ));
        assert!(matches!(
            parse_range(Some("bytes=5-99999999999999999999999"), 100),
            RangeSpec::Bytes(5, 100)
        ));
        assert!(matches!(
            parse_range(Some("items=0-1"), 100),
            RangeSpec::Whole
        ));
    }
}
