//! Policy versions and distribution on both databases: immutability, diff,
//! rollback, canaries, four eyes, agent scoping, bad input, ETags, the live
//! stream, the fleet view and (on Postgres) fan-out across replicas.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::TestApp;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use server::policy_hub::canary_bucket;
use shared::policy::{Policy, RiskTier};
use shared::role::Role;
use std::time::Duration;

on_both_backends!(
    a_published_version_is_immutable,
    diff_and_rollback_work,
    canary_selection_is_stable_per_instance_and_promote_reaches_all,
    high_risk_publishes_need_someone_else_to_approve,
    invalid_policies_are_refused_with_paths_and_change_nothing,
    service_tokens_reach_only_their_own_service,
    conditional_gets_answer_304,
    the_stream_sends_the_current_version_then_each_new_one,
    every_change_of_rollout_reaches_an_open_stream,
    the_fleet_view_shows_who_lags,
);

/// The seed's RAG endpoint policy, made medium-risk so that an engineer can
/// publish it alone.
fn rag_policy(tier: RiskTier) -> Policy {
    let mut p =
        Policy::from_yaml(include_str!("../../../examples/policies/rag-answer.yaml")).unwrap();
    p.service.risk_tier = tier;
    p
}

fn doc(p: &Policy) -> Value {
    serde_json::to_value(p).unwrap()
}

struct Setup {
    engineer: String,
    admin: String,
    approver: String,
}

async fn setup(app: &TestApp) -> Setup {
    let s = Setup {
        engineer: app.login_as("erin", Role::Engineer).await,
        admin: app.login_as("ada", Role::Admin).await,
        approver: app.login_as("april", Role::Approver).await,
    };
    let r = app
        .call(
            Method::POST,
            "/api/v1/services",
            Some(json!({ "name": "rag-answer", "environment": "prod", "owner": "knowledge-platform" })),
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    s
}

async fn publish(
    app: &TestApp,
    token: &str,
    policy: &Policy,
    canary: Option<u8>,
) -> common::Response {
    app.call(
        Method::POST,
        "/api/v1/services/rag-answer/prod/publish",
        Some(
            json!({ "message": "test publish", "document": doc(policy), "canary_percent": canary }),
        ),
        Some(token),
    )
    .await
}

async fn a_published_version_is_immutable(app: TestApp) {
    let s = setup(&app).await;
    let v1 = rag_policy(RiskTier::Medium);
    let r = publish(&app, &s.engineer, &v1, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"], "published");
    assert_eq!(r.body["version"], 1);
    let before = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/versions/1",
            None,
            Some(&s.engineer),
        )
        .await;

    let mut v2 = v1.clone();
    v2.service.owner = "search-team".into();
    assert_eq!(
        publish(&app, &s.engineer, &v2, None).await.body["version"],
        2
    );

    let after = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/versions/1",
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(before.body, after.body, "publishing v2 changed v1");
    assert_eq!(
        after.body["policy"]["service"]["owner"],
        "knowledge-platform"
    );

    // The database itself refuses to change a version.
    let attempt = std::panic::AssertUnwindSafe(
        app.raw_sql("UPDATE policy_versions SET message = 'x' WHERE version = 1"),
    );
    assert!(
        futures_util::FutureExt::catch_unwind(attempt)
            .await
            .is_err()
    );
    let attempt = std::panic::AssertUnwindSafe(app.raw_sql("DELETE FROM policy_versions"));
    assert!(
        futures_util::FutureExt::catch_unwind(attempt)
            .await
            .is_err()
    );

    let list = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/versions",
            None,
            Some(&s.engineer),
        )
        .await;
    let versions: Vec<i64> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);
    let svc = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod",
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(svc.body["rollout"]["active_version"], 2);
    // The list carries each rollout, and an unpublished service has none.
    app.call(
        Method::POST,
        "/api/v1/services",
        Some(json!({ "name": "zeta", "environment": "prod", "owner": "x" })),
        Some(&s.engineer),
    )
    .await;
    let all = app
        .call(Method::GET, "/api/v1/services", None, Some(&s.engineer))
        .await;
    assert_eq!(all.body[1]["name"], "zeta");
    assert_eq!(all.body[1]["rollout"]["active_version"], Value::Null);
    assert_eq!(all.body[0]["name"], "rag-answer");
    assert_eq!(all.body[0]["rollout"]["active_version"], 2);
    assert_eq!(all.body[0]["rollout"]["canary_version"], Value::Null);
}

