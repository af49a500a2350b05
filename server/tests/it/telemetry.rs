//! Telemetry on both databases: idempotent ingest, bounds, scoping to the
//! token's service, derived figures, durable rollups and their pruning, the
//! live stream, and `/metrics`.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{NowForTests, T0_MS, TestApp};
use serde_json::{Value, json};
use server::config::Secret;
use server::telemetry::{Counts, col, quantile_ms};
use shared::role::Role;

on_both_backends!(
    a_resent_batch_counts_once,
    bad_batches_are_refused_naming_the_field_and_store_nothing,
    batches_land_under_the_tokens_service_only,
    derived_figures_follow_from_known_batches,
    rollups_are_stored_and_pruned_by_age,
    the_live_stream_sends_a_summary_after_an_ingest,
    metrics_need_their_token_and_pass_promtool,
    idempotency_counters_reach_rollups_live_and_metrics,
    a_refused_policy_shows_in_the_fleet_and_on_metrics,
    sources_nodes_and_the_service_are_told_apart_from_dependencies,
);

struct Setup {
    admin: String,
    viewer: String,
}

async fn setup(app: &TestApp) -> Setup {
    let admin = app.login_as("ada", Role::Admin).await;
    let viewer = app.login_as("vic", Role::Viewer).await;
    for name in ["rag-answer", "billing"] {
        let r = app
            .call(
                Method::POST,
                "/api/v1/services",
                Some(json!({ "name": name, "environment": "prod", "owner": "team" })),
                Some(&admin),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    Setup { admin, viewer }
}

async fn service_id(app: &TestApp, name: &str) -> i64 {
    app.store().service(name, "prod").await.unwrap().unwrap().id
}

/// A batch from `instance` ending now: `calls` model calls, with latencies
/// 90% ≤ 10 ms, 6% ≤ 100 ms, 4% ≤ 1 s when `calls` is 100.
fn batch(app: &TestApp, instance: &str, sequence: u64, calls: u64) -> Value {
    let now = app.clock.now_ms_for_tests();
    let mut buckets = vec![0u64; 16];
    buckets[3] = calls * 90 / 100;
    buckets[6] = calls * 6 / 100;
    buckets[9] = calls - buckets[3] - buckets[6];
    json!({
        "instance_id": instance,
        "sequence": sequence,
        "window_start_ms": now - 1000,
        "window_end_ms": now,
        "policy_version": 1,
        "dependencies": {
            "model": {
                "calls": calls,
                "successes": calls - calls / 10,
                "failures": { "timeout": calls / 20, "unavailable": calls / 20 },
                "timeouts": calls / 20,
                "retries": calls / 4,
                "shed": 3,
                "bulkhead_rejections": 2,
                "fallbacks": { "model/timeout": calls / 5 },
                "degraded": { "degraded": calls / 10, "normal": 7 },
                "tokens": 1000,
                "cost_usd_micros": 500,
                "latency_buckets": buckets,
                "latency_sum_ms": calls * 20,
                "breaker": "closed",
                "in_flight": 4,
                "queued": 1
            }
        },
        "tenant_cost_usd_micros": { "acme": 300, "globex": 200 }
    })
}

async fn post(app: &TestApp, token: &str, body: Value) -> common::Response {
    app.call(
        Method::POST,
        "/api/v1/agent/telemetry",
        Some(body),
        Some(token),
    )
    .await
}

async fn rollup_calls(app: &TestApp, service: &str) -> i64 {
    let id = service_id(app, service).await;
    app.store()
        .rollups(id, 0)
        .await
        .unwrap()
        .iter()
        .map(|r| r.values[0])
        .sum()
}

async fn a_resent_batch_counts_once(app: TestApp) {
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    let b = batch(&app, "pod-1", 1, 100);
    let r = post(&app, &agent, b.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({ "accepted": true }));
    // The answer was lost; the agent sends the same batch again, twice.
    for _ in 0..2 {
        let r = post(&app, &agent, b.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body, json!({ "accepted": false }));
    }
    assert_eq!(rollup_calls(&app, "rag-answer").await, 100);
    let id = service_id(&app, "rag-answer").await;
    assert_eq!(app.store().telemetry_receipt_count(id).await.unwrap(), 1);
    let live = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/telemetry?window_secs=60",
            None,
            Some(&s.viewer),
        )
        .await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.text);
    assert_eq!(live.body["dependencies"][0]["calls"], 100);
    // The same sequence from another instance is another batch.
    let r = post(&app, &agent, batch(&app, "pod-2", 1, 100)).await;
    assert_eq!(r.body["accepted"], true);
    assert_eq!(rollup_calls(&app, "rag-answer").await, 200);
}

