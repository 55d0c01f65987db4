//! The image record as stored in the catalog, its JSON form, who may see or change it, and
//! the one place where a property value is validated and applied (create and PATCH share
//! it, so both answer the same status for the same bad value).

use std::collections::BTreeMap;

use glint_storage::BlobId;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::schema::ImageSchema;
use super::{ApiError, Caller};
use crate::config::GlanceOptions;

/// Set by the server, never by a request (403 "Attribute 'X' is read-only.").
pub const READ_ONLY: &[&str] = &[
    "status",
    "checksum",
    "size",
    "virtual_size",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "direct_url",
    "self",
    "file",
    "schema",
    "stores",
    "locations",
];
/// Names no request may use (403 "Attribute 'X' is reserved.").
const RESERVED: &[&str] = &["location", "deleted", "deleted_at"];
/// The writable base attributes: they always exist, so they may be replaced but not removed.
pub const BASE_WRITABLE: &[&str] = &[
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "owner",
    "tags",
];
const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    pub member_id: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Member {
    pub fn to_json(&self, image_id: &str) -> Value {
        json!({
            "member_id": self.member_id,
            "image_id": image_id,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "schema": "/v2/schemas/member",
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
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
    pub blob: Option<String>,
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
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredCopy {
    pub store: String,
    pub blob: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Staged {
    /// A committed engine blob of its own until the import adopts (or a delete drops) it.
    pub blob: String,
    pub size: u64,
    pub md5: Option<String>,
    /// The multihash under `hashing_algorithm` as it was when the data was staged.
    #[serde(default)]
    pub os_hash: Option<Multihash>,
    /// What records staged before `hashing_algorithm` existed hold: a SHA-512 value.
    #[serde(default, rename = "sha512", skip_serializing_if = "Option::is_none")]
    pub legacy_sha512: Option<String>,
    pub findings: super::inspect::Findings,
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
    /// A record as stored in `Catalog::Images`.
    pub fn decode(bytes: &[u8]) -> Option<ImageRecord> {
        serde_json::from_slice(bytes).ok()
    }

    pub fn new(id: String, owner: Option<String>, stamp: String) -> ImageRecord {
        ImageRecord {
            id,
            name: None,
            status: "queued".into(),
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
            deleted_at: None,
            store: None,
            copies: Vec::new(),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("status".into(), json!(self.status));
        m.insert("visibility".into(), json!(self.visibility));
        m.insert("protected".into(), json!(self.protected));
        m.insert("os_hidden".into(), json!(self.os_hidden));
        m.insert("checksum".into(), json!(self.checksum));
        m.insert("os_hash_algo".into(), json!(self.os_hash_algo));
        m.insert("os_hash_value".into(), json!(self.os_hash_value));
        m.insert("size".into(), json!(self.size));
        m.insert("virtual_size".into(), json!(self.virtual_size));
        m.insert("disk_format".into(), json!(self.disk_format));
        m.insert("container_format".into(), json!(self.container_format));
        m.insert("min_disk".into(), json!(self.min_disk));
        m.insert("min_ram".into(), json!(self.min_ram));
        m.insert("owner".into(), json!(self.owner));
        m.insert("created_at".into(), json!(self.created_at));
        m.insert("updated_at".into(), json!(self.updated_at));
        m.insert("tags".into(), json!(self.tags));
        for (k, v) in &self.extra {
            m.insert(k.clone(), json!(v));
        }
        let stores = self.store_ids();
        // Upstream hides where a deactivated image's data is.
        if !stores.is_empty() && self.status != "deactivated" {
            m.insert("stores".into(), json!(stores.join(",")));
        }
        m.insert("self".into(), json!(format!("/v2/images/{}", self.id)));
        m.insert("file".into(), json!(format!("/v2/images/{}/file", self.id)));
        m.insert("schema".into(), json!("/v2/schemas/image"));
        Value::Object(m)
    }

    /// Where the data is: (store id, blob), the first location first.
    pub fn locations(&self) -> Vec<(Option<&str>, BlobId)> {
        let mut out = Vec::new();
        if let Some(b) = self.blob.as_deref().and_then(|b| b.parse().ok()) {
            out.push((self.store.as_deref(), b));
        }
        for c in &self.copies {
            if let Ok(b) = c.blob.parse() {
                out.push((Some(c.store.as_str()), b));
            }
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
        if matches!(self.status.as_str(), "pending_delete" | "deleted") {
            return false;
        }
        caller.is_admin()
            || self.is_owner(caller)
            || matches!(self.visibility.as_str(), "public" | "community")
            || (self.visibility == "shared" && self.member(caller.project.as_deref()).is_some())
    }

    /// The one place a property is validated and set. `creating` distinguishes POST (where
    /// `id` may be chosen) from PATCH (where the formats are frozen once data exists).
    /// Sets `os_hash_algo` and `os_hash_value` together (both null without a multihash).
    pub fn set_multihash(&mut self, h: Option<Multihash>) {
        let (algo, value) = h.map(|h| (h.algo, h.value)).unzip();
        self.os_hash_algo = algo;
        self.os_hash_value = value;
    }

    pub fn set_property(
        &mut self,
        key: &str,
        value: &Value,
        caller: &Caller,
        rules: &EditRules<'_>,
    ) -> Result<(), ApiError> {
        match key {
            "id" if rules.creating => match value.as_str().filter(|s| valid_uuid(s)) {
                Some(id) => self.id = id.to_ascii_lowercase(),
                None => return Err(schema_error("id", value)),
            },
            "name" => self.name = string_or_null(value, key, 255)?,
            "visibility" => {
                let vis = match value.as_str() {
                    Some(v) if VISIBILITIES.contains(&v) => v.to_string(),
                    _ => return Err(schema_error(key, value)),
                };
                let action = match vis.as_str() {
                    "public" => Some("publicize_image"),
                    "community" => Some("communitize_image"),
                    _ => None,
                };
                if let Some(action) = action.filter(|_| vis != self.visibility) {
                    let target = super::image_target(self, caller);
                    if !rules.policy.allows(action, caller, &target) {
                        return Err(ApiError::forbidden(format!(
                            "You are not authorized to complete {action} action."
                        )));
                    }
                }
                self.visibility = vis;
            }
            "protected" | "os_hidden" => {
                let b = value.as_bool().ok_or_else(|| schema_error(key, value))?;
                if key == "protected" {
                    self.protected = b
                } else {
                    self.os_hidden = b
                }
            }
            "disk_format" | "container_format" => {
                let allowed = if key == "disk_format" {
                    &rules.opts.disk_formats
                } else {
                    &rules.opts.container_formats
                };
                let v = match value {
                    Value::Null => None,
                    Value::String(s) if allowed.iter().any(|a| a == s) => Some(s.clone()),
                    _ => return Err(schema_error(key, value)),
                };
                if !rules.creating && !matches!(self.status.as_str(), "queued" | "importing") {
                    let current = if key == "disk_format" {
                        &self.disk_format
                    } else {
                        &self.container_format
                    };
                    if *current != v {
                        return Err(ApiError::forbidden(format!(
                            "Attribute {key} can be only replaced for a queued image."
                        )));
                    }
                }
                if key == "disk_format" {
                    self.disk_format = v
                } else {
                    self.container_format = v
                }
            }
            "min_disk" | "min_ram" => {
                let n = value
                    .as_i64()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| schema_error(key, value))?;
                if key == "min_disk" {
                    self.min_disk = n
                } else {
                    self.min_ram = n
                }
            }
            "owner" => {
                let owner = string_or_null(value, key, 255)?;
                let target = super::image_target(self, caller);
                if owner != self.owner && !rules.policy.allows("set_image_owner", caller, &target) {
                    return Err(ApiError::forbidden(if rules.creating {
                        "You are not permitted to create images owned by another project."
                    } else {
                        "Attribute 'owner' can only be changed by an administrator."
                    }));
                }
                self.owner = owner;
            }
            "tags" => {
                let tags = value.as_array().ok_or_else(|| schema_error(key, value))?;
                let mut set: Vec<String> = Vec::new();
                for t in tags {
                    let t = t
                        .as_str()
                        .filter(|t| t.chars().count() <= 255)
                        .ok_or_else(|| schema_error(key, value))?;
                    if !set.iter().any(|x| x == t) {
                        set.push(t.to_string());
                    }
                }
                if set.len() > rules.opts.image_tag_quota {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "Maximum number of tags exceeded ({})",
                            rules.opts.image_tag_quota
                        ),
                    ));
                }
                self.tags = set;
            }
            k => {
                check_writable(k)?;
                if k.chars().count() > 255 {
                    return Err(ApiError::bad(
                        "Provided object does not match schema 'image': property names are limited to 255 characters",
                    ));
                }
                let s = rules.schema.validate_extra(k, value)?;
                match s {
                    Some(s) => {
                        if !self.extra.contains_key(k)
                            && self.extra.len() >= rules.opts.image_property_quota
                        {
                            return Err(ApiError::new(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                format!(
                                    "Maximum number of image properties exceeded ({})",
                                    rules.opts.image_property_quota
                                ),
                            ));
                        }
                        self.extra.insert(k.to_string(), s);
                    }
                    // A schema property that allows null: null removes it.
                    None => {
                        self.extra.remove(k);
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a property edit is checked against.
pub struct EditRules<'a> {
    pub creating: bool,
    pub policy: &'a super::policy::Policy,
    pub opts: &'a GlanceOptions,
    pub schema: &'a ImageSchema,
}

/// 403 for read-only and reserved names (checked before any value validation).
pub fn check_writable(key: &str) -> Result<(), ApiError> {
    if READ_ONLY.contains(&key) || key == "id" {
        return Err(ApiError::forbidden(format!(
            "Attribute '{key}' is read-only."
        )));
    }
    if RESERVED.contains(&key) || key.starts_with("os_glance") {
        return Err(ApiError::forbidden(format!(
            "Attribute '{key}' is reserved."
        )));
    }
    Ok(())
}

pub fn schema_error(key: &str, value: &Value) -> ApiError {
    ApiError::bad(format!(
        "Provided object does not match schema 'image': {value} is not valid for '{key}'"
    ))
}

fn string_or_null(v: &Value, key: &str, max: usize) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= max => Ok(Some(s.clone())),
        _ => Err(schema_error(key, v)),
    }
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
