//! S3 load generator (run by `benches/s3-compare.sh`): drives any S3 endpoint with requests
//! signed by `aws-sigv4` (UNSIGNED-PAYLOAD, so the client never hashes bodies) over hyper via
//! reqwest, and prints one line per scenario:
//!   put_1g, get_1g            one 1 GiB object, single stream
//!   get_1g_x8                 8 concurrent GETs of that object (aggregate)
//!   put_4k_x16, get_4k_x16    4 KiB objects (S3LOAD_SMALL of them, default 4,000) at 16-way concurrency
//!   range_64k                 1000 random 64 KiB ranged GETs of the 1 GiB object
//!   list_10k                  listing 10 000 keys (pages of 1000)
//! Usage: s3load ENDPOINT ACCESS_KEY SECRET_KEY BUCKET [scenario…]
//! With S3LOAD_SERVER_PID set (a server on this machine), each line also gives the CPU time
//! that server spent per operation (user + system, all its threads): a cost measure that,
//! unlike throughput, does not move with what else the machine's cores are doing.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use futures::StreamExt;
use rand::{RngCore, SeedableRng};

const GIB: usize = 1 << 30;

struct Client {
    http: reqwest::Client,
    endpoint: String,
    creds: aws_credential_types::Credentials,
    bucket: String,
}

impl Client {
    fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: reqwest::Body,
    ) -> reqwest::Request {
        let url = format!("{}/{}{}", self.endpoint, self.bucket, path_and_query);
        let mut req = http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let mut req = req.body(()).unwrap();
        let identity = self.creds.clone().into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let hs: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let signable = SignableRequest::new(
            method,
            url.clone(),
            hs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::UnsignedPayload,
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(&mut req);
        let (parts, ()) = req.into_parts();
        let req = http::Request::from_parts(parts, body);
        reqwest::Request::try_from(req).unwrap()
    }

    async fn send(&self, req: reqwest::Request) -> (u16, u64) {
        let resp = self.http.execute(req).await.expect("request");
        let status = resp.status().as_u16();
        let mut n = 0u64;
        let mut s = resp.bytes_stream();
        while let Some(b) = s.next().await {
            n += b.expect("body").len() as u64;
        }
        assert!(status < 300, "HTTP {status}");
        (status, n)
    }
}

fn random(len: usize, seed: u64) -> Bytes {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    Bytes::from(v)
}

/// When a scenario started: the clock and, with S3LOAD_SERVER_PID, the server's CPU time.
struct Started {
    at: Instant,
    server_cpu: Option<f64>,
}

impl Started {
    fn now() -> Started {
        Started {
            at: Instant::now(),
            server_cpu: server_cpu_secs(),
        }
    }
}

/// The CPU seconds (user + system, all threads) of the process S3LOAD_SERVER_PID names.
fn server_cpu_secs() -> Option<f64> {
    let pid = std::env::var("S3LOAD_SERVER_PID").ok()?.parse().ok()?;
    glint::metrics::cpu_seconds_of(pid)
}

