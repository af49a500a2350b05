//! Long-lived streams re-check whoever opened them: an agent's policy
//! stream ends once its token is revoked, and the dashboard's live feed
//! once its session is signed out or the account disabled, within one
//! re-check interval (shortened here) rather than living on until the
//! connection drops.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{PASSWORD, TestApp};
use http_body_util::BodyExt;
use serde_json::json;
use shared::policy::{Policy, RiskTier};
use shared::role::Role;
use std::time::Duration;

on_both_backends!(
    an_agent_stream_ends_when_its_token_is_revoked,
    the_live_feed_ends_when_its_session_does,
);

/// A shortened re-check, so that the tests wait milliseconds, not 30 s.
fn quick_rechecks(s: &mut server::app::Settings) {
    s.stream_recheck = Duration::from_millis(50);
}

async fn open(app: &TestApp, uri: &str, token: &str) -> Body {
    let response = tower::ServiceExt::oneshot(
        app.router.clone(),
        Request::builder()
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let status = response.status();
    let body = response.into_body();
    if status != StatusCode::OK {
        let text = body.collect().await.unwrap().to_bytes();
        panic!("{status}: {}", String::from_utf8_lossy(&text));
    }
    body
}

/// Reads `body` to its end; fails if it is still open after 10 s, far
/// longer than the 50 ms re-check.
async fn ends(mut body: Body) {
    let drained = async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("the stream was still open 10 s after the revocation");
}

async fn an_agent_stream_ends_when_its_token_is_revoked(app: TestApp) {
    // Shadowed, not dropped: the first app owns the database's directory.
    let app = app.replica_with(quick_rechecks).await;
    let admin = app.login_as("ada", Role::Admin).await;
    let r = app
        .call(
            Method::POST,
            shared::paths::SERVICES,
            Some(json!({ "name": "rag-answer", "environment": "prod", "owner": "team" })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut p = Policy::from_yaml(include_str!("../../../examples/policies/rag-answer.yaml"))
        .expect("the example parses");
    p.service.risk_tier = RiskTier::Medium;
    let r = app
        .call(
            Method::POST,
            &shared::paths::service("rag-answer", "prod").publish(),
            Some(json!({ "message": "v1", "document": p })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app
        .call(
            Method::POST,
            shared::paths::TOKENS,
            Some(json!({ "service": "rag-answer", "environment": "prod" })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let token = r.body["token"].as_str().unwrap().to_owned();
    let id = r.body["info"]["id"].as_str().unwrap().to_owned();

    let mut body = open(&app, "/api/v1/agent/stream?instance_id=pod-1", &token).await;
    let mut buffer = String::new();
    let first = common::next_sse_event(&mut body, &mut buffer, "policy").await;
    assert_eq!(first["version"], 1);

    let r = app
        .call(
            Method::DELETE,
            &format!("{}/{id}", shared::paths::TOKENS),
            None,
            Some(&admin),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    ends(body).await;
}

async fn the_live_feed_ends_when_its_session_does(app: TestApp) {
    // Shadowed, not dropped: the first app owns the database's directory.
    let app = app.replica_with(quick_rechecks).await;
    app.login_as("vic", Role::Viewer).await;
    let session = app.login("vic", PASSWORD).await;
    let mut body = open(&app, shared::paths::LIVE, &session).await;
    let mut buffer = String::new();
    common::next_sse_event(&mut body, &mut buffer, "fleet").await;
    let r = app
        .call(Method::POST, shared::paths::LOGOUT, None, Some(&session))
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    ends(body).await;
}
