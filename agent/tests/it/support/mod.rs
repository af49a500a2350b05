//! What the tests against a real control plane share: the admin's client
//! for the REST API, the policy they publish, and bounded waits on the
//! agent's channels.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use agent::PolicyReceiver;
use agent::client::{AgentConfig, LiveAgent};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use server::app::{AppState, Settings, router};
use server::clock::{Clock, SystemClock};
use server::config::Secret;
use server::store::{AuditRecord, Store};
use shared::paths;
use shared::role::Role;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Long enough for a loaded 2-core CI machine; nothing waits this long
/// when it works.
pub const BOUND: Duration = Duration::from_secs(20);
pub const PASSWORD: &str = "a-long-enough-password";
pub const SERVICE: &str = "rag-answer";
pub const ENV: &str = "prod";

/// A running `ballast` server with an admin session and a service token.
pub struct Ballast {
    pub admin: Admin,
    pub token: String,
    pub server: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Ballast {
    /// Starts the server, creates an admin, signs in, registers the service
    /// and issues its token. Nothing is published yet.
    pub async fn start() -> Ballast {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url_in(dir.path()))
            .await
            .unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let settings = Settings {
            site_root: dir.path().join("site"),
            ..Settings::default()
        };
        let state = AppState::new(
            store,
            &Secret::new("live-test-secret-live-test-secret-0123456789"),
            clock.clone(),
            settings,
        )
        .unwrap();
        let hash = server::auth::password::hash(PASSWORD.into()).await.unwrap();
        state
            .store
            .create_user(
                "admin",
                &hash,
                Role::Admin,
                clock.now_ms(),
                &AuditRecord::new("test", "user.create", "", json!({})),
            )
            .await
            .unwrap();
        let token = server::auth::tokens::issue(&state.store, clock.now_ms(), "test", SERVICE, ENV)
            .await
            .unwrap()
            .token;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = router(state);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let mut admin = Admin::new(&base);
        admin.sign_in().await;
        admin.create_service().await;
        Ballast {
            admin,
            token,
            server,
            _dir: dir,
        }
    }

    /// Publishes a medium-tier policy (no approver needed) whose total
    /// budget is `total_ms`, which tells the versions apart; returns the
    /// version number.
    pub async fn publish(&self, total_ms: u64) -> u64 {
        let policy = reranker_policy(total_ms, 3, "Results are ranked more coarsely than usual.");
        self.admin
            .publish(&format!("total {total_ms} ms"), policy)
            .await
    }

    /// The agent's configuration: the real token, a last-known-good file
    /// in `dir`, and the default heartbeat interval (10 s), so a prompt
    /// heartbeat can only be the one sent on apply.
    pub fn agent_config(&self, dir: &std::path::Path, instance: &str) -> AgentConfig {
        let mut config = AgentConfig::new(
            &self.admin.base,
            &self.token,
            instance,
            SERVICE,
            ENV,
            dir.join("policy.json"),
        );
        config.startup_wait = BOUND;
        config
    }
}

/// The `admin` user's HTTP client for one control plane.
pub struct Admin {
    pub base: String,
    session: String,
    http: Client<HttpConnector, Full<bytes::Bytes>>,
}

impl Admin {
    /// A client for the server at `base`, not signed in yet.
    pub fn new(base: &str) -> Admin {
        Admin {
            base: base.to_owned(),
            session: String::new(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Signs in as `admin` with [`PASSWORD`].
    pub async fn sign_in(&mut self) {
        self.sign_in_as("admin").await;
    }

    /// Signs in as `username` with [`PASSWORD`]: another person, for what
    /// needs a second one.
    pub async fn sign_in_as(&mut self, username: &str) {
        let (status, body) = self
            .call(
                "POST",
                paths::LOGIN,
                Some(json!({ "username": username, "password": PASSWORD })),
            )
            .await;
        assert_eq!(status, 200, "login: {body}");
        self.session = body["token"].as_str().unwrap().to_owned();
    }

    /// The status of `GET path`, or `None` when nothing answers.
    pub async fn status_of(&self, path: &str) -> Option<u16> {
        let req = http::Request::get(format!("{}{path}", self.base))
            .body(Full::default())
            .unwrap();
        Some(self.http.request(req).await.ok()?.status().as_u16())
    }

    /// A JSON call as the admin; the status and the parsed body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.session));
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Full::from(b.to_string())
            }
            None => Full::default(),
        };
        let resp = self.http.request(req.body(body).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Registers [`SERVICE`] in [`ENV`].
    pub async fn create_service(&self) {
        let (status, body) = self
            .call(
                "POST",
                paths::SERVICES,
                Some(json!({ "name": SERVICE, "environment": ENV, "owner": "knowledge-platform" })),
            )
            .await;
        assert_eq!(status, 201, "create service: {body}");
    }

    /// Publishes `document` (medium tier: no approver needed); returns the
    /// version number.
    pub async fn publish(&self, message: &str, document: Value) -> u64 {
        let (status, body) = self
            .call(
                "POST",
                &paths::service(SERVICE, ENV).publish(),
                Some(json!({ "message": message, "document": document })),
            )
            .await;
        assert_eq!(status, 201, "publish: {body}");
        assert_eq!(body["status"], "published", "{body}");
        body["version"].as_u64().unwrap()
    }
}

/// A medium-tier policy for a reranker: its total budget, the failures in
/// a row that open its breaker, and the user message of its fallback
/// (skip the step), so that tests can tell versions apart.
pub fn reranker_policy(total_ms: u64, breaker_failures: u32, user_message: &str) -> Value {
    json!({
        "service": {
            "name": SERVICE, "environment": ENV, "owner": "knowledge-platform",
            "risk_tier": "medium",
            "dependencies": { "reranker": { "kind": "reranker", "required": false } }
        },
        "timeouts": { "total_ms": total_ms, "dependencies": { "reranker": 300 } },
        "breakers": { "reranker": {
            "mode": { "kind": "consecutive", "failures": breaker_failures },
            "cooldown_ms": 1000, "half_open_probes": 1
        } },
        "fallbacks": [{
            "component": "reranker", "failure": "any",
            "fallback": { "kind": "skip_step" },
            "degraded_status": "degraded",
            "user_message": user_message,
            "allowed": true,
            "confidence_penalty_percent": 10
        }]
    })
}

/// Waits, under [`BOUND`], until the channel shows `version`.
pub async fn until_version(rx: &mut PolicyReceiver, version: u64) {
    tokio::time::timeout(BOUND, rx.wait_for(|p| p.version() == Some(version)))
        .await
        .unwrap_or_else(|_| panic!("version {version} did not arrive within {BOUND:?}"))
        .expect("the agent is alive");
}

/// Waits, under [`BOUND`], until the policy stream is open (or closed).
pub async fn until_stream(live: &LiveAgent, open: bool) {
    let mut connected = live.stream_connected();
    tokio::time::timeout(BOUND, connected.wait_for(|c| *c == open))
        .await
        .unwrap_or_else(|_| panic!("the stream was not open={open} within {BOUND:?}"))
        .unwrap();
}
