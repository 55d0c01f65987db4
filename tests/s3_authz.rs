//! Authorization as a table: every S3 operation Glint implements × every caller (the
//! bucket's owner, another project, anonymous, presigned by the owner, presigned by the other
//! project) × every bucket ACL (private, public-read, public-read-write, authenticated-read,
//! explicit grants), each cell asserting what AWS answers. Then the S3 `images` bucket ×
//! image visibility × policy overrides against the Images API's answer for the same caller:
//! no cell may allow on one path what the other refuses.

mod common;

use common::*;

/// A bucket ACL under test.
#[derive(Clone, Copy, Debug)]
enum Acl {
    Private,
    PublicRead,
    PublicReadWrite,
    AuthenticatedRead,
    /// Grants to project alt: READ and WRITE on the bucket, READ on the object.
    Grants,
}

const ACLS: [Acl; 5] = [
    Acl::Private,
    Acl::PublicRead,
    Acl::PublicReadWrite,
    Acl::AuthenticatedRead,
    Acl::Grants,
];

impl Acl {
    fn name(self) -> &'static str {
        match self {
            Acl::Private => "private",
            Acl::PublicRead => "public-read",
            Acl::PublicReadWrite => "public-read-write",
            Acl::AuthenticatedRead => "authenticated-read",
            Acl::Grants => "grants",
        }
    }

    fn bucket_headers(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Acl::Grants => vec![
                ("x-amz-grant-read", "id=alt"),
                ("x-amz-grant-write", "id=alt"),
            ],
            other => vec![("x-amz-acl", other.name())],
        }
    }

    fn object_headers(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Acl::Grants => vec![("x-amz-grant-read", "id=alt")],
            other => vec![("x-amz-acl", other.name())],
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Perm {
    Read,
    Write,
}

/// The project a caller acts as (None: anonymous).
fn project(who: Who) -> Option<&'static str> {
    match who {
        Who::Owner | Who::PresignedOwner => Some("proj"),
        Who::Alt | Who::PresignedAlt => Some("alt"),
        Who::Anon => None,
    }
}

fn owner(who: Who) -> bool {
    project(who) == Some("proj")
}

/// What AWS grants `who` on the bucket under `acl`.
fn bucket_allows(acl: Acl, who: Who, p: Perm) -> bool {
    if owner(who) {
        return true;
    }
    match acl {
        Acl::Private => false,
        Acl::PublicRead => p == Perm::Read,
        Acl::PublicReadWrite => true,
        Acl::AuthenticatedRead => p == Perm::Read && project(who).is_some(),
        Acl::Grants => project(who) == Some("alt"),
    }
}

/// What AWS grants `who` on an object stored with the bucket's canned ACL (or READ to alt).
fn object_readable(acl: Acl, who: Who) -> bool {
    if owner(who) {
        return true;
    }
    match acl {
        Acl::Private => false,
        Acl::PublicRead | Acl::PublicReadWrite => true,
        Acl::AuthenticatedRead => project(who).is_some(),
        Acl::Grants => project(who) == Some("alt"),
    }
}

/// One operation: how to send it, and whether AWS allows it for (acl, who).
struct Op {
    name: &'static str,
    method: &'static str,
    path: fn(&Cell) -> String,
    headers: fn(&Cell) -> Vec<(String, String)>,
    body: fn(&Cell) -> Vec<u8>,
    allowed: fn(Acl, Who) -> bool,
    /// The status of an allowed request.
    ok: u16,
}

/// Names for one (acl, caller) cell.
struct Cell {
    bucket: String,
    upload: String,
    n: usize,
}

fn none(_: &Cell) -> Vec<(String, String)> {
    Vec::new()
}
fn empty(_: &Cell) -> Vec<u8> {
    Vec::new()
}

