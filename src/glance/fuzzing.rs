//! Entry points for the property-based fuzz tests (`tests/fuzz.rs`): the Images API's
//! parsers of network input, callable with arbitrary input. Each returns the status the
//! request would have been answered with instead of a response. Not an API.

/// A JSON-patch body under a `Content-Type`: the number of operations, or the status.
pub fn json_patch(body: &[u8], content_type: &str) -> Result<usize, u16> {
    let dialect = super::patch::dialect(Some(content_type)).map_err(|e| e.status.as_u16())?;
    super::patch::parse(body, dialect)
        .map(|ops| ops.len())
        .map_err(|e| e.status.as_u16())
}

/// A JSON request body as `read_json_body` reads it (an object, or 400).
pub fn json_object(body: &[u8]) -> Result<usize, u16> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(0);
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => Ok(m.len()),
        _ => Err(400),
    }
}

/// An image-list query string (filters, `in:` lists, date operators, both sort syntaxes,
/// marker and limit): Ok, or the status.
pub fn list_query(raw_query: &str) -> Result<(), u16> {
    let opts = crate::config::Config::defaults().glance;
    super::listing::parse(raw_query, &opts)
        .map(|_| ())
        .map_err(|e| e.status.as_u16())
}

/// Image data through the format inspector in `pieces` (as an upload streams it), judged
/// against `declared`: the virtual size, or why it is refused (415 upstream).
pub fn inspect(pieces: &[&[u8]], declared: &str) -> Result<Option<u64>, String> {
    let mut inspector = super::inspect::Inspector::new();
    let mut size = 0u64;
    for p in pieces {
        inspector.feed(p);
        size += p.len() as u64;
    }
    inspector
        .conclude(size)
        .verdict(declared)
        .map(|v| v.virtual_size)
        .map_err(|r| r.to_string())
}

/// The Images API's reading of a `Range` header over `size` bytes: Some(span) for 206,
/// Err(status) for 400/416.
pub fn range(value: &str, size: u64) -> Result<(u64, u64), u16> {
    match crate::range::parse(value) {
        Ok(r) => r.resolve(size).map(|s| (s.start, s.end)).ok_or(416),
        Err(crate::range::RangeError::Multiple) => Err(400),
        Err(crate::range::RangeError::Invalid) => Err(416),
    }
}

/// A metadata-definition document (the body of `POST /v2/metadefs/namespaces`, also the
/// definition-file format): the number of items it defines, or the status.
pub fn metadef_document(body: &[u8]) -> Result<usize, u16> {
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|_| 400u16)?;
    let def = crate::images::metadefs::files::parse(&doc, Some("p"), true).map_err(|_| 400u16)?;
    Ok(def.associations.len() + def.properties.len() + def.objects.len() + def.tags.len())
}
