//! The one approval engine: the four-eyes rules that policy publishes and
//! dead-letter actions share.
//!
//! - Nobody decides their own request: compared by username, whatever the
//!   role and from whichever session (an admin included).
//! - Only people decide: service tokens never reach these functions, since
//!   the deciding endpoints take a user principal.
//! - A decision carries a reason.
//! - A decision binds to what the decider saw; callers refuse with 409 when
//!   the thing decided on changed since (see [`stale`]).
//! - An approval holds only while its approver still may approve, which
//!   [`still_approver`] checks again at the moment the approval is used.

use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use shared::role::Permission;

/// The longest reason accepted.
pub const MAX_REASON_LEN: usize = 2000;

/// Refuses a decision on one's own request (403, `own_request`).
pub fn four_eyes(requested_by: &str, decider: &UserPrincipal) -> ApiResult<()> {
    if requested_by == decider.actor() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "own_request",
            "nobody approves, rejects or decides their own request; ask another approver",
        ));
    }
    Ok(())
}

/// A required free-text reason: trimmed, not empty, bounded.
pub fn reason(field: &str, text: &str) -> ApiResult<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::invalid(field, format!("{field} is required")));
    }
    if text.len() > MAX_REASON_LEN {
        return Err(ApiError::invalid(
            field,
            format!("{field} is at most {MAX_REASON_LEN} bytes"),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid(
            field,
            format!("{field} holds control characters"),
        ));
    }
    Ok(text.to_owned())
}

/// 409 `stale`: what the decision was about changed since it was seen.
pub fn stale(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "stale", message)
}

/// Whether the user an audit actor (`user:NAME`) names still exists, is
/// enabled and holds a role that may approve. `Err` says why not.
pub async fn still_approver(app: &App, actor: &str) -> ApiResult<Result<(), String>> {
    let Some(name) = actor.strip_prefix("user:") else {
        return Ok(Err(format!("{actor} is not a person")));
    };
    let Some(user) = app.store.user_by_username(name).await? else {
        return Ok(Err(format!("{name} no longer exists")));
    };
    if user.disabled {
        return Ok(Err(format!("{name} has been disabled")));
    }
    if !user.role.allows(Permission::Approve) {
        return Ok(Err(format!(
            "{name} is now {} and may no longer approve",
            user.role
        )));
    }
    Ok(Ok(()))
}
