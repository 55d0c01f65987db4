//! Where log lines go and which of them are kept: set up once by `main`.
//!
//! Lines go to stderr (stdout carries what a command prints: `status --json`, the credentials
//! it creates; a service manager captures both) through a writer thread, so a request's
//! access line costs a copy into a batch (access.rs), not a write.
//!
//! The filter is `RUST_LOG` (default `info`). A plain list of `target=level` directives, the
//! usual form, is served by tracing-subscriber's `Targets`, which decides once per call site;
//! only a directive that names spans or field values (`glint[s3{id=…}]=debug`) needs
//! `EnvFilter`, which also tracks every span entered and exited: with one span per request,
//! polled many times, that bookkeeping was a measurable part of the access log's cost
//! (benches/metrics-cost-callgrind.sh).
//!
//! Text lines escape control characters in every field (fields.rs); JSON lines are escaped by
//! their encoder.

pub mod access;
#[cfg(test)]
mod captured;
pub mod fields;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

/// The filter a `RUST_LOG` value asks for.
// Built once at start-up and boxed as a layer right away: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum LogFilter {
    /// Targets and levels only: decided per call site.
    Targets(Targets),
    /// Span or field directives: EnvFilter's dynamic filtering.
    Env(EnvFilter),
}

impl LogFilter {
    /// `spec` as `RUST_LOG` gives it; unset or blank means `info`. A spec neither filter
    /// parses falls back to `info` too (with a warning once logging is up, from `init`).
    pub fn parse(spec: Option<&str>) -> (LogFilter, Option<String>) {
        let spec = spec
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or("info");
        // `[` starts a span or field directive: Targets would read `[{f}]` as a static field
        // list, not as EnvFilter does, so such specs always go to EnvFilter.
        if !spec.contains('[') {
            if let Ok(t) = spec.parse::<Targets>() {
                return (LogFilter::Targets(t), None);
            }
        }
        match EnvFilter::try_new(spec) {
            Ok(f) => (LogFilter::Env(f), None),
            Err(e) => (
                LogFilter::Targets(Targets::new().with_default(tracing::Level::INFO)),
                Some(format!(
                    "RUST_LOG={spec:?} is not a log filter ({e}); logging at info"
                )),
            ),
        }
    }

    fn boxed(self) -> Box<dyn Layer<Registry> + Send + Sync> {
        match self {
            LogFilter::Targets(t) => t.boxed(),
            LogFilter::Env(f) => f.boxed(),
        }
    }
}

/// Keeps the logger's queues until the end of main, then writes what they hold.
pub struct LogGuard {
    // Fields drop in order: pending access lines go to the writer thread's queue before
    // that queue is written out.
    _access: Option<access::FlushOnDrop>,
    _writer: WorkerGuard,
}

/// Installs the global logger: text (colours on a terminal) or JSON lines on stderr. The
/// guard flushes what is queued when it drops (at the end of main).
pub fn init(json: bool) -> LogGuard {
    // Never lossy: a full queue makes the logger wait rather than drop a line.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // The writer thread writes what is queued in one system call: it flushes whenever
        // the queue is empty.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Plain-text access lines skip the formatter (see access.rs); on a terminal they keep
    // its colours. Without their flusher thread they go through tracing.
    let access = (!json && !terminal)
        .then(|| access::install(writer.clone()).ok())
        .flatten();
    let (filter, warning) = LogFilter::parse(std::env::var("RUST_LOG").ok().as_deref());
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        // Colours only on a terminal: a log file or journal gets plain text.
        .with_ansi(terminal);
    let logger = tracing_subscriber::registry().with(filter.boxed());
    if json {
        logger.with(lines.json()).init();
    } else {
        logger.with(lines.fmt_fields(fields::SafeFields)).init();
    }
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    LogGuard {
        _access: access,
        _writer: guard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(spec: &str) -> Targets {
        match LogFilter::parse(Some(spec)) {
            (LogFilter::Targets(t), None) => t,
            _ => panic!("{spec} should be a Targets filter"),
        }
    }

    #[test]
    fn target_lists_use_the_per_call_site_filter() {
        let t = targets("info");
        assert!(t.would_enable("glint::s3", &tracing::Level::INFO));
        assert!(!t.would_enable("glint::s3", &tracing::Level::DEBUG));
        let t = targets("warn,glint=debug,access=off");
        assert!(t.would_enable("glint::s3::auth", &tracing::Level::DEBUG));
        assert!(!t.would_enable("access", &tracing::Level::INFO));
        assert!(!t.would_enable("hyper", &tracing::Level::INFO));
        assert!(t.would_enable("hyper", &tracing::Level::WARN));
    }

    #[test]
    fn unset_or_blank_means_info() {
        for spec in [None, Some(""), Some("  ")] {
            match LogFilter::parse(spec) {
                (LogFilter::Targets(t), None) => {
                    assert!(t.would_enable("glint", &tracing::Level::INFO));
                    assert!(!t.would_enable("glint", &tracing::Level::DEBUG));
                }
                _ => panic!("{spec:?} should mean info"),
            }
        }
    }

    #[test]
    fn span_and_field_directives_use_env_filter() {
        for spec in [
            "glint[s3]=debug",
            "info,glint[s3{id=tx1}]=trace",
            "[{id}]=debug",
        ] {
            match LogFilter::parse(Some(spec)) {
                (LogFilter::Env(_), None) => {}
                _ => panic!("{spec} should be an EnvFilter"),
            }
        }
    }

    #[test]
    fn a_spec_no_filter_reads_falls_back_to_info_with_a_warning() {
        match LogFilter::parse(Some("glint=loud")) {
            (LogFilter::Targets(t), Some(w)) => {
                assert!(t.would_enable("glint", &tracing::Level::INFO));
                assert!(w.contains("glint=loud"), "{w}");
            }
            _ => panic!("an unreadable spec should fall back to info"),
        }
    }
}
