//! Reading the queue: searches, the entry page, the approvals inbox and
//! the figures of a service's queue.

use super::{Rules, action_view, entry_view};
use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::store::{DeadLetterFilter, ServiceRow};
use shared::api::{
    ActionStatus, ActionView, ApprovalRequirement, DeadLetterDetail, DeadLetterEvent,
    DeadLetterPage, DeadLetterStatus, DeadLetterSummary, InboxCount, NamedCount,
};
use shared::policy::ErrorClass;
use shared::protocol::DlqActionKind;

/// The largest page.
pub const MAX_LIMIT: u32 = 200;
/// The page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;

/// A search as the query string states it.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Service name.
    pub service: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Task type.
    pub task_type: Option<String>,
    /// Failed node.
    pub failed_node: Option<String>,
    /// Error class, such as `timeout`.
    pub error_type: Option<String>,
    /// `open`, `pending`, `redriven`, `cancelled`, `completed` or `escalated`.
    pub status: Option<String>,
    /// Only entries at least this old, in seconds.
    pub min_age_s: Option<u64>,
    /// Only entries at most this old, in seconds.
    pub max_age_s: Option<u64>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

fn cursor_of(received_at: i64, id: &str) -> String {
    format!("{received_at}.{id}")
}

fn parse_cursor(c: &str) -> ApiResult<(i64, &str)> {
    c.split_once('.')
        .and_then(|(at, id)| Some((at.parse().ok()?, id)))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| ApiError::invalid("cursor", "cursor is a next_cursor from an earlier page"))
}

fn age_bound(now: i64, age_s: Option<u64>) -> Option<i64> {
    age_s.map(|s| now.saturating_sub(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000)))
}

/// One page of entries matching `q`, newest first.
pub async fn search(app: &App, q: &SearchQuery) -> ApiResult<DeadLetterPage> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit is 1 to {MAX_LIMIT}"),
        ));
    }
    if let Some(e) = q.error_type.as_deref()
        && ErrorClass::from_name(e).is_none()
    {
        return Err(ApiError::invalid(
            "error_type",
            format!("{e:?} is not an error class"),
        ));
    }
    if let Some(s) = q.status.as_deref()
        && DeadLetterStatus::from_name(s).is_none()
    {
        return Err(ApiError::invalid(
            "status",
            format!("{s:?} is not a dead-letter status"),
        ));
    }
    let now = app.clock.now_ms();
    let filter = DeadLetterFilter {
        service: q.service.as_deref(),
        environment: q.environment.as_deref(),
        task_type: q.task_type.as_deref(),
        failed_node: q.failed_node.as_deref(),
        error_type: q.error_type.as_deref(),
        status: q.status.as_deref(),
        received_before: age_bound(now, q.min_age_s),
        received_after: age_bound(now, q.max_age_s),
        before: q.cursor.as_deref().map(parse_cursor).transpose()?,
    };
    let mut rows = app
        .store
        .dead_letters(&filter, i64::from(limit) + 1)
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|r| cursor_of(r.received_at, &r.id)))
        .flatten();
    Ok(DeadLetterPage {
        entries: rows.into_iter().map(entry_view).collect::<ApiResult<_>>()?,
        next_cursor,
    })
}

