//! The Glance Images API v2 end to end on the real server — imports and tasks: stage and glance-direct, web-download and URI filtering, the legacy tasks API, multiple stores and copy-image.

mod common;

use common::glance::*;
use md5::Digest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_then_glance_direct_import() {
    let s = start_glance(1 << 30).await;
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
    let data = image_data(3 << 20);
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
    let chunks = common::stored_bytes(&s.store).await;
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
        common::stored_bytes(&s.store).await,
        chunks,
        "the staged blob is adopted, not copied"
    );
    let body = s.get_bytes(&format!("/v2/images/{id}/file")).await;
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
        .body(image_data(1 << 20).into_iter().rev().collect::<Vec<u8>>())
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
    assert_eq!(common::stored_bytes(&s.store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_download_import_and_uri_filtering() {
    let data = image_data(2 << 20);
    let port = web_source(data.clone()).await;
    let s = start_glance_with(1 << 30, |c| {
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
    let s = start_glance(1 << 30).await;
    let admin = "admin:admin";
    let r = s
        .glance(admin, reqwest::Method::GET, "/v2/tasks")
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
        s.glance(admin, reqwest::Method::POST, "/v2/tasks")
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
        .glance(
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
async fn multiple_stores() {
    let dir = tempfile::tempdir().unwrap();
    let (fast, cheap) = (dir.path().join("fast"), dir.path().join("cheap"));
    let s = start_glance_with(1 << 30, |c| {
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
    let data = image_data(3 << 20);
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
    let on_cheap = common::stored_bytes(&cheap_store).await;
    // (Format v2 may compress it: more than nothing is what either format promises.)
    assert!(on_cheap > 0, "the data is on the cheap disk");
    assert_eq!(common::stored_bytes(&s.store).await, 0);
    // copy-image (admin) to fast; then reading prefers either.
    let import = format!("/v2/images/{id}/import");
    let copy = serde_json::json!({"method": {"name": "copy-image"}, "stores": ["fast"]});
    assert_eq!(
        post_json(&s, &import, copy.clone()).await,
        403,
        "copy_image is admin-only"
    );
    let r = s
        .glance("admin:admin", reqwest::Method::POST, &import)
        .json(&copy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    // The copy lands in `stores` first; the task's lock goes when the task ends.
    let img = wait_for(&s, &id, |i| {
        i["stores"] == "cheap,fast" && i.get("os_glance_import_task").is_none()
    })
    .await;
    assert_eq!(img["status"], "active");
    let r = s
        .glance("admin:admin", reqwest::Method::POST, &import)
        .json(&copy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "fast has it already");
    for prefer in ["fast", "cheap"] {
        let body = s
            .get_bytes(&format!("/v2/images/{id}/file?prefer={prefer}"))
            .await;
        assert_eq!(body.as_ref(), data.as_slice());
    }
    // Dropping one store's copy; never the last one.
    let drop_from = |store: &str| {
        s.glance(
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
    assert_eq!(common::stored_bytes(&cheap_store).await, 0);
    // Deleting the image frees its last store.
    assert_eq!(
        s.status(reqwest::Method::DELETE, &format!("/v2/images/{id}"))
            .await,
        204
    );
    s.store.settle().await;
    assert_eq!(common::stored_bytes(&s.store).await, 0);
    // A backend blob no image names (a crash between its commit and the record's) is removed
    // by reconciliation.
    let orphan = cheap_store
        .write_bytes(image_data(1 << 20), Default::default())
        .await
        .unwrap();
    cheap_store.commit(orphan).await.unwrap();
    assert_eq!(s.stores.reconcile().await.unwrap(), 1);
    cheap_store.settle().await;
    assert_eq!(common::stored_bytes(&cheap_store).await, 0);
}

/// Runs qemu-img (qemu-utils) with `args`, panicking with its message on failure.
fn qemu_img(args: &[&str]) {
    let out = std::process::Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img (qemu-utils) is installed");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_conversion_plugin_turns_qcow2_imports_into_raw() {
    use sha2::Digest as _;
    let work = tempfile::tempdir().unwrap();
    let path = |name: &str| work.path().join(name).to_string_lossy().into_owned();
    // A guest disk with data, a zero run and more data, shipped as compressed qcow2.
    let mut guest = image_data(3 << 20);
    guest.extend(std::iter::repeat_n(0u8, 2 << 20));
    guest.extend(image_data(3 << 20).into_iter().rev());
    std::fs::write(path("guest.raw"), &guest).unwrap();
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        "-c",
        &path("guest.raw"),
        &path("guest.qcow2"),
    ]);
    qemu_img(&[
        "convert",
        "-f",
        "qcow2",
        "-O",
        "raw",
        &path("guest.qcow2"),
        &path("want.raw"),
    ]);
    let want = std::fs::read(path("want.raw")).unwrap();
    let qcow2 = std::fs::read(path("guest.qcow2")).unwrap();
    // And one with a backing file on the host: refused before qemu-img sees it.
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        &path("guest.raw"),
        "-F",
        "raw",
        &path("backed.qcow2"),
    ]);
    let backed = std::fs::read(path("backed.qcow2")).unwrap();

    let convert_dir = work.path().join("convert");
    let dir = convert_dir.clone();
    let s = start_glance_with(1 << 30, move |c| {
        c.glance.image_conversion = Some(glint::config::ConversionOptions {
            output_format: "raw".into(),
            work_dir: dir,
        });
    })
    .await;
    let import = |id: &str| {
        let path = format!("/v2/images/{id}/import");
        let s = &s;
        async move {
            post_json(
                s,
                &path,
                serde_json::json!({"method": {"name": "glance-direct"}}),
            )
            .await
        }
    };
    let staged_image = |body: Vec<u8>| {
        let s = &s;
        async move {
            let (_, img) = s
                .create(serde_json::json!({"disk_format": "qcow2", "container_format": "bare"}))
                .await;
            let id = img["id"].as_str().unwrap().to_string();
            let r = s
                .req(reqwest::Method::PUT, &format!("/v2/images/{id}/stage"))
                .header("content-type", "application/octet-stream")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 204);
            id
        }
    };

    let id = staged_image(qcow2).await;
    assert_eq!(import(&id).await, 202);
    let img = wait_for(&s, &id, |i| i["status"] == "active").await;
    assert_eq!(img["disk_format"], "raw");
    assert_eq!(img["size"], want.len() as u64);
    assert_eq!(img["virtual_size"], want.len() as u64);
    assert_eq!(img["checksum"], hex::encode(md5::Md5::digest(&want)));
    assert_eq!(img["os_hash_algo"], "sha512");
    assert_eq!(
        img["os_hash_value"],
        hex::encode(sha2::Sha512::digest(&want))
    );
    let body = s.get_bytes(&format!("/v2/images/{id}/file")).await;
    assert!(
        body.as_ref() == want.as_slice(),
        "the bytes of qemu-img convert -O raw"
    );
    // The zero run costs nothing; the staged qcow2 is gone.
    s.store.settle().await;
    assert!(common::stored_bytes(&s.store).await < 6 << 20);

    let bad = staged_image(backed).await;
    assert_eq!(import(&bad).await, 202);
    let img = wait_for(&s, &bad, |i| i["status"] == "queued").await;
    assert!(img["os_glance_failed_import"].is_string(), "{img}");
    let tasks: serde_json::Value = s.get_json(&format!("/v2/images/{bad}/tasks")).await;
    assert_eq!(tasks["tasks"][0]["status"], "failure");
    let msg = tasks["tasks"][0]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("safety"), "{msg}");
    // Nothing is left in the work area.
    assert_eq!(std::fs::read_dir(&convert_dir).unwrap().count(), 0);
}
