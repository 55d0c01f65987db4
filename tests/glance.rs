//! The Glance Images API v2 (first slice) end to end on the real server: create, upload
//! (status machine and checksums), download (Content-MD5, Range, 204), delete, protection.

use md5::Digest;

struct Server {
    base: String,
    store: glint_storage::Store,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

async fn start(cap: u64) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = glint::config::Config::defaults();
    cfg.data_dirs = vec![dir.path().join("data")];
    cfg.catalog_dir = dir.path().join("catalog");
    cfg.s3_addr = "127.0.0.1:0".parse().unwrap();
    cfg.glance_addr = "127.0.0.1:0".parse().unwrap();
    cfg.image_size_cap = cap;
    let running = glint::start(cfg).await.unwrap();
    Server {
        base: format!("http://{}", running.glance_addr),
        store: running.store,
        _dir: dir,
        http: reqwest::Client::new(),
    }
}

impl Server {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .header("x-project-id", "p1")
            .header("x-roles", "member,reader")
    }

    async fn create(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .req(reqwest::Method::POST, "/v2/images")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    async fn show(&self, id: &str) -> serde_json::Value {
        self.req(reqwest::Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn upload(&self, id: &str, data: Vec<u8>) -> u16 {
        self.try_upload(id, data).await.expect("upload request")
    }

    /// `None` when the server answered before the whole body was sent and closed the
    /// connection (what a rejected oversized upload may look like to the client).
    async fn try_upload(&self, id: &str, data: Vec<u8>) -> Option<u16> {
        // Chunked transfer encoding, as glanceclient sends it.
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            data.chunks(100_000).map(|c| Ok(c.to_vec())).collect();
        self.req(reqwest::Method::PUT, &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(7) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_healthcheck() {
    let s = start(1 << 30).await;
    let r = s.http.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 300);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["status"] == "CURRENT"));
    let h = s
        .http
        .get(format!("{}/healthcheck", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(h.text().await.unwrap(), "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_download_and_status_machine() {
    let s = start(1 << 30).await;
    let (st, img) = s.create(serde_json::json!({"name": "cirros", "disk_format": "raw", "container_format": "bare", "os_distro": "cirros"})).await;
    assert_eq!(st, 201);
    assert_eq!(
        (img["status"].as_str(), img["visibility"].as_str()),
        (Some("queued"), Some("shared"))
    );
    assert_eq!(img["os_distro"], "cirros");
    let id = img["id"].as_str().unwrap().to_string();
    // No data yet: 204.
    let r = s
        .req(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);

    let data = pattern(3 << 20);
    assert_eq!(s.upload(&id, data.clone()).await, 204);
    let img = s.show(&id).await;
    assert_eq!(img["status"], "active");
    assert_eq!(img["size"], data.len() as u64);
    assert_eq!(img["checksum"], hex::encode(md5::Md5::digest(&data)));
    assert_eq!(img["os_hash_algo"], "sha512");
    assert_eq!(
        img["os_hash_value"],
        hex::encode(sha2::Sha512::digest(&data))
    );
    assert_eq!(
        s.upload(&id, b"small".to_vec()).await,
        409,
        "only a queued image takes data"
    );

    let r = s
        .req(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-md5"].to_str().unwrap(),
        hex::encode(md5::Md5::digest(&data))
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    let r = s
        .req(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[100..200]);
    let r = s
        .req(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
        .header("range", "bytes=99999999-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 416);

    let list: serde_json::Value = s
        .req(reqwest::Method::GET, "/v2/images")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["images"].as_array().unwrap().len(), 1);
    let d = s
        .req(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status().as_u16(), 204);
    let r = s
        .req(reqwest::Method::GET, &format!("/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        s.store.chunk_file_count().unwrap(),
        0,
        "deleting the image frees its chunks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_uploads_return_to_queued_and_leave_nothing() {
    let s = start(1 << 20).await; // image_size_cap = 1 MiB
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    let status = s.try_upload(&id, pattern(3 << 20)).await;
    assert!(matches!(status, Some(413) | None), "{status:?}");
    let img = s.show(&id).await;
    assert_eq!(
        (img["status"].as_str(), img["size"].is_null()),
        (Some("queued"), true)
    );
    s.store.settle().await;
    assert_eq!(s.store.chunk_file_count().unwrap(), 0);
    // Formats are required before data.
    let (_, bare) = s.create(serde_json::json!({"name": "no formats"})).await;
    assert_eq!(
        s.upload(bare["id"].as_str().unwrap(), vec![1, 2, 3]).await,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validation_and_protection() {
    let s = start(1 << 30).await;
    assert_eq!(
        s.create(serde_json::json!({"status": "active"})).await.0,
        403
    );
    assert_eq!(
        s.create(serde_json::json!({"disk_format": "floppy"}))
            .await
            .0,
        400
    );
    assert_eq!(
        s.create(serde_json::json!({"visibility": "public"}))
            .await
            .0,
        403,
        "public needs admin"
    );
    assert_eq!(
        s.create(serde_json::json!({"custom": 5})).await.0,
        400,
        "custom properties are strings"
    );
    let id = "11111111-2222-3333-4444-555555555555";
    assert_eq!(
        s.create(serde_json::json!({"id": id, "protected": true}))
            .await
            .0,
        201
    );
    assert_eq!(s.create(serde_json::json!({"id": id})).await.0, 409);
    let d = s
        .req(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status().as_u16(), 403);
    let other = s
        .http
        .get(format!("{}/v2/images/{id}", s.base))
        .header("x-project-id", "p2")
        .header("x-roles", "member")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status().as_u16(),
        404,
        "another project's private image is invisible"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_deactivation() {
    let s = start(1 << 30).await;
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    let put = |t: &str| {
        s.req(reqwest::Method::PUT, &format!("/v2/images/{id}/tags/{t}"))
            .send()
    };
    assert_eq!(put("gold").await.unwrap().status().as_u16(), 204);
    assert_eq!(
        put("gold").await.unwrap().status().as_u16(),
        204,
        "a set: adding twice is a no-op"
    );
    assert_eq!(s.show(&id).await["tags"], serde_json::json!(["gold"]));
    let del = |t: &str| {
        s.req(
            reqwest::Method::DELETE,
            &format!("/v2/images/{id}/tags/{t}"),
        )
        .send()
    };
    assert_eq!(del("gold").await.unwrap().status().as_u16(), 204);
    assert_eq!(del("gold").await.unwrap().status().as_u16(), 404);

    let act = |a: &str| {
        s.req(
            reqwest::Method::POST,
            &format!("/v2/images/{id}/actions/{a}"),
        )
        .send()
    };
    assert_eq!(
        act("deactivate").await.unwrap().status().as_u16(),
        403,
        "a queued image cannot be deactivated"
    );
    assert_eq!(s.upload(&id, pattern(1000)).await, 204);
    assert_eq!(act("deactivate").await.unwrap().status().as_u16(), 204);
    assert_eq!(s.show(&id).await["status"], "deactivated");
    let dl = s
        .req(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        dl.status().as_u16(),
        403,
        "no downloads of a deactivated image for non-admins"
    );
    assert_eq!(act("reactivate").await.unwrap().status().as_u16(), 204);
    assert_eq!(act("reactivate").await.unwrap().status().as_u16(), 204);
    assert_eq!(s.show(&id).await["status"], "active");
}
