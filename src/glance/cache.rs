//! The image-cache management API (`/v2/cache`, API.md §16). Upstream caches image data on
//! API nodes in front of a remote store; Glint serves every image from its own local
//! engine, so there is nothing to cache: the API answers as an always-empty cache (the
//! same statuses and shapes, admin-only as upstream) so that operators' tooling keeps
//! working, and queueing an image is accepted as a no-op.

use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::json;

use super::image::{load_listed, load_visible};
use super::{json, ApiError, ApiResult, Caller, Glance};
use crate::body;
use crate::images::ImageStatus;

pub async fn route(
    g: &Glance,
    caller: &Caller,
    method: &Method,
    rest: &[&str],
    headers: &HeaderMap,
) -> ApiResult {
    let action = match (method, rest) {
        (&Method::GET, []) => "cache_list",
        (&Method::GET, ["nodes", _]) => "list_cached_nodes",
        (&Method::PUT, [_]) => "cache_image",
        (&Method::DELETE, _) => "cache_delete",
        (&Method::POST, ["clean"]) => "cache_clean",
        (&Method::POST, ["prune"]) => "cache_prune",
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "The resource could not be found.",
            ))
        }
    };
    // Upstream looks a named image up before the policy check on PUT and DELETE (an image
    // the caller cannot see is 404 whoever asks), and after it for the nodes listing.
    if let (&Method::PUT | &Method::DELETE, [id]) = (method, rest) {
        let image = match load_listed(g, caller, id).await {
            Ok(image) => image,
            // Upstream lets a DELETE of an image the caller cannot see go on to the policy
            // when the image is in its cache (it usually is: someone queued it). Glint keeps
            // no cache, so a caller the policy refuses gets that 403 either way.
            Err(e) if method == Method::DELETE => {
                g.enforce_own(action, caller)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        g.enforce_own(action, caller)?;
        if method == Method::PUT && image.status != ImageStatus::Active {
            return Err(ApiError::bad(
                "Only images with status active can be targeted for queueing",
            ));
        }
        return empty(if method == Method::PUT {
            StatusCode::ACCEPTED
        } else {
            StatusCode::NO_CONTENT
        });
    }
    g.enforce_own(action, caller)?;
    match (method, rest) {
        (&Method::GET, []) => Ok(json(
            StatusCode::OK,
            &json!({"cached_images": [], "queued_images": []}),
        )),
        (&Method::GET, ["nodes", id]) => {
            load_visible(g, caller, id).await?;
            Ok(json(StatusCode::OK, &json!([])))
        }
        (&Method::DELETE, []) => {
            let target = headers
                .get("x-image-cache-clear-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            if !["", "cache", "queue"].contains(&target.as_str()) {
                return Err(ApiError::bad(
                    "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string.",
                ));
            }
            empty(StatusCode::NO_CONTENT)
        }
        (&Method::POST, ["clean"]) => empty(StatusCode::OK),
        (&Method::POST, ["prune"]) => Ok(json(
            StatusCode::OK,
            &json!({"total_files_pruned": 0, "total_bytes_pruned": 0}),
        )),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        )),
    }
}

fn empty(status: StatusCode) -> ApiResult {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=UTF-8")
        .body(body::empty())
        .expect("valid"))
}
