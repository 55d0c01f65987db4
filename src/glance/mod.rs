//! The Glance Images API v2 front end (issue 4, first slice): versions, healthcheck, images
//! create / show / list / delete, upload and download with the upstream status machine
//! (queued → saving → active, a failed upload back to queued with nothing left behind) and
//! checksums (`checksum` = MD5, `os_hash_algo`/`os_hash_value` = SHA-512) computed while
//! streaming. Identity is `noauth` for now: the X-Project-Id / X-Roles headers are trusted.

mod image;

use std::sync::Arc;

use bytes::Bytes;
use glint_storage::Store;
use http::{HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::config::Config;

pub struct Glance {
    pub store: Store,
    pub cfg: Arc<Config>,
}

/// Who is calling (noauth: from the identity headers keystonemiddleware would set).
#[derive(Clone, Debug)]
pub struct Caller {
    pub project: Option<String>,
    pub roles: Vec<String>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

/// A Glance error: status and explanation, rendered as upstream's plain-text body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
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
            E::Input(_) => ApiError::bad("Error in the image data stream: the upload ended early"),
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
        }
    }
}

pub type ApiResult = Result<Response<Body>, ApiError>;

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=UTF-8")
        .body(body::full(serde_json::to_vec(value).expect("serializable")))
        .expect("valid response")
}

fn error_response(e: &ApiError) -> Response<Body> {
    let reason = e.status.canonical_reason().unwrap_or("");
    let text = format!("{} {}\n\n{}\n\n   ", e.status.as_u16(), reason, e.message);
    Response::builder()
        .status(e.status)
        .header("content-type", "text/plain; charset=UTF-8")
        .body(body::full(text))
        .expect("valid response")
}

fn versions(cfg: &Config, host: &str) -> serde_json::Value {
    let _ = cfg;
    let href = format!("http://{host}/v2/");
    let mut list = vec![
        serde_json::json!({"id": "v2.17", "status": "CURRENT", "links": [{"rel": "self", "href": href}]}),
    ];
    for v in [
        "v2.15", "v2.9", "v2.7", "v2.6", "v2.5", "v2.4", "v2.3", "v2.2", "v2.1", "v2.0",
    ] {
        list.push(serde_json::json!({"id": v, "status": "SUPPORTED", "links": [{"rel": "self", "href": href}]}));
    }
    serde_json::json!({ "versions": list })
}

pub async fn handle(g: Arc<Glance>, req: http::Request<Incoming>) -> Response<Body> {
    let request_id = format!("req-{}", uuid_v4());
    let (parts, incoming) = req.into_parts();
    let path = parts.uri.path().to_string();
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let mut resp = match (parts.method.clone(), path.as_str()) {
        (Method::GET, "/") => json(StatusCode::MULTIPLE_CHOICES, &versions(&g.cfg, &host)),
        (Method::GET, "/versions") => json(StatusCode::OK, &versions(&g.cfg, &host)),
        (Method::GET, "/healthcheck") => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/plain")
            .body(body::full(Bytes::from_static(b"OK")))
            .expect("valid"),
        _ if path.starts_with("/v2/") => {
            let caller = caller(&parts.headers);
            match image::route(&g, &caller, &parts, incoming).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            }
        }
        _ => error_response(&ApiError::new(
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        )),
    };
    if path.starts_with("/v2") {
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-openstack-request-id", v);
        }
    }
    resp
}

fn caller(headers: &http::HeaderMap) -> Caller {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Caller {
        project: h("x-project-id").or_else(|| h("x-tenant-id")),
        roles: h("x-roles")
            .unwrap_or_else(|| "admin,member,reader".into())
            .split(',')
            .map(|r| r.trim().to_ascii_lowercase())
            .filter(|r| !r.is_empty())
            .collect(),
    }
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
