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
//!
//! Lines are batched, as nginx's `access_log … buffer= flush=` does: appended to one shared
//! buffer, handed to the writer thread as one message when it holds [`BATCH_BYTES`] or
//! [`BATCH_DELAY`] after its first line. A message per line cost an allocation, a queue
//! push, a wake-up of the writer thread and a write(2) each: about 1,750 instructions, a
//! fifth of what metrics and logging add to a 4 KiB request. So an access line reaches the
//! log up to 100 ms after the request ends (its timestamp is the request's end), and may
//! follow other lines logged in that time; at exit the guard from [`install`] writes what
//! is pending.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tracing_appender::non_blocking::NonBlocking;

/// A batch goes to the writer thread once it holds this much…
const BATCH_BYTES: usize = 32 * 1024;
/// …or this long after its first line.
const BATCH_DELAY: Duration = Duration::from_millis(100);

/// Set once the flusher thread runs: until then (or if it cannot start) lines go through
/// tracing.
static BATCH: OnceLock<&'static Batch> = OnceLock::new();

/// Access lines not yet handed to the writer thread.
struct Batch {
    writer: NonBlocking,
    pending: Mutex<String>,
    /// Signalled when a line lands in an empty batch: the flusher starts its delay.
    started: Condvar,
}

impl Batch {
    fn new(writer: NonBlocking) -> Batch {
        Batch {
            writer,
            pending: Mutex::new(String::with_capacity(BATCH_BYTES)),
            started: Condvar::new(),
        }
    }

    fn append(&self, line: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = pending.is_empty();
        pending.push_str(line);
        if pending.len() >= BATCH_BYTES {
            let full = std::mem::replace(&mut *pending, String::with_capacity(BATCH_BYTES));
            drop(pending);
            self.send(&full);
        } else if was_empty {
            self.started.notify_one();
        }
    }

    /// Hands what is pending to the writer thread.
    fn flush(&self) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        self.send(&batch);
    }

    fn send(&self, batch: &str) {
        if !batch.is_empty() {
            // One message for the whole batch: never lossy (see mod.rs), and the writer thread
            // writes each message whole, so lines never interleave with other log lines.
            let _ = self.writer.clone().write_all(batch.as_bytes());
        }
    }

    /// The flusher thread: waits for a batch to start, lets it fill for [`BATCH_DELAY`],
    /// hands it over.
    fn run_flusher(&self) {
        loop {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            while pending.is_empty() {
                pending = self
                    .started
                    .wait(pending)
                    .unwrap_or_else(|e| e.into_inner());
            }
            drop(pending);
            std::thread::sleep(BATCH_DELAY);
            self.flush();
        }
    }
}

/// Writes the pending access lines when dropped (at the end of main, before the writer
/// thread's own guard).
pub struct FlushOnDrop(());

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        if let Some(batch) = BATCH.get() {
            batch.flush();
        }
    }
}

thread_local! {
    /// Each thread's line buffer and the date part of its last line's timestamp: a line is
    /// built without an allocation, and the date is formatted once a second, not per line.
    static LINE: RefCell<(String, Stamp)> = RefCell::new((String::with_capacity(256), Stamp::new()));
}

/// Sends text access lines to `writer` (the writer tracing's text formatter writes to), in
/// batches; the guard writes the last batch.
pub fn install(writer: NonBlocking) -> std::io::Result<FlushOnDrop> {
    // Lives as long as the process, as its flusher thread does.
    let batch: &'static Batch = Box::leak(Box::new(Batch::new(writer)));
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || batch.run_flusher())?;
    let _ = BATCH.set(batch);
    Ok(FlushOnDrop(()))
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
    let Some(batch) = BATCH.get() else {
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
        // Formatted outside the lock; only the copy is made under it.
        batch.append(buf);
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
    use super::super::captured::Captured;
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

    fn batch() -> (
        &'static Batch,
        Captured,
        tracing_appender::non_blocking::WorkerGuard,
    ) {
        let out = Captured::default();
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .finish(out.clone());
        (Box::leak(Box::new(Batch::new(writer))), out, guard)
    }

    #[test]
    fn a_full_batch_goes_out_at_once_in_order() {
        let (batch, out, _guard) = batch();
        let line = format!("{}\n", "x".repeat(99));
        let lines = BATCH_BYTES / line.len() + 1;
        for _ in 0..lines - 1 {
            batch.append(&line);
        }
        // No flusher thread here: below the size nothing is handed over.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(out.text(), "");
        batch.append(&line);
        assert_eq!(out.until(lines * line.len()), line.repeat(lines));
        assert!(batch.pending.lock().unwrap().is_empty());
    }

    #[test]
    fn the_flusher_hands_over_a_started_batch_and_waits_for_the_next() {
        let (batch, out, _guard) = batch();
        std::thread::spawn(|| batch.run_flusher());
        batch.append("one\n");
        assert_eq!(out.until(4), "one\n");
        batch.append("two\n");
        batch.append("three\n");
        assert_eq!(out.until(14), "one\ntwo\nthree\n");
    }

    #[test]
    fn a_flush_writes_what_is_pending() {
        let (batch, out, _guard) = batch();
        batch.append("last\n");
        batch.flush();
        assert_eq!(out.until(5), "last\n");
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
