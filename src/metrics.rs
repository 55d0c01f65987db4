//! Prometheus metrics, served in the OpenMetrics text format on the admin listener
//! (`[glint] admin_bind_host` / `admin_bind_port`, loopback by default) at `/metrics`. The
//! encoding is the `prometheus-client` crate's; nothing here writes the format by hand.
//!
//! - requests by API (`s3`, `glance`), operation (S3's operation names such as `GetObject`,
//!   Glance's routes such as `images.upload`) and status class, their durations (until the
//!   last byte of the answer), bytes received and sent, requests in flight;
//! - images by status (counted in the listing index's status scopes at a scrape, when the
//!   catalog walks are due: see below);
//! - the engine (`glint_engine_*`, read from the store's counters at scrape time): chunks
//!   written and their bytes before and after the codec, dedup hits, zero chunks elided,
//!   chunks read, corrupt reads, compactions and what they reclaimed, catalog transaction
//!   latency; blobs and bytes logical vs stored (`glint_store_*`: a walk of the catalog,
//!   done at a scrape when the last walk's duration ×100 has passed);
//! - the process: CPU seconds, resident memory, open descriptors, start time.
//!
//! A front end names its operation by putting an [`Operation`] in its response's
//! extensions, and its request id and caller's project in a [`RequestInfo`]; the listener
//! (`server.rs`) does the counting, once per request, and writes the request's access-log
//! line (target `access`: method, path without its query, status, bytes sent, seconds, id,
//! project), never a secret: query strings (presigned signatures) and headers (tokens) stay
//! out of it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use glint_storage::{EngineStats, Store};

/// The operation a response answered, as a front end names it (a response extension).
#[derive(Clone, Debug)]
pub struct Operation(pub &'static str);

/// Who asked, for the access log (a response extension): the request id the answer
/// carries and the caller's project, once known.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    pub id: String,
    pub project: Option<String>,
}

/// What is recorded per request.
#[derive(Clone, Copy, Debug)]
pub struct Recording {
    /// Count requests in the metrics (off without an admin listener: nothing would read them).
    pub metrics: bool,
    /// One access-log line per request (`[glint] access_log`).
    pub access_log: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    api: &'static str,
    operation: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    api: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

/// Request durations, 1 ms to 5 minutes (a multi-GiB image download takes minutes).
const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 300.0,
];

/// Every metric this process exports.
pub struct Metrics {
    recording: Recording,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<OperationLabels, Histogram>,
    received: Family<ApiLabels, Counter>,
    sent: Family<OperationLabels, Counter>,
    in_flight: Family<ApiLabels, Gauge>,
    images: Family<StatusLabels, Gauge>,
    store_usage: StoreUsage,
    /// The series an answered request adds to, by (api, operation, status class): one map
    /// lookup per request instead of one per family.
    answered: RwLock<HashMap<RequestLabels, Arc<AnsweredSeries>>>,
}

/// The series one (api, operation, status class) adds to.
struct AnsweredSeries {
    requests: Counter,
    duration: Histogram,
    sent: Counter,
}

/// One listener's metrics, resolved once when it starts serving.
#[derive(Clone)]
pub struct ApiMetrics {
    metrics: Arc<Metrics>,
    api: &'static str,
    in_flight: Gauge,
    received: Counter,
}

/// Store totals, walked from the catalog at a scrape when due (see `usage_due`).
#[derive(Default)]
struct StoreUsage {
    blobs: Gauge,
    logical: Gauge,
    stored: Gauge,
    /// When the last walk started and how long it took.
    last: std::sync::Mutex<Option<(Instant, std::time::Duration)>>,
}

/// A store-totals walk may take at most this share of the time between walks: a small
/// store is walked at every scrape, one whose walk takes 100 ms at most every 10 s.
const USAGE_DUTY: u32 = 100;

