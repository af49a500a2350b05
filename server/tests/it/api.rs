//! API behaviour on both databases: the role matrix, authentication failures,
//! bad input, readiness, sessions, service tokens and the audit chain.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{JWT_SECRET, PASSWORD, TestApp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shared::role::Role;

on_both_backends!(
    every_endpoint_admits_exactly_the_roles_the_matrix_allows,
    missing_and_forged_credentials_get_401,
    bad_input_gets_a_json_4xx_naming_the_problem,
    readyz_reports_503_when_the_database_is_gone,
    logout_and_disabling_end_sessions_at_once,
    login_is_throttled_per_account,
    cookie_writes_from_another_site_are_refused,
    service_tokens_are_scoped_hashed_and_revocable,
    audit_log_chains_every_change_and_detects_tampering,
    the_last_admin_cannot_be_removed,
    taken_usernames_conflict_on_the_field,
);

/// (method, path, body) of every user-facing endpoint, and who may call it.
fn endpoints(
    other_user: i64,
    token_id: &str,
) -> Vec<(Method, String, Option<Value>, &'static [Role])> {
    use Role::*;
    vec![
        (
            Method::GET,
            "/api/v1/me".into(),
            None,
            &[Viewer, Engineer, Approver, Admin],
        ),
        (Method::GET, "/api/v1/users".into(), None, &[Admin]),
        (
            Method::POST,
            "/api/v1/users".into(),
            Some(
                json!({ "username": format!("new-{}", server::auth::random_hex(4)), "password": PASSWORD, "role": "viewer" }),
            ),
            &[Admin],
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{other_user}"),
            Some(json!({ "role": "viewer" })),
            &[Admin],
        ),
        (Method::GET, "/api/v1/tokens".into(), None, &[Admin]),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({ "service": "rag-answer", "environment": "prod" })),
            &[Admin],
        ),
        (
            Method::DELETE,
            format!("/api/v1/tokens/{token_id}"),
            None,
            &[Admin],
        ),
        (
            Method::GET,
            "/api/v1/audit".into(),
            None,
            &[Approver, Admin],
        ),
    ]
}

async fn every_endpoint_admits_exactly_the_roles_the_matrix_allows(app: TestApp) {
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, app.login_as(&format!("{role}-user"), role).await));
    }
    let target = app.user("target", Role::Engineer).await;
    let admin = &tokens[3].1;
    let created = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "service": "svc", "environment": "dev" })),
            Some(admin),
        )
        .await;
    let service_token = created.body["token"].as_str().unwrap().to_owned();
    // The DELETE endpoint revokes a second token, so the first stays usable.
    let doomed = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "service": "svc", "environment": "dev" })),
            Some(admin),
        )
        .await;
    let token_id = doomed.body["info"]["id"].as_str().unwrap().to_owned();

    for (method, path, body, allowed) in endpoints(target, &token_id) {
        for (role, token) in &tokens {
            let r = app
                .call(method.clone(), &path, body.clone(), Some(token))
                .await;
            if allowed.contains(role) {
                assert!(
                    r.status.is_success(),
                    "{role} {method} {path}: {} {}",
                    r.status,
                    r.text
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{role} {method} {path}: {}",
                    r.text
                );
                assert_eq!(r.body["error"]["code"], "forbidden");
            }
        }
        let r = app.call(method.clone(), &path, body.clone(), None).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "anonymous {method} {path}"
        );
        assert_eq!(r.body["error"]["code"], "unauthorized");
        let r = app
            .call(method.clone(), &path, body.clone(), Some(&service_token))
            .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "service token {method} {path}: {}",
            r.text
        );
    }
}

fn sign(claims: &Value, alg: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn missing_and_forged_credentials_get_401(app: TestApp) {
    let good = app.login_as("alice", Role::Admin).await;
    let me = app.call(Method::GET, "/api/v1/me", None, Some(&good)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["role"], "admin");
    assert_eq!(me.body["username"], "alice");

    // Lift the real token's claims so that only the forged part differs.
    let payload = good.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&base64_url_decode(payload)).unwrap();

    let forged = [
        (
            "another secret",
            sign(
                &claims,
                Algorithm::HS256,
                "some-other-secret-some-other-secret",
            ),
        ),
        (
            "another algorithm",
            sign(&claims, Algorithm::HS512, JWT_SECRET),
        ),
        ("alg none", unsigned(&claims)),
        ("tampered payload", {
            let mut c = claims.clone();
            c["sub"] = json!("999");
            let forged = sign(&c, Algorithm::HS256, "x".repeat(40).as_str());
            let mut parts: Vec<&str> = good.split('.').collect();
            let forged_payload = forged.split('.').nth(1).unwrap().to_owned();
            parts[1] = &forged_payload;
            parts.join(".")
        }),
        ("no exp", {
            let mut c = claims.clone();
            c.as_object_mut().unwrap().remove("exp");
            sign(&c, Algorithm::HS256, JWT_SECRET)
        }),
        ("garbage", "not-a-token".to_owned()),
        (
            "unknown service token",
            "bst_0011223344556677_deadbeef".to_owned(),
        ),
    ];
    for (what, token) in forged {
        let r = app
            .call(Method::GET, "/api/v1/me", None, Some(&token))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "unauthorized", "{what}");
    }

    // Expired: move the clock past the session's lifetime and the leeway.
    app.clock.advance_ms(3600 * 1000 + 6_000);
    let r = app.call(Method::GET, "/api/v1/me", None, Some(&good)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        r.text
    );
}

