//! Where metadata definitions live: the catalog family `metadefs`, read and written only
//! here. Keys keep a namespace and everything in it together, so that a namespace's
//! contents are one prefix scan and deleting a namespace is one range:
//!
//! ```text
//! n \0 <namespace>                          the namespace
//! n \0 <namespace> \0 <kind> \0 <name>      its properties (p), objects (o), tags (t) and
//!                                           resource-type associations (a)
//! r \0 <resource type>                      a resource type
//! ```
//!
//! Names never contain NUL (the API refuses control characters), so the separators are
//! unambiguous. Records are JSON with a `format` number, as image records are.

use glint_storage::{Catalog, Store, StoreError, Tx};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::model::{Kind, Namespace, ResourceType, FORMAT};

fn namespace_key(ns: &str) -> Vec<u8> {
    let mut k = b"n\0".to_vec();
    k.extend_from_slice(ns.as_bytes());
    k
}

/// The prefix of everything inside namespace `ns`.
fn contents_prefix(ns: &str) -> Vec<u8> {
    let mut k = namespace_key(ns);
    k.push(0);
    k
}

fn kind_prefix(ns: &str, kind: Kind) -> Vec<u8> {
    let mut k = contents_prefix(ns);
    k.push(kind.tag());
    k.push(0);
    k
}

fn item_key(ns: &str, kind: Kind, name: &str) -> Vec<u8> {
    let mut k = kind_prefix(ns, kind);
    k.extend_from_slice(name.as_bytes());
    k
}

fn resource_type_key(name: &str) -> Vec<u8> {
    let mut k = b"r\0".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        #[serde(default)]
        format: u32,
    }
    let why = |e: &dyn std::fmt::Display| {
        tracing::error!(key = %String::from_utf8_lossy(key), error = %e, "metadef record cannot be decoded");
        StoreError::Malformed("metadef record")
    };
    let v: Versioned = serde_json::from_slice(bytes).map_err(|e| why(&e))?;
    if v.format > FORMAT {
        return Err(why(&format!("format {} is newer than {FORMAT}", v.format)));
    }
    serde_json::from_slice(bytes).map_err(|e| why(&e))
}

fn encode<T: Serialize>(rec: &T) -> Vec<u8> {
    serde_json::to_vec(rec).expect("a metadef record serializes")
}

/// Every namespace, in name order (a record that does not decode is logged and skipped).
pub async fn namespaces(store: &Store) -> Result<Vec<Namespace>, StoreError> {
    let rows = store
        .scan(Catalog::Metadefs, b"n\0".to_vec(), None, usize::MAX)
        .await?;
    Ok(rows
        .into_iter()
        // Namespace keys have one NUL (after the `n`); contents have more.
        .filter(|(k, _)| k[2..].iter().all(|b| *b != 0))
        .filter_map(|(k, v)| decode(&k, &v).ok())
        .collect())
}

pub async fn namespace(store: &Store, ns: &str) -> Result<Option<Namespace>, StoreError> {
    store
        .get(Catalog::Metadefs, namespace_key(ns))
        .await?
        .map(|v| decode(&namespace_key(ns), &v))
        .transpose()
}

/// The records of one kind in namespace `ns`, in name order (callers that answer lists
/// order them by `position`).
pub async fn items<T: DeserializeOwned>(
    store: &Store,
    ns: &str,
    kind: Kind,
) -> Result<Vec<T>, StoreError> {
    let rows = store
        .scan(Catalog::Metadefs, kind_prefix(ns, kind), None, usize::MAX)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| decode(&k, &v).ok())
        .collect())
}

pub async fn item<T: DeserializeOwned>(
    store: &Store,
    ns: &str,
    kind: Kind,
    name: &str,
) -> Result<Option<T>, StoreError> {
    let key = item_key(ns, kind, name);
    store
        .get(Catalog::Metadefs, key.clone())
        .await?
        .map(|v| decode(&key, &v))
        .transpose()
}

pub async fn resource_types(store: &Store) -> Result<Vec<ResourceType>, StoreError> {
    let rows = store
        .scan(Catalog::Metadefs, b"r\0".to_vec(), None, usize::MAX)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| decode(&k, &v).ok())
        .collect())
}

/// Inside a transaction: the namespace, locked for update.
pub fn namespace_locked(tx: &Tx<'_>, ns: &str) -> glint_storage::Result<Option<Namespace>> {
    let key = namespace_key(ns);
    tx.get_for_update(Catalog::Metadefs, &key)?
        .map(|v| decode(&key, &v))
        .transpose()
}

