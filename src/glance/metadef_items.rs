//! Changing what a metadata-definition namespace holds: properties, objects, tags (one by
//! one or in bulk) and resource-type associations (`POST`, `PUT`, `DELETE` under
//! `/v2/metadefs/namespaces/{ns}/…`). Admin-only by upstream's defaults. The changes
//! themselves are the domain's (`images::metadefs::changes`); this file parses requests,
//! checks the policy and words the domain's refusals as upstream does.

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::metadefs::{association_json, catalog, enforce, object_json, put, readable};
use super::{json, no_content, ApiError, ApiResult, Caller, Glance};
use crate::images::metadefs::files::{self, property_type};
use crate::images::metadefs::model::{position, FORMAT};
use crate::images::metadefs::{Association, Kind, MetadefError, Property, Tag};
use crate::images::record::now;

/// `X-Openstack-Append: true` keeps a namespace's tags when more are posted in bulk.
pub fn append_header(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-openstack-append")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A refusal of the metadefs domain, as upstream words it.
pub fn refusal(e: MetadefError) -> ApiError {
    let word = |k: Kind| match k {
        Kind::Namespace => "namespace",
        Kind::Property => "property",
        Kind::Object => "object",
        Kind::Tag => "tag",
        Kind::Association => "resource-type-association",
    };
    match e {
        MetadefError::NoNamespace(ns) => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Metadata definition namespace={ns} was not found."),
        ),
        MetadefError::Exists {
            kind,
            name,
            namespace,
        } => ApiError::new(
            StatusCode::CONFLICT,
            match kind {
                Kind::Tag => format!(
                    "A metadata tag with name={name} already exists in namespace={namespace}. (Please note that metadata tag names are case insensitive)."
                ),
                Kind::Association => format!(
                    "The metadata definition resource-type association of resource-type={name} to namespace={namespace}, already exists."
                ),
                Kind::Namespace => {
                    format!("The metadata definition namespace={name} already exists.")
                }
                k => format!(
                    "A metadata definition {} with name={name} already exists in namespace={namespace}.",
                    word(k)
                ),
            },
        ),
        MetadefError::Missing { kind, name } => {
            let what = if kind == Kind::Tag { "metadata tag" } else { word(kind) };
            ApiError::new(StatusCode::NOT_FOUND, format!("Could not find {what} {name}"))
        }
        MetadefError::Protected { kind, name } => ApiError::forbidden(format!(
            "Metadata definition {} {name} is protected and cannot be deleted.",
            word(kind)
        )),
        MetadefError::Store(e) => e.into(),
    }
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

fn object_from(body: &Map<String, Value>) -> Result<crate::images::metadefs::Object, ApiError> {
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

/// `POST …/{ns}/properties|objects|resource_types`.
pub async fn create(
    g: &Glance,
    caller: &Caller,
    ns: &str,
    what: &str,
    body: Map<String, Value>,
) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    let out = match what {
        "properties" => {
            enforce(g, caller, "add_metadef_property", Some(&n))?;
            let p = property_from(&body)?;
            let out = property_json(&p);
            catalog(g).add_property(ns, p).await.map_err(refusal)?;
            out
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
            catalog(g).add_object(ns, ob).await.map_err(refusal)?;
            out
        }
        _ => {
            enforce(g, caller, "add_metadef_resource_type_association", Some(&n))?;
            let stamp = now();
            let a = Association {
                format: FORMAT,
                position: position(0),
                name: required_name(&body, "resource_type_association")?,
                prefix: text(&body, "prefix"),
                properties_target: text(&body, "properties_target"),
                created_at: stamp.clone(),
                updated_at: Some(stamp),
            };
            let out = association_json(&a);
            catalog(g).add_association(ns, a).await.map_err(refusal)?;
            out
        }
    };
    Ok(json(StatusCode::CREATED, &out))
}

/// `POST …/{ns}/tags/{tag}`.
pub async fn create_tag(g: &Glance, caller: &Caller, ns: &str, tag: &str) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    enforce(g, caller, "add_metadef_tag", Some(&n))?;
    let t = new_tag(tag, 0);
    let out = tag_json(&t);
    catalog(g).add_tag(ns, t).await.map_err(refusal)?;
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
    let tags = names
        .iter()
        .enumerate()
        .map(|(i, n)| new_tag(n, i))
        .collect();
    catalog(g)
        .set_tags(ns, tags, append)
        .await
        .map_err(refusal)?;
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
    let out = match what {
        "properties" => {
            enforce(g, caller, "modify_metadef_property", Some(&n))?;
            let p = property_from(&body)?;
            let p = catalog(g)
                .replace_property(ns, name, p)
                .await
                .map_err(refusal)?;
            property_json(&p)
        }
        "objects" => {
            enforce(g, caller, "modify_metadef_object", Some(&n))?;
            let ob = object_from(&body)?;
            let ob = catalog(g)
                .replace_object(ns, name, ob)
                .await
                .map_err(refusal)?;
            object_json(ns, &ob)
        }
        _ => {
            enforce(g, caller, "modify_metadef_tag", Some(&n))?;
            let new_name = required_name(&body, "tag")?;
            let t = catalog(g)
                .rename_tag(ns, name, &new_name)
                .await
                .map_err(refusal)?;
            tag_json(&t)
        }
    };
    Ok(json(StatusCode::OK, &out))
}

/// `DELETE …/{ns}/properties|objects|tags|resource_types/{name}`: refused in a protected
/// namespace, as upstream words it.
pub async fn delete(g: &Glance, caller: &Caller, ns: &str, what: &str, name: &str) -> ApiResult {
    let n = readable(g, caller, ns).await?;
    let (rule, kind) = match what {
        "properties" => ("remove_metadef_property", Kind::Property),
        "objects" => ("delete_metadef_object", Kind::Object),
        "tags" => ("delete_metadef_tag", Kind::Tag),
        _ => (
            "remove_metadef_resource_type_association",
            Kind::Association,
        ),
    };
    enforce(g, caller, rule, Some(&n))?;
    catalog(g)
        .remove(ns, kind, name, n.protected)
        .await
        .map_err(refusal)?;
    no_content()
}
