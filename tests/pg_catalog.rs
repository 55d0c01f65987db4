//! The catalog in a real PostgreSQL (cluster mode's catalog), restarted under load: requests
//! in flight fail with a clean 503 (S3 `ServiceUnavailable`, Glance 503) and never a 500 or a
//! dropped connection, the server recovers by itself, and every acknowledged write is
//! there afterwards, byte for byte.
//!
//! The test starts its own PostgreSQL with `scripts/pg.sh` (Debian's package; installed by
//! it when run as root), since it must restart it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    fn script() -> String {
        format!("{}/scripts/pg.sh", env!("CARGO_MANIFEST_DIR"))
    }

    fn start(dir: &Path, port: u16) -> String {
        let out = Command::new("bash")
            .arg(Self::script())
            .arg("start")
            .arg(dir)
            .arg(port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn stop(dir: &Path) {
        let ok = Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .arg(dir)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        Postgres::stop(self.dir.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_catalog_restart_answers_503_then_recovers_with_every_acknowledged_write() {
    let pg = Postgres {
        dir: tempfile::Builder::new()
            .prefix("glint-pg")
            .tempdir()
            .unwrap(),
        port: common::child::free_port(),
    };
    let admin = Postgres::start(pg.dir.path(), pg.port);
    let out = Command::new("psql")
        .args([&admin, "-q", "-c", "CREATE DATABASE glance"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let url = admin.replace("/postgres", "/glance");
    let server =
        Arc::new(common::start_with(move |cfg| cfg.database_connection = Some(url.clone())).await);
    assert_eq!(server.s("PUT", "/bkt", &[], vec![]).await.status, 200);

    // Writers and readers run until told to stop; each outcome is recorded.
    let acked: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
    let statuses: Arc<Mutex<BTreeMap<(String, u16), usize>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4u8 {
        let (server, acked, statuses, stop) = (
            server.clone(),
            acked.clone(),
            statuses.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let key = format!("w{w}-{i}");
                let body = common::pattern(20_000 + i as usize * 7, w);
                let put = server
                    .s("PUT", &format!("/bkt/{key}"), &[], body.clone())
                    .await;
                let note = |op: &str, r: &common::Reply| {
                    *statuses
                        .lock()
                        .unwrap()
                        .entry((op.to_string(), r.status))
                        .or_default() += 1;
                    assert!(
                        r.status == 200 || (r.status == 503 && r.code() == "ServiceUnavailable"),
                        "{op} {key}: {} {}",
                        r.status,
                        r.text()
                    );
                };
                note("PUT", &put);
                if put.status == 200 {
                    acked.lock().unwrap().insert(key.clone(), body);
                }
                let prev = format!("/bkt/w{w}-{}", i.max(2) - 1);
                let get = server.s("GET", &prev, &[], vec![]).await;
                if get.status != 404 {
                    note("GET", &get);
                }
                let images = server
                    .glance("u:proj", reqwest::Method::GET, "/v2/images")
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                assert!(images == 200 || images == 503, "image list: {images}");
                *statuses
                    .lock()
                    .unwrap()
                    .entry(("image-list".into(), images))
                    .or_default() += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A restart as operators do it (fast shutdown: sessions are cut, transactions abort).
    let dir = pg.dir.path().to_path_buf();
    let port = pg.port;
    tokio::task::spawn_blocking(move || {
        Postgres::stop(&dir);
        std::thread::sleep(Duration::from_secs(2));
        Postgres::start(&dir, port);
    })
    .await
    .unwrap();
    // Recovery without help: a write succeeds within a few seconds of the restart.
    let started = Instant::now();
    loop {
        let r = server
            .s("PUT", "/bkt/after-restart", &[], b"x".to_vec())
            .await;
        if r.status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{}", r.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    eprintln!("outcomes (operation, status) → count: {statuses:?}");
    assert!(
        statuses.keys().any(|(_, s)| *s == 503),
        "the restart went unnoticed: {statuses:?}"
    );
    // Every acknowledged write is there, byte for byte.
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "{}", acked.len());
    for (key, body) in &acked {
        let r = server.s("GET", &format!("/bkt/{key}"), &[], vec![]).await;
        assert_eq!(r.status, 200, "{key}");
        assert!(r.body == *body, "{key}: bytes differ");
    }
    let report = server
        .store
        .scrub(glint_storage::ScrubOptions::default())
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
}
