//! The admin listener's answers (`[glint] admin_bind_host` / `admin_bind_port`): `GET
//! /metrics` (metrics.rs, with the image counts read at each scrape) and `GET /healthcheck`.
//! Kept off the API listeners: metrics tell an operator's monitoring what the service does,
//! not its users.

use http::{Method, Response, StatusCode};

use crate::body::{self, Body};
use crate::metrics::{Metrics, Operation};
use crate::request_body::RequestBody;

/// Every image status, as the metrics name them.
const STATUSES: &[&str] = &[
    "queued",
    "saving",
    "uploading",
    "importing",
    "active",
    "deactivated",
    "pending_delete",
    "killed",
    "deleted",
];

pub async fn handle(
    metrics: &Metrics,
    store: &glint_storage::Store,
    req: http::Request<RequestBody>,
) -> Response<Body> {
    let (status, op, content_type, text) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            match crate::images::index::count_by_status(store, STATUSES).await {
                Ok(counts) => metrics.set_images(&counts),
                Err(e) => tracing::warn!(error = %e, "counting images for the metrics failed"),
            }
            if metrics.usage_due() {
                let started = std::time::Instant::now();
                match store.usage(false).await {
                    Ok(u) => metrics.set_usage(&u, started),
                    Err(e) => {
                        tracing::warn!(error = %e, "reading store totals for the metrics failed")
                    }
                }
            }
            (
                StatusCode::OK,
                "metrics",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                metrics.encode(),
            )
        }
        (&Method::GET, "/healthcheck") => {
            (StatusCode::OK, "healthcheck", "text/plain", "OK".into())
        }
        (_, "/metrics" | "/healthcheck") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "unknown",
            "text/plain",
            "method not allowed\n".into(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "unknown",
            "text/plain",
            "not found\n".into(),
        ),
    };
    let mut resp = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body::full(text))
        .expect("valid response");
    resp.extensions_mut().insert(Operation(op));
    resp
}
