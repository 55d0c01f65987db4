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

/// Streams a blob to the client. A read error (an integrity failure) aborts the response:
/// the client sees a truncated body, never wrong bytes.
pub fn blob(reader: BlobReader) -> Body {
    let frames = reader.map(|r| {
        r.map(Frame::data).map_err(|e| {
            tracing::error!(error = %e, "read failed mid-stream; aborting the response");
            std::io::Error::other(e)
        })
    });
    BodyExt::boxed(StreamBody::new(frames))
}
