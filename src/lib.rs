//! Glint's server: the S3 gateway (and, next, the Glance Images API v2) over the
//! `glint-storage` engine. The binary in `main.rs` is a thin CLI over this library, which the
//! integration tests start on loopback.

pub mod body;
pub mod config;
pub mod conn;
pub mod credentials;
pub mod damage;
pub mod glance;
pub mod http_util;
pub mod images;
pub mod range;
pub mod request_body;
pub mod s3;
pub mod server;

use std::sync::Arc;

use glint_storage::Store;

/// A running S3 listener (for tests and the binary).
pub struct Running {
    pub s3_addr: std::net::SocketAddr,
    pub glance_addr: std::net::SocketAddr,
    pub store: Store,
    /// The image backends (the main store, and others with `enabled_backends`).
    pub stores: Arc<images::stores::Stores>,
}

/// Opens the store, installs the bootstrap key and starts the S3 listener.
pub async fn start(
    cfg: config::Config,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    let store_cfg = cfg.store_config();
    for d in &store_cfg.data_dirs {
        std::fs::create_dir_all(d)?;
    }
    let (store, recovery) =
        tokio::task::spawn_blocking(move || Store::open_with_report(store_cfg)).await??;
    if recovery.unclean_shutdown {
        tracing::warn!(?recovery, "store recovered after an unclean shutdown");
    }
    if let Some((access, secret, project)) = &cfg.s3_bootstrap {
        credentials::put(&store, access, secret, project).await?;
        tracing::info!(access_key = %access, project = %project, "bootstrap S3 key installed");
    }
    let stores = Arc::new(images::stores::Stores::open(store.clone(), &cfg).await?);
    stores.reconcile().await?;
    // Nothing runs yet: whatever a previous process left mid-way is rolled back now.
    let recovered = glance::recovery::recover(&store, cfg.glance.task_time_to_live).await?;
    if !recovered.is_empty() {
        tracing::warn!(
            ?recovered,
            "image operations interrupted by the last stop were rolled back"
        );
    }
    let cfg = Arc::new(cfg);
    let listener = server::bind(cfg.s3_addr).await?;
    let s3_addr = listener.local_addr()?;
    // One policy for the Images API and the S3 images bucket.
    let policy = Arc::new(
        images::policy::Policy::load(cfg.glance.policy_file.as_deref())
            .map_err(|e| glance::SchemaError::Policy(e.to_string()))?,
    );
    let s3 = Arc::new(s3::S3 {
        store: store.clone(),
        cfg: cfg.clone(),
        image_stores: stores.clone(),
        images: images::ImageRepo::new(store.clone(), policy.clone()),
    });
    let limits = listener_limits(&cfg.limits);
    tokio::spawn(server::serve_s3(listener, limits.clone(), s3));
    tracing::info!(%s3_addr, "S3 listening");
    let listener = server::bind(cfg.glance_addr).await?;
    let glance_addr = listener.local_addr()?;
    let glance = Arc::new(glance::Glance::new(stores.clone(), cfg.clone(), policy)?);
    let noauth = glance.noauth();
    let o = &cfg.glance;
    if o.delayed_delete && o.scrubber_wakeup_time > 0 {
        glance::scrubber::spawn_periodic(
            stores.clone(),
            std::time::Duration::from_secs(o.scrub_time),
            std::time::Duration::from_secs(o.scrubber_wakeup_time),
        );
    }
    tokio::spawn(server::serve_glance(listener, limits, glance));
    if !noauth {
        tracing::info!(%glance_addr, "Glance API listening; tokens are validated by Keystone");
    } else {
        tracing::warn!(
        %glance_addr,
        "Glance API listening in noauth mode: identity headers (X-Project-Id, X-Roles) and USER:PROJECT[:ROLES] tokens are trusted; bind it to loopback only"
        );
    }
    Ok(Running {
        s3_addr,
        glance_addr,
        store,
        stores,
    })
}

/// The configured connection limits, with the cap lowered to what this process's file
/// descriptors allow (raised to the hard limit first): a quarter (at least 128) stays with
/// the engine's chunk files, RocksDB and outgoing connections, and the two listeners share
/// the rest, so the cap is reached (and idle connections evicted) before `accept` can fail
/// for want of descriptors.
fn listener_limits(configured: &conn::Limits) -> conn::Limits {
    let fds = conn::raise_fd_limit();
    let reserved = (fds / 4).max(128);
    let budget = (fds.saturating_sub(reserved) / 2).max(16) as usize;
    let mut limits = configured.clone();
    if limits.max_connections > budget {
        tracing::warn!(
            configured = limits.max_connections,
            allowed = budget,
            open_files_limit = fds,
            "max_connections lowered to fit the open-files limit (raise it with LimitNOFILE / ulimit -n)"
        );
        limits.max_connections = budget;
    }
    limits
}
