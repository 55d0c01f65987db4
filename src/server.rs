//! Listeners: one tokio task per connection, hyper HTTP/1.1 with keep-alive, every
//! connection bounded by `conn.rs` (timeouts, a cap, descriptor exhaustion), over TLS when
//! configured (`tls.rs`); each front end runs a request in a tracing span holding its
//! request id (S3 returns it as `x-amz-request-id`, Glance as `x-openstack-request-id`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use futures::FutureExt;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::either::Either;
use tracing::Instrument;

use crate::body::Body;
use crate::conn::{self, ConnState, GuardedIo, Limits, Registry};
use crate::glance::{self, Glance};
use crate::metrics::{ApiMetrics, Metrics, Operation, RequestMark};
use crate::request_body::RequestBody;
use crate::s3::{self, S3};
use crate::shutdown::Background;
use crate::tls::Tls;

/// Connections the kernel may complete before `accept` takes them. tokio's default (1,024)
/// overflows when thousands of clients connect at once (the completed connections beyond it
/// are dropped by the kernel, not refused); the kernel caps this at `net.core.somaxconn`.
const BACKLOG: u32 = 4096;

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Marks a request in flight on its connection until dropped: when the response body has
/// been written (it travels inside the body), or when hyper drops the request unanswered.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(state: Arc<ConnState>) -> InFlight {
        state.request_started();
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that ends its request's in-flight mark when hyper drops it, and counts
/// what it sends for the metrics (the request is counted when it drops).
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
    mark: RequestMark,
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let n = data.len();
                self.mark.sent(n);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// What a refused connection is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n";

/// What every listener shares.
#[derive(Clone)]
pub struct Listening {
    pub limits: Limits,
    /// The process's background tasks (a stop closes the listeners).
    pub background: Background,
    pub metrics: Arc<Metrics>,
    /// TLS on every listener (`[DEFAULT] cert_file` / `key_file`), or plain HTTP.
    pub tls: Option<Arc<Tls>>,
}

