//! The `glint` command. The S3 and Glance front ends arrive with issues 3 and 4; until then it
//! opens the embedded store (running crash recovery) and offers the engine's maintenance calls.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use glint_storage::{ScrubOptions, Store, StoreConfig};

#[derive(Parser)]
#[command(
    name = "glint",
    about = "Glance Images API v2 and S3 gateway over one blob store"
)]
struct Cli {
    /// Root of the embedded store: data in <root>/data, catalog in <root>/catalog.
    #[arg(long, default_value = "var")]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open the store (recovering after a crash) and print its state.
    Status,
    /// Check every chunk against its hash and every reference count against the manifests.
    Scrub {
        /// Fix reference counts and remove orphan chunks.
        #[arg(long)]
        repair: bool,
        /// Skip reading chunk data (references and orphans only).
        #[arg(long)]
        no_data: bool,
    },
    /// Remove unreferenced chunks and temp files older than the grace period.
    Gc {
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("glint: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = StoreConfig::single(&cli.root);
    std::fs::create_dir_all(&cfg.data_dirs[0])?;
    let (store, recovery) =
        tokio::task::spawn_blocking(move || Store::open_with_report(cfg)).await??;
    match cli.command {
        Command::Status => {
            println!("store at {}: {:?}", cli.root.display(), recovery);
            println!("blobs: {}", store.list_blobs().await?.len());
            println!("chunk files: {}", store.chunk_file_count()?);
        }
        Command::Scrub { repair, no_data } => {
            let report = store
                .scrub(ScrubOptions {
                    verify_data: !no_data,
                    repair,
                    ..ScrubOptions::default()
                })
                .await?;
            println!("{report:#?}");
            if !report.is_clean() && !repair {
                return Err(
                    "scrub found problems (run with --repair to fix counts and orphans)".into(),
                );
            }
        }
        Command::Gc { grace_secs } => {
            let removed = store.gc(Duration::from_secs(grace_secs)).await?;
            println!("removed {removed} unreferenced chunks");
        }
    }
    Ok(())
}