async fn diff_and_rollback_work(app: TestApp) {
    let s = setup(&app).await;
    let v1 = rag_policy(RiskTier::Medium);
    publish(&app, &s.engineer, &v1, None).await;
    let mut v2 = v1.clone();
    if let Some(r) = v2.retry.get_mut("reranker") {
        r.max_attempts = 1;
    }
    v2.service.owner = "search-team".into();
    publish(&app, &s.engineer, &v2, None).await;

    let d = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/diff?from=1&to=2",
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    let paths: Vec<&str> = d.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"service.owner"), "{paths:?}");
    let owner = d.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "service.owner")
        .unwrap();
    assert_eq!(owner["old"], "knowledge-platform");
    assert_eq!(owner["new"], "search-team");

    let r = app
        .call(
            Method::POST,
            "/api/v1/services/rag-answer/prod/rollback",
            Some(json!({ "to_version": 1, "message": "owner change was wrong" })),
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["version"], 3);
    let d = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/diff?from=1&to=3",
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(d.body["changes"], json!([]), "v3 restores v1's content");
    let v3 = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/versions/3",
            None,
            Some(&s.engineer),
        )
        .await;
    let v1r = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/versions/1",
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(v3.body["etag"], v1r.body["etag"]);
    assert!(
        v3.body["message"]
            .as_str()
            .unwrap()
            .starts_with("rollback to version 1")
    );

    let r = app
        .call(
            Method::POST,
            "/api/v1/services/rag-answer/prod/rollback",
            Some(json!({ "to_version": 99, "message": "x" })),
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "to_version");
}

async fn get_policy(app: &TestApp, token: &str, instance: &str) -> common::Response {
    app.call(
        Method::GET,
        &format!("/api/v1/agent/policy?instance_id={instance}"),
        None,
        Some(token),
    )
    .await
}

async fn canary_selection_is_stable_per_instance_and_promote_reaches_all(app: TestApp) {
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    let v1 = rag_policy(RiskTier::Medium);
    publish(&app, &s.engineer, &v1, None).await;
    let mut v2 = v1.clone();
    v2.service.owner = "search-team".into();
    let r = publish(&app, &s.engineer, &v2, Some(30)).await;
    assert_eq!(r.body["canary"], true, "{}", r.text);

    let mut in_canary = 0;
    for i in 0..40 {
        let id = format!("pod-{i}");
        let expected = if canary_bucket(&id) < 30 { 2 } else { 1 };
        for _ in 0..2 {
            let r = get_policy(&app, &agent, &id).await;
            assert_eq!(r.body["version"], expected, "{id} moved between versions");
        }
        in_canary += usize::from(expected == 2);
    }
    assert!(in_canary > 0 && in_canary < 40, "{in_canary}");

    // Growing the canary only adds instances: nobody already in leaves.
    let r = app
        .call(
            Method::POST,
            "/api/v1/services/rag-answer/prod/rollout",
            Some(json!({ "action": "set_percent", "percent": 60 })),
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.body["canary_percent"], 60, "{}", r.text);
    for i in 0..40 {
        let id = format!("pod-{i}");
        if canary_bucket(&id) < 30 {
            assert_eq!(get_policy(&app, &agent, &id).await.body["version"], 2);
        }
    }

    let r = app
        .call(
            Method::POST,
            "/api/v1/services/rag-answer/prod/rollout",
            Some(json!({ "action": "promote" })),
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.body["active_version"], 2, "{}", r.text);
    for i in 0..40 {
        assert_eq!(
            get_policy(&app, &agent, &format!("pod-{i}")).await.body["version"],
            2
        );
    }
    let r = app
        .call(
            Method::POST,
            "/api/v1/services/rag-answer/prod/rollout",
            Some(json!({ "action": "abort" })),
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "no canary left to abort");

    // Abort: the canary version stops reaching anyone.
    let mut v3 = v2.clone();
    v3.service.owner = "third".into();
    publish(&app, &s.engineer, &v3, Some(50)).await;
    app.call(
        Method::POST,
        "/api/v1/services/rag-answer/prod/rollout",
        Some(json!({ "action": "abort" })),
        Some(&s.engineer),
    )
    .await;
    for i in 0..40 {
        assert_eq!(
            get_policy(&app, &agent, &format!("pod-{i}")).await.body["version"],
            2
        );
    }
}

