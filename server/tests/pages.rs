//! The dashboard's server side: redirects, server-rendered pages and headers.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{NowForTests, PASSWORD, TestApp};
use serde_json::json;
use shared::role::Role;

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().method(Method::GET).uri(path);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    req.body(Body::empty()).unwrap()
}

async fn session_cookie(app: &TestApp, username: &str, role: Role) -> String {
    app.user(username, role).await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({ "username": username, "password": PASSWORD })),
            None,
        )
        .await;
    r.headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn pages_need_a_session_and_render_on_the_server() {
    let app = TestApp::sqlite().await;
    let r = app.send(get("/", None)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers.get(header::LOCATION).unwrap(), "/login");

    let r = app.send(get("/login", None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("data-test=\"login-form\""), "{}", r.text);
    assert!(
        r.text.contains("/pkg/ballast.js"),
        "hydration script is linked"
    );
    assert!(
        !r.text.contains("data-hydrated"),
        "the server never claims hydration"
    );
    for h in [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "x-request-id",
    ] {
        assert!(r.headers.get(h).is_some(), "{h} missing");
    }

    let cookie = session_cookie(&app, "erin", Role::Engineer).await;
    let r = app.send(get("/", Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("erin"), "the layout shows who is signed in");
    assert!(r.text.contains("data-test=\"nav-overview\""));
    assert!(
        !r.text.contains("data-test=\"nav-users\""),
        "engineers do not see user admin"
    );
    assert_eq!(r.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");

    let r = app.send(get("/login", Some(&cookie))).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "signed-in users skip the login page"
    );

    let admin = session_cookie(&app, "ada", Role::Admin).await;
    let r = app.send(get("/", Some(&admin))).await;
    assert!(
        r.text.contains("data-test=\"nav-users\""),
        "admins see user admin"
    );
}

/// The overview's first HTML already shows the fleet: readable before the
/// bundle loads (or without JavaScript), and hydration starts from it.
#[tokio::test]
async fn the_overview_renders_the_fleet_on_the_server() {
    let app = TestApp::sqlite().await;
    let cookie = session_cookie(&app, "vic", Role::Viewer).await;
    let r = app.send(get("/", Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text.contains("data-test=\"overview-empty\""),
        "{}",
        r.text
    );

    let admin = app.login_as("ada", Role::Admin).await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/services",
            Some(json!({ "name": "rag-answer", "environment": "prod", "owner": "kp" })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let agent = app.agent_token(&admin, "rag-answer").await;
    let now = app.clock.now_ms_for_tests();
    let r = app
        .call(
            Method::POST,
            "/api/v1/agent/telemetry",
            Some(json!({
                "instance_id": "pod-1", "sequence": 1,
                "window_start_ms": now - 1000, "window_end_ms": now, "policy_version": null,
                "dependencies": { "reranker": {
                    "calls": 10, "successes": 2, "failures": { "unavailable": 8 },
                    "degraded": { "degraded": 8 }, "breaker": "open",
                    "latency_buckets": [0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    "latency_sum_ms": 30
                } }
            })),
            Some(&agent),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = app.send(get("/", Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text
            .contains("data-test=\"service-card-rag-answer-prod\""),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("data-test=\"breaker-rag-answer-prod-reranker\"")
    );
    assert!(!r.text.contains("data-test=\"overview-empty\""));

    let r = app.send(get("/fleet", Some(&cookie))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("data-test=\"nav-fleet\""));
    assert!(r.text.contains("<h1>Fleet</h1>"), "{}", r.text);
}

#[tokio::test]
async fn the_login_form_works_without_javascript() {
    let app = TestApp::sqlite().await;
    app.user("fay", Role::Viewer).await;
    let form = |password: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("username=fay&password={password}")))
            .unwrap()
    };
    let r = app.send(form("nope-nope-nope")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers.get(header::LOCATION).unwrap(),
        "/login?error=invalid"
    );
    let r = app.send(form(PASSWORD)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers.get(header::LOCATION).unwrap(), "/");
    assert!(r.headers.get(header::SET_COOKIE).is_some());
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = TestApp::sqlite().await;
    let r = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/me",
        "/api/v1/users",
        "/api/v1/tokens",
        "/api/v1/audit",
    ] {
        assert!(r.body["paths"][path].is_object(), "{path} missing");
    }
    let docs = app.send(get("/api/v1/docs", None)).await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(docs.text.contains("POST /api/v1/auth/login"));
}