impl Metrics {
    pub fn new(recording: Recording, store: &Store) -> Arc<Metrics> {
        let mut root = Registry::default();
        register_process(root.sub_registry_with_prefix("process"));
        register_engine(root.sub_registry_with_prefix("glint_engine"), store);
        let store_usage = StoreUsage::default();
        {
            let r = root.sub_registry_with_prefix("glint_store");
            r.register("blobs", "Blobs stored", store_usage.blobs.clone());
            r.register_with_unit(
                "logical",
                "Sum of the blobs' sizes (what clients stored)",
                Unit::Bytes,
                store_usage.logical.clone(),
            );
            r.register_with_unit(
                "stored",
                "Bytes on disk for chunk data (packs and chunk files): logical / stored is the dedup, zero-elision and compression ratio",
                Unit::Bytes,
                store_usage.stored.clone(),
            );
        }
        let registry = root.sub_registry_with_prefix("glint");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by API, operation and status class",
            requests.clone(),
        );
        let durations = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to the last byte of its answer",
            Unit::Seconds,
            durations.clone(),
        );
        let received = Family::<ApiLabels, Counter>::default();
        registry.register_with_unit(
            "http_request_body",
            "Request body bytes received",
            Unit::Bytes,
            received.clone(),
        );
        let sent = Family::<OperationLabels, Counter>::default();
        registry.register_with_unit(
            "http_response_body",
            "Response body bytes sent",
            Unit::Bytes,
            sent.clone(),
        );
        let in_flight = Family::<ApiLabels, Gauge>::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being answered now",
            in_flight.clone(),
        );
        let images = Family::<StatusLabels, Gauge>::default();
        registry.register("images", "Images by status", images.clone());
        Arc::new(Metrics {
            recording,
            registry: root,
            requests,
            durations,
            received,
            sent,
            in_flight,
            images,
            store_usage,
            answered: RwLock::default(),
        })
    }

    /// The metrics of the listener serving `api`.
    pub fn api(self: &Arc<Self>, api: &'static str) -> ApiMetrics {
        ApiMetrics {
            metrics: self.clone(),
            api,
            in_flight: self.in_flight.get_or_create(&ApiLabels { api }).clone(),
            received: self.received.get_or_create(&ApiLabels { api }).clone(),
        }
    }

    fn answered_series(&self, labels: RequestLabels) -> Arc<AnsweredSeries> {
        if let Some(s) = self
            .answered
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&labels)
        {
            return s.clone();
        }
        let op = OperationLabels {
            api: labels.api,
            operation: labels.operation,
        };
        let series = Arc::new(AnsweredSeries {
            requests: self.requests.get_or_create(&labels).clone(),
            duration: self.durations.get_or_create(&op).clone(),
            sent: self.sent.get_or_create(&op).clone(),
        });
        self.answered
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(labels)
            .or_insert(series)
            .clone()
    }

    /// Sets the image counts (`(status, count)` for every status).
    pub fn set_images(&self, counts: &[(&'static str, u64)]) {
        for (status, n) in counts {
            self.images
                .get_or_create(&StatusLabels { status })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// Whether the catalog walks (image counts, store totals) are due: the last walk's
    /// duration times [`USAGE_DUTY`] has passed since it started.
    pub fn usage_due(&self) -> bool {
        let last = *self
            .store_usage
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        last.is_none_or(|(at, took)| at.elapsed() >= took * USAGE_DUTY)
    }

    /// Sets the store totals from a walk that started at `started`.
    pub fn set_usage(&self, u: &glint_storage::Usage, started: Instant) {
        *self
            .store_usage
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((started, started.elapsed()));
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.store_usage.blobs.set(g(u.blobs));
        self.store_usage.logical.set(g(u.logical_bytes));
        self.store_usage
            .stored
            .set(g(u.chunk_file_bytes + u.pack_bytes));
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("encoding metrics failed");
        }
        out
    }
}

impl ApiMetrics {
    /// Starts recording one request from `peer`: in flight until the returned mark drops
    /// (when the answer's last byte went out, or the connection ended first).
    pub fn start(&self, req: &http::Request<impl Sized>, peer: SocketAddr) -> RequestMark {
        let recording = self.metrics.recording;
        if recording.metrics {
            self.in_flight.inc();
        }
        RequestMark {
            api: self.clone(),
            method: req.method().clone(),
            path: recording.access_log.then(|| req.uri().path().to_string()),
            peer,
            started: Instant::now(),
            answered: None,
            status: 0,
            info: None,
            sent: 0,
        }
    }

    /// The counter of request body bytes (the request body adds to it as it reads); none
    /// when requests are not counted.
    pub fn received(&self) -> Option<Counter> {
        self.metrics
            .recording
            .metrics
            .then(|| self.received.clone())
    }
}

/// One request being answered. Dropped when the answer's last byte went out (or the
/// connection ended first): then it is counted and logged.
pub struct RequestMark {
    api: ApiMetrics,
    method: http::Method,
    peer: SocketAddr,
    /// The path (never the query), when the access log is on.
    path: Option<String>,
    started: Instant,
    /// (operation, status class) once the handler answered.
    answered: Option<(&'static str, &'static str)>,
    status: u16,
    info: Option<RequestInfo>,
    sent: u64,
}

impl RequestMark {
    /// Records the answer: its status and operation, and the request id and project the
    /// handler left in `resp`'s extensions (taken: only the listener needs them).
    pub fn answered<B>(&mut self, resp: &mut http::Response<B>) {
        let status = resp.status();
        let class = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let op = resp
            .extensions()
            .get::<Operation>()
            .map_or("unknown", |o| o.0);
        self.answered = Some((op, class));
        self.status = status.as_u16();
        self.info = resp.extensions_mut().remove::<RequestInfo>();
    }

    pub fn sent(&mut self, bytes: usize) {
        self.sent += bytes as u64;
    }
}

impl Drop for RequestMark {
    fn drop(&mut self) {
        let recording = self.api.metrics.recording;
        if recording.metrics {
            self.api.in_flight.dec();
        }
        let elapsed = self.started.elapsed();
        let secs = elapsed.as_secs_f64();
        // A request dropped before its handler answered (the client went away) has no
        // status: it is not a request answered.
        let Some((operation, status)) = self.answered.take() else {
            return;
        };
        if let Some(path) = &self.path {
            let info = self.info.take().unwrap_or_default();
            let line = crate::logging::access::AccessLine {
                api: self.api.api,
                method: &self.method,
                path,
                status: self.status,
                bytes: self.sent,
                elapsed,
                id: &info.id,
                project: info.project.as_deref().unwrap_or("-"),
                peer: self.peer,
                operation,
            };
            // Text lines are written directly (see logging/access.rs); JSON lines, and text
            // on a terminal, go through tracing.
            if !crate::logging::access::write(&line) {
                tracing::info!(
                    target: "access",
                    api = line.api,
                    method = %line.method,
                    path = %line.path,
                    status = line.status,
                    bytes = line.bytes,
                    secs,
                    id = %line.id,
                    project = line.project,
                    peer = %line.peer,
                    operation,
                    "request"
                );
            }
        }
        if recording.metrics {
            let series = self.api.metrics.answered_series(RequestLabels {
                api: self.api.api,
                operation,
                status,
            });
            series.duration.observe(secs);
            series.sent.inc_by(self.sent);
            series.requests.inc();
        }
    }
}

/// The engine's counters (`Store::stats`), read at each scrape.
fn register_engine(r: &mut Registry, store: &Store) {
    type Read = fn(&EngineStats) -> &std::sync::atomic::AtomicU64;
    let counters: [(&str, &str, Option<Unit>, Read); 16] = [
        ("chunks_written", "New chunks written", None, |s| {
            &s.chunks_written
        }),
        (
            "chunk_written",
            "Bytes of new chunks, before the codec",
            Some(Unit::Bytes),
            |s| &s.chunk_bytes_written,
        ),
        (
            "chunk_stored",
            "Bytes of new chunks as stored (after the codec)",
            Some(Unit::Bytes),
            |s| &s.chunk_bytes_stored,
        ),
        (
            "dedup_hits",
            "Chunks of writes found already stored",
            None,
            |s| &s.dedup_hits,
        ),
        (
            "dedup",
            "Bytes of writes found already stored (not written again)",
            Some(Unit::Bytes),
            |s| &s.dedup_bytes,
        ),
        (
            "zero_chunks",
            "All-zero chunks recorded as holes instead of stored",
            None,
            |s| &s.zero_chunks,
        ),
        (
            "zero",
            "Bytes of all-zero chunks not stored",
            Some(Unit::Bytes),
            |s| &s.zero_bytes,
        ),
        (
            "chunks_read",
            "Chunks read from packs (CRC32C verified)",
            None,
            |s| &s.chunks_read,
        ),
        (
            "chunk_read",
            "Decoded bytes of chunks read",
            Some(Unit::Bytes),
            |s| &s.chunk_bytes_read,
        ),
        (
            "corrupt_reads",
            "Reads that met a record failing its CRC32C, codec or hash",
            None,
            |s| &s.corrupt_reads,
        ),
        (
            "compactions",
            "Compaction passes (background and glint gc)",
            None,
            |s| &s.compactions,
        ),
        (
            "packs_removed",
            "Packs removed by compaction (nothing live)",
            None,
            |s| &s.packs_removed,
        ),
        (
            "packs_rewritten",
            "Packs whose live records compaction copied into a new pack",
            None,
            |s| &s.packs_rewritten,
        ),
        (
            "chunks_reclaimed",
            "Unreferenced chunks dropped by compaction",
            None,
            |s| &s.chunks_reclaimed,
        ),
        (
            "reclaimed",
            "Pack bytes reclaimed by compaction",
            Some(Unit::Bytes),
            |s| &s.bytes_reclaimed,
        ),
        (
            "catalog_transactions",
            "Catalog transactions committed",
            None,
            |s| &s.catalog_commits,
        ),
    ];
    for (name, help, unit, read) in counters {
        let metric = EngineCounter {
            store: store.clone(),
            read,
        };
        match unit {
            Some(u) => r.register_with_unit(name, help, u, metric),
            None => r.register(name, help, metric),
        }
    }
    r.register_with_unit(
        "catalog_transaction_duration",
        "Catalog transactions from begin to commit (conflict retries included)",
        Unit::Seconds,
        CatalogLatency(store.clone()),
    );
}

/// One engine counter, read from the store at scrape.
struct EngineCounter {
    store: Store,
    read: fn(&EngineStats) -> &std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for EngineCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineCounter")
    }
}

impl EncodeMetric for EngineCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let v = (self.read)(self.store.stats()).load(std::sync::atomic::Ordering::Relaxed);
        encoder.encode_counter::<NoLabelSet, _, u64>(&v, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

struct CatalogLatency(Store);

impl std::fmt::Debug for CatalogLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogLatency")
    }
}

