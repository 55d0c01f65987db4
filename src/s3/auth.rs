//! Request authentication: AWS Signature Version 4 in the `Authorization` header (every
//! payload mode) and in presigned URLs, and Signature Version 2 (header and query). The
//! canonical request is rebuilt from the request as received; signatures are compared in
//! constant time. Secrets never reach a log line. What an authenticated caller may do is
//! decided afterwards, in one place (`authz.rs`).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};

use hmac::{Hmac, Mac};
use http::{HeaderMap, Method};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{macros::format_description, OffsetDateTime, PrimitiveDateTime};

use super::error::S3Error;

pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const MAX_SKEW_SECS: i64 = 15 * 60;

/// Characters AWS leaves unencoded: A-Z a-z 0-9 - _ . ~
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const STRICT_PATH: &AsciiSet = &STRICT.remove(b'/');

type HmacSha256 = Hmac<Sha256>;

pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// How the request body is protected.
#[derive(Clone, Debug)]
pub enum Payload {
    /// No check (UNSIGNED-PAYLOAD, presigned URLs, anonymous requests).
    Unsigned,
    /// The body's SHA-256 must equal this hex value.
    Sha256(String),
    /// aws-chunked body with per-chunk signatures, optionally followed by signed trailers.
    Streaming { chain: ChunkChain, trailer: bool },
    /// aws-chunked body without signatures, with trailing checksums.
    UnsignedTrailer,
}

/// What chunk signatures are chained from.
#[derive(Clone, Debug)]
pub struct ChunkChain {
    pub signing_key: [u8; 32],
    pub amz_date: String,
    pub scope: String,
    pub seed_signature: String,
}

impl ChunkChain {
    pub fn chunk_signature(&self, previous: &str, chunk_sha256_hex: &str) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{}\n{}",
            self.amz_date, self.scope, previous, EMPTY_SHA256, chunk_sha256_hex
        );
        hex::encode(hmac(&self.signing_key, sts.as_bytes()))
    }

    pub fn trailer_signature(&self, previous: &str, trailer_text: &str) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            previous,
            sha256_hex(trailer_text.as_bytes())
        );
        hex::encode(hmac(&self.signing_key, sts.as_bytes()))
    }
}

/// Who is asking.
#[derive(Clone, Debug)]
pub struct Identity {
    pub access_key: String,
    pub project: String,
}

/// The signature-relevant parts of a request, as received.
pub struct SignedRequest<'a> {
    pub method: &'a Method,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
}

/// The claims of a V4 signature before the secret is known.
#[derive(Debug)]
pub struct V4Claims {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    pub amz_date: String,
    pub presigned_expires: Option<i64>,
    pub payload_hash: String,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub use crate::http_util::query_params;

/// Parses the V4 claims from the Authorization header or the presigned query; `Ok(None)` for
/// a request with neither (anonymous).
pub fn parse_v4(req: &SignedRequest) -> Result<Option<V4Claims>, S3Error> {
    if let Some(auth) = header(req.headers, "authorization") {
        let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
            if auth.starts_with("AWS ") {
                return Ok(None); // Signature Version 2: see parse_v2
            }
            return Err(S3Error::invalid_argument().with_message("Unsupported Authorization Type"));
        };
        let mut fields = BTreeMap::new();
        for part in rest.split(',') {
            if let Some((k, v)) = part.trim().split_once('=') {
                fields.insert(k.trim(), v.trim());
            }
        }
        let (Some(cred), Some(signed), Some(sig)) = (
            fields.get("Credential"),
            fields.get("SignedHeaders"),
            fields.get("Signature"),
        ) else {
            return Err(
                S3Error::invalid_argument().with_message("Authorization header is malformed")
            );
        };
        let amz_date = header(req.headers, "x-amz-date")
            .map(str::to_string)
            .or_else(|| header(req.headers, "date").and_then(http_date_to_amz))
            .ok_or_else(|| {
                S3Error::access_denied()
                    .with_message("AWS authentication requires a valid Date or x-amz-date header")
            })?;
        let payload_hash = header(req.headers, "x-amz-content-sha256")
            .ok_or_else(|| {
                S3Error::invalid_request()
                    .with_message("Missing required header for this request: x-amz-content-sha256")
            })?
            .to_string();
        return claims(cred, signed, sig, amz_date, None, payload_hash).map(Some);
    }
    let params = query_params(req.raw_query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("X-Amz-Algorithm").is_none() {
        return Ok(None);
    }
    if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(S3Error::invalid_argument().with_message("Unsupported X-Amz-Algorithm"));
    }
    let (Some(cred), Some(signed), Some(sig), Some(date), Some(expires)) = (
        get("X-Amz-Credential"),
        get("X-Amz-SignedHeaders"),
        get("X-Amz-Signature"),
        get("X-Amz-Date"),
        get("X-Amz-Expires"),
    ) else {
        return Err(S3Error::access_denied().with_message("Query-string authentication requires the X-Amz-Credential, X-Amz-SignedHeaders, X-Amz-Signature, X-Amz-Date and X-Amz-Expires parameters."));
    };
    let expires: i64 = expires
        .parse()
        .ok()
        .filter(|e| (0..=604_800).contains(e))
        .ok_or_else(|| {
            S3Error::access_denied()
                .with_message("X-Amz-Expires must be between 0 and 604800 seconds")
        })?;
    let payload = get("X-Amz-Content-Sha256")
        .unwrap_or("UNSIGNED-PAYLOAD")
        .to_string();
    claims(cred, signed, sig, date.to_string(), Some(expires), payload).map(Some)
}

