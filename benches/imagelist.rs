//! Images API listing load (run by `benches/image-list.sh`): fills a noauth Images API with
//! IMAGES image records (no data) spread over 100 projects (1 % public, a few shared), then
//! times listings as clients send them and prints one line per scenario with the median and
//! 99th percentile of ROUNDS sequential requests:
//!   member_page      a member's first page of 25 (its own, public and shared images)
//!   member_next      that member's second page (marker)
//!   admin_page       an admin's first page of 25 (every image)
//!   admin_deep       an admin's page 25 deep in the listing, by marker
//!   name_lookup      `?name=…` as `openstack image show NAME` asks it
//!   member_by_name   a member's first page sorted by name (not the index's order: the
//!                    member's scopes are read whole)
//! Usage: imagelist ENDPOINT IMAGES [ROUNDS]   (IMAGES 0: the catalog is filled already)

use std::time::Instant;

use futures::StreamExt;
use serde_json::Value;

const PROJECTS: usize = 100;

fn token(user: &str, project: &str) -> String {
    format!("{user}:{project}")
}

async fn fill(http: &reqwest::Client, ep: &str, images: usize) {
    let t0 = Instant::now();
    let made = futures::stream::iter(0..images)
        .map(|i| {
            let http = http.clone();
            let url = format!("{ep}/v2/images");
            async move {
                let project = format!("p{}", i % PROJECTS);
                let visibility = match i % 100 {
                    0 => "public",
                    1 => "shared",
                    _ => "private",
                };
                let body = serde_json::json!({
                    "name": format!("img-{i}"),
                    "disk_format": "raw",
                    "container_format": "bare",
                    "visibility": visibility,
                });
                // Publicizing takes an admin (upstream's `publicize_image`).
                let user = if visibility == "public" { "admin" } else { "u" };
                let resp = http
                    .post(&url)
                    .header("x-auth-token", token(user, &project))
                    .json(&body)
                    .send()
                    .await
                    .expect("POST /v2/images");
                let status = resp.status();
                if status != 201 {
                    let body = resp.text().await.unwrap_or_default();
                    panic!("creating image {i}: {status} {body}");
                }
            }
        })
        .buffer_unordered(32)
        .count()
        .await;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "fill images={made} secs={secs:.1} per_sec={:.0}",
        made as f64 / secs
    );
}

async fn get(http: &reqwest::Client, url: &str, tok: &str) -> Value {
    let resp = http
        .get(url)
        .header("x-auth-token", tok)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.expect("JSON")
}

fn ids(page: &Value) -> Vec<String> {
    page["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect()
}

async fn time(http: &reqwest::Client, name: &str, url: &str, tok: &str, rounds: usize) {
    let page = get(http, url, tok).await; // warm-up, and a check of what it returns
    let n = ids(&page).len();
    let mut ms: Vec<f64> = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Instant::now();
        get(http, url, tok).await;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{name} images={n} p50_ms={:.2} p99_ms={:.2}",
        pct(0.5),
        pct(0.99)
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ep, images, rest @ ..] = args.as_slice() else {
        eprintln!("usage: imagelist ENDPOINT IMAGES [ROUNDS]");
        std::process::exit(2);
    };
    let images: usize = images.parse().expect("IMAGES");
    let rounds: usize = rest.first().map_or(200, |r| r.parse().expect("ROUNDS"));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    if images > 0 {
        fill(&http, ep, images).await;
    }
    let member = token("u", "p7");
    let admin = token("admin", "admin");
    let first = format!("{ep}/v2/images?limit=25");
    time(&http, "member_page", &first, &member, rounds).await;
    let page = get(&http, &first, &member).await;
    let marker = ids(&page).last().cloned().expect("a full first page");
    let next = format!("{ep}/v2/images?limit=25&marker={marker}");
    time(&http, "member_next", &next, &member, rounds).await;
    time(&http, "admin_page", &first, &admin, rounds).await;
    // 25 pages in: the marker of the 625th image of the admin's listing.
    let mut url = first.clone();
    for _ in 0..25 {
        let page = get(&http, &url, &admin).await;
        let m = ids(&page).last().cloned().expect("a full page");
        url = format!("{ep}/v2/images?limit=25&marker={m}");
    }
    time(&http, "admin_deep", &url, &admin, rounds).await;
    let name = format!("{ep}/v2/images?name=img-{}", images.max(1) / 2);
    time(&http, "name_lookup", &name, &admin, rounds).await;
    let by_name = format!("{ep}/v2/images?limit=25&sort_key=name&sort_dir=asc");
    time(&http, "member_by_name", &by_name, &member, rounds.min(20)).await;
}