impl EncodeMetric for CatalogLatency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = self.0.stats().catalog.read();
        encoder.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The process metrics every exporter shares, under their standard names (read from /proc
/// at each scrape).
fn register_process(root: &mut Registry) {
    root.register_with_unit(
        "cpu",
        "User and system CPU time spent",
        Unit::Seconds,
        ProcessStat::CpuSeconds,
    );
    root.register_with_unit(
        "resident_memory",
        "Resident memory size",
        Unit::Bytes,
        ProcessStat::ResidentBytes,
    );
    root.register("open_fds", "Open file descriptors", ProcessStat::OpenFds);
    root.register_with_unit(
        "start_time",
        "Start time of the process since the Unix epoch",
        Unit::Seconds,
        ProcessStat::StartTime,
    );
}

#[derive(Debug, Clone, Copy)]
enum ProcessStat {
    CpuSeconds,
    ResidentBytes,
    OpenFds,
    StartTime,
}

impl EncodeMetric for ProcessStat {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let stat = proc_stat().unwrap_or_default();
        match self {
            ProcessStat::CpuSeconds => {
                encoder.encode_counter::<NoLabelSet, _, u64>(&stat.cpu_seconds, None)
            }
            ProcessStat::ResidentBytes => encoder.encode_gauge(&(stat.resident_bytes as i64)),
            ProcessStat::OpenFds => encoder.encode_gauge(&open_fds()),
            ProcessStat::StartTime => encoder.encode_gauge(&stat.start_time),
        }
    }

    fn metric_type(&self) -> MetricType {
        match self {
            ProcessStat::CpuSeconds => MetricType::Counter,
            _ => MetricType::Gauge,
        }
    }
}

