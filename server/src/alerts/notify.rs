//! Webhooks and the delivery of notifications.
//!
//! A notification is queued in the same transaction as the alert's move
//! (see `evaluate`), then delivered from that outbox by any replica: each
//! claim hides it from the others while one attempt is made. A failed
//! attempt is retried after a capped, fully jittered exponential backoff,
//! for up to a day; after five failures in a row the webhook's breaker
//! opens and deliveries to it wait, longer each time, so a receiver that is
//! down is not hammered and one that comes back gets everything it missed.
//! Every request is signed with the webhook's own secret.

use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::store::{
    AlertRow, AuditRecord, ClaimedNotification, DeliveryOutcome, NewNotification, WebhookRow,
};
use axum::body::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use sha2::Sha256;
use shared::api::{AlertNotification, AlertRuleWrite, AlertState, WebhookView, WebhookWrite};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Failures in a row that open a webhook's breaker.
pub const BREAKER_THRESHOLD: i64 = 5;
/// How long the breaker stays open the first time; it doubles with each
/// failure after that, up to [`BREAKER_MAX_OPEN_MS`].
pub const BREAKER_OPEN_MS: i64 = 30_000;
/// The longest the breaker stays open.
pub const BREAKER_MAX_OPEN_MS: i64 = 600_000;
/// The first retry waits up to this long (full jitter: anywhere from zero).
pub const BACKOFF_BASE_MS: u64 = 1_000;
/// No retry waits longer than this.
pub const BACKOFF_CAP_MS: u64 = 300_000;
/// How long a notification is retried before it is given up.
pub const GIVE_UP_AFTER_MS: i64 = 86_400_000;
/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed notification is hidden from other replicas: longer
/// than an attempt can take.
const CLAIM_HOLD_MS: i64 = 30_000;
const CLAIM_BATCH: i64 = 50;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> &'static HttpClient {
    static CLIENT: OnceLock<HttpClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Client::builder(TokioExecutor::new()).build(connector)
    })
}

/// Delivers due notifications every second on this replica.
pub fn start(app: &Arc<App>) {
    if app.settings.alert_interval.is_none() {
        return;
    }
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { return };
            if let Err(e) = deliver_due(&app).await {
                tracing::warn!(error = %e.message, "alert notification delivery failed");
            }
        }
    });
}

/// The notifications an alert's move makes: one per webhook the rule
/// names, none while a silence holds it.
pub fn notifications_for(
    rule: &AlertRuleWrite,
    row: &AlertRow,
    event: AlertState,
    silenced_by: Option<String>,
) -> ApiResult<Vec<NewNotification>> {
    if silenced_by.is_some() || rule.notify.is_empty() {
        return Ok(Vec::new());
    }
    let alert = super::alert_view(row.clone(), rule, None)?;
    let payload = serde_json::to_string(&AlertNotification {
        event,
        runbook_path: format!("/runbooks/{}", shared::paths::segment(&rule.runbook)),
        alert,
    })
    .map_err(|e| ApiError::internal(&e))?;
    Ok(rule
        .notify
        .iter()
        .map(|webhook_id| NewNotification {
            id: format!("nt-{}", crate::auth::random_hex(10)),
            webhook_id: webhook_id.clone(),
            payload: payload.clone(),
        })
        .collect())
}

