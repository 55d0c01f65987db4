//! Discovery: `/v2/schemas/*` and `/v2/info/{import,stores,stores/detail,usage}`.

use http::{Method, StatusCode};
use serde_json::json;

use super::{json, ApiError, ApiResult, Caller, Glance};

pub fn schema(g: &Glance, method: &Method, name: &str) -> ApiResult {
    let doc = g
        .schema
        .document(name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "The resource could not be found."))?;
    if method != Method::GET {
        return Err(ApiError::method_not_allowed("GET"));
    }
    Ok(json(StatusCode::OK, doc))
}

pub fn info(g: &Glance, caller: &Caller, method: &Method, what: &str) -> ApiResult {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed("GET"));
    }
    match what {
        "import" => Ok(json(
            StatusCode::OK,
            &json!({"import-methods": {
                "description": "Import methods available.",
                "type": "array",
                "value": g.opts().enabled_import_methods,
            }}),
        )),
        "stores" | "stores/detail" if !g.stores.multi() => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Multi backend is not supported at this site.",
        )),
        "stores" | "stores/detail" => {
            let detail = what == "stores/detail";
            if detail {
                g.enforce_own("stores_info_detail", caller)?;
            }
            let stores: Vec<serde_json::Value> = g
                .stores
                .backends()
                .map(|b| {
                    let mut s = json!({"id": b.cfg.id, "description": b.cfg.description});
                    if b.cfg.default {
                        s["default"] = json!("true");
                    }
                    if detail {
                        let dirs: Vec<String> = b
                            .store
                            .config()
                            .data_dirs
                            .iter()
                            .map(|d| d.display().to_string())
                            .collect();
                        s["type"] = json!("file");
                        s["properties"] = json!({
                            "data_dir": dirs.join(","),
                            "chunk_size": b.store.config().chunk_size,
                            "thin_provisioning": false,
                        });
                        s["weight"] = json!(0);
                    }
                    s
                })
                .collect();
            Ok(json(StatusCode::OK, &json!({ "stores": stores })))
        }
        "usage" => Ok(json(StatusCode::OK, &json!({"usage": {}}))),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        )),
    }
}
