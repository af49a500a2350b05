//! Incident controls on both databases: one request forces a dependency's
//! breaker open across the fleet through the normal publish path (high
//! tiers wait for an approver), with its end time and reason in the
//! document; lifting it, bad input, and who may.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{NowForTests, TestApp};
use serde_json::{Value, json};
use shared::policy::{Policy, RiskTier};
use shared::role::Role;

on_both_backends!(
    a_fleet_wide_override_is_published_per_service_and_lifted,
    override_input_and_callers_are_checked,
);

async fn service(app: &TestApp, engineer: &str, approver: &str, name: &str, policy: Policy) {
    let r = app
        .call(
            Method::POST,
            shared::paths::SERVICES,
            Some(json!({ "name": name, "environment": "prod", "owner": "team" })),
            Some(engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app
        .call(
            Method::POST,
            &shared::paths::service(name, "prod").publish(),
            Some(json!({ "message": "v1", "document": serde_json::to_value(&policy).unwrap() })),
            Some(engineer),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    if r.status == StatusCode::ACCEPTED {
        approve(app, approver, r.body["request_id"].as_str().unwrap()).await;
    }
}

async fn approve(app: &TestApp, approver: &str, id: &str) {
    let r = app
        .call(
            Method::POST,
            &shared::paths::approve_publish(id),
            Some(json!({ "comment": "ok" })),
            Some(approver),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
}

fn example(file: &str, tier: RiskTier) -> Policy {
    let text = match file {
        "rag" => include_str!("../../../examples/policies/rag-answer.yaml"),
        _ => include_str!("../../../examples/policies/case-review-agent.yaml"),
    };
    let mut p = Policy::from_yaml(text).unwrap();
    p.service.risk_tier = tier;
    p
}

async fn breaker(app: &TestApp, token: &str, name: &str, version: u64) -> Value {
    let r = app
        .call(
            Method::GET,
            &shared::paths::service(name, "prod").version(version),
            None,
            Some(token),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["policy"]["breakers"]["model_provider"].clone()
}

struct Fleet {
    engineer: String,
    approver: String,
}

async fn fleet(app: &TestApp) -> Fleet {
    let engineer = app.login_as("erin", Role::Engineer).await;
    let approver = app.login_as("april", Role::Approver).await;
    service(
        app,
        &engineer,
        &approver,
        "rag-answer",
        example("rag", RiskTier::Medium),
    )
    .await;
    service(
        app,
        &engineer,
        &approver,
        "case-review-agent",
        example("case", RiskTier::Regulated),
    )
    .await;
    // A service without a breaker on the model provider.
    let mut plain = Policy::new(example("rag", RiskTier::Low).service);
    plain.service.name = "billing".into();
    plain.service.dependencies.clear();
    plain.service.risk_tier = RiskTier::Low;
    service(app, &engineer, &approver, "billing", plain).await;
    Fleet { engineer, approver }
}

async fn a_fleet_wide_override_is_published_per_service_and_lifted(app: TestApp) {
    let f = fleet(&app).await;
    let now = app.clock.now_ms_for_tests();
    let r = app
        .call(
            Method::POST,
            shared::paths::BREAKER_OVERRIDE,
            Some(
                json!({ "dependency": "model_provider", "state": "open", "duration_s": 1800,
                         "reason": "INC-9: the provider answers 500s" }),
            ),
            Some(&f.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let results = r.body.as_array().unwrap();
    // billing has no such breaker: a fleet-wide override passes it by.
    assert_eq!(results.len(), 2, "{}", r.text);
    let of = |name: &str| {
        results
            .iter()
            .find(|x| x["service"]["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(of("rag-answer")["outcome"], "published");
    assert_eq!(of("rag-answer")["version"], 2);
    let b = breaker(&app, &f.engineer, "rag-answer", 2).await;
    assert_eq!(b["forced"], "open");
    assert_eq!(b["forced_until_ms"], now + 1_800_000);
    assert_eq!(
        b["forced_reason"],
        "INC-9: the provider answers 500s (user:erin)"
    );

    // The regulated service waits for a second person, as any publish does.
    let pending = of("case-review-agent");
    assert_eq!(pending["outcome"], "pending_approval", "{pending}");
    approve(&app, &f.approver, pending["request_id"].as_str().unwrap()).await;
    let b = breaker(&app, &f.engineer, "case-review-agent", 2).await;
    assert_eq!(b["forced"], "open");

    // Named explicitly, billing is reported as skipped.
    let r = app
        .call(
            Method::POST,
            shared::paths::BREAKER_OVERRIDE,
            Some(json!({ "dependency": "model_provider", "state": "closed", "duration_s": 600,
                         "reason": "r", "services": [{ "name": "billing", "environment": "prod" }] })),
            Some(&f.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body[0]["outcome"], "skipped", "{}", r.text);

    // Lifted early, through the same path.
    let r = app
        .call(
            Method::POST,
            shared::paths::BREAKER_OVERRIDE,
            Some(
                json!({ "dependency": "model_provider", "state": "lift", "reason": "INC-9 resolved",
                         "services": [{ "name": "rag-answer", "environment": "prod" }] }),
            ),
            Some(&f.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body[0]["version"], 3, "{}", r.text);
    let b = breaker(&app, &f.engineer, "rag-answer", 3).await;
    assert_eq!(b["forced"], "none");
    assert!(b.get("forced_until_ms").is_none(), "{b}");

    // Each version says why, in the history everyone reads.
    let r = app
        .call(
            Method::GET,
            &shared::paths::service("rag-answer", "prod").versions(),
            None,
            Some(&f.engineer),
        )
        .await;
    let messages = r.text;
    assert!(
        messages.contains("incident: force model_provider's breaker open for 30 min"),
        "{messages}"
    );
    assert!(
        messages.contains("incident: lift the override"),
        "{messages}"
    );
}

async fn override_input_and_callers_are_checked(app: TestApp) {
    let f = fleet(&app).await;
    let viewer = app.login_as("vic", Role::Viewer).await;
    let ok = json!({ "dependency": "model_provider", "state": "open", "duration_s": 600, "reason": "r" });
    for (change, field) in [
        (json!({ "state": "sideways" }), "state"),
        (json!({ "duration_s": 10 }), "duration_s"),
        (json!({ "duration_s": 700_000 }), "duration_s"),
        (json!({ "reason": " " }), "reason"),
        (json!({ "dependency": "" }), "dependency"),
        (json!({ "dependency": "nothing_has_this" }), "dependency"),
        (
            json!({ "services": [{ "name": "ghost", "environment": "prod" }] }),
            "services[0]",
        ),
    ] {
        let mut body = ok.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app
            .call(
                Method::POST,
                shared::paths::BREAKER_OVERRIDE,
                Some(body.clone()),
                Some(&f.engineer),
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
    // Nothing was published by any of those.
    let r = app
        .call(
            Method::GET,
            &shared::paths::service("rag-answer", "prod").versions(),
            None,
            Some(&f.engineer),
        )
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);

    for token in [Some(viewer.as_str()), Some(f.approver.as_str())] {
        let r = app
            .call(
                Method::POST,
                shared::paths::BREAKER_OVERRIDE,
                Some(ok.clone()),
                token,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }
    let r = app
        .call(
            Method::POST,
            shared::paths::BREAKER_OVERRIDE,
            Some(ok.clone()),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