fn ops() -> Vec<Op> {
    vec![
        Op {
            name: "ListBuckets",
            method: "GET",
            path: |_| "/".into(),
            headers: none,
            body: empty,
            allowed: |_, w| project(w).is_some(),
            ok: 200,
        },
        Op {
            name: "CreateBucket",
            method: "PUT",
            path: |c| format!("/new-{}-{}", c.bucket, c.n),
            headers: none,
            body: empty,
            allowed: |_, w| project(w).is_some(),
            ok: 200,
        },
        Op {
            name: "HeadBucket",
            method: "HEAD",
            path: |c| format!("/{}", c.bucket),
            headers: none,
            body: empty,
            allowed: |a, w| bucket_allows(a, w, Perm::Read),
            ok: 200,
        },
        Op {
            name: "GetBucketLocation",
            method: "GET",
            path: |c| format!("/{}?location", c.bucket),
            headers: none,
            body: empty,
            allowed: |_, w| owner(w),
            ok: 200,
        },
        Op {
            name: "GetBucketVersioning",
            method: "GET",
            path: |c| format!("/{}?versioning", c.bucket),
            headers: none,
            body: empty,
            allowed: |_, w| owner(w),
            ok: 200,
        },
        Op {
            name: "GetBucketAcl",
            method: "GET",
            path: |c| format!("/{}?acl", c.bucket),
            headers: none,
            body: empty,
            allowed: |_, w| owner(w),
            ok: 200,
        },
        Op {
            name: "ListObjects",
            method: "GET",
            path: |c| format!("/{}", c.bucket),
            headers: none,
            body: empty,
            allowed: |a, w| bucket_allows(a, w, Perm::Read),
            ok: 200,
        },
        Op {
            name: "ListObjectsV2",
            method: "GET",
            path: |c| format!("/{}?list-type=2", c.bucket),
            headers: none,
            body: empty,
            allowed: |a, w| bucket_allows(a, w, Perm::Read),
            ok: 200,
        },
        Op {
            name: "ListObjectVersions",
            method: "GET",
            path: |c| format!("/{}?versions", c.bucket),
            headers: none,
            body: empty,
            allowed: |a, w| bucket_allows(a, w, Perm::Read),
            ok: 200,
        },
        Op {
            name: "ListMultipartUploads",
            method: "GET",
            path: |c| format!("/{}?uploads", c.bucket),
            headers: none,
            body: empty,
            allowed: |a, w| bucket_allows(a, w, Perm::Read),
            ok: 200,
        },
        Op {
            name: "PutObject",
            method: "PUT",
            path: |c| format!("/{}/put-{}", c.bucket, c.n),
            headers: none,
            body: |_| b"data".to_vec(),
            allowed: |a, w| bucket_allows(a, w, Perm::Write),
            ok: 200,
        },
        Op {
            name: "CopyObject",
            method: "PUT",
            path: |c| format!("/{}/copy-{}", c.bucket, c.n),
            headers: |c| vec![("x-amz-copy-source".into(), format!("/{}/obj", c.bucket))],
            body: empty,
            allowed: |a, w| bucket_allows(a, w, Perm::Write) && object_readable(a, w),
            ok: 200,
        },
        Op {
            name: "GetObject",
            method: "GET",
            path: |c| format!("/{}/obj", c.bucket),
            headers: none,
            body: empty,
            allowed: object_readable,
            ok: 200,
        },
        Op {
            name: "GetObject (absent key)",
            method: "GET",
            path: |c| format!("/{}/absent", c.bucket),
            headers: none,
            body: empty,
            // Only those who may list learn that a key is absent.
            allowed: |a, w| bucket_allows(a, w, Perm::Read),
            ok: 404,
        },
        Op {
            name: "HeadObject",
            method: "HEAD",
            path: |c| format!("/{}/obj", c.bucket),
            headers: none,
            body: empty,
            allowed: object_readable,
            ok: 200,
        },
        Op {
            name: "GetObjectAttributes",
            method: "GET",
            path: |c| format!("/{}/obj?attributes", c.bucket),
            headers: |_| vec![("x-amz-object-attributes".into(), "ETag,ObjectSize".into())],
            body: empty,
            allowed: object_readable,
            ok: 200,
        },
        Op {
            name: "GetObjectAcl",
            method: "GET",
            path: |c| format!("/{}/obj?acl", c.bucket),
            headers: none,
            body: empty,
            allowed: |_, w| owner(w),
            ok: 200,
        },
        Op {
            name: "DeleteObject",
            method: "DELETE",
            path: |c| format!("/{}/gone-{}", c.bucket, c.n),
            headers: none,
            body: empty,
            allowed: |a, w| bucket_allows(a, w, Perm::Write),
            ok: 204,
        },
        Op {
            name: "DeleteObjects",
            method: "POST",
            path: |c| format!("/{}?delete", c.bucket),
            headers: none,
            body: |c| {
                format!("<Delete><Object><Key>gone-{}</Key></Object></Delete>", c.n).into_bytes()
            },
            allowed: |a, w| bucket_allows(a, w, Perm::Write),
            ok: 200,
        },
        Op {
            name: "CreateMultipartUpload",
            method: "POST",
            path: |c| format!("/{}/mp-{}?uploads", c.bucket, c.n),
            headers: none,
            body: empty,
            allowed: |a, w| bucket_allows(a, w, Perm::Write),
            ok: 200,
        },
        // The owner's upload: only its initiator (who is also the bucket owner) continues it.
        Op {
            name: "UploadPart",
            method: "PUT",
            path: |c| format!("/{}/up?partNumber=1&uploadId={}", c.bucket, c.upload),
            headers: none,
            body: |_| b"part".to_vec(),
            allowed: |_, w| owner(w),
            ok: 200,
        },
        Op {
            name: "UploadPartCopy",
            method: "PUT",
            path: |c| format!("/{}/up?partNumber=2&uploadId={}", c.bucket, c.upload),
            headers: |c| vec![("x-amz-copy-source".into(), format!("/{}/obj", c.bucket))],
            body: empty,
            allowed: |_, w| owner(w),
            ok: 200,
        },
        Op {
            name: "ListParts",
            method: "GET",
            path: |c| format!("/{}/up?uploadId={}", c.bucket, c.upload),
            headers: none,
            body: empty,
            allowed: |_, w| owner(w),
            ok: 200,
        },
        Op {
            name: "CompleteMultipartUpload (bad part)",
            method: "POST",
            path: |c| format!("/{}/up?uploadId={}", c.bucket, c.upload),
            headers: none,
            body: |_| complete_doc(&["\"00000000000000000000000000000000\""]),
            // Authorized callers reach the manifest check (InvalidPart); others are refused
            // before their document is read.
            allowed: |_, w| owner(w),
            ok: 400,
        },
        Op {
            name: "AbortMultipartUpload (absent)",
            method: "DELETE",
            path: |c| format!("/{}/up?uploadId=ffffffffffffffffffffffffffffffff", c.bucket),
            headers: none,
            body: empty,
            allowed: |a, w| bucket_allows(a, w, Perm::Read) || bucket_allows(a, w, Perm::Write),
            ok: 404,
        },
        Op {
            name: "AbortMultipartUpload",
            method: "DELETE",
            path: |c| format!("/{}/up?uploadId={}", c.bucket, c.upload),
            headers: none,
            body: empty,
            allowed: |_, w| owner(w),
            ok: 204,
        },
        // ACL writes last: the owner re-applies the ACL the cell started with.
        Op {
            name: "PutObjectAcl",
            method: "PUT",
            path: |c| format!("/{}/obj?acl", c.bucket),
            headers: |c| own_acl(c, false),
            body: empty,
            allowed: |_, w| owner(w),
            ok: 200,
        },
        Op {
            name: "PutBucketAcl",
            method: "PUT",
            path: |c| format!("/{}?acl", c.bucket),
            headers: |c| own_acl(c, true),
            body: empty,
            allowed: |_, w| owner(w),
            ok: 200,
        },
        Op {
            name: "DeleteBucket (not empty)",
            method: "DELETE",
            path: |c| format!("/{}", c.bucket),
            headers: none,
            body: empty,
            allowed: |_, w| owner(w),
            ok: 409,
        },
    ]
}

