//! `GET /metrics` for Prometheus, and the middleware that counts requests.
//!
//! The figures describe every service's dependencies, so they are not
//! public: a scrape must present `Authorization: Bearer <BALLAST_METRICS_TOKEN>`.
//! Without that setting the endpoint is off and says how to turn it on.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// OpenMetrics, which Prometheus asks for first.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text format, for everyone else.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics exposition.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let Some(expected) = &state.settings.metrics_token else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics_disabled",
            "/metrics is off: set BALLAST_METRICS_TOKEN (or --metrics-token) and scrape with \
             Authorization: Bearer <that token>",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    // Comparing digests keeps the comparison's time independent of where
    // the presented token first differs.
    let ok = presented.is_some_and(|p| {
        Sha256::digest(p.as_bytes()) == Sha256::digest(expected.expose().as_bytes())
    });
    if !ok {
        return Err(ApiError::unauthorized(
            "/metrics needs Authorization: Bearer <BALLAST_METRICS_TOKEN>",
        )
        .with_field("authorization"));
    }
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    // The objectives come from the shared rollups, so every replica
    // exports the same figures; read fresh for each scrape.
    let figures = crate::objectives::figures(&state, state.clock.now_ms()).await?;
    *state
        .telemetry
        .objectives
        .lock()
        .expect("objective figures lock") = figures;
    let metrics = &state.telemetry.metrics;
    let (body, content_type) = if wants_openmetrics {
        (metrics.encode_openmetrics(), OPENMETRICS)
    } else {
        (metrics.encode_prometheus(), PROMETHEUS_TEXT)
    };
    let body = body.map_err(|e| ApiError::internal(&e))?;
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response())
}

/// Counts every answered request by status class.
pub async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    state
        .telemetry
        .metrics
        .http_response(response.status().as_u16());
    response
}