fn claims(
    cred: &str,
    signed: &str,
    sig: &str,
    amz_date: String,
    presigned_expires: Option<i64>,
    payload_hash: String,
) -> Result<V4Claims, S3Error> {
    let parts: Vec<&str> = cred.split('/').collect();
    if parts.len() != 5 || parts[4] != "aws4_request" {
        return Err(S3Error::invalid_argument().with_message("Credential is malformed"));
    }
    Ok(V4Claims {
        access_key: parts[0].to_string(),
        date: parts[1].to_string(),
        region: parts[2].to_string(),
        service: parts[3].to_string(),
        signed_headers: signed.split(';').map(|h| h.to_ascii_lowercase()).collect(),
        signature: sig.to_string(),
        amz_date,
        presigned_expires,
        payload_hash,
    })
}

fn http_date_to_amz(d: &str) -> Option<String> {
    let t = httpdate::parse_http_date(d).ok()?;
    let t = OffsetDateTime::from(t);
    t.format(format_description!(
        "[year][month][day]T[hour][minute][second]Z"
    ))
    .ok()
}

fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(
        s,
        format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .ok()
    .map(|p| p.assume_utc())
}

fn canonical_query(raw_query: &str, presigned: bool) -> String {
    let mut params: Vec<(String, String)> = query_params(raw_query)
        .into_iter()
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| {
            (
                utf8_percent_encode(&k, STRICT).to_string(),
                utf8_percent_encode(&v, STRICT).to_string(),
            )
        })
        .collect();
    params.sort();
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_headers(headers: &HeaderMap, signed: &[String]) -> Result<String, S3Error> {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| {
                let s = String::from_utf8_lossy(v.as_bytes());
                s.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(
                S3Error::access_denied().with_message(format!("signed header {name} is missing"))
            );
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Ok(out)
}

pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// How many derived keys each thread keeps. A client signs with one key per day, region and
/// service, so a handful of credentials fill few entries; past this the cache starts over.
const SIGNING_KEY_CACHE_ENTRIES: usize = 256;

/// One remembered derivation, with everything it was derived from.
struct DerivedKey {
    scope: [String; 4],
    key: [u8; 32],
}

thread_local! {
    /// Derived signing keys by a hash of (secret, date, region, service): the derivation is
    /// four HMACs, a sixth of a small request's work, and the same for every request of a
    /// client on a given day. Each entry keeps the secret itself (not the access key id) and
    /// is used only on an exact match, so a rotated secret never meets a key derived from
    /// the old one. Per thread: no lock on the request path.
    static SIGNING_KEYS: RefCell<(RandomState, HashMap<u64, DerivedKey>)> =
        RefCell::new((RandomState::new(), HashMap::new()));
}

/// [`signing_key`], remembered per thread. Called only after the credential is found and
/// the scope's date checked against X-Amz-Date and the clock.
pub fn cached_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    SIGNING_KEYS.with(|cache| {
        let (hasher, keys) = &mut *cache.borrow_mut();
        let slot = hasher.hash_one((secret, date, region, service));
        if let Some(known) = keys.get(&slot) {
            if known.scope == [secret, date, region, service] {
                return known.key;
            }
        }
        let key = signing_key(secret, date, region, service);
        if keys.len() >= SIGNING_KEY_CACHE_ENTRIES {
            keys.clear();
        }
        let scope = [secret, date, region, service].map(String::from);
        keys.insert(slot, DerivedKey { scope, key });
        key
    })
}

