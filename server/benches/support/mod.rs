//! What the server benchmarks share: an app on a fresh database with a
//! signed-in admin, JSON calls through the router, and their settings.

// Each bench binary uses its own part of this module.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use server::app::{AppState, Settings, router};
use server::auth::password;
use server::clock::SystemClock;
use server::config::Secret;
use server::store::{AuditRecord, Store};
use shared::role::Role;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tower::ServiceExt;

const PASSWORD: &str = "bench-password-123";

/// The router over a fresh store at a database URL, and an admin session.
pub struct Bench {
    pub app: axum::Router,
    pub admin: String,
}

impl Bench {
    /// Opens `url`, creates `bench-admin`, builds the app and signs in.
    pub async fn start(url: &str) -> Bench {
        let store = Store::open(url).await.unwrap();
        let hash = password::hash(PASSWORD.into()).await.unwrap();
        store
            .create_user(
                "bench-admin",
                &hash,
                Role::Admin,
                0,
                &AuditRecord::new("bench", "user.create", "", json!({})),
            )
            .await
            .unwrap();
        let state = AppState::new(
            store,
            &Secret::new("b".repeat(48)),
            Arc::new(SystemClock),
            Settings::default(),
        )
        .unwrap();
        let app = router(state);
        let mut bench = Bench {
            app,
            admin: String::new(),
        };
        let login = bench
            .ok(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "username": "bench-admin", "password": PASSWORD })),
            )
            .await;
        bench.admin = login["token"].as_str().unwrap().to_owned();
        bench
    }

    /// One call through the router: the status and the parsed body (null
    /// when it is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let res = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// [`Bench::call`] that must succeed; the body.
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let (status, body) = self.call(method, path, token, body).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Registers `service` in `prod` as the admin and issues its agent
    /// token.
    pub async fn register(&self, service: &str) -> String {
        let admin = Some(self.admin.as_str());
        self.ok(
            Method::POST,
            "/api/v1/services",
            admin,
            Some(json!({ "name": service, "environment": "prod", "owner": "bench" })),
        )
        .await;
        let token = self
            .ok(
                Method::POST,
                "/api/v1/tokens",
                admin,
                Some(json!({ "service": service, "environment": "prod" })),
            )
            .await;
        token["token"].as_str().unwrap().to_owned()
    }
}

/// A setting from the environment, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The wall clock in Unix milliseconds, as agents stamp their batches.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
