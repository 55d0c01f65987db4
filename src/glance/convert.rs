//! The `image_conversion` import plugin (upstream's `[image_import_opts]
//! image_import_plugins = image_conversion`, `[image_conversion] output_format`): an imported
//! image of another disk format is converted with `qemu-img convert` before it becomes
//! active, and records the new `disk_format`, size, checksum, multihash and virtual size.
//!
//! With Glint's engine this is also how cloud images meet each other: a compressed qcow2
//! shares no chunk with anything, its raw conversion shares most of them with other releases
//! of the same system (storage/README.md, "Qcow2"), and zero runs of the raw image cost
//! nothing.
//!
//! Bounds: the source is written to a private directory under `[task] work_dir` (default
//! `convert/` in the first data directory), judged by the format inspector (unsafe or
//! mismatched data is refused before `qemu-img` sees it), converted there, streamed into the
//! engine and removed; one conversion runs at a time; the source may not exceed the image
//! size limit and neither may the virtual size nor the output. Leftovers of a crash are
//! removed at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::data::{ingest, Ingested};
use super::inspect::{Findings, Inspector};
use super::ApiError;
use crate::config::ConversionOptions;

/// How long one `qemu-img convert` may run.
const CONVERT_TIMEOUT: Duration = Duration::from_secs(3600);
const WORK_PREFIX: &str = "glint-convert-";

/// One conversion at a time: each takes disk space for two copies and a core.
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// `qemu-img`'s name for a Glance disk format it can read, if it can.
fn qemu_format(disk_format: &str) -> Option<&'static str> {
    Some(match disk_format {
        "raw" => "raw",
        "qcow2" => "qcow2",
        "vmdk" => "vmdk",
        "vhd" => "vpc",
        "vhdx" => "vhdx",
        "vdi" => "vdi",
        _ => return None,
    })
}

/// Whether an image with these formats is converted: a bare image of a format qemu-img
/// reads, other than the output format (other containers hold more than one disk).
pub fn applies(
    opts: &ConversionOptions,
    disk_format: Option<&str>,
    container: Option<&str>,
) -> bool {
    container == Some("bare")
        && disk_format.is_some_and(|d| d != opts.output_format && qemu_format(d).is_some())
}

/// Removes what conversions interrupted by a crash left in the work directory.
pub fn clean_work_dir(opts: &ConversionOptions) {
    let Ok(entries) = std::fs::read_dir(&opts.work_dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(WORK_PREFIX) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// What a conversion produced: the converted bytes, written to `store` (not committed).
pub struct Converted {
    pub data: Ingested,
    pub disk_format: String,
    pub virtual_size: Option<u64>,
}

/// Converts `source`, an image declared as `declared`: written to the work directory while
/// inspected, judged by `judge` (the import's verdict: refuse before conversion), converted
/// and streamed into `store`. At most `limit` bytes in, virtual size and out.
pub async fn convert<S, E>(
    opts: &ConversionOptions,
    store: &glint_storage::Store,
    algo: crate::config::HashAlgo,
    source: S,
    declared: &str,
    limit: u64,
    judge: impl FnOnce(&Findings) -> Result<Option<u64>, ApiError>,
) -> Result<Converted, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let _slot = SLOTS.acquire().await.expect("never closed");
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        ApiError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("Image conversion failed: {what}: {e}"),
        )
    };
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| failed("work directory", &e))?;
    let work = tempfile::Builder::new()
        .prefix(WORK_PREFIX)
        .tempdir_in(&opts.work_dir)
        .map_err(|e| failed("work directory", &e))?;
    let src = work.path().join("source");
    let findings = write_source(&src, source, limit)
        .await
        .map_err(|e| match e {
            SourceError::TooLarge => glint_storage::StoreError::TooLarge { limit }.into(),
            SourceError::Read(e) => failed("reading the image", &e),
            SourceError::Write(e) => failed("writing the work copy", &e),
        })?;
    judge(&findings)?;
    if findings.virtual_size.is_some_and(|v| v > limit) {
        return Err(glint_storage::StoreError::TooLarge { limit }.into());
    }
    // The data's own format when the inspector knows it (a relaxed format match may have
    // let another one through), else what was declared.
    let from = findings
        .format
        .as_deref()
        .and_then(qemu_format)
        .or_else(|| qemu_format(declared))
        .ok_or_else(|| ApiError::bad(format!("Cannot convert disk_format {declared}")))?;
    let out = work.path().join("converted");
    run_qemu_img(from, &opts.output_format, &src, &out).await?;
    let _ = tokio::fs::remove_file(&src).await;
    let file = tokio::fs::File::open(&out)
        .await
        .map_err(|e| failed("reading the converted image", &e))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
    let data = ingest(store, stream, limit, algo).await?;
    let virtual_size = data
        .findings
        .verdict(&opts.output_format)
        .map_err(|r| failed("the converted image", &r))?
        .virtual_size;
    Ok(Converted {
        data,
        disk_format: opts.output_format.clone(),
        virtual_size,
    })
}

enum SourceError {
    TooLarge,
    Read(String),
    Write(std::io::Error),
}

/// Writes `source` to `path`, inspecting it; at most `limit` bytes.
async fn write_source<S, E>(path: &Path, source: S, limit: u64) -> Result<Findings, SourceError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(SourceError::Write)?;
    let mut inspector = Inspector::new();
    let mut size = 0u64;
    let mut source = std::pin::pin!(source);
    while let Some(piece) = source.next().await {
        let piece = piece.map_err(|e| SourceError::Read(e.to_string()))?;
        size += piece.len() as u64;
        if size > limit {
            return Err(SourceError::TooLarge);
        }
        inspector.feed(&piece);
        file.write_all(&piece).await.map_err(SourceError::Write)?;
    }
    file.flush().await.map_err(SourceError::Write)?;
    Ok(inspector.conclude(size))
}

/// `qemu-img convert -f <from> -O <to> src out`, with the format named (never probed).
async fn run_qemu_img(from: &str, to: &str, src: &PathBuf, out: &PathBuf) -> Result<(), ApiError> {
    let child = tokio::process::Command::new("qemu-img")
        .args(["convert", "-q", "-f", from, "-O", to])
        .arg(src)
        .arg(out)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            ApiError::new(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("Image conversion failed: cannot run qemu-img: {e}"),
            )
        })?;
    let done = tokio::time::timeout(CONVERT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| ApiError::bad("Image conversion failed: qemu-img timed out"))?
        .map_err(|e| ApiError::bad(format!("Image conversion failed: {e}")))?;
    if !done.status.success() {
        let why = String::from_utf8_lossy(&done.stderr);
        let why: String = why.trim().chars().take(500).collect();
        return Err(ApiError::bad(format!("Image conversion failed: {why}")));
    }
    Ok(())
}