fn base64_url_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

fn unsigned(claims: &Value) -> String {
    use base64::Engine;
    let enc = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        enc(&json!({ "alg": "none", "typ": "JWT" })),
        enc(claims)
    )
}

async fn bad_input_gets_a_json_4xx_naming_the_problem(app: TestApp) {
    let admin = app.login_as("root", Role::Admin).await;
    let raw = |body: &'static str, content_type: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/users")
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let r = app.send(raw("{\"username\": ", "application/json")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "malformed_json");

    let r = app
        .send(raw(
            r#"{"username": 5, "password": "x", "role": "viewer"}"#,
            "application/json",
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "username");

    let r = app
        .send(raw(
            r#"{"username": "bob", "role": "viewer"}"#,
            "application/json",
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "password");

    let r = app
        .send(raw(
            r#"{"username": "bob", "password": "a-long-enough-password", "role": "root"}"#,
            "application/json",
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "role");

    let r = app
        .send(raw(
            r#"{"username": "bob", "password": "a-long-enough-password", "role": "viewer", "admin": true}"#,
            "application/json",
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("admin")
    );

    let r = app.send(raw(r#"{"username": "bob"}"#, "text/plain")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.body["error"]["code"], "unsupported_media_type");

    let r = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(json!({ "username": "bad name!", "password": PASSWORD, "role": "viewer" })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["field"], "username");

    let r = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(json!({ "username": "short", "password": "short", "role": "viewer" })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "password");

    // Over the body limit (64 KiB in tests).
    let big = format!(
        r#"{{"username": "{}", "password": "x", "role": "viewer"}}"#,
        "a".repeat(100_000)
    );
    let r = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/users")
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(big))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "payload_too_large");

    let r = app
        .call(Method::GET, "/api/v1/no-such-thing", None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["code"], "not_found");
    let r = app.call(Method::GET, "/api/v2/users", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["code"], "not_found");

    let r = app
        .call(Method::PUT, "/api/v1/users", None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body["error"]["code"], "method_not_allowed");

    let r = app
        .call(
            Method::PATCH,
            "/api/v1/users/not-a-number",
            Some(json!({})),
            Some(&admin),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(r.body["error"]["code"].is_string(), "{}", r.text);

    let r = app
        .call(Method::GET, "/api/v1/audit?limit=0", None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["field"], "limit");

    // Nothing above harmed what was stored.
    let users = app
        .call(Method::GET, "/api/v1/users", None, Some(&admin))
        .await;
    assert_eq!(users.body.as_array().unwrap().len(), 1);
}

async fn readyz_reports_503_when_the_database_is_gone(app: TestApp) {
    let r = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let admin = app.login_as("root", Role::Admin).await;
    app.take_database_away().await;
    let r = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["error"]["code"], "unavailable");
    let r = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "liveness does not depend on the database"
    );
    // API calls that need the database answer 503 too, never 500.
    let r = app
        .call(Method::GET, "/api/v1/users", None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "unavailable");
}

async fn logout_and_disabling_end_sessions_at_once(app: TestApp) {
    let admin = app.login_as("root", Role::Admin).await;
    let viewer_id = app.user("vera", Role::Viewer).await;
    let viewer = app.login("vera", PASSWORD).await;
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", None, Some(&viewer))
            .await
            .status,
        StatusCode::OK
    );

    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{viewer_id}"),
            Some(json!({ "disabled": true })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", None, Some(&viewer))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({ "username": "vera", "password": PASSWORD })),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = app
        .call(Method::POST, "/api/v1/auth/logout", None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let cleared = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", None, Some(&admin))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

async fn login_is_throttled_per_account(app: TestApp) {
    app.user("target", Role::Viewer).await;
    let attempt = |password: &'static str| {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({ "username": "target", "password": password })),
            None,
        )
    };
    for _ in 0..5 {
        let r = attempt("wrong-password-guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["error"]["code"], "invalid_credentials");
    }
    let r = attempt(PASSWORD).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits: {}",
        r.text
    );
    assert_eq!(r.body["error"]["code"], "throttled");
    assert!(r.headers.get(header::RETRY_AFTER).is_some());
    app.clock.advance_ms(12_000);
    assert_eq!(attempt(PASSWORD).await.status, StatusCode::OK);
}

async fn cookie_writes_from_another_site_are_refused(app: TestApp) {
    app.user("root", Role::Admin).await;
    let login = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({ "username": "root", "password": PASSWORD })),
            None,
        )
        .await;
    let cookie = login
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(cookie.contains(attr), "{attr} missing from {cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    let post = |site: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/tokens")
            .header(header::COOKIE, &pair)
            .header("sec-fetch-site", site)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({ "service": "svc", "environment": "dev" }).to_string(),
            ))
            .unwrap()
    };
    let r = app.send(post("cross-site")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["error"]["field"], "origin");
    let r = app.send(post("same-origin")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Reads with the cookie work from anywhere a browser sends it.
    let r = app
        .send(
            Request::builder()
                .uri("/api/v1/me")
                .header(header::COOKIE, &pair)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn service_tokens_are_scoped_hashed_and_revocable(app: TestApp) {
    let admin = app.login_as("root", Role::Admin).await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "service": "rag-answer", "environment": "prod" })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.body["token"].as_str().unwrap().to_owned();
    let id = r.body["info"]["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("bst_{id}_")));
    assert_eq!(r.body["info"]["service"], "rag-answer");

    let list = app
        .call(Method::GET, "/api/v1/tokens", None, Some(&admin))
        .await;
    assert!(
        !list.text.contains(&token[token.len() - 20..]),
        "listing leaks the secret"
    );
    assert_eq!(list.body[0]["id"], id.as_str());
    let row = app.store().token_by_id(&id).await.unwrap().unwrap();
    assert!(!row.secret_hash.contains(&token[token.len() - 64..]));
    assert!(
        !format!("{row:?}").contains(&row.secret_hash),
        "Debug shows the hash"
    );

    let r = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "service": "Bad Name", "environment": "prod" })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "service");

    // A valid service token is authenticated (403 on user endpoints, not 401)...
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", None, Some(&token))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // ...with a wrong secret it is not...
    let wrong = format!("bst_{id}_{}", "0".repeat(64));
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", None, Some(&wrong))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // ...and once revoked it is not either.
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["revoked_at_ms"].is_i64());
    assert_eq!(
        app.call(Method::GET, "/api/v1/me", None, Some(&token))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .call(Method::DELETE, "/api/v1/tokens/nope", None, Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn audit_log_chains_every_change_and_detects_tampering(app: TestApp) {
    let admin = app.login_as("root", Role::Admin).await;
    app.call(
        Method::POST,
        "/api/v1/auth/login",
        Some(json!({ "username": "root", "password": "wrong-password!!" })),
        None,
    )
    .await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "service": "svc", "environment": "dev" })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let log = app
        .call(Method::GET, "/api/v1/audit", None, Some(&admin))
        .await;
    let actions: Vec<&str> = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "token.create",
            "auth.login_failed",
            "auth.login",
            "user.create"
        ]
    );
    assert!(!log.text.contains(PASSWORD), "audit must not hold secrets");
    assert_eq!(app.store().verify_audit().await.unwrap(), Ok(4));

    // The append-only trigger refuses a casual edit...
    let blocked = std::panic::AssertUnwindSafe(
        app.raw_sql("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"),
    );
    assert!(
        futures_util::FutureExt::catch_unwind(blocked)
            .await
            .is_err(),
        "trigger should refuse"
    );
    // ...and someone who drops it still cannot hide an edit from the chain.
    let drop = if app.pg.is_some() {
        "DROP TRIGGER audit_log_no_change ON audit_log"
    } else {
        "DROP TRIGGER audit_log_no_update"
    };
    app.raw_sql(drop).await;
    app.raw_sql("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        .await;
    let broken = app.store().verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.seq, 2);

    // The command line says the same, with a failing exit code.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["audit", "verify", "--database-url", &app.database_url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken at entry 2"));
}

async fn the_last_admin_cannot_be_removed(app: TestApp) {
    let admin = app.login_as("root", Role::Admin).await;
    let me = app
        .call(Method::GET, "/api/v1/me", None, Some(&admin))
        .await;
    let id = me.body["id"].as_i64().unwrap();
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(json!({ "role": "viewer" })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"]["field"], "role");
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(json!({ "disabled": true })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"]["field"], "disabled");
    app.user("second", Role::Admin).await;
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(json!({ "role": "viewer" })),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["role"], "viewer");
}

async fn taken_usernames_conflict_on_the_field(app: TestApp) {
    let admin = app.login_as("root", Role::Admin).await;
    let body = json!({ "username": "dup", "password": PASSWORD, "role": "engineer" });
    assert_eq!(
        app.call(
            Method::POST,
            "/api/v1/users",
            Some(body.clone()),
            Some(&admin)
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let r = app
        .call(Method::POST, "/api/v1/users", Some(body), Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "username");
}