/// A change that makes a good batch bad.
type Mutation = Box<dyn Fn(&mut Value)>;

async fn bad_batches_are_refused_naming_the_field_and_store_nothing(app: TestApp) {
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    let now = app.clock.now_ms_for_tests();
    let good = batch(&app, "pod-1", 1, 100);
    let long = "x".repeat(129);
    let many_deps: serde_json::Map<String, Value> =
        (0..257).map(|i| (format!("d{i}"), json!({}))).collect();
    let many_tenants: serde_json::Map<String, Value> =
        (0..1001).map(|i| (format!("t{i}"), json!(1))).collect();
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|b| b["dependencies"]["model"]["latency_buckets"] = json!([1, 2, 3])),
            "dependencies.model.latency_buckets",
        ),
        (
            Box::new(move |b| b["window_end_ms"] = json!(now - 5000)),
            "window_end_ms",
        ),
        (
            Box::new(move |b| {
                b["window_start_ms"] = json!(now + 3_600_000);
                b["window_end_ms"] = json!(now + 3_600_000);
            }),
            "window_end_ms",
        ),
        (
            Box::new(move |b| {
                b["window_start_ms"] = json!(now - 2 * 86_400_000);
                b["window_end_ms"] = json!(now - 2 * 86_400_000);
            }),
            "window_end_ms",
        ),
        (Box::new(|b| b["sequence"] = json!(0)), "sequence"),
        (Box::new(|b| b["instance_id"] = json!("")), "instance_id"),
        (
            Box::new(move |b| b["dependencies"] = json!({ long.clone(): {} })),
            "dependencies",
        ),
        (
            Box::new(move |b| b["dependencies"] = Value::Object(many_deps.clone())),
            "dependencies",
        ),
        (
            Box::new(move |b| b["tenant_cost_usd_micros"] = Value::Object(many_tenants.clone())),
            "tenant_cost_usd_micros",
        ),
        (
            Box::new(|b| b["dependencies"]["model"]["calls"] = json!(-1)),
            "dependencies.model.calls",
        ),
        (
            Box::new(|b| b["dependencies"]["model"]["calls"] = json!(u64::MAX)),
            "dependencies.model.calls",
        ),
        (
            Box::new(|b| b["dependencies"]["model"]["surprise"] = json!(1)),
            "dependencies.model",
        ),
        (
            Box::new(|b| b["dependencies"]["model"]["breaker"] = json!("ajar")),
            "dependencies.model.breaker",
        ),
    ];
    for (mutate, field) in cases {
        let mut bad = good.clone();
        mutate(&mut bad);
        let r = post(&app, &agent, bad).await;
        assert!(
            r.status.is_client_error(),
            "{field}: {} {}",
            r.status,
            r.text
        );
        let got = r.body["error"]["field"].as_str().unwrap_or_default();
        assert!(
            got.starts_with(field),
            "expected field {field}, got {got:?}: {}",
            r.text
        );
    }
    let r = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/agent/telemetry")
                .header(header::AUTHORIZATION, format!("Bearer {agent}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"instance_id\": "))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Nothing of any of them was stored: no receipt, no rollup, and the
    // good batch with the same sequence is still new.
    let id = service_id(&app, "rag-answer").await;
    assert_eq!(app.store().telemetry_receipt_count(id).await.unwrap(), 0);
    assert!(app.store().rollups(id, 0).await.unwrap().is_empty());
    let r = post(&app, &agent, good).await;
    assert_eq!(r.body["accepted"], true, "{}", r.text);
}

