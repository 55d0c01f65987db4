//! Changing what a metadata-definition namespace holds: properties, objects, tags (one by
//! one or in bulk) and resource-type associations (`POST`, `PUT`, `DELETE` under
//! `/v2/metadefs/namespaces/{ns}/…`). Admin-only by upstream's defaults; every change is
//! one catalog transaction that re-checks the namespace and the name it touches.

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::metadefs::{association_json, enforce, object_json, protected, put, readable};
use super::{json, no_content, ApiError, ApiResult, Caller, Glance};
use crate::images::metadefs::files::{self, property_type};
use crate::images::metadefs::model::{position, FORMAT};
use crate::images::metadefs::{
    repo, Association, Kind, Namespace, Object, Property, ResourceType, Tag,
};
use crate::images::record::now;

/// `X-Openstack-Append: true` keeps a namespace's tags when more are posted in bulk.
pub fn append_header(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-openstack-append")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn schema_error(schema: &str, why: &str) -> ApiError {
    ApiError::bad(format!(
        "Provided object does not match schema '{schema}': {why}"
    ))
}

fn text(body: &Map<String, Value>, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_string)
}

fn required_name(body: &Map<String, Value>, schema: &str) -> Result<String, ApiError> {
    text(body, "name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| schema_error(schema, "'name' is a required property"))
}

/// A property definition from a request body: name, type and title are required.
fn property_from(body: &Map<String, Value>) -> Result<Property, ApiError> {
    let name = required_name(body, "property")?;
    for key in ["type", "title"] {
        if body.get(key).and_then(Value::as_str).is_none() {
            return Err(schema_error(
                "property",
                &format!("'{key}' is a required property"),
            ));
        }
    }
    // Upstream keeps `name` inside a definition made through this API (not in one that
    // came with its namespace), and lists it so.
    let schema = property_type(&Value::Object(body.clone()));
    let stamp = now();
    Ok(Property {
        format: FORMAT,
        name,
        schema,
        created_at: stamp.clone(),
        updated_at: Some(stamp),
    })
}

fn property_json(p: &Property) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(p.name));
    o.extend(p.schema.clone());
    Value::Object(o)
}

fn object_from(body: &Map<String, Value>) -> Result<Object, ApiError> {
    files::object(&Value::Object(body.clone()), 0, true).map_err(|why| schema_error("object", &why))
}

fn tag_json(t: &Tag) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(t.name));
    o.insert("created_at".into(), json!(t.created_at));
    put(&mut o, "updated_at", json!(t.updated_at));
    Value::Object(o)
}

fn new_tag(name: &str, offset: usize) -> Tag {
    let stamp = now();
    Tag {
        format: FORMAT,
        position: position(offset),
        name: name.to_string(),
        created_at: stamp.clone(),
        updated_at: Some(stamp),
    }
}

fn not_found(kind: &str, name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Could not find {kind} {name}"),
    )
}

fn duplicate(what: &str, name: &str, ns: &str) -> ApiError {
    let msg = match what {
        "tag" => format!(
            "A metadata tag with name={name} already exists in namespace={ns}. (Please note that metadata tag names are case insensitive)."
        ),
        "resource_types" => format!(
            "The metadata definition resource-type association of resource-type={name} to namespace={ns}, already exists."
        ),
        _ => format!("A metadata definition {what} with name={name} already exists in namespace={ns}."),
    };
    ApiError::new(StatusCode::CONFLICT, msg)
}

/// Whether namespace `ns` holds a tag named `name` (upstream's message speaks of case, but
/// `c` and `C` may both exist, as its unique index compares them).
fn tag_taken(tx: &glint_storage::Tx<'_>, ns: &str, name: &str) -> glint_storage::Result<bool> {
    Ok(repo::item_locked::<Tag>(tx, ns, Kind::Tag, name)?.is_some())
}

/// Runs `change` in one transaction once namespace `ns` is still there (the engine may
/// run it again on a conflict); its error is the caller's answer.
async fn in_namespace<T, F>(g: &Glance, ns: &str, mut change: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnMut(&mut glint_storage::Tx<'_>, &str) -> glint_storage::Result<Result<T, ApiError>>
        + Send
        + 'static,
{
    let key = ns.to_string();
    g.store
        .transact(move |tx| {
            if repo::namespace_locked(tx, &key)?.is_none() {
                return Ok(Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("Metadata definition namespace={key} was not found."),
                )));
            }
            change(tx, &key)
        })
        .await?
}

