//! ListObjects (v1) and ListObjectsV2: prefix, delimiter (common prefixes, skipped with one
//! seek each), marker / start-after / continuation token, max-keys, url encoding, owners.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use glint_storage::Catalog;
use http::StatusCode;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::error::S3Error;
use super::records::{iso8601, object_key, ObjectRecord};
use super::{xml, xml_response, Ctx, S3Result, S3};

const URL_KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `encoding-type`: `url` or absent.
pub(crate) fn url_encoding(ctx: &Ctx) -> Result<bool, S3Error> {
    match ctx.q("encoding-type") {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(_) => Err(S3Error::invalid_argument()
            .with_message("Invalid Encoding Method specified in Request")),
    }
}

/// A name as a listing writes it: URL-encoded when the client asked for `encoding-type=url`.
pub(crate) fn encode_if(url: bool, s: &str) -> String {
    if url {
        utf8_percent_encode(s, URL_KEY).to_string()
    } else {
        s.to_string()
    }
}

pub(crate) enum Entry {
    Object(String, Box<ObjectRecord>),
    Prefix(String),
}

/// A ListObjects (v1) or ListObjectsV2 request's parameters.
pub(crate) struct ListRequest {
    v2: bool,
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_keys: usize,
    url: bool,
    token: Option<String>,
    /// List keys after this one (marker, start-after or the continuation token).
    pub start: Option<String>,
}

pub(crate) fn parse_list(ctx: &Ctx) -> Result<ListRequest, S3Error> {
    let v2 = ctx.q("list-type") == Some("2");
    let prefix = ctx.q("prefix").unwrap_or("").to_string();
    let delimiter = ctx
        .q("delimiter")
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let max_keys: usize = match ctx.q("max-keys") {
        None => 1000,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n.min(1000) as usize)
            .ok_or_else(|| {
                S3Error::invalid_argument()
                    .with_message("Provided max-keys not an integer or within integer range")
            })?,
    };
    let url = url_encoding(ctx)?;
    let token = ctx.q("continuation-token").map(str::to_string);
    let start: Option<String> = if v2 {
        match &token {
            Some(t) => Some(
                B64.decode(t)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        S3Error::invalid_argument()
                            .with_message("The continuation token provided is incorrect")
                    })?,
            ),
            None => ctx.q("start-after").map(str::to_string),
        }
    } else {
        ctx.q("marker").map(str::to_string)
    };
    Ok(ListRequest {
        v2,
        prefix,
        delimiter,
        max_keys,
        url,
        token,
        start,
    })
}

pub async fn list_objects(s3: &S3, ctx: &Ctx) -> S3Result {
    let bucket = ctx.bucket.as_deref().unwrap_or_default();
    let req = parse_list(ctx)?;
    let (entries, truncated) = collect(
        s3,
        bucket,
        &req.prefix,
        req.delimiter.as_deref(),
        req.start.as_deref(),
        req.max_keys,
    )
    .await?;
    render_list(ctx, bucket, &req, &entries, truncated)
}

/// The listing document for `entries` (keys in order, then common prefixes).
pub(crate) fn render_list(
    ctx: &Ctx,
    bucket: &str,
    req: &ListRequest,
    entries: &[Entry],
    truncated: bool,
) -> S3Result {
    let (v2, url, prefix, delimiter, max_keys) =
        (req.v2, req.url, &req.prefix, &req.delimiter, req.max_keys);
    let token = req.token.as_deref();
    let enc = |s: &str| encode_if(url, s);
    let last = entries.last().map(|e| match e {
        Entry::Object(k, _) => k.clone(),
        Entry::Prefix(p) => p.clone(),
    });
    let mut w = xml::Writer::new();
    w.open("ListBucketResult");
    w.elem("Name", bucket);
    // ListObjects (v1) returns Prefix as sent even with encoding-type=url (clients decode
    // only Delimiter, Marker, NextMarker and keys there); v2 encodes it.
    w.elem("Prefix", &if v2 { enc(prefix) } else { prefix.clone() });
    if v2 {
        if let Some(sa) = ctx.q("start-after") {
            w.elem("StartAfter", &enc(sa));
        }
        if let Some(t) = token {
            w.elem("ContinuationToken", t);
        }
        if truncated {
            if let Some(l) = &last {
                w.elem("NextContinuationToken", &B64.encode(l));
            }
        }
        w.elem("KeyCount", &entries.len().to_string());
    } else {
        w.elem("Marker", &enc(ctx.q("marker").unwrap_or("")));
        if truncated && delimiter.is_some() {
            if let Some(l) = &last {
                w.elem("NextMarker", &enc(l));
            }
        }
    }
    w.elem("MaxKeys", &max_keys.to_string());
    if let Some(d) = &delimiter {
        w.elem("Delimiter", &enc(d));
    }
    if url {
        w.elem("EncodingType", "url");
    }
    w.elem("IsTruncated", if truncated { "true" } else { "false" });
    let owners = !v2 || ctx.q("fetch-owner") == Some("true");
    for e in entries {
        if let Entry::Object(key, rec) = e {
            w.open("Contents");
            w.elem("Key", &enc(key));
            w.elem("LastModified", &iso8601(rec.modified_ms));
            w.elem("ETag", &rec.etag);
            w.elem("Size", &rec.size.to_string());
            w.elem("StorageClass", "STANDARD");
            if owners {
                w.principal("Owner", &rec.owner);
            }
            w.close("Contents");
        }
    }
    for e in entries {
        if let Entry::Prefix(p) = e {
            w.open("CommonPrefixes");
            w.elem("Prefix", &enc(p));
            w.close("CommonPrefixes");
        }
    }
    w.close("ListBucketResult");
    xml_response(StatusCode::OK, w.finish())
}

