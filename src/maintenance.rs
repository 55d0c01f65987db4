//! The maintenance commands' reports: `glint status` (what the store holds and what it
//! costs), `glint scrub` (fsck of the engine) and `glint gc` (reclaim space), each as a
//! table for people or JSON for scripts, with progress while they run (report.rs).
//!
//! Exit codes of `glint scrub` follow fsck's: 0 clean, 1 problems found and all repaired,
//! 4 problems left (run with `--repair`; damaged data stays until a good copy is written),
//! 8 the scrub could not run.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use glint_storage::{Catalog, Progress, ScrubOptions, ScrubReport, Store, Usage};
use serde_json::json;

use crate::config::Config;
use crate::report::{bytes, count, ratio, with_progress, Table};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Every image status, in the Images API's order.
pub const IMAGE_STATUSES: &[&str] = &[
    "queued",
    "saving",
    "uploading",
    "importing",
    "active",
    "deactivated",
    "pending_delete",
    "killed",
    "deleted",
];

/// What `glint status` reports.
struct Status {
    usage: Usage,
    buckets: u64,
    objects: u64,
    images: Vec<(&'static str, u64)>,
    /// (directory, filesystem size, bytes free to the service's user).
    dirs: Vec<(String, Option<(u64, u64)>)>,
}

pub async fn status(cfg: &Config, store: &Store, as_json: bool) -> Result<(), Error> {
    let usage = store.usage(true).await?;
    let (buckets, objects) = store
        .read_catalog(|r| {
            Ok((
                r.count(Catalog::Buckets, b"")?,
                r.count(Catalog::Objects, b"")?,
            ))
        })
        .await?;
    let images = crate::images::index::count_by_status(store, IMAGE_STATUSES).await?;
    let dirs = cfg
        .store_config()
        .data_dirs
        .iter()
        .map(|d| (d.display().to_string(), filesystem_space(d)))
        .collect();
    let s = Status {
        usage,
        buckets,
        objects,
        images,
        dirs,
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&status_json(cfg, &s))?);
    } else {
        print!("{}", status_text(cfg, &s));
    }
    Ok(())
}

/// Where the catalog and chunk data live, without secrets.
fn backends(cfg: &Config) -> (String, Option<String>) {
    let catalog = match &cfg.database_connection {
        Some(url) => format!("PostgreSQL {}", redact(url)),
        None => format!("RocksDB at {}", cfg.catalog_dir.display()),
    };
    let chunks = cfg.chunk_store.as_ref().map(|c| {
        format!(
            "s3 bucket {} at {} (prefix {:?})",
            c.bucket, c.endpoint, c.prefix
        )
    });
    (catalog, chunks)
}

/// A connection URL without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

fn stored(u: &Usage) -> u64 {
    u.chunk_file_bytes + u.pack_bytes
}

fn status_text(cfg: &Config, s: &Status) -> String {
    let u = &s.usage;
    let (catalog, chunks) = backends(cfg);
    let mut out = format!("Catalog: {catalog}\n");
    if let Some(c) = chunks {
        out.push_str(&format!("Chunk store: {c} (local copies below)\n"));
    }
    out.push('\n');
    let mut dirs = Table::new(&["DATA DIRECTORY", "FILESYSTEM", "FREE", "FREE %"]);
    for (d, space) in &s.dirs {
        match space {
            Some((size, free)) => dirs.row([
                d.clone(),
                bytes(*size),
                bytes(*free),
                format!("{:.0}%", 100.0 * *free as f64 / (*size).max(1) as f64),
            ]),
            None => dirs.row([d.clone(), "-".into(), "-".into(), "-".into()]),
        };
    }
    out.push_str(&dirs.render());
    out.push('\n');
    let mut contents = Table::new(&["CONTENTS", "COUNT"]);
    contents.row(["blobs".to_string(), count(u.blobs)]);
    contents.row(["S3 buckets".to_string(), count(s.buckets)]);
    contents.row(["S3 objects".to_string(), count(s.objects)]);
    let images: u64 = s.images.iter().map(|(_, n)| n).sum();
    contents.row(["images".to_string(), count(images)]);
    for (status, n) in s.images.iter().filter(|(_, n)| *n > 0) {
        contents.row([format!("  {status}"), count(*n)]);
    }
    out.push_str(&contents.render());
    out.push('\n');
    let mut space = Table::new(&["SPACE", "BYTES", ""]);
    space.row([
        "logical (what clients stored)".to_string(),
        bytes(u.logical_bytes),
        String::new(),
    ]);
    space.row([
        "  zero runs (not stored)".to_string(),
        bytes(u.zero_bytes),
        String::new(),
    ]);
    space.row([
        "stored (chunk data)".to_string(),
        bytes(stored(u)),
        format!(
            "{} packs, {} chunk files",
            count(u.packs),
            count(u.chunk_files)
        ),
    ]);
    space.row(["catalog".to_string(), bytes(u.catalog_bytes), String::new()]);
    out.push_str(&space.render());
    let data = u.logical_bytes.saturating_sub(u.zero_bytes);
    out.push_str(&format!(
        "\nlogical / stored: {} (zero elision {}, dedup and compression {})\n",
        ratio(u.logical_bytes, stored(u)),
        ratio(u.logical_bytes, data),
        ratio(data, stored(u)),
    ));
    out
}

