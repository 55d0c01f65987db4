//! The Images API's errors: a status and an explanation, with named constructors, rendered
//! as upstream renders them (plain text, or JSON when the client asks for it), and the one
//! place where engine and domain errors become API errors.

use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};

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
            e if e.is_transient() => {
                tracing::warn!(error = %e, "catalog unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The image catalog is unavailable; retry the request",
                )
            }
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

/// Upstream's WebOb error page: JSON for `Accept: application/json`, else plain text.
pub fn error_response(e: &ApiError, accept: Option<&str>) -> Response<Body> {
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
