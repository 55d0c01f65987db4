//! Response bodies: boxed streams of `Bytes` (a whole small document, or a blob streamed
//! from the engine without buffering). Request bodies are `request_body::RequestBody`; the
//! S3 front end decodes its own encodings (`s3::body`).

use bytes::Bytes;
use futures::StreamExt;
use glint_storage::BlobReader;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;

pub type Body = BoxBody<Bytes, std::io::Error>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// Streams a blob to the client once its first bytes are read: a read that fails before
/// any byte (the object store unreachable, a damaged first chunk) becomes the protocol's
/// error answer (503 for a transient failure) instead of a 200 cut off at once. A failure
/// after that aborts the response: the client sees a truncated body, never wrong bytes.
pub async fn blob(mut reader: BlobReader) -> Result<Body, glint_storage::StoreError> {
    let first = match reader.next().await {
        None => None,
        Some(Ok(bytes)) => Some(Ok(bytes)),
        Some(Err(e)) => return Err(e),
    };
    let frames = futures::stream::iter(first).chain(reader).map(|r| {
        r.map(Frame::data).map_err(|e| {
            tracing::error!(error = %e, "read failed mid-stream; aborting the response");
            std::io::Error::other(e)
        })
    });
    Ok(BodyExt::boxed(StreamBody::new(frames)))
}
