//! S3 request bodies as decoded bytes: `aws-chunked` framing removed and chunk signatures
//! checked (`chunked.rs`) when the request uses it, with the slot trailing headers land in.

use bytes::Bytes;
use futures::Stream;
use http_body_util::BodyExt;

use super::auth::Payload;
use super::chunked::{ChunkedDecoder, Trailers};
use super::error::S3Error;
use super::Ctx;
use crate::body::BoxError;
use crate::request_body::RequestBody;

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
