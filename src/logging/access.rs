//! Text access-log lines, written straight to the log writer.
//!
//! A text access line through tracing-subscriber's formatter cost about 24,000 instructions
//! (7 % of a 4 KiB S3 request, measured by benches/metrics-cost-callgrind.sh): it visits each
//! field through core::fmt. The line here is built by hand in a per-thread buffer (integers
//! by itoa, the date once a second) and handed to the same writer thread as every other log
//! line, in the same layout (`<time>  INFO access: request k=v …`), with control characters
//! escaped as in every text line (fields.rs), so nothing a client sends can end the line
//! early or reach an operator's terminal as an escape sequence. JSON logs
//! (`log_format = json`) and logs on a terminal (coloured) go through tracing.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use tracing_appender::non_blocking::NonBlocking;

static WRITER: OnceLock<NonBlocking> = OnceLock::new();

thread_local! {
    /// Each thread's line buffer and the date part of its last line's timestamp: a line is
    /// built without an allocation, and the date is formatted once a second, not per line.
    static LINE: RefCell<(String, Stamp)> = RefCell::new((String::with_capacity(256), Stamp::new()));
}

/// Sends text access lines to `writer` (the writer tracing's text formatter writes to).
pub fn install(writer: NonBlocking) {
    let _ = WRITER.set(writer);
}

/// One answered request, as its access line shows it.
pub struct AccessLine<'a> {
    pub api: &'static str,
    pub method: &'a http::Method,
    pub path: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub elapsed: Duration,
    pub id: &'a str,
    pub project: &'a str,
    pub peer: SocketAddr,
    pub operation: &'a str,
}

/// Writes `line` if text access lines are installed (and the `access` target is enabled at
/// info); false when the caller must log it through tracing instead.
pub fn write(line: &AccessLine<'_>) -> bool {
    let Some(writer) = WRITER.get() else {
        return false;
    };
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return true; // filtered out: nothing to write, nothing for the caller to do
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    LINE.with_borrow_mut(|(buf, stamp)| {
        buf.clear();
        format(buf, stamp, line, now);
        // A NonBlocking write queues the whole buffer as one message (never lossy here: see
        // mod.rs), so lines never interleave with the other log lines.
        let _ = writer.clone().write_all(buf.as_bytes());
    });
    true
}

/// The date and time of day to the second, as `YYYY-MM-DDTHH:MM:SS.`, for one second.
struct Stamp {
    second: u64,
    text: [u8; 20],
}

impl Stamp {
    fn new() -> Stamp {
        Stamp {
            second: u64::MAX,
            text: [0; 20],
        }
    }

