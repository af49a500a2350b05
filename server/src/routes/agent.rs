//! The agent protocol: what enforcement agents call with their service token.
//! A token names one service and environment; every call here is about that
//! service and no other, so no path names one.

use crate::app::AppState;
use crate::auth::ServicePrincipal;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::policy::instances;
use crate::policy_hub::Published;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use shared::protocol::{Heartbeat, HeartbeatAck, events};
use std::convert::Infallible;
use std::time::Duration;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agent/policy", get(policy))
        .route("/agent/stream", get(stream))
        .route("/agent/heartbeat", post(heartbeat))
}

/// Which instance is asking; decides canary membership.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct InstanceQuery {
    /// The agent's instance id (1 to 128 printable ASCII characters).
    pub instance_id: String,
}

fn instance_query(
    query: Result<Query<InstanceQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<String> {
    let Query(q) = query.map_err(|_| {
        ApiError::invalid("instance_id", "the instance_id query parameter is required")
    })?;
    instances::check_instance_id(&q.instance_id)?;
    Ok(q.instance_id)
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

/// Whether `If-None-Match` names this ETag (weak or strong, or `*`).
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    let want = quoted(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == want || t == "*")
}

/// The policy this instance should enforce, with an `ETag`; a matching
/// `If-None-Match` gets 304 and no body.
#[utoipa::path(get, path = "/api/v1/agent/policy", tag = "agent", params(InstanceQuery),
    responses(
        (status = 200, body = shared::protocol::PolicyEnvelope),
        (status = 304, description = "Unchanged since the ETag in If-None-Match"),
        (status = 404, description = "Nothing published yet", body = shared::api::ErrorBody),
    ))]
pub async fn policy(
    State(state): State<AppState>,
    agent: ServicePrincipal,
    query: Result<Query<InstanceQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let instance = instance_query(query)?;
    let (_, snapshot) = instances::rollout_of(&state, &agent).await?;
    let published = snapshot
        .for_instance(&instance)
        .ok_or_else(|| instances::no_policy(&agent))?;
    let etag =
        HeaderValue::from_str(&quoted(&published.etag)).map_err(|e| ApiError::internal(&e))?;
    let cache = HeaderValue::from_static("no-cache");
    if matches_etag(&headers, &published.etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        [
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        published.json.to_string(),
    )
        .into_response())
}

fn policy_event(p: &Published) -> Event {
    Event::default()
        .event(events::POLICY)
        .id(p.version.to_string())
        .data(p.json.as_ref())
}

/// Server-sent events: the policy this instance should run on connect, then
/// again whenever that changes (a publish, a canary step, a rollback), with
/// keep-alive comments every 15 s.
#[utoipa::path(get, path = "/api/v1/agent/stream", tag = "agent", params(InstanceQuery),
    responses((status = 200, description = "text/event-stream of `policy` events", content_type = "text/event-stream")))]
pub async fn stream(
    State(state): State<AppState>,
    agent: ServicePrincipal,
    query: Result<Query<InstanceQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let instance = instance_query(query)?;
    let service_id = state
        .hub
        .service_id(&agent.service, &agent.environment)
        .await?
        .ok_or_else(|| instances::no_policy(&agent))?;
    let mut rx = state.hub.subscribe(service_id).await?;
    let first = rx.borrow_and_update().for_instance(&instance).cloned();
    let events = stream::unfold(
        (rx, first, None::<u64>),
        move |(mut rx, mut pending, mut sent)| {
            let instance = instance.clone();
            async move {
                loop {
                    if let Some(p) = pending.take()
                        && sent != Some(p.version)
                    {
                        sent = Some(p.version);
                        return Some((Ok(policy_event(&p)), (rx, None, sent)));
                    }
                    // The hub's sender lives as long as the server; an error
                    // means shutdown, which ends the stream.
                    rx.changed().await.ok()?;
                    pending = rx.borrow_and_update().for_instance(&instance).cloned();
                }
            }
        },
    );
    let events = futures_util::StreamExt::take_until(events, state.shutting_down());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// An instance reports that it is alive and which version it enforces.
#[utoipa::path(post, path = "/api/v1/agent/heartbeat", tag = "agent", request_body = Heartbeat,
    responses((status = 200, body = HeartbeatAck)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    agent: ServicePrincipal,
    ApiJson(beat): ApiJson<Heartbeat>,
) -> ApiResult<axum::Json<HeartbeatAck>> {
    Ok(axum::Json(
        instances::heartbeat(&state, &agent, beat).await?,
    ))
}
