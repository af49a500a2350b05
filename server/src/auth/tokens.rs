//! Service tokens: what enforcement agents authenticate with. Only a hash of
//! the secret is stored; the token itself is shown once, when issued.

use super::new_service_token;
use crate::app::App;
use crate::error::ApiResult;
use crate::policy::services::validate_name;
use crate::store::{AuditRecord, Store, TokenRow};
use serde_json::json;
use shared::api::{CreatedToken, ServiceTokenView};

/// Creates a token for one service and environment, audited, and stores only
/// its hash. The API and the CLI (which has a store and no server) both
/// issue through here.
pub async fn issue(
    store: &Store,
    now_ms: i64,
    actor: &str,
    service: &str,
    environment: &str,
) -> ApiResult<CreatedToken> {
    validate_name("service", service)?;
    validate_name("environment", environment)?;
    let (id, token, secret_hash) = new_service_token();
    let row = TokenRow {
        id: id.clone(),
        secret_hash,
        service: service.to_owned(),
        environment: environment.to_owned(),
        created_by: actor.to_owned(),
        created_at: now_ms,
        revoked_at: None,
    };
    store
        .create_token(
            &row,
            &AuditRecord::new(
                actor,
                "token.create",
                format!("token:{id}"),
                json!({ "service": service, "environment": environment }),
            ),
        )
        .await?;
    Ok(CreatedToken {
        token,
        info: row.view(),
    })
}

/// Revokes a token, audited, and drops it from this replica's cache so that
/// its agents are refused from their next request here (other replicas
/// within [`TOKEN_CACHE_MS`](super::TOKEN_CACHE_MS)).
pub async fn revoke(app: &App, actor: &str, id: &str) -> ApiResult<ServiceTokenView> {
    let row = app
        .store
        .revoke_token(
            id,
            app.clock.now_ms(),
            &AuditRecord::new(actor, "token.revoke", format!("token:{id}"), json!({})),
        )
        .await?;
    app.auth.forget_token(id);
    Ok(row.view())
}