fn report(name: &str, started: &Started, bytes: u64, ops: u64) {
    let secs = started.at.elapsed().as_secs_f64();
    let mibs = bytes as f64 / (1 << 20) as f64 / secs;
    let cpu = match (started.server_cpu, server_cpu_secs()) {
        (Some(a), Some(b)) => format!(" server_cpu_us/op={:.1}", (b - a) * 1e6 / ops as f64),
        _ => String::new(),
    };
    println!(
        "{name} secs={secs:.3} MiB/s={mibs:.1} ops/s={:.1}{cpu}",
        ops as f64 / secs
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [endpoint, ak, sk, bucket, ..] = &args[..] else {
        eprintln!("usage: s3load ENDPOINT ACCESS_KEY SECRET_KEY BUCKET [scenario…]");
        std::process::exit(2);
    };
    let wanted: Vec<&str> = args[4..].iter().map(String::as_str).collect();
    let run = |s: &str| wanted.is_empty() || wanted.contains(&s);
    let c = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
        endpoint: endpoint.trim_end_matches('/').to_string(),
        creds: Credentials::new(ak, sk, None, None, "s3load"),
        bucket: bucket.clone(),
    });
    // Create the bucket; "already exists" is fine.
    let _ = c
        .http
        .execute(c.request("PUT", "", &[], reqwest::Body::from("")))
        .await;

    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    if run("put_1g") || run("get_1g") || run("get_1g_x8") || run("range_64k") {
        let data = random(GIB, seed); // fresh bytes every run: no dedup between runs
        let pieces: Vec<Result<Bytes, std::io::Error>> = (0..GIB)
            .step_by(1 << 20)
            .map(|i| Ok(data.slice(i..i + (1 << 20))))
            .collect();
        let t = Started::now();
        let req = c.request(
            "PUT",
            "/big",
            &[("content-length", GIB.to_string())],
            reqwest::Body::wrap_stream(futures::stream::iter(pieces)),
        );
        c.send(req).await;
        report("put_1g", &t, GIB as u64, 1);
    }
    if run("get_1g") {
        let t = Started::now();
        let (_, n) = c
            .send(c.request("GET", "/big", &[], reqwest::Body::from("")))
            .await;
        assert_eq!(n, GIB as u64);
        report("get_1g", &t, n, 1);
    }
    if run("get_1g_x8") {
        let t = Started::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move {
                    c.send(c.request("GET", "/big", &[], reqwest::Body::from("")))
                        .await
                        .1
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        report("get_1g_x8", &t, total, 8);
    }
    if run("range_64k") {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let t = Started::now();
        for _ in 0..1000 {
            let at = (rng.next_u64() % (GIB as u64 - 65536)) as usize;
            let (_, n) = c
                .send(c.request(
                    "GET",
                    "/big",
                    &[("range", format!("bytes={}-{}", at, at + 65535))],
                    reqwest::Body::from(""),
                ))
                .await;
            assert_eq!(n, 65536);
        }
        report("range_64k", &t, 1000 * 65536, 1000);
    }
    // S3LOAD_SMALL: how many 4 KiB objects (default 4,000: about a second each way; a
    // comparison of a few per cent wants more, e.g. metrics-cost.sh's 40,000).
    let small: usize = std::env::var("S3LOAD_SMALL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    if run("put_4k_x16") || run("get_4k_x16") {
        let data = random(4096 * small, seed ^ 1);
        let t = Started::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (c, next, data) = (c.clone(), next.clone(), data.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= small {
                            break;
                        }
                        let body = data.slice(i * 4096..(i + 1) * 4096);
                        c.send(c.request(
                            "PUT",
                            &format!("/small/{i:06}"),
                            &[("content-length", "4096".into())],
                            reqwest::Body::from(body),
                        ))
                        .await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        report("put_4k_x16", &t, (small * 4096) as u64, small as u64);
    }
    if run("get_4k_x16") {
        let t = Started::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (c, next) = (c.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= small {
                            break;
                        }
                        let (_, n) = c
                            .send(c.request(
                                "GET",
                                &format!("/small/{i:06}"),
                                &[],
                                reqwest::Body::from(""),
                            ))
                            .await;
                        assert_eq!(n, 4096);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        report("get_4k_x16", &t, (small * 4096) as u64, small as u64);
    }
    if run("list_10k") {
        // 10 000 keys: the 4 KiB objects plus empty ones under list/.
        let extra = 10_000usize.saturating_sub(small);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (c, next) = (c.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= extra {
                            break;
                        }
                        c.send(c.request(
                            "PUT",
                            &format!("/small/x{i:06}"),
                            &[("content-length", "0".into())],
                            reqwest::Body::from(""),
                        ))
                        .await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let t = Started::now();
        let mut token: Option<String> = None;
        let mut keys = 0;
        loop {
            let q = match &token {
                Some(tk) => format!(
                    "?list-type=2&prefix=small%2F&continuation-token={}",
                    urlencode(tk)
                ),
                None => "?list-type=2&prefix=small%2F".to_string(),
            };
            let resp = c
                .http
                .execute(c.request("GET", &q, &[], reqwest::Body::from("")))
                .await
                .unwrap();
            let text = resp.text().await.unwrap();
            keys += text.matches("<Key>").count();
            token = text
                .split("<NextContinuationToken>")
                .nth(1)
                .and_then(|r| r.split('<').next())
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(keys, small.max(10_000), "listed keys");
        report("list_10k", &t, 0, keys as u64);
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
