//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use glint_storage::{Store, StoreConfig};

pub fn config(root: &Path, chunk_size: usize) -> StoreConfig {
    let mut cfg = StoreConfig::single(root);
    std::fs::create_dir_all(&cfg.data_dirs[0]).unwrap();
    cfg.chunk_size = chunk_size;
    cfg.inline_max = 1024;
    // These helpers serve the format v1 tests (engine.rs, and the v1 runs of crash.rs and
    // model.rs); format v2 tests set it themselves.
    cfg.format = glint_storage::Format::V1;
    cfg.catalog_url = glint_storage::testing::catalog_url_for(root);
    cfg
}

/// Sets the format of new writes; format v2 stores put their packs in the test object store
/// when there is one (`glint_storage::testing::pack_store_for`).
pub fn set_format(cfg: &mut StoreConfig, format: glint_storage::Format) {
    cfg.format = format;
    cfg.pack_store = match format {
        glint_storage::Format::V2 => glint_storage::testing::pack_store_for(
            cfg.data_dirs[0].parent().unwrap_or(Path::new("/")),
        ),
        glint_storage::Format::V1 => None,
    };
}

pub fn open(root: &Path, chunk_size: usize) -> Store {
    Store::open(config(root, chunk_size)).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), cheap enough for hundreds of MiB.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A tmpfs of `size` bytes mounted at `dir`, unmounted on drop; `None` where mounting is not
/// permitted (not root), in which case the caller skips and says so.
pub struct TmpFs {
    dir: std::path::PathBuf,
}

impl TmpFs {
    pub fn mount(dir: &Path, size: usize, read_only: bool) -> Option<TmpFs> {
        std::fs::create_dir_all(dir).ok()?;
        let opts = format!("size={size}{}", if read_only { ",ro" } else { "" });
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| TmpFs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for TmpFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}
