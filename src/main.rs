//! The `glint` command: `serve` runs both APIs (S3 and the Glance Images API) until SIGTERM
//! or SIGINT; `credentials` manages S3 keys; `scrubber` purges or restores delayed-delete
//! images; `status`, `scrub` and `gc` are the engine's maintenance calls.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use glint::config::Config;
use glint_storage::{ScrubOptions, Store};

#[derive(Parser)]
#[command(
    name = "glint",
    about = "Glance Images API v2 and S3 gateway over one blob store"
)]
struct Cli {
    /// Configuration file (glance-api.conf style). Without it, built-in defaults (./var).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Manage S3 access keys.
    Credentials {
        #[command(subcommand)]
        action: CredentialAction,
    },
    /// Open the store (recovering after a crash) and print what it holds, what that costs
    /// on disk, and the space left on its data directories.
    Status {
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Check every chunk against its hash and every reference count against the manifests.
    /// Exit status as fsck's: 0 clean, 1 problems found and repaired, 4 problems left, 8
    /// the scrub could not run.
    Scrub {
        /// Fix reference counts and remove orphan chunks.
        #[arg(long)]
        repair: bool,
        /// Skip reading chunk data (references and orphans only).
        #[arg(long)]
        no_data: bool,
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// The image scrubber (delayed delete): purge `pending_delete` images older than
    /// `scrub_time`, or restore one. Run it while the server is stopped; a running server
    /// scrubs in-process every `scrubber_wakeup_time` seconds.
    Scrubber {
        /// glance-scrubber.conf (`scrub_time`, `wakeup_time`); overrides glance-api.conf.
        #[arg(long)]
        scrubber_config: Option<std::path::PathBuf>,
        /// Restore this image to `active` instead of scrubbing.
        #[arg(long)]
        restore: Option<String>,
        /// Keep running, a pass every `wakeup_time` seconds.
        #[arg(long)]
        daemon: bool,
    },
    /// Metadata definitions: load upstream's definition files (`glance-manage
    /// db_load_metadefs`), export them, or remove them all. Run while the server is stopped.
    Metadefs {
        #[command(subcommand)]
        action: MetadefsAction,
    },
    /// Remove unreferenced chunks and temp files older than the grace period, and compact
    /// format v2 packs whose live bytes fell under `compact_below`.
    Gc {
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite every blob stored in engine format v1 in format v2 (content-defined chunks in
    /// packs), keeping blob ids, then reclaim the v1 chunk files and scrub. Offline: stop
    /// the server first. Interrupted, it leaves every blob whole; run it again to finish.
    MigrateStore,
}

#[derive(Subcommand)]
enum MetadefsAction {
    /// Load every *.json definition file of DIR (e.g. /etc/glance/metadefs); a namespace
    /// that exists is skipped unless --overwrite.
    Load {
        dir: std::path::PathBuf,
        #[arg(long)]
        overwrite: bool,
    },
    /// Write every namespace to DIR, one file each, in the same format.
    Export { dir: std::path::PathBuf },
    /// Delete every namespace, its contents, and every resource type.
    Unload,
}

#[derive(Subcommand)]
enum CredentialAction {
    /// Create a key pair bound to a project; prints the access key and the secret once.
    Create {
        #[arg(long)]
        project: String,
        /// Use this access key instead of a random one (e.g. to match a test suite's config).
        #[arg(long, requires = "secret_key")]
        access_key: Option<String>,
        #[arg(long)]
        secret_key: Option<String>,
    },
    /// List access keys and their projects (never secrets).
    List,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The log format is the configuration's (a configuration that does not load is
    // reported by `run`, in the default format).
    let json = cli
        .config
        .as_deref()
        .and_then(|p| Config::load(p).ok())
        .is_some_and(|c| c.log_format == glint::config::LogFormat::Json);
    let _flush_logs_on_exit = glint::logging::init(json);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("glint: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn open_store(cfg: &Config) -> Result<Store, Box<dyn std::error::Error + Send + Sync>> {
    // The store's own directories (with enabled_backends, the default backend's).
    let sc = cfg.store_config();
    for d in &sc.data_dirs {
        std::fs::create_dir_all(d)?;
    }
    match tokio::task::spawn_blocking(move || Store::open(sc)).await? {
        Ok(store) => Ok(store),
        // RocksDB's lock file: another Glint (the server, usually) has the catalog open.
        Err(e) if e.to_string().contains("LOCK") => Err(format!(
            "the catalog is in use by another process (stop the server first): {e}"
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None => Config::defaults(),
    };
    match cli.command {
        Command::Serve => serve(cfg).await.map(|()| ExitCode::SUCCESS),
        Command::Credentials { action } => {
            credentials(&cfg, action).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            let store = open_store(&cfg).await?;
            glint::maintenance::status(&cfg, &store, json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scrub {
            repair,
            no_data,
            json,
        } => {
            let store = match open_store(&cfg).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("glint scrub: {e}");
                    return Ok(ExitCode::from(8));
                }
            };
            let opts = ScrubOptions {
                verify_data: !no_data,
                repair,
                ..ScrubOptions::default()
            };
            Ok(glint::maintenance::scrub(&store, opts, json).await)
        }
        Command::Scrubber {
            scrubber_config,
            restore,
            daemon,
        } => scrubber(&cfg, scrubber_config, restore, daemon)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Metadefs { action } => metadefs(&cfg, action).await.map(|()| ExitCode::SUCCESS),
        Command::MigrateStore => migrate_store(&cfg).await.map(|()| ExitCode::SUCCESS),
        Command::Gc { grace_secs, json } => {
            let store = open_store(&cfg).await?;
            glint::maintenance::gc(&store, Duration::from_secs(grace_secs), json).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn metadefs(cfg: &Config, action: MetadefsAction) -> Result<(), Error> {
    use glint::images::metadefs::files;
    let store = open_store(cfg).await?;
    match action {
        MetadefsAction::Load { dir, overwrite } => {
            let done = files::load(&store, &dir, overwrite).await?;
            println!(
                "loaded {} namespaces from {} ({} already present, skipped)",
                done.namespaces,
                dir.display(),
                done.skipped
            );
        }
        MetadefsAction::Export { dir } => {
            let n = files::export(&store, &dir).await?;
            println!("exported {n} namespaces to {}", dir.display());
        }
        MetadefsAction::Unload => {
            let n = files::unload(&store).await?;
            println!("removed {n} metadata definition records");
        }
    }
    Ok(())
}

/// Serves until SIGTERM or SIGINT, then stops in order (a second signal exits at once).
async fn serve(cfg: Config) -> Result<(), Error> {
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let running = glint::start(cfg).await?;
    println!("Glint S3 gateway on {scheme}://{}", running.s3_addr);
    glint::service::ready(&format!(
        "serving the Images API on {scheme}://{} and S3 on {scheme}://{}",
        running.glance_addr, running.s3_addr
    ));
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = (
        signal(SignalKind::terminate())?,
        signal(SignalKind::interrupt())?,
    );
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping: requests in flight may finish; a second signal exits at once");
    glint::service::stopping();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    if running.shutdown().await {
        tracing::info!("stopped cleanly");
    }
    Ok(())
}

async fn credentials(cfg: &Config, action: CredentialAction) -> Result<(), Error> {
    let store = open_store(cfg).await?;
    match action {
        CredentialAction::Create {
            project,
            access_key,
            secret_key,
        } => {
            let (a, s) = match (access_key, secret_key) {
                (Some(a), Some(s)) => {
                    glint::credentials::put(&store, &a, &s, &project).await?;
                    (a, s)
                }
                _ => glint::credentials::create(&store, &project).await?,
            };
            println!("access_key {a}\nsecret_key {s}\nproject {project}");
        }
        CredentialAction::List => {
            for (a, p) in glint::credentials::list(&store).await? {
                println!("{a}\t{p}");
            }
        }
    }
    Ok(())
}

/// Offline migration of the engine's format v1 blobs to v2, verified by a scrub.
async fn migrate_store(cfg: &Config) -> Result<(), Error> {
    let store = open_store(cfg).await?;
    let blobs = store.list_blobs().await?;
    let started = std::time::Instant::now();
    let (mut migrated, mut bytes) = (0u64, 0u64);
    for (i, id) in blobs.iter().enumerate() {
        let size = store.blob_info(*id).await?.map_or(0, |b| b.size);
        if store.migrate_blob(*id).await? {
            migrated += 1;
            bytes += size;
        }
        if (i + 1) % 100 == 0 || i + 1 == blobs.len() {
            println!(
                "{}/{} blobs examined, {migrated} migrated ({} MiB) in {:.0} s",
                i + 1,
                blobs.len(),
                bytes >> 20,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let reclaimed = store.gc(Duration::ZERO).await?;
    println!("reclaimed {reclaimed} chunks no blob uses any more");
    let report = store
        .scrub(ScrubOptions {
            verify_data: true,
            repair: false,
            ..ScrubOptions::default()
        })
        .await?;
    let u = store.usage(true).await?;
    println!(
        "now: {} blobs, {} logical bytes in {} packs ({} bytes) and {} v1 chunk files",
        u.blobs, u.logical_bytes, u.packs, u.pack_bytes, u.chunk_files
    );
    if cfg.store_format != glint_storage::Format::V2 {
        println!("set [glint] store_format = v2 so that new writes use format v2 too");
    }
    if !report.is_clean() {
        println!("{report:#?}");
        return Err("scrub after migration found problems (listed above)".into());
    }
    println!("scrub: clean");
    Ok(())
}

/// The image scrubber: purge due pending_delete images (once or as a daemon), or restore one.
async fn scrubber(
    cfg: &Config,
    scrubber_config: Option<PathBuf>,
    restore: Option<String>,
    daemon: bool,
) -> Result<(), Error> {
    let (scrub_time, wakeup) = match scrubber_config {
        Some(p) => glint::config::scrubber_times(&p, cfg)?,
        None => (cfg.glance.scrub_time, cfg.glance.scrubber_wakeup_time),
    };
    let store = open_store(cfg).await?;
    let stores = std::sync::Arc::new(glint::images::stores::Stores::open(store, cfg).await?);
    if let Some(id) = restore {
        if !glint::glance::scrubber::restore(&stores, &id).await? {
            return Err(format!("image {id} is not pending_delete").into());
        }
        println!("restored {id}");
        return Ok(());
    }
    loop {
        let pass =
            glint::glance::scrubber::scrub_once(&stores, Duration::from_secs(scrub_time)).await?;
        println!("purged {} images, {} waiting", pass.purged, pass.waiting);
        if !daemon {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(wakeup.max(1))).await;
    }
}
