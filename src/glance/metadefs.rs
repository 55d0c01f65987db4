//! `/v2/metadefs` (API.md §17): metadata-definition namespaces and what they hold, served
//! from the images domain's catalog (`images::metadefs`). Answers follow upstream Glance 33
//! as recorded against it: fields that are null are left out, lists keep creation order,
//! a namespace the caller may not see is 404, and a refused change is 403 — or 404 when the
//! caller could not even read what it tried to change (a system-scoped token, say).

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::{json, no_content, read_json_body, ApiError, ApiResult, Caller, Glance};
use crate::images::metadefs::{files, repo, Association, Kind, Namespace, Object, Property, Tag};
use crate::images::policy::namespace_target;
use crate::request_body::RequestBody;

const NS_SCHEMA: &str = "/v2/schemas/metadefs/namespace";

pub async fn route(
    g: &Glance,
    caller: &Caller,
    m: &Method,
    rest: &[&str],
    query: &str,
    headers: &http::HeaderMap,
    incoming: RequestBody,
) -> ApiResult {
    let decoded: Vec<String> = rest
        .iter()
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    match (m, segs.as_slice()) {
        (&Method::GET, ["resource_types"]) => resource_types(g, caller).await,
        (&Method::GET, ["namespaces"]) => list(g, caller, query).await,
        (&Method::POST, ["namespaces"]) => create(g, caller, incoming).await,
        (&Method::GET, ["namespaces", ns]) => show(g, caller, ns).await,
        (&Method::PUT, ["namespaces", ns]) => update(g, caller, ns, incoming).await,
        (&Method::DELETE, ["namespaces", ns]) => delete(g, caller, ns).await,
        (&Method::GET, ["namespaces", ns, what]) => contents(g, caller, ns, what).await,
        (&Method::DELETE, ["namespaces", ns, what @ ("properties" | "objects" | "tags")]) => {
            delete_contents(g, caller, ns, what).await
        }
        (&Method::GET, ["namespaces", ns, what @ ("properties" | "objects" | "tags"), name]) => {
            item(g, caller, ns, what, name).await
        }
        (
            &Method::POST,
            ["namespaces", ns, what @ ("properties" | "objects" | "resource_types")],
        ) => {
            let body = read_json_body(incoming).await?;
            super::metadef_items::create(g, caller, ns, what, body).await
        }
        (&Method::POST, ["namespaces", ns, "tags"]) => {
            let append = super::metadef_items::append_header(headers);
            let body = read_json_body(incoming).await?;
            super::metadef_items::create_tags(g, caller, ns, body, append).await
        }
        (&Method::POST, ["namespaces", ns, "tags", tag]) => {
            super::metadef_items::create_tag(g, caller, ns, tag).await
        }
        (&Method::PUT, ["namespaces", ns, what @ ("properties" | "objects" | "tags"), name]) => {
            let body = read_json_body(incoming).await?;
            super::metadef_items::update(g, caller, ns, what, name, body).await
        }
        (
            &Method::DELETE,
            ["namespaces", ns, what @ ("properties" | "objects" | "tags" | "resource_types"), name],
        ) => super::metadef_items::delete(g, caller, ns, what, name).await,
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        )),
    }
}

/// The metadefs domain over this server's catalog.
pub(super) fn catalog(g: &Glance) -> crate::images::metadefs::Metadefs {
    crate::images::metadefs::Metadefs::new(g.store.clone())
}

fn hidden() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The resource could not be found.")
}

fn protected(what: &str, name: &str) -> ApiError {
    ApiError::forbidden(format!(
        "Metadata definition {what} {name} is protected and cannot be deleted."
    ))
}

fn no_namespace(ns: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Metadata definition namespace={ns} was not found."),
    )
}

/// `action` on `ns` (None: on the catalog as a whole), with upstream's answer to a refusal:
/// 403, unless the caller may not even read it, then 404.
pub(super) fn enforce(
    g: &Glance,
    caller: &Caller,
    action: &str,
    ns: Option<&Namespace>,
) -> Result<(), ApiError> {
    let target = match ns {
        Some(n) => namespace_target(n.owner.as_deref(), n.visibility.as_deref().unwrap_or("")),
        None => namespace_target(caller.project.as_deref(), ""),
    };
    if g.policy.allows(action, caller, &target) {
        return Ok(());
    }
    let read = if ns.is_some() {
        "get_metadef_namespace"
    } else {
        "get_metadef_namespaces"
    };
    if action != read && g.policy.allows(read, caller, &target) {
        Err(ApiError::forbidden(format!(
            "You are not authorized to complete {action} action."
        )))
    } else {
        Err(hidden())
    }
}

