//! Entry points for the property-based fuzz tests (`tests/fuzz.rs`): the S3 front end's
//! parsers of network input, callable with arbitrary input. Each returns what a request
//! would have been answered (a status and an S3 error code) instead of a response. Not an
//! API: the tests are its only user.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::auth::{self, ChunkChain, SignedRequest};
use super::error::S3Error;

/// An S3 error as the client would see it.
pub type Refusal = (u16, &'static str);

fn refusal(e: S3Error) -> Refusal {
    (e.status.as_u16(), e.code)
}

/// The request-document reader: Some(element count) for a well-formed document.
pub fn xml(input: &[u8]) -> Option<usize> {
    super::xml::parse(input).map(|d| d.root().children().count() + 1)
}

/// An `AccessControlPolicy` document: the number of grants, or MalformedACLError & co.
pub fn acl_policy(input: &[u8]) -> Result<usize, Refusal> {
    super::acl::parse_policy(input)
        .map(|g| g.len())
        .map_err(refusal)
}

/// Every writer path for text that ends up in a response document: must stay well-formed.
pub fn xml_round_trip(text: &str) -> Option<String> {
    let mut w = super::xml::Writer::new();
    w.open("R");
    w.elem("K", text);
    w.close("R");
    let doc = super::xml::parse(w.finish().as_bytes())?;
    doc.root().child_text("K").map(str::to_string)
}

/// Decoded query parameters: how many.
pub fn query_params(raw: &str) -> usize {
    auth::query_params(raw).len()
}

/// The secret the fuzz requests are checked against.
pub const SECRET: &str = "fuzz-secret";

/// Authentication of a request (SigV4 header or presigned, SigV2 header or query): Ok(true)
/// when it names a signature that verifies with [`SECRET`] at `now`, Ok(false) for an
/// anonymous request, the S3 error otherwise.
pub fn authenticate(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    now_unix: i64,
) -> Result<bool, Refusal> {
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.append(k, v);
        }
    }
    let req = SignedRequest {
        method: &method,
        raw_path,
        raw_query,
        headers: &map,
    };
    let now = time::OffsetDateTime::from_unix_timestamp(now_unix)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    if let Some(c) = auth::parse_v4(&req).map_err(refusal)? {
        auth::verify_v4(&req, &c, SECRET, now).map_err(refusal)?;
        return Ok(true);
    }
    if let Some(c) = auth::parse_v2(&req).map_err(refusal)? {
        auth::verify_v2(&req, &c, SECRET, None, now).map_err(refusal)?;
        return Ok(true);
    }
    Ok(false)
}

/// The chunk-signature chain the fuzz bodies are signed with.
pub fn chain() -> ChunkChain {
    ChunkChain {
        signing_key: auth::signing_key(SECRET, "20261202", "us-east-1", "s3"),
        amz_date: "20261202T000000Z".into(),
        scope: "20261202/us-east-1/s3/aws4_request".into(),
        seed_signature: "0".repeat(64),
    }
}

/// An aws-chunked body delivered in `pieces` (as the socket would), decoded: the decoded
/// byte count and the trailers, or the S3 error the upload would fail with.
pub fn aws_chunked(pieces: Vec<Vec<u8>>, signed: bool) -> Result<(u64, usize), Refusal> {
    let trailers: super::chunked::Trailers = Arc::new(Mutex::new(Vec::new()));
    let input = futures::stream::iter(
        pieces
            .into_iter()
            .map(|p| Ok::<_, crate::body::BoxError>(Bytes::from(p))),
    );
    let mut decoder =
        super::chunked::ChunkedDecoder::new(input, signed.then(chain), trailers.clone());
    let mut total = 0u64;
    let outcome = futures::executor::block_on(async {
        while let Some(item) = decoder.next().await {
            total += item?.len() as u64;
        }
        Ok::<_, crate::body::BoxError>(())
    });
    outcome.map_err(|e| refusal(S3Error::from_body(e)))?;
    let n = trailers.lock().expect("trailers").len();
    Ok((total, n))
}

/// The S3 reading of a `Range` header over an object of `size` bytes: Some(span) for a 206,
/// None for the whole object, Err for 416.
pub fn s3_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, Refusal> {
    match super::object::parse_range_for_fuzz(value, size) {
        Ok(r) => Ok(r),
        Err(e) => Err(refusal(e)),
    }
}

/// A conditional or timestamp header as the S3 handlers read it.
pub fn timestamp(value: &str) -> Result<i64, Refusal> {
    super::object::parse_timestamp(value).map_err(refusal)
}
