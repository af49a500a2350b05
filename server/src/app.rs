//! The application: its state and its router.
//!
//! State is one `Arc<App>` reached through [`AppState`]; there are no
//! globals, so tests build as many independent apps as they like.

use crate::auth::{Auth, check_same_origin};
use crate::clock::Clock;
use crate::config::Secret;
use crate::error::ApiError;
use crate::store::Store;
use crate::{routes, web};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use leptos::config::LeptosOptions;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Settings the router needs, separate from the CLI's shape so that tests
/// can build an app without flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Directory holding `pkg/` (the built dashboard).
    pub site_root: PathBuf,
    /// Largest accepted request body.
    pub body_limit: usize,
    /// Time allowed to produce a response.
    pub request_timeout: Duration,
    /// Session lifetime in seconds.
    pub session_ttl_secs: u64,
    /// Whether cookies are marked `Secure`.
    pub cookie_secure: bool,
    /// Days to keep one-minute telemetry rollups.
    pub rollup_retention_days: u32,
    /// The bearer token `/metrics` requires; the endpoint is off without one.
    pub metrics_token: Option<Secret>,
    /// How often the fleet roster is merged with the store, which is how
    /// registrations and heartbeats handled by other replicas reach this
    /// one's fleet view (see `telemetry::roster`).
    pub fleet_refresh: Duration,
    /// The most dead letters one service may have open or pending at once.
    pub dead_letter_max_live: i64,
    /// Days to keep a dead letter after it left the queue.
    pub dead_letter_retention_days: u32,
    /// How often alert rules are evaluated (by whichever replica holds the
    /// evaluator's lease) and notifications delivered; `None` runs neither,
    /// for tests that drive them step by step.
    pub alert_interval: Option<Duration>,
    /// How often a long-lived stream checks that whoever opened it may
    /// still see it (a revoked token, a disabled user): it ends at the next
    /// check after the revocation.
    pub stream_recheck: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            site_root: PathBuf::from("target/site"),
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            session_ttl_secs: 3600,
            cookie_secure: false,
            rollup_retention_days: 14,
            metrics_token: None,
            fleet_refresh: Duration::from_secs(2),
            dead_letter_max_live: 100_000,
            dead_letter_retention_days: 30,
            alert_interval: Some(Duration::from_secs(5)),
            stream_recheck: Duration::from_secs(30),
        }
    }
}

/// Everything a request may need.
#[derive(Debug)]
pub struct App {
    /// Storage.
    pub store: Store,
    /// Authentication.
    pub auth: Auth,
    /// The only clock the server reads.
    pub clock: Arc<dyn Clock>,
    /// Leptos' view of the site layout.
    pub leptos: LeptosOptions,
    /// Policy snapshots and their live subscribers.
    pub hub: Arc<crate::policy_hub::PolicyHub>,
    /// Set to true when the server is shutting down: long-lived streams end
    /// so that graceful shutdown does not wait on them forever, and clients
    /// reconnect to another replica.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Telemetry ingest, the live view and metrics.
    pub telemetry: crate::telemetry::Telemetry,
    /// Router settings.
    pub settings: Settings,
    /// Hands approved dead-letter actions to agent streams.
    pub dlq: crate::dead_letters::dispatch::Dispatcher,
}

/// The axum state: a cheap handle on [`App`].
#[derive(Clone, Debug)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> LeptosOptions {
        state.leptos.clone()
    }
}

impl AppState {
    /// Resolves once shutdown has begun; long-lived streams end on it.
    pub fn shutting_down(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut rx = self.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }

    /// Builds the state from its parts. Fails only for an empty JWT secret.
    pub fn new(
        store: Store,
        jwt_secret: &Secret,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<AppState, crate::auth::jwt::JwtError> {
        let auth = Auth::new(
            jwt_secret,
            settings.session_ttl_secs,
            settings.cookie_secure,
            clock.clone(),
        )?;
        let leptos = web::leptos_options(&settings.site_root);
        let hub = Arc::new(crate::policy_hub::PolicyHub::new(store.clone()));
        hub.listen();
        let telemetry = crate::telemetry::Telemetry::new(store.clone(), clock.clone());
        let app = Arc::new(App {
            shutdown: tokio::sync::watch::Sender::new(false),
            hub,
            store,
            auth,
            clock,
            leptos,
            telemetry,
            settings,
            dlq: Default::default(),
        });
        crate::telemetry::start(&app);
        crate::dead_letters::dispatch::start(&app);
        crate::alerts::start(&app);
        Ok(AppState(app))
    }
}

/// The whole HTTP surface: the API, the probes, the dashboard and its assets.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .nest("/v1", routes::router())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(middleware::from_fn(routes::json_errors));

    let x_request_id = HeaderName::from_static("x-request-id");
    let sensitive: Arc<[HeaderName]> =
        Arc::new([header::AUTHORIZATION, header::COOKIE, header::SET_COOKIE]);

    Router::new()
        .nest("/api", api)
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::metrics::metrics))
        .merge(web::router(&state))
        .layer(middleware::from_fn(refuse_cross_site_writes))
        .layer(DefaultBodyLimit::max(state.settings.body_limit))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, state.settings.request_timeout))
        .layer(middleware::from_fn(security_headers))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred; it has been logged")
                .into_response()
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            routes::metrics::count_requests,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .layer(SetSensitiveHeadersLayer::from_shared(sensitive))
        .with_state(state)
}

async fn refuse_cross_site_writes(req: Request, next: Next) -> Response {
    match check_same_origin(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Headers that make the browser strict: no sniffing, no framing, no
/// referrers, and a content policy that allows only this origin.
async fn security_headers(req: Request, next: Next) -> Response {
    // Leptos hydration bootstraps from an inline module script and inline
    // resource data, hence 'unsafe-inline' for scripts; 'wasm-unsafe-eval'
    // lets the page compile its own wasm. Everything else is same-origin only.
    const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; \
                       style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
                       base-uri 'none'; frame-ancestors 'none'; form-action 'self'";
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, CSP),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}
