//! Silences (alerts still fire and show, but notify nobody for a while)
//! and acknowledgements (someone is on it).

use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::store::{AuditRecord, Changed, SilenceRow};
use serde_json::json;
use shared::api::{SilenceView, SilenceWrite};

/// The longest a silence may last: longer than a week is not a silence but
/// a disabled rule, and should be one.
pub const MAX_DURATION_S: u32 = 7 * 86_400;
const MAX_REASON: usize = 500;

/// Silences in force at `now`.
pub async fn active(app: &App, now: i64) -> ApiResult<Vec<SilenceRow>> {
    Ok(app.store.silences(now, false).await?)
}

/// The first silence among `silences` that matches an alert of `rule` on
/// `service`/`environment`.
pub fn matching(
    silences: &[SilenceRow],
    rule: &str,
    service: &str,
    environment: &str,
) -> Option<String> {
    silences
        .iter()
        .find(|s| {
            s.rule.as_deref().is_none_or(|r| r == rule)
                && s.service.as_deref().is_none_or(|v| v == service)
                && s.environment.as_deref().is_none_or(|e| e == environment)
        })
        .map(|s| s.id.clone())
}

fn view(s: SilenceRow) -> SilenceView {
    SilenceView {
        id: s.id,
        rule: s.rule,
        service: s.service,
        environment: s.environment,
        reason: s.reason,
        created_by: s.created_by,
        starts_at_ms: s.starts_at,
        ends_at_ms: s.ends_at,
        ended_by: s.ended_by,
    }
}

/// Creates a silence from now for `duration_s`.
pub async fn create(app: &App, user: &UserPrincipal, req: &SilenceWrite) -> ApiResult<SilenceView> {
    crate::fields::word("rule", req.rule.as_deref(), 100)?;
    crate::fields::word("service", req.service.as_deref(), 100)?;
    crate::fields::word("environment", req.environment.as_deref(), 100)?;
    if req.duration_s == 0 || req.duration_s > MAX_DURATION_S {
        return Err(ApiError::invalid(
            "duration_s",
            format!("must be from 1 to {MAX_DURATION_S} seconds (7 days)"),
        ));
    }
    if req.reason.trim().is_empty() || req.reason.chars().count() > MAX_REASON {
        return Err(ApiError::invalid(
            "reason",
            format!("say why, in at most {MAX_REASON} characters"),
        ));
    }
    if req.rule.is_none() && req.service.is_none() && req.environment.is_none() {
        return Err(ApiError::invalid(
            "rule",
            "a silence must name a rule, a service or an environment; silencing everything hides every incident",
        ));
    }
    if let Some(rule) = &req.rule
        && app.store.alert_rule(rule).await?.is_none()
    {
        return Err(ApiError::invalid(
            "rule",
            format!("there is no alert rule `{rule}`"),
        ));
    }
    let now = app.clock.now_ms();
    let row = SilenceRow {
        id: format!("si-{}", crate::auth::random_hex(8)),
        rule: req.rule.clone(),
        service: req.service.clone(),
        environment: req.environment.clone(),
        reason: req.reason.trim().to_owned(),
        created_by: user.actor(),
        starts_at: now,
        ends_at: now + i64::from(req.duration_s) * 1000,
        ended_by: None,
    };
    app.store
        .create_silence(
            &row,
            &AuditRecord::new(
                user.actor(),
                "silence.create",
                format!("silence:{}", row.id),
                json!({ "rule": row.rule, "service": row.service, "environment": row.environment,
                        "ends_at_ms": row.ends_at, "reason": row.reason }),
            ),
        )
        .await?;
    Ok(view(row))
}

/// Silences in force, or those of the last week as well when `all`.
pub async fn list(app: &App, all: bool) -> ApiResult<Vec<SilenceView>> {
    Ok(app
        .store
        .silences(app.clock.now_ms(), all)
        .await?
        .into_iter()
        .map(view)
        .collect())
}

/// Ends a silence now.
pub async fn end(app: &App, user: &UserPrincipal, id: &str) -> ApiResult<()> {
    let audit = AuditRecord::new(
        user.actor(),
        "silence.end",
        format!("silence:{id}"),
        json!({}),
    );
    match app
        .store
        .end_silence(id, &user.actor(), app.clock.now_ms(), &audit)
        .await?
    {
        Changed::Done => Ok(()),
        Changed::Missing => Err(ApiError::not_found(format!("no silence `{id}`"))),
        Changed::Refused => Err(ApiError::conflict(
            "id",
            format!("silence `{id}` has already ended"),
        )),
    }
}

/// Acknowledges a firing alert: someone is on it.
pub async fn acknowledge(app: &App, user: &UserPrincipal, id: &str) -> ApiResult<()> {
    let audit = AuditRecord::new(
        user.actor(),
        "alert.acknowledge",
        format!("alert:{id}"),
        json!({}),
    );
    match app
        .store
        .acknowledge_alert(id, &user.actor(), app.clock.now_ms(), &audit)
        .await?
    {
        Changed::Done => Ok(()),
        Changed::Missing => Err(ApiError::not_found(format!("no alert `{id}`"))),
        Changed::Refused => Err(ApiError::conflict(
            "id",
            format!("alert `{id}` is not firing, or is already acknowledged"),
        )),
    }
}
