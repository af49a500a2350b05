//! Alert rules, evaluation and notification on both databases: a rule
//! without a runbook is refused, known telemetry fires and resolves an
//! alert, a receiver that is down gets every notification once it is back,
//! two replicas evaluating the same rules notify once, silences and
//! acknowledgements, and every endpoint's roles.

use crate::common;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use common::{NowForTests, TestApp};
use serde_json::{Value, json};
use server::alerts::{evaluate::evaluate, notify};
use shared::role::Role;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

on_both_backends!(
    a_rule_needs_a_runbook_and_sound_fields,
    the_builtin_pack_is_there_from_the_start,
    known_telemetry_fires_and_resolves_an_alert,
    a_receiver_that_is_down_gets_everything_once_it_is_back,
    two_replicas_evaluating_the_same_rules_notify_once,
    silences_hold_notifications_and_acknowledgements_are_recorded,
    every_endpoint_checks_its_caller,
);

const SECRET: &str = "a-webhook-secret-of-some-length";

struct Setup {
    engineer: String,
    admin: String,
    agent: String,
}

async fn setup(app: &TestApp) -> Setup {
    let engineer = app.login_as("erin", Role::Engineer).await;
    let admin = app.login_as("ada", Role::Admin).await;
    let r = app
        .call(
            Method::POST,
            shared::paths::SERVICES,
            Some(json!({ "name": "rag-answer", "environment": "prod", "owner": "search" })),
            Some(&engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let agent = app.agent_token(&admin, "rag-answer").await;
    Setup {
        engineer,
        admin,
        agent,
    }
}

fn rule(runbook: &str, notify: &[&str]) -> Value {
    json!({
        "description": "reranker times out",
        "metric": "timeout_rate",
        "scope": { "service": "rag-answer", "dependency": "reranker" },
        "comparison": "above",
        "threshold": 0.2,
        "window_s": 120,
        "for_s": 60,
        "severity": "page",
        "runbook": runbook,
        "min_calls": 10,
        "notify": notify,
    })
}

/// One telemetry batch for `reranker`: `calls` calls, `timeouts` of them
/// timed out, ending now.
async fn report(app: &TestApp, s: &Setup, sequence: u64, calls: u64, timeouts: u64) {
    let now = app.clock.now_ms_for_tests();
    let mut buckets = vec![0u64; 16];
    buckets[3] = calls;
    let body = json!({
        "instance_id": "pod-1",
        "sequence": sequence,
        "window_start_ms": now - 1000,
        "window_end_ms": now,
        "policy_version": 1,
        "dependencies": {
            "reranker": {
                "calls": calls,
                "successes": calls - timeouts,
                "failures": { "timeout": timeouts },
                "timeouts": timeouts,
                "latency_buckets": buckets,
                "latency_sum_ms": calls * 20,
                "breaker": "closed",
            }
        }
    });
    let r = app
        .call(
            Method::POST,
            shared::paths::AGENT_TELEMETRY,
            Some(body),
            Some(&s.agent),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// A webhook receiver on loopback that fails its first `fail_first` calls
/// with 503, and records every call.
#[derive(Clone, Default)]
struct Receiver {
    fail_first: Arc<AtomicU32>,
    calls: Arc<Mutex<Vec<(HeaderMap, String, bool)>>>,
    // (headers, raw body, answered 2xx)
}

async fn receive(State(rx): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let fail = rx
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    rx.calls.lock().unwrap().push((headers, body, !fail));
    if fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

impl Receiver {
    async fn start(fail_first: u32) -> (Receiver, String) {
        let rx = Receiver::default();
        rx.fail_first.store(fail_first, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(rx.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (rx, url)
    }

    fn delivered(&self) -> Vec<(HeaderMap, Value)> {
        self.delivered_raw()
            .into_iter()
            .map(|(h, b)| (h, serde_json::from_str(&b).unwrap()))
            .collect()
    }

    fn delivered_raw(&self) -> Vec<(HeaderMap, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, ok)| *ok)
            .map(|(h, b, _)| (h.clone(), b.clone()))
            .collect()
    }
}

async fn webhook(app: &TestApp, s: &Setup, url: &str) -> String {
    let r = app
        .call(
            Method::POST,
            shared::paths::WEBHOOKS,
            Some(json!({ "name": "on-call", "url": url, "secret": SECRET })),
            Some(&s.admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(!r.text.contains(SECRET), "the secret is never shown");
    r.body["id"].as_str().unwrap().to_owned()
}

async fn put_rule(app: &TestApp, token: &str, name: &str, body: Value) -> common::Response {
    app.call(
        Method::PUT,
        &shared::paths::alert_rule(name),
        Some(body),
        Some(token),
    )
    .await
}

async fn alerts(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app
        .call(Method::GET, shared::paths::ALERTS, None, Some(token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "reranker-timeouts")
        .cloned()
        .collect()
}

/// Drives a reranker outage through the rule: pending, then firing after
/// `for_s`. Returns the alert's id.
async fn outage(app: &TestApp, s: &Setup) -> String {
    report(app, s, 1, 100, 40).await;
    let now = app.clock.now_ms_for_tests();
    evaluate(&app.state, now).await.unwrap();
    let a = alerts(app, &s.engineer).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["state"], "pending");
    app.clock.advance_ms(60_000);
    report(app, s, 2, 100, 50).await;
    evaluate(&app.state, app.clock.now_ms_for_tests())
        .await
        .unwrap();
    let a = alerts(app, &s.engineer).await;
    assert_eq!(a[0]["state"], "firing");
    a[0]["id"].as_str().unwrap().to_owned()
}

/// Healthy traffic until the outage has left the window, then evaluation.
async fn recovery(app: &TestApp, s: &Setup) {
    app.clock.advance_ms(180_000);
    report(app, s, 3, 100, 0).await;
    evaluate(&app.state, app.clock.now_ms_for_tests())
        .await
        .unwrap();
    let a = alerts(app, &s.engineer).await;
    assert_eq!(a[0]["state"], "resolved");
}

async fn a_rule_needs_a_runbook_and_sound_fields(app: TestApp) {
    let s = setup(&app).await;
    let mut no_runbook = rule("", &[]);
    let r = put_rule(&app, &s.engineer, "reranker-timeouts", no_runbook.clone()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "runbook");
    no_runbook.as_object_mut().unwrap().remove("runbook");
    let r = put_rule(&app, &s.engineer, "reranker-timeouts", no_runbook).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("runbook"), "{}", r.text);
    let r = put_rule(
        &app,
        &s.engineer,
        "reranker-timeouts",
        rule("nobody-wrote-it", &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "runbook");

    let bad: Vec<(&str, Value, &str)> = vec![
        ("Bad Name", rule("retrieval-degraded", &[]), "name"),
        (
            "r",
            {
                let mut v = rule("retrieval-degraded", &[]);
                v["threshold"] = json!(1.5);
                v
            },
            "threshold",
        ),
        (
            "r",
            {
                let mut v = rule("retrieval-degraded", &[]);
                v["window_s"] = json!(10);
                v
            },
            "window_s",
        ),
        (
            "r",
            {
                let mut v = rule("retrieval-degraded", &[]);
                v["for_s"] = json!(100_000);
                v
            },
            "for_s",
        ),
        (
            "r",
            {
                let mut v = rule("retrieval-degraded", &[]);
                v["metric"] = json!("dlq_depth");
                v["threshold"] = json!(5);
                v
            },
            "scope.dependency",
        ),
        ("r", rule("retrieval-degraded", &["wh-nope"]), "notify[0]"),
        (
            "r",
            {
                let mut v = rule("retrieval-degraded", &[]);
                v["metric"] = json!("vibes");
                v
            },
            "metric",
        ),
    ];
    for (name, body, field) in bad {
        let r = put_rule(&app, &s.engineer, name, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.body["error"]["field"], field, "{body}: {}", r.text);
    }

    let r = put_rule(
        &app,
        &s.engineer,
        "reranker-timeouts",
        rule("retrieval-degraded", &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["builtin"], false);
    assert_eq!(r.body["updated_by"], "user:erin");
    let mut changed = rule("retrieval-degraded", &[]);
    changed["threshold"] = json!(0.3);
    let r = put_rule(&app, &s.engineer, "reranker-timeouts", changed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["threshold"], 0.3);
    let r = app
        .call(
            Method::DELETE,
            &shared::paths::alert_rule("reranker-timeouts"),
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .call(
            Method::GET,
            &shared::paths::alert_rule("reranker-timeouts"),
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn the_builtin_pack_is_there_from_the_start(app: TestApp) {
    let viewer = app.login_as("vic", Role::Viewer).await;
    let r = app
        .call(Method::GET, shared::paths::ALERT_RULES, None, Some(&viewer))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let rules = r.body.as_array().unwrap();
    let metrics: std::collections::BTreeSet<&str> = rules
        .iter()
        .map(|r| r["metric"].as_str().unwrap())
        .collect();
    for m in [
        "breaker_open",
        "fallback_rate",
        "degraded_rate",
        "dlq_growth",
        "dlq_oldest_age",
        "retry_amplification",
        "shed_rate",
        "cost_budget",
        "timeout_rate",
        "repair_rate",
    ] {
        assert!(metrics.contains(m), "{m} missing from the pack");
    }
    for rule in rules {
        assert_eq!(rule["builtin"], true);
        let r = app
            .call(
                Method::GET,
                &shared::paths::runbook(rule["runbook"].as_str().unwrap()),
                None,
                Some(&viewer),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}'s runbook", rule["name"]);
    }
}

async fn known_telemetry_fires_and_resolves_an_alert(app: TestApp) {
    let s = setup(&app).await;
    let r = put_rule(
        &app,
        &s.engineer,
        "reranker-timeouts",
        rule("retrieval-degraded", &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // Too few calls to judge a rate: nothing opens.
    report(&app, &s, 1, 5, 5).await;
    let e = evaluate(&app.state, app.clock.now_ms_for_tests())
        .await
        .unwrap();
    assert_eq!(e.opened, 0);

    app.clock.advance_ms(180_000);
    report(&app, &s, 2, 100, 40).await;
    let start = app.clock.now_ms_for_tests();
    let e = evaluate(&app.state, start).await.unwrap();
    // This rule, and the built-in `timeout-rate-high` on the same signal.
    assert_eq!((e.opened, e.fired), (2, 0));
    // Evaluating again changes nothing.
    let e = evaluate(&app.state, start).await.unwrap();
    assert_eq!((e.opened, e.fired, e.resolved), (0, 0, 0));
    // Not yet held for 60 s.
    app.clock.advance_ms(59_000);
    let e = evaluate(&app.state, app.clock.now_ms_for_tests())
        .await
        .unwrap();
    assert_eq!(e.fired, 0);
    app.clock.advance_ms(1_000);
    let e = evaluate(&app.state, app.clock.now_ms_for_tests())
        .await
        .unwrap();
    assert_eq!(e.fired, 1);
    let a = alerts(&app, &s.engineer).await;
    assert_eq!(a.len(), 1);
    let alert = &a[0];
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["value"], 0.4);
    assert_eq!(alert["threshold"], 0.2);
    assert_eq!(alert["dependency"], "reranker");
    assert_eq!(alert["service"], "rag-answer");
    assert_eq!(alert["runbook"], "retrieval-degraded");
    assert_eq!(alert["severity"], "page");
    assert_eq!(alert["started_at_ms"], start);
    assert_eq!(alert["fired_at_ms"], start + 60_000);
    assert!(
        alert["summary"].as_str().unwrap().contains("40.0%"),
        "{alert}"
    );
    // The built-in timeout rule watches the same signal, with its own
    // 2-minute hold: pending, not firing.
    let r = app
        .call(
            Method::GET,
            &format!("{}?state=pending", shared::paths::ALERTS),
            None,
            Some(&s.engineer),
        )
        .await;
    assert!(
        r.body
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "timeout-rate-high"),
        "{}",
        r.text
    );

    app.clock.advance_ms(180_000);
    report(&app, &s, 3, 100, 0).await;
    let e = evaluate(&app.state, app.clock.now_ms_for_tests())
        .await
        .unwrap();
    // This rule's 2-minute window has left the outage behind: resolved. The
    // built-in rule looks back 5 minutes, still sees it, and has now held
    // it past its 2 minutes: it fires.
    assert_eq!((e.resolved, e.fired), (1, 1));
    let a = alerts(&app, &s.engineer).await;
    assert_eq!(a[0]["state"], "resolved");
    assert_eq!(a[0]["resolved_at_ms"], app.clock.now_ms_for_tests());
    let r = app
        .call(
            Method::GET,
            &format!("{}?state=pending", shared::paths::ALERTS),
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.body, json!([]), "{}", r.text);
}

async fn a_receiver_that_is_down_gets_everything_once_it_is_back(app: TestApp) {
    let s = setup(&app).await;
    // Down for its first six calls: enough to open the webhook's breaker
    // (five in a row) and to fail once more after it half-opens.
    let (rx, url) = Receiver::start(6).await;
    let hook = webhook(&app, &s, &url).await;
    let r = put_rule(
        &app,
        &s.engineer,
        "reranker-timeouts",
        rule("retrieval-degraded", &[&hook]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let alert = outage(&app, &s).await;
    recovery(&app, &s).await;

    let mut rounds = 0;
    loop {
        notify::deliver_due(&app.state).await.unwrap();
        let r = app
            .call(
                Method::GET,
                &format!("{}?alert={alert}", shared::paths::NOTIFICATIONS),
                None,
                Some(&s.engineer),
            )
            .await;
        let list = r.body.as_array().unwrap();
        assert_eq!(list.len(), 2, "{}", r.text);
        if list.iter().all(|n| n["status"] == "delivered") {
            break;
        }
        assert!(list.iter().all(|n| n["status"] != "failed"), "{}", r.text);
        rounds += 1;
        assert!(rounds < 30, "not delivered: {}", r.text);
        // Past the longest backoff and the longest the breaker stays open.
        app.clock.advance_ms(notify::BREAKER_MAX_OPEN_MS);
    }
    let calls = rx.calls.lock().unwrap().len();
    assert_eq!(calls, 8, "six failures, then one delivery of each");
    let delivered = rx.delivered();
    let events: Vec<&str> = delivered
        .iter()
        .map(|(_, b)| b["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"firing") && events.contains(&"resolved"),
        "{events:?}"
    );
    let ids: std::collections::HashSet<&str> = delivered
        .iter()
        .map(|(h, _)| h["x-ballast-delivery"].to_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    for ((headers, body), (_, raw)) in delivered.iter().zip(rx.delivered_raw()) {
        let ts: i64 = headers["x-ballast-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            headers["x-ballast-signature"].to_str().unwrap(),
            notify::signature(SECRET, ts, raw.as_bytes()),
            "signed with the webhook's secret"
        );
        assert_eq!(body["alert"]["rule"], "reranker-timeouts");
        assert_eq!(body["runbook_path"], "/runbooks/retrieval-degraded");
    }
    // The breaker opened on the way, and closed on the first success.
    let r = app
        .call(Method::GET, shared::paths::WEBHOOKS, None, Some(&s.admin))
        .await;
    assert_eq!(r.body[0]["consecutive_failures"], 0, "{}", r.text);
    assert_eq!(r.body[0]["pending"], 0);
    assert!(r.body[0].get("secret").is_none());
}

async fn two_replicas_evaluating_the_same_rules_notify_once(app: TestApp) {
    let s = setup(&app).await;
    let (rx, url) = Receiver::start(0).await;
    let hook = webhook(&app, &s, &url).await;
    let r = put_rule(
        &app,
        &s.engineer,
        "reranker-timeouts",
        rule("retrieval-degraded", &[&hook]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let other = app.replica().await;

    report(&app, &s, 1, 100, 40).await;
    for _ in 0..3 {
        let now = app.clock.now_ms_for_tests();
        let (a, b) = tokio::join!(evaluate(&app.state, now), evaluate(&other.state, now));
        a.unwrap();
        b.unwrap();
        app.clock.advance_ms(30_000);
    }
    app.clock.advance_ms(180_000);
    report(&app, &s, 2, 100, 0).await;
    for _ in 0..3 {
        let now = app.clock.now_ms_for_tests();
        let (a, b) = tokio::join!(evaluate(&app.state, now), evaluate(&other.state, now));
        a.unwrap();
        b.unwrap();
    }
    let a = alerts(&app, &s.engineer).await;
    assert_eq!(a.len(), 1, "one alert, not one per replica: {a:?}");
    assert_eq!(a[0]["state"], "resolved");

    // Both replicas deliver at once; each notification goes out once.
    for _ in 0..3 {
        let (a, b) = tokio::join!(
            notify::deliver_due(&app.state),
            notify::deliver_due(&other.state)
        );
        a.unwrap();
        b.unwrap();
    }
    let delivered = rx.delivered();
    let mut events: Vec<String> = delivered
        .iter()
        .map(|(_, b)| b["event"].as_str().unwrap().to_owned())
        .collect();
    events.sort();
    assert_eq!(events, ["firing", "resolved"]);
}

async fn silences_hold_notifications_and_acknowledgements_are_recorded(app: TestApp) {
    let s = setup(&app).await;
    let april = app.login_as("april", Role::Approver).await;
    let (rx, url) = Receiver::start(0).await;
    let hook = webhook(&app, &s, &url).await;
    let r = put_rule(
        &app,
        &s.engineer,
        "reranker-timeouts",
        rule("retrieval-degraded", &[&hook]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // Silences are checked.
    for (body, field) in [
        (json!({ "duration_s": 600, "reason": "r" }), "rule"),
        (
            json!({ "rule": "reranker-timeouts", "duration_s": 0, "reason": "r" }),
            "duration_s",
        ),
        (
            json!({ "rule": "reranker-timeouts", "duration_s": 600, "reason": " " }),
            "reason",
        ),
        (
            json!({ "rule": "no-such-rule", "duration_s": 600, "reason": "r" }),
            "rule",
        ),
    ] {
        let r = app
            .call(
                Method::POST,
                shared::paths::SILENCES,
                Some(body.clone()),
                Some(&april),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.body["error"]["field"], field, "{body}: {}", r.text);
    }
    let r = app
        .call(
            Method::POST,
            shared::paths::SILENCES,
            Some(
                json!({ "rule": "reranker-timeouts", "service": "rag-answer",
                         "duration_s": 3600, "reason": "known reranker upgrade" }),
            ),
            Some(&april),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let silence = r.body["id"].as_str().unwrap().to_owned();

    let alert = outage(&app, &s).await;
    let a = alerts(&app, &s.engineer).await;
    assert_eq!(a[0]["silenced_by"], silence.as_str());
    notify::deliver_due(&app.state).await.unwrap();
    assert!(
        rx.delivered().is_empty(),
        "a silenced alert notifies nobody"
    );

    // Acknowledged once, by an on-call approver; the second time is a 409.
    let r = app
        .call(
            Method::POST,
            &shared::paths::acknowledge_alert(&alert),
            None,
            Some(&april),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["acknowledged_by"], "user:april");
    assert_eq!(r.body["acknowledged_at_ms"], app.clock.now_ms_for_tests());
    let r = app
        .call(
            Method::POST,
            &shared::paths::acknowledge_alert(&alert),
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Ending the silence lets the next notification through.
    let r = app
        .call(
            Method::POST,
            &shared::paths::end_silence(&silence),
            None,
            Some(&april),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .call(
            Method::POST,
            &shared::paths::end_silence(&silence),
            None,
            Some(&april),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    recovery(&app, &s).await;
    notify::deliver_due(&app.state).await.unwrap();
    let events: Vec<String> = rx
        .delivered()
        .iter()
        .map(|(_, b)| b["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["resolved"]);

    // The audit log has the silence and the acknowledgement.
    let r = app
        .call(Method::GET, shared::paths::AUDIT, None, Some(&s.admin))
        .await;
    let actions: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "silence.create",
        "silence.end",
        "alert.acknowledge",
        "alert_rule.put",
        "webhook.create",
    ] {
        assert!(actions.contains(&a), "{a} not audited");
    }
}

async fn every_endpoint_checks_its_caller(app: TestApp) {
    let s = setup(&app).await;
    let viewer = app.login_as("vic", Role::Viewer).await;
    let approver = app.login_as("april", Role::Approver).await;
    let (_rx, url) = Receiver::start(0).await;
    let hook = webhook(&app, &s, &url).await;
    let r = put_rule(
        &app,
        &s.engineer,
        "reranker-timeouts",
        rule("retrieval-degraded", &[]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let alert = outage(&app, &s).await;
    let r = app
        .call(
            Method::POST,
            shared::paths::SILENCES,
            Some(json!({ "service": "rag-answer", "duration_s": 60, "reason": "r" })),
            Some(&s.engineer),
        )
        .await;
    let silence = r.body["id"].as_str().unwrap().to_owned();

    // (method, path, body, may: viewer, engineer, approver, admin)
    let rows: Vec<(Method, String, Option<Value>, [bool; 4])> = vec![
        (
            Method::GET,
            shared::paths::ALERT_RULES.into(),
            None,
            [true; 4],
        ),
        (
            Method::GET,
            shared::paths::alert_rule("reranker-timeouts"),
            None,
            [true; 4],
        ),
        (
            Method::PUT,
            shared::paths::alert_rule("reranker-timeouts"),
            Some(rule("retrieval-degraded", &[])),
            [false, true, false, true],
        ),
        (Method::GET, shared::paths::ALERTS.into(), None, [true; 4]),
        (Method::GET, shared::paths::alert(&alert), None, [true; 4]),
        (
            Method::POST,
            shared::paths::acknowledge_alert(&alert),
            None,
            [false, true, true, true],
        ),
        (Method::GET, shared::paths::SILENCES.into(), None, [true; 4]),
        (
            Method::POST,
            shared::paths::SILENCES.into(),
            Some(json!({ "service": "rag-answer", "duration_s": 60, "reason": "r" })),
            [false, true, true, true],
        ),
        (
            Method::POST,
            shared::paths::end_silence(&silence),
            None,
            [false, true, true, true],
        ),
        (
            Method::GET,
            shared::paths::WEBHOOKS.into(),
            None,
            [false, false, false, true],
        ),
        (
            Method::POST,
            shared::paths::WEBHOOKS.into(),
            Some(json!({ "name": "x", "url": url, "secret": SECRET })),
            [false, false, false, true],
        ),
        (
            Method::GET,
            shared::paths::NOTIFICATIONS.into(),
            None,
            [true; 4],
        ),
        (
            Method::DELETE,
            shared::paths::webhook(&hook),
            None,
            [false, false, false, true],
        ),
        (
            Method::DELETE,
            shared::paths::alert_rule("reranker-timeouts"),
            None,
            [false, true, false, true],
        ),
    ];
    for (method, path, body, may) in rows {
        for token in [None, Some(s.agent.as_str())] {
            let r = app.call(method.clone(), &path, body.clone(), token).await;
            assert!(
                r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::FORBIDDEN,
                "{method} {path} with {token:?}: {}",
                r.status
            );
        }
        for (who, allowed) in [
            (&viewer, may[0]),
            (&approver, may[2]),
            (&s.engineer, may[1]),
            (&s.admin, may[3]),
        ] {
            let r = app
                .call(method.clone(), &path, body.clone(), Some(who))
                .await;
            if allowed {
                assert!(
                    r.status.is_success()
                        || r.status == StatusCode::CONFLICT
                        || r.status == StatusCode::NOT_FOUND,
                    "{method} {path}: {} {}",
                    r.status,
                    r.text
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path}: {}",
                    r.text
                );
            }
        }
    }
}
