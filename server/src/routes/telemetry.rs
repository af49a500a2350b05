//! Telemetry over HTTP: agents post batches; people read one service's live
//! figures, the fleet overview, or follow the overview as server-sent events.

use crate::app::AppState;
use crate::auth::{ServicePrincipal, UserPrincipal};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::telemetry;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use shared::api::{FleetLive, ServiceTelemetry};
use shared::protocol::{TelemetryAck, TelemetryBatch};
use shared::role::Permission;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// SSE event name on `/api/v1/live`.
pub const FLEET_EVENT: &str = "fleet";

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agent/telemetry", post(ingest))
        .route("/services/{name}/{env}/telemetry", get(service_telemetry))
        .route("/fleet/live", get(fleet_live))
        .route("/live", get(live))
}

/// An instance reports one flush window. Idempotent per (instance, sequence):
/// a resent batch answers `{"accepted": false}` and adds nothing. The batch is
/// stored before the answer; a refused batch changes nothing.
#[utoipa::path(post, path = "/api/v1/agent/telemetry", tag = "agent", request_body = TelemetryBatch,
    responses(
        (status = 200, body = TelemetryAck),
        (status = 404, description = "The token's service is not registered", body = shared::api::ErrorBody),
        (status = 422, description = "A field is out of bounds; `field` names it", body = shared::api::ErrorBody),
    ))]
pub async fn ingest(
    State(state): State<AppState>,
    agent: ServicePrincipal,
    body: Result<ApiJson<TelemetryBatch>, ApiError>,
) -> ApiResult<axum::Json<TelemetryAck>> {
    let now_ms = state.clock.now_ms();
    let batch = match body.and_then(|ApiJson(b)| telemetry::validate(&b, now_ms).map(|()| b)) {
        Ok(b) => b,
        Err(e) => {
            state.telemetry.metrics.batch("rejected");
            return Err(e);
        }
    };
    // The token names the service; nothing in the body can redirect a batch.
    // The hub remembers ids, so this costs no query after the first batch.
    let Some(service_id) = state
        .hub
        .service_id(&agent.service, &agent.environment)
        .await?
    else {
        state.telemetry.metrics.batch("rejected");
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_service",
            format!(
                "{} is not registered in {}",
                agent.service, agent.environment
            ),
        ));
    };
    let accepted = state
        .telemetry
        .ingest(
            service_id,
            &agent.service,
            &agent.environment,
            &batch,
            now_ms,
        )
        .await?;
    Ok(axum::Json(TelemetryAck { accepted }))
}

/// The window of a live read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct WindowQuery {
    /// Seconds to cover, 1 to 900 (15 minutes are kept in memory); 300 when absent.
    pub window_secs: Option<u64>,
}

/// One service's live figures per dependency, with a time series for charts
/// (at most 300 points; the step widens for longer windows).
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/telemetry", tag = "fleet",
    params(("name" = String, Path), ("env" = String, Path), WindowQuery),
    responses((status = 200, body = ServiceTelemetry)))]
pub async fn service_telemetry(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    query: Result<Query<WindowQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<ServiceTelemetry>> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|_| {
        ApiError::invalid(
            "window_secs",
            "window_secs must be a whole number of seconds",
        )
    })?;
    let window_secs = q.window_secs.unwrap_or(300);
    if !(1..=telemetry::live::HORIZON_SECS as u64).contains(&window_secs) {
        return Err(ApiError::invalid(
            "window_secs",
            "window_secs must be between 1 and 900",
        ));
    }
    let service = state
        .store
        .service(&name, &env)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no service {name} in {env}")))?;
    Ok(axum::Json(
        telemetry::service_view(&state, &service, window_secs).await?,
    ))
}

/// Every service's summary over the last minute: breaker states, degraded
/// and fallback rates, retry amplification, sheds and lagging instances.
#[utoipa::path(get, path = "/api/v1/fleet/live", tag = "fleet",
    responses((status = 200, body = FleetLive)))]
pub async fn fleet_live(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<axum::Json<FleetLive>> {
    user.require(Permission::Read)?;
    Ok(axum::Json(telemetry::fleet_view(&state).await?))
}

/// Counts an open stream for `/metrics` until the stream is dropped.
struct Subscriber(AppState);

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.0.telemetry.metrics.subscribers.dec();
    }
}

/// Server-sent events for dashboards: a `fleet` event ([`FleetLive`]) on
/// connect, then again whenever it changes (checked about every second and
/// on every batch), with keep-alive comments every 15 s.
#[utoipa::path(get, path = "/api/v1/live", tag = "fleet",
    responses((status = 200, description = "text/event-stream of `fleet` events (FleetLive)", content_type = "text/event-stream")))]
pub async fn live(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    user.require(Permission::Read)?;
    // Subscribe before computing, so that nothing published in between is lost.
    let rx = state.telemetry.subscribe_fleet();
    let first: Arc<str> = serde_json::to_string(&telemetry::fleet_view(&state).await?)
        .map_err(|e| ApiError::internal(&e))?
        .into();
    state.telemetry.metrics.subscribers.inc();
    let guard = Subscriber(state.clone());
    let every = state.settings.stream_recheck;
    let recheck = tokio::time::Instant::now() + every;
    let events = stream::unfold(
        (rx, Some(first.clone()), first, guard, recheck),
        move |(mut rx, pending, mut sent, guard, mut recheck)| {
            let user = user.clone();
            async move {
                if let Some(json) = pending {
                    return Some((
                        Ok(Event::default().event(FLEET_EVENT).data(json.as_ref())),
                        (rx, None, sent, guard, recheck),
                    ));
                }
                loop {
                    tokio::select! {
                        // The sender lives as long as the app; an error means shutdown.
                        changed = rx.changed() => changed.ok()?,
                        () = tokio::time::sleep_until(recheck) => {
                            // Signed out, disabled or demoted: the feed
                            // stops, rather than outliving the session.
                            let app = &guard.0;
                            match app.auth.session_still_valid(&app.store, &user, app.clock.now_ms()).await {
                                Ok(true) => {}
                                Ok(false) => return None,
                                Err(e) => tracing::warn!(error = %e.message, "could not re-check a live stream's session"),
                            }
                            recheck = tokio::time::Instant::now() + every;
                            continue;
                        }
                    }
                    let json = rx.borrow_and_update().clone();
                    if !json.is_empty() && json != sent {
                        sent = json.clone();
                        return Some((
                            Ok(Event::default().event(FLEET_EVENT).data(json.as_ref())),
                            (rx, None, sent, guard, recheck),
                        ));
                    }
                }
            }
        },
    );
    let events = futures_util::StreamExt::take_until(events, state.shutting_down());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