fn status_json(cfg: &Config, s: &Status) -> serde_json::Value {
    let u = &s.usage;
    let (catalog, chunks) = backends(cfg);
    let div = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    json!({
        "catalog": catalog,
        "chunk_store": chunks,
        "data_dirs": s.dirs.iter().map(|(d, space)| json!({
            "path": d,
            "filesystem_bytes": space.map(|s| s.0),
            "free_bytes": space.map(|s| s.1),
        })).collect::<Vec<_>>(),
        "blobs": u.blobs,
        "s3_buckets": s.buckets,
        "s3_objects": s.objects,
        "images": s.images.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "logical_bytes": u.logical_bytes,
        "zero_bytes": u.zero_bytes,
        "stored_bytes": stored(u),
        "packs": u.packs,
        "pack_bytes": u.pack_bytes,
        "chunk_files": u.chunk_files,
        "chunk_file_bytes": u.chunk_file_bytes,
        "catalog_bytes": u.catalog_bytes,
        "ratio": div(u.logical_bytes, stored(u)),
        "zero_elision_ratio": div(u.logical_bytes, u.logical_bytes.saturating_sub(u.zero_bytes)),
        "dedup_compression_ratio": div(u.logical_bytes.saturating_sub(u.zero_bytes), stored(u)),
    })
}

/// (filesystem size, bytes available to this user) of the filesystem holding `path`.
fn filesystem_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some((st.f_blocks as u64 * unit, st.f_bavail as u64 * unit))
}

