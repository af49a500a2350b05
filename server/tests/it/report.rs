//! The reliability report of the demo's RAG service: all eleven sections with
//! real values from the policy, known telemetry, a dead letter and a fired
//! alert, as Markdown (a snapshot) and as HTML.

use crate::common;

use axum::http::{Method, StatusCode, header};
use common::{NowForTests, TestApp};
use serde_json::json;
use shared::policy::Policy;
use shared::role::Role;

on_both_backends!(the_report_has_eleven_sections_with_real_values);

async fn the_report_has_eleven_sections_with_real_values(app: TestApp) {
    let admin = app.login_as("ada", Role::Admin).await;
    let engineer = app.login_as("erin", Role::Engineer).await;
    let approver = app.login_as("april", Role::Approver).await;
    let r = app
        .call(
            Method::POST,
            shared::paths::SERVICES,
            Some(json!({ "name": "rag-answer", "environment": "prod", "owner": "knowledge-platform" })),
            Some(&engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let policy =
        Policy::from_yaml(include_str!("../../../examples/policies/rag-answer.yaml")).unwrap();
    let r = app
        .call(
            Method::POST,
            &shared::paths::service("rag-answer", "prod").publish(),
            Some(json!({ "message": "the example", "document": serde_json::to_value(&policy).unwrap() })),
            Some(&engineer),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    if r.status == StatusCode::ACCEPTED {
        let id = r.body["request_id"].as_str().unwrap().to_owned();
        let r = app
            .call(
                Method::POST,
                &shared::paths::approve_publish(&id),
                Some(json!({ "comment": "reviewed" })),
                Some(&approver),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
    }
    let agent = app.agent_token(&admin, "rag-answer").await;

    // A known day: the reranker times out on 30 of 200 calls and its breaker
    // refuses 12; the model is healthy.
    let now = app.clock.now_ms_for_tests();
    let mut fast = vec![0u64; 16];
    fast[5] = 190;
    fast[9] = 10;
    let mut requests = vec![0u64; 16];
    requests[10] = 95;
    requests[12] = 3;
    let mut model = vec![0u64; 16];
    model[10] = 95;
    model[12] = 5;
    let batch = json!({
        "instance_id": "pod-1",
        "sequence": 1,
        "window_start_ms": now - 1000,
        "window_end_ms": now,
        "policy_version": 1,
        "dependencies": {
            "reranker": {
                "calls": 200, "successes": 170, "failures": { "timeout": 30 }, "timeouts": 30,
                "retries": 20, "breaker_rejections": 12, "fallbacks": { "reranker/timeout": 30 },
                "degraded": { "degraded": 30 }, "latency_buckets": fast, "latency_sum_ms": 9000,
                "breaker": "open"
            },
            "model_provider": {
                "calls": 100, "successes": 100, "latency_buckets": model, "latency_sum_ms": 90000,
                "tokens": 50000, "cost_usd_micros": 250000, "breaker": "closed"
            },
            // The requests themselves: 100, of which 12 degraded (the
            // reranker's fallback) and 2 refused; 95 of the 98 answered
            // within 5 s.
            "_requests": {
                "calls": 100, "successes": 98, "degraded": { "degraded": 12, "refused": 2 },
                "latency_buckets": requests
            }
        }
    });
    let r = app
        .call(
            Method::POST,
            shared::paths::AGENT_TELEMETRY,
            Some(batch),
            Some(&agent),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .call(
            Method::POST,
            shared::paths::AGENT_DEAD_LETTERS,
            Some(json!({
                "run_id": "run-1", "task_type": "answer", "failed_node": "generate",
                "error_type": "timeout", "error_message": "model timed out twice",
                "retry_count": 2, "created_at_ms": now - 600_000, "payload_hash": "ab".repeat(32)
            })),
            Some(&agent),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    server::alerts::evaluate::evaluate(&app.state, now)
        .await
        .unwrap();

    let path = shared::paths::service("rag-answer", "prod").report();
    let r = app
        .call(
            Method::GET,
            &format!("{path}?format=markdown"),
            None,
            Some(&engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    let md = r.text;
    for (i, title) in [
        "Timeout budget",
        "Retry policy",
        "Circuit breaker policy",
        "Fallback matrix",
        "Bulkhead design",
        "Queue and DLQ design",
        "Idempotency strategy",
        "Chaos test results",
        "Metrics and alerts",
        "Runbook",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            md.contains(&format!("## {}. {title}", i + 1)),
            "section {title} missing:\n{md}"
        );
    }
    // Real values, from each source.
    assert!(
        md.contains("| reranker | 200 | 15.00% | 15.00% | 15.00% | 15.00% | 12 |"),
        "{md}"
    );
    assert!(md.contains("Dead letters waiting: 1"), "{md}");
    assert!(md.contains("| breaker-open |"), "{md}");
    assert!(md.contains("firing"), "the breaker-open alert fired: {md}");
    assert!(
        md.contains("ai-reliability-incident") || md.contains("retrieval-degraded"),
        "{md}"
    );
    insta::assert_snapshot!("rag_answer_report_markdown", md);

    let r = app
        .call(
            Method::GET,
            &format!("{path}?download=true"),
            None,
            Some(&engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(
        r.headers[header::CONTENT_DISPOSITION].to_str().unwrap(),
        "attachment; filename=\"reliability-rag-answer-prod.html\""
    );
    let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let html = r.text;
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<section id=").count(), 11);
    assert!(html.contains("<td>reranker</td>"));

    // Bad input and callers.
    let r = app
        .call(
            Method::GET,
            &format!("{path}?format=pdf"),
            None,
            Some(&engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = app
        .call(
            Method::GET,
            &shared::paths::service("nope", "prod").report(),
            None,
            Some(&engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.call(Method::GET, &path, None, Some(&agent)).await;
    assert!(matches!(
        r.status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ));
    let r = app.call(Method::GET, &path, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
