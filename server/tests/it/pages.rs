//! The dashboard's server side: redirects, server-rendered pages and headers.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{NowForTests, PASSWORD, TestApp};
use serde_json::json;
use shared::policy::{Policy, RiskTier};
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

on_both_backends!(
    the_overview_shows_each_change_on_the_next_render,
    the_overview_shows_what_the_store_held_before_start,
    the_overview_shows_what_another_replica_recorded,
);

/// The card of `service` in `prod` in a rendered overview, or `None`.
fn card<'a>(html: &'a str, service: &str) -> Option<&'a str> {
    let start = html.find(&format!("data-test=\"service-card-{service}-prod\""))?;
    let end = start + html[start..].find("</section>")?;
    Some(&html[start..end])
}

/// The text of a card's `<dd>` after the `<dt>` named `term`, markup and
/// hydration markers left out.
fn fact(card: &str, term: &str) -> String {
    let at = card
        .find(&format!("<dt>{term}</dt>"))
        .unwrap_or_else(|| panic!("no {term} in {card}"));
    let dd = &card[at..];
    let dd = &dd[dd.find("<dd").unwrap()..dd.find("</dd>").unwrap()];
    let mut text = String::new();
    let mut in_tag = false;
    for c in dd.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

async fn overview(app: &TestApp, token: &str) -> String {
    let req = Request::builder()
        .method(Method::GET)
        .uri("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK);
    r.text
}

async fn register(app: &TestApp, admin: &str, service: &str) {
    let r = app
        .call(
            Method::POST,
            "/api/v1/services",
            Some(json!({ "name": service, "environment": "prod", "owner": "kp" })),
            Some(admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

async fn heartbeat(app: &TestApp, agent: &str, instance: &str, version: Option<u64>) {
    let r = app
        .call(
            Method::POST,
            "/api/v1/agent/heartbeat",
            Some(json!({ "instance_id": instance, "agent_version": "0.1.0",
                "policy_version": version, "policy_source": "server",
                "started_at_ms": app.clock.now_ms_for_tests() })),
            Some(agent),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// The fleet view is kept in memory (the roster); a registration, a
/// heartbeat and a publish handled here must each show on the very next
/// render, not after some refresh.
async fn the_overview_shows_each_change_on_the_next_render(app: TestApp) {
    let admin = app.login_as("ada", Role::Admin).await;
    let html = overview(&app, &admin).await;
    assert!(html.contains("data-test=\"overview-empty\""), "{html}");

    register(&app, &admin, "rag-answer").await;
    let html = overview(&app, &admin).await;
    let rag = card(&html, "rag-answer").expect("a registered service has a card");
    assert_eq!(fact(rag, "Instances"), "0 up 0 stale 0 down");

    let agent = app.agent_token(&admin, "rag-answer").await;
    heartbeat(&app, &agent, "pod-1", None).await;
    heartbeat(&app, &agent, "pod-2", None).await;
    let html = overview(&app, &admin).await;
    let rag = card(&html, "rag-answer").unwrap();
    assert_eq!(fact(rag, "Instances"), "2 up 0 stale 0 down");
    assert_eq!(fact(rag, "Lagging"), "none");

    // After a publish both run an older policy than they should.
    let mut policy =
        Policy::from_yaml(include_str!("../../../examples/policies/rag-answer.yaml")).unwrap();
    policy.service.risk_tier = RiskTier::Medium;
    let r = app
        .call(
            Method::POST,
            "/api/v1/services/rag-answer/prod/publish",
            Some(json!({ "message": "v1", "document": serde_json::to_value(&policy).unwrap() })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let html = overview(&app, &admin).await;
    assert_eq!(
        fact(card(&html, "rag-answer").unwrap(), "Lagging"),
        "pod-1, pod-2"
    );

    // pod-1 catches up; pod-2 falls silent and turns stale.
    app.clock.advance_ms(20_000);
    heartbeat(&app, &agent, "pod-1", Some(1)).await;
    let html = overview(&app, &admin).await;
    let rag = card(&html, "rag-answer").unwrap();
    assert_eq!(fact(rag, "Lagging"), "pod-2");
    assert_eq!(fact(rag, "Instances"), "1 up 1 stale 0 down");
}

/// A server starting on a store that already holds a fleet shows it on its
/// first render.
async fn the_overview_shows_what_the_store_held_before_start(app: TestApp) {
    let admin = app.login_as("ada", Role::Admin).await;
    register(&app, &admin, "rag-answer").await;
    register(&app, &admin, "billing").await;
    let agent = app.agent_token(&admin, "rag-answer").await;
    heartbeat(&app, &agent, "pod-1", None).await;

    let restarted = app.replica().await;
    let html = overview(&restarted, &admin).await;
    assert_eq!(
        fact(card(&html, "rag-answer").unwrap(), "Instances"),
        "1 up 0 stale 0 down"
    );
    assert_eq!(
        fact(card(&html, "billing").unwrap(), "Instances"),
        "0 up 0 stale 0 down"
    );
}

/// Two replicas on one store: what one records reaches the other's fleet
/// view with its next refresh of the roster, at most `fleet_refresh` later.
async fn the_overview_shows_what_another_replica_recorded(app: TestApp) {
    let admin = app.login_as("ada", Role::Admin).await;
    let other = app
        .replica_with(|s| s.fleet_refresh = std::time::Duration::from_millis(50))
        .await;
    // Loaded (empty) before the changes, so that only a refresh can bring
    // them.
    let html = overview(&other, &admin).await;
    assert!(html.contains("data-test=\"overview-empty\""), "{html}");
    register(&app, &admin, "rag-answer").await;
    let agent = app.agent_token(&admin, "rag-answer").await;
    heartbeat(&app, &agent, "pod-1", None).await;
    // Seen here at once; on the other replica within a few refreshes.
    let html = overview(&app, &admin).await;
    assert_eq!(
        fact(card(&html, "rag-answer").unwrap(), "Instances"),
        "1 up 0 stale 0 down"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let html = overview(&other, &admin).await;
        if card(&html, "rag-answer").is_some_and(|c| fact(c, "Instances") == "1 up 0 stale 0 down")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other replica never showed the heartbeat: {html}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Building a router while another thread renders a page must not stall
/// that page. Leptos suppresses resource loading process-wide while it
/// generates a route list, so routers generated theirs once per process;
/// before that, tests that built apps while others rendered hung at random.
#[test]
fn rendering_while_other_routers_are_built_never_stalls() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let rt = runtime();
    let (app, cookie) = rt.block_on(async {
        let app = TestApp::sqlite().await;
        let cookie = session_cookie(&app, "vic", Role::Viewer).await;
        (app, cookie)
    });
    let builder = std::thread::spawn(move || {
        runtime().block_on(async {
            for _ in 0..20 {
                drop(TestApp::sqlite().await);
            }
        })
    });
    rt.block_on(async {
        for _ in 0..40 {
            let r = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                app.send(get("/", Some(&cookie))),
            )
            .await
            .expect("a page render stalled while routers were being built");
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
    });
    builder.join().unwrap();
}