/// The namespace if the caller may read it: missing is "not found" by name, one the catalog
/// or `get_metadef_namespace` hides is a bare 404.
pub(super) async fn readable(g: &Glance, caller: &Caller, ns: &str) -> Result<Namespace, ApiError> {
    let rec = repo::namespace(&g.store, ns)
        .await?
        .ok_or_else(|| no_namespace(ns))?;
    if !rec.visible_to(caller) {
        return Err(no_namespace(ns));
    }
    enforce(g, caller, "get_metadef_namespace", Some(&rec))?;
    Ok(rec)
}

/// Sets `key` unless the value is null (upstream leaves unset fields out).
pub(super) fn put(out: &mut Map<String, Value>, key: &str, v: impl Into<Value>) {
    let v = v.into();
    if !v.is_null() {
        out.insert(key.to_string(), v);
    }
}

fn namespace_json(n: &Namespace) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("namespace".into(), json!(n.namespace));
    put(&mut o, "display_name", json!(n.display_name));
    put(&mut o, "description", json!(n.description));
    o.insert("visibility".into(), json!(n.shown_visibility()));
    o.insert("protected".into(), json!(n.protected));
    put(&mut o, "owner", json!(n.owner));
    o.insert("created_at".into(), json!(n.created_at));
    put(&mut o, "updated_at", json!(n.updated_at));
    o
}

fn finish_namespace(mut o: Map<String, Value>, name: &str) -> Value {
    o.insert(
        "self".into(),
        json!(format!("/v2/metadefs/namespaces/{name}")),
    );
    o.insert("schema".into(), json!(NS_SCHEMA));
    Value::Object(o)
}

pub(super) fn association_json(a: &Association) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(a.name));
    put(&mut o, "prefix", json!(a.prefix));
    put(&mut o, "properties_target", json!(a.properties_target));
    o.insert("created_at".into(), json!(a.created_at));
    put(&mut o, "updated_at", json!(a.updated_at));
    Value::Object(o)
}

pub(super) fn object_json(ns: &str, ob: &Object) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(ob.name));
    o.insert("required".into(), json!(ob.required));
    put(&mut o, "description", json!(ob.description));
    o.insert("properties".into(), Value::Object(ob.properties.clone()));
    o.insert("created_at".into(), json!(ob.created_at));
    put(&mut o, "updated_at", json!(ob.updated_at));
    o.insert(
        "self".into(),
        json!(format!("/v2/metadefs/namespaces/{ns}/objects/{}", ob.name)),
    );
    o.insert("schema".into(), json!("/v2/schemas/metadefs/object"));
    Value::Object(o)
}

async fn associations(g: &Glance, ns: &str) -> Result<Vec<Association>, ApiError> {
    let mut a: Vec<Association> = repo::items(&g.store, ns, Kind::Association).await?;
    a.sort_by_key(|x| x.position);
    Ok(a)
}

async fn resource_types(g: &Glance, caller: &Caller) -> ApiResult {
    enforce(g, caller, "list_metadef_resource_types", None)?;
    let mut all = repo::resource_types(&g.store).await?;
    all.sort_by_key(|r| r.position);
    let list: Vec<Value> = all
        .iter()
        .map(|r| {
            let mut o = Map::new();
            o.insert("name".into(), json!(r.name));
            o.insert("created_at".into(), json!(r.created_at));
            put(&mut o, "updated_at", json!(r.updated_at));
            Value::Object(o)
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({"resource_types": list})))
}

