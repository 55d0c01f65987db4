//! `/v2/schemas/*`: the JSON schemas glanceclient downloads before most commands and
//! validates against. The image schema is upstream's base properties (with the configured
//! format lists) plus the operator's extra properties from `schema-image.json`
//! (`is_base: false`), which are also what extra property values are validated against.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{json, Map, Value};

use super::ApiError;
use crate::config::GlanceOptions;

const IMAGE: &str = include_str!("schemas/image.json");
const IMAGES: &str = include_str!("schemas/images.json");
const MEMBER: &str = include_str!("schemas/member.json");
const MEMBERS: &str = include_str!("schemas/members.json");
const TASK: &str = include_str!("schemas/task.json");
const TASKS: &str = include_str!("schemas/tasks.json");
/// The metadefs schemas, as upstream Glance 33 serves them at `/v2/schemas/metadefs/*`.
const METADEF_SCHEMAS: &[(&str, &str)] = &[
    (
        "metadefs/namespace",
        include_str!("schemas/metadefs-namespace.json"),
    ),
    (
        "metadefs/namespaces",
        include_str!("schemas/metadefs-namespaces.json"),
    ),
    (
        "metadefs/resource_type",
        include_str!("schemas/metadefs-resource_type.json"),
    ),
    (
        "metadefs/resource_types",
        include_str!("schemas/metadefs-resource_types.json"),
    ),
    (
        "metadefs/property",
        include_str!("schemas/metadefs-property.json"),
    ),
    (
        "metadefs/properties",
        include_str!("schemas/metadefs-properties.json"),
    ),
    (
        "metadefs/object",
        include_str!("schemas/metadefs-object.json"),
    ),
    (
        "metadefs/objects",
        include_str!("schemas/metadefs-objects.json"),
    ),
    ("metadefs/tag", include_str!("schemas/metadefs-tag.json")),
    ("metadefs/tags", include_str!("schemas/metadefs-tags.json")),
];
/// The extra properties every packaged Glance ships; `[glint] image_schema_file` overrides.
pub const DEFAULT_EXTRA_PROPERTIES: &str = include_str!("../../etc/schema-image.json");

/// One operator-defined property and its compiled checks.
struct ExtraProperty {
    nullable: bool,
    enumeration: Option<Vec<Value>>,
    pattern: Option<Regex>,
    max_length: Option<usize>,
}

pub struct ImageSchema {
    documents: BTreeMap<&'static str, Value>,
    extras: BTreeMap<String, ExtraProperty>,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("image schema file: {0}")]
    Read(#[from] std::io::Error),
    #[error("notifications file: {0}")]
    Notifications(std::io::Error),
    #[error("{0}")]
    Policy(String),
    #[error("image schema file is not a JSON object of properties: {0}")]
    Parse(String),
}

impl ImageSchema {
    pub fn load(opts: &GlanceOptions) -> Result<ImageSchema, SchemaError> {
        let extra_text = match &opts.schema_file {
            Some(path) => std::fs::read_to_string(path)?,
            None => DEFAULT_EXTRA_PROPERTIES.to_string(),
        };
        let extra: Map<String, Value> =
            serde_json::from_str(&extra_text).map_err(|e| SchemaError::Parse(e.to_string()))?;
        let parse = |s: &str| serde_json::from_str::<Value>(s).expect("built-in schema is JSON");
        let mut image = parse(IMAGE);
        let formats = |list: &[String]| {
            let mut v = vec![Value::Null];
            v.extend(list.iter().map(|f| json!(f)));
            Value::Array(v)
        };
        image["properties"]["disk_format"]["enum"] = formats(&opts.disk_formats);
        image["properties"]["container_format"]["enum"] = formats(&opts.container_formats);
        let mut extras = BTreeMap::new();
        for (name, def) in &extra {
            let mut def = def.clone();
            def["is_base"] = json!(false);
            let ty = &def["type"];
            let nullable = ty.as_array().is_some_and(|a| a.contains(&json!("null")));
            let pattern = match def["pattern"].as_str() {
                Some(p) => Some(Regex::new(p).map_err(|e| SchemaError::Parse(e.to_string()))?),
                None => None,
            };
            extras.insert(
                name.clone(),
                ExtraProperty {
                    nullable,
                    enumeration: def["enum"].as_array().cloned(),
                    pattern,
                    max_length: def["maxLength"].as_u64().map(|n| n as usize),
                },
            );
            image["properties"][name] = def;
        }
        let mut images = parse(IMAGES);
        images["properties"]["images"]["items"] = image.clone();
        let mut documents = BTreeMap::new();
        documents.insert("image", image);
        documents.insert("images", images);
        documents.insert("member", parse(MEMBER));
        documents.insert("members", parse(MEMBERS));
        documents.insert("task", parse(TASK));
        documents.insert("tasks", parse(TASKS));
        for (name, doc) in METADEF_SCHEMAS {
            documents.insert(name, parse(doc));
        }
        Ok(ImageSchema { documents, extras })
    }

    /// The document served at `/v2/schemas/{name}`.
    pub fn document(&self, name: &str) -> Option<&Value> {
        self.documents.get(name)
    }

    /// Validates an extra property's value: `Some(string)` to store, `None` to clear (a
    /// nullable schema property set to null). Properties outside the schema file must be
    /// strings (`additionalProperties: {"type": "string"}`).
    pub fn validate_extra(&self, key: &str, value: &Value) -> Result<Option<String>, ApiError> {
        let bad = || {
            ApiError::bad(format!(
                "Provided object does not match schema 'image': {value} is not valid under the schema of '{key}'"
            ))
        };
        let Some(def) = self.extras.get(key) else {
            return value.as_str().map(|s| Some(s.to_string())).ok_or_else(bad);
        };
        let s = match value {
            Value::Null if def.nullable => return Ok(None),
            Value::String(s) => s,
            _ => return Err(bad()),
        };
        if def.enumeration.as_ref().is_some_and(|e| !e.contains(value))
            || def.pattern.as_ref().is_some_and(|p| !p.is_match(s))
            || def.max_length.is_some_and(|m| s.chars().count() > m)
        {
            return Err(bad());
        }
        Ok(Some(s.clone()))
    }
}
