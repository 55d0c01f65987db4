//! The Glance Images API v2 front end: versions, healthcheck, images (create, show, list
//! with upstream's filters and paging, JSON-patch update, delete), data upload/download
//! with the upstream status machine and one-pass checksums, tags, members, deactivation,
//! schemas and discovery. Identity is `noauth` for now: the identity headers, or a
//! `USER:PROJECT[:ROLES]` token, are trusted (see `Caller::from_headers`).

mod cache;
mod cors;
mod data;
mod discovery;
#[doc(hidden)]
pub mod fuzzing;
mod image;
mod import;
mod keystone;
mod listing;
mod locations;
mod members;
mod notify;
mod patch;
mod record;
pub mod recovery;
mod schema;
pub mod scrubber;
mod tasks;
mod uri_filter;

use std::sync::Arc;

use crate::request_body::RequestBody;
use bytes::Bytes;
use glint_storage::Store;
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};
use serde_json::{Map, Value};

use crate::body::{self, Body};
use crate::config::{Config, GlanceOptions};
pub(crate) use crate::images::caller::expand_roles;
pub use crate::images::policy::{self, image_target};
pub use crate::images::{inspect, stores, Caller, ImageRecord, ImageStatus};
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
        Ok(Glance {
            background,
            images: crate::images::ImageRepo::new(store.clone(), policy.clone()),
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

impl Caller {
    /// noauth identity, first match wins: the `X-Project-Id` (or `X-Tenant-Id`) header
    /// with `X-User-Id` and `X-Roles` (default `member`); a token `USER:PROJECT[:ROLES]`
    /// (user `admin` defaults to the admin role); otherwise the admin of project `admin`.
    /// The same convention as the reference Glance's noauth filter, so the same clients
    /// and golden requests work against both.
    pub fn from_headers(headers: &http::HeaderMap, request_id: &str) -> Caller {
        let request_id = request_id.to_string();
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let roles_hdr = h("x-roles");
        let roles_from = |default: &str| {
            let list = roles_hdr.clone().unwrap_or_else(|| default.to_string());
            expand_roles(list.split(','))
        };
        if let Some(project) = h("x-project-id").or_else(|| h("x-tenant-id")) {
            return Caller {
                request_id,
                user: Some(h("x-user-id").unwrap_or_else(|| format!("user-{project}"))),
                project: Some(project),
                roles: roles_from("member"),
            };
        }
        let token = h("x-auth-token")
            .map(|t| {
                percent_encoding::percent_decode_str(&t)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        let parts: Vec<&str> = token.split(':').collect();
        if parts.len() >= 2 && !parts[0].is_empty() && !parts[1].is_empty() {
            let default = match parts.get(2) {
                Some(r) if !r.is_empty() => r.to_string(),
                _ if parts[0] == "admin" => "admin".into(),
                _ => "member".into(),
            };
            return Caller {
                request_id,
                user: Some(parts[0].to_string()),
                project: Some(parts[1].to_string()),
                roles: roles_from(&default),
            };
        }
        Caller {
            request_id,
            user: Some("admin".into()),
            project: Some("admin".into()),
            roles: roles_from("admin"),
        }
    }
}

/// A Glance error: status and explanation, rendered as upstream renders it (plain text, or
/// JSON when the client asks for it).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("No image found with ID {what}"),
        )
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }
    pub fn method_not_allowed(allow: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method specified is not allowed for this resource.",
        )
        .with_header("allow", allow)
    }
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.headers
            .push((HeaderName::from_static(name), value.into()));
        self
    }
}

impl From<glint_storage::StoreError> for ApiError {
    fn from(e: glint_storage::StoreError) -> ApiError {
        use glint_storage::StoreError as E;
        match e {
            E::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Image exceeds the storage quota: the size limit is {limit} bytes"),
            ),
            E::StorageFull { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Image storage media is full")
            }
            E::Input(e) if e.is::<crate::request_body::BodyStalled>() => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "The image data stream stalled: no data arrived within client_socket_timeout",
            ),
            E::Input(_) => ApiError::bad("Error in the image data stream: the upload ended early"),
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
        }
    }
}

/// The Images API's answer to a refused read of image data.
pub fn denied(d: crate::images::access::Denied, id: &str) -> ApiError {
    match d {
        crate::images::access::Denied::NotFound => ApiError::not_found(id),
        crate::images::access::Denied::Forbidden(why) => ApiError::forbidden(why),
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

/// Upstream's WebOb error page: JSON for `Accept: application/json`, else plain text.
fn error_response(e: &ApiError, accept: Option<&str>) -> Response<Body> {
    let reason = e.status.canonical_reason().unwrap_or("");
    let code = format!("{} {}", e.status.as_u16(), reason);
    let (content_type, text) = if accept.is_some_and(|a| a.contains("application/json")) {
        let doc = serde_json::json!({
            "message": format!("{}<br /><br />\n\n\n", e.message),
            "code": code,
            "title": reason,
        });
        ("application/json", doc.to_string())
    } else {
        (
            "text/plain; charset=UTF-8",
            format!("{code}\n\n{}\n\n   ", e.message),
        )
    };
    let mut resp = Response::builder()
        .status(e.status)
        .header("content-type", content_type)
        .body(body::full(text))
        .expect("valid response");
    for (name, value) in &e.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(name.clone(), v);
        }
    }
    resp
}

