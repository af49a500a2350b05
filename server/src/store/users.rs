//! Users and their login sessions.

use super::audit::append_audit;
use super::{AuditRecord, Store, StoreError, StoreResult, with_db};
use shared::role::Role;

/// A stored user, with the password hash that only the login check reads.
#[derive(Clone)]
pub struct UserRow {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub username: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Disabled users cannot log in and their sessions stop working.
    pub disabled: bool,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl UserRow {
    /// The listing form, without the hash.
    pub fn view(&self) -> shared::api::UserView {
        shared::api::UserView {
            id: self.id,
            username: self.username.clone(),
            role: self.role,
            disabled: self.disabled,
            created_at_ms: self.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct RawUser {
    id: i64,
    username: String,
    password_hash: String,
    role: String,
    disabled: i64,
    created_at: i64,
}

impl TryFrom<RawUser> for UserRow {
    type Error = StoreError;
    fn try_from(raw: RawUser) -> StoreResult<UserRow> {
        Ok(UserRow {
            id: raw.id,
            role: raw
                .role
                .parse()
                .map_err(|e: shared::role::UnknownRole| StoreError::Corrupt(e.to_string()))?,
            username: raw.username,
            password_hash: raw.password_hash,
            disabled: raw.disabled != 0,
            created_at: raw.created_at,
        })
    }
}

/// A login session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// Random id, named by the JWT's `sid` claim.
    pub id: String,
    /// Whose session.
    pub user_id: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub expires_at: i64,
    /// Set by logout, or when the user is disabled.
    pub revoked_at: Option<i64>,
}

impl Store {
    /// Creates a user and audits it in the same transaction.
    /// A taken username is a [`StoreError::Conflict`].
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<UserRow> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let raw = sqlx::query_as::<_, RawUser>(
                "INSERT INTO users (username, password_hash, role, disabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, 0, $4, $4) \
                 RETURNING id, username, password_hash, role, disabled, created_at",
            )
            .bind(username)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            let user = UserRow::try_from(raw)?;
            let mut audit = audit.clone();
            audit.target = format!("user:{}", user.username);
            append_audit!(tx, now_ms, &audit);
            tx.commit().await?;
            Ok(user)
        })
    }

    /// How many users exist; zero means this is a first run.
    pub async fn count_users(&self) -> StoreResult<i64> {
        with_db!(self, pool => {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(pool).await?;
            Ok(n)
        })
    }

    /// Looks a user up by name.
    pub async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRow>> {
        with_db!(self, pool => {
            sqlx::query_as::<_, RawUser>(
                "SELECT id, username, password_hash, role, disabled, created_at FROM users WHERE username = $1",
            )
                .bind(username)
                .fetch_optional(pool)
                .await?
                .map(UserRow::try_from)
                .transpose()
        })
    }

    /// Every user, by name.
    pub async fn list_users(&self) -> StoreResult<Vec<UserRow>> {
        with_db!(self, pool => {
            sqlx::query_as::<_, RawUser>(
                "SELECT id, username, password_hash, role, disabled, created_at FROM users ORDER BY username",
            )
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(UserRow::try_from)
            .collect()
        })
    }

    /// Changes a user's role and/or disabled flag. Disabling also revokes the
    /// user's sessions, so it takes effect on their very next request.
    pub async fn update_user(
        &self,
        id: i64,
        role: Option<Role>,
        disabled: Option<bool>,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<UserRow> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let raw = sqlx::query_as::<_, RawUser>(
                "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), updated_at = $4 \
                 WHERE id = $1 RETURNING id, username, password_hash, role, disabled, created_at",
            )
            .bind(id)
            .bind(role.map(|r| r.as_str()))
            .bind(disabled.map(i64::from))
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            let user = UserRow::try_from(raw)?;
            if user.disabled {
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut audit = audit.clone();
            audit.target = format!("user:{}", user.username);
            append_audit!(tx, now_ms, &audit);
            tx.commit().await?;
            Ok(user)
        })
    }

    /// Opens a session for a successful login, audited in the same transaction.
    pub async fn create_session(
        &self,
        session: &SessionRow,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, NULL)",
            )
            .bind(&session.id)
            .bind(session.user_id)
            .bind(session.created_at)
            .bind(session.expires_at)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, session.created_at, audit);
            tx.commit().await?;
            Ok(())
        })
    }

    /// A session and its user, whatever their state: the caller decides
    /// whether a revoked session or a disabled user may proceed.
    pub async fn session_with_user(
        &self,
        session_id: &str,
    ) -> StoreResult<Option<(SessionRow, UserRow)>> {
        with_db!(self, pool => {
            let Some(session) = sqlx::query_as::<_, SessionRow>(
                "SELECT id, user_id, created_at, expires_at, revoked_at FROM sessions WHERE id = $1",
            )
            .bind(session_id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let raw = sqlx::query_as::<_, RawUser>(
                "SELECT id, username, password_hash, role, disabled, created_at FROM users WHERE id = $1",
            )
            .bind(session.user_id)
            .fetch_one(pool)
            .await?;
            Ok(Some((session, UserRow::try_from(raw)?)))
        })
    }

    /// Ends a session (logout). Revoking twice is harmless.
    pub async fn revoke_session(
        &self,
        session_id: &str,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(session_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(())
        })
    }
}
