//! The integration-test harness: a real app on a real database.
//!
//! Every test runs twice, on a fresh SQLite file and on a fresh database in the
//! PostgreSQL cluster named by `BALLAST_TEST_PG_URL` (scripts/test starts one).
//! Without that variable the Postgres half is skipped with a notice, unless
//! `BALLAST_REQUIRE_PG=1`, which CI sets so that a missing cluster fails loudly.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use server::app::{AppState, Settings, router};
use server::auth::password;
use server::clock::ManualClock;
use server::config::Secret;
use server::store::{AuditRecord, Store};
use shared::role::Role;
use std::sync::Arc;
use tower::ServiceExt;

/// 2026-01-01T00:00:00Z: tests start here and move time by hand.
pub const T0_MS: i64 = 1_767_225_600_000;
/// The secret the test apps sign sessions with.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
/// The password every test user gets.
pub const PASSWORD: &str = "a-long-enough-password";

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub clock: Arc<ManualClock>,
    /// The database URL, for CLI tests against the same data.
    pub database_url: String,
    /// For Postgres: (admin URL, database name), to drop the database.
    pub pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = Store::sqlite_url_in(dir.path());
        TestApp::build(url, None, dir).await
    }

    pub async fn postgres() -> Option<TestApp> {
        let Ok(admin_url) = std::env::var("BALLAST_TEST_PG_URL") else {
            if std::env::var("BALLAST_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("BALLAST_REQUIRE_PG=1 but BALLAST_TEST_PG_URL is not set");
            }
            eprintln!(
                "skipping the Postgres half: BALLAST_TEST_PG_URL is not set (scripts/test sets it)"
            );
            return None;
        };
        let name = format!("ballast_t_{}", server::auth::random_hex(6));
        let mut admin = sqlx_connect(&admin_url).await;
        sqlx::Executor::execute(
            &mut admin,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .expect("create test database");
        let base = admin_url.rsplit_once('/').expect("URL has a database").0;
        let url = format!("{base}/{name}");
        let dir = tempfile::tempdir().expect("tempdir");
        Some(TestApp::build(url, Some((admin_url, name)), dir).await)
    }

    async fn build(url: String, pg: Option<(String, String)>, dir: tempfile::TempDir) -> TestApp {
        TestApp::build_with(url, pg, dir, ManualClock::new(T0_MS), |_| {}).await
    }

    async fn build_with(
        url: String,
        pg: Option<(String, String)>,
        dir: tempfile::TempDir,
        clock: Arc<ManualClock>,
        configure: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let store = Store::open(&url).await.expect("open store");
        let mut settings = Settings {
            site_root: dir.path().join("site"),
            body_limit: 64 * 1024,
            // Tests drive evaluation and delivery step by step.
            alert_interval: None,
            ..Settings::default()
        };
        configure(&mut settings);
        let state =
            AppState::new(store, &Secret::new(JWT_SECRET), clock.clone(), settings).expect("state");
        let router = router(state.clone());
        TestApp {
            state,
            router,
            clock,
            database_url: url,
            pg,
            _dir: dir,
        }
    }

    /// A second app on the same database, as another replica would be:
    /// its own pool, clock, policy hub and LISTEN connection.
    pub async fn replica(&self) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut other = TestApp::build(self.database_url.clone(), None, dir).await;
        other.clock = self.clock.clone();
        other
    }

    /// Another app on the same database, reading the same clock, with its
    /// own settings.
    pub async fn replica_with(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        TestApp::build_with(
            self.database_url.clone(),
            None,
            dir,
            self.clock.clone(),
            configure,
        )
        .await
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Creates a user directly in the store.
    pub async fn user(&self, username: &str, role: Role) -> i64 {
        let hash = password::hash(PASSWORD.into()).await.unwrap();
        self.store()
            .create_user(
                username,
                &hash,
                role,
                self.clock.now_ms_for_tests(),
                &AuditRecord::new("test", "user.create", "", serde_json::json!({})),
            )
            .await
            .unwrap()
            .id
    }

    /// Creates a user and signs in; returns the session token.
    pub async fn login_as(&self, username: &str, role: Role) -> String {
        self.user(username, role).await;
        self.login(username, PASSWORD).await
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                Some(serde_json::json!({ "username": username, "password": password })),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "login failed: {}", r.text);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// A JSON request with an optional bearer token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Response {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = match body {
            Some(body) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> Response {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
            text,
        }
    }

    /// Issues a service token for `service` in `prod` through the API.
    pub async fn agent_token(&self, admin: &str, service: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(serde_json::json!({ "service": service, "environment": "prod" })),
                Some(admin),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Runs raw SQL on the test database (for tampering and sabotage).
    pub async fn raw_sql(&self, sql: &str) {
        if self.database_url.starts_with("sqlite:") {
            use sqlx::ConnectOptions;
            let mut conn = self
                .database_url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .unwrap()
                .connect()
                .await
                .unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap();
        } else {
            let mut conn = sqlx_connect(&self.database_url).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    /// Makes the database unreachable for the app: on Postgres the database
    /// is dropped out from under its connections; on SQLite the pool is closed.
    pub async fn take_database_away(&self) {
        match &self.pg {
            Some((admin_url, name)) => {
                let mut admin = sqlx_connect(admin_url).await;
                sqlx::Executor::execute(
                    &mut admin,
                    sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")),
                )
                .await
                .unwrap();
            }
            None => self.store().close().await,
        }
    }
}

async fn sqlx_connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the test Postgres")
}

/// The clock's reading, for tests that need a timestamp.
pub trait NowForTests {
    fn now_ms_for_tests(&self) -> i64;
}

impl NowForTests for ManualClock {
    fn now_ms_for_tests(&self) -> i64 {
        use server::clock::Clock;
        self.now_ms()
    }
}

/// Declares each named `async fn name(app: TestApp)` as two tests,
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::common::TestApp::sqlite().await).await
                }
                #[tokio::test]
                async fn postgres() {
                    if let Some(app) = $crate::common::TestApp::postgres().await {
                        super::$name(app).await
                    }
                }
            }
        )*
    };
}

/// Reads server-sent events from `body` until one named `name` arrives and
/// returns its data as JSON. `buffer` keeps what was read past that event.
/// Bounded at 5 s: events are sent as soon as their cause commits, so the
/// bound is a failure, not a wait.
pub async fn next_sse_event(body: &mut Body, buffer: &mut String, name: &str) -> Value {
    let marker = format!("event: {name}");
    let read = async {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if event.lines().any(|l| l == marker) {
                    let data: String = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect();
                    return serde_json::from_str(&data).unwrap();
                }
                continue;
            }
            let frame = body.frame().await.expect("stream ended").unwrap();
            if let Ok(bytes) = frame.into_data() {
                buffer.push_str(std::str::from_utf8(&bytes).unwrap());
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| panic!("no {name} event within 5 s"))
}