async fn high_risk_publishes_need_someone_else_to_approve(app: TestApp) {
    let s = setup(&app).await;
    let high = rag_policy(RiskTier::High);
    let r = publish(&app, &s.admin, &high, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["status"], "pending_approval");
    assert!(r.body["reasons"][0].as_str().unwrap().contains("high"));
    let id = r.body["request_id"].as_str().unwrap().to_owned();

    // Nothing is published yet.
    let svc = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod",
            None,
            Some(&s.admin),
        )
        .await;
    assert_eq!(svc.body["rollout"]["active_version"], Value::Null);

    // The author may not approve their own request, even as an admin.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/publish-requests/{id}/approve"),
            None,
            Some(&s.admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // An engineer is not an approver.
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/publish-requests/{id}/approve"),
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let pending = app
        .call(
            Method::GET,
            "/api/v1/publish-requests?status=pending",
            None,
            Some(&s.approver),
        )
        .await;
    assert_eq!(pending.body.as_array().unwrap().len(), 1);

    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/publish-requests/{id}/approve"),
            Some(json!({ "comment": "looks right" })),
            Some(&s.approver),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "approved");
    assert_eq!(r.body["version"], 1);
    let v = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/versions/1",
            None,
            Some(&s.approver),
        )
        .await;
    assert_eq!(v.body["approver"], "user:april");
    assert_eq!(v.body["author"], "user:ada");
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/publish-requests/{id}/approve"),
            None,
            Some(&s.approver),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "decided once");

    // Loosening an invariant needs approval even at low risk.
    let case = Policy::from_yaml(include_str!(
        "../../../examples/policies/case-review-agent.yaml"
    ))
    .unwrap();
    let mut low = case.clone();
    low.service.name = "rag-answer".into();
    low.service.risk_tier = RiskTier::Low;
    let mut looser = low.clone();
    looser.invariants.as_mut().unwrap().must_fail_closed.pop();
    // Start from the stricter version (it needs approval itself: it lowers the tier).
    let r = publish(&app, &s.engineer, &low, None).await;
    let id = r.body["request_id"].as_str().unwrap().to_owned();
    app.call(
        Method::POST,
        &format!("/api/v1/publish-requests/{id}/approve"),
        None,
        Some(&s.approver),
    )
    .await;
    let r = publish(&app, &s.engineer, &looser, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(
        r.body["reasons"].to_string().contains("invariant"),
        "{}",
        r.text
    );
    let id = r.body["request_id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/publish-requests/{id}/reject"),
            None,
            Some(&s.approver),
        )
        .await;
    assert_eq!(r.body["status"], "rejected");

    let log = app
        .call(Method::GET, "/api/v1/audit?limit=50", None, Some(&s.admin))
        .await;
    let actions: Vec<&str> = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for needed in [
        "policy.publish_requested",
        "policy.publish_approved",
        "policy.publish_rejected",
        "service.create",
    ] {
        assert!(
            actions.contains(&needed),
            "{needed} not audited: {actions:?}"
        );
    }
}

