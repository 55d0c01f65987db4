//! HTTP bodies: responses are boxed streams of `Bytes` (a whole small document, or a blob
//! streamed from the engine without buffering); request bodies become a stream of decoded
//! bytes (aws-chunked decoding and chunk signatures applied).

use crate::request_body::RequestBody;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use glint_storage::BlobReader;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;

use crate::s3::auth::Payload;
use crate::s3::chunked::{ChunkedDecoder, Trailers};
use crate::s3::error::S3Error;
use crate::s3::Ctx;

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

fn raw(incoming: RequestBody) -> impl Stream<Item = Result<Bytes, BoxError>> + Unpin + Send {
    incoming.into_data_stream()
}

/// The request body as decoded bytes, plus the slot trailing headers land in.
pub fn request_stream_with_trailers(
    incoming: RequestBody,
    ctx: &Ctx,
) -> Result<(impl Stream<Item = Result<Bytes, BoxError>> + Send, Trailers), S3Error> {
    let trailers = Trailers::default();
    let chunked = matches!(
        ctx.payload,
        Payload::Streaming { .. } | Payload::UnsignedTrailer
    ) || (ctx.header("x-amz-decoded-content-length").is_some()
        && ctx
            .header("content-encoding")
            .is_some_and(|e| e.split(',').any(|p| p.trim() == "aws-chunked")));
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>> = if chunked {
        let chain = match &ctx.payload {
            Payload::Streaming { chain, .. } => Some(chain.clone()),
            _ => None,
        };
        Box::pin(ChunkedDecoder::new(raw(incoming), chain, trailers.clone()))
    } else {
        Box::pin(raw(incoming))
    };
    Ok((stream, trailers))
}

pub fn request_stream(
    incoming: RequestBody,
    ctx: &Ctx,
) -> Result<impl Stream<Item = Result<Bytes, BoxError>> + Send, S3Error> {
    request_stream_with_trailers(incoming, ctx).map(|(s, _)| s)
}
