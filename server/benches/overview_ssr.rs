//! Server-side render time of the fleet overview with 100 services
//! (issue: live view; target: median ≤ 5 ms).
//!
//! Run: `cargo bench -p ballast-server --bench overview_ssr`
//! (`SSR_SERVICES`, `SSR_RENDERS` change the fleet size and the sample).
//!
//! Every service reports one telemetry batch with five dependencies (one
//! breaker open in every tenth service, so cards of every severity are
//! drawn) and three instances heartbeat. Then `GET /` is rendered through
//! the whole router, session check and security headers included, one
//! request at a time, and the body is read to its end: the time is what a
//! browser waits for the complete first HTML. The bench checks that every
//! service's card is in the HTML, so a render that skipped the fleet could
//! not pass for a fast one.
//!
//! The machine's speed drifts between runs; for a count that does not, run
//! the built bench under `valgrind --tool=callgrind` with `SSR_RENDERS=10`
//! and with `SSR_RENDERS=30`: the difference of the two totals ÷ 20 is the
//! instructions of one render plus one fleet-JSON request, setup excluded.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use server::store::Store;
use std::time::{Duration, Instant};
use support::{Bench, env_or, now_ms};
use tower::ServiceExt;

const DEPENDENCIES: [&str; 5] = ["model", "embedding", "vector", "reranker", "tool"];

fn batch(service: usize, instance: &str) -> Value {
    let end = now_ms();
    let mut deps = serde_json::Map::new();
    for (d, name) in DEPENDENCIES.iter().enumerate() {
        let open = service.is_multiple_of(10) && d == 3;
        let mut buckets = vec![0u64; 16];
        buckets[3 + d] = 100;
        deps.insert(
            (*name).to_owned(),
            json!({
                "calls": 100, "successes": if open { 20 } else { 98 },
                "failures": { "unavailable": if open { 80 } else { 2 } },
                "retries": 3, "shed": u64::from(open) * 5,
                "fallbacks": { format!("{name}/unavailable"): if open { 80 } else { 0 } },
                "degraded": { "degraded": if open { 80 } else { 0 } },
                "latency_buckets": buckets, "latency_sum_ms": 100 * (d as u64 + 1) * 10,
                "breaker": if open { "open" } else { "closed" }, "in_flight": 2, "queued": 0
            }),
        );
    }
    json!({
        "instance_id": instance, "sequence": 1, "window_start_ms": end - 1000, "window_end_ms": end,
        "policy_version": null, "dependencies": deps, "dropped_batches": 0
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let services = env_or("SSR_SERVICES", 100);
    let renders = env_or("SSR_RENDERS", 300);
    let dir = tempfile::tempdir().unwrap();
    let bench = Bench::start(&Store::sqlite_url_in(dir.path())).await;
    for i in 0..services {
        let agent = bench.register(&format!("service-{i:03}")).await;
        for pod in 0..3 {
            bench
                .ok(
                    Method::POST,
                    "/api/v1/agent/heartbeat",
                    Some(&agent),
                    Some(json!({ "instance_id": format!("pod-{pod}"), "agent_version": "0.1.0",
                        "policy_version": null, "policy_source": "default", "started_at_ms": now_ms() })),
                )
                .await;
        }
        bench
            .ok(
                Method::POST,
                "/api/v1/agent/telemetry",
                Some(&agent),
                Some(batch(i, "pod-0")),
            )
            .await;
    }

    let admin = &bench.admin;
    let get = |uri: &'static str| {
        Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .body(Body::empty())
            .unwrap()
    };
    let page = || get("/");
    let timed = |req: Request<Body>| async {
        let started = Instant::now();
        let res = bench.app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.into_body().collect().await.unwrap().to_bytes();
        (started.elapsed(), html)
    };
    let render = || timed(page());

    let (_, html) = render().await;
    let html = String::from_utf8_lossy(&html).into_owned();
    if let Ok(path) = std::env::var("SSR_DUMP") {
        std::fs::write(path, &html).unwrap();
    }
    for i in 0..services {
        let card = format!("data-test=\"service-card-service-{i:03}-prod\"");
        assert!(html.contains(&card), "the render lacks {card}:\n{html}");
    }
    for _ in 0..20 {
        render().await;
    }
    // The same fleet as JSON from the API, for what the data costs apart
    // from drawing it: the part of the render that is not HTML.
    let mut data: Vec<Duration> = Vec::with_capacity(renders);
    let mut times: Vec<Duration> = Vec::with_capacity(renders);
    for _ in 0..renders {
        data.push(timed(get("/api/v1/fleet/live")).await.0);
        times.push(render().await.0);
    }
    times.sort();
    data.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "GET /api/v1/fleet/live (the same fleet as JSON), {renders} requests: median {:.2} ms",
        ms(data[data.len() / 2])
    );
    println!(
        "overview SSR, {services} services ({} dependencies each, 3 instances each), {renders} renders: \
         median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; HTML {} KiB",
        DEPENDENCIES.len(),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(times[times.len() - 1]),
        html.len() / 1024,
    );
}