#[derive(Default)]
struct ProcStat {
    cpu_seconds: f64,
    resident_bytes: u64,
    start_time: f64,
}

/// `/proc/self/stat` (utime 14, stime 15, starttime 22, rss 24) with the clock tick and
/// page size.
fn proc_stat() -> Option<ProcStat> {
    let field = stat_fields("/proc/self/stat")?;
    // SAFETY: sysconf reads a process-wide constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    })?;
    Some(ProcStat {
        cpu_seconds: cpu_seconds(&field)?,
        resident_bytes: field(24)? * page.max(0) as u64,
        start_time: boot as f64 + field(22)? as f64 / clock_tick(),
    })
}

/// The CPU seconds (user + system, all threads) process `pid` has used so far; the load
/// generators read the server's this way.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    cpu_seconds(&stat_fields(&format!("/proc/{pid}/stat"))?)
}

fn cpu_seconds(field: &impl Fn(usize) -> Option<u64>) -> Option<f64> {
    Some((field(14)? + field(15)?) as f64 / clock_tick())
}

/// The numeric fields of a `/proc/<pid>/stat` file, by their number in proc(5) (from 1).
fn stat_fields(path: &str) -> Option<impl Fn(usize) -> Option<u64>> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces and parentheses: field 3 starts after the
    // last ')'.
    let f: Vec<Option<u64>> = text[text.rfind(')')? + 2..]
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect();
    Some(move |n: usize| n.checked_sub(3).and_then(|i| f.get(i).copied().flatten()))
}

/// Clock ticks per second (USER_HZ), the unit of /proc's CPU times.
fn clock_tick() -> f64 {
    // SAFETY: sysconf reads a process-wide constant.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if tick > 0 {
        tick as f64
    } else {
        100.0
    }
}

fn open_fds() -> i64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64)
}