/// `GET /v2/metadefs/namespaces`: visibility and resource-type filters, sort, marker paging.
async fn list(g: &Glance, caller: &Caller, query: &str) -> ApiResult {
    enforce(g, caller, "get_metadef_namespaces", None)?;
    enforce(g, caller, "list_metadef_resource_types", None)?;
    let params = crate::http_util::query_params(query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let limit = match get("limit") {
        None => g.opts().limit_param_default,
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| ApiError::bad("limit param must be an integer"))?;
            if n < 0 {
                return Err(ApiError::bad("limit param must be positive"));
            }
            (n as usize).min(g.opts().api_limit_max)
        }
    };
    let sort_key = get("sort_key").unwrap_or("created_at");
    if ![
        "created_at",
        "updated_at",
        "namespace",
        "display_name",
        "visibility",
        "protected",
        "owner",
    ]
    .contains(&sort_key)
    {
        return Err(ApiError::bad(format!("Invalid sort key: {sort_key}")));
    }
    let desc = match get("sort_dir").unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        d => return Err(ApiError::bad(format!("Invalid sort direction: {d}"))),
    };
    let visibility = get("visibility");
    if let Some(v) = visibility {
        if !["public", "private"].contains(&v) {
            return Err(ApiError::bad(format!("Invalid visibility value: {v}")));
        }
    }
    let wanted_types: Option<Vec<&str>> = get("resource_types").map(|v| v.split(',').collect());
    let mut shown = Vec::new();
    for n in repo::namespaces(&g.store).await? {
        if !n.visible_to(caller)
            || visibility.is_some_and(|v| n.visibility.as_deref() != Some(v))
            || !g.policy.allows(
                "get_metadef_namespace",
                caller,
                &namespace_target(n.owner.as_deref(), n.visibility.as_deref().unwrap_or("")),
            )
        {
            continue;
        }
        let assoc = associations(g, &n.namespace).await?;
        if let Some(types) = &wanted_types {
            if !assoc.iter().any(|a| types.contains(&a.name.as_str())) {
                continue;
            }
        }
        shown.push((n, assoc));
    }
    let value = |n: &Namespace| -> String {
        match sort_key {
            "updated_at" => n.updated_at.clone().unwrap_or_default(),
            "namespace" => n.namespace.clone(),
            "display_name" => n.display_name.clone().unwrap_or_default(),
            "visibility" => n.shown_visibility().to_string(),
            "protected" => n.protected.to_string(),
            "owner" => n.owner.clone().unwrap_or_default(),
            _ => n.created_at.clone(),
        }
    };
    shown.sort_by(|(a, _), (b, _)| {
        let o = value(a).cmp(&value(b)).then(a.namespace.cmp(&b.namespace));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    if let Some(m) = get("marker") {
        let at = shown
            .iter()
            .position(|(n, _)| n.namespace == m)
            .ok_or_else(|| no_namespace(m))?;
        shown.drain(..=at);
    }
    shown.truncate(limit);
    let items: Vec<Value> = shown
        .iter()
        .map(|(n, assoc)| {
            let mut o = namespace_json(n);
            if !assoc.is_empty() {
                o.insert(
                    "resource_type_associations".into(),
                    assoc.iter().map(association_json).collect(),
                );
            }
            finish_namespace(o, &n.namespace)
        })
        .collect();
    let passthrough: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "marker")
        .cloned()
        .collect();
    let link = |extra: Option<&str>| {
        let mut ser = passthrough.clone();
        if let Some(m) = extra {
            ser.push(("marker".into(), m.to_string()));
        }
        let q: Vec<String> = ser
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        if q.is_empty() {
            "/v2/metadefs/namespaces".to_string()
        } else {
            format!("/v2/metadefs/namespaces?{}", q.join("&"))
        }
    };
    let mut out = json!({
        "namespaces": items,
        "schema": "/v2/schemas/metadefs/namespaces",
        "first": link(None),
    });
    if limit > 0 && shown.len() == limit {
        if let Some((last, _)) = shown.last() {
            out["next"] = json!(link(Some(&last.namespace)));
        }
    }
    Ok(json(StatusCode::OK, &out))
}

/// As Python's `urlencode` (quote_plus): spaces as `+`, everything else outside the
/// unreserved set percent-encoded.
fn enc(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET)
        .to_string()
        .replace("%20", "+")
}

