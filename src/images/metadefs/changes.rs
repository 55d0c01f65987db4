//! Every change to the metadata-definitions catalog, each one transaction that re-checks
//! the namespace and the names it touches (the engine may run a transaction again after a
//! conflict, so each closure only reads what it captured). Refusals are typed; the Images
//! API words them (`glance/metadef_items.rs`).

use glint_storage::{Store, StoreError, Tx};

use super::model::{Association, Kind, Namespace, Object, Property, Tag, FORMAT};
use super::repo;
use crate::images::record::now;

/// Why a change was refused.
#[derive(Debug)]
pub enum MetadefError {
    /// No namespace of that name.
    NoNamespace(String),
    /// The name is taken in the namespace (`kind`: property, object, tag, association,
    /// namespace).
    Exists {
        kind: Kind,
        name: String,
        namespace: String,
    },
    /// No such item in the namespace.
    Missing {
        kind: Kind,
        name: String,
    },
    /// The namespace is protected: its contents stay.
    Protected {
        kind: Kind,
        name: String,
    },
    Store(StoreError),
}

impl From<StoreError> for MetadefError {
    fn from(e: StoreError) -> Self {
        MetadefError::Store(e)
    }
}

type Outcome<T> = glint_storage::Result<Result<T, MetadefError>>;

/// The metadata definitions of one catalog.
#[derive(Clone)]
pub struct Metadefs {
    store: Store,
}

impl Metadefs {
    pub fn new(store: Store) -> Metadefs {
        Metadefs { store }
    }

