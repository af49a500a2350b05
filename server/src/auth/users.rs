//! User accounts: the rules the API and the CLI share, and the admin's
//! workflows.

use super::UserPrincipal;
use super::password::{self, MIN_PASSWORD_LEN};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::store::AuditRecord;
use serde_json::json;
use shared::api::{CreateUserRequest, UpdateUserRequest, UserView};
use shared::role::Role;

/// Checks a username: 1 to 64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn validate_username(username: &str) -> ApiResult<()> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "username",
            "username must be 1 to 64 characters: letters, digits, '.', '_', '-' or '@'",
        ))
    }
}

/// Checks a new password's length.
pub fn validate_password(password: &str) -> ApiResult<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        Err(ApiError::invalid(
            "password",
            format!("password must have at least {MIN_PASSWORD_LEN} characters"),
        ))
    } else if password.len() > 1024 {
        Err(ApiError::invalid(
            "password",
            "password must be at most 1024 bytes",
        ))
    } else {
        Ok(())
    }
}

/// Creates a user, audited. The password is hashed off the async executor.
pub async fn create(
    app: &App,
    admin: &UserPrincipal,
    req: CreateUserRequest,
) -> ApiResult<UserView> {
    validate_username(&req.username)?;
    validate_password(&req.password)?;
    let hash = password::hash(req.password)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let created = app
        .store
        .create_user(
            &req.username,
            &hash,
            req.role,
            app.clock.now_ms(),
            &AuditRecord::new(
                admin.actor(),
                "user.create",
                "",
                json!({ "role": req.role }),
            ),
        )
        .await?;
    Ok(created.view())
}

/// Changes a user's role or disables them, audited. The last enabled admin
/// cannot be demoted or disabled, so the installation can never lock itself
/// out.
pub async fn update(
    app: &App,
    admin: &UserPrincipal,
    id: i64,
    req: &UpdateUserRequest,
) -> ApiResult<UserView> {
    let users = app.store.list_users().await?;
    let target = users
        .iter()
        .find(|u| u.id == id)
        .ok_or_else(|| ApiError::not_found("no user with that id"))?;
    let loses_admin = target.role == Role::Admin
        && !target.disabled
        && (req.role.is_some_and(|r| r != Role::Admin) || req.disabled == Some(true));
    let active_admins = users
        .iter()
        .filter(|u| u.role == Role::Admin && !u.disabled)
        .count();
    if loses_admin && active_admins <= 1 {
        let field = if req.disabled == Some(true) {
            "disabled"
        } else {
            "role"
        };
        return Err(ApiError::conflict(
            field,
            "this is the last enabled admin; create another admin first",
        ));
    }
    let updated = app
        .store
        .update_user(
            id,
            req.role,
            req.disabled,
            app.clock.now_ms(),
            &AuditRecord::new(
                admin.actor(),
                "user.update",
                "",
                json!({ "role": req.role, "disabled": req.disabled }),
            ),
        )
        .await?;
    Ok(updated.view())
}