/// `sha256=HEX`: the HMAC-SHA256 of `TIMESTAMP.BODY` under `secret`. The
/// timestamp is inside the signature so that a captured request cannot be
/// replayed later with a fresh timestamp.
pub fn signature(secret: &str, timestamp_s: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before retry `attempt` (from 1): capped exponential, with full
/// jitter so that many failed deliveries do not retry in step.
pub fn backoff_ms(attempt: i64) -> i64 {
    let shift = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let ceiling = BACKOFF_BASE_MS
        .saturating_mul(1u64 << shift)
        .min(BACKOFF_CAP_MS);
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    let draw = u64::from_le_bytes(buf) % (ceiling + 1);
    i64::try_from(draw).unwrap_or(i64::MAX)
}

/// Claims and attempts the notifications that are due now. Returns how
/// many were delivered.
pub async fn deliver_due(app: &App) -> ApiResult<usize> {
    let now = app.clock.now_ms();
    let claimed = app
        .store
        .claim_notifications(now, CLAIM_HOLD_MS, CLAIM_BATCH)
        .await?;
    let attempts = claimed.into_iter().map(|n| async move {
        let outcome = attempt(&n, app.clock.now_ms()).await;
        (n, outcome)
    });
    let mut delivered = 0;
    for (n, result) in futures_util::future::join_all(attempts).await {
        let now = app.clock.now_ms();
        let outcome = match result {
            Ok(()) => {
                delivered += 1;
                DeliveryOutcome::Delivered
            }
            Err(error) => {
                let failures = app.store.webhook_failures(&n.webhook_id).await? + 1;
                let open_until = (failures >= BREAKER_THRESHOLD).then(|| {
                    let doublings =
                        u32::try_from((failures - BREAKER_THRESHOLD).min(10)).unwrap_or(10);
                    now + (BREAKER_OPEN_MS << doublings).min(BREAKER_MAX_OPEN_MS)
                });
                let retry_at = (now - n.created_at < GIVE_UP_AFTER_MS)
                    .then(|| now + backoff_ms(n.attempts).max(1))
                    .map(|at| open_until.map_or(at, |open| at.max(open)));
                tracing::warn!(notification = %n.id, webhook = %n.webhook_id, attempts = n.attempts, %error,
                    "alert notification not delivered");
                DeliveryOutcome::Failed {
                    error,
                    retry_at,
                    open_until,
                }
            }
        };
        app.store
            .record_delivery(&n.id, &n.webhook_id, &outcome, now)
            .await?;
    }
    Ok(delivered)
}

async fn attempt(n: &ClaimedNotification, now_ms: i64) -> Result<(), String> {
    let timestamp = now_ms.div_euclid(1000);
    let body = Bytes::from(n.payload.clone());
    let request = hyper::Request::post(&n.url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("ballast/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-ballast-delivery", &n.id)
        .header("x-ballast-timestamp", timestamp.to_string())
        .header(
            "x-ballast-signature",
            signature(&n.secret, timestamp, &body),
        )
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    match tokio::time::timeout(ATTEMPT_TIMEOUT, client().request(request)).await {
        Err(_) => Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(format!("cannot reach the receiver: {e}")),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("the receiver answered {}", response.status())),
    }
}

fn check_url(url: &str) -> ApiResult<()> {
    let parsed: hyper::Uri = url
        .parse()
        .map_err(|_| ApiError::invalid("url", "must be an absolute http:// URL"))?;
    match parsed.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(ApiError::invalid(
                "url",
                "https is not supported yet: send notifications through an HTTP egress proxy that terminates TLS",
            ));
        }
        _ => return Err(ApiError::invalid("url", "must be an absolute http:// URL")),
    }
    if parsed.host().is_none_or(str::is_empty) || url.len() > 2000 {
        return Err(ApiError::invalid(
            "url",
            "must name a host, in at most 2000 characters",
        ));
    }
    Ok(())
}

fn view(row: WebhookRow, pending: i64) -> WebhookView {
    WebhookView {
        id: row.id,
        name: row.name,
        url: row.url,
        created_by: row.created_by,
        created_at_ms: row.created_at,
        consecutive_failures: u32::try_from(row.consecutive_failures).unwrap_or(u32::MAX),
        breaker_open_until_ms: row.open_until,
        pending: u64::try_from(pending).unwrap_or(0),
    }
}

/// Stores a webhook. The secret is kept to sign with and never shown again.
pub async fn create(app: &App, user: &UserPrincipal, req: &WebhookWrite) -> ApiResult<WebhookView> {
    if req.name.trim().is_empty() || req.name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "must be 1 to 100 characters"));
    }
    check_url(&req.url)?;
    if !(16..=256).contains(&req.secret.chars().count()) {
        return Err(ApiError::invalid("secret", "must be 16 to 256 characters"));
    }
    let row = WebhookRow {
        id: format!("wh-{}", crate::auth::random_hex(6)),
        name: req.name.trim().to_owned(),
        url: req.url.clone(),
        secret: req.secret.clone(),
        created_by: user.actor(),
        created_at: app.clock.now_ms(),
        consecutive_failures: 0,
        open_until: None,
    };
    app.store
        .create_webhook(
            &row,
            &AuditRecord::new(
                user.actor(),
                "webhook.create",
                format!("webhook:{}", row.id),
                json!({ "name": row.name, "url": row.url }),
            ),
        )
        .await?;
    Ok(view(row, 0))
}

/// Webhooks in use.
pub async fn list(app: &App) -> ApiResult<Vec<WebhookView>> {
    Ok(app
        .store
        .webhooks()
        .await?
        .into_iter()
        .map(|(row, pending)| view(row, pending))
        .collect())
}

/// Stops using a webhook; what it had not received fails.
pub async fn delete(app: &App, user: &UserPrincipal, id: &str) -> ApiResult<()> {
    let gone = app
        .store
        .delete_webhook(
            id,
            app.clock.now_ms(),
            &AuditRecord::new(
                user.actor(),
                "webhook.delete",
                format!("webhook:{id}"),
                json!({}),
            ),
        )
        .await?;
    if gone {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no webhook `{id}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let a = signature("0123456789abcdef", 1_700_000_000, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, signature("0123456789abcdef", 1_700_000_001, b"{}"));
        assert_ne!(a, signature("0123456789abcdef", 1_700_000_000, b"{ }"));
        assert_ne!(a, signature("0123456789abcdeg", 1_700_000_000, b"{}"));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        for attempt in 1..40 {
            let ms = backoff_ms(attempt);
            let ceiling = (BACKOFF_BASE_MS << (attempt - 1).min(30)).min(BACKOFF_CAP_MS);
            assert!((0..=ceiling as i64).contains(&ms), "{attempt}: {ms}");
        }
        let draws: std::collections::HashSet<i64> = (0..50).map(|_| backoff_ms(12)).collect();
        assert!(draws.len() > 10, "full jitter spreads retries out");
    }
}