/// Checks the claims against `secret` and the clock; returns how the body must be checked.
pub fn verify_v4(
    req: &SignedRequest,
    c: &V4Claims,
    secret: &str,
    now: OffsetDateTime,
) -> Result<Payload, S3Error> {
    let when = parse_amz_date(&c.amz_date).ok_or_else(|| {
        S3Error::access_denied().with_message("X-Amz-Date is not a valid ISO 8601 basic date")
    })?;
    if !c.amz_date.starts_with(&c.date) {
        return Err(S3Error::signature_mismatch()
            .with_message("The credential date does not match X-Amz-Date"));
    }
    match c.presigned_expires {
        Some(exp) => {
            // Checked: a date at the end of year 9999 plus the expiry leaves the calendar.
            if when
                .checked_add(time::Duration::seconds(exp))
                .is_none_or(|until| now > until)
            {
                return Err(S3Error::expired());
            }
            if when - now > time::Duration::seconds(MAX_SKEW_SECS) {
                return Err(S3Error::access_denied().with_message("Request is not valid yet"));
            }
        }
        None => {
            if (now - when).whole_seconds().abs() > MAX_SKEW_SECS {
                return Err(S3Error::request_time_too_skewed()
                    .with("RequestTime", c.amz_date.clone())
                    .with(
                        "ServerTime",
                        now.format(format_description!(
                            "[year][month][day]T[hour][minute][second]Z"
                        ))
                        .unwrap_or_default(),
                    ));
            }
        }
    }
    if !c.signed_headers.iter().any(|h| h == "host") {
        return Err(S3Error::access_denied().with_message("The host header must be signed"));
    }
    let scope = format!("{}/{}/{}/aws4_request", c.date, c.region, c.service);
    let key = cached_signing_key(secret, &c.date, &c.region, &c.service);
    let query = canonical_query(req.raw_query, c.presigned_expires.is_some());
    let headers = canonical_headers(req.headers, &c.signed_headers)?;
    let signed_list = c.signed_headers.join(";");
    let path_variants = {
        let raw = if req.raw_path.is_empty() {
            "/"
        } else {
            req.raw_path
        };
        let decoded = percent_decode_str(raw).decode_utf8_lossy();
        let strict = utf8_percent_encode(&decoded, STRICT_PATH).to_string();
        if strict == raw {
            vec![raw.to_string()]
        } else {
            vec![raw.to_string(), strict]
        }
    };
    let methods = signed_methods(req.method, c.presigned_expires.is_some());
    let mut matched = false;
    for (method, path) in methods
        .iter()
        .flat_map(|m| path_variants.iter().map(move |p| (*m, p)))
    {
        let canonical = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            method, path, query, headers, signed_list, c.payload_hash
        );
        let sts = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            c.amz_date,
            scope,
            sha256_hex(canonical.as_bytes())
        );
        let expected = hex::encode(hmac(&key, sts.as_bytes()));
        if bool::from(expected.as_bytes().ct_eq(c.signature.as_bytes())) {
            matched = true;
            break;
        }
    }
    if !matched {
        return Err(S3Error::signature_mismatch());
    }
    let chain = || ChunkChain {
        signing_key: key,
        amz_date: c.amz_date.clone(),
        scope: scope.clone(),
        seed_signature: c.signature.clone(),
    };
    Ok(match c.payload_hash.as_str() {
        "UNSIGNED-PAYLOAD" => Payload::Unsigned,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Payload::Streaming {
            chain: chain(),
            trailer: false,
        },
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Payload::Streaming {
            chain: chain(),
            trailer: true,
        },
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Payload::UnsignedTrailer,
        h if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Payload::Sha256(h.to_ascii_lowercase())
        }
        _ => return Err(S3Error::invalid_argument().with_message(
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-* or a SHA-256 hex digest",
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_signing_key_is_the_derived_one_and_follows_the_secret() {
        let derive = |s: &str, d: &str, r: &str| signing_key(s, d, r, "s3");
        let remembered = |s: &str, d: &str, r: &str| cached_signing_key(s, d, r, "s3");
        for _ in 0..2 {
            assert_eq!(
                remembered("old", "20261203", "us-east-1"),
                derive("old", "20261203", "us-east-1")
            );
        }
        // Same access key, rotated secret: the other key, never the remembered one.
        assert_eq!(
            remembered("new", "20261203", "us-east-1"),
            derive("new", "20261203", "us-east-1")
        );
        assert_ne!(
            remembered("new", "20261203", "us-east-1"),
            remembered("old", "20261203", "us-east-1")
        );
        // Each part of the scope counts, and a full cache starts over without losing truth.
        for i in 0..SIGNING_KEY_CACHE_ENTRIES * 2 + 7 {
            let region = format!("r{i}");
            assert_eq!(
                remembered("old", "20261204", &region),
                derive("old", "20261204", &region)
            );
        }
        assert_eq!(
            remembered("old", "20261203", "us-east-1"),
            derive("old", "20261203", "us-east-1")
        );
        SIGNING_KEYS.with(|c| assert!(c.borrow().1.len() <= SIGNING_KEY_CACHE_ENTRIES));
    }

    /// The AWS documentation's example: GET /test.txt with a Range header (SigV4 examples for S3).
    #[test]
    fn aws_documented_example_verifies() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "examplebucket.s3.amazonaws.com".parse().unwrap());
        headers.insert("range", "bytes=0-9".parse().unwrap());
        headers.insert("x-amz-content-sha256", EMPTY_SHA256.parse().unwrap());
        headers.insert("x-amz-date", "20130524T000000Z".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
                .parse()
                .unwrap(),
        );
        let m = Method::GET;
        let req = SignedRequest {
            method: &m,
            raw_path: "/test.txt",
            raw_query: "",
            headers: &headers,
        };
        let claims = parse_v4(&req).unwrap().unwrap();
        let now = parse_amz_date("20130524T000100Z").unwrap();
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert!(matches!(
            verify_v4(&req, &claims, secret, now),
            Ok(Payload::Sha256(_))
        ));
        assert!(verify_v4(&req, &claims, "wrong", now).is_err());
        let late = parse_amz_date("20130524T010000Z").unwrap();
        assert_eq!(
            verify_v4(&req, &claims, secret, late).unwrap_err().code,
            "RequestTimeTooSkewed"
        );
    }
}

