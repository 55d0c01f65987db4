//! What the S3 front end keeps in the catalog: bucket and object records (JSON values), and
//! their keys. Object keys are `bucket \0 key`, so one bucket's objects are one key range in
//! lexicographic (S3 listing) order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::acl::{Access, Grant};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BucketRecord {
    pub owner: String,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    pub region: String,
    #[serde(default = "private")]
    pub acl: String,
    /// Explicit grants (acl.rs); when present they, not `acl`, decide access.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
}

impl BucketRecord {
    pub fn access(&self) -> Access<'_> {
        Access {
            owner: &self.owner,
            canned: &self.acl,
            grants: &self.grants,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub blob: String,
    pub size: u64,
    /// With its quotes, as S3 returns it.
    pub etag: String,
    pub modified_ms: i64,
    pub owner: String,
    #[serde(default = "private")]
    pub acl: String,
    /// Explicit grants (acl.rs); when present they, not `acl`, decide access.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// Content-Type, Content-Encoding, Cache-Control, … as received (lower-case names).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// x-amz-meta-* (lower-case names without the prefix).
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// x-amz-checksum-<algo> → base64 value.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
    /// Part sizes of a multipart object, for `?partNumber=`.
    #[serde(default)]
    pub parts: Vec<u64>,
    /// COMPOSITE or FULL_OBJECT, when a checksum is stored.
    #[serde(default)]
    pub checksum_type: Option<String>,
    /// Each part's checksum (base64), for `?partNumber=` reads of a multipart object.
    #[serde(default)]
    pub part_checksums: Vec<String>,
}

impl ObjectRecord {
    pub fn access(&self) -> Access<'_> {
        Access {
            owner: &self.owner,
            canned: &self.acl,
            grants: &self.grants,
        }
    }
}

fn private() -> String {
    "private".into()
}

pub fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + 1 + key.len());
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

pub fn object_prefix(bucket: &str) -> Vec<u8> {
    object_key(bucket, "")
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn iso8601(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}

pub fn http_date(ms: i64) -> String {
    httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
}

/// S3 bucket naming rules (the DNS-compatible subset every region enforces).
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.1", &"a".repeat(63)] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            "ABC",
            "-abc",
            "abc-",
            "a..b",
            "192.168.5.4",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
