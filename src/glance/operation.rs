//! The name of the Images API route a request took, for the metrics (`images.upload`,
//! `members.update`, …): resource, then what is done to it. Unknown paths and methods are
//! `unknown`, so a scanner cannot create label values at will.

use http::Method;

pub fn name(method: &Method, path: &str) -> &'static str {
    let m = method.as_str();
    match path {
        "/" | "/versions" => return "versions",
        "/healthcheck" => return "healthcheck",
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return "unknown";
    };
    let segs: Vec<&str> = rest.split('/').collect();
    match (m, segs.as_slice()) {
        ("GET", ["schemas", ..]) => "schemas.show",
        ("GET", ["info", "import"]) => "info.import",
        ("GET", ["info", "stores", ..]) => "info.stores",
        ("GET", ["info", "usage"]) => "info.usage",
        ("GET", ["images"]) => "images.list",
        ("POST", ["images"]) => "images.create",
        ("GET", ["images", _]) => "images.show",
        ("PATCH", ["images", _]) => "images.update",
        ("DELETE", ["images", _]) => "images.delete",
        ("GET", ["images", _, "file"]) => "images.download",
        ("PUT", ["images", _, "file"]) => "images.upload",
        ("PUT", ["images", _, "stage"]) => "images.stage",
        ("POST", ["images", _, "import"]) => "images.import",
        ("GET", ["images", _, "tasks"]) => "images.tasks",
        ("POST", ["images", _, "actions", "deactivate"]) => "images.deactivate",
        ("POST", ["images", _, "actions", "reactivate"]) => "images.reactivate",
        ("GET", ["images", _, "locations"]) => "locations.list",
        ("POST", ["images", _, "locations"]) => "locations.add",
        ("PUT", ["images", _, "tags", _]) => "tags.add",
        ("DELETE", ["images", _, "tags", _]) => "tags.delete",
        ("GET", ["images", _, "members"]) => "members.list",
        ("POST", ["images", _, "members"]) => "members.create",
        ("GET", ["images", _, "members", _]) => "members.show",
        ("PUT", ["images", _, "members", _]) => "members.update",
        ("DELETE", ["images", _, "members", _]) => "members.delete",
        ("DELETE", ["stores", _, _]) => "stores.delete",
        ("GET", ["tasks"]) => "tasks.list",
        ("POST", ["tasks"]) => "tasks.create",
        ("GET", ["tasks", _]) => "tasks.show",
        ("GET", ["cache", ..]) => "cache.list",
        ("PUT", ["cache", ..]) => "cache.queue",
        ("DELETE", ["cache", ..]) => "cache.delete",
        ("GET", ["metadefs", ..]) => "metadefs.show",
        ("POST", ["metadefs", ..]) => "metadefs.create",
        ("PUT", ["metadefs", ..]) => "metadefs.update",
        ("DELETE", ["metadefs", ..]) => "metadefs.delete",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_have_names() {
        let id = "0f3c7a5e-0000-4000-8000-000000000001";
        for (m, p, want) in [
            (Method::GET, "/v2/images".to_string(), "images.list"),
            (
                Method::PUT,
                format!("/v2/images/{id}/file"),
                "images.upload",
            ),
            (
                Method::GET,
                format!("/v2/images/{id}/file"),
                "images.download",
            ),
            (
                Method::PUT,
                format!("/v2/images/{id}/members/p1"),
                "members.update",
            ),
            (Method::GET, "/v2/schemas/image".to_string(), "schemas.show"),
            (Method::GET, "/versions".to_string(), "versions"),
            (Method::POST, format!("/v2/images/{id}/file"), "unknown"),
            (Method::GET, "/v2/whatever/else".to_string(), "unknown"),
            (Method::GET, "/etc/passwd".to_string(), "unknown"),
        ] {
            assert_eq!(name(&m, &p), want, "{m} {p}");
        }
    }
}
