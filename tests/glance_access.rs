//! The Glance Images API v2 end to end on the real server — who may do what: members sharing an image, and policy files over the defaults.

mod common;

use common::glance::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_an_image() {
    let s = start_glance(1 << 30).await;
    let owner = "demo:demo";
    let other = "alt:alt";
    let r = s
        .glance(owner, reqwest::Method::POST, "/v2/images")
        .json(&serde_json::json!({"name": "sh", "visibility": "private"}))
        .send()
        .await
        .unwrap();
    let id2: serde_json::Value = r.json().await.unwrap();
    let id2 = id2["id"].as_str().unwrap().to_string();
    let members = format!("/v2/images/{id2}/members");
    let add = |tok: &'static str| {
        s.glance(tok, reqwest::Method::POST, &members)
            .json(&serde_json::json!({"member": "alt"}))
            .send()
    };
    assert_eq!(
        add(owner).await.unwrap().status().as_u16(),
        403,
        "private images have no members"
    );
    let r = s
        .glance(owner, reqwest::Method::PATCH, &format!("/v2/images/{id2}"))
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
        .glance(other, reqwest::Method::GET, &format!("/v2/images/{id2}"))
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
        s.glance(tok, reqwest::Method::PUT, &format!("{members}/alt"))
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
        .glance(other, reqwest::Method::DELETE, &format!("{members}/alt"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        del.status().as_u16(),
        403,
        "the member cannot remove itself"
    );
    let del = s
        .glance(owner, reqwest::Method::DELETE, &format!("{members}/alt"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 204);
    let show = s
        .glance(other, reqwest::Method::GET, &format!("/v2/images/{id2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(show.status().as_u16(), 404);
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
    let s = start_glance_with(1 << 30, |c| c.glance.policy_file = Some(file.clone())).await;
    let (st, img) = s
        .create(serde_json::json!({"visibility": "public", "disk_format": "raw", "container_format": "bare"}))
        .await;
    assert_eq!(st, 201, "publicize_image was opened to members");
    let id = img["id"].as_str().unwrap().to_string();
    assert_eq!(s.upload(&id, image_data(100)).await, 204);
    let reader = s
        .glance(
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
        .glance(
            "admin:admin",
            reqwest::Method::DELETE,
            &format!("/v2/images/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(admin_del.status().as_u16(), 403);
}

/// The cache API as upstream orders its checks: a named image is looked up first (404 for
/// anyone who cannot see it), then `cache_image` / `cache_delete` (admin), then queueing
/// wants an active image (400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_api_checks_the_image_then_the_policy_then_its_status() {
    let s = start_glance(1 << 30).await;
    let admin = "admin:admin";
    let (_, img) = s
        .create(serde_json::json!({"disk_format": "raw", "container_format": "bare"}))
        .await;
    let id = img["id"].as_str().unwrap().to_string();
    let missing = "11111111-2222-4333-8444-555555555555";
    let status = |token: &'static str, m: reqwest::Method, path: String| {
        let req = s.glance(token, m, &path);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let put = reqwest::Method::PUT;
    let del = reqwest::Method::DELETE;
    assert_eq!(
        status("u:p1", put.clone(), format!("/v2/cache/{missing}")).await,
        404
    );
    assert_eq!(
        status("u:p2", put.clone(), format!("/v2/cache/{id}")).await,
        404,
        "not visible"
    );
    assert_eq!(
        status("u:p1", put.clone(), format!("/v2/cache/{id}")).await,
        403
    );
    assert_eq!(
        status(admin, put.clone(), format!("/v2/cache/{id}")).await,
        400,
        "only active images can be queued"
    );
    assert_eq!(s.upload(&id, image_data(1000)).await, 204);
    assert_eq!(status(admin, put, format!("/v2/cache/{id}")).await, 202);
    assert_eq!(
        status("u:p1", del.clone(), format!("/v2/cache/{id}")).await,
        403
    );
    assert_eq!(
        status(admin, del.clone(), format!("/v2/cache/{id}")).await,
        204
    );
    assert_eq!(
        status(admin, del.clone(), format!("/v2/cache/{missing}")).await,
        404
    );
    let clear = s
        .glance(admin, del, "/v2/cache")
        .header("x-image-cache-clear-target", "CACHE")
        .send()
        .await
        .unwrap();
    assert_eq!(
        clear.status().as_u16(),
        204,
        "the target is case-insensitive"
    );
}