/// `POST …/{ns}/properties|objects|resource_types`.
pub async fn create(
    g: &Glance,
    caller: &Caller,
    ns: &str,
    what: &str,
    body: Map<String, Value>,
) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    match what {
        "properties" => {
            enforce(g, caller, "add_metadef_property", Some(&n))?;
            let p = property_from(&body)?;
            let out = property_json(&p);
            in_namespace(g, ns, move |tx, ns| {
                if repo::item_locked::<Property>(tx, ns, Kind::Property, &p.name)?.is_some() {
                    return Ok(Err(duplicate("property", &p.name, ns)));
                }
                repo::put_item(tx, ns, Kind::Property, &p.name, &p)?;
                Ok(Ok(()))
            })
            .await?;
            Ok(json(StatusCode::CREATED, &out))
        }
        "objects" => {
            enforce(g, caller, "add_metadef_object", Some(&n))?;
            let ob = object_from(&body)?;
            // The answer echoes the request: `required` and `description` only if given.
            let mut out = object_json(ns, &ob);
            if let Value::Object(o) = &mut out {
                for key in ["required", "description"] {
                    if !body.contains_key(key) {
                        o.remove(key);
                    }
                }
            }
            in_namespace(g, ns, move |tx, ns| {
                if repo::item_locked::<Object>(tx, ns, Kind::Object, &ob.name)?.is_some() {
                    return Ok(Err(duplicate("object", &ob.name, ns)));
                }
                repo::put_item(tx, ns, Kind::Object, &ob.name, &ob)?;
                Ok(Ok(()))
            })
            .await?;
            Ok(json(StatusCode::CREATED, &out))
        }
        _ => {
            enforce(g, caller, "add_metadef_resource_type_association", Some(&n))?;
            let name = required_name(&body, "resource_type_association")?;
            let stamp = now();
            let a = Association {
                format: FORMAT,
                position: position(0),
                name,
                prefix: text(&body, "prefix"),
                properties_target: text(&body, "properties_target"),
                created_at: stamp.clone(),
                updated_at: Some(stamp),
            };
            let out = association_json(&a);
            in_namespace(g, ns, move |tx, ns| {
                if repo::item_locked::<Association>(tx, ns, Kind::Association, &a.name)?.is_some() {
                    return Ok(Err(duplicate("resource_types", &a.name, ns)));
                }
                if repo::resource_type_locked(tx, &a.name)?.is_none() {
                    repo::put_resource_type(
                        tx,
                        &ResourceType {
                            format: FORMAT,
                            position: a.position,
                            name: a.name.clone(),
                            protected: false,
                            created_at: a.created_at.clone(),
                            updated_at: a.updated_at.clone(),
                        },
                    )?;
                }
                repo::put_item(tx, ns, Kind::Association, &a.name, &a)?;
                Ok(Ok(()))
            })
            .await?;
            Ok(json(StatusCode::CREATED, &out))
        }
    }
}

/// `POST …/{ns}/tags/{tag}`.
pub async fn create_tag(g: &Glance, caller: &Caller, ns: &str, tag: &str) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    enforce(g, caller, "add_metadef_tag", Some(&n))?;
    let t = new_tag(tag, 0);
    let out = tag_json(&t);
    in_namespace(g, ns, move |tx, ns| {
        if tag_taken(tx, ns, &t.name)? {
            return Ok(Err(duplicate("tag", &t.name, ns)));
        }
        repo::put_item(tx, ns, Kind::Tag, &t.name, &t)?;
        Ok(Ok(()))
    })
    .await?;
    Ok(json(StatusCode::CREATED, &out))
}

/// `POST …/{ns}/tags` with `{"tags": [{"name": …}, …]}`: replaces the namespace's tags, or
/// adds to them with `X-Openstack-Append: true`.
pub async fn create_tags(
    g: &Glance,
    caller: &Caller,
    ns: &str,
    body: Map<String, Value>,
    append: bool,
) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    enforce(g, caller, "add_metadef_tags", Some(&n))?;
    let names: Vec<String> = body
        .get("tags")
        .and_then(Value::as_array)
        .ok_or_else(|| schema_error("tags", "'tags' is a required property"))?
        .iter()
        .map(|t| {
            t.get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| schema_error("tags", "'name' is a required property"))
        })
        .collect::<Result<_, _>>()?;
    let out = json!({"tags": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()});
    in_namespace(g, ns, move |tx, ns| {
        if !append {
            repo::delete_items(tx, ns, Some(Kind::Tag))?;
        }
        for (i, name) in names.iter().enumerate() {
            if tag_taken(tx, ns, name)? {
                return Ok(Err(duplicate("tag", name, ns)));
            }
            repo::put_item(tx, ns, Kind::Tag, name, &new_tag(name, i))?;
        }
        Ok(Ok(()))
    })
    .await?;
    Ok(json(StatusCode::CREATED, &out))
}

