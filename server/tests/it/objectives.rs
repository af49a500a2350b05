//! Service level objectives against known telemetry: the budget left and
//! the burn rates agree with values computed by hand, the generated
//! burn-rate and safety rules fire through the alert engine, and a canary
//! that burns faster than the stable version is rolled back on its own.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{NowForTests, PASSWORD, TestApp};
use serde_json::{Value, json};
use server::config::Secret;
use shared::policy::{Policy, RiskTier};
use shared::role::Role;

on_both_backends!(
    budgets_and_burn_rates_match_hand_computed_values,
    a_canary_that_burns_faster_than_stable_is_rolled_back_on_its_own,
    a_canary_that_holds_for_its_bake_time_is_promoted_when_the_policy_says_so,
);

const DAY_MS: i64 = 86_400_000;

struct Setup {
    admin: String,
    viewer: String,
    agent: String,
}

/// The example RAG policy, medium-risk so that an admin publishes it alone.
fn rag() -> Value {
    let mut p = Policy::from_yaml(include_str!("../../../examples/policies/rag-answer.yaml"))
        .expect("the example parses");
    p.service.risk_tier = RiskTier::Medium;
    serde_json::to_value(&p).unwrap()
}

async fn setup(app: &TestApp) -> Setup {
    let admin = app.login_as("ada", Role::Admin).await;
    let viewer = app.login_as("vic", Role::Viewer).await;
    let r = app
        .call(
            Method::POST,
            shared::paths::SERVICES,
            Some(json!({ "name": "rag-answer", "environment": "prod", "owner": "team" })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    publish(app, &admin, rag(), None).await;
    let agent = app.agent_token(&admin, "rag-answer").await;
    Setup {
        admin,
        viewer,
        agent,
    }
}

async fn publish(app: &TestApp, admin: &str, document: Value, canary: Option<u8>) {
    let r = app
        .call(
            Method::POST,
            &shared::paths::service("rag-answer", "prod").publish(),
            Some(
                json!({ "message": "objectives", "document": document, "canary_percent": canary }),
            ),
            Some(admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// A latency histogram with `n` calls in the bucket bounded by each `ms`.
fn buckets(at: &[(u64, u64)]) -> Vec<u64> {
    let mut b = vec![0u64; 16];
    for (ms, n) in at {
        let i = shared::protocol::LATENCY_BUCKETS_MS
            .iter()
            .position(|bound| bound == ms)
            .unwrap();
        b[i] = *n;
    }
    b
}

async fn post(
    app: &TestApp,
    token: &str,
    instance: &str,
    sequence: u64,
    version: u64,
    dependencies: Value,
) {
    let now = app.clock.now_ms_for_tests();
    let batch = json!({
        "instance_id": instance,
        "sequence": sequence,
        "window_start_ms": now - 1000,
        "window_end_ms": now,
        "policy_version": version,
        "dependencies": dependencies,
    });
    let r = app
        .call(
            Method::POST,
            shared::paths::AGENT_TELEMETRY,
            Some(batch),
            Some(token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

fn objective<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == id)
        .unwrap_or_else(|| panic!("no objective {id} in {body}"))
}

fn burn(o: &Value, window_s: u64) -> f64 {
    o["burn_rates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["window_s"] == window_s)
        .unwrap()["rate"]
        .as_f64()
        .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

async fn firing(app: &TestApp, token: &str) -> Vec<String> {
    let r = app
        .call(
            Method::GET,
            &format!("{}?state=firing", shared::paths::ALERTS),
            None,
            Some(token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
        .as_array()
        .or_else(|| r.body["alerts"].as_array())
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap().to_owned())
        .collect()
}

/// Two days of known request records: the first day 1000 requests (60
/// degraded, 10 refused; of the 990 answered, 960 within 5 s), two days
/// later 200 (4 refused, 6 partial, 2 queued; all 196 answered within 1 s).
async fn budgets_and_burn_rates_match_hand_computed_values(app: TestApp) {
    const SCRAPE: &str = "scrape-token-0123456789";
    let app = app
        .replica_with(|s| s.metrics_token = Some(Secret::new(SCRAPE)))
        .await;
    let mut s = setup(&app).await;
    post(
        &app,
        &s.agent,
        "pod-1",
        1,
        1,
        json!({ "_requests": {
            "calls": 1000, "successes": 990,
            "degraded": { "degraded": 60, "refused": 10 },
            "latency_buckets": buckets(&[(2_000, 900), (5_000, 60), (10_000, 30)]),
        }}),
    )
    .await;
    app.clock.advance_ms(2 * DAY_MS);
    // Sessions do not last two days.
    s.viewer = app.login("vic", PASSWORD).await;
    s.admin = app.login("ada", PASSWORD).await;
    post(
        &app,
        &s.agent,
        "pod-1",
        2,
        1,
        json!({ "_requests": {
            "calls": 200, "successes": 196,
            "degraded": { "refused": 4, "partial": 6, "queued": 2 },
            "latency_buckets": buckets(&[(1_000, 196)]),
        }}),
    )
    .await;

    let path = shared::paths::service("rag-answer", "prod").objectives();
    let r = app.call(Method::GET, &path, None, Some(&s.viewer)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Latency, 95 % within 5 s: 30 of 1186 answered were slower; the
    // budget is 5 % of 1186 = 59.3, so 1 - 30/59.3 is left.
    let latency = objective(&r.body, "answer-latency");
    assert_eq!(latency["valid"], 1186);
    assert_eq!(latency["good"], 1156);
    assert_eq!(latency["achieved_bp"], 9747);
    assert_eq!(latency["budget_remaining_bp"], 4941);
    // Availability, 99.5 % normal, degraded or partial: 16 bad (14 refused,
    // 2 queued) of 1200 against an allowance of 6: overspent by 10/6.
    let available = objective(&r.body, "availability");
    assert_eq!(available["valid"], 1200);
    assert_eq!(available["good"], 1184);
    assert_eq!(available["budget_remaining_bp"], -16_667);
    // The last five minutes hold only the second batch: 6 bad in 200 is 3 %
    // against 0.5 %, 6.0x; over three days, 16/1200 against 0.5 %, 2.67x.
    assert!(close(burn(available, 300), 6.0), "{available}");
    assert!(
        close(burn(available, 259_200), 16.0 / 1200.0 / 0.005),
        "{available}"
    );
    // Quality, 90 % at full quality over 7 days: 82 of 1200 not normal,
    // against an allowance of 120.
    let quality = objective(&r.body, "full-quality");
    assert_eq!(quality["budget_remaining_bp"], 3167);
    assert!(close(burn(quality, 300), 0.6), "{quality}");
    assert!(
        close(burn(quality, 259_200), 82.0 / 1200.0 / 0.1),
        "{quality}"
    );
    // The burn-down ends with today's figure and has a point per day.
    let down = quality["burn_down"].as_array().unwrap();
    assert_eq!(down.len(), 8);
    assert_eq!(down.last().unwrap()["remaining_bp"], 3167);
    // No violation yet: the safety goals are whole.
    let leak = objective(&r.body, "no-unauthorized-retrieval");
    assert_eq!(leak["budget_remaining_bp"], 10_000);

    // The generated rules: availability burns at 6.0x over both 6 h and
    // 30 min (the medium rule pages above 5.6x for a 28-day window) and
    // 2.67x over 3 days with 6.0x over 6 h (the slow rule tickets above
    // 0.93x); the fast rule needs 13.44x and stays quiet.
    let now = app.clock.now_ms_for_tests();
    server::alerts::evaluate::evaluate(&app.state, now)
        .await
        .unwrap();
    let fired = firing(&app, &s.viewer).await;
    assert!(
        fired.contains(&"slo-rag-answer-prod-availability-medium".to_owned()),
        "{fired:?}"
    );
    assert!(
        fired.contains(&"slo-rag-answer-prod-availability-slow".to_owned()),
        "{fired:?}"
    );
    assert!(
        !fired.contains(&"slo-rag-answer-prod-availability-fast".to_owned()),
        "{fired:?}"
    );
    assert!(
        !fired.iter().any(|r| r.contains("no-unauthorized")),
        "{fired:?}"
    );

    // One unauthorised retrieval: its safety rule fires at once, whatever
    // the window, and the safety goal's budget is gone.
    app.clock.advance_ms(1_000);
    post(
        &app,
        &s.agent,
        "pod-1",
        3,
        1,
        json!({ "_safety-unauthorized_retrieval": { "calls": 1 } }),
    )
    .await;
    let now = app.clock.now_ms_for_tests();
    server::alerts::evaluate::evaluate(&app.state, now)
        .await
        .unwrap();
    let fired = firing(&app, &s.viewer).await;
    assert!(
        fired.contains(&"slo-rag-answer-prod-no-unauthorized-retrieval".to_owned()),
        "{fired:?}"
    );
    let r = app.call(Method::GET, &path, None, Some(&s.viewer)).await;
    let leak = objective(&r.body, "no-unauthorized-retrieval");
    assert_eq!(leak["violations"], 1);
    assert_eq!(leak["budget_remaining_bp"], 0);

    // Nobody writes or deletes a generated rule by hand.
    let rule = shared::paths::alert_rule("slo-rag-answer-prod-availability-fast");
    let r = app.call(Method::DELETE, &rule, None, Some(&s.admin)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    // The same figures on /metrics, for dashboards outside Ballast.
    let r = app.call(Method::GET, "/metrics", None, Some(SCRAPE)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let labels = |objective: &str| {
        format!("service=\"rag-answer\",environment=\"prod\",objective=\"{objective}\"")
    };
    for needle in [
        format!(
            "ballast_slo_error_budget_remaining_ratio{{{}}} 0.3167",
            labels("full-quality")
        ),
        format!(
            "ballast_slo_target_ratio{{{}}} 0.995",
            labels("availability")
        ),
        format!(
            "ballast_slo_burn_rate{{{},window=\"5m\"}} 6.0",
            labels("availability")
        ),
        format!(
            "ballast_slo_error_budget_remaining_ratio{{{}}} 0.0",
            labels("no-unauthorized-retrieval")
        ),
    ] {
        assert!(
            r.text.contains(&needle),
            "missing {needle:?} in\n{}",
            r.text
        );
    }
    crate::telemetry::promtool_check(&r.text);
    // And without a session, nothing is shown.
    let r = app.call(Method::GET, &path, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

/// The stable version answers 5 % degraded (0.5x of the quality budget),
/// the canary everything degraded (10x): the analysis rolls the canary
/// back, audits it, records why and fires the canary rule with the reason.
async fn a_canary_that_burns_faster_than_stable_is_rolled_back_on_its_own(app: TestApp) {
    let s = setup(&app).await;
    let mut canary = rag();
    canary["timeouts"]["dependencies"]["reranker"] = json!(1);
    publish(&app, &s.admin, canary, Some(50)).await;
    app.clock.advance_ms(60_000);
    post(
        &app,
        &s.agent,
        "stable-pod",
        1,
        1,
        json!({ "_requests": {
            "calls": 400, "successes": 400, "degraded": { "degraded": 20 },
            "latency_buckets": buckets(&[(1_000, 400)]),
        }}),
    )
    .await;
    post(
        &app,
        &s.agent,
        "canary-pod",
        1,
        2,
        json!({ "_requests": {
            "calls": 60, "successes": 60, "degraded": { "degraded": 60 },
            "latency_buckets": buckets(&[(1_000, 60)]),
        }}),
    )
    .await;

    let path = shared::paths::service("rag-answer", "prod").objectives();
    let r = app.call(Method::GET, &path, None, Some(&s.viewer)).await;
    let c = &r.body["canary"];
    assert_eq!(c["canary_version"], 2, "{}", r.text);
    assert_eq!(c["canary_requests"], 60);
    assert_eq!(c["stable_requests"], 400);
    assert_eq!(c["verdict"], "failing", "{c}");

    let now = app.clock.now_ms_for_tests();
    server::alerts::evaluate::evaluate(&app.state, now)
        .await
        .unwrap();
    let svc = app
        .call(
            Method::GET,
            &shared::paths::service("rag-answer", "prod").root(),
            None,
            Some(&s.viewer),
        )
        .await;
    assert_eq!(svc.body["rollout"]["active_version"], 1, "{}", svc.text);
    assert_eq!(
        svc.body["rollout"]["canary_version"],
        Value::Null,
        "{}",
        svc.text
    );

    let r = app.call(Method::GET, &path, None, Some(&s.viewer)).await;
    let history = r.body["canary_history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{}", r.text);
    assert_eq!(history[0]["decision"], "aborted");
    let reason = history[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("full-quality") && reason.contains("10.0x"),
        "{reason}"
    );

    let audit = app
        .call(Method::GET, shared::paths::AUDIT, None, Some(&s.admin))
        .await;
    assert!(audit.text.contains("rollout.auto_abort"), "{}", audit.text);
    assert!(
        audit.text.contains("ballast:canary-analysis"),
        "{}",
        audit.text
    );

    let fired = firing(&app, &s.viewer).await;
    assert!(
        fired.contains(&"slo-rag-answer-prod-canary".to_owned()),
        "{fired:?}"
    );
    let fleet = app
        .call(
            Method::GET,
            shared::paths::OBJECTIVES,
            None,
            Some(&s.viewer),
        )
        .await;
    assert_eq!(
        fleet.body["services"][0]["last_canary_verdict"]["decision"], "aborted",
        "{}",
        fleet.text
    );
}

/// A canary no worse than the stable version, whose policy asks for
/// automatic promotion, is promoted once it has baked, and not before.
async fn a_canary_that_holds_for_its_bake_time_is_promoted_when_the_policy_says_so(app: TestApp) {
    let s = setup(&app).await;
    let mut canary = rag();
    canary["goals"]["canary"]["auto_promote"] = json!(true);
    canary["goals"]["canary"]["bake_minutes"] = json!(10);
    publish(&app, &s.admin, canary, Some(20)).await;
    let healthy = |calls: u64| {
        json!({ "_requests": {
            "calls": calls, "successes": calls,
            "latency_buckets": buckets(&[(1_000, calls)]),
        }})
    };
    app.clock.advance_ms(60_000);
    post(&app, &s.agent, "stable-pod", 1, 1, healthy(300)).await;
    post(&app, &s.agent, "canary-pod", 1, 2, healthy(80)).await;
    let root = shared::paths::service("rag-answer", "prod").root();
    // Holding, not yet baked: nothing changes.
    let now = app.clock.now_ms_for_tests();
    server::alerts::evaluate::evaluate(&app.state, now)
        .await
        .unwrap();
    let svc = app.call(Method::GET, &root, None, Some(&s.viewer)).await;
    assert_eq!(svc.body["rollout"]["canary_version"], 2, "{}", svc.text);
    // Ten minutes after the publish it has baked, and is promoted.
    app.clock.advance_ms(9 * 60_000);
    let now = app.clock.now_ms_for_tests();
    server::alerts::evaluate::evaluate(&app.state, now)
        .await
        .unwrap();
    let svc = app.call(Method::GET, &root, None, Some(&s.viewer)).await;
    assert_eq!(svc.body["rollout"]["active_version"], 2, "{}", svc.text);
    assert_eq!(
        svc.body["rollout"]["canary_version"],
        Value::Null,
        "{}",
        svc.text
    );
    let r = app
        .call(
            Method::GET,
            &shared::paths::service("rag-answer", "prod").objectives(),
            None,
            Some(&s.viewer),
        )
        .await;
    assert_eq!(
        r.body["canary_history"][0]["decision"], "promoted",
        "{}",
        r.text
    );
    let audit = app
        .call(Method::GET, shared::paths::AUDIT, None, Some(&s.admin))
        .await;
    assert!(
        audit.text.contains("rollout.auto_promote"),
        "{}",
        audit.text
    );
}