/// The cell's own ACL as headers (the bucket name carries it: `t-<acl>-…`).
fn own_acl(c: &Cell, bucket: bool) -> Vec<(String, String)> {
    let acl = ACLS
        .into_iter()
        .find(|a| c.bucket.starts_with(&format!("t-{}-", a.name())))
        .unwrap();
    let hs = if bucket {
        acl.bucket_headers()
    } else {
        acl.object_headers()
    };
    hs.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_every_s3_operation_for_every_caller_and_acl() {
    let s = start().await;
    let ops = ops();
    let mut cells = 0;
    let mut failures = Vec::new();
    for acl in ACLS {
        for (wi, who) in EVERYONE.into_iter().enumerate() {
            // A fresh bucket per cell: the owner's object and upload in it.
            let bucket = format!("t-{}-{wi}", acl.name());
            let bh = acl.bucket_headers();
            let r = s.s("PUT", &format!("/{bucket}"), &bh, vec![]).await;
            assert_eq!(r.status, 200, "{}", r.text());
            let oh = acl.object_headers();
            let r = s
                .s("PUT", &format!("/{bucket}/obj"), &oh, b"object".to_vec())
                .await;
            assert_eq!(r.status, 200);
            let upload = s.initiate(Who::Owner, &bucket, "up").await;
            for (n, op) in ops.iter().enumerate() {
                let cell = Cell {
                    bucket: bucket.clone(),
                    upload: upload.clone(),
                    n,
                };
                let headers = (op.headers)(&cell);
                let hs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let r = s
                    .as_who(who, op.method, &(op.path)(&cell), &hs, (op.body)(&cell))
                    .await;
                let want = if (op.allowed)(acl, who) { op.ok } else { 403 };
                cells += 1;
                if r.status != want
                    || (want == 403 && op.method != "HEAD" && r.code() != "AccessDenied")
                {
                    failures.push(format!(
                        "{} as {who:?} on {}: {} {} (want {want})",
                        op.name,
                        acl.name(),
                        r.status,
                        r.code()
                    ));
                }
            }
        }
    }
    println!("authorization table: {cells} cells");
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Uploads begun by another project on a bucket it may write to: the initiator and the
/// bucket's owner continue them; other writers (anonymous on public-read-write) may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_uploads_belong_to_their_initiator_and_the_bucket_owner() {
    let s = start().await;
    let mut cells = 0;
    for acl in [Acl::PublicReadWrite, Acl::Grants] {
        let bucket = format!("u-{}", acl.name());
        let bh = acl.bucket_headers();
        assert_eq!(
            s.s("PUT", &format!("/{bucket}"), &bh, vec![]).await.status,
            200
        );
        for who in EVERYONE {
            let id = s.initiate(Who::Alt, &bucket, "k").await;
            let part = format!("/{bucket}/k?partNumber=1&uploadId={id}");
            let r = s.as_who(who, "PUT", &part, &[], b"p".to_vec()).await;
            let allowed = project(who).is_some();
            assert_eq!(
                r.status,
                if allowed { 200 } else { 403 },
                "{who:?} on {}",
                acl.name()
            );
            let r = s
                .as_who(
                    who,
                    "GET",
                    &format!("/{bucket}/k?uploadId={id}"),
                    &[],
                    vec![],
                )
                .await;
            assert_eq!(
                r.status,
                if allowed { 200 } else { 403 },
                "{who:?} lists parts"
            );
            cells += 2;
        }
    }
    println!("initiator table: {cells} cells");
}

/// Visibility of a test image.
#[derive(Clone, Copy, Debug)]
enum Vis {
    Private,
    SharedWithAlt,
    Public,
    Community,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_images_bucket_answers_as_the_images_api() {
    let policies = [
        ("default", ""),
        (
            "download_image: role:admin",
            "\"download_image\": \"role:admin\"\n",
        ),
        ("get_image: role:admin", "\"get_image\": \"role:admin\"\n"),
        (
            "download_image: owner only",
            "\"download_image\": \"project_id:%(project_id)s\"\n",
        ),
    ];
    let mut cells = 0;
    let mut failures = Vec::new();
    for (label, rules) in policies {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(&file, rules).unwrap();
        let s = start_with(move |c| c.glance.policy_file = Some(file)).await;
        for vis in [
            Vis::Private,
            Vis::SharedWithAlt,
            Vis::Public,
            Vis::Community,
        ] {
            let id = image(&s, vis).await;
            for who in EVERYONE {
                let s3 = s
                    .as_who(who, "GET", &format!("/images/{id}"), &[], vec![])
                    .await;
                cells += 1;
                // The Images API's answer for the same caller (a project member, as an S3
                // key's holder is judged); anonymous S3 callers are always refused.
                let want = match project(who) {
                    None => 403,
                    Some(p) => s
                        .glance(
                            &format!("u:{p}:member,reader"),
                            reqwest::Method::GET,
                            &format!("/v2/images/{id}/file"),
                        )
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16(),
                };
                if s3.status != want {
                    failures.push(format!(
                        "{label}, {vis:?} image, {who:?}: S3 {} {} vs Images API {want}",
                        s3.status,
                        s3.code()
                    ));
                }
            }
        }
    }
    println!("images bucket vs Images API: {cells} cells");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An image of project proj with data and the given visibility; its id.
async fn image(s: &Server, vis: Vis) -> String {
    let visibility = match vis {
        Vis::Private => "private",
        Vis::SharedWithAlt => "shared",
        Vis::Public => "public",
        Vis::Community => "community",
    };
    // Publicizing needs the admin role by default (and the policies under test may hide
    // the image from members): the owner project's admin sets it up.
    let id = s
        .create_image(
            "u:proj:admin",
            serde_json::json!({ "visibility": visibility }),
        )
        .await;
    assert_eq!(
        s.upload_image("u:proj:admin", &id, vec![1u8; 4096]).await,
        204
    );
    if let Vis::SharedWithAlt = vis {
        let r = s
            .glance(
                "u:proj:admin",
                reqwest::Method::POST,
                &format!("/v2/images/{id}/members"),
            )
            .json(&serde_json::json!({"member": "alt"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    id
}

/// Every path to an image's bytes obeys `download_image` and `get_image`: the Images API
/// download, the S3 images bucket (GET, HEAD, a presigned URL), copy-image and an import of
/// the image as an S3 object (`glint-s3-object` from `s3://images/<id>`). A project admin
/// succeeds on each Images API path; S3 keys carry a project and no roles, so an admin-only
/// rule refuses every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_to_image_bytes_obeys_the_policy() {
    const MEMBER: &str = "u:proj";
    const ADMIN: &str = "adm:proj:admin";
    for (rule, refused) in [("download_image", 403), ("get_image", 404)] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        // copy_image is opened to members so that only the rule under test decides.
        std::fs::write(
            &file,
            format!("\"{rule}\": \"role:admin\"\n\"copy_image\": \"role:member\"\n"),
        )
        .unwrap();
        let (fast, cheap) = (dir.path().join("fast"), dir.path().join("cheap"));
        let s = start_with(move |c| {
            c.glance.policy_file = Some(file);
            c.glance.backends = vec![
                glint::config::BackendConfig {
                    id: "fast".into(),
                    description: String::new(),
                    data_dirs: vec![fast],
                    default: true,
                },
                glint::config::BackendConfig {
                    id: "cheap".into(),
                    description: String::new(),
                    data_dirs: vec![cheap],
                    default: false,
                },
            ];
        })
        .await;
        let id = s.create_image(ADMIN, serde_json::json!({})).await;
        assert_eq!(s.upload_image(ADMIN, &id, vec![4u8; 1 << 20]).await, 204);
        let status = |r: reqwest::Response| r.status().as_u16();
        let file = format!("/v2/images/{id}/file");
        for (who, want) in [(MEMBER, refused), (ADMIN, 200)] {
            let r = s
                .glance(who, reqwest::Method::GET, &file)
                .send()
                .await
                .unwrap();
            assert_eq!(status(r), want, "{rule}: download by {who}");
        }
        for who in [Who::Owner, Who::PresignedOwner] {
            for m in ["GET", "HEAD"] {
                let r = s
                    .as_who(who, m, &format!("/images/{id}"), &[], vec![])
                    .await;
                assert_eq!(r.status, refused, "{rule}: S3 {m} as {who:?}");
            }
        }
        let copy = serde_json::json!({"method": {"name": "copy-image"}, "stores": ["cheap"]});
        for (who, want) in [(MEMBER, refused), (ADMIN, 202)] {
            let r = s
                .glance(
                    who,
                    reqwest::Method::POST,
                    &format!("/v2/images/{id}/import"),
                )
                .json(&copy)
                .send()
                .await
                .unwrap();
            assert_eq!(status(r), want, "{rule}: copy-image by {who}");
        }
        let from_s3 = serde_json::json!({"method": {"name": "glint-s3-object", "uri": format!("s3://images/{id}")}});
        for (who, want) in [(MEMBER, refused), (ADMIN, 202)] {
            let target = s.create_image(who, serde_json::json!({})).await;
            let r = s
                .glance(
                    who,
                    reqwest::Method::POST,
                    &format!("/v2/images/{target}/import"),
                )
                .json(&from_s3)
                .send()
                .await
                .unwrap();
            assert_eq!(status(r), want, "{rule}: S3-object import by {who}");
            if want == 202 {
                let img = common::glance::wait_for_as(&s, Some(who), &target, |i| {
                    i["status"] == "active"
                })
                .await;
                assert_eq!(img["size"], 1 << 20, "{img}");
            }
        }
    }
}