/// Accepts connections on `listener` until the process ends and answers each request with
/// `handler`, within the connection limits of `conn.rs`.
async fn serve<H, F>(listener: TcpListener, api: &'static str, shared: Listening, handler: H)
where
    H: Fn(Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let Listening {
        limits,
        background,
        metrics,
        tls,
    } = shared;
    let handler = Arc::new(handler);
    let metrics = metrics.api(api);
    let registry = Registry::new(limits);
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            // A stop: the listener closes (new connections are refused by the kernel) and
            // each connection finishes the request it is serving.
            _ = background.stopping() => {
                tracing::info!(api, "stopped accepting connections");
                return;
            }
        };
        let (stream, peer) = match accepted {
            Ok(c) => {
                backoff = Duration::ZERO;
                c
            }
            Err(e) if conn::is_fd_exhaustion(&e) => {
                // Idle connections were asked to close: give their tasks a moment to release
                // the descriptors, then accept again. Nothing to evict: back off, doubling.
                if registry.out_of_descriptors(&e) > 0 {
                    backoff = Duration::ZERO;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else {
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tokio::time::sleep(backoff).await;
                }
                continue;
            }
            // A connection reset before it was accepted, and the like: nothing to wait for.
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let guard = match registry.admit() {
            conn::Admission::Serve(g) => g,
            conn::Admission::Refuse => {
                tracing::warn!(api, %peer, "connection refused: every connection is busy");
                let _ = stream.try_write(BUSY);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (handler, limits) = (handler.clone(), registry.limits().clone());
        background.spawn(serve_connection(
            stream,
            peer,
            api,
            handler,
            guard,
            limits,
            (background.clone(), metrics.clone(), tls.clone()),
        ));
    }
}

/// One connection: HTTP/1.1 until the client leaves, its watchdog closes it (idle, slow,
/// evicted), or a stop lets it finish its current response.
async fn serve_connection<H, F>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    api: &'static str,
    handler: Arc<H>,
    guard: conn::ConnGuard,
    limits: Limits,
    (bg, metrics, tls): (Background, ApiMetrics, Option<Arc<Tls>>),
) where
    H: Fn(Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let state = guard.state.clone();
    let body_timeout = limits.socket_timeout;
    let service_state = state.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let in_flight = InFlight::start(service_state.clone());
        let mark = metrics.start(&req, peer);
        let sent_body = declares_body(req.headers());
        let mut req = RequestBody::wrap(req, body_timeout);
        if let Some(received) = metrics.received() {
            req = req.map(|b| b.counting(received));
        }
        let fut = handler(req);
        // Boxed: hyper keeps the service's future inline in each connection's state, and a
        // request handler's state machine is large. Measured with 5,000 idle connections:
        // 1.3 KB of RSS each boxed, 4.0 KB inline.
        // Log lines inside a request carry its id: each front end enters a span holding it
        // once the id is known (the access log names method, path and peer).
        Box::pin(answer(api, fut, in_flight, mark, sent_body))
    });
    let io = GuardedIo::new(stream, state.clone(), limits.socket_timeout);
    let io = match &tls {
        None => Either::Left(io),
        // The handshake is bounded like a request head: a client that stalls in it holds
        // its connection slot no longer than one that stalls sending headers.
        Some(tls) => {
            match tokio::time::timeout(limits.header_timeout, tls.acceptor().accept(io)).await {
                Ok(Ok(io)) => Either::Right(io),
                Ok(Err(e)) => {
                    tracing::debug!(api, %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(api, %peer, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    let connection = http1::Builder::new()
        .keep_alive(limits.keepalive)
        .serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let watchdog = conn::watchdog(state, limits);
    let mut watchdog = std::pin::pin!(watchdog);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = connection.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            _ = watchdog.as_mut(), if !stopping => {
                tracing::debug!(api, %peer, "connection closed: idle, slow or evicted");
                break;
            }
            // A stop: an idle connection closes now, a busy one after its response.
            _ = bg.stopping(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
    drop(guard);
}

/// A request's answer as hyper sends it: the handler's response (500 if it panicked) with a
/// body that ends the request's in-flight mark when written.
async fn answer<F>(
    api: &'static str,
    fut: F,
    in_flight: InFlight,
    mut mark: RequestMark,
    sent_body: bool,
) -> Result<
    Response<http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>>,
    std::convert::Infallible,
>
where
    F: Future<Output = Response<Body>>,
{
    // A bug that panics in one request answers 500 on that request; the connection and the
    // process carry on (no state is shared mutably across requests outside the engine's own
    // transactions).
    let mut resp = match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("request handler panicked; answered 500");
            panic_response(api)
        }
    };
    mark.answered(&mut resp);
    let mut resp = resp.map(|inner| {
        BodyExt::boxed(TrackedBody {
            inner,
            _in_flight: in_flight,
            mark,
        })
    });
    // An error answered to a request with a body may leave part of that body unread: it
    // drains in the background (request_body.rs) but only within bounds, so tell the client
    // not to reuse the connection.
    if sent_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    Ok(resp)
}

/// The answer to a request whose handler panicked, in its protocol's error form.
fn panic_response(api: &str) -> Response<Body> {
    let (content_type, text) = if api == "s3" {
        (
            "application/xml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>",
        )
    } else {
        (
            "text/plain; charset=UTF-8",
            "500 Internal Server Error\n\nThe server has either erred or is incapable of performing the requested operation.\n\n   ",
        )
    };
    Response::builder()
        .status(http::StatusCode::INTERNAL_SERVER_ERROR)
        .header("content-type", content_type)
        .header("connection", "close")
        .body(crate::body::full(text))
        .expect("valid response")
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
pub async fn serve_s3(listener: TcpListener, shared: Listening, s3: Arc<S3>) {
    serve(listener, "s3", shared, move |req| {
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
pub async fn serve_glance(listener: TcpListener, shared: Listening, g: Arc<Glance>) {
    serve(listener, "glance", shared, move |req| {
        // Named here, so that every answer counts under its route, refusals included.
        let op = glance::operation::name(req.method(), req.uri().path());
        let g = g.clone();
        async move {
            let mut resp = glance::handle(g, req).await;
            resp.extensions_mut().insert(Operation(op));
            resp
        }
    })
    .await
}

/// Serves the admin endpoints on `listener` until the process ends: `GET /metrics`
/// (OpenMetrics text) and `GET /healthcheck`.
pub async fn serve_admin(listener: TcpListener, shared: Listening, store: glint_storage::Store) {
    let m = shared.metrics.clone();
    serve(listener, "admin", shared, move |req| {
        let (m, store) = (m.clone(), store.clone());
        async move { crate::admin::handle(&m, &store, req).await }
    })
    .await
}