async fn invalid_policies_are_refused_with_paths_and_change_nothing(app: TestApp) {
    let s = setup(&app).await;
    let good = rag_policy(RiskTier::Medium);
    publish(&app, &s.engineer, &good, None).await;
    let before = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/versions/1",
            None,
            Some(&s.engineer),
        )
        .await;

    let put = |body: String, ct: &'static str| {
        Request::builder()
            .method(Method::PUT)
            .uri("/api/v1/services/rag-answer/prod/draft")
            .header(header::AUTHORIZATION, format!("Bearer {}", s.engineer))
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body))
            .unwrap()
    };
    // A wrong type, deep inside.
    let mut wrong = doc(&good);
    wrong["retry"]["reranker"]["max_attempts"] = json!("three");
    let r = app.send(put(wrong.to_string(), "application/json")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "retry.reranker.max_attempts");
    // An unknown field, named with its path.
    let mut unknown = doc(&good);
    unknown["retry"]["reranker"]["max_atempts"] = json!(3);
    let r = app.send(put(unknown.to_string(), "application/json")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body["error"]["field"]
            .as_str()
            .unwrap()
            .starts_with("retry.reranker"),
        "{}",
        r.text
    );
    assert!(r.text.contains("max_atempts"));
    // YAML works too, with the same paths.
    let yaml = include_str!("../../../examples/policies/rag-answer.yaml")
        .replace("risk_tier: high", "risk_tier: banana");
    let r = app.send(put(yaml, "application/yaml")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "service.risk_tier");
    // 5 MB.
    let r = app
        .send(put(
            format!("{{\"x\": \"{}\"}}", "a".repeat(5 * 1024 * 1024)),
            "application/json",
        ))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.status);
    // Deep nesting.
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let r = app.send(put(deep, "application/json")).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(r.body["error"]["code"].is_string(), "{}", r.text);
    // Valid JSON, invalid policy: the publish is refused with every finding.
    let mut bad = good.clone();
    let timeouts = bad.timeouts.as_mut().unwrap();
    timeouts.total_ms = 10;
    let r = publish(&app, &s.engineer, &bad, None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "policy_invalid");
    assert!(
        r.body["error"]["field"]
            .as_str()
            .unwrap()
            .starts_with("timeouts"),
        "{}",
        r.text
    );
    let findings = r.body["error"]["details"]["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == "stage_budgets_exceed_total"),
        "{}",
        r.text
    );
    // A document for another service.
    let mut other = good.clone();
    other.service.name = "other".into();
    let r = publish(&app, &s.engineer, &other, None).await;
    assert_eq!(r.body["error"]["field"], "service.name");

    let after = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/versions/1",
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(before.body, after.body);
    let list = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/versions",
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(
        list.body.as_array().unwrap().len(),
        1,
        "no bad input became a version"
    );
}

