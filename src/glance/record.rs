//! The Images API's side of the image record: its JSON form, and the one place where a
//! property value is validated and applied (create and PATCH share it, so both answer the
//! same status for the same bad value).

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::schema::ImageSchema;
use super::{ApiError, Caller};
use crate::config::GlanceOptions;
pub use crate::images::record::{
    now, valid_uuid, ImageRecord, Member, Multihash, Staged, StoredCopy,
};
use crate::images::ImageStatus;

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

impl ImageRecord {
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
        if !stores.is_empty() && self.status != ImageStatus::Deactivated {
            m.insert("stores".into(), json!(stores.join(",")));
        }
        m.insert("self".into(), json!(format!("/v2/images/{}", self.id)));
        m.insert("file".into(), json!(format!("/v2/images/{}/file", self.id)));
        m.insert("schema".into(), json!("/v2/schemas/image"));
        Value::Object(m)
    }

    /// The one place a property is validated and set. `creating` distinguishes POST (where
    /// `id` may be chosen) from PATCH (where the formats are frozen once data exists).
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
            "visibility" => self.set_visibility(value, caller, rules)?,
            "protected" => {
                self.protected = value.as_bool().ok_or_else(|| schema_error(key, value))?
            }
            "os_hidden" => {
                self.os_hidden = value.as_bool().ok_or_else(|| schema_error(key, value))?
            }
            "disk_format" | "container_format" => self.set_format(key, value, rules)?,
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
            "owner" => self.set_owner(value, caller, rules)?,
            "tags" => self.set_tags(value, rules)?,
            k => self.set_extra(k, value, rules)?,
        }
        Ok(())
    }

    /// `visibility`; making an image public or community is a policy decision of its own.
    fn set_visibility(
        &mut self,
        value: &Value,
        caller: &Caller,
        rules: &EditRules<'_>,
    ) -> Result<(), ApiError> {
        let vis = match value.as_str() {
            Some(v) if VISIBILITIES.contains(&v) => v.to_string(),
            _ => return Err(schema_error("visibility", value)),
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
        Ok(())
    }

    /// `disk_format` / `container_format`: one of the configured formats, frozen once the
    /// image has data.
    fn set_format(
        &mut self,
        key: &str,
        value: &Value,
        rules: &EditRules<'_>,
    ) -> Result<(), ApiError> {
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
        let slot = if key == "disk_format" {
            &mut self.disk_format
        } else {
            &mut self.container_format
        };
        let frozen =
            !rules.creating && !matches!(self.status, ImageStatus::Queued | ImageStatus::Importing);
        if frozen && *slot != v {
            return Err(ApiError::forbidden(format!(
                "Attribute {key} can be only replaced for a queued image."
            )));
        }
        *slot = v;
        Ok(())
    }

    /// `owner`: changing it is for whom `set_image_owner` allows.
    fn set_owner(
        &mut self,
        value: &Value,
        caller: &Caller,
        rules: &EditRules<'_>,
    ) -> Result<(), ApiError> {
        let owner = string_or_null(value, "owner", 255)?;
        let target = super::image_target(self, caller);
        if owner != self.owner && !rules.policy.allows("set_image_owner", caller, &target) {
            return Err(ApiError::forbidden(if rules.creating {
                "You are not permitted to create images owned by another project."
            } else {
                "Attribute 'owner' can only be changed by an administrator."
            }));
        }
        self.owner = owner;
        Ok(())
    }

    /// `tags`: strings of at most 255 characters, duplicates dropped, within the quota.
    fn set_tags(&mut self, value: &Value, rules: &EditRules<'_>) -> Result<(), ApiError> {
        let tags = value
            .as_array()
            .ok_or_else(|| schema_error("tags", value))?;
        let mut set: Vec<String> = Vec::new();
        for t in tags {
            let t = t
                .as_str()
                .filter(|t| t.chars().count() <= 255)
                .ok_or_else(|| schema_error("tags", value))?;
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
        Ok(())
    }

    /// Any other property: writable, named within 255 characters, valid under the schema's
    /// extra properties, within the property quota; null removes a nullable one.
    fn set_extra(&mut self, k: &str, value: &Value, rules: &EditRules<'_>) -> Result<(), ApiError> {
        check_writable(k)?;
        if k.chars().count() > 255 {
            return Err(ApiError::bad(
                "Provided object does not match schema 'image': property names are limited to 255 characters",
            ));
        }
        let Some(s) = rules.schema.validate_extra(k, value)? else {
            self.extra.remove(k);
            return Ok(());
        };
        if !self.extra.contains_key(k) && self.extra.len() >= rules.opts.image_property_quota {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Maximum number of image properties exceeded ({})",
                    rules.opts.image_property_quota
                ),
            ));
        }
        self.extra.insert(k.to_string(), s);
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
