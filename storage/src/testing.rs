//! Test support shared by the engine's and the server's test suites (not for production).

use std::path::Path;
use std::process::Command;

/// With `GLINT_TEST_CATALOG_URL` (an admin URL of a PostgreSQL server, e.g. from
/// `scripts/pg.sh start`), the catalog URL of a database of its own for the store rooted at
/// `root`, created on first use so that a reopened root finds its catalog again. `None`
/// without the variable: the store keeps the embedded RocksDB catalog.
pub fn catalog_url_for(root: &Path) -> Option<String> {
    let admin = std::env::var("GLINT_TEST_CATALOG_URL").ok()?;
    let name = format!(
        "t_{}",
        &blake3::hash(root.to_string_lossy().as_bytes()).to_hex()[..16]
    );
    let out = Command::new("psql")
        .args([&admin, "-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || err.contains("already exists"),
        "creating {name}: {err}"
    );
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

/// With `GLINT_TEST_PACK_STORE` (an S3 endpoint, e.g. SeaweedFS started by scripts/test.sh;
/// bucket `GLINT_TEST_PACK_BUCKET`, keys `GLINT_TEST_PACK_ACCESS_KEY` / `_SECRET_KEY`), an
/// object-store pack store with a prefix of its own for the store rooted at `root`.
pub fn pack_store_for(root: &Path) -> Option<crate::RemotePackConfig> {
    let endpoint = std::env::var("GLINT_TEST_PACK_STORE").ok()?;
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    Some(crate::RemotePackConfig {
        endpoint,
        bucket: var("GLINT_TEST_PACK_BUCKET", "glint-test"),
        region: var("GLINT_TEST_PACK_REGION", "us-east-1"),
        access_key: var("GLINT_TEST_PACK_ACCESS_KEY", "glint"),
        secret_key: var("GLINT_TEST_PACK_SECRET_KEY", "glint-secret"),
        prefix: format!(
            "t-{}",
            &blake3::hash(root.to_string_lossy().as_bytes()).to_hex()[..16]
        ),
        local_cache_bytes: std::env::var("GLINT_TEST_LOCAL_CACHE_BYTES")
            .ok()
            .and_then(|v| v.parse().ok()),
    })
}
