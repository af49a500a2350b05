//! The agent protocol: what enforcement agents call with their service token.
//! A token names one service and environment; every call here is about that
//! service and no other, so no path names one.

use crate::app::AppState;
use crate::auth::ServicePrincipal;
use crate::dead_letters::{dispatch, ingest};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::policy::instances;
use crate::policy_hub::{Published, Snapshot};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use shared::protocol::{
    ActionAck, DeadLetterAck, DeadLetterReport, DlqAction, Heartbeat, HeartbeatAck, events,
};
use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agent/policy", get(policy))
        .route("/agent/stream", get(stream))
        .route("/agent/heartbeat", post(heartbeat))
        .route("/agent/dead-letters", post(dead_letter))
        .route("/agent/actions/{id}/ack", post(ack_action))
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

/// What one agent stream is waiting on.
struct StreamState {
    app: AppState,
    service_id: i64,
    instance: String,
    policy: tokio::sync::watch::Receiver<Arc<Snapshot>>,
    pending_policy: Option<Arc<Published>>,
    sent_version: Option<u64>,
    wakeups: tokio::sync::watch::Receiver<u64>,
    /// Actions this stream sent, so a wake-up does not send them again.
    sent_actions: HashSet<String>,
    queued: VecDeque<DlqAction>,
    /// When to look for work again regardless of wake-ups.
    next_look: tokio::time::Instant,
    look_now: bool,
    /// When to check next that the token is still valid.
    recheck_at: tokio::time::Instant,
    /// The token the stream was opened with.
    token_id: String,
}

fn action_event(a: &DlqAction) -> Option<Event> {
    let data = serde_json::to_string(a).ok()?;
    Some(
        Event::default()
            .event(events::ACTION)
            .id(a.id.clone())
            .data(data),
    )
}

impl StreamState {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(p) = self.pending_policy.take()
                && self.sent_version != Some(p.version)
            {
                self.sent_version = Some(p.version);
                return Some(policy_event(&p));
            }
            if let Some(a) = self.queued.pop_front() {
                if let Some(e) = action_event(&a) {
                    return Some(e);
                }
                continue;
            }
            if self.look_now {
                self.look_now = false;
                match dispatch::claim(
                    &self.app,
                    self.service_id,
                    &self.instance,
                    &mut self.sent_actions,
                )
                .await
                {
                    Ok(claimed) => {
                        self.queued.extend(claimed.actions);
                        match claimed.retry_after {
                            // More is waiting: look again once these are out.
                            Some(wait) if wait.is_zero() => self.look_now = true,
                            Some(wait) => self.next_look = tokio::time::Instant::now() + wait,
                            None => {
                                self.next_look = tokio::time::Instant::now() + dispatch::POLL_EVERY
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.message, "could not look for dead-letter actions");
                        self.next_look = tokio::time::Instant::now() + dispatch::POLL_EVERY;
                    }
                }
                continue;
            }
            tokio::select! {
                // The hub's sender lives as long as the server; an error
                // means shutdown, which ends the stream.
                changed = self.policy.changed() => {
                    changed.ok()?;
                    self.pending_policy = self.policy.borrow_and_update().for_instance(&self.instance).cloned();
                }
                woken = self.wakeups.changed() => {
                    woken.ok()?;
                    self.look_now = true;
                }
                () = tokio::time::sleep_until(self.next_look) => self.look_now = true,
                () = tokio::time::sleep_until(self.recheck_at) => {
                    // A revoked token must stop receiving policy and
                    // actions, not only be refused at its next connect.
                    match self.app.auth.token_still_valid(&self.app.store, &self.token_id).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::info!(token = %self.token_id, "ending an agent stream: its token was revoked");
                            return None;
                        }
                        // A database hiccup is not a revocation: try again.
                        Err(e) => tracing::warn!(error = %e.message, "could not re-check an agent stream's token"),
                    }
                    self.recheck_at = tokio::time::Instant::now() + self.app.settings.stream_recheck;
                }
            }
        }
    }
}

/// Server-sent events: the policy this instance should run on connect, then
/// again whenever that changes (a publish, a canary step, a rollback); the
/// approved dead-letter actions handed to this instance, including, after a
/// reconnect, those it has not acknowledged; keep-alive comments every 15 s.
#[utoipa::path(get, path = "/api/v1/agent/stream", tag = "agent", params(InstanceQuery),
    responses((status = 200, description = "text/event-stream of `policy` and `action` events", content_type = "text/event-stream")))]
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
    let mut policy = state.hub.subscribe(service_id).await?;
    let first = policy.borrow_and_update().for_instance(&instance).cloned();
    let wakeups = state.dlq.subscribe(service_id);
    let shutdown = state.shutting_down();
    let state_recheck = state.settings.stream_recheck;
    let st = StreamState {
        app: state,
        service_id,
        instance,
        policy,
        pending_policy: first,
        sent_version: None,
        wakeups,
        sent_actions: HashSet::new(),
        queued: VecDeque::new(),
        next_look: tokio::time::Instant::now(),
        look_now: true,
        recheck_at: tokio::time::Instant::now() + state_recheck,
        token_id: agent.token_id.clone(),
    };
    let events = stream::unfold(st, |mut st| async move {
        let e = st.next_event().await?;
        Some((Ok(e), st))
    });
    let events = futures_util::StreamExt::take_until(events, shutdown);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// An instance reports work that failed for good. Idempotent per run and
/// failed node: the same report again returns the same id and changes
/// nothing; changed content makes a new revision.
#[utoipa::path(post, path = "/api/v1/agent/dead-letters", tag = "agent", request_body = DeadLetterReport,
    responses((status = 200, body = DeadLetterAck),
        (status = 422, description = "A field is out of bounds; `field` names it", body = shared::api::ErrorBody),
        (status = 429, description = "The service's queue is full", body = shared::api::ErrorBody)))]
pub async fn dead_letter(
    State(state): State<AppState>,
    agent: ServicePrincipal,
    ApiJson(report): ApiJson<DeadLetterReport>,
) -> ApiResult<axum::Json<DeadLetterAck>> {
    Ok(axum::Json(ingest::ingest(&state, &agent, &report).await?))
}

/// An instance reports what became of an action it was sent. A repeated
/// identical outcome is accepted; a different one is 409.
#[utoipa::path(post, path = "/api/v1/agent/actions/{id}/ack", tag = "agent",
    params(("id" = String, Path)), request_body = ActionAck,
    responses((status = 204, description = "Recorded"),
        (status = 404, description = "No such action for this service", body = shared::api::ErrorBody),
        (status = 409, description = "Not dispatched, or a different outcome is recorded", body = shared::api::ErrorBody)))]
pub async fn ack_action(
    State(state): State<AppState>,
    agent: ServicePrincipal,
    Path(id): Path<String>,
    ApiJson(ack): ApiJson<ActionAck>,
) -> ApiResult<StatusCode> {
    dispatch::ack(&state, &agent, &id, &ack).await?;
    Ok(StatusCode::NO_CONTENT)
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