/// An entry with its actions, history and what each action would need.
pub async fn detail(app: &App, id: &str) -> ApiResult<DeadLetterDetail> {
    let row = app
        .store
        .dead_letter(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such dead letter"))?;
    let rules = Rules::of(app, row.service_id).await?;
    let approval_needed = DlqActionKind::ALL
        .iter()
        .map(|&kind| ApprovalRequirement {
            kind,
            reasons: rules.approval_reasons(kind, &row.task_type),
        })
        .collect();
    let actions = app
        .store
        .dlq_actions(Some(id), None, None, 200)
        .await?
        .into_iter()
        .map(action_view)
        .collect::<ApiResult<_>>()?;
    let events = app
        .store
        .dead_letter_events(id)
        .await?
        .into_iter()
        .map(|e| DeadLetterEvent {
            at_ms: e.at,
            actor: e.actor,
            event: e.event,
            action_id: e.action_id,
            detail: e.detail,
        })
        .collect();
    Ok(DeadLetterDetail {
        entry: super::entry_view(row)?,
        actions,
        events,
        approval_needed,
    })
}

/// Actions, newest first, filtered by status and service.
pub async fn actions(
    app: &App,
    status: Option<&str>,
    service: Option<(&str, &str)>,
) -> ApiResult<Vec<ActionView>> {
    if let Some(s) = status
        && ActionStatus::from_name(s).is_none()
    {
        return Err(ApiError::invalid(
            "status",
            format!("{s:?} is not an action status"),
        ));
    }
    app.store
        .dlq_actions(None, status, service, 500)
        .await?
        .into_iter()
        .map(action_view)
        .collect()
}

/// What waits for `user`'s decision: others' requests, if they may decide.
pub async fn inbox_count(app: &App, user: &UserPrincipal) -> ApiResult<InboxCount> {
    if !user.me.role.allows(shared::role::Permission::Approve) {
        return Ok(InboxCount {
            actions: 0,
            publishes: 0,
        });
    }
    let me = user.actor();
    let actions = app.store.dlq_actions_awaiting(&me).await?;
    let publishes = app.store.pending_publish_requests_not_by(&me).await?;
    Ok(InboxCount {
        actions: actions.max(0) as u64,
        publishes: publishes.max(0) as u64,
    })
}

const HOUR_MS: i64 = 3_600_000;

/// Depth at the end of each of the last 24 hours, oldest first.
fn depth_by_hour(now: i64, spans: &[(i64, Option<i64>)]) -> Vec<u64> {
    (0..24)
        .rev()
        .map(|h| {
            let t = now - h * HOUR_MS;
            spans
                .iter()
                .filter(|(received, resolved)| *received <= t && resolved.is_none_or(|r| r > t))
                .count() as u64
        })
        .collect()
}

/// The queue of `service` in figures.
pub async fn summary(app: &App, service: &ServiceRow) -> ApiResult<DeadLetterSummary> {
    let now = app.clock.now_ms();
    let named = |rows: Vec<(String, i64)>| {
        rows.into_iter()
            .map(|(name, n)| NamedCount {
                name,
                count: n.max(0) as u64,
            })
            .collect::<Vec<_>>()
    };
    let spans = app
        .store
        .dead_letter_spans(service.id, now - 24 * HOUR_MS)
        .await?;
    let live: Vec<i64> = spans
        .iter()
        .filter(|(_, resolved)| resolved.is_none())
        .map(|(received, _)| *received)
        .collect();
    Ok(DeadLetterSummary {
        as_of_ms: now,
        depth: live.len() as u64,
        oldest_age_ms: live.iter().min().map(|r| now - r),
        top_error_types: named(app.store.dead_letter_top(service.id, false, 5).await?),
        top_failed_nodes: named(app.store.dead_letter_top(service.id, true, 5).await?),
        depth_by_hour: depth_by_hour(now, &spans),
        awaiting_approval: app
            .store
            .dlq_action_count(service.id, "requested")
            .await?
            .max(0) as u64,
        uncertain: app
            .store
            .dlq_action_count(service.id, "uncertain")
            .await?
            .max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_what_was_live_at_each_hour_end() {
        let now = 100 * HOUR_MS;
        let spans = [
            // Live all day.
            (now - 30 * HOUR_MS, None),
            // Arrived just after two hours ago, left just after one hour ago.
            (now - 2 * HOUR_MS + 5, Some(now - HOUR_MS + 1)),
            // Arrived in the last hour.
            (now - 10, None),
        ];
        let d = depth_by_hour(now, &spans);
        assert_eq!(d.len(), 24);
        assert_eq!(d[23], 2, "now: the first and the third");
        assert_eq!(d[22], 2, "an hour ago: the first and the second");
        assert_eq!(d[21], 1, "two hours ago the second had not yet arrived");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_a_field_error() {
        let c = cursor_of(1234, "dl-abc");
        assert_eq!(parse_cursor(&c).unwrap(), (1234, "dl-abc"));
        for bad in ["", "x.y", "12", "12."] {
            assert_eq!(
                parse_cursor(bad).unwrap_err().field.as_deref(),
                Some("cursor")
            );
        }
    }
}
