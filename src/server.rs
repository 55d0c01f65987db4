//! Listeners: one tokio task per connection, hyper HTTP/1.1 with keep-alive; each request
//! gets a tracing span (the S3 front end adds its request id, returned as
//! `x-amz-request-id`; Glance returns `x-openstack-request-id`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::body::Body;
use crate::glance::{self, Glance};
use crate::request_body::RequestBody;
use crate::s3::{self, S3};

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Accepts connections on `listener` until the process ends and answers each request with
/// `handler`.
async fn serve<H, F>(listener: TcpListener, api: &'static str, handler: H)
where
    H: Fn(Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let span = tracing::info_span!("request", api, method = %req.method(), path = %req.uri().path(), peer = %peer);
                let sent_body = declares_body(req.headers());
                let fut = handler(RequestBody::wrap(req));
                async move {
                    let mut resp = fut.await;
                    // An error answered to a request with a body may leave part of that body
                    // unread: it drains in the background (request_body.rs) but only within
                    // bounds, so tell the client not to reuse the connection.
                    if sent_body
                        && (resp.status().is_client_error() || resp.status().is_server_error())
                    {
                        resp.headers_mut().insert(
                            http::header::CONNECTION,
                            http::HeaderValue::from_static("close"),
                        );
                    }
                    tracing::info!(status = resp.status().as_u16(), "done");
                    Ok::<_, std::convert::Infallible>(resp)
                }
                .instrument(span)
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// Whether the request carries a body (chunked, or a non-zero Content-Length).
fn declares_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Serves S3 on `listener` until the process ends.
pub async fn serve_s3(listener: TcpListener, s3: Arc<S3>) {
    serve(listener, "s3", move |req| {
        let s3 = s3.clone();
        async move {
            let id = s3::request_id();
            let span = tracing::info_span!("s3", id = %id);
            s3::handle(s3, req, id).instrument(span).await
        }
    })
    .await
}

/// Serves the Glance Images API on `listener` until the process ends.
pub async fn serve_glance(listener: TcpListener, g: Arc<Glance>) {
    serve(listener, "glance", move |req| {
        glance::handle(g.clone(), req)
    })
    .await
}
