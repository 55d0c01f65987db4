//! The Glance Images API v2 front end: versions, healthcheck, images (create, show, list
//! with upstream's filters and paging, JSON-patch update, delete), data upload/download
//! with the upstream status machine and one-pass checksums, tags, members, deactivation,
//! schemas and discovery. Identity comes from Keystone tokens (`keystone.rs`) or, in noauth
//! mode, from trusted headers or `USER:PROJECT[:ROLES]` tokens (`identity.rs`). What an image
//! is, who may see or read it, and where records live is the images domain's (`crate::images`).

mod cache;
mod convert;
mod cors;
mod data;
mod discovery;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod identity;
mod image;
mod import;
mod keystone;
mod listing;
mod locations;
mod members;
mod metadef_items;
mod metadefs;
mod notify;
pub mod operation;
mod patch;
mod record;
pub mod recovery;
mod router;
mod schema;
pub mod scrubber;
mod tasks;
mod uri_filter;

use std::sync::Arc;

use crate::request_body::RequestBody;

use glint_storage::Store;
use http::{Response, StatusCode};
use serde_json::{Map, Value};

use crate::body::{self, Body};
use crate::config::{Config, GlanceOptions};
pub(crate) use crate::images::caller::expand_roles;
pub use crate::images::policy::{self, image_target};
pub use crate::images::{inspect, stores, Caller, ImageRecord, ImageStatus};
pub use error::{denied, ApiError};
pub use router::{handle, BaseUrl};
pub use schema::{ImageSchema, SchemaError};

pub struct Glance {
    /// The main store: every catalog, and the data of the default backend.
    pub store: Store,
    pub stores: Arc<stores::Stores>,
    pub cfg: Arc<Config>,
    pub schema: Arc<ImageSchema>,
    /// Keystone token validation; None in noauth mode.
    keystone: Option<keystone::Keystone>,
    pub notifier: notify::Notifier,
    pub policy: Arc<policy::Policy>,
    /// The image records, with the policy that guards them.
    pub images: crate::images::ImageRepo,
    /// The owner of imports and other work that outlives a request.
    pub background: crate::shutdown::Background,
}

impl Glance {
    pub fn new(
        stores: Arc<stores::Stores>,
        cfg: Arc<Config>,
        policy: Arc<policy::Policy>,
        background: crate::shutdown::Background,
    ) -> Result<Glance, SchemaError> {
        let store = stores.main().clone();
        let schema = Arc::new(ImageSchema::load(&cfg.glance)?);
        let keystone = cfg.glance.keystone.clone().map(keystone::Keystone::new);
        let notifier = notify::Notifier::open(cfg.glance.notifications_file.as_deref())
            .map_err(SchemaError::Notifications)?;
        if let Some(c) = &cfg.glance.image_conversion {
            convert::clean_work_dir(c);
        }
        Ok(Glance {
            background,
            images: crate::images::ImageRepo::new(stores.clone(), policy.clone()),
            store,
            stores,
            cfg,
            schema,
            keystone,
            notifier,
            policy,
        })
    }

    /// Whether the policy lets `caller` do `action` to `rec`.
    pub fn allowed(&self, action: &str, caller: &Caller, rec: &ImageRecord) -> bool {
        self.policy
            .allows(action, caller, &image_target(rec, caller))
    }

    /// 403 unless the policy lets `caller` do `action` to `rec`.
    pub fn enforce(
        &self,
        action: &str,
        caller: &Caller,
        rec: &ImageRecord,
    ) -> Result<(), ApiError> {
        if self.allowed(action, caller, rec) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "You are not authorized to complete {action} action."
            )))
        }
    }

    /// 403 unless the policy lets `caller` do `action`, an action on the caller's own
    /// project (listing, tasks, cache).
    pub fn enforce_own(&self, action: &str, caller: &Caller) -> Result<(), ApiError> {
        let mut t = policy::Target::new();
        if let Some(p) = &caller.project {
            t.insert("project_id", p.clone());
        }
        if self.policy.allows(action, caller, &t) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "You are not authorized to complete {action} action."
            )))
        }
    }

    pub fn noauth(&self) -> bool {
        self.keystone.is_none()
    }

    pub fn opts(&self) -> &GlanceOptions {
        &self.cfg.glance
    }
}

pub type ApiResult = Result<Response<Body>, ApiError>;

pub fn json(status: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body::full(serde_json::to_vec(value).expect("serializable")))
        .expect("valid response")
}

pub fn no_content() -> ApiResult {
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(body::empty())
        .expect("valid"))
}

/// A JSON object request body (400 for anything else; an empty body is `{}`).
pub async fn read_json_body(incoming: RequestBody) -> Result<Map<String, Value>, ApiError> {
    let raw = image::read_body(incoming).await?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad("The request body must be a JSON object.")),
        Err(_) => Err(ApiError::bad("Malformed JSON in request body.")),
    }
}

pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format_uuid(b)
}

/// 16 bytes in the UUID text form (8-4-4-4-12 lowercase hex digits).
pub fn format_uuid(b: [u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
