//! Bounds on every client connection, so that no client can hold the server's file
//! descriptors or tasks for free:
//!
//! - **header timeout**: a connection that has not delivered a complete request head this long
//!   after it opened, or after the first byte of its next request, is closed (slowloris);
//! - **keep-alive timeout**: a connection idle between requests this long is closed;
//! - **socket timeout**: a request body that delivers no byte, or a response the client does
//!   not read (a write that cannot progress), for this long ends the request (`request_body`
//!   enforces the first, [`GuardedIo`] the second);
//! - **connection cap** per listener: at the cap, a new connection evicts the connection that
//!   has been idle longest (or, failing that, the oldest one still sending its request head),
//!   as nginx reuses keep-alive connections; when every connection is busy with a request,
//!   the new one is answered 503 and closed;
//! - **EMFILE/ENFILE** in the accept loop: one idle connection is evicted to free a
//!   descriptor and accepting backs off (10 ms doubling to 1 s), logging once per 10 s,
//!   never spinning.
//!
//! Each connection's deadlines are kept by one watchdog future that sleeps until the next
//! deadline and re-reads the connection's phase when it wakes: no timer is re-armed per
//! read or write, and an idle connection costs no wake-ups until its deadline.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;

/// Every listener's registry in this process (descriptors are shared between them).
static ALL: Mutex<Vec<std::sync::Weak<Registry>>> = Mutex::new(Vec::new());

/// Idle connections evicted per EMFILE, so that a backlog of new connections drains in
/// batches rather than one descriptor at a time.
const EVICT_ON_EMFILE: usize = 32;

/// The limits of one listener (`[DEFAULT] client_socket_timeout`, `http_keepalive`;
/// `[glint] client_header_timeout`, `keepalive_timeout`, `max_connections`).
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub socket_timeout: Duration,
    pub max_connections: usize,
    /// False: every connection closes after one response (`http_keepalive = False`).
    pub keepalive: bool,
}

impl Default for Limits {
    /// What a server facing the public network would use (nginx's defaults are 60 s for the
    /// header, keep-alive and socket timeouts).
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(60),
            socket_timeout: Duration::from_secs(60),
            max_connections: 4096,
            keepalive: true,
        }
    }
}

/// What one connection is doing, as the watchdog and the eviction policy see it.
pub struct ConnState {
    /// Requests whose response has not finished (0 or 1 on HTTP/1.1).
    in_flight: AtomicUsize,
    /// No request in flight, but bytes of the next request head have arrived.
    head_started: AtomicBool,
    /// Milliseconds since the registry's epoch at which the current phase began.
    since_ms: AtomicU64,
    /// Whether a request has completed on this connection (the first request's wait is
    /// bounded by the header timeout, later ones' by the keep-alive timeout).
    served: AtomicBool,
    close: Notify,
    epoch: Instant,
}

/// The phase a connection is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the next request (or the first), no byte of it received.
    Idle,
    /// Receiving a request head.
    Head,
    /// Serving a request.
    Active,
}

