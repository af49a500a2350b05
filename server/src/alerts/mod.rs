//! Alerts on live metrics: every reliability alert leads to a runbook.
//!
//! - [`rules`]: alert rules, checked field by field; a rule without a
//!   runbook that exists is refused. A built-in pack ([`pack`]) covers the
//!   domain reference's reliability metrics from the first start.
//! - [`metrics`]: the values rules watch, computed from the one-minute
//!   rollups and the dead-letter table, which every replica shares.
//! - [`evaluate`]: one evaluator at a time (a lease in the database) moves
//!   alerts through `pending` → `firing` → `resolved`; each move is a
//!   conditional update that queues its notifications in the same
//!   transaction, so a notification is made once however many replicas run.
//! - [`notify`]: webhooks, signed with their own secret, delivered from the
//!   outbox with capped, jittered backoff behind a breaker per webhook.
//! - [`silences`]: silences and acknowledgements.
//!
//! Nothing here imports `crate::routes`.

pub mod evaluate;
pub mod metrics;
pub mod notify;
pub mod pack;
pub mod rules;
pub mod silences;

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::store::AlertRow;
use shared::api::{AlertRuleWrite, AlertState, AlertView};

/// Starts the evaluator and the notifier on this replica.
pub fn start(app: &std::sync::Arc<App>) {
    evaluate::start(app);
    notify::start(app);
}

/// The API's view of a stored alert (alerts go with their rule, so it
/// always has one), with its rule's details and the
/// silence that holds its notifications, if any.
pub fn alert_view(
    row: AlertRow,
    rule: &AlertRuleWrite,
    silenced_by: Option<String>,
) -> ApiResult<AlertView> {
    let state = AlertState::from_name(&row.state)
        .ok_or_else(|| ApiError::internal(&format!("stored alert state {:?}", row.state)))?;
    Ok(AlertView {
        id: row.id,
        metric: rule.metric,
        severity: rule.severity,
        runbook: rule.runbook.clone(),
        rule: row.rule,
        service: row.service,
        environment: row.environment,
        dependency: (!row.dependency.is_empty()).then_some(row.dependency),
        state,
        value: row.value,
        threshold: row.threshold,
        summary: row.summary,
        started_at_ms: row.started_at,
        fired_at_ms: row.fired_at,
        resolved_at_ms: row.resolved_at,
        acknowledged_by: row.acknowledged_by,
        acknowledged_at_ms: row.acknowledged_at,
        silenced_by,
    })
}

/// Which alerts to list.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `firing`, `pending` or `resolved`; every state when left out.
    pub state: Option<AlertState>,
    /// Only this service's (by name, with `environment`).
    pub service: Option<String>,
    /// The service's environment.
    pub environment: Option<String>,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<u32>,
}

async fn views(app: &App, rows: Vec<AlertRow>) -> ApiResult<Vec<AlertView>> {
    let rules: std::collections::HashMap<String, AlertRuleWrite> = app
        .store
        .alert_rules()
        .await?
        .iter()
        .map(|r| Ok((r.name.clone(), rules::definition(r)?)))
        .collect::<ApiResult<_>>()?;
    let silences = silences::active(app, app.clock.now_ms()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(rule) = rules.get(&row.rule) else {
            continue;
        };
        let silenced = if row.state == AlertState::Resolved.as_str() {
            None
        } else {
            silences::matching(&silences, &row.rule, &row.service, &row.environment)
        };
        out.push(alert_view(row, rule, silenced)?);
    }
    Ok(out)
}

/// Alerts, firing first, then pending, then resolved, newest first.
pub async fn list(app: &App, q: &AlertQuery) -> ApiResult<Vec<AlertView>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be from 1 to 500"));
    }
    let service_id = match (&q.service, &q.environment) {
        (Some(name), Some(env)) => Some(
            app.store
                .service(name, env)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no service {name}/{env}")))?
                .id,
        ),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "environment",
                "give the service's environment too",
            ));
        }
        (None, Some(_)) => return Err(ApiError::invalid("service", "give the service too")),
    };
    let states: Option<Vec<&str>> = q.state.map(|s| vec![s.as_str()]);
    let rows = app
        .store
        .alerts(states.as_deref(), service_id, i64::from(limit))
        .await?;
    views(app, rows).await
}

/// One alert.
pub async fn get(app: &App, id: &str) -> ApiResult<AlertView> {
    let row = app
        .store
        .alert(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert `{id}`")))?;
    views(app, vec![row])
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("no alert `{id}`")))
}

/// Notifications, newest first; of one alert when given.
pub async fn notifications(
    app: &App,
    alert_id: Option<&str>,
) -> ApiResult<Vec<shared::api::NotificationView>> {
    app.store
        .notifications(alert_id, 200)
        .await?
        .into_iter()
        .map(|n| {
            Ok(shared::api::NotificationView {
                event: AlertState::from_name(&n.event)
                    .ok_or_else(|| ApiError::internal(&format!("stored event {:?}", n.event)))?,
                status: shared::api::NotificationStatus::from_name(&n.status)
                    .ok_or_else(|| ApiError::internal(&format!("stored status {:?}", n.status)))?,
                id: n.id,
                alert_id: n.alert_id,
                webhook_id: n.webhook_id,
                attempts: u32::try_from(n.attempts).unwrap_or(u32::MAX),
                next_attempt_at_ms: n.next_attempt_at,
                last_error: n.last_error,
                delivered_at_ms: n.delivered_at,
            })
        })
        .collect()
}