/// `glint scrub`: the engine's fsck with progress, a summary table (or JSON) and fsck's
/// exit codes.
pub async fn scrub(store: &Store, opts: ScrubOptions, as_json: bool) -> ExitCode {
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let report = match with_progress(
        "scrub",
        progress.clone(),
        store.scrub_tracked(opts, progress),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("glint scrub: {e}");
            return ExitCode::from(8);
        }
    };
    let took = started.elapsed();
    let damaged = match crate::damage::describe(store, &report.damaged_blobs).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("glint scrub: naming the damaged blobs failed: {e}");
            report.damaged_blobs.iter().map(|b| b.to_string()).collect()
        }
    };
    let code = scrub_exit_code(&report, opts.repair);
    if as_json {
        let v = json!({
            "clean": report.is_clean(),
            "exit_code": code,
            "seconds": took.as_secs_f64(),
            "blobs": report.blobs,
            "packs": report.packs,
            "chunks_verified": report.chunks,
            "bytes_verified": report.bytes_verified,
            "corrupt_chunk_files": report.corrupt.len(),
            "corrupt_records": report.corrupt_records.len(),
            "missing_chunks": report.missing.len(),
            "missing_records": report.missing_records.len(),
            "refcount_mismatches": report.refcount_mismatches.len(),
            "group_count_mismatches": report.group_count_mismatches.len(),
            "orphans": report.orphans.len(),
            "bad_blobs": report.bad_blobs.len(),
            "stray_files": report.stray_files.len(),
            "dead_packs": report.dead_packs,
            "garbage_bytes": report.garbage_bytes,
            "repaired": report.repaired,
            "damaged": damaged,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", scrub_text(&report, &damaged, took, opts));
    }
    ExitCode::from(code)
}

fn scrub_exit_code(report: &ScrubReport, repair: bool) -> u8 {
    if report.has_damage() || (!report.is_clean() && !repair) {
        4
    } else if report.repaired > 0 || !report.is_clean() {
        1
    } else {
        0
    }
}

fn scrub_text(r: &ScrubReport, damaged: &[String], took: Duration, opts: ScrubOptions) -> String {
    let mut t = Table::new(&["CHECKED", ""]);
    t.row(["blobs".to_string(), count(r.blobs)]);
    t.row(["packs".to_string(), count(r.packs)]);
    if opts.verify_data {
        t.row(["chunks read and verified".to_string(), count(r.chunks)]);
        t.row(["bytes verified".to_string(), bytes(r.bytes_verified)]);
    }
    let mut out = t.render();
    let found: [(&str, u64, &str); 10] = [
        (
            "corrupt records (packs)",
            r.corrupt_records.len() as u64,
            "damage",
        ),
        ("corrupt chunk files", r.corrupt.len() as u64, "damage"),
        ("missing records", r.missing_records.len() as u64, "damage"),
        ("missing chunk files", r.missing.len() as u64, "damage"),
        (
            "blob records not matching manifests",
            r.bad_blobs.len() as u64,
            "damage",
        ),
        (
            "reference count mismatches",
            r.refcount_mismatches.len() as u64,
            "--repair fixes",
        ),
        (
            "group count mismatches",
            r.group_count_mismatches.len() as u64,
            "--repair fixes",
        ),
        (
            "orphan chunk files",
            r.orphans.len() as u64,
            "--repair removes",
        ),
        ("stray files", r.stray_files.len() as u64, "remove by hand"),
        ("packs with nothing live", r.dead_packs, "glint gc reclaims"),
    ];
    let mut problems = Table::new(&["FOUND", "COUNT", "ACTION"]);
    for (what, n, action) in found {
        problems.row([
            what.to_string(),
            count(n),
            if n > 0 { action } else { "" }.to_string(),
        ]);
    }
    out.push('\n');
    out.push_str(&problems.render());
    if r.garbage_bytes > 0 {
        out.push_str(&format!(
            "\nunreferenced bytes in packs: {} (glint gc compacts packs under compact_below)\n",
            bytes(r.garbage_bytes)
        ));
    }
    if opts.repair {
        out.push_str(&format!("\nrepaired: {}\n", count(r.repaired)));
    }
    if !damaged.is_empty() {
        out.push_str(&format!(
            "\ndamaged: {} blobs reference corrupt or missing chunks; reads of them fail where they meet the damage. A write of the same bytes (re-upload) heals a corrupt chunk.\n",
            damaged.len()
        ));
        for d in damaged {
            out.push_str(&format!("  {d}\n"));
        }
    }
    let verdict = match scrub_exit_code(r, opts.repair) {
        0 => "clean",
        1 => "problems found and repaired",
        _ if r.has_damage() => "DAMAGED DATA (listed above)",
        _ => "problems found: run glint scrub --repair",
    };
    out.push_str(&format!(
        "\nscrub: {verdict} ({} in {})\n",
        if opts.verify_data {
            bytes(r.bytes_verified) + " verified"
        } else {
            "catalog only".into()
        },
        indicatif::HumanDuration(took)
    ));
    out
}

/// `glint gc`: reclaims space with progress, then a summary table (or JSON).
pub async fn gc(store: &Store, grace: Duration, as_json: bool) -> Result<(), Error> {
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let before = store.usage(false).await?;
    let report = with_progress("gc", progress.clone(), store.gc_tracked(grace, progress)).await?;
    let after = store.usage(false).await?;
    let c = &report.compaction;
    let freed = stored(&before).saturating_sub(stored(&after));
    if as_json {
        let v = json!({
            "seconds": started.elapsed().as_secs_f64(),
            "chunk_files_removed": report.chunk_files_removed,
            "packs_examined": c.packs_examined,
            "packs_removed": c.packs_removed,
            "packs_rewritten": c.packs_rewritten,
            "packs_deferred": c.deferred,
            "chunks_dropped": c.chunks_dropped,
            "bytes_reclaimed": c.bytes_reclaimed,
            "stored_bytes_before": stored(&before),
            "stored_bytes_after": stored(&after),
            "busy_elsewhere": c.busy_elsewhere,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut t = Table::new(&["GC", ""]);
    t.row([
        "unreferenced chunk files removed".to_string(),
        count(report.chunk_files_removed as u64),
    ]);
    t.row(["packs examined".to_string(), count(c.packs_examined as u64)]);
    t.row([
        "packs removed (nothing live)".to_string(),
        count(c.packs_removed as u64),
    ]);
    t.row([
        "packs rewritten".to_string(),
        count(c.packs_rewritten as u64),
    ]);
    t.row([
        "packs deferred to a later pass".to_string(),
        count(c.deferred as u64),
    ]);
    t.row(["chunks dropped".to_string(), count(c.chunks_dropped)]);
    t.row(["stored before".to_string(), bytes(stored(&before))]);
    t.row(["stored after".to_string(), bytes(stored(&after))]);
    print!("{}", t.render());
    if c.busy_elsewhere {
        println!("\ngc: compaction skipped: another node holds the maintenance lock");
    }
    println!(
        "\ngc: {} freed in {}",
        bytes(freed),
        indicatif::HumanDuration(started.elapsed())
    );
    Ok(())
}

#[cfg(test)]
mod tests;