async fn service_tokens_reach_only_their_own_service(app: TestApp) {
    let s = setup(&app).await;
    app.call(
        Method::POST,
        "/api/v1/services",
        Some(json!({ "name": "billing", "environment": "prod", "owner": "x" })),
        Some(&s.engineer),
    )
    .await;
    publish(&app, &s.engineer, &rag_policy(RiskTier::Medium), None).await;
    let billing = app.agent_token(&s.admin, "billing").await;
    let rag = app.agent_token(&s.admin, "rag-answer").await;

    // The token names its service: billing's token gets billing's (absent) policy, never rag's.
    let r = get_policy(&app, &billing, "pod-1").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["code"], "no_policy");
    assert_eq!(
        get_policy(&app, &rag, "pod-1").await.body["service"],
        "rag-answer"
    );
    // Service tokens cannot use the user API to reach another service's policy.
    for path in [
        "/api/v1/services/rag-answer/prod/draft",
        "/api/v1/services/rag-answer/prod/versions/1",
        "/api/v1/services",
    ] {
        let r = app.call(Method::GET, path, None, Some(&billing)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Once billing has a policy, its token streams billing's, never rag's.
    let mut billing_policy = rag_policy(RiskTier::Medium);
    billing_policy.service.name = "billing".into();
    let r = app
        .call(
            Method::POST,
            "/api/v1/services/billing/prod/publish",
            Some(json!({ "message": "first", "document": doc(&billing_policy) })),
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut body = open_stream(&app, &billing, "pod-1").await;
    let first = common::next_sse_event(&mut body, &mut String::new(), "policy").await;
    assert_eq!(first["service"], "billing");
    // A token for a service that was never registered has nothing to stream.
    let ghost = app.agent_token(&s.admin, "ghost").await;
    let r = app
        .call(
            Method::GET,
            "/api/v1/agent/stream?instance_id=pod-1",
            None,
            Some(&ghost),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Users cannot speak the agent protocol, whatever their role.
    for token in [&s.engineer, &s.admin, &s.approver] {
        let r = get_policy(&app, token, "pod-1").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app
            .call(
                Method::GET,
                "/api/v1/agent/stream?instance_id=pod-1",
                None,
                Some(token),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let r = app
        .call(
            Method::GET,
            "/api/v1/agent/policy?instance_id=pod-1",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .call(Method::GET, "/api/v1/agent/policy", None, Some(&rag))
        .await;
    assert_eq!(r.body["error"]["field"], "instance_id");
}

async fn conditional_gets_answer_304(app: TestApp) {
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    publish(&app, &s.engineer, &rag_policy(RiskTier::Medium), None).await;
    let r = get_policy(&app, &agent, "pod-1").await;
    let etag = r
        .headers
        .get(header::ETAG)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(etag, format!("\"{}\"", r.body["etag"].as_str().unwrap()));
    let conditional = |tag: String| {
        Request::builder()
            .uri("/api/v1/agent/policy?instance_id=pod-1")
            .header(header::AUTHORIZATION, format!("Bearer {agent}"))
            .header(header::IF_NONE_MATCH, tag)
            .body(Body::empty())
            .unwrap()
    };
    let r = app.send(conditional(etag.clone())).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.text.is_empty());
    let r = app.send(conditional("\"stale\"".into())).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut v2 = rag_policy(RiskTier::Medium);
    v2.service.owner = "new-owner".into();
    publish(&app, &s.engineer, &v2, None).await;
    let r = app.send(conditional(etag)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a new version invalidates the old ETag"
    );
    assert_eq!(r.body["version"], 2);
}

async fn open_stream(app: &TestApp, token: &str, instance: &str) -> Body {
    let response = tower::ServiceExt::oneshot(
        app.router.clone(),
        Request::builder()
            .uri(format!("/api/v1/agent/stream?instance_id={instance}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
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
    response.into_body()
}

async fn the_stream_sends_the_current_version_then_each_new_one(app: TestApp) {
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    publish(&app, &s.engineer, &rag_policy(RiskTier::Medium), None).await;
    let mut body = open_stream(&app, &agent, "pod-7").await;
    let mut buffer = String::new();
    let first = common::next_sse_event(&mut body, &mut buffer, "policy").await;
    assert_eq!(first["version"], 1);
    assert_eq!(first["policy"]["service"]["name"], "rag-answer");

    let mut v2 = rag_policy(RiskTier::Medium);
    v2.service.owner = "new-owner".into();
    publish(&app, &s.engineer, &v2, None).await;
    let second = common::next_sse_event(&mut body, &mut buffer, "policy").await;
    assert_eq!(second["version"], 2);
    assert_eq!(second["policy"]["service"]["owner"], "new-owner");

    app.call(
        Method::POST,
        "/api/v1/services/rag-answer/prod/rollback",
        Some(json!({ "to_version": 1, "message": "back" })),
        Some(&s.engineer),
    )
    .await;
    assert_eq!(
        common::next_sse_event(&mut body, &mut buffer, "policy").await["version"],
        3
    );

    // Shutting down ends the stream, so graceful shutdown is not held up by
    // agents and they reconnect to another replica.
    app.state.shutdown.send_replace(true);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream did not end on shutdown");
}

/// Each workflow that changes what an instance should run (a publish, a
/// canary step, an approval) tells the open streams itself: none relies on
/// its HTTP handler to remember.
async fn every_change_of_rollout_reaches_an_open_stream(app: TestApp) {
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    // An instance in the lower half of the buckets: inside a 50 % canary,
    // outside one that shrinks to its own bucket.
    let instance = (0..)
        .map(|i| format!("pod-{i}"))
        .find(|id| (1..50).contains(&canary_bucket(id)))
        .unwrap();
    let v1 = rag_policy(RiskTier::Medium);
    publish(&app, &s.engineer, &v1, None).await;
    let mut body = open_stream(&app, &agent, &instance).await;
    let mut buffer = String::new();
    let mut next_version =
        async || common::next_sse_event(&mut body, &mut buffer, "policy").await["version"].clone();
    assert_eq!(next_version().await, 1);

    let mut v2 = v1.clone();
    v2.service.owner = "search-team".into();
    let r = publish(&app, &s.engineer, &v2, Some(50)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(next_version().await, 2, "a canary publish");

    let rollout = async |action: Value| {
        let r = app
            .call(
                Method::POST,
                "/api/v1/services/rag-answer/prod/rollout",
                Some(action),
                Some(&s.engineer),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    };
    rollout(json!({ "action": "set_percent", "percent": canary_bucket(&instance) })).await;
    assert_eq!(next_version().await, 1, "a canary shrunk past the instance");
    rollout(json!({ "action": "promote" })).await;
    assert_eq!(next_version().await, 2, "a promotion");

    let r = publish(&app, &s.engineer, &rag_policy(RiskTier::High), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["request_id"].as_str().unwrap();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/publish-requests/{id}/approve"),
            None,
            Some(&s.approver),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(next_version().await, 3, "an approved request");
}

async fn the_fleet_view_shows_who_lags(app: TestApp) {
    let s = setup(&app).await;
    let agent = app.agent_token(&s.admin, "rag-answer").await;
    publish(&app, &s.engineer, &rag_policy(RiskTier::Medium), None).await;
    let beat = |instance: &str, version: Option<u64>| {
        json!({ "instance_id": instance, "agent_version": "0.1.0", "policy_version": version,
                "policy_source": "server", "started_at_ms": common::T0_MS })
    };
    let r = app
        .call(
            Method::POST,
            "/api/v1/agent/heartbeat",
            Some(beat("pod-a", Some(1))),
            Some(&agent),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["desired_version"], 1);
    let mut v2 = rag_policy(RiskTier::Medium);
    v2.service.owner = "new-owner".into();
    publish(&app, &s.engineer, &v2, None).await;
    app.call(
        Method::POST,
        "/api/v1/agent/heartbeat",
        Some(beat("pod-b", Some(2))),
        Some(&agent),
    )
    .await;
    app.clock.advance_ms(20_000);
    app.call(
        Method::POST,
        "/api/v1/agent/heartbeat",
        Some(beat("pod-b", Some(2))),
        Some(&agent),
    )
    .await;

    let r = app
        .call(
            Method::GET,
            "/api/v1/services/rag-answer/prod/instances",
            None,
            Some(&s.engineer),
        )
        .await;
    let fleet = r.body.as_array().unwrap();
    let find = |id: &str| {
        fleet
            .iter()
            .find(|i| i["instance_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(find("pod-a")["lagging"], true);
    assert_eq!(find("pod-a")["desired_version"], 2);
    assert_eq!(find("pod-a")["status"], "stale");
    assert_eq!(find("pod-b")["lagging"], false);
    assert_eq!(find("pod-b")["status"], "up");

    // The fleet page's view: every service's instances, the lagging first.
    app.call(
        Method::POST,
        "/api/v1/services",
        Some(json!({ "name": "billing", "environment": "prod", "owner": "payments" })),
        Some(&s.engineer),
    )
    .await;
    let billing = app.agent_token(&s.admin, "billing").await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/agent/heartbeat",
            Some(beat("pay-1", None)),
            Some(&billing),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let viewer = app.login_as("vera", Role::Viewer).await;
    let r = app
        .call(Method::GET, "/api/v1/fleet/instances", None, Some(&viewer))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rows: Vec<(String, String, bool)> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["service"].as_str().unwrap().to_owned(),
                i["instance_id"].as_str().unwrap().to_owned(),
                i["lagging"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("rag-answer".to_owned(), "pod-a".to_owned(), true),
            ("billing".to_owned(), "pay-1".to_owned(), false),
            ("rag-answer".to_owned(), "pod-b".to_owned(), false),
        ]
    );
    // A service without a policy has nothing to lag behind.
    assert_eq!(r.body[1]["desired_version"], Value::Null);
    // Service tokens never read the fleet; nobody does anonymously.
    let r = app
        .call(Method::GET, "/api/v1/fleet/instances", None, Some(&agent))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = app
        .call(Method::GET, "/api/v1/fleet/instances", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    let r = app
        .call(
            Method::POST,
            "/api/v1/agent/heartbeat",
            Some(json!({ "instance_id": "" })),
            Some(&agent),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Two replicas (separate pools, hubs and listeners) on one Postgres: a
/// publish on one reaches a stream held on the other.
#[tokio::test]
async fn a_publish_on_one_replica_reaches_streams_on_another() {
    let Some(a) = TestApp::postgres().await else {
        return;
    };
    let b = a.replica().await;
    let s = setup(&a).await;
    let agent = a.agent_token(&s.admin, "rag-answer").await;
    publish(&a, &s.engineer, &rag_policy(RiskTier::Medium), None).await;
    let mut body = open_stream(&b, &agent, "pod-9").await;
    let mut buffer = String::new();
    assert_eq!(
        common::next_sse_event(&mut body, &mut buffer, "policy").await["version"],
        1
    );

    let mut v2 = rag_policy(RiskTier::Medium);
    v2.service.owner = "replica-test".into();
    let started = std::time::Instant::now();
    publish(&a, &s.engineer, &v2, None).await;
    let event = tokio::time::timeout(
        Duration::from_secs(1),
        common::next_sse_event(&mut body, &mut buffer, "policy"),
    )
    .await
    .expect("replica B's stream did not get the publish within 1 s");
    assert_eq!(event["version"], 2);
    eprintln!("cross-replica propagation: {:?}", started.elapsed());
}
