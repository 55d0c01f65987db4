//! How the fields of a text log line (and of its spans) are written: `name=value`, as
//! tracing-subscriber's default does, with every control character escaped.
//!
//! tracing-subscriber's default field formatter writes a `%value` field (Display) as it is, so
//! a client-chosen string logged that way (a path, a name) could end a line early or carry a
//! terminal escape sequence; and it escapes a message character by character, a cost paid on
//! every line. Here values are written a run at a time and only a run holding a control
//! character goes through the slow path, so escaping costs a byte scan.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

/// The field formatter of text log lines (`fmt::Layer::fmt_fields`).
pub struct SafeFields;

impl<'w> MakeVisitor<Writer<'w>> for SafeFields {
    type Visitor = SafeVisitor<'w>;

    fn make_visitor(&self, target: Writer<'w>) -> SafeVisitor<'w> {
        SafeVisitor {
            out: target,
            first: true,
            result: Ok(()),
        }
    }
}

pub struct SafeVisitor<'w> {
    out: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl SafeVisitor<'_> {
    /// Starts a field: the separating space, then `name=` (nothing for the message).
    fn start(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.out.write_char(' ')?;
        }
        let name = field.name();
        if name == "message" {
            return Ok(());
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        if self.out.has_ansi_escapes() {
            // Italic name and dimmed `=`, as the default formatter shows them on a terminal.
            write!(self.out, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m")
        } else {
            self.out.write_str(name)?;
            self.out.write_char('=')
        }
    }

    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Escaping<'_, '_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .start(field)
                .and_then(|()| value(&mut Escaping(&mut self.out)));
        }
    }
}

impl Visit for SafeVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, |w| w.write_str(value));
        } else {
            // Quoted, as the default formatter writes a plain string field.
            self.field(field, |w| write!(w, "{value:?}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| w.0.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| w.0.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| {
            w.0.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |w| {
            write!(w, "{value}")?;
            // The chain of causes, as the default formatter lists them.
            let mut source = value.source();
            if source.is_some() {
                write!(w, " {}.sources=[", field.name())?;
            }
            let mut first = true;
            while let Some(s) = source {
                if !std::mem::take(&mut first) {
                    w.write_str(", ")?;
                }
                write!(w, "{s}")?;
                source = s.source();
            }
            if !first {
                w.write_char(']')?;
            }
            Ok(())
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| write!(w, "{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for SafeVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for SafeVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.out
    }
}

/// A writer that passes text through with control characters escaped.
struct Escaping<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.0, s)
    }
}

/// Writes `s` to `out`, each control character as `\n`, `\r`, `\t` or `\u{…}`: the C0
/// controls (newline, carriage return and escape among them), DEL, and the C1 controls some
/// terminals obey (`char::is_control`).
pub fn write_escaped(out: &mut (impl fmt::Write + ?Sized), s: &str) -> fmt::Result {
    // Fast path: one scan of the bytes. Every C0 control and DEL is a byte below 0x20 or
    // 0x7f; every C1 control is encoded as 0xC2 followed by 0x80..=0x9F. A fold without an
    // early exit, so that the compiler can compare many bytes at once.
    let suspect = s.as_bytes().iter().fold(false, |seen, &b| {
        seen | (b < 0x20) | (b == 0x7f) | (b == 0xc2)
    });
    if !suspect {
        return out.write_str(s);
    }
    let mut run = 0;
    for (i, c) in s.char_indices() {
        if !c.is_control() {
            continue;
        }
        out.write_str(&s[run..i])?;
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c => write!(out, "\\u{{{:x}}}", c as u32)?,
        }
        run = i + c.len_utf8();
    }
    out.write_str(&s[run..])
}

#[cfg(test)]
mod tests {
    use super::super::captured::Captured;
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        write_escaped(&mut out, s).unwrap();
        out
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escaped("plain /b/ké ü €"), "plain /b/ké ü €");
        assert_eq!(escaped("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(
            escaped("\x1b[31mred\x07\x7f"),
            "\\u{1b}[31mred\\u{7}\\u{7f}"
        );
        // C1 controls (0xC2 0x80..0x9F) are escaped; other 0xC2 characters (¢, é's
        // neighbours) pass.
        assert_eq!(escaped("x\u{9b}31m¢"), "x\\u{9b}31m¢");
    }

    /// The escape one character at a time, without the byte scan that picks the fast path.
    fn escaped_slowly(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '\n' => "\\n".to_string(),
                '\r' => "\\r".to_string(),
                '\t' => "\\t".to_string(),
                c if c.is_control() => format!("\\u{{{:x}}}", c as u32),
                c => c.to_string(),
            })
            .collect()
    }

    proptest::proptest! {
        // Any text, controls or not (the byte scan must never take the fast path wrongly):
        // no control character reaches the log, and the result is the per-character escape.
        // [\u{80}-\u{bf}]: the characters whose UTF-8 starts with 0xC2, C1 controls among them.
        #[test]
        fn no_control_character_survives_the_escape(s in "(\\PC|\\p{Cc}|[\u{80}-\u{bf}])*") {
            let out = escaped(&s);
            proptest::prop_assert!(!out.chars().any(char::is_control), "{:?}", out);
            proptest::prop_assert_eq!(out, escaped_slowly(&s));
        }

        #[test]
        fn text_without_controls_is_written_as_it_is(s in "\\PC*") {
            proptest::prop_assert_eq!(escaped(&s), s);
        }
    }

    fn logged(ansi: bool, f: impl FnOnce()) -> String {
        let out = Captured::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(ansi)
            .without_time()
            .fmt_fields(SafeFields)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        out.text()
    }

    #[test]
    fn a_line_holds_one_line_whatever_its_fields_hold() {
        let bad = "a\x1b[31mb\nc";
        let err = std::io::Error::other(bad);
        let line = logged(false, || {
            let _s = tracing::info_span!("s3", id = %bad).entered();
            tracing::info!(
                disp = %bad,
                dbg = ?bad,
                plain = bad,
                n = 42u64,
                neg = -7i64,
                ok = true,
                error = &err as &(dyn std::error::Error + 'static),
                "msg {bad}"
            );
        });
        assert_eq!(line.matches('\n').count(), 1, "{line:?}");
        assert!(!line.contains('\x1b'), "{line:?}");
        assert_eq!(
            line,
            "INFO s3{id=a\\u{1b}[31mb\\nc}: glint::logging::fields::tests: \
             msg a\\u{1b}[31mb\\nc disp=a\\u{1b}[31mb\\nc dbg=\"a\\u{1b}[31mb\\nc\" \
             plain=\"a\\u{1b}[31mb\\nc\" n=42 neg=-7 ok=true error=a\\u{1b}[31mb\\nc\n"
                .replace("INFO", " INFO")
        );
    }

    #[test]
    fn on_a_terminal_names_are_styled_and_values_still_escaped() {
        let line = logged(true, || tracing::info!(path = %"/k\x1b]0;x\x07", "hi"));
        assert!(
            line.contains("hi \x1b[3mpath\x1b[0m\x1b[2m=\x1b[0m/k\\u{1b}]0;x\\u{7}"),
            "{line:?}"
        );
    }
}