impl ConnState {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn phase(&self) -> Phase {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            Phase::Active
        } else if self.head_started.load(Ordering::Acquire) {
            Phase::Head
        } else {
            Phase::Idle
        }
    }

    fn since(&self) -> Instant {
        self.epoch + Duration::from_millis(self.since_ms.load(Ordering::Acquire))
    }

    /// When the connection must close if its phase does not change; None while serving.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        match self.phase() {
            Phase::Active => None,
            Phase::Head => Some(self.since() + limits.header_timeout),
            Phase::Idle if !self.served.load(Ordering::Acquire) => {
                Some(self.since() + limits.header_timeout)
            }
            Phase::Idle => Some(self.since() + limits.keepalive_timeout),
        }
    }

    /// Bytes arrived: if the connection was idle, a request head has started.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && !self.head_started.swap(true, Ordering::AcqRel)
        {
            self.since_ms.store(self.now_ms(), Ordering::Release);
        }
    }

    /// A request head was parsed and handed to the service.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(false, Ordering::Release);
    }

    /// The response (body included) has been handed to the socket.
    pub fn request_finished(&self) {
        self.served.store(true, Ordering::Release);
        self.since_ms.store(self.now_ms(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections of one listener.
pub struct Registry {
    limits: Limits,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    epoch: Instant,
    /// When EMFILE was last logged (ms since epoch + 1; 0 = never).
    last_emfile_log: AtomicU64,
}

/// What the accept loop should do with a new connection.
pub enum Admission {
    /// Serve it; the guard unregisters it when dropped.
    Serve(ConnGuard),
    /// Every connection is serving a request: answer 503 and close.
    Refuse,
}

/// A registered connection; dropping it unregisters the connection.
pub struct ConnGuard {
    registry: Arc<Registry>,
    id: u64,
    pub state: Arc<ConnState>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.registry
            .conns
            .lock()
            .expect("connection registry")
            .remove(&self.id);
    }
}

impl Registry {
    pub fn new(limits: Limits) -> Arc<Registry> {
        let r = Arc::new(Registry {
            limits,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
            last_emfile_log: AtomicU64::new(0),
        });
        let mut all = ALL.lock().expect("registries");
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&r));
        r
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn open_connections(&self) -> usize {
        self.conns.lock().expect("connection registry").len()
    }

    /// Registers a new connection, evicting an idle one at the cap.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut conns = self.conns.lock().expect("connection registry");
        if conns.len() >= self.limits.max_connections && !Self::evict_one(&mut conns) {
            return Admission::Refuse;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            in_flight: AtomicUsize::new(0),
            head_started: AtomicBool::new(false),
            since_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            served: AtomicBool::new(false),
            close: Notify::new(),
            epoch: self.epoch,
        });
        conns.insert(id, state.clone());
        Admission::Serve(ConnGuard {
            registry: self.clone(),
            id,
            state,
        })
    }

    /// Asks the longest-idle connection (else the oldest one sending a request head) to
    /// close, and takes it off the books at once: it no longer counts against the cap, and
    /// the next eviction picks another even if this one's task has not run yet (a burst of
    /// connections must not evict the same victim over and over while the count climbs).
    /// False when every connection is serving a request.
    fn evict_one(conns: &mut HashMap<u64, Arc<ConnState>>) -> bool {
        let victim = conns
            .iter()
            .filter(|(_, c)| c.phase() != Phase::Active)
            .min_by_key(|(_, c)| (c.phase() == Phase::Head, c.since_ms.load(Ordering::Acquire)))
            .map(|(id, _)| *id);
        match victim.and_then(|id| conns.remove(&id)) {
            Some(v) => {
                v.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// The accept loop hit a descriptor limit: frees some by evicting up to
    /// [`EVICT_ON_EMFILE`] idle connections — this listener's first, then the other
    /// listeners' (descriptors are the process's: a flood on one API must not starve the
    /// other) — and logs (once per 10 s). Returns how many were evicted.
    pub fn out_of_descriptors(self: &Arc<Self>, error: &io::Error) -> usize {
        let others: Vec<Arc<Registry>> = ALL
            .lock()
            .expect("registries")
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .filter(|r| !Arc::ptr_eq(r, self))
            .collect();
        let mut evicted = 0;
        for r in std::iter::once(self).chain(others.iter()) {
            let mut conns = r.conns.lock().expect("connection registry");
            while evicted < EVICT_ON_EMFILE && Self::evict_one(&mut conns) {
                evicted += 1;
            }
        }
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_emfile_log.load(Ordering::Relaxed);
        if last == 0 || now.saturating_sub(last) >= 10_000 {
            self.last_emfile_log.store(now, Ordering::Relaxed);
            tracing::error!(%error, open = self.open_connections(), evicted,
                "accept failed: out of file descriptors; evicting idle connections and backing off");
        }
        evicted
    }
}

/// Completes when the connection must close: evicted, or past its header or keep-alive
/// deadline.
pub async fn watchdog(state: Arc<ConnState>, limits: Limits) {
    // While a request is served, look again this often (the phase changes without waking
    // the watchdog; serving has no deadline of its own here).
    let recheck = limits.header_timeout.min(limits.keepalive_timeout);
    loop {
        let wake = match state.deadline(&limits) {
            Some(d) if d <= Instant::now() => return,
            Some(d) => d,
            None => Instant::now() + recheck,
        };
        tokio::select! {
            _ = state.close.notified() => return,
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

/// Whether an accept error is the process or system running out of descriptors.
pub fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// The socket as hyper sees it: records the first bytes of a request head for the watchdog
/// and fails a write that cannot progress for the socket timeout (a client that stopped
/// reading its response).
pub struct GuardedIo<T> {
    inner: T,
    state: Arc<ConnState>,
    write_timeout: Duration,
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<T> GuardedIo<T> {
    pub fn new(inner: T, state: Arc<ConnState>, write_timeout: Duration) -> Self {
        GuardedIo {
            inner,
            state,
            write_timeout,
            write_stall: None,
        }
    }

    /// A write returned Pending: fails it once it has been pending for the timeout.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.write_timeout;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read its response within client_socket_timeout",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future;

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_read();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Pending => self.stalled(cx).map(Err),
            done => {
                self.write_stall = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.stalled(cx).map(Err),
            done => {
                self.write_stall = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.stalled(cx).map(Err),
            done => {
                self.write_stall = None;
                done
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises this process's soft limit on open files to its hard limit (as Go's runtime and
/// many servers do at start) and returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit read and write a plain struct we own.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max: usize) -> Arc<Registry> {
        Registry::new(Limits {
            max_connections: max,
            ..Limits::default()
        })
    }

    fn serve(a: Admission) -> ConnGuard {
        match a {
            Admission::Serve(g) => g,
            Admission::Refuse => panic!("refused"),
        }
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_goes() {
        let r = registry(2);
        let a = serve(r.admit());
        std::thread::sleep(Duration::from_millis(5));
        let b = serve(r.admit());
        // Ages are kept to the millisecond: keep them apart so the order is certain.
        std::thread::sleep(Duration::from_millis(5));
        // a is older and idle: the third connection evicts it, not b.
        let _c = serve(r.admit());
        let evicted = tokio::time::timeout(Duration::from_millis(50), a.state.close.notified());
        assert!(evicted.await.is_ok());
        let spared = tokio::time::timeout(Duration::from_millis(50), b.state.close.notified());
        assert!(spared.await.is_err());
        // a's task has not ended (its guard lives): the next arrival evicts b, not a again,
        // and the count stays at the cap.
        let _d = serve(r.admit());
        let evicted = tokio::time::timeout(Duration::from_millis(50), b.state.close.notified());
        assert!(evicted.await.is_ok());
        assert_eq!(r.open_connections(), 2);
        drop((a, b));
        assert_eq!(r.open_connections(), 2);
    }

    #[test]
    fn busy_connections_are_not_evicted() {
        let r = registry(1);
        let a = serve(r.admit());
        a.state.request_started();
        assert!(matches!(r.admit(), Admission::Refuse));
        a.state.request_finished();
        assert!(matches!(r.admit(), Admission::Serve(_)));
        drop(a);
    }

    #[test]
    fn phases_and_deadlines() {
        let limits = Limits::default();
        let r = Registry::new(limits.clone());
        let g = serve(r.admit());
        let s = &g.state;
        let opened = s.since();
        assert_eq!(s.deadline(&limits), Some(opened + limits.header_timeout));
        s.request_started();
        assert_eq!(s.deadline(&limits), None);
        s.request_finished();
        assert_eq!(s.phase(), Phase::Idle);
        assert_eq!(
            s.deadline(&limits),
            Some(s.since() + limits.keepalive_timeout)
        );
        s.bytes_read();
        assert_eq!(s.phase(), Phase::Head);
        assert_eq!(s.deadline(&limits), Some(s.since() + limits.header_timeout));
    }
}