async fn batches_land_under_the_tokens_service_only(app: TestApp) {
    let s = setup(&app).await;
    let billing = app.agent_token(&s.admin, "billing").await;
    let r = post(&app, &billing, batch(&app, "pod-1", 1, 40)).await;
    assert_eq!(r.body["accepted"], true, "{}", r.text);
    // The body cannot name another service: the protocol has no such field.
    let mut sneaky = batch(&app, "pod-1", 2, 40);
    sneaky["service"] = json!("rag-answer");
    let r = post(&app, &billing, sneaky).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(rollup_calls(&app, "billing").await, 40);
    assert_eq!(rollup_calls(&app, "rag-answer").await, 0);
    let rag_live = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/telemetry",
            None,
            Some(&s.viewer),
        )
        .await;
    assert_eq!(rag_live.body["dependencies"], json!([]));
    // People cannot post telemetry, whatever their role; nobody can anonymously.
    for token in [&s.admin, &s.viewer] {
        let r = post(&app, token, batch(&app, "pod-1", 3, 1)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }
    let r = app
        .call(
            Method::POST,
            "/api/v1/agent/telemetry",
            Some(batch(&app, "pod-1", 3, 1)),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A token for a service that was never registered has nowhere to post.
    let ghost = app.agent_token(&s.admin, "ghost").await;
    let r = post(&app, &ghost, batch(&app, "pod-1", 1, 1)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // And service tokens cannot read the live views.
    for path in [
        "/api/v1/services/billing/prod/telemetry",
        "/api/v1/fleet/live",
        "/api/v1/live",
    ] {
        let r = app.call(Method::GET, path, None, Some(&billing)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        let r = app.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-9
}

async fn derived_figures_follow_from_known_batches(app: TestApp) {
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    // An old batch that a 60 s window leaves out but a 300 s one includes.
    post(&app, &agent, batch(&app, "pod-1", 1, 100)).await;
    app.clock.advance_ms(120_000);
    // Two instances, 100 calls each, now; pod-2's breaker opened.
    let mut b2 = batch(&app, "pod-2", 1, 100);
    b2["dependencies"]["model"]["breaker"] = json!("open");
    let now = app.clock.now_ms_for_tests();
    b2["dependencies"]["model"]["breaker_transitions"] =
        json!([{ "at_ms": now - 500, "from": "closed", "to": "open" }]);
    assert_eq!(
        post(&app, &agent, batch(&app, "pod-1", 2, 100)).await.body["accepted"],
        true
    );
    assert_eq!(post(&app, &agent, b2).await.body["accepted"], true);

    let r = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/telemetry?window_secs=60",
            None,
            Some(&s.viewer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let m = &r.body["dependencies"][0];
    assert_eq!(m["dependency"], "model");
    assert_eq!(m["calls"], 200);
    assert_eq!(m["failures"], 20);
    assert!(close(&m["error_rate"], 0.10), "{m}");
    assert!(close(&m["timeout_rate"], 0.05), "{m}");
    assert!(close(&m["fallback_rate"], 0.20), "{m}");
    // "normal" is not a degradation.
    assert!(close(&m["degraded_rate"], 0.10), "{m}");
    assert!(close(&m["retry_amplification"], 1.25), "{m}");
    assert_eq!(m["shed"], 6);
    assert_eq!(m["bulkhead_rejections"], 4);
    assert_eq!(
        (
            m["p50_ms"].clone(),
            m["p95_ms"].clone(),
            m["p99_ms"].clone()
        ),
        (json!(10), json!(100), json!(1000))
    );
    assert!(close(&m["mean_ms"], 20.0), "{m}");
    assert_eq!(m["breaker"], "open", "the worst instance decides");
    assert_eq!(m["breakers"], json!({ "pod-1": "closed", "pod-2": "open" }));
    assert_eq!(m["recent_transitions"][0]["instance_id"], "pod-2");
    assert_eq!(m["in_flight"], 8);
    assert_eq!(m["queued"], 2);
    assert_eq!(
        r.body["tenant_cost_usd_micros"],
        json!({ "acme": 600, "globex": 400 })
    );
    assert_eq!(r.body["instances"]["up"], 2);
    let points = r.body["series"][0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 60);
    assert_eq!(points.last().unwrap()["calls"], 200);
    assert_eq!(points.last().unwrap()["p95_ms"], 100);
    assert_eq!(
        points
            .iter()
            .map(|p| p["calls"].as_u64().unwrap())
            .sum::<u64>(),
        200
    );

    let r = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/telemetry?window_secs=300",
            None,
            Some(&s.viewer),
        )
        .await;
    assert_eq!(r.body["dependencies"][0]["calls"], 300);
    for bad in ["0", "901", "soon"] {
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/services/rag-answer/prod/telemetry?window_secs={bad}"),
                None,
                Some(&s.viewer),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(r.body["error"]["field"], "window_secs");
    }

    let fleet = app
        .call(Method::GET, "/api/v1/fleet/live", None, Some(&s.viewer))
        .await;
    assert_eq!(fleet.status, StatusCode::OK, "{}", fleet.text);
    let services = fleet.body["services"].as_array().unwrap();
    let rag = services
        .iter()
        .find(|s| s["service"] == "rag-answer")
        .unwrap();
    assert_eq!(rag["worst_breaker"], "open");
    assert!(close(&rag["dependencies"][0]["retry_amplification"], 1.25));
    let billing = services.iter().find(|s| s["service"] == "billing").unwrap();
    assert_eq!(billing["dependencies"], json!([]));

    // Two minutes later pod-1 and pod-2 are stale; the breaker state of
    // instances silent for over a minute no longer counts.
    app.clock.advance_ms(61_000);
    let r = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/telemetry?window_secs=60",
            None,
            Some(&s.viewer),
        )
        .await;
    assert_eq!(r.body["instances"]["stale"], 0);
    assert_eq!(r.body["instances"]["down"], 2);
    assert_eq!(r.body["dependencies"][0]["breaker"], Value::Null);
    assert_eq!(r.body["dependencies"][0]["calls"], 0);
}

async fn rollups_are_stored_and_pruned_by_age(app: TestApp) {
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    let id = service_id(&app, "rag-answer").await;
    // Two batches in one minute add up into one row.
    post(&app, &agent, batch(&app, "pod-1", 1, 100)).await;
    post(&app, &agent, batch(&app, "pod-2", 1, 100)).await;
    let rows = app.store().rollups(id, 0).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].minute_ms, T0_MS);
    let counts = Counts::from_rollup(&rows[0]);
    assert_eq!(counts.get(0), 200);
    // Percentiles can be computed from what is stored.
    assert_eq!(quantile_ms(counts.buckets(), 0.95), Some(100));
    assert_eq!(quantile_ms(counts.buckets(), 0.99), Some(1000));

    // Ten days later, another minute.
    app.clock.advance_ms(10 * 86_400_000);
    post(&app, &agent, batch(&app, "pod-1", 2, 10)).await;
    assert_eq!(app.store().rollups(id, 0).await.unwrap().len(), 2);
    // On day 15 the first minute is past the 14-day retention; the second is
    // not. Receipts older than a day go too.
    app.clock.advance_ms(5 * 86_400_000);
    let (receipts, rollups) = server::telemetry::prune(&app.state).await.unwrap();
    assert_eq!((receipts, rollups), (3, 1));
    let rows = app.store().rollups(id, 0).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].values[0], 10);
    assert_eq!(app.store().telemetry_receipt_count(id).await.unwrap(), 0);

    // A shorter retention, configured, prunes sooner.
    let short = app.replica_with(|s| s.rollup_retention_days = 1).await;
    let (_, rollups) = server::telemetry::prune(&short.state).await.unwrap();
    assert_eq!(rollups, 1);
    assert!(app.store().rollups(id, 0).await.unwrap().is_empty());
}

