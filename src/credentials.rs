//! S3 access keys, stored in the catalog (`Catalog::Credentials`, key = access key id).

use glint_storage::{Catalog, Store};
use rand::Rng;

/// A key's record (key: the access key id).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Credential {
    pub secret: String,
    pub project: String,
    pub created_ms: i64,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The record of `access`, if the key exists.
pub async fn get(store: &Store, access: &str) -> glint_storage::Result<Option<Credential>> {
    Ok(store
        .get(Catalog::Credentials, access.as_bytes().to_vec())
        .await?
        .and_then(|v| serde_json::from_slice(&v).ok()))
}

/// Creates (or, for a bootstrap key, sets) an access key bound to `project`.
pub async fn put(
    store: &Store,
    access: &str,
    secret: &str,
    project: &str,
) -> glint_storage::Result<()> {
    let rec = Credential {
        secret: secret.to_string(),
        project: project.to_string(),
        created_ms: now_ms(),
    };
    let (k, v) = (
        access.as_bytes().to_vec(),
        serde_json::to_vec(&rec).expect("serializable"),
    );
    store
        .transact(move |tx| tx.put(Catalog::Credentials, &k, &v))
        .await
}

/// A new random key pair for `project`.
pub async fn create(store: &Store, project: &str) -> glint_storage::Result<(String, String)> {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const ANY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::thread_rng();
    let access: String = std::iter::once("GL".to_string())
        .chain((0..18).map(|_| (UPPER[rng.gen_range(0..UPPER.len())] as char).to_string()))
        .collect();
    let secret: String = (0..40)
        .map(|_| ANY[rng.gen_range(0..ANY.len())] as char)
        .collect();
    put(store, &access, &secret, project).await?;
    Ok((access, secret))
}

/// (access key, project) of every key; secrets are never listed.
pub async fn list(store: &Store) -> glint_storage::Result<Vec<(String, String)>> {
    let all = store
        .scan(Catalog::Credentials, Vec::new(), None, usize::MAX)
        .await?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| {
            let c: Credential = serde_json::from_slice(&v).ok()?;
            Some((String::from_utf8_lossy(&k).into_owned(), c.project))
        })
        .collect())
}
