//! The attacks of issue 7, each reproduced against the real server: they succeeded before
//! the fixes and must keep failing. Multipart hijacking, the S3 images bucket bypassing
//! `policy.yaml`, a corrupt chunk reused by dedup, key rules, ranges, and features accepted
//! and ignored. (The process-killing XML and connection exhaustion: `tests/edge.rs`.)

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_but_the_initiator_writes_into_a_multipart_upload() {
    let s = start().await;
    assert_eq!(
        s.s("PUT", "/pub", &[("x-amz-acl", "public-read")], vec![])
            .await
            .status,
        200
    );
    let id = s.initiate(Who::Owner, "pub", "target").await;
    // Anyone may list the uploads of a public-read bucket and so learn the id…
    let listed = s
        .as_who(Who::Anon, "GET", "/pub?uploads", &[], vec![])
        .await;
    assert!(listed.text().contains(&id), "{}", listed.text());
    // …but neither an anonymous client nor another project may add a part or complete.
    let part = format!("/pub/target?partNumber=1&uploadId={id}");
    let done = format!("/pub/target?uploadId={id}");
    for who in [Who::Anon, Who::Alt, Who::PresignedAlt] {
        let r = s.as_who(who, "PUT", &part, &[], b"evil".to_vec()).await;
        assert_eq!(r.code(), "AccessDenied", "{who:?} uploads a part");
        let r = s
            .as_who(who, "POST", &done, &[], complete_doc(&["\"x\""]))
            .await;
        assert_eq!(r.code(), "AccessDenied", "{who:?} completes");
        for (m, p) in [("GET", &done), ("DELETE", &done)] {
            let r = s.as_who(who, m, p, &[], vec![]).await;
            assert_eq!(r.code(), "AccessDenied", "{who:?} {m} the upload");
        }
    }
    // UploadPartCopy into it from an object alt may read is refused too.
    assert_eq!(
        s.send(
            "PUT",
            "/pub/src",
            &[("x-amz-acl", "public-read")],
            b"src".to_vec(),
            Some(SK)
        )
        .await
        .status,
        200
    );
    let r = s
        .as_who(
            Who::Alt,
            "PUT",
            &part,
            &[("x-amz-copy-source", "/pub/src")],
            vec![],
        )
        .await;
    assert_eq!(r.code(), "AccessDenied");
    // The initiator completes with its own bytes.
    let r = s.s("PUT", &part, &[], b"mine".to_vec()).await;
    assert_eq!(r.status, 200);
    let etag = r.header("etag").to_string();
    let r = s.s("POST", &done, &[], complete_doc(&[&etag])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.s("GET", "/pub/target", &[], vec![]).await.body, b"mine");

    // On a bucket alt may write to, alt's upload is alt's: the owner of the bucket may
    // continue it, other writers may not.
    assert_eq!(
        s.s(
            "PUT",
            "/open",
            &[("x-amz-acl", "public-read-write")],
            vec![]
        )
        .await
        .status,
        200
    );
    let alt_id = s.initiate(Who::Alt, "open", "k").await;
    let part = format!("/open/k?partNumber=1&uploadId={alt_id}");
    assert_eq!(
        s.as_who(Who::Anon, "PUT", &part, &[], b"x".to_vec())
            .await
            .code(),
        "AccessDenied",
        "an anonymous writer may not touch alt's upload"
    );
    assert_eq!(s.s("PUT", &part, &[], b"x".to_vec()).await.status, 200);
    assert_eq!(
        s.as_who(Who::Alt, "PUT", &part, &[], b"y".to_vec())
            .await
            .status,
        200
    );
    // An anonymous initiator's upload continues anonymously.
    let anon_id = s.initiate(Who::Anon, "open", "a").await;
    let part = format!("/open/a?partNumber=1&uploadId={anon_id}");
    assert_eq!(
        s.as_who(Who::Anon, "PUT", &part, &[], b"z".to_vec())
            .await
            .status,
        200
    );
    assert_eq!(
        s.as_who(Who::Alt, "PUT", &part, &[], b"z".to_vec())
            .await
            .code(),
        "AccessDenied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_bucket_obeys_the_image_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "\"download_image\": \"role:admin\"\n").unwrap();
    let p = policy.clone();
    let s = start_with(move |c| c.glance.policy_file = Some(p)).await;
    let id = s.new_image().await;
    assert_eq!(s.upload_image("u:proj", &id, vec![7u8; 1000]).await, 204);
    // The owner (a member, not an admin) may not download through the Images API…
    let api = s
        .glance(
            "u:proj",
            reqwest::Method::GET,
            &format!("/v2/images/{id}/file"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 403);
    // …nor through the images bucket, signed or presigned, GET or HEAD.
    let key = format!("/images/{id}");
    for who in [Who::Owner, Who::PresignedOwner] {
        for m in ["GET", "HEAD"] {
            let r = s.as_who(who, m, &key, &[], vec![]).await;
            assert_eq!(r.status, 403, "{who:?} {m}");
        }
    }
    // It is still listed: get_image allows seeing it.
    let list = s.s("GET", "/images?list-type=2", &[], vec![]).await;
    assert!(list.text().contains(&id), "{}", list.text());

    // A get_image rule hides the image on both paths (404 / NoSuchKey, never 403).
    std::fs::write(&policy, "\"get_image\": \"role:admin\"\n").unwrap();
    let p = policy.clone();
    let s2 = start_with(move |c| c.glance.policy_file = Some(p)).await;
    let id2 = s2.new_image().await;
    let api = s2
        .glance("u:proj", reqwest::Method::GET, &format!("/v2/images/{id2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
    let r = s2.s("GET", &format!("/images/{id2}"), &[], vec![]).await;
    assert_eq!(r.code(), "NoSuchKey");
    let list = s2.s("GET", "/images?list-type=2", &[], vec![]).await;
    assert!(!list.text().contains(&id2));
}

/// The chunk files under a server's data directory.
fn chunk_files(s: &Server) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let chunks = s._dir.path().join("data").join("chunks");
    for sub in std::fs::read_dir(chunks).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out
}

/// Flips one byte of the first stored chunk's data: its chunk file (format v1) or its record
/// in the only pack (format v2: 16-byte pack header, 56-byte record header).
fn damage_first_chunk(s: &Server, format: glint_storage::Format) {
    let (victim, at) = match format {
        glint_storage::Format::V1 => {
            let files = chunk_files(s);
            assert_eq!(files.len(), 3);
            let len = std::fs::metadata(&files[0]).unwrap().len() as usize;
            (files[0].clone(), len - 100)
        }
        glint_storage::Format::V2 => {
            let packs: Vec<_> = std::fs::read_dir(s._dir.path().join("data/packs"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(packs.len(), 1);
            (packs[0].clone(), 16 + 56 + 1000)
        }
    };
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(&victim, &bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_chunk_is_replaced_by_the_next_write_of_its_bytes() {
    for format in [glint_storage::Format::V1, glint_storage::Format::V2] {
        let s = start_with(|c| c.store_format = format).await;
        assert_eq!(s.s("PUT", "/bkt", &[], vec![]).await.status, 200);
        let data = pattern(3 << 20, 9);
        assert_eq!(
            s.s("PUT", "/bkt/first", &[], data.clone()).await.status,
            200
        );
        // One flipped byte in one chunk: reads refuse it (an error answer before the first
        // byte, a truncated body after it; never wrong bytes).
        damage_first_chunk(&s, format);
        let report = s.store.scrub(Default::default()).await.unwrap();
        assert_eq!(report.corrupt.len() + report.corrupt_records.len(), 1);
        assert_eq!(report.damaged_blobs.len(), 1);
        let names = glint::damage::describe(&s.store, &report.damaged_blobs)
            .await
            .unwrap();
        assert_eq!(names, vec!["s3://bkt/first".to_string()]);
        // The same bytes uploaded again: the dedup hit finds the damage and replaces it.
        assert_eq!(
            s.s("PUT", "/bkt/second", &[], data.clone()).await.status,
            200
        );
        for key in ["/bkt/first", "/bkt/second"] {
            let r = s.s("GET", key, &[], vec![]).await;
            assert_eq!(r.status, 200);
            assert!(r.body == data, "{format:?} {key} reads back whole");
        }
        let report = s.store.scrub(Default::default()).await.unwrap();
        assert!(report.is_clean(), "{format:?}: {report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_sizes_follow_s3_rules() {
    let s = start_with(|c| c.s3_max_put_size = 1 << 20).await;
    assert_eq!(s.s("PUT", "/bkt", &[], vec![]).await.status, 200);
    let long = format!("/bkt/{}", "k".repeat(1025));
    assert_eq!(
        s.s("PUT", &long, &[], b"x".to_vec()).await.code(),
        "KeyTooLongError"
    );
    let longest = format!("/bkt/{}", "k".repeat(1024));
    assert_eq!(s.s("PUT", &longest, &[], b"x".to_vec()).await.status, 200);
    // A key XML cannot carry is refused; one with CR, LF and markup lists well-formed.
    assert_eq!(
        s.s("PUT", "/bkt/nul%00key", &[], b"x".to_vec())
            .await
            .code(),
        "InvalidArgument"
    );
    assert_eq!(
        s.s("PUT", "/bkt/cr%0Dlf%0A%3C%26", &[], b"x".to_vec())
            .await
            .status,
        200
    );
    let list = s.s("GET", "/bkt?list-type=2", &[], vec![]).await.text();
    assert!(list.contains("<Key>cr&#13;lf\n&lt;&amp;</Key>"), "{list}");
    // A declared length over s3_max_put_size is refused from the headers alone.
    let r = s.s("PUT", "/bkt/big", &[], vec![0u8; (1 << 20) + 1]).await;
    assert_eq!(r.code(), "EntityTooLarge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_read_as_each_protocol_defines() {
    let s = start().await;
    assert_eq!(s.s("PUT", "/bkt", &[], vec![]).await.status, 200);
    let data = pattern(1000, 1);
    assert_eq!(s.s("PUT", "/bkt/o", &[], data.clone()).await.status, 200);
    // S3 (as AWS): an invalid range is ignored (200, whole object); a last position past the
    // end clips (206).
    let r = s
        .s("GET", "/bkt/o", &[("range", "bytes=5-2")], vec![])
        .await;
    assert_eq!((r.status, r.body.len()), (200, 1000));
    let r = s
        .s(
            "GET",
            "/bkt/o",
            &[("range", "bytes=5-99999999999999999999")],
            vec![],
        )
        .await;
    assert_eq!((r.status, r.body.as_slice()), (206, &data[5..]));
    // Glance (as upstream, webob's Range): invalid is 416; the overflowing end clips too.
    let id = s.new_image().await;
    assert_eq!(s.upload_image("u:proj", &id, data.clone()).await, 204);
    let get = |range: &'static str| {
        s.glance(
            "u:proj",
            reqwest::Method::GET,
            &format!("/v2/images/{id}/file"),
        )
        .header("range", range)
        .send()
    };
    assert_eq!(get("bytes=5-2").await.unwrap().status(), 416);
    let r = get("bytes=5-99999999999999999999").await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[5..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protections_glint_lacks_are_refused_not_ignored() {
    let s = start().await;
    assert_eq!(s.s("PUT", "/bkt", &[], vec![]).await.status, 200);
    let refused = [
        vec![
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            (
                "x-amz-server-side-encryption-customer-key",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            ),
            (
                "x-amz-server-side-encryption-customer-key-md5",
                "hvzbqQ5sLEufEvwXJ1g/Rg==",
            ),
        ],
        vec![("x-amz-server-side-encryption", "AES256")],
        vec![
            ("x-amz-server-side-encryption", "aws:kms"),
            ("x-amz-server-side-encryption-aws-kms-key-id", "k"),
        ],
        vec![
            ("x-amz-object-lock-mode", "COMPLIANCE"),
            (
                "x-amz-object-lock-retain-until-date",
                "2030-01-01T00:00:00Z",
            ),
        ],
        vec![("x-amz-object-lock-legal-hold", "ON")],
        vec![("x-amz-tagging", "a=b")],
        vec![("x-amz-website-redirect-location", "/x")],
    ];
    for headers in &refused {
        let r = s
            .s("PUT", "/bkt/protected", headers, b"secret".to_vec())
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (501, "NotImplemented"),
            "{headers:?}"
        );
    }
    assert_eq!(
        s.s("GET", "/bkt/protected", &[], vec![]).await.code(),
        "NoSuchKey",
        "nothing was stored"
    );
    let r = s
        .s(
            "PUT",
            "/locked",
            &[("x-amz-bucket-object-lock-enabled", "true")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 501);
    assert_eq!(s.s("HEAD", "/locked", &[], vec![]).await.status, 404);
    assert_eq!(
        s.s(
            "PUT",
            "/bkt/k",
            &[("x-amz-storage-class", "GLACIER")],
            b"x".to_vec()
        )
        .await
        .code(),
        "InvalidStorageClass"
    );
    assert_eq!(
        s.s("GET", "/bkt/k?versionId=3HL4kqtJlcpXroDTDmJ", &[], vec![])
            .await
            .code(),
        "InvalidArgument"
    );

    // Conditional deletes are honoured.
    let r = s.s("PUT", "/bkt/k", &[], b"v".to_vec()).await;
    let etag = r.header("etag").to_string();
    let r = s
        .s("DELETE", "/bkt/k", &[("if-match", "\"0000\"")], vec![])
        .await;
    assert_eq!(r.code(), "PreconditionFailed");
    assert_eq!(s.s("GET", "/bkt/k", &[], vec![]).await.status, 200, "kept");
    let r = s
        .s("DELETE", "/bkt/k", &[("x-amz-if-match-size", "2")], vec![])
        .await;
    assert_eq!(r.code(), "PreconditionFailed");
    let r = s
        .s(
            "DELETE",
            "/bkt/k",
            &[("if-match", &etag), ("x-amz-if-match-size", "1")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(s.s("GET", "/bkt/k", &[], vec![]).await.code(), "NoSuchKey");
    // DeleteObjects honours each entry's ETag and Size.
    let e1 = s
        .s("PUT", "/bkt/one", &[], b"1".to_vec())
        .await
        .header("etag")
        .to_string();
    s.s("PUT", "/bkt/two", &[], b"2".to_vec()).await;
    let doc = format!(
        "<Delete><Object><Key>one</Key><ETag>{e1}</ETag></Object><Object><Key>two</Key><ETag>\"bad\"</ETag></Object><Object><Key>three</Key><Size>5</Size></Object></Delete>"
    );
    let r = s.s("POST", "/bkt?delete", &[], doc.into_bytes()).await;
    let t = r.text();
    assert!(t.contains("<Deleted><Key>one</Key></Deleted>"), "{t}");
    assert!(
        t.contains("<Error><Key>two</Key><Code>PreconditionFailed</Code>"),
        "{t}"
    );
    assert!(
        t.contains("<Error><Key>three</Key><Code>NoSuchKey</Code>"),
        "{t}"
    );
    assert_eq!(s.s("GET", "/bkt/two", &[], vec![]).await.status, 200);
}
