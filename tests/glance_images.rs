//! The Glance Images API v2 end to end on the real server — images: versions, create and validation, tags and deactivation, JSON patch in both dialects, listing (filters, sort, paging), schemas and discovery, notifications, CORS and proxy headers.

mod common;

use common::glance::*;
use md5::Digest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_healthcheck() {
    let s = start_glance(1 << 30).await;
    let r = s.http.get(format!("{}/", s.glance)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 300);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["status"] == "CURRENT"));
    let h = s
        .http
        .get(format!("{}/healthcheck", s.glance))
        .send()
        .await
        .unwrap();
    assert_eq!(h.text().await.unwrap(), "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validation_and_protection() {
    let s = start_glance(1 << 30).await;
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
        .get(format!("{}/v2/images/{id}", s.glance))
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
    let s = start_glance(1 << 30).await;
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
    assert_eq!(s.upload(&id, image_data(1000)).await, 204);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patch_both_dialects() {
    let s = start_glance(1 << 30).await;
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
    assert_eq!(s.upload(&id, image_data(10)).await, 204);
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
    let s = start_glance(1 << 30).await;
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
        assert_eq!(s.upload(&id, image_data(size)).await, 204);
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
            .glance(me, reqwest::Method::GET, &format!("/v2/images?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_and_discovery() {
    let s = start_glance(1 << 30).await;
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
    let r = s.http.get(format!("{}/v2", s.glance)).send().await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_as_json_lines() {
    let sink = tempfile::NamedTempFile::new().unwrap();
    let path = sink.path().to_path_buf();
    let s = start_glance_with(1 << 30, |c| {
        c.glance.notifications_file = Some(path.clone())
    })
    .await;
    let (_, img) = s
        .create(serde_json::json!({"name": "n", "disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    assert_eq!(s.upload(&id, image_data(1000)).await, 204);
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
        hex::encode(md5::Md5::digest(image_data(1000)))
    );
    assert_eq!(events[5]["payload"]["bytes_sent"], 1000);
    assert_eq!(events[4]["payload"]["name"], "m");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_and_proxy_headers() {
    let s = start_glance_with(1 << 30, |c| {
        c.glance.cors.allowed_origin = vec!["https://dashboard.example".into()];
        c.glance.proxy_headers = true;
    })
    .await;
    let pre = s
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/v2/images", s.glance))
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
        .get(format!("{}/versions", s.glance))
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