/// Signature Version 2 claims (legacy tools: aws-cli v1 `presign`, s3cmd, old SDKs).
#[derive(Debug)]
pub struct V2Claims {
    pub access_key: String,
    pub signature: String,
    /// Query authentication: the expiry (Unix seconds).
    pub expires: Option<i64>,
}

pub fn parse_v2(req: &SignedRequest) -> Result<Option<V2Claims>, S3Error> {
    if let Some(auth) = header(req.headers, "authorization") {
        let Some(rest) = auth.strip_prefix("AWS ") else {
            return Ok(None);
        };
        let (access, sig) = rest.rsplit_once(':').ok_or_else(|| {
            S3Error::invalid_argument().with_message("Authorization header is malformed")
        })?;
        return Ok(Some(V2Claims {
            access_key: access.trim().to_string(),
            signature: sig.trim().to_string(),
            expires: None,
        }));
    }
    let params = query_params(req.raw_query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(access) = get("AWSAccessKeyId") else {
        return Ok(None);
    };
    let (Some(sig), Some(expires)) = (get("Signature"), get("Expires")) else {
        return Err(S3Error::access_denied().with_message("Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"));
    };
    let expires = expires
        .parse()
        .map_err(|_| S3Error::access_denied().with_message("Expires is not a number"))?;
    Ok(Some(V2Claims {
        access_key: access,
        signature: sig,
        expires: Some(expires),
    }))
}

/// Sub-resources that are part of a V2 canonical resource.
const V2_SUBRESOURCES: &[&str] = &[
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// The methods a signature may have been made for. A presigned GET URL also answers HEAD:
/// HTTP readers (qemu's curl driver, download managers) probe the size with HEAD before
/// their ranged GETs, and a HEAD reveals less than the GET the URL's owner allowed.
fn signed_methods(method: &Method, presigned: bool) -> Vec<&str> {
    if presigned && *method == Method::HEAD {
        vec!["HEAD", "GET"]
    } else {
        vec![method.as_str()]
    }
}

pub fn verify_v2(
    req: &SignedRequest,
    c: &V2Claims,
    secret: &str,
    vhost_bucket: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), S3Error> {
    let date_field = match c.expires {
        Some(exp) => {
            if now.unix_timestamp() > exp {
                return Err(S3Error::expired());
            }
            exp.to_string()
        }
        None => {
            let date = header(req.headers, "x-amz-date").or_else(|| header(req.headers, "date"));
            let when = date.and_then(lenient_http_date).ok_or_else(|| {
                S3Error::access_denied()
                    .with_message("AWS authentication requires a valid Date or x-amz-date header")
            })?;
            let when = OffsetDateTime::from(when);
            if (now - when).whole_seconds().abs() > MAX_SKEW_SECS {
                return Err(S3Error::request_time_too_skewed());
            }
            if header(req.headers, "x-amz-date").is_some() {
                String::new()
            } else {
                date.unwrap_or_default().to_string()
            }
        }
    };
    let mut amz: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers {
        let n = name.as_str();
        if n.starts_with("x-amz-") {
            amz.entry(n.to_string())
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).trim().to_string());
        }
    }
    let mut resource = String::new();
    if let Some(b) = vhost_bucket {
        resource.push('/');
        resource.push_str(b);
    }
    resource.push_str(if req.raw_path.is_empty() {
        "/"
    } else {
        req.raw_path
    });
    let mut subs: Vec<(String, String)> = query_params(req.raw_query)
        .into_iter()
        .filter(|(k, _)| V2_SUBRESOURCES.contains(&k.as_str()))
        .collect();
    subs.sort();
    if !subs.is_empty() {
        resource.push('?');
        let parts: Vec<String> = subs
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        resource.push_str(&parts.join("&"));
    }
    let mut rest = format!(
        "{}\n{}\n{}\n",
        header(req.headers, "content-md5").unwrap_or(""),
        header(req.headers, "content-type").unwrap_or(""),
        date_field
    );
    for (k, v) in &amz {
        rest.push_str(&format!("{k}:{}\n", v.join(",")));
    }
    // Clients disagree on whether a bucket-only path-style resource ends in '/': accept both.
    let mut candidates = vec![resource.clone()];
    let path_part = resource.split('?').next().unwrap_or("");
    if path_part.matches('/').count() == 1 && path_part.len() > 1 {
        candidates.push(resource.replacen(path_part, &format!("{path_part}/"), 1));
    }
    let methods = signed_methods(req.method, c.expires.is_some());
    for (method, candidate) in methods
        .iter()
        .flat_map(|m| candidates.iter().map(move |r| (*m, r)))
    {
        let mut m = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
        m.update(method.as_bytes());
        m.update(b"\n");
        m.update(rest.as_bytes());
        m.update(candidate.as_bytes());
        let expected = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            m.finalize().into_bytes(),
        );
        if bool::from(expected.as_bytes().ct_eq(c.signature.as_bytes())) {
            return Ok(());
        }
    }
    Err(S3Error::signature_mismatch())
}

/// An RFC 1123 date, accepting a weekday that does not match the date (old clients, and
/// tests that probe skew with made-up dates) and years up to 9999.
fn lenient_http_date(d: &str) -> Option<std::time::SystemTime> {
    if let Ok(t) = httpdate::parse_http_date(d) {
        return Some(t);
    }
    let rest = d.split_once(", ").map_or(d, |(_, r)| r).trim();
    let p = PrimitiveDateTime::parse(
        rest,
        format_description!("[day] [month repr:short] [year] [hour]:[minute]:[second] GMT"),
    )
    .ok()?;
    // Before the epoch is not a plausible request date: treat it as no date at all.
    (p.year() >= 1970).then(|| p.assume_utc().into())
}
