//! The S3 test harness shared by the integration tests: the real server on an ephemeral
//! loopback port, requests signed with `aws-sigv4` (the AWS SDKs' own signer) and sent over
//! HTTP, as the main and the alt project.
#![allow(dead_code)]

pub mod child;
pub mod glance;

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;

pub const AK: &str = "TESTACCESSKEY";
pub const SK: &str = "test-secret-key";
/// A second identity (project "alt"), created in `start`.
pub const ALT_AK: &str = "ALTACCESSKEY";
pub const ALT_SK: &str = "alt-secret-key";

pub struct Server {
    /// The S3 listener's URL.
    pub base: String,
    /// The Images API listener's URL.
    pub glance: String,
    pub store: glint_storage::Store,
    pub stores: std::sync::Arc<glint::images::stores::Stores>,
    pub _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub async fn start() -> Server {
    start_with(|_| {}).await
}

/// The server with `adjust` applied to its configuration first.
pub async fn start_with(adjust: impl FnOnce(&mut glint::config::Config)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = glint::config::Config::defaults();
    cfg.data_dirs = vec![dir.path().join("data")];
    cfg.catalog_dir = dir.path().join("catalog");
    cfg.database_connection = glint_storage::testing::catalog_url_for(dir.path());
    cfg.chunk_store = glint_storage::testing::pack_store_for(dir.path());
    cfg.only_node = true; // each test server has a catalog of its own
    cfg.s3_addr = "127.0.0.1:0".parse().unwrap();
    cfg.glance_addr = "127.0.0.1:0".parse().unwrap();
    cfg.s3_bootstrap = Some((AK.into(), SK.into(), "proj".into()));
    cfg.s3_domain = Some("s3.localhost".into());
    adjust(&mut cfg);
    if cfg.store_format == glint_storage::Format::V1 {
        cfg.chunk_store = None; // an object store holds format v2 packs only
    }
    let running = glint::start(cfg).await.unwrap();
    glint::credentials::put(&running.store, ALT_AK, ALT_SK, "alt")
        .await
        .unwrap();
    Server {
        base: format!("http://{}", running.s3_addr),
        glance: format!("http://{}", running.glance_addr),
        store: running.store,
        stores: running.stores,
        _dir: dir,
        http: reqwest::Client::new(),
    }
}

/// Signs `req` in place with aws-sigv4 (S3 settings: single URI encoding, no path
/// normalization, x-amz-content-sha256 set); returns the signature.
pub fn sign_request(
    req: &mut http::Request<Vec<u8>>,
    secret: &str,
    body: SignableBody<'_>,
) -> String {
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    sign_with(req, secret, body, settings)
}

/// Presigns `req` in place (SigV4 query parameters, 5 minutes, unsigned payload), as
/// `aws s3 presign` and boto3's `generate_presigned_url` do.
pub fn presign_request(req: &mut http::Request<Vec<u8>>, secret: &str) {
    let mut settings = SigningSettings::default();
    settings.signature_location = aws_sigv4::http_request::SignatureLocation::QueryParams;
    settings.expires_in = Some(std::time::Duration::from_secs(300));
    sign_with(req, secret, SignableBody::UnsignedPayload, settings);
}

fn sign_with(
    req: &mut http::Request<Vec<u8>>,
    secret: &str,
    body: SignableBody<'_>,
    mut settings: SigningSettings,
) -> String {
    // The secret says whose key signs: the alt project's, or the main one (also used with
    // wrong secrets to provoke signature errors).
    let ak = if secret == ALT_SK { ALT_AK } else { AK };
    let identity = Credentials::new(ak, secret, None, None, "test").into();
    settings.percent_encoding_mode = aws_sigv4::http_request::PercentEncodingMode::Single;
    settings.uri_path_normalization_mode =
        aws_sigv4::http_request::UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let signable = SignableRequest::new(
        req.method().as_str(),
        req.uri().to_string(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        body,
    )
    .unwrap();
    let (instructions, signature) = sign(signable, &params).unwrap().into_parts();
    instructions.apply_to_request_http1x(req);
    signature
}

/// A response read whole.
pub async fn reply(resp: reqwest::Response) -> Reply {
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn code(&self) -> String {
        let t = self.text();
        t.split("<Code>")
            .nth(1)
            .and_then(|r| r.split("</Code>").next())
            .unwrap_or("")
            .to_string()
    }
    pub fn header(&self, n: &str) -> &str {
        self.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Server {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        secret: Option<&str>,
    ) -> Reply {
        let url = format!("{}{}", self.base, path);
        self.send_url(&self.http, url, method, headers, body, secret)
            .await
    }

    pub async fn send_url(
        &self,
        http: &reqwest::Client,
        url: String,
        method: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        secret: Option<&str>,
    ) -> Reply {
        let mut req = http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(body.clone()).unwrap();
        if let Some(secret) = secret {
            sign_request(&mut req, secret, SignableBody::Bytes(&body));
        }
        reply(
            http.execute(reqwest::Request::try_from(req).unwrap())
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn s(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        self.send(method, path, headers, body, Some(SK)).await
    }

    /// A request to the Images API of the same server (noauth token `USER:PROJECT[:ROLES]`).
    pub fn glance(&self, token: &str, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(m, format!("{}{path}", self.glance))
            .header("x-auth-token", token.to_string())
    }

    /// Uploads `data` as image `id`'s bytes with `token`; the Images API's status.
    pub async fn upload_image(&self, token: &str, id: &str, data: Vec<u8>) -> u16 {
        self.glance(
            token,
            reqwest::Method::PUT,
            &format!("/v2/images/{id}/file"),
        )
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
    }

    /// A new raw/bare image of project `proj`; its id.
    pub async fn new_image(&self) -> String {
        self.create_image("u:proj", serde_json::json!({})).await
    }

    /// A new raw/bare image created with `token` and these extra fields; its id.
    pub async fn create_image(&self, token: &str, extra: serde_json::Value) -> String {
        let mut fields = serde_json::json!({"disk_format": "raw", "container_format": "bare"});
        fields
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let img: serde_json::Value = self
            .glance(token, reqwest::Method::POST, "/v2/images")
            .json(&fields)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        img["id"].as_str().unwrap().to_string()
    }
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(seed as u32) as u8)
        .collect()
}

/// Who sends a request in the access tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// Project `proj` (owns the buckets under test), header-signed.
    Owner,
    /// Project `alt`, header-signed.
    Alt,
    /// No signature.
    Anon,
    /// A presigned URL made with the owner's key.
    PresignedOwner,
    /// A presigned URL made with alt's key.
    PresignedAlt,
}

pub const EVERYONE: [Who; 5] = [
    Who::Owner,
    Who::Alt,
    Who::Anon,
    Who::PresignedOwner,
    Who::PresignedAlt,
];

impl Server {
    /// A request as `who` sends it.
    pub async fn as_who(
        &self,
        who: Who,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        match who {
            Who::Owner => self.send(method, path, headers, body, Some(SK)).await,
            Who::Alt => self.send(method, path, headers, body, Some(ALT_SK)).await,
            Who::Anon => self.send(method, path, headers, body, None).await,
            Who::PresignedOwner | Who::PresignedAlt => {
                let secret = if who == Who::PresignedOwner {
                    SK
                } else {
                    ALT_SK
                };
                let mut req = http::Request::builder()
                    .method(method)
                    .uri(format!("{}{}", self.base, path));
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                let mut req = req.body(body).unwrap();
                presign_request(&mut req, secret);
                let req = reqwest::Request::try_from(req).unwrap();
                reply(self.http.execute(req).await.unwrap()).await
            }
        }
    }

    /// Starts a multipart upload of `bucket/key` as `who`; its id.
    pub async fn initiate(&self, who: Who, bucket: &str, key: &str) -> String {
        let r = self
            .as_who(
                who,
                "POST",
                &format!("/{bucket}/{key}?uploads"),
                &[],
                vec![],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
            .split("<UploadId>")
            .nth(1)
            .and_then(|s| s.split("</UploadId>").next())
            .unwrap()
            .to_string()
    }
}

/// A CompleteMultipartUpload document for parts 1..=n with these ETags.
pub fn complete_doc(etags: &[&str]) -> Vec<u8> {
    let mut s = String::from("<CompleteMultipartUpload>");
    for (i, e) in etags.iter().enumerate() {
        s.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>",
            i + 1
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s.into_bytes()
}

/// Bytes the engine keeps on disk for blob data, in either engine format: v1 chunk files, or
/// v2 packs once compaction has dropped what no blob uses (every pack is rewritten to its live
/// records, so equal contents give equal sizes). "Stored once" and "the data went" read the
/// same in both formats.
pub async fn stored_bytes(store: &glint_storage::Store) -> u64 {
    store.settle().await;
    store.compact(1.0).await.unwrap();
    let u = store.usage(false).await.unwrap();
    u.chunk_file_bytes + u.pack_bytes
}
