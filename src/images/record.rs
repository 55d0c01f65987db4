//! The image record as the catalog stores it: what an image is (status, formats,
//! visibility, owner, members, where its data lives), its encoding with a format version,
//! and the questions every front end asks of it (who owns it, who may see it, where its
//! bytes are). No protocol types: the Images API renders it (`glance::render`), the S3
//! `images` bucket serves it.

use std::collections::BTreeMap;

use glint_storage::BlobId;
use serde::{Deserialize, Serialize};

use super::caller::Caller;
use super::inspect::Findings;
use super::status::ImageStatus;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    pub member_id: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The encoding's version (`repo::FORMAT`); records from before it was written are 1.
    #[serde(default = "first_format")]
    pub format: u32,
    pub id: String,
    pub name: Option<String>,
    pub status: ImageStatus,
    pub visibility: String,
    pub protected: bool,
    pub os_hidden: bool,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub owner: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub tags: Vec<String>,
    pub extra: BTreeMap<String, String>,
    /// The engine blob holding the data, once uploaded.
    pub blob: Option<BlobId>,
    /// Projects the image is shared with (at most `image_member_quota`; kept in the record
    /// so that visibility is decided from one read).
    #[serde(default)]
    pub members: Vec<Member>,
    /// Data staged for a glance-direct import (`PUT /stage`), with what it is.
    #[serde(default)]
    pub staged: Option<Staged>,
    /// When a delayed delete marked it `pending_delete`.
    #[serde(default)]
    pub deleted_at: Option<String>,
    /// The backend holding `blob` (multiple stores; None with one store).
    #[serde(default)]
    pub store: Option<String>,
    /// Further copies in other backends (copy-image), in the order they were made.
    #[serde(default)]
    pub copies: Vec<StoredCopy>,
    /// Cluster mode: the node running this image's upload, stage or import
    /// (`Store::node_id`), so that another node rolls it back once that node is gone
    /// (glance/recovery.rs). Only read while such an operation is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredCopy {
    pub store: String,
    pub blob: BlobId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Staged {
    /// A committed engine blob of its own until the import adopts (or a delete drops) it.
    pub blob: BlobId,
    pub size: u64,
    pub md5: Option<String>,
    /// The multihash under `hashing_algorithm` as it was when the data was staged.
    #[serde(default)]
    pub os_hash: Option<Multihash>,
    /// What records staged before `hashing_algorithm` existed hold: a SHA-512 value.
    #[serde(default, rename = "sha512", skip_serializing_if = "Option::is_none")]
    pub legacy_sha512: Option<String>,
    pub findings: Findings,
}

impl Staged {
    pub fn multihash(&self) -> Option<Multihash> {
        self.os_hash.clone().or_else(|| {
            self.legacy_sha512.clone().map(|value| Multihash {
                algo: "sha512".into(),
                value,
            })
        })
    }
}

/// An image's multihash: the algorithm (`os_hash_algo`) and its hex digest (`os_hash_value`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Multihash {
    pub algo: String,
    pub value: String,
}

impl ImageRecord {
    pub fn new(id: String, owner: Option<String>, stamp: String) -> ImageRecord {
        ImageRecord {
            format: super::repo::FORMAT,
            id,
            name: None,
            status: ImageStatus::Queued,
            visibility: "shared".into(),
            protected: false,
            os_hidden: false,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            size: None,
            virtual_size: None,
            disk_format: None,
            container_format: None,
            min_disk: 0,
            min_ram: 0,
            owner,
            created_at: stamp.clone(),
            updated_at: stamp,
            tags: Vec::new(),
            extra: BTreeMap::new(),
            blob: None,
            members: Vec::new(),
            staged: None,
            worker: None,
            deleted_at: None,
            store: None,
            copies: Vec::new(),
        }
    }

    /// Where the data is: (store id, blob), the first location first.
    pub fn locations(&self) -> Vec<(Option<&str>, BlobId)> {
        let mut out = Vec::new();
        if let Some(b) = self.blob {
            out.push((self.store.as_deref(), b));
        }
        for c in &self.copies {
            out.push((Some(c.store.as_str()), c.blob));
        }
        out
    }

    /// The stores holding the data, as the `stores` property lists them.
    pub fn store_ids(&self) -> Vec<&str> {
        self.locations()
            .into_iter()
            .filter_map(|(s, _)| s)
            .collect()
    }

    pub fn is_owner(&self, caller: &Caller) -> bool {
        self.owner.is_some() && self.owner == caller.project
    }

    pub fn member(&self, project: Option<&str>) -> Option<&Member> {
        let p = project?;
        self.members.iter().find(|m| m.member_id == p)
    }

    /// Whether `caller` may see this image at all (upstream's `get_image`): admins, the
    /// owner, anyone for public and community images, and the projects a shared image is
    /// shared with, whatever their membership status.
    pub fn visible_to(&self, caller: &Caller) -> bool {
        if self.status.is_deleted() {
            return false;
        }
        caller.is_admin()
            || self.is_owner(caller)
            || matches!(self.visibility.as_str(), "public" | "community")
            || (self.visibility == "shared" && self.member(caller.project.as_deref()).is_some())
    }

    /// Moves the image from `from` to `to` if it is in `from` and the status table allows
    /// the step; whether it moved. Every status change goes through here (or `status.become_`).
    pub fn move_status(&mut self, from: ImageStatus, to: ImageStatus) -> bool {
        self.status == from && self.status.become_(to).is_ok()
    }

    /// Sets `os_hash_algo` and `os_hash_value` together (both null without a multihash).
    pub fn set_multihash(&mut self, h: Option<Multihash>) {
        let (algo, value) = h.map(|h| (h.algo, h.value)).unzip();
        self.os_hash_algo = algo;
        self.os_hash_value = value;
    }
}

fn first_format() -> u32 {
    1
}

pub fn valid_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Glance's timestamp form: second precision, `Z`.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

/// ISO 8601 as clients send it: a full RFC 3339 timestamp, one without zone (UTC), or a
/// date alone.
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    if let Ok(t) = time::PrimitiveDateTime::parse(s.trim_end_matches('Z'), &fmt) {
        return Some(t.assume_utc());
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &day)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

/// Milliseconds since the epoch of a Glance timestamp (0 when unparsable).
pub fn timestamp_ms(stamp: &str) -> i64 {
    parse_time(stamp).map_or(0, |t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}
