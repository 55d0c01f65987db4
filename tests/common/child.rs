//! The real `glint` binary in a child process, on its own directory and loopback ports, for
//! tests that must see what a crash, a restart or a signal does to it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{sign_request, SK};

pub struct Glint {
    pub child: Child,
    pub s3: SocketAddr,
    pub glance: SocketAddr,
    /// Where its configuration, catalog, data and log live (kept across restarts).
    pub dir: Arc<tempfile::TempDir>,
}

impl Drop for Glint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `glint serve` in a new directory with these extra `[glint]` / `[DEFAULT]` options
/// (`default_opts` may go on with whole sections: `"…\n[import_filtering_opts]\n…"`),
/// under an open-files limit when `nofile` is given; waits until both listeners answer.
pub fn spawn(glint_opts: &str, default_opts: &str, nofile: Option<u32>) -> Glint {
    spawn_in(
        Arc::new(tempfile::tempdir().unwrap()),
        glint_opts,
        default_opts,
        nofile,
    )
}

/// Starts `glint serve` on the store in `dir` (a restart when a server ran there before).
pub fn spawn_in(
    dir: Arc<tempfile::TempDir>,
    glint_opts: &str,
    default_opts: &str,
    nofile: Option<u32>,
) -> Glint {
    let (s3_port, glance_port) = (free_port(), free_port());
    let conf = dir.path().join("glance-api.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {glance_port}\n{default_opts}\n\
             [glint]\ns3_bind_host = 127.0.0.1\ns3_bind_port = {s3_port}\ncatalog_dir = {cat}\n\
             s3_access_key = {ak}\ns3_secret_key = {SK}\ns3_bootstrap_project = proj\n\
             only_node = true\n{glint_opts}\n\
             [glance_store]\nfilesystem_store_datadirs = {data}\n[oslo_policy]\n{database}",
            cat = dir.path().join("catalog").display(),
            database = glint_storage::testing::catalog_url_for(dir.path())
                .map(|url| format!("[database]\nconnection = {url}\n"))
                .unwrap_or_default()
                + &glint_storage::testing::pack_store_for(dir.path())
                    .map(|p| format!(
                        "[chunk_store]\nendpoint = {}\nbucket = {}\nregion = {}\n\
                         access_key = {}\nsecret_key = {}\nprefix = {}\n",
                        p.endpoint, p.bucket, p.region, p.access_key, p.secret_key, p.prefix
                    ))
                    .unwrap_or_default(),
            data = dir.path().join("data").display(),
            ak = super::AK,
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_glint");
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(bin);
            c
        }
        None => Command::new(bin),
    };
    // stdout (what the command prints) and stderr (the log) into one file, as a service
    // manager's journal gets them.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("glint.log"))
        .unwrap();
    let child = cmd
        .arg("--config")
        .arg(&conf)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let g = Glint {
        child,
        s3: format!("127.0.0.1:{s3_port}").parse().unwrap(),
        glance: format!("127.0.0.1:{glance_port}").parse().unwrap(),
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(answers(g.s3) && answers(g.glance)) {
        assert!(Instant::now() < deadline, "glint did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    g
}

/// Whether a listener answers a plain request with an HTTP status line.
pub fn answers(addr: SocketAddr) -> bool {
    let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    if c.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    c.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1")
}

impl Glint {
    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("glint.log")).unwrap_or_default()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A request to the Images API (noauth token `USER:PROJECT[:ROLES]`).
    pub fn glance_req(
        &self,
        token: &str,
        m: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(m, format!("http://{}{path}", self.glance))
            .header("x-auth-token", token.to_string())
    }

    /// User + system CPU seconds the server has used.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none() && answers(self.s3) && answers(self.glance)
    }

    pub async fn signed(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, String) {
        self.signed_with(method, path, &[], body).await
    }

    pub async fn signed_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, String) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.s3));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(body.clone()).unwrap();
        sign_request(
            &mut req,
            SK,
            aws_sigv4::http_request::SignableBody::Bytes(&body),
        );
        let resp = reqwest::Client::new()
            .execute(reqwest::Request::try_from(req).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }
}
