//! oslo.middleware's `cors` filter, which upstream runs in every pipeline: with
//! `[cors] allowed_origin` set, preflight `OPTIONS` requests from an allowed origin are
//! answered here and other responses to such origins carry `Access-Control-Allow-Origin`.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::body::{self, Body};
use crate::config::CorsOptions;

fn allowed<'a>(opts: &CorsOptions, headers: &'a HeaderMap) -> Option<&'a str> {
    let origin = headers.get("origin")?.to_str().ok()?;
    opts.allowed_origin
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        .then_some(origin)
}

/// The answer to a CORS preflight, if this is one from an allowed origin.
pub fn preflight(
    opts: &CorsOptions,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response<Body>> {
    if method != Method::OPTIONS {
        return None;
    }
    let origin = allowed(opts, headers)?;
    let wanted = headers
        .get("access-control-request-method")?
        .to_str()
        .ok()?;
    if !opts
        .allow_methods
        .iter()
        .any(|m| m.eq_ignore_ascii_case(wanted))
    {
        return None;
    }
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header("access-control-allow-origin", origin)
        .header(
            "access-control-allow-methods",
            opts.allow_methods.join(", "),
        )
        .header("vary", "Origin");
    if let Some(h) = headers.get("access-control-request-headers") {
        b = b.header("access-control-allow-headers", h.clone());
    }
    if let Some(age) = opts.max_age {
        b = b.header("access-control-max-age", age);
    }
    if opts.allow_credentials {
        b = b.header("access-control-allow-credentials", "true");
    }
    b.body(body::empty()).ok()
}

/// Adds the CORS headers to a response for an allowed origin.
pub fn decorate(opts: &CorsOptions, headers: &HeaderMap, resp: &mut Response<Body>) {
    let Some(origin) = allowed(opts, headers) else {
        return;
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert("access-control-allow-origin", v);
    }
    h.insert("vary", HeaderValue::from_static("Origin"));
    if let Ok(v) = HeaderValue::from_str(&opts.expose_headers.join(", ")) {
        h.insert("access-control-expose-headers", v);
    }
    if opts.allow_credentials {
        h.insert(
            "access-control-allow-credentials",
            HeaderValue::from_static("true"),
        );
    }
}