pub fn put_namespace(tx: &Tx<'_>, rec: &Namespace) -> glint_storage::Result<()> {
    tx.put(
        Catalog::Metadefs,
        &namespace_key(&rec.namespace),
        &encode(rec),
    )
}

/// Inside a transaction: the item, locked for update.
pub fn item_locked<T: DeserializeOwned>(
    tx: &Tx<'_>,
    ns: &str,
    kind: Kind,
    name: &str,
) -> glint_storage::Result<Option<T>> {
    let key = item_key(ns, kind, name);
    tx.get_for_update(Catalog::Metadefs, &key)?
        .map(|v| decode(&key, &v))
        .transpose()
}

pub fn put_item<T: Serialize>(
    tx: &Tx<'_>,
    ns: &str,
    kind: Kind,
    name: &str,
    rec: &T,
) -> glint_storage::Result<()> {
    tx.put(Catalog::Metadefs, &item_key(ns, kind, name), &encode(rec))
}

pub fn delete_item(tx: &Tx<'_>, ns: &str, kind: Kind, name: &str) -> glint_storage::Result<()> {
    tx.delete(Catalog::Metadefs, &item_key(ns, kind, name))
}

/// Inside a transaction: deletes every record of `kind` in `ns` (all kinds when None).
pub fn delete_items(tx: &Tx<'_>, ns: &str, kind: Option<Kind>) -> glint_storage::Result<usize> {
    let prefix = match kind {
        Some(k) => kind_prefix(ns, k),
        None => contents_prefix(ns),
    };
    let rows = tx.scan(Catalog::Metadefs, &prefix, None, usize::MAX)?;
    for (k, _) in &rows {
        tx.delete(Catalog::Metadefs, k)?;
    }
    Ok(rows.len())
}

/// Inside a transaction: deletes the namespace and everything in it.
pub fn delete_namespace(tx: &Tx<'_>, ns: &str) -> glint_storage::Result<()> {
    delete_items(tx, ns, None)?;
    tx.delete(Catalog::Metadefs, &namespace_key(ns))
}

/// Inside a transaction: moves everything in namespace `old` to namespace `new` (the
/// namespace record itself is the caller's to write).
pub fn rename_namespace(tx: &Tx<'_>, old: &str, new: &str) -> glint_storage::Result<()> {
    let from = contents_prefix(old);
    let to = contents_prefix(new);
    for (k, v) in tx.scan(Catalog::Metadefs, &from, None, usize::MAX)? {
        let mut moved = to.clone();
        moved.extend_from_slice(&k[from.len()..]);
        tx.put(Catalog::Metadefs, &moved, &v)?;
        tx.delete(Catalog::Metadefs, &k)?;
    }
    tx.delete(Catalog::Metadefs, &namespace_key(old))
}

pub fn resource_type_locked(
    tx: &Tx<'_>,
    name: &str,
) -> glint_storage::Result<Option<ResourceType>> {
    let key = resource_type_key(name);
    tx.get_for_update(Catalog::Metadefs, &key)?
        .map(|v| decode(&key, &v))
        .transpose()
}

/// Inside a transaction: stores association `a` in `ns`, first creating its resource type
/// when it is new (`protected` as the caller says: loaded definitions' types are).
pub fn associate(
    tx: &Tx<'_>,
    ns: &str,
    a: &super::model::Association,
    protected: bool,
) -> glint_storage::Result<()> {
    if resource_type_locked(tx, &a.name)?.is_none() {
        put_resource_type(
            tx,
            &ResourceType {
                format: FORMAT,
                position: a.position,
                name: a.name.clone(),
                protected,
                created_at: a.created_at.clone(),
                updated_at: a.updated_at.clone(),
            },
        )?;
    }
    put_item(tx, ns, Kind::Association, &a.name, a)
}

pub fn put_resource_type(tx: &Tx<'_>, rec: &ResourceType) -> glint_storage::Result<()> {
    tx.put(
        Catalog::Metadefs,
        &resource_type_key(&rec.name),
        &encode(rec),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_a_namespace_together_and_apart_from_its_neighbours() {
        let a = item_key("OS::A", Kind::Property, "x");
        assert!(a.starts_with(&contents_prefix("OS::A")));
        assert!(!a.starts_with(&contents_prefix("OS::A:")));
        assert!(!item_key("OS::AB", Kind::Tag, "x").starts_with(&contents_prefix("OS::A")));
        assert!(namespace_key("OS::A")[2..].iter().all(|b| *b != 0));
    }
}
