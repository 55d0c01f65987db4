//! Glint's server: the S3 gateway (`s3`) and the Glance Images API v2 (`glance`), two front
//! ends over one images domain (`images`) and the `glint-storage` engine. The binary in
//! `main.rs` is a thin CLI over this library, which the integration tests start on loopback.

pub mod admin;
pub mod body;
pub mod config;
pub mod conn;
pub mod credentials;
pub mod damage;
pub mod glance;
pub mod http_util;
pub mod images;
pub mod logging;
pub mod maintenance;
pub mod metrics;
pub mod range;
pub mod report;
pub mod request_body;
pub mod s3;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod tls;

use std::sync::Arc;

use glint_storage::Store;

/// A running server (for tests and the binary).
pub struct Running {
    pub s3_addr: std::net::SocketAddr,
    pub glance_addr: std::net::SocketAddr,
    /// The admin listener (metrics), when `[glint] admin_bind_port` is set.
    pub admin_addr: Option<std::net::SocketAddr>,
    pub store: Store,
    /// The image backends (the main store, and others with `enabled_backends`).
    pub stores: Arc<images::stores::Stores>,
    background: shutdown::Background,
    drain: std::time::Duration,
}

impl Running {
    /// Stops in order: the listeners stop accepting, idle connections close, requests in
    /// flight get up to the drain time to finish, the scrubber and imports stop (an import
    /// cut short fails as it would on error), then the stores close cleanly as the last
    /// handles drop. Whether everything ended within the drain time.
    pub async fn shutdown(self) -> bool {
        let drained = self.background.stop(self.drain).await;
        if !drained {
            tracing::warn!(drain = ?self.drain, "requests still running at the end of the drain time were cut off");
        }
        // Chunks of writes the stop cut short are reclaimed before the stores record a
        // clean close (after which the next start does not look for them).
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(10), self.stores.settle()).await;
        drop(self.stores);
        drop(self.store);
        drained
    }
}

/// How often a cluster node looks for operations of nodes that are gone.
const REAP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the store, recovers what a previous process left mid-way, and starts both
/// listeners and the background work under one owner.
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
    if images::index::ensure(&store).await? {
        tracing::info!("image listing index built from the image records");
    }
    let shared_catalog = cfg.database_connection.is_some() && !cfg.only_node;
    if shared_catalog {
        // A shared catalog: uploads, imports and backend writes in progress may belong to
        // other nodes, alive and well. Each records its node, and the reaper (below) rolls
        // back those whose node is gone.
        tracing::info!(
            "shared catalog: interrupted image operations are rolled back once their node is \
             gone, not at start"
        );
    } else {
        stores.reconcile().await?;
        // Nothing runs yet: whatever a previous process left mid-way is rolled back now.
        let recovered = glance::recovery::recover(&store, cfg.glance.task_time_to_live).await?;
        if !recovered.is_empty() {
            tracing::warn!(
                ?recovered,
                "image operations interrupted by the last stop were rolled back"
            );
        }
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
        images: images::ImageRepo::new(stores.clone(), policy.clone()),
    });
    let limits = listener_limits(&cfg.limits);
    let background = shutdown::Background::new();
    let metrics = metrics::Metrics::new(
        metrics::Recording {
            metrics: cfg.admin_addr.is_some(),
            access_log: cfg.access_log,
        },
        &store,
    );
    let tls = match &cfg.tls {
        Some(files) => Some(tls::Tls::new(&files.cert_file, &files.key_file)?),
        None => None,
    };
    spawn_reload_on_hangup(&background, tls.clone())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shared = server::Listening {
        limits,
        background: background.clone(),
        metrics,
        tls,
    };
    background.spawn(server::serve_s3(listener, shared.clone(), s3));
    tracing::info!(%s3_addr, scheme, "S3 listening");
    let listener = server::bind(cfg.glance_addr).await?;
    let glance_addr = listener.local_addr()?;
    let glance = Arc::new(glance::Glance::new(
        stores.clone(),
        cfg.clone(),
        policy,
        background.clone(),
    )?);
    let noauth = glance.noauth();
    let o = &cfg.glance;
    if shared_catalog {
        glance::recovery::spawn_reaper(
            &background,
            store.clone(),
            cfg.glance.task_time_to_live,
            REAP_EVERY,
        );
    }
    if o.delayed_delete && o.scrubber_wakeup_time > 0 {
        glance::scrubber::spawn_periodic(
            &background,
            stores.clone(),
            std::time::Duration::from_secs(o.scrub_time),
            std::time::Duration::from_secs(o.scrubber_wakeup_time),
        );
    }
    background.spawn(server::serve_glance(listener, shared.clone(), glance));
    let admin_addr = match cfg.admin_addr {
        Some(addr) => {
            let listener = server::bind(addr).await?;
            let addr = listener.local_addr()?;
            background.spawn(server::serve_admin(listener, shared, store.clone()));
            tracing::info!(admin_addr = %addr, scheme, "admin listener (metrics) listening");
            Some(addr)
        }
        None => None,
    };
    if !noauth {
        tracing::info!(%glance_addr, scheme, "Glance API listening; tokens are validated by Keystone");
    } else {
        tracing::warn!(
        %glance_addr,
        scheme,
        "Glance API listening in noauth mode: identity headers (X-Project-Id, X-Roles) and USER:PROJECT[:ROLES] tokens are trusted; bind it to loopback only"
        );
    }
    Ok(Running {
        s3_addr,
        glance_addr,
        admin_addr,
        store,
        stores,
        drain: cfg.drain_timeout,
        background,
    })
}

/// Reloads the listeners' certificate on each SIGHUP (`systemctl reload glint`). Without
/// TLS a SIGHUP is logged and otherwise ignored (its default action would end the process).
fn spawn_reload_on_hangup(
    background: &shutdown::Background,
    tls: Option<std::sync::Arc<tls::Tls>>,
) -> std::io::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let stop = background.clone();
    background.spawn(async move {
        loop {
            tokio::select! {
                got = hangups.recv() => if got.is_none() { return },
                _ = stop.stopping() => return,
            }
            let Some(tls) = &tls else {
                tracing::info!("SIGHUP: nothing to reload (no cert_file)");
                continue;
            };
            service::reloading();
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: certificate reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: certificate not reloaded; the one in use stays"),
            }
            service::ready("serving; certificate reload done");
        }
    });
    Ok(())
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
