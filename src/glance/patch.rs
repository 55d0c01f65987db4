//! `PATCH /v2/images/{id}`: JSON patch in both of Glance's media types. The whole patch is
//! parsed first (400 for a malformed document), then applied to a copy of the record under
//! the image's lock and saved once; any refused operation leaves the image untouched.

use http::StatusCode;
use serde_json::Value;

use super::record::{check_writable, EditRules, ImageRecord, BASE_WRITABLE};
use super::{ApiError, Caller};

pub const MEDIA_V21: &str = "application/openstack-images-v2.1-json-patch";
pub const MEDIA_V20: &str = "application/openstack-images-v2.0-json-patch";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
    Replace,
}

#[derive(Clone, Debug)]
pub struct PatchOp {
    pub op: Op,
    /// The property the (one-segment) JSON pointer names, unescaped.
    pub key: String,
    pub value: Option<Value>,
}

/// Which dialect the Content-Type names; anything else is 415 with `Accept-Patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// RFC 6902 style `{"op": ..., "path": ..., "value": ...}`; `add` of an existing
    /// property replaces it.
    V21,
    /// The older draft `{"replace": "/name", "value": ...}`; `add` of an existing property
    /// is a conflict.
    V20,
}

pub fn dialect(content_type: Option<&str>) -> Result<Dialect, ApiError> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some(MEDIA_V21) => Ok(Dialect::V21),
        Some(MEDIA_V20) => Ok(Dialect::V20),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Unsupported Content-Type: {}",
                content_type.unwrap_or("none")
            ),
        )
        .with_header("accept-patch", format!("{MEDIA_V20}, {MEDIA_V21}"))),
    }
}

pub fn parse(body: &[u8], dialect: Dialect) -> Result<Vec<PatchOp>, ApiError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad("Malformed JSON in request body."))?;
    let Value::Array(items) = doc else {
        return Err(ApiError::bad(
            "Request body must be a JSON array of operation objects.",
        ));
    };
    items.iter().map(|item| parse_op(item, dialect)).collect()
}

fn parse_op(item: &Value, dialect: Dialect) -> Result<PatchOp, ApiError> {
    let obj = item
        .as_object()
        .ok_or_else(|| ApiError::bad("Operations must be JSON objects."))?;
    let (op_name, path) = match dialect {
        Dialect::V21 => {
            let op = obj
                .get("op")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad("Unable to find 'op' in JSON Schema change"))?;
            let path = obj
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad("Unable to find 'path' in JSON Schema change"))?;
            (op.to_string(), path.to_string())
        }
        Dialect::V20 => {
            let mut found = ["add", "remove", "replace"]
                .into_iter()
                .filter(|k| obj.contains_key(*k));
            let (Some(op), None) = (found.next(), found.next()) else {
                return Err(ApiError::bad(
                    "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
                ));
            };
            let path = obj[op]
                .as_str()
                .ok_or_else(|| ApiError::bad("Unable to find 'path' in JSON Schema change"))?;
            (op.to_string(), path.to_string())
        }
    };
    let op = match op_name.as_str() {
        "add" => Op::Add,
        "remove" => Op::Remove,
        "replace" => Op::Replace,
        other => {
            return Err(ApiError::bad(format!(
                "Invalid operation: `{other}`: Operation \"{other}\" not supported. Supported operations are: add, remove, replace"
            )))
        }
    };
    let value = obj.get("value").cloned();
    if op != Op::Remove && value.is_none() {
        return Err(ApiError::bad(format!(
            "Operation \"{op_name}\" requires a member named \"value\"."
        )));
    }
    Ok(PatchOp {
        op,
        key: pointer_key(&path)?,
        value,
    })
}

/// A one-segment JSON pointer (`/name`, `/a~1b`) to its property name.
fn pointer_key(path: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::bad(format!("Pointer `{path}` is not a valid JSON pointer"));
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| ApiError::bad(format!("Pointer `{path}` does not start with \"/\".")))?;
    if rest.is_empty() || rest.ends_with('/') || rest.contains("//") {
        return Err(invalid());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.len() != 1 {
        // Only `/locations/N` is deeper, and locations are not exposed
        // (`show_multiple_locations` is off).
        if segments[0] == "locations" {
            return Err(ApiError::forbidden("Attribute 'locations' is read-only."));
        }
        return Err(ApiError::bad(format!(
            "Nested paths are not allowed: `{path}`"
        )));
    }
    let seg = segments[0];
    let mut out = String::with_capacity(seg.len());
    let mut chars = seg.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err(invalid()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Applies the operations in order to `rec`.
pub fn apply(
    rec: &mut ImageRecord,
    ops: &[PatchOp],
    dialect: Dialect,
    caller: &Caller,
    rules: &EditRules<'_>,
) -> Result<(), ApiError> {
    for op in ops {
        let key = op.key.as_str();
        check_writable(key)?;
        let base = BASE_WRITABLE.contains(&key);
        let exists = base || rec.extra.contains_key(key);
        match op.op {
            Op::Remove if base => {
                return Err(ApiError::forbidden(format!(
                    "Properties {key} must not be removed."
                )))
            }
            Op::Remove | Op::Replace if !exists => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("Property {key} does not exist."),
                ))
            }
            Op::Add if !base && exists && dialect == Dialect::V20 => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("Property {key} already present."),
                ))
            }
            Op::Remove => {
                rec.extra.remove(key);
            }
            Op::Add | Op::Replace => {
                let value = op.value.as_ref().expect("checked by parse");
                rec.set_property(key, value, caller, rules)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers() {
        assert_eq!(pointer_key("/name").unwrap(), "name");
        assert_eq!(pointer_key("/a~1b~0c").unwrap(), "a/b~c");
        for bad in ["name", "/", "/a/", "//a", "/a~2", "/a/b"] {
            assert!(pointer_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn both_dialects_parse() {
        let v21 = parse(
            br#"[{"op":"replace","path":"/name","value":"x"},{"op":"remove","path":"/k"}]"#,
            Dialect::V21,
        )
        .unwrap();
        assert_eq!((v21[0].op, v21[1].op), (Op::Replace, Op::Remove));
        let v20 = parse(br#"[{"replace":"/name","value":"x"}]"#, Dialect::V20).unwrap();
        assert_eq!(v20[0].key, "name");
        for bad in [
            &br#"{"op":"replace"}"#[..],
            br#"[{"op":"move","path":"/x","from":"/y"}]"#,
            br#"[{"op":"replace","path":"/name"}]"#,
            br#"[{"path":"/name","value":1}]"#,
        ] {
            assert_eq!(parse(bad, Dialect::V21).unwrap_err().status, 400);
        }
    }
}
