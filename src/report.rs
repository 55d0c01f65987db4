//! What the maintenance commands (`glint status`, `scrub`, `gc`) print: aligned tables for
//! people, and progress while a long call runs — a bar with rate and ETA on a terminal
//! (indicatif), a plain line every [`PLAIN_EVERY`] otherwise (a journal or a log file gets
//! no control characters).

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glint_storage::{Progress, ProgressReading, ProgressUnit};
use indicatif::{HumanBytes, HumanCount, HumanDuration, ProgressBar, ProgressStyle};

/// Rows of cells under a header; columns whose cells are numbers align right.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: impl IntoIterator<Item = impl Into<String>>) -> &mut Table {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    pub fn render(&self) -> String {
        let cols = self.header.len();
        let cell = |r: &Vec<String>, c: usize| r.get(c).map_or("", |s| s.as_str()).to_string();
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| cell(r, c).chars().count())
                    .chain([self.header[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        // A column is numeric when every cell starts with a digit (or is empty / "-").
        let numeric: Vec<bool> = (0..cols)
            .map(|c| {
                c > 0
                    && self.rows.iter().all(|r| {
                        let v = cell(r, c);
                        v.is_empty() || v == "-" || v.starts_with(|ch: char| ch.is_ascii_digit())
                    })
            })
            .collect();
        let line = |cells: &Vec<String>| {
            let mut out = String::new();
            for c in 0..cols {
                let v = cell(cells, c);
                let pad = width[c] - v.chars().count();
                if c > 0 {
                    out.push_str("  ");
                }
                if numeric[c] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&v);
                } else {
                    out.push_str(&v);
                    if c + 1 < cols {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.header);
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// `n` in binary units (`1.50 GiB`).
pub fn bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}

/// `n` with thousands separators.
pub fn count(n: u64) -> String {
    HumanCount(n).to_string()
}

/// `a / b` as a ratio (`4.00×`), `-` when `b` is 0.
pub fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.2}×", a as f64 / b as f64)
    }
}

/// How often a plain progress line is printed off a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// Runs `work`, showing `progress` on stderr while it runs (`what` names the command).
pub async fn with_progress<T>(
    what: &'static str,
    progress: Arc<Progress>,
    work: impl Future<Output = T>,
) -> T {
    let terminal = std::io::stderr().is_terminal();
    let mut work = std::pin::pin!(work);
    let bar = terminal.then(|| {
        let b = ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let started = Instant::now();
    let mut shown: Option<ProgressReading> = None;
    let mut last_line = Instant::now();
    let mut rate = Rate::default();
    let out = loop {
        tokio::select! {
            out = &mut work => break out,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let now = progress.read();
        rate.sample(&now);
        match &bar {
            Some(b) => show_bar(b, shown.as_ref(), &now),
            None if last_line.elapsed() >= PLAIN_EVERY => {
                eprintln!("{}", plain_line(what, &now, &rate, started.elapsed()));
                last_line = Instant::now();
            }
            None => {}
        }
        shown = Some(now);
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    out
}

fn show_bar(bar: &ProgressBar, shown: Option<&ProgressReading>, now: &ProgressReading) {
    if shown.is_none_or(|s| s.phase != now.phase || s.total != now.total) {
        let counts = match now.unit {
            ProgressUnit::Bytes => "{bytes}/{total_bytes} {binary_bytes_per_sec}",
            ProgressUnit::Entries => "{human_pos}/{human_len} {per_sec}",
        };
        let style = if now.total > 0 {
            format!("{{spinner}} {{msg:12}} [{{bar:32}}] {counts} ETA {{eta}}")
        } else {
            // A walk of unknown length: what has been done and how fast.
            "{spinner} {msg:12} {human_pos} entries {per_sec} ({elapsed})".to_string()
        };
        if let Ok(s) = ProgressStyle::with_template(&style) {
            bar.set_style(s.progress_chars("=> "));
        }
        bar.set_message(now.phase);
        bar.set_length(now.total);
        bar.reset_eta();
    }
    bar.set_position(now.done);
}

/// Units per second over the recent past, for the plain lines.
#[derive(Default)]
struct Rate {
    last: Option<(Instant, &'static str, u64)>,
    per_sec: f64,
}

impl Rate {
    fn sample(&mut self, now: &ProgressReading) {
        let t = Instant::now();
        if let Some((at, phase, done)) = self.last {
            let dt = t.duration_since(at).as_secs_f64();
            if phase == now.phase && dt >= 1.0 {
                let inst = now.done.saturating_sub(done) as f64 / dt;
                // Smoothed, so that one slow pack does not swing the ETA.
                self.per_sec = if self.per_sec == 0.0 {
                    inst
                } else {
                    0.7 * self.per_sec + 0.3 * inst
                };
                self.last = Some((t, now.phase, now.done));
            } else if phase != now.phase {
                self.last = Some((t, now.phase, now.done));
                self.per_sec = 0.0;
            }
        } else {
            self.last = Some((t, now.phase, now.done));
        }
    }
}

fn plain_line(what: &str, now: &ProgressReading, rate: &Rate, elapsed: Duration) -> String {
    let amount = |n: u64| match now.unit {
        ProgressUnit::Bytes => bytes(n),
        ProgressUnit::Entries => count(n),
    };
    let per_sec = match now.unit {
        ProgressUnit::Bytes => format!("{}/s", bytes(rate.per_sec as u64)),
        ProgressUnit::Entries => format!("{}/s", count(rate.per_sec as u64)),
    };
    if now.total == 0 {
        return format!(
            "{what}: {}: {} done, {per_sec}, {} elapsed",
            now.phase,
            amount(now.done),
            HumanDuration(elapsed)
        );
    }
    let pct = 100.0 * now.done as f64 / now.total as f64;
    let eta = if rate.per_sec > 0.0 {
        let left = now.total.saturating_sub(now.done) as f64 / rate.per_sec;
        HumanDuration(Duration::from_secs_f64(left)).to_string()
    } else {
        "unknown".into()
    };
    format!(
        "{what}: {}: {} / {} ({pct:.0}%), {per_sec}, ETA {eta}",
        now.phase,
        amount(now.done),
        amount(now.total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_numbers_right_and_text_left() {
        let mut t = Table::new(&["WHAT", "COUNT", "NOTE"]);
        t.row(["blobs", "1,204", "ok"]);
        t.row(["images (active)", "7", "-"]);
        assert_eq!(
            t.render(),
            "WHAT             COUNT  NOTE\n\
             blobs            1,204  ok\n\
             images (active)      7  -\n"
        );
    }

    #[test]
    fn plain_lines_say_phase_share_rate_and_eta() {
        let now = ProgressReading {
            phase: "packs",
            unit: ProgressUnit::Bytes,
            total: 4 << 30,
            done: 1 << 30,
        };
        let rate = Rate {
            last: None,
            per_sec: (256 << 20) as f64,
        };
        let line = plain_line("scrub", &now, &rate, Duration::from_secs(4));
        assert_eq!(
            line,
            "scrub: packs: 1.00 GiB / 4.00 GiB (25%), 256.00 MiB/s, ETA 12 seconds"
        );
    }
}
