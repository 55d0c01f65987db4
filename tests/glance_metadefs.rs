//! Metadata definitions end to end on the real server: definition files loaded into the
//! catalog, then read and changed through `/v2/metadefs` by each persona. (Upstream's own
//! standard files and answers are compared in tests/python/test_glance_metadefs.py.)

mod common;

use common::glance::*;
use reqwest::Method;

const ADMIN: &str = "admin:admin";
const MEMBER: &str = "u:p1";
const READER: &str = "r:p1:reader";
const OTHER: &str = "o:p2";

/// Two definition files in upstream's format: a public, protected namespace associated with
/// images, and a private one owned by p1.
fn definitions(dir: &std::path::Path) {
    std::fs::write(
        dir.join("a.json"),
        serde_json::json!({
            "namespace": "Test::Public", "display_name": "Public", "visibility": "public",
            "protected": true,
            "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "t_"}],
            "properties": {"speed": {"type": "integer", "title": "Speed", "default": 3}},
            "objects": [{"name": "cpu", "properties": {"cores": {"type": "integer", "title": "Cores"}}}]
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("b.json"),
        serde_json::json!({"namespace": "Test::Private", "visibility": "private", "owner": "p1"})
            .to_string(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personas_read_and_change_loaded_definitions() {
    let s = start_glance(1 << 30).await;
    let dir = tempfile::tempdir().unwrap();
    definitions(dir.path());
    let loaded = glint::images::metadefs::files::load(&s.store, dir.path(), false)
        .await
        .unwrap();
    assert_eq!((loaded.namespaces, loaded.skipped), (2, 0));
    let again = glint::images::metadefs::files::load(&s.store, dir.path(), false)
        .await
        .unwrap();
    assert_eq!(
        (again.namespaces, again.skipped),
        (0, 2),
        "a second load skips"
    );

    let status = |who: &'static str, m: Method, path: &str, body: Option<serde_json::Value>| {
        let mut req = s.glance(who, m, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let names = |who: &'static str| {
        let req = s.glance(who, Method::GET, "/v2/metadefs/namespaces");
        async move {
            let v: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            let mut n: Vec<String> = v["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["namespace"].as_str().unwrap().to_string())
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(names(ADMIN).await, ["Test::Private", "Test::Public"]);
    assert_eq!(
        names(MEMBER).await,
        ["Test::Private", "Test::Public"],
        "its project's own"
    );
    assert_eq!(names(READER).await, ["Test::Private", "Test::Public"]);
    assert_eq!(names(OTHER).await, ["Test::Public"]);
    let private = "/v2/metadefs/namespaces/Test::Private";
    assert_eq!(status(OTHER, Method::GET, private, None).await, 404);
    assert_eq!(status(READER, Method::GET, private, None).await, 200);
    let public = "/v2/metadefs/namespaces/Test::Public";
    let shown: serde_json::Value = s
        .glance(OTHER, Method::GET, public)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["properties"]["speed"]["default"], "3",
        "upstream's PropertyType"
    );
    assert_eq!(shown["resource_type_associations"][0]["prefix"], "t_");
    assert_eq!(shown["objects"][0]["name"], "cpu");
    // Changes are admin-only; a protected namespace keeps its contents.
    let new_ns = serde_json::json!({"namespace": "Test::New"});
    assert_eq!(
        status(
            MEMBER,
            Method::POST,
            "/v2/metadefs/namespaces",
            Some(new_ns.clone())
        )
        .await,
        403
    );
    assert_eq!(
        status(
            ADMIN,
            Method::POST,
            "/v2/metadefs/namespaces",
            Some(new_ns.clone())
        )
        .await,
        201
    );
    assert_eq!(
        status(ADMIN, Method::POST, "/v2/metadefs/namespaces", Some(new_ns)).await,
        409
    );
    assert_eq!(status(ADMIN, Method::DELETE, public, None).await, 403);
    assert_eq!(
        status(
            ADMIN,
            Method::DELETE,
            &format!("{public}/objects/cpu"),
            None
        )
        .await,
        403
    );
    let tag = "/v2/metadefs/namespaces/Test::New/tags/fast";
    assert_eq!(
        status(MEMBER, Method::POST, tag, None).await,
        404,
        "private to admin's project"
    );
    assert_eq!(status(ADMIN, Method::POST, tag, None).await, 201);
    assert_eq!(status(ADMIN, Method::POST, tag, None).await, 409);
    assert_eq!(
        status(
            ADMIN,
            Method::DELETE,
            "/v2/metadefs/namespaces/Test::New",
            None
        )
        .await,
        204
    );
    assert_eq!(status(ADMIN, Method::GET, tag, None).await, 404);

    // Export writes what was loaded; unload empties the catalog.
    let out = tempfile::tempdir().unwrap();
    let n = glint::images::metadefs::files::export(&s.store, out.path())
        .await
        .unwrap();
    assert_eq!(n, 2);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("Test-Public.json")).unwrap())
            .unwrap();
    assert_eq!(doc["properties"]["speed"]["title"], "Speed");
    assert!(
        glint::images::metadefs::files::unload(&s.store)
            .await
            .unwrap()
            > 0
    );
    assert!(names(ADMIN).await.is_empty());
}