/// The versions document: as upstream lists it without an image cache directory, with
/// 2.8–2.13 (the multiple-store additions) when several stores are enabled.
fn versions(base: &str, multi: bool) -> Value {
    let href = format!("{base}/v2/");
    let ids: &[&str] = if multi {
        &[
            "v2.17", "v2.15", "v2.13", "v2.12", "v2.11", "v2.10", "v2.9", "v2.8", "v2.7", "v2.6",
            "v2.5", "v2.4", "v2.3", "v2.2", "v2.1", "v2.0",
        ]
    } else {
        &[
            "v2.17", "v2.15", "v2.9", "v2.7", "v2.6", "v2.5", "v2.4", "v2.3", "v2.2", "v2.1",
            "v2.0",
        ]
    };
    let list: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::json!({
                "id": v,
                "status": if i == 0 { "CURRENT" } else { "SUPPORTED" },
                "links": [{"rel": "self", "href": href}],
            })
        })
        .collect();
    serde_json::json!({ "versions": list })
}

/// The URL the client reached the API at (`scheme://host`, proxy headers applied), for the
/// absolute URLs the API writes.
#[derive(Clone, Debug)]
pub struct BaseUrl(pub String);

/// Longest client-supplied `X-Openstack-Request-Id` adopted (oslo's `max_request_id_length`).
const MAX_REQUEST_ID: usize = 64;

pub async fn handle(g: Arc<Glance>, req: http::Request<RequestBody>) -> Response<Body> {
    let (mut parts, incoming) = req.into_parts();
    let path = parts.uri.path().to_string();
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    };
    let opts = g.opts();
    if let Some(resp) = cors::preflight(&opts.cors, &parts.method, &parts.headers) {
        return resp;
    }
    let mut host = header("host").unwrap_or_else(|| "localhost".into());
    let mut scheme = "http".to_string();
    if opts.proxy_headers {
        // oslo's http_proxy_to_wsgi: the URLs the API writes name what the client used.
        if let Some(p) = header("x-forwarded-proto") {
            scheme = p.split(',').next().unwrap_or("http").trim().to_string();
        }
        if let Some(h) = header("x-forwarded-host") {
            host = h.split(',').next().unwrap_or(&host).trim().to_string();
        }
    }
    let base = format!("{scheme}://{host}");
    parts.extensions.insert(BaseUrl(base.clone()));
    let accept = header("accept");
    let request_id = match header("x-openstack-request-id") {
        Some(id) if id.len() > MAX_REQUEST_ID => {
            return error_response(
                &ApiError::new(
                    StatusCode::from_u16(431).expect("valid status"),
                    "The request id is too long.",
                ),
                accept.as_deref(),
            );
        }
        Some(id) => id,
        None => format!("req-{}", uuid_v4()),
    };
    // Keystone mode: everything under /v2 needs a valid token (the version documents and
    // the healthcheck do not).
    let keystone_caller = match &g.keystone {
        Some(ks) if path == "/v2" || path.starts_with("/v2/") => {
            match ks.caller(&parts.headers, &request_id).await {
                Ok(c) => Some(c),
                Err(e) => {
                    let mut resp = error_response(&e, accept.as_deref());
                    if let Ok(v) = HeaderValue::from_str(&request_id) {
                        resp.headers_mut().insert("x-openstack-request-id", v);
                    }
                    return resp;
                }
            }
        }
        _ => None,
    };
    let result = match (parts.method.clone(), path.as_str()) {
        (Method::GET, "/") => Ok(json(
            StatusCode::MULTIPLE_CHOICES,
            &versions(&base, g.stores.multi()),
        )),
        (Method::GET, "/versions") => Ok(json(StatusCode::OK, &versions(&base, g.stores.multi()))),
        (Method::GET, "/healthcheck") => Ok(Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/plain")
            .body(body::full(Bytes::from_static(b"OK")))
            .expect("valid")),
        (_, "/v2") => Ok(Response::builder()
            .status(StatusCode::FOUND)
            .header("location", format!("{base}/v2/"))
            .header("content-type", "text/plain; charset=utf8")
            .body(body::empty())
            .expect("valid")),
        _ if path.starts_with("/v2/") => {
            let caller = keystone_caller
                .unwrap_or_else(|| Caller::from_headers(&parts.headers, &request_id));
            image::route(&g, &caller, &parts, incoming).await
        }
        // An unknown version: the versions document, as upstream's negotiation answers.
        _ if path.starts_with("/v") && path[2..].starts_with(|c: char| c.is_ascii_digit()) => {
            Ok(json(
                StatusCode::MULTIPLE_CHOICES,
                &versions(&base, g.stores.multi()),
            ))
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        )),
    };
    let mut resp = result.unwrap_or_else(|e| error_response(&e, accept.as_deref()));
    if path.starts_with("/v2") {
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-openstack-request-id", v);
        }
    }
    cors::decorate(&opts.cors, &parts.headers, &mut resp);
    resp
}

pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(pairs: &[(&'static str, &'static str)]) -> Caller {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        Caller::from_headers(&h, "req-test")
    }

    #[test]
    fn noauth_identity() {
        let c = caller(&[("x-auth-token", "demo:demo")]);
        assert_eq!(c.project.as_deref(), Some("demo"));
        assert_eq!(c.roles, vec!["member", "reader"]);
        let c = caller(&[("x-auth-token", "demo_reader%3Ademo%3Areader")]);
        assert_eq!((c.project.as_deref(), c.is_admin()), (Some("demo"), false));
        assert!(!c.has_role("member"));
        let c = caller(&[("x-auth-token", "admin:admin")]);
        assert!(c.is_admin() && c.has_role("reader"));
        let c = caller(&[("x-project-id", "p1"), ("x-roles", "reader")]);
        assert_eq!(c.roles, vec!["reader"]);
        assert!(caller(&[]).is_admin());
    }
}
