//! The Glance Images API v2 end to end on the real server: images, data (status machine,
//! checksums, ranges, inspection), imports and tasks, members, multiple stores, locations,
//! policy, quotas, CORS and Keystone-free identity.

use md5::Digest;

struct Server {
    base: String,
    store: glint_storage::Store,
    stores: std::sync::Arc<glint::images::stores::Stores>,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

async fn start(cap: u64) -> Server {
    start_with(cap, |_| {}).await
}

async fn start_with(cap: u64, adjust: impl FnOnce(&mut glint::config::Config)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = glint::config::Config::defaults();
    cfg.data_dirs = vec![dir.path().join("data")];
    cfg.catalog_dir = dir.path().join("catalog");
    cfg.s3_addr = "127.0.0.1:0".parse().unwrap();
    cfg.glance_addr = "127.0.0.1:0".parse().unwrap();
    cfg.image_size_cap = cap;
    adjust(&mut cfg);
    let running = glint::start(cfg).await.unwrap();
    Server {
        base: format!("http://{}", running.glance_addr),
        store: running.store,
        stores: running.stores,
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

    /// A request as another identity (noauth token `USER:PROJECT[:ROLES]`).
    fn as_(&self, token: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .header("x-auth-token", token)
    }

    async fn patch(
        &self,
        id: &str,
        media: &str,
        ops: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = self
            .req(reqwest::Method::PATCH, &format!("/v2/images/{id}"))
            .header("content-type", media)
            .body(ops.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    async fn list(&self, token: &str, query: &str) -> serde_json::Value {
        let r = self
            .as_(token, reqwest::Method::GET, &format!("/v2/images?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{query}");
        r.json().await.unwrap()
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
        self.get_json(&format!("/v2/images/{id}")).await
    }

    /// The JSON body of a GET.
    async fn get_json(&self, path: &str) -> serde_json::Value {
        self.req(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The status of a bodiless request.
    async fn status(&self, method: reqwest::Method, path: &str) -> u16 {
        self.req(method, path)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
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
    assert_eq!(
        s.status(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
            .await,
        204
    );

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

    let list: serde_json::Value = s.get_json("/v2/images").await;
    assert_eq!(list["images"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.status(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
            .await,
        204
    );
    assert_eq!(
        s.status(reqwest::Method::GET, &format!("/v2/images/{id}"))
            .await,
        404
    );
    assert_eq!(
        s.store.chunk_file_count().unwrap(),
        0,
        "deleting the image frees its chunks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_outlives_the_delete_of_its_image() {
    let s = start(1 << 30).await;
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    let data = pattern(24 << 20);
    assert_eq!(s.upload(&id, data.clone()).await, 204);
    // A compute node is pulling the image when it is deleted.
    let mut download = s
        .req(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    let mut got = download.chunk().await.unwrap().unwrap().to_vec();
    assert_eq!(
        s.status(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
            .await,
        204
    );
    let r = s
        .req(reqwest::Method::GET, &format!("/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "the image is gone for everyone else"
    );
    while let Some(piece) = download.chunk().await.unwrap() {
        got.extend_from_slice(&piece);
    }
    assert!(got == data, "the download finished with the image's bytes");
    for _ in 0..200 {
        s.store.settle().await;
        if s.store.chunk_file_count().unwrap() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(s.store.chunk_file_count().unwrap(), 0, "then its data went");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_algorithm_sets_the_multihash() {
    let s = start_with(1 << 30, |c| {
        c.glance.hashing_algorithm = glint::config::HashAlgo::Sha256;
    })
    .await;
    let data = pattern(3 << 20);
    let want = hex::encode(sha2::Sha256::digest(&data));
    // Upload, and stage + glance-direct: the same multihash either way.
    let (_, up) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let up = up["id"].as_str().unwrap().to_string();
    assert_eq!(s.upload(&up, data.clone()).await, 204);
    let (_, staged) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let staged = staged["id"].as_str().unwrap().to_string();
    let r = s
        .req(reqwest::Method::PUT, &format!("/v2/images/{staged}/stage"))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let import = serde_json::json!({"method": {"name": "glance-direct"}});
    assert_eq!(
        post_json(&s, &format!("/v2/images/{staged}/import"), import).await,
        202
    );
    wait_for(&s, &staged, |i| i["status"] == "active").await;
    for id in [&up, &staged] {
        let img = s.show(id).await;
        assert_eq!(img["os_hash_algo"], "sha256");
        assert_eq!(img["os_hash_value"], want.as_str());
        assert_eq!(img["checksum"], hex::encode(md5::Md5::digest(&data)));
    }
    // Listing filters on the value, as upstream.
    let list: serde_json::Value = s
        .get_json(&format!("/v2/images?os_hash_value={want}"))
        .await;
    assert_eq!(list["images"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_uploads_return_to_queued_and_leave_nothing() {
    let s = start(1 << 20).await; // image_size_cap = 1 MiB
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    // The refusal comes mid-body; the server drains the rest (a lingering close), so the
    // client finishes writing and reads the 413 instead of a broken pipe. Repeated to catch
    // the race that once made this flaky.
    for round in 0..10 {
        let status = s.try_upload(&id, pattern(3 << 20)).await;
        assert_eq!(status, Some(413), "round {round}");
    }
    // Refused from the headers alone (Content-Length over the cap), before a byte of the
    // body is read: same.
    for round in 0..10 {
        let r = s
            .req(reqwest::Method::PUT, &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            .body(pattern(8 << 20))
            .send()
            .await;
        assert_eq!(
            r.map(|r| r.status().as_u16()).ok(),
            Some(413),
            "round {round}"
        );
    }
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
    assert_eq!(
        s.status(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
            .await,
        403
    );
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

const V21: &str = "application/openstack-images-v2.1-json-patch";
const V20: &str = "application/openstack-images-v2.0-json-patch";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patch_both_dialects() {
    let s = start(1 << 30).await;
    let (_, img) = s
        .create(serde_json::json!({"name": "p", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    let (st, img) = s
        .patch(
            &id,
            V21,
            serde_json::json!([
                {"op": "replace", "path": "/name", "value": "p2"},
                {"op": "add", "path": "/os_distro", "value": "ubuntu"},
                {"op": "add", "path": "/a~1b", "value": "slash"},
                {"op": "replace", "path": "/min_ram", "value": 256},
                {"op": "replace", "path": "/tags", "value": ["x", "y", "x"]},
            ]),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        (
            &img["name"],
            &img["os_distro"],
            &img["a/b"],
            &img["min_ram"]
        ),
        (
            &serde_json::json!("p2"),
            &serde_json::json!("ubuntu"),
            &serde_json::json!("slash"),
            &serde_json::json!(256)
        )
    );
    assert_eq!(img["tags"], serde_json::json!(["x", "y"]));
    // v2.1 add of an existing property replaces; v2.0 add of one is a conflict.
    let (st, img) = s
        .patch(
            &id,
            V21,
            serde_json::json!([{"op": "add", "path": "/os_distro", "value": "debian"}]),
        )
        .await;
    assert_eq!((st, img["os_distro"].as_str()), (200, Some("debian")));
    let (st, _) = s
        .patch(
            &id,
            V20,
            serde_json::json!([{"add": "/os_distro", "value": "x"}]),
        )
        .await;
    assert_eq!(st, 409);
    let (st, img) = s
        .patch(
            &id,
            V20,
            serde_json::json!([{"replace": "/name", "value": "p3"}]),
        )
        .await;
    assert_eq!((st, img["name"].as_str()), (200, Some("p3")));
    let cases = [
        (serde_json::json!([{"op": "remove", "path": "/nope"}]), 409),
        (
            serde_json::json!([{"op": "replace", "path": "/nope", "value": "x"}]),
            409,
        ),
        (serde_json::json!([{"op": "remove", "path": "/name"}]), 403),
        (
            serde_json::json!([{"op": "replace", "path": "/status", "value": "active"}]),
            403,
        ),
        (
            serde_json::json!([{"op": "add", "path": "/os_glance_x", "value": "x"}]),
            403,
        ),
        (
            serde_json::json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
            403,
        ),
        (
            serde_json::json!([{"op": "replace", "path": "/owner", "value": "p9"}]),
            403,
        ),
        (
            serde_json::json!([{"op": "move", "from": "/name", "path": "/x"}]),
            400,
        ),
        (
            serde_json::json!([{"op": "replace", "path": "name", "value": "x"}]),
            400,
        ),
        (serde_json::json!([{"op": "replace", "path": "/name"}]), 400),
        (
            serde_json::json!({"op": "replace", "path": "/name", "value": "x"}),
            400,
        ),
        (
            serde_json::json!([{"op": "replace", "path": "/disk_format", "value": "floppy"}]),
            400,
        ),
        (
            serde_json::json!([{"op": "add", "path": "/kernel_id", "value": "not-a-uuid"}]),
            400,
        ),
        (
            serde_json::json!([{"op": "add", "path": "/n", "value": 5}]),
            400,
        ),
        // A refused operation leaves the earlier ones of the same patch unapplied.
        (
            serde_json::json!([{"op": "replace", "path": "/name", "value": "lost"}, {"op": "remove", "path": "/nope"}]),
            409,
        ),
    ];
    for (ops, want) in cases {
        assert_eq!(s.patch(&id, V21, ops.clone()).await.0, want, "{ops}");
    }
    assert_eq!(s.show(&id).await["name"], "p3");
    let r = s
        .req(reqwest::Method::PATCH, &format!("/v2/images/{id}"))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert!(r.headers()["accept-patch"].to_str().unwrap().contains(V21));
    let (st, _) = s
        .patch(
            &id,
            V21,
            serde_json::json!([{"op": "remove", "path": "/os_distro"}]),
        )
        .await;
    assert_eq!(st, 200);
    assert!(s.show(&id).await.get("os_distro").is_none());
    // Formats are frozen once the image has data.
    assert_eq!(s.upload(&id, pattern(10)).await, 204);
    let (st, _) = s
        .patch(
            &id,
            V21,
            serde_json::json!([{"op": "replace", "path": "/disk_format", "value": "qcow2"}]),
        )
        .await;
    assert_eq!(st, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_sorting_paging() {
    let s = start(1 << 30).await;
    let mut ids = Vec::new();
    for (name, size, vis) in [
        ("l1", 10, "private"),
        ("l2", 2000, "shared"),
        ("l3", 30000, "community"),
        ("l4", 5, "private"),
    ] {
        let (_, img) = s
            .create(serde_json::json!({"name": name, "disk_format": "raw", "container_format": "bare", "visibility": vis, "tags": ["t"], "os_hidden": name == "l4"}))
            .await;
        let id = img["id"].as_str().unwrap().to_string();
        assert_eq!(s.upload(&id, pattern(size)).await, 204);
        ids.push(id);
    }
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    let me = "u:p1";
    assert_eq!(
        names(&s.list(me, "tag=t&sort=name:asc").await),
        ["l1", "l2", "l3"],
        "os_hidden is hidden by default"
    );
    assert_eq!(names(&s.list(me, "tag=t&os_hidden=true").await), ["l4"]);
    assert_eq!(
        names(&s.list(me, "sort_key=size&sort_dir=desc").await),
        ["l3", "l2", "l1"]
    );
    assert_eq!(
        names(&s.list(me, "size_min=11&size_max=30000&sort=size:asc").await),
        ["l2", "l3"]
    );
    assert_eq!(
        names(&s.list(me, "name=in:%22l1%22,l3&sort=name:asc").await),
        ["l1", "l3"]
    );
    assert_eq!(names(&s.list(me, "visibility=community").await), ["l3"]);
    assert_eq!(
        names(&s.list(me, "created_at=lt:2000-01-01T00:00:00Z").await).len(),
        0
    );
    // Paging: follow `next` until it runs out; every image exactly once, in order.
    let mut seen = Vec::new();
    let mut page = s.list(me, "limit=1&sort_key=name&sort_dir=asc").await;
    loop {
        seen.extend(names(&page));
        let Some(next) = page["next"].as_str() else {
            break;
        };
        let q = next.split_once('?').unwrap().1.to_string();
        page = s.list(me, &q).await;
    }
    assert_eq!(seen, ["l1", "l2", "l3"]);
    // Another project sees no private or unshared image of p1, community only with ?visibility.
    assert_eq!(names(&s.list("u:p2", "tag=t").await).len(), 0);
    assert_eq!(names(&s.list("u:p2", "visibility=all&tag=t").await), ["l3"]);
    assert_eq!(
        names(&s.list("admin:admin", "tag=t&sort=name:asc").await),
        ["l1", "l2", "l3"]
    );
    for bad in [
        "limit=abc",
        "sort_key=bogus",
        "visibility=x",
        "marker=00000000-0000-4000-8000-000000000000",
        "name=gte:x",
        "changes-since=2020-01-01",
    ] {
        let r = s
            .as_(me, reqwest::Method::GET, &format!("/v2/images?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_an_image() {
    let s = start(1 << 30).await;
    let owner = "demo:demo";
    let other = "alt:alt";
    let r = s
        .as_(owner, reqwest::Method::POST, "/v2/images")
        .json(&serde_json::json!({"name": "sh", "visibility": "private"}))
        .send()
        .await
        .unwrap();
    let id2: serde_json::Value = r.json().await.unwrap();
    let id2 = id2["id"].as_str().unwrap().to_string();
    let members = format!("/v2/images/{id2}/members");
    let add = |tok: &'static str| {
        s.as_(tok, reqwest::Method::POST, &members)
            .json(&serde_json::json!({"member": "alt"}))
            .send()
    };
    assert_eq!(
        add(owner).await.unwrap().status().as_u16(),
        403,
        "private images have no members"
    );
    let r = s
        .as_(owner, reqwest::Method::PATCH, &format!("/v2/images/{id2}"))
        .header("content-type", V21)
        .body(r#"[{"op":"replace","path":"/visibility","value":"shared"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = add(owner).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let m: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (m["member_id"].as_str(), m["status"].as_str()),
        (Some("alt"), Some("pending"))
    );
    assert_eq!(add(owner).await.unwrap().status().as_u16(), 409);
    // Pending: visible by id, not in the member's default list.
    let show = s
        .as_(other, reqwest::Method::GET, &format!("/v2/images/{id2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(show.status().as_u16(), 200);
    assert_eq!(
        s.list(other, "").await["images"].as_array().unwrap().len(),
        0
    );
    assert_eq!(
        s.list(other, "member_status=pending").await["images"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let status = |tok: &'static str, st: &'static str| {
        s.as_(tok, reqwest::Method::PUT, &format!("{members}/alt"))
            .json(&serde_json::json!({"status": st}))
            .send()
    };
    assert_eq!(
        status(owner, "accepted").await.unwrap().status().as_u16(),
        403,
        "only the member decides"
    );
    assert_eq!(status(other, "maybe").await.unwrap().status().as_u16(), 400);
    assert_eq!(
        status(other, "accepted").await.unwrap().status().as_u16(),
        200
    );
    assert_eq!(
        s.list(other, "").await["images"].as_array().unwrap().len(),
        1
    );
    let del = s
        .as_(other, reqwest::Method::DELETE, &format!("{members}/alt"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        del.status().as_u16(),
        403,
        "the member cannot remove itself"
    );
    let del = s
        .as_(owner, reqwest::Method::DELETE, &format!("{members}/alt"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 204);
    let show = s
        .as_(other, reqwest::Method::GET, &format!("/v2/images/{id2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(show.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_and_discovery() {
    let s = start(1 << 30).await;
    let get = |p: &str| s.req(reqwest::Method::GET, p).send();
    let schema: serde_json::Value = get("/v2/schemas/image")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schema["name"], "image");
    assert_eq!(schema["properties"]["kernel_id"]["is_base"], false);
    assert!(schema["properties"]["disk_format"]["enum"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("qcow2")));
    for p in [
        "/v2/schemas/images",
        "/v2/schemas/member",
        "/v2/schemas/members",
        "/v2/schemas/task",
        "/v2/schemas/tasks",
    ] {
        assert_eq!(get(p).await.unwrap().status().as_u16(), 200, "{p}");
    }
    assert_eq!(
        s.status(reqwest::Method::POST, "/v2/schemas/image").await,
        405
    );
    let info: serde_json::Value = get("/v2/info/import").await.unwrap().json().await.unwrap();
    assert!(info["import-methods"]["value"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("glance-direct")));
    assert_eq!(get("/v2/info/usage").await.unwrap().status().as_u16(), 200);
    assert_eq!(get("/v2/info/stores").await.unwrap().status().as_u16(), 404);
    let r = s.http.get(format!("{}/v2", s.base)).send().await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "302 to /v2/, which has no document"
    );
    let r = s
        .req(
            reqwest::Method::GET,
            "/v2/images/00000000-0000-4000-8000-000000000000",
        )
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["code"], "404 Not Found");
}

/// Polls an image until `done` holds for it (imports run in the background).
async fn wait_for(
    s: &Server,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..200 {
        let img = s.show(id).await;
        if done(&img) {
            return img;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "image {id} never reached the expected state: {}",
        s.show(id).await
    );
}

async fn post_json(s: &Server, path: &str, body: serde_json::Value) -> u16 {
    s.req(reqwest::Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_then_glance_direct_import() {
    let s = start(1 << 30).await;
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    let import = format!("/v2/images/{id}/import");
    let direct = serde_json::json!({"method": {"name": "glance-direct"}});
    assert_eq!(
        post_json(&s, &import, direct.clone()).await,
        409,
        "nothing staged"
    );
    let data = pattern(3 << 20);
    let stage = |body: Vec<u8>| {
        s.req(reqwest::Method::PUT, &format!("/v2/images/{id}/stage"))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
    };
    assert_eq!(stage(data.clone()).await.unwrap().status().as_u16(), 204);
    let img = s.show(&id).await;
    assert_eq!(
        (img["status"].as_str(), img["size"].as_u64()),
        (Some("uploading"), Some(data.len() as u64))
    );
    assert!(img["checksum"].is_null(), "checksums come with the import");
    assert_eq!(stage(vec![1]).await.unwrap().status().as_u16(), 409);
    assert_eq!(post_json(&s, &import, serde_json::json!({})).await, 400);
    assert_eq!(
        post_json(&s, &import, serde_json::json!({"method": {"name": "fax"}})).await,
        400
    );
    s.store.settle().await;
    let chunks = s.store.chunk_file_count().unwrap();
    assert_eq!(post_json(&s, &import, direct.clone()).await, 202);
    let img = wait_for(&s, &id, |i| i["status"] == "active").await;
    assert_eq!(img["checksum"], hex::encode(md5::Md5::digest(&data)));
    assert_eq!(img["virtual_size"], data.len() as u64);
    assert!(
        img.get("os_glance_import_task").is_none(),
        "the import lock is released"
    );
    s.store.settle().await;
    assert_eq!(
        s.store.chunk_file_count().unwrap(),
        chunks,
        "the staged blob is adopted, not copied"
    );
    let body = s
        .req(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), data.as_slice());
    let tasks: serde_json::Value = s.get_json(&format!("/v2/images/{id}/tasks")).await;
    assert_eq!(tasks["tasks"][0]["status"], "success");
    assert_eq!(tasks["tasks"][0]["type"], "api_image_import");
    assert_eq!(post_json(&s, &import, direct).await, 409, "already active");
    // A staged image deleted before its import leaves nothing behind.
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id2 = img["id"].as_str().unwrap().to_string();
    let r = s
        .req(reqwest::Method::PUT, &format!("/v2/images/{id2}/stage"))
        .header("content-type", "application/octet-stream")
        .body(pattern(1 << 20).into_iter().rev().collect::<Vec<u8>>())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    for i in [&id, &id2] {
        let d = s
            .req(reqwest::Method::DELETE, &format!("/v2/images/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(d.status().as_u16(), 204);
    }
    s.store.settle().await;
    assert_eq!(s.store.chunk_file_count().unwrap(), 0);
}

/// Serves `body` over plain HTTP on a loopback port (a web-download source).
async fn web_source(body: Vec<u8>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = std::sync::Arc::new(body);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut req = [0u8; 4096];
                let _ = sock.read(&mut req).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_download_import_and_uri_filtering() {
    let data = pattern(2 << 20);
    let port = web_source(data.clone()).await;
    let s = start_with(1 << 30, |c| {
        c.glance.import_filter.allowed_hosts = vec!["127.0.0.1".into()];
        c.glance.import_filter.allowed_ports = vec![port];
    })
    .await;
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    let import = format!("/v2/images/{id}/import");
    let web = |uri: &str| serde_json::json!({"method": {"name": "web-download", "uri": uri}});
    for refused in [
        "http://127.0.0.1:8/x".to_string(),    // port not allowed
        format!("http://2130706433:{port}/x"), // an encoded loopback address
        format!("ftp://127.0.0.1:{port}/x"),
        format!("http://localhost:{port}/x"), // resolves to loopback, not allowed by name
    ] {
        assert_eq!(
            post_json(&s, &import, web(&refused)).await,
            400,
            "{refused}"
        );
    }
    assert_eq!(
        post_json(
            &s,
            &import,
            serde_json::json!({"method": {"name": "web-download"}})
        )
        .await,
        400
    );
    assert_eq!(
        post_json(
            &s,
            &import,
            serde_json::json!({"method": {"name": "copy-image"}})
        )
        .await,
        409,
        "copy-image needs an active image"
    );
    assert_eq!(
        post_json(
            &s,
            &import,
            web(&format!("http://127.0.0.1:{port}/img.raw"))
        )
        .await,
        202
    );
    let img = wait_for(&s, &id, |i| i["status"] == "active").await;
    assert_eq!(img["checksum"], hex::encode(md5::Md5::digest(&data)));
    assert_eq!(img["size"], data.len() as u64);
    assert_eq!(
        post_json(
            &s,
            &import,
            web(&format!("http://127.0.0.1:{port}/img.raw"))
        )
        .await,
        409
    );
    // The data does not match the declared format: the import fails, the image is queued.
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "qcow2", "container_format": "bare"}))
        .await;
    let id2 = img["id"].as_str().unwrap().to_string();
    assert_eq!(
        post_json(
            &s,
            &format!("/v2/images/{id2}/import"),
            web(&format!("http://127.0.0.1:{port}/x"))
        )
        .await,
        202
    );
    let tasks = loop {
        let t: serde_json::Value = s.get_json(&format!("/v2/images/{id2}/tasks")).await;
        if t["tasks"][0]["status"] == "failure" {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(tasks["tasks"][0]["message"]
        .as_str()
        .unwrap()
        .contains("does not match"));
    assert_eq!(s.show(&id2).await["status"], "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_tasks_api() {
    let s = start(1 << 30).await;
    let admin = "admin:admin";
    let r = s
        .as_(admin, reqwest::Method::GET, "/v2/tasks")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = s
        .req(reqwest::Method::GET, "/v2/tasks")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "tasks_api_access is admin-only");
    let post = |body: serde_json::Value| {
        s.as_(admin, reqwest::Method::POST, "/v2/tasks")
            .json(&body)
            .send()
    };
    let r = post(serde_json::json!({"type": "fax", "input": {}}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = post(serde_json::json!({"type": "import", "input": {"import_from": "http://127.0.0.1:8/x.img", "import_from_format": "raw", "image_properties": {"disk_format": "raw", "container_format": "bare"}}}))
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        400,
        "loopback URIs do not pass the default filter"
    );
    let r = s
        .as_(
            admin,
            reqwest::Method::DELETE,
            "/v2/tasks/00000000-0000-4000-8000-000000000000",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_inspection_of_qemu_img_files() {
    let Ok(out) = std::process::Command::new("qemu-img")
        .arg("--version")
        .output()
    else {
        eprintln!("SKIPPED: qemu-img is not installed");
        return;
    };
    assert!(out.status.success());
    let s = start(1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    let qemu = |args: &[&str]| {
        let st = std::process::Command::new("qemu-img")
            .args(args)
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "qemu-img {args:?}");
    };
    qemu(&["create", "-f", "qcow2", "ok.qcow2", "32M"]);
    std::fs::write(dir.path().join("base.raw"), vec![0u8; 65536]).unwrap();
    qemu(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "base.raw",
        "-F",
        "raw",
        "backing.qcow2",
    ]);
    qemu(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "data_file=data.bin",
        "datafile.qcow2",
        "1M",
    ]);
    qemu(&[
        "create",
        "-f",
        "vmdk",
        "-o",
        "subformat=monolithicSparse",
        "sparse.vmdk",
        "4M",
    ]);
    qemu(&["create", "-f", "vhdx", "d.vhdx", "8M"]);
    qemu(&["create", "-f", "vdi", "d.vdi", "8M"]);
    qemu(&["create", "-f", "vpc", "d.vhd", "8M"]);
    qemu(&[
        "create",
        "-f",
        "vmdk",
        "-o",
        "subformat=monolithicFlat",
        "flat.vmdk",
        "1M",
    ]);
    let flat = std::fs::read_to_string(dir.path().join("flat.vmdk"))
        .unwrap()
        .replace("flat-flat.vmdk", "/etc/passwd");
    std::fs::write(dir.path().join("flat.vmdk"), flat).unwrap();
    let cases: &[(&str, &str, u16, Option<u64>)] = &[
        ("ok.qcow2", "qcow2", 204, Some(32 << 20)),
        ("ok.qcow2", "vmdk", 415, None),
        ("ok.qcow2", "raw", 204, None),
        ("backing.qcow2", "qcow2", 415, None),
        ("backing.qcow2", "raw", 415, None),
        ("datafile.qcow2", "qcow2", 415, None),
        ("flat.vmdk", "vmdk", 415, None),
        ("sparse.vmdk", "vmdk", 204, Some(4 << 20)),
        ("d.vhdx", "vhdx", 204, Some(8 << 20)),
        ("d.vdi", "vdi", 204, Some(8 << 20)),
        ("d.vhd", "vhd", 204, None),
    ];
    for (file, fmt, want, vsize) in cases {
        let data = std::fs::read(dir.path().join(file)).unwrap();
        let (_, img) = s
            .create(serde_json::json!({"disk_format": fmt, "container_format": "bare"}))
            .await;
        let id = img["id"].as_str().unwrap().to_string();
        assert_eq!(s.upload(&id, data.clone()).await, *want, "{file} as {fmt}");
        let img = s.show(&id).await;
        if *want == 204 {
            assert_eq!(img["status"], "active");
            if let Some(v) = vsize {
                assert_eq!(img["virtual_size"], *v, "{file}");
            }
            if *fmt == "raw" {
                assert_eq!(img["virtual_size"], data.len() as u64);
            }
        } else {
            assert_eq!(
                (img["status"].as_str(), img["size"].is_null()),
                (Some("queued"), true),
                "{file}"
            );
        }
    }
    // Not inspected unless the container is bare.
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "vmdk", "container_format": "ovf"}))
        .await;
    let data = std::fs::read(dir.path().join("ok.qcow2")).unwrap();
    assert_eq!(s.upload(img["id"].as_str().unwrap(), data).await, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_delete_and_the_scrubber() {
    let s = start_with(1 << 30, |c| {
        c.glance.delayed_delete = true;
        c.glance.scrubber_wakeup_time = 0; // passes are driven by the test
    })
    .await;
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    let data = pattern(2 << 20);
    assert_eq!(s.upload(&id, data.clone()).await, 204);
    s.store.settle().await;
    let chunks = s.store.chunk_file_count().unwrap();
    let delete = || {
        s.req(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
            .send()
    };
    assert_eq!(delete().await.unwrap().status().as_u16(), 204);
    let shown = s
        .req(reqwest::Method::GET, &format!("/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        shown.status().as_u16(),
        404,
        "pending_delete is gone from the API"
    );
    assert_eq!(
        s.list("u:p1", "").await["images"].as_array().unwrap().len(),
        0
    );
    assert_eq!(
        s.store.chunk_file_count().unwrap(),
        chunks,
        "the data waits for the scrubber"
    );
    // Restore, then delete again and let the scrubber purge it.
    assert!(glint::glance::scrubber::restore(&s.stores, &id)
        .await
        .unwrap());
    assert_eq!(s.show(&id).await["status"], "active");
    assert_eq!(delete().await.unwrap().status().as_u16(), 204);
    let wait = glint::glance::scrubber::scrub_once(&s.stores, std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((wait.purged, wait.waiting), (0, 1), "inside scrub_time");
    let pass = glint::glance::scrubber::scrub_once(&s.stores, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(pass.purged, 1);
    s.store.settle().await;
    assert_eq!(s.store.chunk_file_count().unwrap(), 0);
    assert!(!glint::glance::scrubber::restore(&s.stores, &id)
        .await
        .unwrap());
    // An image without data is deleted at once.
    let (_, img) = s.create(serde_json::json!({})).await;
    let r = s
        .req(
            reqwest::Method::DELETE,
            &format!("/v2/images/{}", img["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        glint::glance::scrubber::scrub_once(&s.stores, std::time::Duration::ZERO)
            .await
            .unwrap()
            .purged,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_as_json_lines() {
    let sink = tempfile::NamedTempFile::new().unwrap();
    let path = sink.path().to_path_buf();
    let s = start_with(1 << 30, |c| {
        c.glance.notifications_file = Some(path.clone())
    })
    .await;
    let (_, img) = s
        .create(serde_json::json!({"name": "n", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    assert_eq!(s.upload(&id, pattern(1000)).await, 204);
    let (st, _) = s
        .patch(
            &id,
            V21,
            serde_json::json!([{"op": "replace", "path": "/name", "value": "m"}]),
        )
        .await;
    assert_eq!(st, 200);
    let dl = s
        .req(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(dl.bytes().await.unwrap().len(), 1000);
    assert_eq!(
        s.status(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
            .await,
        204
    );
    let mut events = Vec::new();
    for _ in 0..100 {
        events = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect();
        if events.len() >= 7 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "image.create",
            "image.prepare",
            "image.upload",
            "image.activate",
            "image.update",
            "image.send",
            "image.delete"
        ]
    );
    for e in &events {
        assert_eq!(e["priority"], "INFO");
        assert!(
            e["message_id"].is_string()
                && e["timestamp"].is_string()
                && e["publisher_id"].is_string()
        );
    }
    assert_eq!(events[3]["payload"]["status"], "active");
    assert_eq!(
        events[3]["payload"]["checksum"],
        hex::encode(md5::Md5::digest(pattern(1000)))
    );
    assert_eq!(events[5]["payload"]["bytes_sent"], 1000);
    assert_eq!(events[4]["payload"]["name"], "m");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_file_overrides_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(
        &file,
        "# members may publish their own images; nobody deletes; readers download\n\
         \"publicize_image\": \"role:member and project_id:%(project_id)s\"\n\
         \"delete_image\": \"!\"\n\
         \"download_image\": \"role:reader and project_id:%(project_id)s\"\n",
    )
    .unwrap();
    let s = start_with(1 << 30, |c| c.glance.policy_file = Some(file.clone())).await;
    let (st, img) = s
        .create(serde_json::json!({"visibility": "public", "disk_format": "raw", "container_format": "bare"}))
        .await;
    assert_eq!(st, 201, "publicize_image was opened to members");
    let id = img["id"].as_str().unwrap().to_string();
    assert_eq!(s.upload(&id, pattern(100)).await, 204);
    let reader = s
        .as_(
            "r:p1:reader",
            reqwest::Method::GET,
            &format!("/v2/images/{id}/file"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        reader.status().as_u16(),
        200,
        "download_image was opened to readers"
    );
    let del = s
        .req(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        del.status().as_u16(),
        403,
        "delete_image is closed to everyone"
    );
    let admin_del = s
        .as_(
            "admin:admin",
            reqwest::Method::DELETE,
            &format!("/v2/images/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(admin_del.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_storage_quota_is_413() {
    let s = start_with(1 << 30, |c| c.glance.user_storage_quota = 3 << 20).await;
    let mk = || s.create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}));
    let (_, a) = mk().await;
    assert_eq!(
        s.upload(a["id"].as_str().unwrap(), pattern(2 << 20)).await,
        204
    );
    let (_, b) = mk().await;
    let id = b["id"].as_str().unwrap().to_string();
    let st = s.try_upload(&id, pattern(2 << 20)).await;
    assert!(matches!(st, Some(413) | None), "{st:?}");
    assert_eq!(s.show(&id).await["status"], "queued");
    assert_eq!(
        s.upload(&id, pattern(1 << 20)).await,
        204,
        "what is left of the quota fits"
    );
    // Another project has its own quota.
    let r = s
        .as_("u:p2", reqwest::Method::POST, "/v2/images")
        .json(&serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .send()
        .await
        .unwrap();
    let other: serde_json::Value = r.json().await.unwrap();
    let put = s
        .as_(
            "u:p2",
            reqwest::Method::PUT,
            &format!("/v2/images/{}/file", other["id"].as_str().unwrap()),
        )
        .header("content-type", "application/octet-stream")
        .body(pattern(2 << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_stores() {
    let dir = tempfile::tempdir().unwrap();
    let (fast, cheap) = (dir.path().join("fast"), dir.path().join("cheap"));
    let s = start_with(1 << 30, |c| {
        c.glance.backends = vec![
            glint::config::BackendConfig {
                id: "cheap".into(),
                description: "second disk".into(),
                data_dirs: vec![cheap.clone()],
                default: false,
            },
            glint::config::BackendConfig {
                id: "fast".into(),
                description: "first disk".into(),
                data_dirs: vec![fast.clone()],
                default: true,
            },
        ];
    })
    .await;
    let info: serde_json::Value = s.get_json("/v2/info/stores").await;
    assert_eq!(
        info["stores"][1],
        serde_json::json!({"id": "fast", "description": "first disk", "default": "true"})
    );
    let detail = s
        .req(reqwest::Method::GET, "/v2/info/stores/detail")
        .send()
        .await
        .unwrap();
    assert_eq!(detail.status().as_u16(), 403, "detail is for admins");
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    let data = pattern(3 << 20);
    let put = |store: &str| {
        s.req(reqwest::Method::PUT, &format!("/v2/images/{id}/file"))
            .header("content-type", "application/octet-stream")
            .header("x-image-meta-store", store)
            .body(data.clone())
            .send()
    };
    assert_eq!(put("nope").await.unwrap().status().as_u16(), 400);
    assert_eq!(put("cheap").await.unwrap().status().as_u16(), 204);
    assert_eq!(s.show(&id).await["stores"], "cheap");
    let cheap_store = s.stores.store(Some("cheap")).clone();
    cheap_store.settle().await;
    assert_eq!(
        cheap_store.chunk_file_count().unwrap(),
        3,
        "the data is on the cheap disk"
    );
    assert_eq!(s.store.chunk_file_count().unwrap(), 0);
    // copy-image (admin) to fast; then reading prefers either.
    let import = format!("/v2/images/{id}/import");
    let copy = serde_json::json!({"method": {"name": "copy-image"}, "stores": ["fast"]});
    assert_eq!(
        post_json(&s, &import, copy.clone()).await,
        403,
        "copy_image is admin-only"
    );
    let r = s
        .as_("admin:admin", reqwest::Method::POST, &import)
        .json(&copy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let img = wait_for(&s, &id, |i| i["stores"] == "cheap,fast").await;
    assert_eq!(img["status"], "active");
    assert!(img.get("os_glance_import_task").is_none());
    let r = s
        .as_("admin:admin", reqwest::Method::POST, &import)
        .json(&copy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "fast has it already");
    for prefer in ["fast", "cheap"] {
        let body = s
            .req(
                reqwest::Method::GET,
                &format!("/v2/images/{id}/file?prefer={prefer}"),
            )
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(body.as_ref(), data.as_slice());
    }
    // Dropping one store's copy; never the last one.
    let drop_from = |store: &str| {
        s.as_(
            "admin:admin",
            reqwest::Method::DELETE,
            &format!("/v2/stores/{store}/{id}"),
        )
        .send()
    };
    assert_eq!(drop_from("nope").await.unwrap().status().as_u16(), 409);
    assert_eq!(drop_from("cheap").await.unwrap().status().as_u16(), 204);
    assert_eq!(drop_from("cheap").await.unwrap().status().as_u16(), 404);
    assert_eq!(
        drop_from("fast").await.unwrap().status().as_u16(),
        403,
        "the last copy stays"
    );
    assert_eq!(s.show(&id).await["stores"], "fast");
    cheap_store.settle().await;
    assert_eq!(cheap_store.chunk_file_count().unwrap(), 0);
    // Deleting the image frees its last store.
    assert_eq!(
        s.status(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
            .await,
        204
    );
    s.store.settle().await;
    assert_eq!(s.store.chunk_file_count().unwrap(), 0);
    // A backend blob no image names (a crash between its commit and the record's) is removed
    // by reconciliation.
    let orphan = cheap_store
        .write_bytes(pattern(1 << 20), Default::default())
        .await
        .unwrap();
    cheap_store.commit(orphan).await.unwrap();
    assert_eq!(s.stores.reconcile().await.unwrap(), 1);
    cheap_store.settle().await;
    assert_eq!(cheap_store.chunk_file_count().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_and_proxy_headers() {
    let s = start_with(1 << 30, |c| {
        c.glance.cors.allowed_origin = vec!["https://dashboard.example".into()];
        c.glance.proxy_headers = true;
    })
    .await;
    let pre = s
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/v2/images", s.base))
        .header("origin", "https://dashboard.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-auth-token")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status().as_u16(), 200);
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://dashboard.example"
    );
    assert!(pre.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PATCH"));
    let r = s
        .req(reqwest::Method::GET, "/v2/images")
        .header("origin", "https://dashboard.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dashboard.example"
    );
    let other = s
        .req(reqwest::Method::GET, "/v2/images")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let v: serde_json::Value = s
        .http
        .get(format!("{}/versions", s.base))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "images.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["versions"][0]["links"][0]["href"],
        "https://images.example/v2/"
    );
    // The new image's Location is absolute, as upstream writes it, and names the proxy.
    let r = s
        .req(reqwest::Method::POST, "/v2/images")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "images.example")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let img: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        location,
        format!(
            "https://images.example/v2/images/{}",
            img["id"].as_str().unwrap()
        )
    );
}
