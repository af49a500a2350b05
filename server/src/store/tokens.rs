//! Service tokens: the credentials that enforcement agents present.

use super::audit::append_audit;
use super::{AuditRecord, Store, StoreError, StoreResult, with_db};

/// A stored service token. Only a hash of the secret is kept.
#[derive(Clone, sqlx::FromRow)]
pub struct TokenRow {
    /// Public id; the token's visible prefix.
    pub id: String,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
    /// Service the token is scoped to.
    pub service: String,
    /// Environment the token is scoped to.
    pub environment: String,
    /// Who created it.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds, once revoked.
    pub revoked_at: Option<i64>,
}

impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("id", &self.id)
            .field("secret_hash", &"<redacted>")
            .field("service", &self.service)
            .field("environment", &self.environment)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

impl TokenRow {
    /// The listing form, without the hash.
    pub fn view(&self) -> shared::api::ServiceTokenView {
        shared::api::ServiceTokenView {
            id: self.id.clone(),
            service: self.service.clone(),
            environment: self.environment.clone(),
            created_by: self.created_by.clone(),
            created_at_ms: self.created_at,
            revoked_at_ms: self.revoked_at,
        }
    }
}

impl Store {
    /// Stores a new token, audited in the same transaction.
    pub async fn create_token(&self, token: &TokenRow, audit: &AuditRecord) -> StoreResult<()> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO service_tokens (id, secret_hash, service, environment, created_by, created_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, NULL)",
            )
            .bind(&token.id)
            .bind(&token.secret_hash)
            .bind(&token.service)
            .bind(&token.environment)
            .bind(&token.created_by)
            .bind(token.created_at)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, token.created_at, audit);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Looks a token up by its public id.
    pub async fn token_by_id(&self, id: &str) -> StoreResult<Option<TokenRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, TokenRow>(
                "SELECT id, secret_hash, service, environment, created_by, created_at, revoked_at \
                 FROM service_tokens WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Every token, newest first.
    pub async fn list_tokens(&self) -> StoreResult<Vec<TokenRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, TokenRow>(
                "SELECT id, secret_hash, service, environment, created_by, created_at, revoked_at \
                 FROM service_tokens ORDER BY created_at DESC, id",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Revokes a token; it stops working on its next request. Revoking an
    /// already revoked token keeps the first revocation time.
    pub async fn revoke_token(
        &self,
        id: &str,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<TokenRow> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query_as::<_, TokenRow>(
                "UPDATE service_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
                 RETURNING id, secret_hash, service, environment, created_by, created_at, revoked_at",
            )
            .bind(id)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(row)
        })
    }
}