/// `PUT …/{ns}/properties|objects|tags/{name}`: replaces the definition; a new name
/// renames it (409 when that name is taken).
pub async fn update(
    g: &Glance,
    caller: &Caller,
    ns: &str,
    what: &str,
    name: &str,
    body: Map<String, Value>,
) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    let old = name.to_string();
    match what {
        "properties" => {
            enforce(g, caller, "modify_metadef_property", Some(&n))?;
            let mut p = property_from(&body)?;
            let out = in_namespace(g, ns, move |tx, ns| {
                let Some(cur) = repo::item_locked::<Property>(tx, ns, Kind::Property, &old)? else {
                    return Ok(Err(not_found("property", &old)));
                };
                if p.name != old
                    && repo::item_locked::<Property>(tx, ns, Kind::Property, &p.name)?.is_some()
                {
                    return Ok(Err(duplicate("property", &p.name, ns)));
                }
                p.created_at = cur.created_at.clone();
                repo::delete_item(tx, ns, Kind::Property, &old)?;
                repo::put_item(tx, ns, Kind::Property, &p.name, &p)?;
                Ok(Ok(property_json(&p)))
            })
            .await?;
            Ok(json(StatusCode::OK, &out))
        }
        "objects" => {
            enforce(g, caller, "modify_metadef_object", Some(&n))?;
            let mut ob = object_from(&body)?;
            let out = in_namespace(g, ns, move |tx, ns| {
                let Some(cur) = repo::item_locked::<Object>(tx, ns, Kind::Object, &old)? else {
                    return Ok(Err(not_found("object", &old)));
                };
                if ob.name != old
                    && repo::item_locked::<Object>(tx, ns, Kind::Object, &ob.name)?.is_some()
                {
                    return Ok(Err(duplicate("object", &ob.name, ns)));
                }
                ob.created_at = cur.created_at.clone();
                ob.position = cur.position;
                repo::delete_item(tx, ns, Kind::Object, &old)?;
                repo::put_item(tx, ns, Kind::Object, &ob.name, &ob)?;
                Ok(Ok(object_json(ns, &ob)))
            })
            .await?;
            Ok(json(StatusCode::OK, &out))
        }
        _ => {
            enforce(g, caller, "modify_metadef_tag", Some(&n))?;
            let new_name = required_name(&body, "tag")?;
            let out = in_namespace(g, ns, move |tx, ns| {
                let Some(mut t) = repo::item_locked::<Tag>(tx, ns, Kind::Tag, &old)? else {
                    return Ok(Err(not_found("tag", &old)));
                };
                if !new_name.eq_ignore_ascii_case(&old) && tag_taken(tx, ns, &new_name)? {
                    return Ok(Err(duplicate("tag", &new_name, ns)));
                }
                t.name = new_name.clone();
                t.updated_at = Some(now());
                repo::delete_item(tx, ns, Kind::Tag, &old)?;
                repo::put_item(tx, ns, Kind::Tag, &t.name, &t)?;
                Ok(Ok(tag_json(&t)))
            })
            .await?;
            Ok(json(StatusCode::OK, &out))
        }
    }
}

/// `DELETE …/{ns}/properties|objects|tags|resource_types/{name}`: refused in a protected
/// namespace, as upstream words it.
pub async fn delete(g: &Glance, caller: &Caller, ns: &str, what: &str, name: &str) -> ApiResult {
    let n: Namespace = readable(g, caller, ns).await?;
    let (rule, kind, word) = match what {
        "properties" => ("remove_metadef_property", Kind::Property, "property"),
        "objects" => ("delete_metadef_object", Kind::Object, "object"),
        "tags" => ("delete_metadef_tag", Kind::Tag, "tag"),
        _ => (
            "remove_metadef_resource_type_association",
            Kind::Association,
            "resource-type-association",
        ),
    };
    enforce(g, caller, rule, Some(&n))?;
    let item = name.to_string();
    let locked = n.protected;
    in_namespace(g, ns, move |tx, ns| {
        // As upstream: a missing name is 404 before a protected namespace is 403.
        if repo::item_locked::<Value>(tx, ns, kind, &item)?.is_none() {
            let word = if kind == Kind::Tag {
                "metadata tag"
            } else {
                word
            };
            return Ok(Err(not_found(word, &item)));
        }
        if locked {
            return Ok(Err(protected(word, &item)));
        }
        repo::delete_item(tx, ns, kind, &item)?;
        Ok(Ok(()))
    })
    .await?;
    no_content()
}
