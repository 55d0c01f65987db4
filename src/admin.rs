//! The admin listener's answers (`[glint] admin_bind_host` / `admin_bind_port`): `GET
//! /metrics` (metrics.rs, with the image counts read at each scrape) and `GET /healthcheck`.
//! Kept off the API listeners: metrics tell an operator's monitoring what the service does,
//! not its users.

use http::{Method, Response, StatusCode};

use crate::body::{self, Body};
use crate::maintenance::IMAGE_STATUSES;
use crate::metrics::{Metrics, Operation};
use crate::request_body::RequestBody;

pub async fn handle(
    metrics: &Metrics,
    store: &glint_storage::Store,
    req: http::Request<RequestBody>,
) -> Response<Body> {
    let (status, op, content_type, text) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            // Image counts and store totals walk the catalog: redone only when due (the
            // walks take at most 1 % of the time between them).
            if metrics.usage_due() {
                let started = std::time::Instant::now();
                match crate::images::index::count_by_status(store, IMAGE_STATUSES).await {
                    Ok(counts) => metrics.set_images(&counts),
                    Err(e) => tracing::warn!(error = %e, "counting images for the metrics failed"),
                }
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
