//! Definition files, in upstream's JSON format (one namespace per file, as
//! `etc/glance/metadefs/*.json` ship): what `glint metadefs load / export / unload` read and
//! write, the equivalents of `glance-manage db_load_metadefs / db_export_metadefs /
//! db_unload_metadefs`. As upstream: loading skips a namespace that exists (unless asked to
//! overwrite it), creates the resource types a file associates (protected), and an owner
//! missing from a file is `admin`.

use std::path::Path;

use glint_storage::{Catalog, Store, StoreError};
use serde_json::{json, Map, Value};

use super::model::{position, Association, Kind, Namespace, Object, Property, Tag, FORMAT};
use super::repo;
use crate::images::record::now;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: not a namespace definition: {1}")]
    Invalid(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a load did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub namespaces: usize,
    pub skipped: usize,
}

/// A namespace and its contents, as a definition file holds them.
pub struct Definition {
    pub namespace: Namespace,
    pub associations: Vec<Association>,
    pub properties: Vec<Property>,
    pub objects: Vec<Object>,
    pub tags: Vec<Tag>,
}

/// The fields of upstream's PropertyType model: a property definition keeps these and
/// drops anything else, as upstream's API does.
const PROPERTY_FIELDS: &[&str] = &[
    "name",
    "type",
    "title",
    "description",
    "operators",
    "default",
    "readonly",
    "minimum",
    "maximum",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "confidential",
    "items",
    "uniqueItems",
    "minItems",
    "maxItems",
    "additionalItems",
];

/// A property definition as upstream stores and answers it: known fields only, and
/// `default` as text (upstream's model types it so: a file's `"default": 80` reads `"80"`).
pub fn property_type(v: &Value) -> Map<String, Value> {
    let Some(m) = v.as_object() else {
        return Map::new();
    };
    m.iter()
        .filter(|(k, _)| PROPERTY_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| {
            let v = match (k.as_str(), v) {
                ("default", Value::Number(n)) => Value::String(n.to_string()),
                ("default", Value::Bool(b)) => {
                    Value::String(if *b { "True" } else { "False" }.into())
                }
                _ => v.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn property_types(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), Value::Object(property_type(v))))
                .collect()
        })
        .unwrap_or_default()
}

