//! Metadata definitions (the Images API's `/v2/metadefs`): the catalog of properties,
//! objects and tags that describe what images, flavors and volumes may carry (Nova's hw_*
//! and os_* properties among them), grouped in namespaces and associated with resource
//! types. The records and their storage live here; the API that serves them is
//! `glance/metadefs.rs`.

pub mod changes;
pub mod files;
pub mod model;
pub mod repo;

pub use changes::{MetadefError, Metadefs};
pub use model::{Association, Kind, Namespace, Object, Property, ResourceType, Tag};
