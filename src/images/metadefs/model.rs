//! What a metadata-definitions catalog holds, as upstream Glance models it: namespaces (named
//! groups of definitions with a visibility, an owner and a protected flag), and in each
//! namespace its properties (JSON-schema property definitions), objects (named groups of
//! properties), tags, and associations with resource types (`OS::Glance::Image`,
//! `OS::Nova::Flavor`, …, each with an optional property-name prefix).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The record format this build writes (and the newest it reads).
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Namespace {
    #[serde(default)]
    pub format: u32,
    pub namespace: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// `public` or `private`; None for a definition file that names none (upstream stores
    /// NULL: shown as `private`, matched by neither visibility filter).
    pub visibility: Option<String>,
    pub protected: bool,
    pub owner: Option<String>,
    pub created_at: String,
    /// None until changed through the API (definitions loaded from files have none).
    pub updated_at: Option<String>,
}

/// A property definition: its name and its JSON-schema object (type, title, enum, …) as
/// given, which is what the API answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Property {
    #[serde(default)]
    pub format: u32,
    pub name: String,
    pub schema: Map<String, Value>,
    pub created_at: String,
    /// None until changed through the API (definitions loaded from files have none).
    pub updated_at: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Object {
    #[serde(default)]
    pub format: u32,
    /// Creation order (lists answer in it, as upstream's database ids order them).
    #[serde(default)]
    pub position: u64,
    pub name: String,
    pub description: Option<String>,
    pub required: Vec<String>,
    /// Property name → its JSON-schema object.
    pub properties: Map<String, Value>,
    pub created_at: String,
    /// None until changed through the API (definitions loaded from files have none).
    pub updated_at: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Tag {
    #[serde(default)]
    pub format: u32,
    /// Creation order (lists answer in it, as upstream's database ids order them).
    #[serde(default)]
    pub position: u64,
    pub name: String,
    pub created_at: String,
    /// None until changed through the API (definitions loaded from files have none).
    pub updated_at: Option<String>,
}

/// A kind of resource definitions apply to; created when first associated.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResourceType {
    #[serde(default)]
    pub format: u32,
    /// Creation order (lists answer in it, as upstream's database ids order them).
    #[serde(default)]
    pub position: u64,
    pub name: String,
    pub protected: bool,
    pub created_at: String,
    /// None until changed through the API (definitions loaded from files have none).
    pub updated_at: Option<String>,
}

/// A namespace's association with a resource type.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Association {
    #[serde(default)]
    pub format: u32,
    /// Creation order (lists answer in it, as upstream's database ids order them).
    #[serde(default)]
    pub position: u64,
    /// The resource type's name.
    pub name: String,
    pub prefix: Option<String>,
    pub properties_target: Option<String>,
    pub created_at: String,
    /// None until changed through the API (definitions loaded from files have none).
    pub updated_at: Option<String>,
}

/// A position after every earlier one: nanoseconds since the epoch, plus `offset` for the
/// records created together.
pub fn position(offset: usize) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos + offset as u64
}

/// The kinds of records a namespace holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The namespace itself (in refusals only; it is not an item).
    Namespace,
    Property,
    Object,
    Tag,
    Association,
}

impl Namespace {
    /// The visibility as the API shows it.
    pub fn shown_visibility(&self) -> &str {
        self.visibility.as_deref().unwrap_or("private")
    }

    /// Whether the catalog shows it to `caller` at all (upstream's database layer: admins
    /// see every namespace, others the public ones and their project's own).
    pub fn visible_to(&self, caller: &crate::images::Caller) -> bool {
        caller.is_admin()
            || self.visibility.as_deref() == Some("public")
            || (self.owner.is_some() && self.owner == caller.project)
    }
}

impl Kind {
    pub(super) fn tag(self) -> u8 {
        match self {
            Kind::Namespace => b'n',
            Kind::Property => b'p',
            Kind::Object => b'o',
            Kind::Tag => b't',
            Kind::Association => b'a',
        }
    }
}