    fn at(&mut self, second: u64) -> &str {
        if second != self.second {
            let t = i64::try_from(second)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let mut out = &mut self.text[..];
            // Years 0000-9999 (all `time` represents by default) fill exactly 20 bytes.
            let _ = write!(
                out,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            self.second = second;
        }
        std::str::from_utf8(&self.text).unwrap_or("0000-00-00T00:00:00.")
    }
}

/// Appends the line (`now` since the Unix epoch) to `out`.
fn format(out: &mut String, stamp: &mut Stamp, line: &AccessLine<'_>, now: Duration) {
    // Fields a client chose (path, project) or that come from a request (id, operation) are
    // escaped; the rest are numbers and names.
    let field = |out: &mut String, s: &str| {
        let _ = super::fields::write_escaped(out, s);
    };
    // The layout of tracing-subscriber's text lines: `<time>  INFO <target>: <message> k=v…`.
    out.push_str(stamp.at(now.as_secs()));
    push_micros(out, now.subsec_micros());
    out.push_str("Z  INFO access: request api=");
    out.push_str(line.api);
    out.push_str(" method=");
    field(out, line.method.as_str());
    out.push_str(" path=");
    field(out, line.path);
    out.push_str(" status=");
    push_int(out, line.status);
    out.push_str(" bytes=");
    push_int(out, line.bytes);
    out.push_str(" secs=");
    push_int(out, line.elapsed.as_secs());
    out.push('.');
    push_micros(out, line.elapsed.subsec_micros());
    out.push_str(" id=");
    field(out, line.id);
    out.push_str(" project=");
    field(out, line.project);
    out.push_str(" peer=");
    push_peer(out, line.peer);
    out.push_str(" operation=");
    field(out, line.operation);
    out.push('\n');
}

fn push_int(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Six digits, zero-padded: the fraction of a second in microseconds.
fn push_micros(out: &mut String, micros: u32) {
    let mut digits = [b'0'; 6];
    let mut rest = micros.min(999_999);
    for d in digits.iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.push_str(std::str::from_utf8(&digits).unwrap_or("000000"));
}

fn push_peer(out: &mut String, peer: SocketAddr) {
    match peer {
        SocketAddr::V4(a) => {
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_int(out, octet);
            }
            out.push(':');
            push_int(out, a.port());
        }
        // `[addr]:port`, as SocketAddr shows it.
        SocketAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(path: &'a str, project: &'a str) -> AccessLine<'a> {
        static GET: http::Method = http::Method::GET;
        AccessLine {
            api: "s3",
            method: &GET,
            path,
            status: 200,
            bytes: 4096,
            elapsed: Duration::from_micros(1_234_567),
            id: "tx0123",
            project,
            peer: "127.0.0.1:5000".parse().unwrap(),
            operation: "GetObject",
        }
    }

    fn formatted(line: &AccessLine<'_>, now: time::OffsetDateTime) -> String {
        let since_epoch = Duration::from_nanos(now.unix_timestamp_nanos() as u64);
        let mut out = String::new();
        format(&mut out, &mut Stamp::new(), line, since_epoch);
        out
    }

    #[test]
    fn a_line_has_the_text_layout() {
        let now = time::macros::datetime!(2026-12-03 17:31:12.023327 UTC);
        assert_eq!(
            formatted(&line("/b/k", "p1"), now),
            "2026-12-03T17:31:12.023327Z  INFO access: request api=s3 method=GET path=/b/k \
             status=200 bytes=4096 secs=1.234567 id=tx0123 project=p1 peer=127.0.0.1:5000 \
             operation=GetObject\n"
        );
    }

    #[test]
    fn numbers_and_peers_are_written_as_display_writes_them() {
        let mut l = line("/", "-");
        l.status = 5;
        l.bytes = u64::MAX;
        l.elapsed = Duration::new(12, 7_000);
        l.peer = "[::1]:65535".parse().unwrap();
        let s = formatted(&l, time::macros::datetime!(2001-01-02 03:04:05.000001 UTC));
        assert!(s.starts_with("2001-01-02T03:04:05.000001Z  INFO"), "{s}");
        assert!(
            s.contains(&format!(" status=5 bytes={} secs=12.000007 ", u64::MAX)),
            "{s}"
        );
        assert!(s.contains(" peer=[::1]:65535 "), "{s}");
        l.peer = "10.200.0.255:80".parse().unwrap();
        let s = formatted(&l, time::OffsetDateTime::UNIX_EPOCH);
        assert!(s.starts_with("1970-01-01T00:00:00.000000Z"), "{s}");
        assert!(s.contains(" peer=10.200.0.255:80 "), "{s}");
    }

    #[test]
    fn the_date_follows_the_clock_across_seconds() {
        let mut stamp = Stamp::new();
        let (mut a, mut b) = (String::new(), String::new());
        let l = line("/", "-");
        format(&mut a, &mut stamp, &l, Duration::new(86_399, 999_999_000));
        format(&mut b, &mut stamp, &l, Duration::new(86_400, 0));
        assert!(a.starts_with("1970-01-01T23:59:59.999999Z"), "{a}");
        assert!(b.starts_with("1970-01-02T00:00:00.000000Z"), "{b}");
    }

    #[test]
    fn control_characters_are_escaped_within_the_line() {
        let now = time::OffsetDateTime::now_utc();
        let s = formatted(&line("/b/k", "p\u{1b}[31m\n"), now);
        assert!(s.contains(" project=p\\u{1b}[31m\\n peer="), "{s}");
        assert_eq!(s.matches('\n').count(), 1);
        assert!(s.ends_with("operation=GetObject\n"));
        let s = formatted(&line("/b/k\u{7f}\u{9b}", "p"), now);
        assert!(s.contains(" path=/b/k\\u{7f}\\u{9b} status="), "{s}");
    }
}
