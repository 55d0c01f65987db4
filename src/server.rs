//! Listeners: one tokio task per connection, hyper HTTP/1.1 with keep-alive; each request
//! gets an id (returned as `x-amz-request-id`) and a tracing span.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::s3::{self, S3};

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves S3 on `listener` until the process ends.
pub async fn serve_s3(listener: TcpListener, s3: Arc<S3>) {
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
        let s3 = s3.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let s3 = s3.clone();
                let id = s3::request_id();
                let span = tracing::info_span!("s3", id = %id, method = %req.method(), path = %req.uri().path(), peer = %peer);
                async move {
                    let resp = s3::handle(s3, req, id).await;
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
