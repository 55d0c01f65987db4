//! The Images API side of the test harness: requests as the noauth identities, and the
//! image operations the Glance tests share.

use super::Server;

pub const V21: &str = "application/openstack-images-v2.1-json-patch";
pub const V20: &str = "application/openstack-images-v2.0-json-patch";

/// The server with `image_size_cap` set to `cap`.
pub async fn start_glance(cap: u64) -> Server {
    start_glance_with(cap, |_| {}).await
}

/// The server with `image_size_cap` set to `cap` and `adjust` applied.
pub async fn start_glance_with(
    cap: u64,
    adjust: impl FnOnce(&mut glint::config::Config),
) -> Server {
    super::start_with(move |c| {
        c.image_size_cap = cap;
        adjust(c);
    })
    .await
}

impl Server {
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.glance, path))
            .header("x-project-id", "p1")
            .header("x-roles", "member,reader")
    }

    pub async fn patch(
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

    pub async fn list(&self, token: &str, query: &str) -> serde_json::Value {
        let r = self
            .glance(token, reqwest::Method::GET, &format!("/v2/images?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{query}");
        r.json().await.unwrap()
    }

    pub async fn create(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .req(reqwest::Method::POST, "/v2/images")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    pub async fn show(&self, id: &str) -> serde_json::Value {
        self.get_json(&format!("/v2/images/{id}")).await
    }

    /// The image as `token` sees it (an error body when it may not).
    pub async fn show_as(&self, token: &str, id: &str) -> serde_json::Value {
        self.glance(token, reqwest::Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default()
    }

    /// The JSON body of a GET.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.req(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The body of a GET (image data).
    pub async fn get_bytes(&self, path: &str) -> bytes::Bytes {
        self.req(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }

    /// The status of a bodiless request.
    pub async fn status(&self, method: reqwest::Method, path: &str) -> u16 {
        self.req(method, path)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn upload(&self, id: &str, data: Vec<u8>) -> u16 {
        self.try_upload(id, data).await.expect("upload request")
    }

    /// `None` when the server answered before the whole body was sent and closed the
    /// connection (what a rejected oversized upload may look like to the client).
    pub async fn try_upload(&self, id: &str, data: Vec<u8>) -> Option<u16> {
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

/// Image bytes that do not repeat at any chunk boundary.
pub fn image_data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(7) as u8)
        .collect()
}

/// Polls an image until `done` holds for it (imports run in the background).
pub async fn wait_for(
    s: &Server,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for_as(s, None, id, done).await
}

/// `wait_for` as the identity of a noauth token (None: the harness's default member of p1).
pub async fn wait_for_as(
    s: &Server,
    token: Option<&str>,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let show = || async {
        match token {
            Some(t) => s.show_as(t, id).await,
            None => s.show(id).await,
        }
    };
    for _ in 0..200 {
        let img = show().await;
        if done(&img) {
            return img;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "image {id} never reached the expected state: {}",
        show().await
    );
}

pub async fn post_json(s: &Server, path: &str, body: serde_json::Value) -> u16 {
    s.req(reqwest::Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Serves `body` over plain HTTP on a loopback port (a web-download source).
pub async fn web_source(body: Vec<u8>) -> u16 {
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