    /// Runs `change` in one transaction once namespace `ns` exists.
    async fn in_namespace<T, F>(&self, ns: &str, mut change: F) -> Result<T, MetadefError>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>, &str) -> Outcome<T> + Send + 'static,
    {
        let key = ns.to_string();
        self.store
            .transact(move |tx| {
                if repo::namespace_locked(tx, &key)?.is_none() {
                    return Ok(Err(MetadefError::NoNamespace(key.clone())));
                }
                change(tx, &key)
            })
            .await?
    }

    /// Adds `value` as the item `name` of `kind`; refused when the name is taken.
    async fn add<T>(&self, ns: &str, kind: Kind, name: &str, value: T) -> Result<(), MetadefError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let name = name.to_string();
        self.in_namespace(ns, move |tx, ns| {
            if repo::item_locked::<serde_json::Value>(tx, ns, kind, &name)?.is_some() {
                return Ok(Err(exists(kind, &name, ns)));
            }
            repo::put_item(tx, ns, kind, &name, &value)?;
            Ok(Ok(()))
        })
        .await
    }

    pub async fn add_property(&self, ns: &str, p: Property) -> Result<(), MetadefError> {
        let name = p.name.clone();
        self.add(ns, Kind::Property, &name, p).await
    }

    pub async fn add_object(&self, ns: &str, o: Object) -> Result<(), MetadefError> {
        let name = o.name.clone();
        self.add(ns, Kind::Object, &name, o).await
    }

    pub async fn add_tag(&self, ns: &str, t: Tag) -> Result<(), MetadefError> {
        let name = t.name.clone();
        self.add(ns, Kind::Tag, &name, t).await
    }

    /// Associates a resource type, creating the type (unprotected) when it is new.
    pub async fn add_association(&self, ns: &str, a: Association) -> Result<(), MetadefError> {
        self.in_namespace(ns, move |tx, ns| {
            if repo::item_locked::<Association>(tx, ns, Kind::Association, &a.name)?.is_some() {
                return Ok(Err(exists(Kind::Association, &a.name, ns)));
            }
            repo::associate(tx, ns, &a, false)?;
            Ok(Ok(()))
        })
        .await
    }

    /// Replaces the namespace's tags with `tags`, or adds them (`append`).
    pub async fn set_tags(
        &self,
        ns: &str,
        tags: Vec<Tag>,
        append: bool,
    ) -> Result<(), MetadefError> {
        self.in_namespace(ns, move |tx, ns| {
            if !append {
                repo::delete_items(tx, ns, Some(Kind::Tag))?;
            }
            for t in &tags {
                if repo::item_locked::<Tag>(tx, ns, Kind::Tag, &t.name)?.is_some() {
                    return Ok(Err(exists(Kind::Tag, &t.name, ns)));
                }
                repo::put_item(tx, ns, Kind::Tag, &t.name, t)?;
            }
            Ok(Ok(()))
        })
        .await
    }

    /// Replaces item `old` of `kind` with `value` (named `new_name`: a rename when it
    /// differs, refused when that name is taken). `keep` carries what the stored item keeps
    /// (its creation time and position) into the new value.
    async fn replace<T, K>(
        &self,
        ns: &str,
        kind: Kind,
        old: &str,
        new_name: &str,
        value: T,
        keep: K,
    ) -> Result<T, MetadefError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
        K: Fn(&T, &mut T) + Send + Sync + 'static,
    {
        let (old, new_name) = (old.to_string(), new_name.to_string());
        self.in_namespace(ns, move |tx, ns| {
            let Some(current) = repo::item_locked::<T>(tx, ns, kind, &old)? else {
                return Ok(Err(MetadefError::Missing {
                    kind,
                    name: old.clone(),
                }));
            };
            if new_name != old
                && repo::item_locked::<serde_json::Value>(tx, ns, kind, &new_name)?.is_some()
            {
                return Ok(Err(exists(kind, &new_name, ns)));
            }
            let mut next = value.clone();
            keep(&current, &mut next);
            repo::delete_item(tx, ns, kind, &old)?;
            repo::put_item(tx, ns, kind, &new_name, &next)?;
            Ok(Ok(next))
        })
        .await
    }

    pub async fn replace_property(
        &self,
        ns: &str,
        old: &str,
        p: Property,
    ) -> Result<Property, MetadefError> {
        let name = p.name.clone();
        self.replace(ns, Kind::Property, old, &name, p, |cur: &Property, next| {
            next.created_at = cur.created_at.clone();
        })
        .await
    }

    pub async fn replace_object(
        &self,
        ns: &str,
        old: &str,
        o: Object,
    ) -> Result<Object, MetadefError> {
        let name = o.name.clone();
        self.replace(ns, Kind::Object, old, &name, o, |cur: &Object, next| {
            next.created_at = cur.created_at.clone();
            next.position = cur.position;
        })
        .await
    }

    pub async fn rename_tag(
        &self,
        ns: &str,
        old: &str,
        new_name: &str,
    ) -> Result<Tag, MetadefError> {
        let placeholder = Tag {
            format: FORMAT,
            position: 0,
            name: new_name.to_string(),
            created_at: String::new(),
            updated_at: Some(now()),
        };
        self.replace(
            ns,
            Kind::Tag,
            old,
            new_name,
            placeholder,
            |cur: &Tag, next| {
                next.created_at = cur.created_at.clone();
                next.position = cur.position;
            },
        )
        .await
    }

    /// Removes item `name` of `kind`: missing is refused before a protected namespace is.
    pub async fn remove(
        &self,
        ns: &str,
        kind: Kind,
        name: &str,
        protected: bool,
    ) -> Result<(), MetadefError> {
        let name = name.to_string();
        self.in_namespace(ns, move |tx, ns| {
            if repo::item_locked::<serde_json::Value>(tx, ns, kind, &name)?.is_none() {
                return Ok(Err(MetadefError::Missing {
                    kind,
                    name: name.clone(),
                }));
            }
            if protected {
                return Ok(Err(MetadefError::Protected {
                    kind,
                    name: name.clone(),
                }));
            }
            repo::delete_item(tx, ns, kind, &name)?;
            Ok(Ok(()))
        })
        .await
    }

    /// Removes every item of `kind` (all of the namespace's contents when None).
    pub async fn remove_all(&self, ns: &str, kind: Option<Kind>) -> Result<(), MetadefError> {
        self.in_namespace(ns, move |tx, ns| {
            repo::delete_items(tx, ns, kind)?;
            Ok(Ok(()))
        })
        .await
    }

    /// Deletes the namespace and everything in it.
    pub async fn delete_namespace(&self, ns: &str) -> Result<(), MetadefError> {
        self.in_namespace(ns, move |tx, ns| {
            repo::delete_namespace(tx, ns)?;
            Ok(Ok(()))
        })
        .await
    }

    /// Stores `next` in place of namespace `old` (a rename carries its contents along;
    /// refused when the new name is taken).
    pub async fn update_namespace(&self, old: &str, next: Namespace) -> Result<(), MetadefError> {
        self.in_namespace(old, move |tx, old| {
            if next.namespace != old {
                if repo::namespace_locked(tx, &next.namespace)?.is_some() {
                    return Ok(Err(MetadefError::Exists {
                        kind: Kind::Namespace,
                        name: next.namespace.clone(),
                        namespace: next.namespace.clone(),
                    }));
                }
                repo::rename_namespace(tx, old, &next.namespace)?;
            }
            repo::put_namespace(tx, &next)?;
            Ok(Ok(()))
        })
        .await
    }
}

fn exists(kind: Kind, name: &str, ns: &str) -> MetadefError {
    MetadefError::Exists {
        kind,
        name: name.to_string(),
        namespace: ns.to_string(),
    }
}