/// The in-memory form of `collect`, for listings not backed by object records (keys must
/// come sorted).
pub(crate) fn select(
    objects: impl IntoIterator<Item = (String, ObjectRecord)>,
    req: &ListRequest,
) -> (Vec<Entry>, bool) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut last_prefix: Option<String> = None;
    for (key, rec) in objects {
        if !key.starts_with(&req.prefix) || req.start.as_deref().is_some_and(|s| key.as_str() <= s)
        {
            continue;
        }
        let common = req.delimiter.as_deref().and_then(|d| {
            key[req.prefix.len()..]
                .find(d)
                .map(|i| key[..req.prefix.len() + i + d.len()].to_string())
        });
        if common.is_some() && common == last_prefix {
            continue;
        }
        if entries.len() == req.max_keys {
            return (entries, true);
        }
        match common {
            Some(cp) => {
                last_prefix = Some(cp.clone());
                entries.push(Entry::Prefix(cp));
            }
            None => entries.push(Entry::Object(key, Box::new(rec))),
        }
    }
    (entries, false)
}

/// Lists up to `max_keys` keys and common prefixes after `start`; true when more follow.
async fn collect(
    s3: &S3,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    start: Option<&str>,
    max_keys: usize,
) -> Result<(Vec<Entry>, bool), S3Error> {
    let base = object_key(bucket, "");
    let scan_prefix = object_key(bucket, prefix);
    let mut after: Option<Vec<u8>> = start.map(|s| object_key(bucket, s));
    let mut entries: Vec<Entry> = Vec::new();
    let mut truncated = false;
    if max_keys == 0 {
        return Ok((entries, false));
    }
    'scan: loop {
        let batch = s3
            .store
            .scan(Catalog::Objects, scan_prefix.clone(), after.clone(), 1000)
            .await?;
        if batch.is_empty() {
            break;
        }
        for (k, v) in batch {
            let key = String::from_utf8_lossy(&k[base.len()..]).into_owned();
            let common = delimiter.and_then(|d| {
                key[prefix.len()..]
                    .find(d)
                    .map(|i| key[..prefix.len() + i + d.len()].to_string())
            });
            // A prefix at or before the marker was returned on an earlier page: skip it.
            let seen = common
                .as_deref()
                .is_some_and(|cp| start.is_some_and(|s| cp <= s));
            if entries.len() == max_keys && !seen {
                truncated = true;
                break 'scan;
            }
            match common {
                Some(cp) => {
                    // Everything under this common prefix sorts before cp ‖ 0xFF: skip it all.
                    let mut skip = object_key(bucket, &cp);
                    skip.push(0xFF);
                    if !seen {
                        entries.push(Entry::Prefix(cp));
                    }
                    after = Some(skip);
                    continue 'scan;
                }
                None => {
                    let rec: ObjectRecord =
                        serde_json::from_slice(&v).map_err(|_| S3Error::internal())?;
                    entries.push(Entry::Object(key, Box::new(rec)));
                    after = Some(k);
                }
            }
        }
    }

    Ok((entries, truncated))
}

/// ListObjectVersions for Glint's unversioned buckets: every object is its only version,
/// `null`, and the latest (what S3 answers for a bucket that never had versioning).
pub async fn list_versions(s3: &S3, ctx: &Ctx) -> S3Result {
    let bucket = ctx.bucket.as_deref().unwrap_or_default();
    let prefix = ctx.q("prefix").unwrap_or("").to_string();
    let delimiter = ctx.q("delimiter").filter(|d| !d.is_empty());
    let max_keys: usize = ctx
        .q("max-keys")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000)
        .min(1000);
    let marker = ctx.q("key-marker").filter(|m| !m.is_empty());
    let (entries, truncated) = collect(s3, bucket, &prefix, delimiter, marker, max_keys).await?;
    let url = url_encoding(ctx)?;
    let enc = |s: &str| encode_if(url, s);
    let mut w = xml::Writer::new();
    w.raw("<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    w.elem("Name", bucket);
    w.elem("Prefix", &enc(&prefix));
    w.elem("KeyMarker", &enc(marker.unwrap_or("")));
    w.elem("VersionIdMarker", "");
    if truncated {
        if let Some(Entry::Object(k, _) | Entry::Prefix(k)) = entries.last() {
            w.elem("NextKeyMarker", &enc(k));
            w.elem("NextVersionIdMarker", "null");
        }
    }
    w.elem("MaxKeys", &max_keys.to_string());
    if let Some(d) = delimiter {
        w.elem("Delimiter", &enc(d));
    }
    if url {
        w.elem("EncodingType", "url");
    }
    w.elem("IsTruncated", if truncated { "true" } else { "false" });
    for e in &entries {
        if let Entry::Object(key, rec) = e {
            w.open("Version");
            w.elem("Key", &enc(key));
            w.elem("VersionId", "null");
            w.elem("IsLatest", "true");
            w.elem("LastModified", &iso8601(rec.modified_ms));
            w.elem("ETag", &rec.etag);
            w.elem("Size", &rec.size.to_string());
            w.elem("StorageClass", "STANDARD");
            w.principal("Owner", &rec.owner);
            w.close("Version");
        }
    }
    for e in &entries {
        if let Entry::Prefix(p) = e {
            w.open("CommonPrefixes");
            w.elem("Prefix", &enc(p));
            w.close("CommonPrefixes");
        }
    }
    w.close("ListVersionsResult");
    xml_response(StatusCode::OK, w.finish())
}
