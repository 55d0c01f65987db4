//! Multiple stores (`enabled_backends`, API.md §13). Each backend is an engine of its own
//! (its data directories, e.g. another disk, and its own chunk catalog under
//! `<catalog_dir>/backend-<id>`); the default backend is the main store, which also holds
//! every catalog (images, tasks, S3). Without `enabled_backends` there is one store and the
//! API answers as upstream's single-store mode.
//!
//! A blob in another backend is committed there before the image record that names it is
//! committed in the main catalog; a crash in between leaves an unreferenced blob, which
//! `reconcile` removes at start.

use std::collections::BTreeMap;

use glint_storage::{BlobId, Store};

use crate::config::{BackendConfig, Config};

pub struct Backend {
    pub cfg: BackendConfig,
    pub store: Store,
}

pub struct Stores {
    main: Store,
    /// By id; empty in single-store mode.
    backends: BTreeMap<String, Backend>,
    default_id: Option<String>,
}

impl Stores {
    /// Opens the other backends' engines (the main store is already open).
    pub async fn open(main: Store, cfg: &Config) -> Result<Stores, glint_storage::StoreError> {
        let mut backends = BTreeMap::new();
        let mut default_id = None;
        for b in &cfg.glance.backends {
            let store = if b.default {
                default_id = Some(b.id.clone());
                main.clone()
            } else {
                let dirs = if b.data_dirs.is_empty() {
                    vec![cfg.catalog_dir.join(format!("backend-{}-data", b.id))]
                } else {
                    b.data_dirs.clone()
                };
                for d in &dirs {
                    std::fs::create_dir_all(d).map_err(|source| glint_storage::StoreError::Io {
                        path: d.clone(),
                        source,
                    })?;
                }
                let mut sc = glint_storage::StoreConfig::new(
                    dirs,
                    cfg.catalog_dir.join(format!("backend-{}", b.id)),
                );
                cfg.apply_engine_options(&mut sc);
                // Sharing the catalog database and the bucket, each backend keeps its own
                // tables and its own pack prefix (a sibling: prefixes list recursively).
                let tag =
                    b.id.to_ascii_lowercase()
                        .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
                sc.catalog_schema = format!("glint_backend_{tag}");
                if let Some(p) = &mut sc.pack_store {
                    p.prefix = format!("{}-backend-{tag}", p.prefix.trim_end_matches('/'));
                }
                tokio::task::spawn_blocking(move || Store::open(sc)).await??
            };
            backends.insert(
                b.id.clone(),
                Backend {
                    cfg: b.clone(),
                    store,
                },
            );
        }
        Ok(Stores {
            main,
            backends,
            default_id,
        })
    }

    pub fn multi(&self) -> bool {
        !self.backends.is_empty()
    }

    pub fn main(&self) -> &Store {
        &self.main
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.backends.keys().map(String::as_str)
    }

    pub fn backends(&self) -> impl Iterator<Item = &Backend> {
        self.backends.values()
    }

    /// Waits for every store's background reclamation (of writes a stop cut short).
    pub async fn settle(&self) {
        self.main.settle().await;
        for b in self.backends() {
            b.store.settle().await;
        }
    }

    pub fn known(&self, id: &str) -> bool {
        self.backends.contains_key(id)
    }

    /// The id data goes to when a request names none (None in single-store mode).
    pub fn default_id(&self) -> Option<&str> {
        self.default_id.as_deref()
    }

    /// The engine behind a location's store id (None: the main store).
    pub fn store(&self, id: Option<&str>) -> &Store {
        id.and_then(|i| self.backends.get(i))
            .map_or(&self.main, |b| &b.store)
    }

    /// Whether a location in store `id` lives in the main engine (its blob commits and
    /// deletes in the main catalog's transaction).
    pub fn is_main(&self, id: Option<&str>) -> bool {
        id.is_none() || id == self.default_id.as_deref()
    }

    /// Deletes blobs in other backends after the image record that named them is gone (a
    /// failure leaves an orphan that `reconcile` removes at the next start).
    pub async fn delete_elsewhere(&self, blobs: Vec<(String, BlobId)>) {
        for (store, blob) in blobs {
            if let Err(e) = self.store(Some(&store)).delete(blob).await {
                tracing::warn!(%store, %blob, error = %e, "backend blob left for reconciliation");
            }
        }
    }

    /// Deletes blobs of other backends that no image names (left by a crash between a
    /// backend commit and the image record's).
    pub async fn reconcile(&self) -> Result<usize, glint_storage::StoreError> {
        if !self.multi() {
            return Ok(0);
        }
        let mut named: BTreeMap<String, Vec<BlobId>> = BTreeMap::new();
        for r in crate::images::repo::all(&self.main).await? {
            for (store, blob) in r.locations() {
                if let Some(s) = store {
                    named.entry(s.to_string()).or_default().push(blob);
                }
            }
        }
        let mut removed = 0;
        for (id, b) in &self.backends {
            if b.cfg.default {
                continue;
            }
            let keep = named.get(id).cloned().unwrap_or_default();
            for blob in b.store.list_blobs().await? {
                if !keep.contains(&blob) {
                    b.store.delete(blob).await?;
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            tracing::warn!(
                removed,
                "removed backend blobs no image names (an interrupted upload or delete)"
            );
        }
        Ok(removed)
    }
}
