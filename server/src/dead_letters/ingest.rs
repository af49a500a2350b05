//! Agents report dead letters. A report is checked field by field (a bad
//! one is a 422 naming the field), stored idempotently per (service, run,
//! node), bounded per service, and written in a group commit with the
//! other reports arriving at the same moment.

use crate::app::App;
use crate::auth::ServicePrincipal;
use crate::error::{ApiError, ApiResult};
use crate::policy::instances::no_policy;
use crate::store::{IngestWrite, Ingested};
use axum::http::StatusCode;
use shared::protocol::{DeadLetterAck, DeadLetterReport};

/// The longest run id, task type or node name accepted.
pub const MAX_ID_LEN: usize = 256;
/// The longest error message accepted; agents truncate before sending.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The longest checkpoint reference accepted.
pub const MAX_CHECKPOINT_LEN: usize = 1024;
/// More attempts than this is not a retry policy, it is a bug.
pub const MAX_RETRY_COUNT: u32 = 10_000;
/// How far ahead of the server's clock an agent's clock may run.
const MAX_CLOCK_SKEW_MS: i64 = 24 * 3600 * 1000;

fn identifier(field: &str, value: &str) -> ApiResult<()> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(ApiError::invalid(
            field,
            format!("{field} is 1 to {MAX_ID_LEN} characters"),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            field,
            format!("{field} is printable ASCII without spaces"),
        ));
    }
    Ok(())
}

/// Checks a report's fields against what the control plane stores.
pub fn check(report: &DeadLetterReport, now_ms: i64) -> ApiResult<()> {
    identifier("run_id", &report.run_id)?;
    identifier("task_type", &report.task_type)?;
    identifier("failed_node", &report.failed_node)?;
    if report.error_message.len() > MAX_MESSAGE_LEN {
        return Err(ApiError::invalid(
            "error_message",
            format!("error_message is at most {MAX_MESSAGE_LEN} bytes; truncate it"),
        ));
    }
    if report
        .error_message
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::invalid(
            "error_message",
            "error_message holds control characters",
        ));
    }
    if report.retry_count > MAX_RETRY_COUNT {
        return Err(ApiError::invalid(
            "retry_count",
            format!("retry_count is at most {MAX_RETRY_COUNT}"),
        ));
    }
    if let Some(cp) = &report.last_checkpoint
        && (cp.is_empty() || cp.len() > MAX_CHECKPOINT_LEN || cp.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "last_checkpoint",
            format!(
                "last_checkpoint is 1 to {MAX_CHECKPOINT_LEN} characters without control characters"
            ),
        ));
    }
    let hash = &report.payload_hash;
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ApiError::invalid(
            "payload_hash",
            "payload_hash is a SHA-256 in 64 lower-case hex digits",
        ));
    }
    if report.created_at_ms <= 0 || report.created_at_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS)
    {
        return Err(ApiError::invalid(
            "created_at_ms",
            "created_at_ms is Unix milliseconds, not in the future",
        ));
    }
    Ok(())
}

/// Stores a report from `agent`'s service and answers with the entry's id.
pub async fn ingest(
    app: &App,
    agent: &ServicePrincipal,
    report: &DeadLetterReport,
) -> ApiResult<DeadLetterAck> {
    let now = app.clock.now_ms();
    check(report, now)?;
    let service_id = app
        .hub
        .service_id(&agent.service, &agent.environment)
        .await?
        .ok_or_else(|| no_policy(agent))?;
    let max_live = app.settings.dead_letter_max_live;
    match app
        .dlq
        .reports(app)
        .write(IngestWrite {
            service_id,
            report: report.clone(),
            new_id: format!("dl-{}", crate::auth::random_hex(12)),
            actor: format!("token:{}", agent.token_id),
            max_live,
        })
        .await?
    {
        Ingested::Created(id) | Ingested::Unchanged(id) | Ingested::Updated(id) => {
            Ok(DeadLetterAck { id })
        }
        Ingested::Full => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "dead_letter_queue_full",
            format!(
                "{} in {} already has {max_live} dead letters waiting; act on them first",
                agent.service, agent.environment
            ),
        )),
    }
}
