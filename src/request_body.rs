//! The request body handed to the front ends, with a *lingering close*.
//!
//! A handler often answers before it has read the body: a refused upload (wrong store,
//! over quota, no permission) is rejected from the headers alone. hyper then reads at most
//! one more buffer of the body and closes the socket, and a client still writing its body
//! gets `EPIPE`/`ECONNRESET` instead of the answer (reqwest and hyper clients do; curl
//! usually wins the race). Like nginx's `lingering_close`, a body dropped unfinished is read
//! and discarded in the background for a bounded time and size, so the client finishes
//! writing and then reads the error. The response is not delayed: it is written while the
//! rest of the body drains.
//!
//! It also bounds a stalled body: when the handler waits for the next piece and none comes
//! for `client_socket_timeout`, the read fails with [`BodyStalled`] (S3 answers
//! RequestTimeout) instead of holding the connection and the handler forever.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

/// The error of a body that delivered nothing for the socket timeout.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body data within client_socket_timeout")]
pub struct BodyStalled;

pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// How long an abandoned body is read after the handler dropped it.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// How many bytes of an abandoned body are read at most; past this the connection closes.
const LINGER_BYTES: u64 = 64 << 20;

pub struct RequestBody {
    inner: Option<Incoming>,
    /// The client waits for `100 Continue` before sending: if the handler never asked for
    /// the body, the client has not sent it and nothing should be drained (asking for it
    /// would make hyper send the `100 Continue` the refusal is meant to avoid).
    expects_continue: bool,
    polled: bool,
    stall_timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    /// Bytes received, for the metrics.
    received: Option<prometheus_client::metrics::counter::Counter>,
}

impl RequestBody {
    pub fn new(inner: Incoming, expects_continue: bool, stall_timeout: Duration) -> Self {
        RequestBody {
            inner: Some(inner),
            expects_continue,
            polled: false,
            stall_timeout,
            stall: None,
            received: None,
        }
    }

    /// Adds the bytes of this body, as they arrive, to `counter`.
    pub fn counting(mut self, counter: prometheus_client::metrics::counter::Counter) -> Self {
        self.received = Some(counter);
        self
    }

    /// Wraps every request of a connection.
    pub fn wrap(
        req: http::Request<Incoming>,
        stall_timeout: Duration,
    ) -> http::Request<RequestBody> {
        let expects_continue = req
            .headers()
            .get(http::header::EXPECT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        req.map(|b| RequestBody::new(b, expects_continue, stall_timeout))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.polled = true;
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => {
                let timeout = this.stall_timeout;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled)))),
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Ready(frame) => {
                this.stall = None;
                if let (Some(Ok(f)), Some(c)) = (&frame, &this.received) {
                    if let Some(data) = f.data_ref() {
                        c.inc_by(data.len() as u64);
                    }
                }
                Poll::Ready(frame.map(|f| f.map_err(|e| Box::new(e) as BodyError)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let Some(rest) = self.inner.take() else {
            return;
        };
        if rest.is_end_stream() || (self.expects_continue && !self.polled) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(linger(rest));
        }
    }
}

/// Reads and discards what is left of a body, within the bounds above.
async fn linger(mut rest: Incoming) {
    let drain = async {
        let mut read = 0u64;
        while let Some(frame) = rest.frame().await {
            let Ok(frame) = frame else { return };
            if let Some(data) = frame.data_ref() {
                read += data.len() as u64;
                if read > LINGER_BYTES {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
