//! Policy fan-out and conditional-GET benchmark (issue: policy distribution).
//!
//! Run: `cargo bench -p ballast-server --bench policy_fanout`
//! (`FANOUT_SUBSCRIBERS`, `FANOUT_SECONDS` override the defaults).
//!
//! 1. Holds N=1000 agent streams (`GET /api/v1/agent/stream`) on one server,
//!    each its own TCP connection, publishes a new version, and reports how
//!    long each stream took to receive it: p50, p99 and max.
//! 2. Measures conditional `GET /api/v1/agent/policy` answered 304, against
//!    `GET /healthz` (a trivial handler behind the same middleware) in the
//!    same run, and reports the ratio of their throughputs.
//!
//! Server and clients share this 2-core machine, so the figures are a floor.

mod support;

use axum::http::Method;
use serde_json::json;
use server::store::Store;
use std::time::{Duration, Instant};
use support::{Bench, env_or};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let subscribers: usize = env_or("FANOUT_SUBSCRIBERS", 1000);
    let seconds: u64 = env_or("FANOUT_SECONDS", 3);

    // Sign in, register the service with its agent token, publish v1.
    let dir = tempfile::tempdir().unwrap();
    let bench = Bench::start(&Store::sqlite_url_in(dir.path())).await;
    let agent = bench.register("rag-answer").await;
    let admin = Some(bench.admin.as_str());
    let mut policy =
        shared::policy::Policy::from_yaml(include_str!("../../examples/policies/rag-answer.yaml"))
            .unwrap();
    policy.service.risk_tier = shared::policy::RiskTier::Medium;
    let publish = |owner: &str| {
        let mut p = policy.clone();
        p.service.owner = owner.into();
        json!({ "message": "bench", "document": p })
    };
    let r = bench
        .ok(
            Method::POST,
            "/api/v1/services/rag-answer/prod/publish",
            admin,
            Some(publish("v1")),
        )
        .await;
    assert_eq!(r["status"], "published", "{r}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = bench.app.clone();
    tokio::spawn(async move { axum::serve(listener, served).await.unwrap() });

    // 1. Fan-out.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(subscribers);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Instant>(subscribers);
    for i in 0..subscribers {
        let agent = agent.clone();
        let ready = ready_tx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(addr)
                .await
                .expect("connect (raise `ulimit -n` above 2×N)");
            let req = format!(
                "GET /api/v1/agent/stream?instance_id=bench-{i} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {agent}\r\nAccept: text/event-stream\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut announced = false;
            loop {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "stream closed");
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen);
                if !announced && text.contains("\"version\":1") {
                    announced = true;
                    ready.send(()).await.unwrap();
                }
                if text.contains("\"version\":2") {
                    done.send(Instant::now()).await.unwrap();
                    return;
                }
            }
        });
    }
    for _ in 0..subscribers {
        ready_rx.recv().await.unwrap();
    }
    eprintln!("{subscribers} streams connected and on version 1; publishing version 2");
    let published = Instant::now();
    let r = bench
        .ok(
            Method::POST,
            "/api/v1/services/rag-answer/prod/publish",
            admin,
            Some(publish("v2")),
        )
        .await;
    assert_eq!(r["version"], 2, "{r}");
    let mut latencies = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let at = done_rx.recv().await.unwrap();
        latencies.push(at.duration_since(published));
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    println!(
        "fan-out to {subscribers} streams (publish call included): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*latencies.last().unwrap())
    );

    // 2. Conditional GETs vs a trivial handler.
    let etag = {
        let r = bench
            .ok(
                Method::GET,
                "/api/v1/agent/policy?instance_id=bench-0",
                Some(&agent),
                None,
            )
            .await;
        r["etag"].as_str().unwrap().to_owned()
    };
    let conditional = format!(
        "GET /api/v1/agent/policy?instance_id=bench-0 HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {agent}\r\nIf-None-Match: \"{etag}\"\r\n\r\n"
    );
    let trivial = "GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n".to_owned();
    let not_modified = throughput(addr, conditional, "304", seconds).await;
    let baseline = throughput(addr, trivial, "200", seconds).await;
    println!(
        "conditional GET (304): {not_modified:.0} req/s; trivial handler: {baseline:.0} req/s; ratio {:.2}",
        not_modified / baseline
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Requests per second over `seconds`, from 16 keep-alive connections each
/// sending one request at a time; every answer must carry `status`.
async fn throughput(
    addr: std::net::SocketAddr,
    request: String,
    status: &'static str,
    seconds: u64,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut buf = vec![0u8; 16 * 1024];
            let mut count = 0u64;
            let expected = format!("HTTP/1.1 {status}");
            while Instant::now() < deadline {
                s.write_all(request.as_bytes()).await.unwrap();
                // Read one whole response: headers, then Content-Length bytes.
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0);
                    got.extend_from_slice(&buf[..n]);
                    if let Some(end) = find(&got, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            assert!(head.starts_with(&expected.to_ascii_lowercase()), "{head}");
                            break;
                        }
                    }
                }
                count += 1;
            }
            count
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / seconds as f64
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
