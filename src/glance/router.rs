//! The Images API's front door: versions, healthcheck, identity (Keystone or noauth),
//! request ids, CORS and proxy headers, then the `/v2` routes (`image::route`).

use std::sync::Arc;
use tracing::Instrument;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use serde_json::Value;

use super::error::error_response;
use super::identity::noauth_caller;
use super::{cache, cors, data, discovery, image, import, json, members, tasks, uuid_v4};
use super::{ApiError, ApiResult, Caller, Glance};
use crate::body::{self, Body};
use crate::request_body::RequestBody;

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
    // Every log line of the request carries its id.
    let span = tracing::info_span!("glance", id = %request_id);
    async {
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
        let mut project = None;
        let result = match (parts.method.clone(), path.as_str()) {
            (Method::GET, "/") => Ok(json(
                StatusCode::MULTIPLE_CHOICES,
                &versions(&base, g.stores.multi()),
            )),
            (Method::GET, "/versions") => {
                Ok(json(StatusCode::OK, &versions(&base, g.stores.multi())))
            }
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
                let caller =
                    keystone_caller.unwrap_or_else(|| noauth_caller(&parts.headers, &request_id));
                project = caller.project.clone();
                v2(&g, &caller, &parts, incoming).await
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
        resp.extensions_mut().insert(crate::metrics::RequestInfo {
            id: request_id,
            project,
        });
        resp
    }
    .instrument(span)
    .await
}

/// The `/v2` routes.
pub async fn v2(
    g: &Arc<Glance>,
    caller: &Caller,
    parts: &http::request::Parts,
    incoming: RequestBody,
) -> ApiResult {
    let path = parts.uri.path();
    let segs: Vec<&str> = path.trim_start_matches("/v2/").split('/').collect();
    let m = &parts.method;
    if let Some(name) = path.strip_prefix("/v2/schemas/") {
        return discovery::schema(g, m, name);
    }
    if let Some(what) = path.strip_prefix("/v2/info/") {
        return discovery::info(g, caller, m, what);
    }
    let query = parts.uri.query().unwrap_or("");
    match (m, segs.as_slice()) {
        (_, ["tasks", rest @ ..]) => tasks::route(g, caller, m, rest, query, incoming).await,
        (&Method::DELETE, ["stores", store, id]) => {
            image::delete_from_store(g, caller, store, id).await
        }
        (_, ["cache", ..]) => cache::route(g, caller, m, &segs[1..], &parts.headers).await,
        (_, ["metadefs", rest @ ..]) => {
            super::metadefs::route(g, caller, m, rest, query, &parts.headers, incoming).await
        }
        (&Method::POST, ["images"]) => image::create(g, caller, parts, incoming).await,
        (&Method::GET, ["images"]) => image::list(g, caller, parts.uri.query().unwrap_or("")).await,
        (_, ["images"]) => Err(ApiError::method_not_allowed("GET, POST")),
        (&Method::GET, ["images", id]) => Ok(json(
            StatusCode::OK,
            &image::load_visible(g, caller, id).await?.to_json(),
        )),
        (&Method::PATCH, ["images", id]) => {
            image::update_image(g, caller, id, parts, incoming).await
        }
        (&Method::DELETE, ["images", id]) => image::delete(g, caller, id).await,
        (_, ["images", _]) => Err(ApiError::method_not_allowed("GET, PATCH, DELETE")),
        (&Method::PUT, ["images", id, "file"]) => {
            data::upload(g, caller, id, parts, incoming).await
        }
        (&Method::GET, ["images", id, "file"]) => data::download(g, caller, id, parts).await,
        (_, ["images", _, "file"]) => Err(ApiError::method_not_allowed("GET, PUT")),
        (&Method::GET, ["images", id, "tasks"]) => {
            let rec = image::load_visible(g, caller, id).await?;
            tasks::of_image(g, &rec.id).await
        }
        (&Method::PUT, ["images", id, "stage"]) => {
            data::stage(g, caller, id, parts, incoming).await
        }
        (_, ["images", _, "stage"]) => Err(ApiError::method_not_allowed("PUT")),
        (&Method::POST, ["images", id, "import"]) => {
            import::start(g, caller, id, &parts.headers, incoming).await
        }
        (_, ["images", _, "import"]) => Err(ApiError::method_not_allowed("POST")),
        (&Method::POST, ["images", id, "locations"]) => {
            super::locations::add(g, caller, id, incoming).await
        }
        (&Method::GET, ["images", id, "locations"]) => super::locations::list(g, caller, id).await,
        (_, ["images", _, "locations"]) => Err(ApiError::method_not_allowed("GET, POST")),
        (&Method::PUT, ["images", id, "tags", tag]) => {
            image::tag_op(g, caller, id, tag, true).await
        }
        (&Method::DELETE, ["images", id, "tags", tag]) => {
            image::tag_op(g, caller, id, tag, false).await
        }
        (_, ["images", _, "tags", _]) => Err(ApiError::method_not_allowed("PUT, DELETE")),
        (&Method::POST, ["images", id, "actions", action @ ("deactivate" | "reactivate")]) => {
            image::activation(g, caller, id, action).await
        }
        (&Method::POST, ["images", id, "members"]) => members::add(g, caller, id, incoming).await,
        (&Method::GET, ["images", id, "members"]) => members::list(g, caller, id).await,
        (_, ["images", _, "members"]) => Err(ApiError::method_not_allowed("GET, POST")),
        (&Method::GET, ["images", id, "members", member]) => {
            members::show(g, caller, id, member).await
        }
        (&Method::PUT, ["images", id, "members", member]) => {
            members::set_status(g, caller, id, member, incoming).await
        }
        (&Method::DELETE, ["images", id, "members", member]) => {
            members::delete(g, caller, id, member).await
        }
        (_, ["images", _, "members", _]) => Err(ApiError::method_not_allowed("GET, PUT, DELETE")),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        )),
    }
}
