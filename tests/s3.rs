//! The S3 gateway end to end: the real server on an ephemeral loopback port, requests signed
//! with `aws-sigv4` (the AWS SDKs' own signer) and sent over HTTP.

mod common;

use aws_sigv4::http_request::SignableBody;
use base64::Engine;
use common::*;
use md5::Digest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_lifecycle_and_errors() {
    let s = start().await;
    assert_eq!(s.s("PUT", "/alpha", &[], vec![]).await.status, 200);
    let again = s.s("PUT", "/alpha", &[], vec![]).await;
    assert_eq!(
        again.status, 200,
        "re-creating one's own bucket is idempotent"
    );
    assert_eq!(
        s.s("PUT", "/A_b", &[], vec![]).await.code(),
        "InvalidBucketName"
    );
    let list = s.s("GET", "/", &[], vec![]).await;
    assert!(list.text().contains("<Name>alpha</Name>"));
    assert_eq!(s.s("HEAD", "/alpha", &[], vec![]).await.status, 200);
    assert_eq!(s.s("PUT", "/alpha/k", &[], b"v".to_vec()).await.status, 200);
    let busy = s.s("DELETE", "/alpha", &[], vec![]).await;
    assert_eq!((busy.status, busy.code().as_str()), (409, "BucketNotEmpty"));
    assert!(!busy.header("x-amz-request-id").is_empty());
    assert_eq!(s.s("DELETE", "/alpha/k", &[], vec![]).await.status, 204);
    assert_eq!(s.s("DELETE", "/alpha", &[], vec![]).await.status, 204);
    assert_eq!(s.s("HEAD", "/alpha", &[], vec![]).await.status, 404);
    assert_eq!(
        s.s("GET", "/alpha/k", &[], vec![]).await.code(),
        "NoSuchBucket"
    );
    // A refusal answered before the body is read still reaches a client that is writing a
    // large body (the server drains it instead of resetting the connection).
    let big = pattern(8 << 20, 3);
    for round in 0..10 {
        let r = s.s("PUT", "/alpha/big", &[], big.clone()).await;
        assert_eq!(r.code(), "NoSuchBucket", "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_grants_decide_access() {
    let s = start().await;
    let alt = |m: &'static str, p: &'static str, body: Vec<u8>| {
        let s = &s;
        async move { s.send(m, p, &[], body, Some(ALT_SK)).await }
    };
    assert_eq!(s.s("PUT", "/shared", &[], vec![]).await.status, 200);
    assert_eq!(
        s.s("PUT", "/shared/k", &[], b"v".to_vec()).await.status,
        200
    );
    assert_eq!(alt("GET", "/shared/k", vec![]).await.code(), "AccessDenied");
    // An AccessControlPolicy document granting the alt project READ on the object.
    let policy = |perm: &str| {
        format!(
            "<AccessControlPolicy><Owner><ID>proj</ID></Owner><AccessControlList>\
             <Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>proj</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant>\
             <Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>alt</ID></Grantee><Permission>{perm}</Permission></Grant>\
             </AccessControlList></AccessControlPolicy>"
        )
        .into_bytes()
    };
    assert_eq!(
        s.s("PUT", "/shared/k?acl", &[], policy("READ"))
            .await
            .status,
        200
    );
    let got = alt("GET", "/shared/k", vec![]).await;
    assert_eq!((got.status, got.body.as_slice()), (200, &b"v"[..]));
    let acl = s.s("GET", "/shared/k?acl", &[], vec![]).await.text();
    assert!(
        acl.contains("<ID>alt</ID>") && acl.contains("<Permission>READ</Permission>"),
        "{acl}"
    );
    assert_eq!(
        alt("GET", "/shared/k?acl", vec![]).await.code(),
        "AccessDenied",
        "READ does not include READ_ACP"
    );
    // Writing into the bucket needs WRITE on the bucket, granted by header.
    assert_eq!(
        alt("PUT", "/shared/alt-obj", b"a".to_vec()).await.code(),
        "AccessDenied"
    );
    let r = s
        .s(
            "PUT",
            "/shared?acl",
            &[
                ("x-amz-grant-write", "id=\"alt\""),
                ("x-amz-grant-full-control", "id=proj"),
            ],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        alt("PUT", "/shared/alt-obj", b"a".to_vec()).await.status,
        200
    );
    assert_eq!(
        alt("GET", "/shared?list-type=2", vec![]).await.code(),
        "AccessDenied"
    );
    // A canned ACL replaces the grants.
    assert_eq!(
        s.s("PUT", "/shared?acl", &[("x-amz-acl", "private")], vec![])
            .await
            .status,
        200
    );
    assert_eq!(
        alt("PUT", "/shared/alt-2", b"a".to_vec()).await.code(),
        "AccessDenied"
    );
    // Bad documents are S3 errors; nothing changes.
    let bad = s
        .s(
            "PUT",
            "/shared/k?acl",
            &[],
            b"<AccessControlPolicy/>".to_vec(),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (400, "MalformedACLError")
    );
    let email = s
        .s(
            "PUT",
            "/shared/k?acl",
            &[("x-amz-grant-read", "emailAddress=a@b.c")],
            vec![],
        )
        .await;
    assert_eq!(email.code(), "UnresolvableGrantByEmailAddress");
    assert_eq!(alt("GET", "/shared/k", vec![]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_ranges_conditionals_and_digests() {
    let s = start().await;
    s.s("PUT", "/bkt", &[], vec![]).await;
    let data = pattern(3 << 20, 3);
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&data));
    let bad = s
        .s(
            "PUT",
            "/bkt/obj",
            &[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")],
            data.clone(),
        )
        .await;
    assert_eq!((bad.status, bad.code().as_str()), (400, "BadDigest"));
    assert_eq!(
        s.s("GET", "/bkt/obj", &[], vec![]).await.code(),
        "NoSuchKey",
        "a failed PUT leaves nothing"
    );
    let put = s
        .s(
            "PUT",
            "/bkt/obj",
            &[
                ("content-md5", md5.as_str()),
                ("content-type", "text/x-test"),
                ("x-amz-meta-color", "blue"),
            ],
            data.clone(),
        )
        .await;
    assert_eq!(put.status, 200);
    let etag = put.header("etag").to_string();
    assert_eq!(
        etag,
        format!("\"{}\"", hex::encode(md5::Md5::digest(&data)))
    );
    let got = s.s("GET", "/bkt/obj", &[], vec![]).await;
    assert_eq!(got.body, data);
    assert_eq!(got.header("content-type"), "text/x-test");
    assert_eq!(got.header("x-amz-meta-color"), "blue");
    let r = s
        .s(
            "GET",
            "/bkt/obj",
            &[("range", "bytes=1048570-1048580")],
            vec![],
        )
        .await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &data[1048570..1048581])
    );
    assert_eq!(
        r.header("content-range"),
        format!("bytes 1048570-1048580/{}", data.len())
    );
    let r = s
        .s("GET", "/bkt/obj", &[("range", "bytes=-5")], vec![])
        .await;
    assert_eq!(r.body, &data[data.len() - 5..]);
    let r = s
        .s("GET", "/bkt/obj", &[("range", "bytes=99999999-")], vec![])
        .await;
    assert_eq!((r.status, r.code().as_str()), (416, "InvalidRange"));
    assert_eq!(
        s.s(
            "GET",
            "/bkt/obj",
            &[("if-none-match", etag.as_str())],
            vec![]
        )
        .await
        .status,
        304
    );
    assert_eq!(
        s.s("GET", "/bkt/obj", &[("if-match", "\"nope\"")], vec![])
            .await
            .status,
        412
    );
    let head = s.s("HEAD", "/bkt/obj", &[], vec![]).await;
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, data.len().to_string().as_str())
    );
    assert!(head.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_and_multipart_move_no_bytes() {
    let s = start().await;
    s.s("PUT", "/bkt", &[], vec![]).await;
    let data = pattern(4 << 20, 5);
    s.s("PUT", "/bkt/src", &[], data.clone()).await;
    let files = common::stored_bytes(&s.store).await;
    let c = s
        .s(
            "PUT",
            "/bkt/dst",
            &[("x-amz-copy-source", "/bkt/src")],
            vec![],
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(
        common::stored_bytes(&s.store).await,
        files,
        "copy is a clone"
    );
    assert_eq!(s.s("GET", "/bkt/dst", &[], vec![]).await.body, data);

    let init = s.s("POST", "/bkt/mp?uploads", &[], vec![]).await;
    let upload = init
        .text()
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let p1 = pattern(5 << 20, 7);
    let p2 = b"tail".to_vec();
    let e1 = s
        .s(
            "PUT",
            &format!("/bkt/mp?partNumber=1&uploadId={upload}"),
            &[],
            p1.clone(),
        )
        .await
        .header("etag")
        .to_string();
    let e2 = s
        .s(
            "PUT",
            &format!("/bkt/mp?partNumber=2&uploadId={upload}"),
            &[],
            p2.clone(),
        )
        .await
        .header("etag")
        .to_string();
    let before = common::stored_bytes(&s.store).await;
    let backwards = format!(
        "<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part></CompleteMultipartUpload>"
    );
    let r = s
        .s(
            "POST",
            &format!("/bkt/mp?uploadId={upload}"),
            &[],
            backwards.into_bytes(),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidPartOrder"));
    // Part 1 listed twice (a client that re-sent it and kept both answers): the later
    // entry counts, as in Ceph RGW.
    let doc = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"0123456789abcdef0123456789abcdef\"</ETag></Part><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part></CompleteMultipartUpload>"
    );
    let done = s
        .s(
            "POST",
            &format!("/bkt/mp?uploadId={upload}"),
            &[],
            doc.into_bytes(),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(
        done.text().contains("-2&quot;</ETag>") || done.text().contains("-2\"</ETag>"),
        "{}",
        done.text()
    );
    assert_eq!(
        common::stored_bytes(&s.store).await,
        before,
        "completion concatenates manifests"
    );
    let got = s.s("GET", "/bkt/mp", &[], vec![]).await;
    assert_eq!(got.body, [p1.clone(), p2].concat());
    let part2 = s.s("GET", "/bkt/mp?partNumber=2", &[], vec![]).await;
    assert_eq!(
        (part2.status, part2.body.as_slice()),
        (206, b"tail".as_slice())
    );
    let small = s.s("POST", "/bkt/mp2?uploads", &[], vec![]).await;
    let u2 = small
        .text()
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let e = s
        .s(
            "PUT",
            &format!("/bkt/mp2?partNumber=1&uploadId={u2}"),
            &[],
            b"small".to_vec(),
        )
        .await
        .header("etag")
        .to_string();
    let e_2 = s
        .s(
            "PUT",
            &format!("/bkt/mp2?partNumber=2&uploadId={u2}"),
            &[],
            b"x".to_vec(),
        )
        .await
        .header("etag")
        .to_string();
    let doc = format!("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{e_2}</ETag></Part></CompleteMultipartUpload>");
    assert_eq!(
        s.s(
            "POST",
            &format!("/bkt/mp2?uploadId={u2}"),
            &[],
            doc.into_bytes()
        )
        .await
        .code(),
        "EntityTooSmall"
    );
    assert_eq!(
        s.s("DELETE", &format!("/bkt/mp2?uploadId={u2}"), &[], vec![])
            .await
            .status,
        204
    );
    assert_eq!(
        s.s("GET", &format!("/bkt/mp2?uploadId={u2}"), &[], vec![])
            .await
            .code(),
        "NoSuchUpload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failures_are_s3_errors() {
    let s = start().await;
    s.s("PUT", "/bkt", &[], vec![]).await;
    let wrong = s
        .send("PUT", "/bkt/k", &[], b"x".to_vec(), Some("not-the-secret"))
        .await;
    assert_eq!(
        (wrong.status, wrong.code().as_str()),
        (403, "SignatureDoesNotMatch")
    );
    let anon = s.send("GET", "/bkt", &[], vec![], None).await;
    assert_eq!((anon.status, anon.code().as_str()), (403, "AccessDenied"));
    let garbage = s
        .send(
            "GET",
            "/bkt",
            &[("authorization", "AWS4-HMAC-SHA256 nonsense")],
            vec![],
            None,
        )
        .await;
    assert_eq!(garbage.status, 400);
    let unsupported = s.s("GET", "/bkt?lifecycle", &[], vec![]).await;
    assert_eq!(
        (unsupported.status, unsupported.code().as_str()),
        (501, "NotImplemented")
    );
    assert!(unsupported.text().starts_with("<?xml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_style_addresses_the_same_bucket() {
    let s = start().await;
    s.s("PUT", "/vhost", &[], vec![]).await;
    s.s("PUT", "/vhost/dir/key", &[], b"by path".to_vec()).await;
    // Host: <bucket>.<s3_domain> (s3.localhost in the default config) with the key as the path.
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let http = reqwest::Client::builder()
        .resolve("vhost.s3.localhost", addr)
        .build()
        .unwrap();
    let base = format!("http://vhost.s3.localhost:{}", addr.port());
    let got = s
        .send_url(
            &http,
            format!("{base}/dir/key"),
            "GET",
            &[],
            vec![],
            Some(SK),
        )
        .await;
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, b"by path".as_slice())
    );
    let list = s
        .send_url(
            &http,
            format!("{base}/?list-type=2"),
            "GET",
            &[],
            vec![],
            Some(SK),
        )
        .await;
    assert!(
        list.text().contains("<Key>dir/key</Key>"),
        "{}",
        list.text()
    );
    // Anonymous callers learn nothing about a private bucket's keys.
    let anon = s.send("GET", "/vhost/missing", &[], vec![], None).await;
    assert_eq!(anon.code(), "AccessDenied");
}

/// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: headers signed by aws-sigv4 with that payload mode;
/// each chunk signature chained from the seed as the SigV4 streaming spec defines.
async fn put_streaming(s: &Server, key: &str, data: &[u8], tamper: bool) -> Reply {
    let url = format!("{}/bkt/{key}", s.base);
    let mut req = http::Request::builder()
        .method("PUT")
        .uri(&url)
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", data.len().to_string())
        .body(Vec::new())
        .unwrap();
    let seed = sign_request(
        &mut req,
        SK,
        SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()),
    );
    let amz_date = req.headers()["x-amz-date"].to_str().unwrap().to_string();
    let chain = glint::s3::auth::ChunkChain {
        signing_key: glint::s3::auth::signing_key(SK, &amz_date[..8], "us-east-1", "s3"),
        scope: format!("{}/us-east-1/s3/aws4_request", &amz_date[..8]),
        amz_date,
        seed_signature: seed.clone(),
    };
    let mut body = Vec::new();
    let mut prev = seed;
    for (i, chunk) in data
        .chunks(64 << 10)
        .chain(std::iter::once(&[][..]))
        .enumerate()
    {
        let mut sig = chain.chunk_signature(&prev, &glint::s3::auth::sha256_hex(chunk));
        prev = sig.clone();
        if tamper && i == 1 {
            sig = "0".repeat(64);
        }
        body.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    req.headers_mut()
        .insert("content-length", body.len().into());
    *req.body_mut() = body;
    reply(
        s.http
            .execute(reqwest::Request::try_from(req).unwrap())
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_chunk_signatures_are_verified() {
    let s = start().await;
    s.s("PUT", "/bkt", &[], vec![]).await;
    let data = pattern(300_000, 9);
    let ok = put_streaming(&s, "streamed", &data, false).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(s.s("GET", "/bkt/streamed", &[], vec![]).await.body, data);
    let bad = put_streaming(&s, "tampered", &data, true).await;
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (403, "SignatureDoesNotMatch")
    );
    assert_eq!(
        s.s("GET", "/bkt/tampered", &[], vec![]).await.code(),
        "NoSuchKey"
    );
}

/// One store behind both APIs: an S3 object becomes a Glance image by reference (no chunk
/// is written), and the image is then readable through the read-only images bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_object_becomes_an_image_without_a_copy() {
    let s = start().await;
    s.s("PUT", "/bkt", &[], vec![]).await;
    let data = pattern(5 << 20, 9);
    assert_eq!(
        s.s("PUT", "/bkt/disk.raw", &[], data.clone()).await.status,
        200
    );
    s.store.settle().await;
    let files = common::stored_bytes(&s.store).await;
    let glance = |m: reqwest::Method, p: &str| s.glance("u:proj", m, p);
    let id = s.new_image().await;
    let r = glance(reqwest::Method::POST, &format!("/v2/images/{id}/import"))
        .json(
            &serde_json::json!({"method": {"name": "glint-s3-object", "uri": "s3://bkt/disk.raw"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let img =
        common::glance::wait_for_as(&s, Some("u:proj"), &id, |i| i["status"] == "active").await;
    assert_eq!(img["status"], "active");
    assert_eq!(img["checksum"], hex::encode(md5::Md5::digest(&data)));
    s.store.settle().await;
    assert_eq!(
        common::stored_bytes(&s.store).await,
        files,
        "the image references the object's chunks"
    );
    // The object goes; the image (and its view over S3) stays.
    assert_eq!(
        s.s("DELETE", "/bkt/disk.raw", &[], vec![]).await.status,
        204
    );
    let got = s.s("GET", &format!("/images/{id}"), &[], vec![]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, data);
    let put = s
        .s("PUT", &format!("/images/{id}"), &[], b"x".to_vec())
        .await;
    assert_eq!(put.status, 403, "the images bucket is read-only");
    let anon = s
        .send("GET", &format!("/images/{id}"), &[], vec![], None)
        .await;
    assert_eq!(anon.status, 403);
}

/// The locations API adopts an S3 object of this store after checking validation_data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_location_from_an_s3_object() {
    let s = start().await;
    s.s("PUT", "/bkt", &[], vec![]).await;
    let data = pattern(2 << 20, 3);
    assert_eq!(s.s("PUT", "/bkt/img", &[], data.clone()).await.status, 200);
    let glance = |token: &str, m: reqwest::Method, p: &str| s.glance(token, m, p);
    let id = s.new_image().await;
    let add = |hash: String| {
        glance("u:proj", reqwest::Method::POST, &format!("/v2/images/{id}/locations"))
            .json(&serde_json::json!({"url": "s3://bkt/img", "validation_data": {"os_hash_algo": "sha256", "os_hash_value": hash}}))
            .send()
    };
    assert_eq!(add("00".repeat(32)).await.unwrap().status().as_u16(), 400);
    let r = glance(
        "u:proj",
        reqwest::Method::POST,
        &format!("/v2/images/{id}/locations"),
    )
    .json(&serde_json::json!({"url": "http://example.com/x"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400, "only locations in this store");
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
    assert_eq!(add(sha256.clone()).await.unwrap().status().as_u16(), 202);
    let img: serde_json::Value =
        glance("u:proj", reqwest::Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(
        (img["status"].as_str(), img["size"].as_u64()),
        (Some("active"), Some(data.len() as u64))
    );
    assert_eq!(
        add(sha256).await.unwrap().status().as_u16(),
        409,
        "only queued images"
    );
    let member = glance(
        "u:proj",
        reqwest::Method::GET,
        &format!("/v2/images/{id}/locations"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(member.status().as_u16(), 403, "locations are for services");
    let svc: serde_json::Value = glance(
        "nova:proj:service,reader",
        reqwest::Method::GET,
        &format!("/v2/images/{id}/locations"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(svc[0]["url"].as_str().unwrap().starts_with("glint://"));
}