async fn show(g: &Glance, caller: &Caller, ns: &str) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    for rule in [
        "list_metadef_resource_types",
        "get_metadef_objects",
        "get_metadef_properties",
        "get_metadef_tags",
    ] {
        enforce(g, caller, rule, Some(&n))?;
    }
    let mut o = namespace_json(&n);
    let assoc = associations(g, ns).await?;
    if !assoc.is_empty() {
        o.insert(
            "resource_type_associations".into(),
            assoc.iter().map(association_json).collect(),
        );
    }
    let props: Vec<Property> = repo::items(&g.store, ns, Kind::Property).await?;
    if !props.is_empty() {
        o.insert(
            "properties".into(),
            Value::Object(
                props
                    .into_iter()
                    .map(|p| (p.name, Value::Object(p.schema)))
                    .collect(),
            ),
        );
    }
    let mut objects: Vec<Object> = repo::items(&g.store, ns, Kind::Object).await?;
    objects.sort_by_key(|x| x.position);
    if !objects.is_empty() {
        o.insert(
            "objects".into(),
            objects.iter().map(|ob| object_json(ns, ob)).collect(),
        );
    }
    let mut tags: Vec<Tag> = repo::items(&g.store, ns, Kind::Tag).await?;
    tags.sort_by_key(|x| std::cmp::Reverse(x.position));
    if !tags.is_empty() {
        o.insert(
            "tags".into(),
            tags.iter().map(|t| json!({"name": t.name})).collect(),
        );
    }
    Ok(json(StatusCode::OK, &finish_namespace(o, ns)))
}

/// `POST /v2/metadefs/namespaces`: the namespace with any contents it carries, in one
/// transaction; the answer echoes the contents as given.
async fn create(g: &Glance, caller: &Caller, incoming: RequestBody) -> ApiResult {
    enforce(g, caller, "add_metadef_namespace", None)?;
    let body = read_json_body(incoming).await?;
    let doc = Value::Object(body.clone());
    let name = doc
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad("Couldn't create metadata namespace: 'namespace' is required")
        })?
        .to_string();
    for (key, rule) in [
        (
            "resource_type_associations",
            "add_metadef_resource_type_association",
        ),
        ("objects", "add_metadef_object"),
        ("properties", "add_metadef_property"),
        ("tags", "add_metadef_tag"),
    ] {
        if body.get(key).is_some_and(|v| !v.is_null()) {
            enforce(g, caller, rule, None)?;
        }
    }
    if let Some(v) = body.get("visibility").and_then(Value::as_str) {
        if !["public", "private"].contains(&v) {
            return Err(ApiError::bad(format!("Invalid visibility value: {v}")));
        }
    }
    let def = files::parse(&doc, caller.project.as_deref(), true).map_err(ApiError::bad)?;
    let ns = def.namespace.clone();
    if !files::store_definition(&g.store, def, false).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("The metadata definition namespace={name} already exists."),
        ));
    }
    let mut o = namespace_json(&ns);
    for key in [
        "resource_type_associations",
        "properties",
        "objects",
        "tags",
    ] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            o.insert(key.into(), files::echo(key, v));
        }
    }
    let mut resp = json(StatusCode::CREATED, &finish_namespace(o, &name));
    if let Ok(v) = format!("/v2/metadefs/namespaces/{name}").parse() {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    Ok(resp)
}

/// `PUT /v2/metadefs/namespaces/{ns}`: replaces the namespace's own fields (its contents
/// stay); a rename carries them along.
async fn update(g: &Glance, caller: &Caller, ns: &str, incoming: RequestBody) -> ApiResult {
    let current = readable(g, caller, ns).await?;
    enforce(g, caller, "modify_metadef_namespace", Some(&current))?;
    let body = read_json_body(incoming).await?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let mut next = current.clone();
    next.namespace = text("namespace").unwrap_or_else(|| current.namespace.clone());
    next.display_name = text("display_name");
    next.description = text("description");
    // A PUT replaces the namespace's fields: what it leaves out takes the default.
    let visibility = text("visibility").unwrap_or_else(|| "private".into());
    if !["public", "private"].contains(&visibility.as_str()) {
        return Err(ApiError::bad(format!(
            "Invalid visibility value: {visibility}"
        )));
    }
    next.visibility = Some(visibility);
    next.protected = body
        .get("protected")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(o) = text("owner") {
        next.owner = Some(o);
    }
    next.updated_at = Some(crate::images::record::now());
    catalog(g)
        .update_namespace(ns, next.clone())
        .await
        .map_err(super::metadef_items::refusal)?;
    Ok(json(
        StatusCode::OK,
        &finish_namespace(namespace_json(&next), &next.namespace),
    ))
}

