//! Wire types of the REST API under `/api/v1`, shared by the server, the
//! dashboard and the agent so that a field renamed on one side fails to
//! compile on the other.

use crate::role::Role;
use serde::{Deserialize, Serialize};

/// The body of every 4xx and 5xx response under `/api`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The detail of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// A stable, machine-readable code such as `validation` or `forbidden`.
    pub code: String,
    /// A sentence for a human.
    pub message: String,
    /// The path of the offending field, such as `retry.model.max_attempts`,
    /// when the problem is with one field of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `POST /api/v1/auth/login` request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's name.
    pub username: String,
    /// The account's password; never logged, and hidden from `Debug`.
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `POST /api/v1/auth/login` response.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// A short-lived bearer token (a JWT). Browsers also get it as an
    /// HttpOnly cookie and need not keep this copy.
    pub token: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// Who logged in.
    pub user: Me,
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish()
    }
}

/// `GET /api/v1/me`: the signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    /// The user's id.
    pub id: i64,
    /// The user's name.
    pub username: String,
    /// The user's role, which decides what they may do.
    pub role: Role,
}

/// A user as the admin API lists it. Password hashes never leave the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    /// The user's id.
    pub id: i64,
    /// The user's name, unique.
    pub username: String,
    /// The user's role.
    pub role: Role,
    /// A disabled user cannot log in, and their sessions stop working at once.
    pub disabled: bool,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// `POST /api/v1/users` request (admin).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1 to 64 characters: letters, digits, `.`, `_`, `-` and `@`.
    pub username: String,
    /// At least 12 characters.
    pub password: String,
    /// The new user's role.
    pub role: Role,
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// `PATCH /api/v1/users/{id}` request (admin): only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// A new role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Disable or re-enable the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// A service token as listed: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceTokenView {
    /// The token's public id, which is also the first part of the token.
    pub id: String,
    /// The service the token speaks for.
    pub service: String,
    /// The environment the token speaks for.
    pub environment: String,
    /// Who created it.
    pub created_by: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
}

/// `POST /api/v1/tokens` request (admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// The service the token speaks for.
    pub service: String,
    /// The environment the token speaks for, such as `prod`.
    pub environment: String,
}

/// `POST /api/v1/tokens` response: the only time the secret is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    /// The full bearer token. Store it now: the server keeps only its hash.
    pub token: String,
    /// The token's listing.
    pub info: ServiceTokenView,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &"<redacted>")
            .field("info", &self.info)
            .finish()
    }
}

/// One entry of the hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntryView {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who: `user:NAME`, `token:ID` or `cli`.
    pub actor: String,
    /// What, such as `auth.login` or `user.create`.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// Details, as JSON.
    pub detail: serde_json::Value,
    /// The hash of this entry, which the next entry commits to.
    pub hash: String,
}