/// A namespace's contents as `POST /v2/metadefs/namespaces` answers them: as given, with
/// property definitions normalised as stored.
pub fn echo(key: &str, v: &Value) -> Value {
    match (key, v) {
        ("properties", _) => Value::Object(property_types(Some(v))),
        ("objects", Value::Array(objects)) => objects
            .iter()
            .map(|o| {
                let mut o = o.clone();
                if let Some(p) = o.get("properties").cloned() {
                    o["properties"] = Value::Object(property_types(Some(&p)));
                }
                o
            })
            .collect(),
        _ => v.clone(),
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Parses one definition document (upstream's file format, which is also the body of
/// `POST /v2/metadefs/namespaces`); `default_owner` when it names none. `stamped`: the
/// records carry an `updated_at` (created through the API) or none (loaded from a file).
pub fn parse(
    doc: &Value,
    default_owner: Option<&str>,
    stamped: bool,
) -> Result<Definition, String> {
    let name = text(doc, "namespace").ok_or("no \"namespace\"")?;
    let stamp = now();
    let updated = stamped.then(|| stamp.clone());
    let namespace = Namespace {
        format: FORMAT,
        namespace: name,
        display_name: text(doc, "display_name"),
        description: text(doc, "description"),
        // An API request gets upstream's default; a file without one keeps none.
        visibility: text(doc, "visibility").or_else(|| stamped.then(|| "private".into())),
        protected: doc
            .get("protected")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        owner: text(doc, "owner").or(default_owner.map(str::to_string)),
        created_at: stamp.clone(),
        updated_at: updated.clone(),
    };
    let list = |key: &str| {
        doc.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let associations = list("resource_type_associations")
        .iter()
        .enumerate()
        .map(|(i, a)| {
            Ok(Association {
                format: FORMAT,
                position: position(i),
                name: text(a, "name").ok_or("a resource type association without a name")?,
                prefix: text(a, "prefix"),
                properties_target: text(a, "properties_target"),
                created_at: stamp.clone(),
                updated_at: updated.clone(),
            })
        })
        .collect::<Result<_, String>>()?;
    let properties = doc
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| Property {
                    format: FORMAT,
                    name: k.clone(),
                    schema: property_type(v),
                    created_at: stamp.clone(),
                    updated_at: updated.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let objects = list("objects")
        .iter()
        .enumerate()
        .map(|(i, o)| object(o, i, stamped))
        .collect::<Result<_, String>>()?;
    let tags = list("tags")
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Ok(Tag {
                format: FORMAT,
                position: position(i),
                name: text(t, "name").ok_or("a tag without a name")?,
                created_at: stamp.clone(),
                updated_at: updated.clone(),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Definition {
        namespace,
        associations,
        properties,
        objects,
        tags,
    })
}

/// One object definition (`{"name", "description", "required", "properties"}`); the
/// `offset`-th of those created together. `stamped` as in [`parse`].
pub fn object(o: &Value, offset: usize, stamped: bool) -> Result<Object, String> {
    let stamp = now();
    Ok(Object {
        format: FORMAT,
        position: position(offset),
        name: text(o, "name")
            .filter(|n| !n.is_empty())
            .ok_or("'name' is a required property")?,
        description: text(o, "description"),
        required: o
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        properties: property_types(o.get("properties")),
        created_at: stamp.clone(),
        updated_at: stamped.then_some(stamp),
    })
}

/// Stores a definition in one transaction: the namespace, its contents, and the resource
/// types it associates (created protected when missing). False when the namespace exists
/// and `overwrite` is off.
pub async fn store_definition(
    store: &Store,
    def: Definition,
    overwrite: bool,
) -> Result<bool, StoreError> {
    store
        .transact(move |tx| {
            let ns = &def.namespace.namespace;
            if repo::namespace_locked(tx, ns)?.is_some() {
                if !overwrite {
                    return Ok(false);
                }
                repo::delete_namespace(tx, ns)?;
            }
            repo::put_namespace(tx, &def.namespace)?;
            for a in &def.associations {
                repo::associate(tx, ns, a, true)?;
            }
            for p in &def.properties {
                repo::put_item(tx, ns, Kind::Property, &p.name, p)?;
            }
            for o in &def.objects {
                repo::put_item(tx, ns, Kind::Object, &o.name, o)?;
            }
            for t in &def.tags {
                repo::put_item(tx, ns, Kind::Tag, &t.name, t)?;
            }
            Ok(true)
        })
        .await
}

/// Loads every `*.json` file of `dir` (or the one file `dir` names), in name order.
pub async fn load(store: &Store, dir: &Path, overwrite: bool) -> Result<Loaded, FilesError> {
    let io = |e| FilesError::Io(dir.display().to_string(), e);
    let mut files: Vec<_> = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
            .collect()
    };
    files.sort();
    let mut done = Loaded::default();
    for f in files {
        let name = f.display().to_string();
        let raw = std::fs::read(&f).map_err(|e| FilesError::Io(name.clone(), e))?;
        let doc: Value = serde_json::from_slice(&raw)
            .map_err(|e| FilesError::Invalid(name.clone(), e.to_string()))?;
        let def =
            parse(&doc, Some("admin"), false).map_err(|e| FilesError::Invalid(name.clone(), e))?;
        if store_definition(store, def, overwrite).await? {
            done.namespaces += 1;
        } else {
            done.skipped += 1;
        }
    }
    Ok(done)
}

/// One namespace as a definition document (the file format).
pub async fn document(store: &Store, ns: &Namespace) -> Result<Value, StoreError> {
    let name = &ns.namespace;
    let mut doc = json!({
        "namespace": name,
        "display_name": ns.display_name,
        "description": ns.description,
        "visibility": ns.visibility,
        "protected": ns.protected,
        "owner": ns.owner,
    });
    let assoc: Vec<Association> = repo::items(store, name, Kind::Association).await?;
    if !assoc.is_empty() {
        doc["resource_type_associations"] = assoc
            .iter()
            .map(|a| {
                let mut v = json!({"name": a.name});
                if let Some(p) = &a.prefix {
                    v["prefix"] = json!(p);
                }
                if let Some(t) = &a.properties_target {
                    v["properties_target"] = json!(t);
                }
                v
            })
            .collect();
    }
    let props: Vec<Property> = repo::items(store, name, Kind::Property).await?;
    if !props.is_empty() {
        let m: Map<String, Value> = props
            .into_iter()
            .map(|p| (p.name, Value::Object(p.schema)))
            .collect();
        doc["properties"] = Value::Object(m);
    }
    let objects: Vec<Object> = repo::items(store, name, Kind::Object).await?;
    if !objects.is_empty() {
        doc["objects"] = objects
            .into_iter()
            .map(|o| json!({"name": o.name, "description": o.description, "required": o.required, "properties": o.properties}))
            .collect();
    }
    let tags: Vec<Tag> = repo::items(store, name, Kind::Tag).await?;
    if !tags.is_empty() {
        doc["tags"] = tags.into_iter().map(|t| json!({"name": t.name})).collect();
    }
    Ok(doc)
}

/// Writes every namespace to `dir` as `<namespace with "::" as "-">.json`; how many.
pub async fn export(store: &Store, dir: &Path) -> Result<usize, FilesError> {
    std::fs::create_dir_all(dir).map_err(|e| FilesError::Io(dir.display().to_string(), e))?;
    let all = repo::namespaces(store).await?;
    for ns in &all {
        let doc = document(store, ns).await?;
        let file = dir.join(format!(
            "{}.json",
            ns.namespace.replace("::", "-").replace('/', "_")
        ));
        let text = serde_json::to_string_pretty(&doc).expect("JSON serializes");
        std::fs::write(&file, text + "\n")
            .map_err(|e| FilesError::Io(file.display().to_string(), e))?;
    }
    Ok(all.len())
}

/// Deletes every definition (namespaces, their contents, resource types); how many records.
pub async fn unload(store: &Store) -> Result<usize, StoreError> {
    let rows = store
        .scan(Catalog::Metadefs, Vec::new(), None, usize::MAX)
        .await?;
    let n = rows.len();
    store
        .transact(move |tx| {
            for (k, _) in &rows {
                tx.delete(Catalog::Metadefs, k)?;
            }
            Ok(())
        })
        .await?;
    Ok(n)
}
