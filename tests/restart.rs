//! What a crash leaves of image operations under way, and what the next start makes of it
//! (`glance/recovery.rs`): the real binary, SIGKILLed in the middle of an upload, a stage and
//! an import, then started again on the same directory.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::child::{spawn, spawn_in, Glint};
use reqwest::Method;

const TOKEN: &str = "u:proj";

async fn json(g: &Glint, m: Method, path: &str, body: serde_json::Value) -> serde_json::Value {
    let r = g
        .glance_req(TOKEN, m, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(serde_json::Value::Null)
}

async fn image(g: &Glint, id: &str) -> serde_json::Value {
    g.glance_req(TOKEN, Method::GET, &format!("/v2/images/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn new_image(g: &Glint) -> String {
    let img = json(
        g,
        Method::POST,
        "/v2/images",
        serde_json::json!({"disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    img["id"].as_str().unwrap().to_string()
}

/// Waits until the image's status is `status`.
async fn until_status(g: &Glint, id: &str, status: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let img = image(g, id).await;
        if img["status"] == status {
            return img;
        }
        assert!(Instant::now() < deadline, "{id} stayed {}", img["status"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts sending `total` bytes to `path` and returns once `sent` have gone, leaving the
/// connection open (the rest never comes).
fn partial_put(g: &Glint, path: &str, total: usize, sent: usize) -> TcpStream {
    let mut c = TcpStream::connect(g.glance).unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {TOKEN}\r\nContent-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&vec![7u8; sent]).unwrap();
    c
}

fn restart(g: &mut Glint, default_opts: &str) -> Glint {
    g.kill();
    spawn_in(g.dir.clone(), "", default_opts, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_by_sigkill_leaves_the_image_queued() {
    let mut g = spawn("", "", None);
    let id = new_image(&g).await;
    let _held = partial_put(&g, &format!("/v2/images/{id}/file"), 64 << 20, 8 << 20);
    until_status(&g, &id, "saving").await;
    let g = restart(&mut g, "");
    let img = image(&g, &id).await;
    assert_eq!(img["status"], "queued", "{img}");
    assert!(img["size"].is_null() && img["checksum"].is_null(), "{img}");
    assert!(
        g.log().contains("rolled back"),
        "the start says what it did"
    );
    // The upload can be done again.
    let r = g
        .glance_req(TOKEN, Method::PUT, &format!("/v2/images/{id}/file"))
        .header("content-type", "application/octet-stream")
        .body(vec![3u8; 1 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(image(&g, &id).await["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_cut_by_sigkill_is_rolled_back_and_a_finished_stage_kept() {
    let mut g = spawn("", "", None);
    let cut = new_image(&g).await;
    let done = new_image(&g).await;
    let r = g
        .glance_req(TOKEN, Method::PUT, &format!("/v2/images/{done}/stage"))
        .header("content-type", "application/octet-stream")
        .body(vec![5u8; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let _held = partial_put(&g, &format!("/v2/images/{cut}/stage"), 64 << 20, 8 << 20);
    until_status(&g, &cut, "uploading").await;
    let g = restart(&mut g, "");
    assert_eq!(image(&g, &cut).await["status"], "queued");
    // A finished stage waits for its import, as upstream keeps it.
    assert_eq!(image(&g, &done).await["status"], "uploading");
    json(
        &g,
        Method::POST,
        &format!("/v2/images/{done}/import"),
        serde_json::json!({"method": {"name": "glance-direct"}}),
    )
    .await;
    until_status(&g, &done, "active").await;
}

/// Serves `len` bytes at any path, slowly (64 KiB every 20 ms), counting what it sent.
fn slow_origin(len: usize) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\r\n"
                );
                if c.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let piece = vec![9u8; 64 << 10];
                let mut left = len;
                while left > 0 {
                    let n = left.min(piece.len());
                    if c.write_all(&piece[..n]).is_err() {
                        return;
                    }
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    left -= n;
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
    });
    (port, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_cut_by_sigkill_is_failed_and_its_lock_released() {
    let (port, sent) = slow_origin(64 << 20);
    let opts =
        format!("\n[import_filtering_opts]\nallowed_hosts = 127.0.0.1\nallowed_ports = {port}\n");
    let mut g = spawn("", &opts, None);
    let id = new_image(&g).await;
    let uri = format!("http://127.0.0.1:{port}/disk.raw");
    json(
        &g,
        Method::POST,
        &format!("/v2/images/{id}/import"),
        serde_json::json!({"method": {"name": "web-download", "uri": uri}}),
    )
    .await;
    let img = until_status(&g, &id, "importing").await;
    assert!(img["os_glance_import_task"].is_string(), "{img}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent.load(Ordering::Relaxed) < (4 << 20) {
        assert!(Instant::now() < deadline, "the download did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let g = restart(&mut g, &opts);
    let img = image(&g, &id).await;
    assert_eq!(img["status"], "queued", "{img}");
    assert!(
        img.get("os_glance_import_task").is_none(),
        "lock released: {img}"
    );
    let tasks = json(
        &g,
        Method::GET,
        &format!("/v2/images/{id}/tasks"),
        serde_json::json!({}),
    )
    .await;
    let task = &tasks["tasks"][0];
    assert_eq!(task["status"], "failure", "{tasks}");
    assert!(
        task["message"].as_str().unwrap().contains("interrupted"),
        "{task}"
    );
    // A new import of the same image goes through.
    json(
        &g,
        Method::POST,
        &format!("/v2/images/{id}/import"),
        serde_json::json!({"method": {"name": "web-download", "uri": uri}}),
    )
    .await;
    let img = until_status(&g, &id, "active").await;
    assert_eq!(img["size"], 64 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_upload_in_flight_finish_refuses_new_connections_and_exits_0() {
    use md5::Digest;
    let mut g = spawn("shutdown_timeout = 20", "", None);
    let id = new_image(&g).await;
    const TOTAL: usize = 256 << 20;
    let sent = Arc::new(AtomicU64::new(0));
    let (addr, counter) = (g.glance, sent.clone());
    let path = format!("/v2/images/{id}/file");
    // The upload: 1 MiB pieces, paced so that it is well under way when the signal comes.
    let upload = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {TOKEN}\r\nContent-Type: application/octet-stream\r\nContent-Length: {TOTAL}\r\n\r\n"
        );
        c.write_all(head.as_bytes()).unwrap();
        let mut md5 = md5::Md5::new();
        for i in 0..(TOTAL >> 20) {
            let piece = vec![(i % 251) as u8; 1 << 20];
            md5.update(&piece);
            c.write_all(&piece).unwrap();
            counter.fetch_add(1 << 20, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(8));
        }
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut answer = [0u8; 12];
        c.read_exact(&mut answer).unwrap();
        (
            String::from_utf8_lossy(&answer).into_owned(),
            hex::encode(md5.finalize()),
        )
    });
    while sent.load(Ordering::Relaxed) < (64 << 20) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = g.child.id() as i32;
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let signalled = Instant::now();
    // New connections are refused soon after the signal.
    loop {
        match TcpStream::connect(g.glance) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => {
                assert!(
                    signalled.elapsed() < Duration::from_secs(3),
                    "still accepting"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(
        TcpStream::connect(g.s3).is_err(),
        "the S3 listener closed too"
    );
    let (status, md5) = upload.join().unwrap();
    assert_eq!(
        &status[..12],
        "HTTP/1.1 204",
        "the upload in flight completed"
    );
    // The process exits 0 within the drain time.
    let exit = exit_within(&mut g.child, signalled, Duration::from_secs(20)).await;
    assert!(exit.success(), "{exit:?}");
    // Acknowledged means stored: the image is active after a restart, with its checksum,
    // and the store closed cleanly (no recovery scan).
    let g2 = spawn_in(g.dir.clone(), "", "", None);
    let img = image(&g2, &id).await;
    assert_eq!(img["status"], "active", "{img}");
    assert_eq!(img["size"], TOTAL);
    assert_eq!(img["checksum"], md5);
    assert!(!g2.log().contains("unclean shutdown"), "{}", g2.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_and_the_next_start_recovers() {
    let mut g = spawn("shutdown_timeout = 60", "", None);
    let id = new_image(&g).await;
    let _held = partial_put(&g, &format!("/v2/images/{id}/file"), 64 << 20, 4 << 20);
    until_status(&g, &id, "saving").await;
    let pid = g.child.id() as i32;
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        g.child.try_wait().unwrap().is_none(),
        "the first signal drains"
    );
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let signalled = Instant::now();
    let exit = exit_within(&mut g.child, signalled, Duration::from_secs(3)).await;
    assert_eq!(exit.code(), Some(130));
    let g2 = spawn_in(g.dir.clone(), "", "", None);
    assert_eq!(image(&g2, &id).await["status"], "queued");
}

/// The child's exit status, once it has exited; fails the test when that takes longer than
/// `limit` after `since`.
async fn exit_within(
    child: &mut std::process::Child,
    since: Instant,
    limit: Duration,
) -> std::process::ExitStatus {
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(since.elapsed() < limit, "still running after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