async fn the_live_stream_sends_a_summary_after_an_ingest(app: TestApp) {
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    // Browsers authenticate with the session cookie.
    let response = tower::ServiceExt::oneshot(
        app.router.clone(),
        Request::builder()
            .uri("/api/v1/live")
            .header(header::COOKIE, format!("ballast_session={}", s.viewer))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE).unwrap(),
        "text/event-stream"
    );
    let mut body = response.into_body();
    let mut buffer = String::new();
    let first = common::next_sse_event(&mut body, &mut buffer, "fleet").await;
    let names: Vec<&str> = first["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["billing", "rag-answer"]);
    assert_eq!(first["services"][1]["dependencies"], json!([]));

    assert_eq!(
        post(&app, &agent, batch(&app, "pod-1", 1, 100)).await.body["accepted"],
        true
    );
    let next = common::next_sse_event(&mut body, &mut buffer, "fleet").await;
    let rag = &next["services"][1];
    assert_eq!(rag["dependencies"][0]["dependency"], "model");
    assert_eq!(rag["dependencies"][0]["calls"], 100);
    assert_eq!(rag["instances"]["up"], 1);
}

async fn metrics_need_their_token_and_pass_promtool(app: TestApp) {
    let r = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["code"], "metrics_disabled");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("BALLAST_METRICS_TOKEN")
    );

    const TOKEN: &str = "scrape-token-0123456789";
    let app = app
        .replica_with(|s| s.metrics_token = Some(Secret::new(TOKEN)))
        .await;
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    let mut b = batch(&app, "pod-1", 1, 100);
    // Agents name dependencies; the exposition must escape what they choose.
    b["dependencies"]["vector \"db\" \\ v2"] = b["dependencies"]["model"].clone();
    assert_eq!(post(&app, &agent, b.clone()).await.body["accepted"], true);
    assert_eq!(post(&app, &agent, b).await.body["accepted"], false);
    let mut bad = batch(&app, "pod-1", 2, 1);
    bad["sequence"] = json!(0);
    post(&app, &agent, bad).await;

    for token in [None, Some("wrong"), Some(s.admin.as_str())] {
        let r = app.call(Method::GET, "/metrics", None, token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(r.body["error"]["field"], "authorization");
    }
    let r = app.call(Method::GET, "/metrics", None, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.headers.get(header::CONTENT_TYPE).unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text;
    for needle in [
        "# TYPE ballast_dependency_calls_total counter",
        "ballast_dependency_cost_dollars_total{service=\"rag-answer\",environment=\"prod\",dependency=\"model\"} 0.0005",
        "ballast_dependency_calls_total{service=\"rag-answer\",environment=\"prod\",dependency=\"model\"} 100",
        "ballast_dependency_failures_total{service=\"rag-answer\",environment=\"prod\",dependency=\"model\",class=\"timeout\"} 5",
        "ballast_dependency_latency_seconds_bucket{le=\"0.01\",service=\"rag-answer\",environment=\"prod\",dependency=\"model\"} 90",
        "ballast_dependency_breaker_state{service=\"rag-answer\",environment=\"prod\",dependency=\"model\",state=\"closed\"} 1",
        "dependency=\"vector \\\"db\\\" \\\\ v2\"",
        "ballast_telemetry_batches_total{outcome=\"accepted\"} 1",
        "ballast_telemetry_batches_total{outcome=\"duplicate\"} 1",
        "ballast_telemetry_batches_total{outcome=\"rejected\"} 1",
        "ballast_http_requests_total{class=\"2xx\"}",
        "ballast_live_subscribers 0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    promtool_check(&text);
    // Prometheus itself asks for OpenMetrics and gets it.
    let r = app
        .send(
            Request::builder()
                .uri("/metrics")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(
                    header::ACCEPT,
                    "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(r.text.ends_with("# EOF\n"));
    assert!(r.text.contains("# TYPE ballast_dependency_calls counter"));
}

/// The agent counts idempotency conflicts and duplicate side effects it
/// prevented; both land in the rollups (next to, not among, the latency
/// buckets), the live view and `/metrics`.
async fn idempotency_counters_reach_rollups_live_and_metrics(app: TestApp) {
    const TOKEN: &str = "scrape-token-0123456789";
    let app = app
        .replica_with(|s| s.metrics_token = Some(Secret::new(TOKEN)))
        .await;
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    for (instance, conflicts, prevented) in [("pod-1", 3, 5), ("pod-2", 1, 2)] {
        let mut b = batch(&app, instance, 1, 100);
        b["dependencies"]["model"]["idempotency_conflicts"] = json!(conflicts);
        b["dependencies"]["model"]["duplicates_prevented"] = json!(prevented);
        assert_eq!(post(&app, &agent, b).await.body["accepted"], true);
    }

    let id = service_id(&app, "rag-answer").await;
    let rows = app.store().rollups(id, 0).await.unwrap();
    let counts = Counts::from_rollup(&rows[0]);
    assert_eq!(counts.get(col::IDEMPOTENCY_CONFLICTS), 4);
    assert_eq!(counts.get(col::DUPLICATES_PREVENTED), 7);
    // The stored histogram is still the histogram.
    assert_eq!(counts.latency_count(), 200);
    assert_eq!(quantile_ms(counts.buckets(), 0.95), Some(100));
    // What the alert evaluator and the report read, by column name.
    let sums = app.store().rollup_sums(0).await.unwrap();
    let model = sums.iter().find(|r| r.dependency == "model").unwrap();
    let at = |name: &str| {
        server::store::ROLLUP_COLUMNS
            .iter()
            .position(|c| *c == name)
            .unwrap()
    };
    assert_eq!(model.values[at("duplicates_prevented")], 7);
    assert_eq!(model.values[at("b03")], 180);

    let r = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/telemetry?window_secs=60",
            None,
            Some(&s.viewer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let m = &r.body["dependencies"][0];
    assert_eq!(m["idempotency_conflicts"], 4, "{m}");
    assert_eq!(m["duplicates_prevented"], 7, "{m}");
    assert_eq!(m["p95_ms"], 100, "{m}");

    // An oversized counter is refused, naming its field.
    let mut bad = batch(&app, "pod-1", 2, 1);
    bad["dependencies"]["model"]["duplicates_prevented"] = json!(2_000_000_000_000u64);
    let r = post(&app, &agent, bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.body["error"]["field"],
        "dependencies.model.duplicates_prevented"
    );

    let text = app
        .call(Method::GET, "/metrics", None, Some(TOKEN))
        .await
        .text;
    for needle in [
        "ballast_dependency_idempotency_conflicts_total{service=\"rag-answer\",environment=\"prod\",dependency=\"model\"} 4",
        "ballast_dependency_duplicates_prevented_total{service=\"rag-answer\",environment=\"prod\",dependency=\"model\"} 7",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    promtool_check(&text);
}

/// Publishes the example RAG policy for rag-answer (as medium risk, so that
/// the admin's publish needs no approver): agents heartbeat only to a
/// service with a policy.
async fn publish_rag(app: &TestApp, admin: &str) {
    publish_rag_with(app, admin, |_| {}).await
}

/// [`publish_rag`], with the document edited first.
async fn publish_rag_with(app: &TestApp, admin: &str, edit: impl FnOnce(&mut Value)) {
    let mut p = shared::policy::Policy::from_yaml(include_str!(
        "../../../examples/policies/rag-answer.yaml"
    ))
    .unwrap();
    p.service.risk_tier = shared::policy::RiskTier::Medium;
    let mut document = serde_json::to_value(&p).unwrap();
    edit(&mut document);
    let r = app
        .call(
            Method::POST,
            "/api/v1/services/rag-answer/prod/publish",
            Some(json!({ "message": "v1", "document": document })),
            Some(admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// An agent that refuses a policy failing its validation says so in its
/// heartbeat; the fleet view shows which version it refused and why until a
/// beat says it refuses nothing, and `/metrics` counts such instances.
async fn a_refused_policy_shows_in_the_fleet_and_on_metrics(app: TestApp) {
    const TOKEN: &str = "scrape-token-0123456789";
    let app = app
        .replica_with(|s| s.metrics_token = Some(Secret::new(TOKEN)))
        .await;
    let s = setup(&app).await;
    publish_rag(&app, &s.admin).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    let refusal = json!({
        "version": 2,
        "source": "server",
        "errors": ["retrieval.sources.policy_library.on_failure: unsafe_omit"],
        "refused_at_ms": T0_MS,
    });
    let beat = |instance: &str, refused: Option<&Value>| {
        let mut b = json!({ "instance_id": instance, "agent_version": "0.1.0",
            "policy_version": 1, "policy_source": "server", "started_at_ms": T0_MS });
        if let Some(r) = refused {
            b["refused_policy"] = r.clone();
        }
        b
    };
    for body in [beat("pod-1", Some(&refusal)), beat("pod-2", None)] {
        let r = app
            .call(
                Method::POST,
                "/api/v1/agent/heartbeat",
                Some(body),
                Some(&agent),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    let refused_of = |body: &Value, id: &str| {
        body.as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance_id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {body}"))["refused_policy"]
            .clone()
    };
    for path in [
        "/api/v1/services/rag-answer/prod/instances",
        "/api/v1/fleet/instances",
    ] {
        let r = app.call(Method::GET, path, None, Some(&s.viewer)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(refused_of(&r.body, "pod-1"), refusal, "{path}");
        assert_eq!(refused_of(&r.body, "pod-2"), Value::Null, "{path}");
    }
    let scrape = || async {
        app.call(Method::GET, "/metrics", None, Some(TOKEN))
            .await
            .text
    };
    let text = scrape().await;
    for needle in [
        "# TYPE ballast_instances_refusing_policy gauge",
        "ballast_instances_refusing_policy{service=\"rag-answer\",environment=\"prod\"} 1",
        "ballast_instances_refusing_policy{service=\"billing\",environment=\"prod\"} 0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    promtool_check(&text);

    // Bad refusals are answered with a 422 naming the field, and change
    // nothing.
    let mut many = refusal.clone();
    many["errors"] = json!(vec!["a: b"; 17]);
    let mut control = refusal.clone();
    control["errors"] = json!(["a: b", "line\nbreak"]);
    let mut zero = refusal.clone();
    zero["version"] = json!(0);
    for (bad, field) in [
        (many, "refused_policy.errors"),
        (control, "refused_policy.errors[1]"),
        (zero, "refused_policy.version"),
    ] {
        let r = app
            .call(
                Method::POST,
                "/api/v1/agent/heartbeat",
                Some(beat("pod-2", Some(&bad))),
                Some(&agent),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.body["error"]["field"], field);
    }

    // The next beat that refuses nothing clears it, here and on a replica
    // that reads the store.
    app.call(
        Method::POST,
        "/api/v1/agent/heartbeat",
        Some(beat("pod-1", None)),
        Some(&agent),
    )
    .await;
    let other = app.replica().await;
    for a in [&app, &other] {
        let r = a
            .call(
                Method::GET,
                "/api/v1/fleet/instances",
                None,
                Some(&s.viewer),
            )
            .await;
        assert!(
            r.body
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["refused_policy"].is_null()),
            "{}",
            r.text
        );
    }
    assert!(scrape().await.contains(
        "ballast_instances_refusing_policy{service=\"rag-answer\",environment=\"prod\"} 0"
    ));
}

/// Agents report retrieval sources and agent nodes under their own names
/// and the service's own counts under `_` names, all beside the
/// dependencies. The live view labels each row by the policy in force and
/// folds the `_` rows into one service-level row instead of listing them as
/// dependencies.
async fn sources_nodes_and_the_service_are_told_apart_from_dependencies(app: TestApp) {
    let s = setup(&app).await;
    publish_rag_with(&app, &s.admin, |d| {
        d["agent_nodes"] = json!({
            "compose_answer": { "dependencies": ["model_provider"], "required_for_completion": true }
        });
    })
    .await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    let mut b = batch(&app, "pod-1", 1, 100);
    let deps = b["dependencies"].as_object_mut().unwrap();
    let model = deps.remove("model").unwrap();
    deps.insert("model_provider".into(), model.clone());
    deps.insert(
        "policy_library".into(),
        json!({ "degraded": { "refused": 2 } }),
    );
    deps.insert(
        "compose_answer".into(),
        json!({ "failures": { "timeout": 1 }, "retries": 1 }),
    );
    // Admission's counts, and calls that named no dependency.
    deps.insert(
        "_service".into(),
        json!({ "shed": 3, "rate_limited": 2, "degraded": { "refused": 3 } }),
    );
    let mut unnamed = model.clone();
    unnamed["calls"] = json!(10);
    unnamed["breaker"] = json!("open");
    deps.insert("_unnamed".into(), unnamed);
    assert_eq!(post(&app, &agent, b).await.body["accepted"], true);

    let kinds = |rows: &Value| -> Vec<(String, String)> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["dependency"].as_str().unwrap().to_owned(),
                    d["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let expected: Vec<(String, String)> = [
        ("compose_answer", "agent_node"),
        ("model_provider", "dependency"),
        ("policy_library", "retrieval_source"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let r = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/telemetry?window_secs=60",
            None,
            Some(&s.viewer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(kinds(&r.body["dependencies"]), expected);
    let service = &r.body["service_level"];
    assert_eq!(service["dependency"], "_service");
    assert_eq!(service["kind"], "service");
    // Both `_` rows add up: the batch helper's 3 shed and 10 calls from
    // `_unnamed`, 3 shed and 2 rate-limited from `_service`.
    assert_eq!(service["shed"], 6, "{service}");
    assert_eq!(service["rate_limited"], 2, "{service}");
    assert_eq!(service["calls"], 10, "{service}");
    let series: Vec<&str> = r.body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["dependency"].as_str().unwrap())
        .collect();
    assert_eq!(
        series,
        ["compose_answer", "model_provider", "policy_library"]
    );

    let fleet = app
        .call(Method::GET, "/api/v1/fleet/live", None, Some(&s.viewer))
        .await;
    let services = fleet.body["services"].as_array().unwrap();
    let find = |name: &str| services.iter().find(|s| s["service"] == name).unwrap();
    let rag = find("rag-answer");
    assert_eq!(kinds(&rag["dependencies"]), expected);
    assert_eq!(rag["service_level"]["shed"], 6);
    // The service-level row is no dependency: its breaker is not the card's.
    assert_eq!(rag["service_level"]["breaker"], "open");
    assert_eq!(rag["worst_breaker"], "closed");
    // A service nobody reported on has no service-level row.
    assert_eq!(find("billing")["service_level"], Value::Null);
}

/// Runs `promtool check metrics` on the exposition. Skipped only outside CI
/// when promtool is not installed.
pub(crate) fn promtool_check(text: &str) {
    let promtool = std::path::Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but /usr/bin/promtool is missing"
        );
        eprintln!("skipping promtool check: /usr/bin/promtool is not installed");
        return;
    }
    use std::io::Write;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
