//! Telemetry ingest benchmark (issue: live view).
//!
//! Run: `cargo bench -p ballast-server --bench telemetry_ingest`
//! (`INGEST_SECONDS`, `INGEST_AGENTS`; with `BALLAST_TEST_PG_URL` set it also
//! runs against a fresh database on that PostgreSQL).
//!
//! Agents post sequenced batches over loopback HTTP (keep-alive, one request
//! in flight each) for a fixed time while 10 browser streams read
//! `GET /api/v1/live`. It reports the sustained points per second stored (a
//! point is one numeric value of a batch: a counter, a gauge or a histogram
//! bucket) and the streams' staleness: for each acknowledged batch, the time
//! from its acknowledgement until each stream first received an event that
//! reflects it (the worst over batches and streams).

mod support;

use serde_json::{Value, json};
use server::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{Bench, env_or, now_ms};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

const DEPENDENCIES: usize = 10;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        run("SQLite", &Store::sqlite_url_in(dir.path())).await;
        if let Ok(admin_url) = std::env::var("BALLAST_TEST_PG_URL") {
            use sqlx::Connection;
            let name = format!("ballast_bench_{}", server::auth::random_hex(4));
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::Executor::execute(
                &mut admin,
                sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
            )
            .await
            .unwrap();
            let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
            run("PostgreSQL", &url).await;
        }
    });
}

/// One batch: every dependency reports one call, so `dep-0`'s call count in
/// the live view is the number of batches it reflects.
fn batch(instance: &str, sequence: u64) -> (String, u64) {
    let end = now_ms();
    let mut deps = serde_json::Map::new();
    for d in 0..DEPENDENCIES {
        let mut buckets = vec![0u64; 16];
        buckets[(sequence as usize + d) % 8] = 1;
        deps.insert(
            format!("dep-{d}"),
            json!({
                "calls": 1, "successes": 1, "timeouts": 0, "retries": 0, "retry_budget_exhausted": 0,
                "breaker_rejections": 0, "bulkhead_rejections": 0, "rate_limited": 0, "shed": 0,
                "repairs": 0, "tokens": 120, "cost_usd_micros": 35, "latency_sum_ms": 40,
                "latency_buckets": buckets, "breaker": "closed", "in_flight": 1, "queued": 0,
                "failures": { "timeout": 0 }
            }),
        );
    }
    let body = json!({
        "instance_id": instance, "sequence": sequence, "window_start_ms": end - 1000, "window_end_ms": end,
        "policy_version": null, "dependencies": deps, "tenant_cost_usd_micros": { "acme": 35 }, "dropped_batches": 0
    });
    // 14 scalar counters and gauges, 16 buckets, 1 breaker state, 1 failure class per dependency, plus 1 tenant.
    let points = (DEPENDENCIES * (14 + 16 + 1 + 1) + 1) as u64;
    (body.to_string(), points)
}

async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                buf.drain(..end + 4 + len);
                return head;
            }
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn run(backend: &str, url: &str) {
    let seconds: u64 = env_or("INGEST_SECONDS", 10);
    let agents: usize = env_or("INGEST_AGENTS", 32);
    let bench = Bench::start(url).await;
    let agent = bench.register("bench").await;
    let (app, admin) = (bench.app, bench.admin);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    // Acknowledgements in order of arrival: (time, batches acknowledged so far).
    let acks: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(AtomicU64::new(0));
    let points = Arc::new(AtomicU64::new(0));

    // Ten browsers on the live stream.
    let mut watchers = Vec::new();
    for _ in 0..10 {
        let admin = admin.clone();
        watchers.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let req = format!("GET /api/v1/live HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {admin}\r\nAccept: text/event-stream\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut text = String::new();
            let mut chunk = vec![0u8; 64 * 1024];
            // (received at, batches reflected)
            let mut seen: Vec<(Instant, u64)> = Vec::new();
            while Instant::now() < deadline + Duration::from_secs(2) {
                let n = match tokio::time::timeout(Duration::from_millis(500), s.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => n,
                    Ok(_) => break,
                    Err(_) => continue,
                };
                let received = Instant::now();
                text.push_str(&String::from_utf8_lossy(&chunk[..n]));
                while let Some(end) = text.find("\n\n") {
                    let event: String = text.drain(..end + 2).collect();
                    let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
                    let Ok(fleet) = serde_json::from_str::<Value>(data) else { continue };
                    let reflected = fleet["services"]
                        .as_array()
                        .and_then(|s| s.iter().find(|s| s["service"] == "bench"))
                        .and_then(|s| s["dependencies"].as_array())
                        .and_then(|d| d.iter().find(|d| d["dependency"] == "dep-0"))
                        .and_then(|d| d["calls"].as_u64())
                        .unwrap_or(0);
                    seen.push((received, reflected));
                }
            }
            seen
        }));
    }

    let mut senders = Vec::new();
    for a in 0..agents {
        let agent = agent.clone();
        let acks = acks.clone();
        let acked = acked.clone();
        let points = points.clone();
        senders.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut buf = Vec::new();
            let instance = format!("bench-{a}");
            let mut sequence = 0;
            while Instant::now() < deadline {
                sequence += 1;
                let (body, n) = batch(&instance, sequence);
                let req = format!(
                    "POST /api/v1/agent/telemetry HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {agent}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(req.as_bytes()).await.unwrap();
                let head = read_response(&mut s, &mut buf).await;
                assert!(head.starts_with("http/1.1 200"), "{head}");
                let mut acks = acks.lock().await;
                let total = acked.fetch_add(1, Ordering::SeqCst) + 1;
                acks.push((Instant::now(), total));
                points.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let acks = acks.lock().await;
    let mut worst = Duration::ZERO;
    let mut events = 0;
    let mut unreflected = 0;
    for w in watchers {
        let seen = w.await.unwrap();
        events += seen.len();
        // Both lists are in time order: walk them together.
        let mut e = 0;
        for (acked_at, n) in acks.iter() {
            while e < seen.len() && (seen[e].1 < *n || seen[e].0 < *acked_at) {
                e += 1;
            }
            match seen.get(e) {
                Some((received, _)) => {
                    worst = worst.max(received.saturating_duration_since(*acked_at))
                }
                None => unreflected += 1,
            }
        }
    }
    let total_points = points.load(Ordering::Relaxed);
    println!(
        "{backend}: {} batches, {total_points} points in {elapsed:.1} s = {:.0} points/s ({agents} agents); \
         10 live streams got {events} events, worst staleness {:.0} ms ({unreflected} batch×stream pairs acknowledged after the last event)",
        acked.load(Ordering::SeqCst),
        total_points as f64 / elapsed,
        worst.as_secs_f64() * 1000.0
    );
}