async fn delete(g: &Glance, caller: &Caller, ns: &str) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    enforce(g, caller, "delete_metadef_namespace", Some(&n))?;
    if n.protected {
        return Err(protected("namespace", ns));
    }
    catalog(g)
        .delete_namespace(ns)
        .await
        .map_err(super::metadef_items::refusal)?;
    no_content()
}

/// `GET …/{ns}/properties|objects|tags|resource_types`.
async fn contents(g: &Glance, caller: &Caller, ns: &str, what: &str) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    let body = match what {
        "resource_types" => {
            enforce(g, caller, "list_metadef_resource_types", Some(&n))?;
            let a = associations(g, ns).await?;
            json!({"resource_type_associations": a.iter().map(association_json).collect::<Vec<_>>()})
        }
        "properties" => {
            enforce(g, caller, "get_metadef_properties", Some(&n))?;
            let props: Vec<Property> = repo::items(&g.store, ns, Kind::Property).await?;
            let m: Map<String, Value> = props
                .into_iter()
                .map(|p| (p.name, Value::Object(p.schema)))
                .collect();
            json!({"properties": m})
        }
        "objects" => {
            enforce(g, caller, "get_metadef_objects", Some(&n))?;
            let mut objects: Vec<Object> = repo::items(&g.store, ns, Kind::Object).await?;
            objects.sort_by_key(|x| x.position);
            // Upstream's objects list carries its schema link, without the leading slash.
            json!({
                "objects": objects.iter().map(|o| object_json(ns, o)).collect::<Vec<_>>(),
                "schema": "v2/schemas/metadefs/objects",
            })
        }
        "tags" => {
            enforce(g, caller, "get_metadef_tags", Some(&n))?;
            let mut tags: Vec<Tag> = repo::items(&g.store, ns, Kind::Tag).await?;
            // Newest first, as upstream's tag listing sorts.
            tags.sort_by_key(|x| std::cmp::Reverse(x.position));
            json!({"tags": tags.iter().map(|t| json!({"name": t.name})).collect::<Vec<_>>()})
        }
        _ => return Err(hidden()),
    };
    Ok(json(StatusCode::OK, &body))
}

/// `GET …/{ns}/properties|objects|tags/{name}`.
async fn item(g: &Glance, caller: &Caller, ns: &str, what: &str, name: &str) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    let missing = |kind: &str| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Could not find {kind} {name}"),
        )
    };
    let body = match what {
        "properties" => {
            enforce(g, caller, "get_metadef_property", Some(&n))?;
            let p: Property = repo::item(&g.store, ns, Kind::Property, name)
                .await?
                .ok_or_else(|| missing("property"))?;
            let mut o = Map::new();
            o.insert("name".into(), json!(p.name));
            o.extend(p.schema);
            Value::Object(o)
        }
        "objects" => {
            enforce(g, caller, "get_metadef_object", Some(&n))?;
            let ob: Object = repo::item(&g.store, ns, Kind::Object, name)
                .await?
                .ok_or_else(|| missing("object"))?;
            object_json(ns, &ob)
        }
        _ => {
            enforce(g, caller, "get_metadef_tag", Some(&n))?;
            let t: Tag = repo::item(&g.store, ns, Kind::Tag, name)
                .await?
                .ok_or_else(|| missing("tag"))?;
            let mut o = Map::new();
            o.insert("name".into(), json!(t.name));
            o.insert("created_at".into(), json!(t.created_at));
            put(&mut o, "updated_at", json!(t.updated_at));
            Value::Object(o)
        }
    };
    Ok(json(StatusCode::OK, &body))
}

/// `DELETE …/{ns}/properties|objects|tags`: all of one kind.
async fn delete_contents(g: &Glance, caller: &Caller, ns: &str, what: &str) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    let (rule, kind) = match what {
        "properties" => ("remove_metadef_property", Kind::Property),
        "objects" => ("delete_metadef_object", Kind::Object),
        _ => ("delete_metadef_tags", Kind::Tag),
    };
    enforce(g, caller, rule, Some(&n))?;
    if n.protected {
        return Err(protected("namespace", ns));
    }
    catalog(g)
        .remove_all(ns, Some(kind))
        .await
        .map_err(super::metadef_items::refusal)?;
    no_content()
}
