//! `Range: bytes=…` as both APIs receive it (RFC 9110 §14.1.2), parsed once; what an invalid
//! or unsatisfiable range means differs per protocol and stays with the front ends (S3 serves
//! the whole object for a range it cannot parse; Glance answers 416).

/// One byte range of a `Range` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last`, inclusive; `last` may lie beyond the end (it is clipped).
    FromTo(u64, u64),
    /// `first-`: to the end.
    From(u64),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// Why a `Range` value is not one byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeError {
    /// Another unit, bad syntax, or `first > last`.
    Invalid,
    /// Several ranges (neither API serves multipart/byteranges).
    Multiple,
}

/// Parses a `Range` header value. Positions are decimal digits; one too large for 64 bits
/// reads as `u64::MAX` (larger than any object, so it clips to the end as the RFC says of
/// any last position past the end).
pub fn parse(value: &str) -> Result<ByteRange, RangeError> {
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or(RangeError::Invalid)?;
    if spec.contains(',') {
        return Err(RangeError::Multiple);
    }
    let (a, b) = spec.split_once('-').ok_or(RangeError::Invalid)?;
    let (a, b) = (a.trim(), b.trim());
    match (position(a), position(b)) {
        (Some(a), Some(b)) if a <= b => Ok(ByteRange::FromTo(a, b)),
        (Some(a), None) if b.is_empty() => Ok(ByteRange::From(a)),
        (None, Some(n)) if a.is_empty() => Ok(ByteRange::Suffix(n)),
        _ => Err(RangeError::Invalid),
    }
}

fn position(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

impl ByteRange {
    /// The half-open span of an object of `size` bytes; None when unsatisfiable (starts at
    /// or past the end, or asks for the last 0 bytes, or the object is empty).
    pub fn resolve(self, size: u64) -> Option<std::ops::Range<u64>> {
        let r = match self {
            ByteRange::FromTo(a, b) => a..b.saturating_add(1).min(size),
            ByteRange::From(a) => a..size,
            ByteRange::Suffix(0) => return None,
            ByteRange::Suffix(n) => size.saturating_sub(n)..size,
        };
        (r.start < size).then_some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves() {
        assert_eq!(parse("bytes=0-9").unwrap().resolve(100), Some(0..10));
        assert_eq!(parse("bytes=90-200").unwrap().resolve(100), Some(90..100));
        assert_eq!(parse("bytes=-10").unwrap().resolve(100), Some(90..100));
        assert_eq!(parse("bytes=-200").unwrap().resolve(100), Some(0..100));
        assert_eq!(parse("bytes=100-").unwrap().resolve(100), None);
        assert_eq!(parse("bytes=0-").unwrap().resolve(0), None);
        assert_eq!(parse("bytes=-0").unwrap().resolve(10), None);
        assert_eq!(
            parse("bytes=0-99999999999999999999999")
                .unwrap()
                .resolve(10),
            Some(0..10)
        );
        assert_eq!(parse("bytes=5-2"), Err(RangeError::Invalid));
        assert_eq!(parse("items=0-1"), Err(RangeError::Invalid));
        assert_eq!(parse("bytes=+1-2"), Err(RangeError::Invalid));
        assert_eq!(parse("bytes=0-1,3-4"), Err(RangeError::Multiple));
    }
}
