//! Text access-log lines, written straight to the log writer.
//!
//! A text access line through tracing-subscriber's formatter costs about 24,000 instructions
//! (7 % of a 4 KiB S3 request, measured by benches/metrics-cost-callgrind.sh): it visits each
//! field and passes every byte through its escaping writer. The line here is formatted once
//! and handed to the same writer thread as every other log line, in the same layout
//! (`<time>  INFO access: request k=v …`). A line that would hold a control character is
//! not written here: the caller logs it through tracing, whose writer escapes it, so nothing
//! a client sends can reach an operator's terminal as an escape sequence. JSON logs
//! (`log_format = json`) always go through tracing, whose JSON encoder escapes.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use tracing_appender::non_blocking::NonBlocking;

static WRITER: OnceLock<NonBlocking> = OnceLock::new();

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
    pub peer: std::net::SocketAddr,
    pub operation: &'a str,
}

/// Writes `line` if text access lines are installed, the `access` target is enabled at info
/// and the line holds no control character; false when the caller must log it instead.
pub fn write(line: &AccessLine<'_>) -> bool {
    let Some(writer) = WRITER.get() else {
        return false;
    };
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return true; // filtered out: nothing to write, nothing for the caller to do
    }
    let now = time::OffsetDateTime::now_utc();
    let Some(text) = format(line, now) else {
        return false;
    };
    // A NonBlocking write queues the whole buffer as one message (never lossy here: see
    // main.rs), so lines never interleave with the other log lines.
    let _ = writer.clone().write_all(text.as_bytes());
    true
}

/// The line, or None when a field holds a control character.
fn format(line: &AccessLine<'_>, now: time::OffsetDateTime) -> Option<String> {
    let mut s = String::with_capacity(224 + line.path.len());
    let _ = writeln!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z  INFO access: request api={} method={} \
         path={} status={} bytes={} secs={}.{:06} id={} project={} peer={} operation={}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond(),
        line.api,
        line.method,
        line.path,
        line.status,
        line.bytes,
        line.elapsed.as_secs(),
        line.elapsed.subsec_micros(),
        line.id,
        line.project,
        line.peer,
        line.operation,
    );
    let body = &s.as_bytes()[..s.len() - 1];
    if body.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    Some(s)
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

    #[test]
    fn a_line_has_the_text_layout() {
        let now = time::macros::datetime!(2026-12-03 17:31:12.723327 UTC);
        assert_eq!(
            format(&line("/b/k", "p1"), now).unwrap(),
            "2026-12-03T17:31:12.723327Z  INFO access: request api=s3 method=GET path=/b/k \
             status=200 bytes=4096 secs=1.234567 id=tx0123 project=p1 peer=127.0.0.1:5000 \
             operation=GetObject\n"
        );
    }

    #[test]
    fn a_control_character_sends_the_line_to_the_escaping_path() {
        let now = time::OffsetDateTime::now_utc();
        assert!(format(&line("/b/k", "p\u{1b}[31m"), now).is_none());
        assert!(format(&line("/b/k\n", "p"), now).is_none());
        assert!(format(&line("/b/k", "p\u{7f}"), now).is_none());
    }
}
