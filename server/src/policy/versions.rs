//! Published versions: immutable, numbered from 1, and diffable against each
//! other, the active version and the draft.

use super::{active_policy, stored};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::store::{ServiceRow, VersionRow};
use shared::api::{DiffView, VersionView};
use shared::policy::Policy;

fn version_view(row: VersionRow, with_policy: bool) -> ApiResult<VersionView> {
    let policy = if with_policy {
        Some(stored(&row.document)?)
    } else {
        None
    };
    Ok(VersionView {
        version: row.version as u64,
        etag: row.etag,
        author: row.author,
        approver: row.approver,
        message: row.message,
        created_at_ms: row.created_at,
        policy,
    })
}

/// Every version, newest first, without documents.
pub async fn list(app: &App, service: &ServiceRow) -> ApiResult<Vec<VersionView>> {
    let rows = app.store.versions(service.id).await?;
    rows.into_iter().map(|r| version_view(r, false)).collect()
}

/// One version, with its document; `version` is the number as written in
/// the request.
pub async fn get(app: &App, service: &ServiceRow, version: &str) -> ApiResult<VersionView> {
    let v = parse_version("version", version)?;
    let row = app
        .store
        .version(service.id, v)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no version {v}")))?;
    version_view(row, true)
}

/// The document of an earlier version, for a rollback; an unknown version is
/// the caller's mistake, named by `to_version`.
pub(crate) async fn document(
    app: &App,
    service: &ServiceRow,
    version: u64,
) -> ApiResult<(i64, Policy)> {
    let v =
        i64::try_from(version).map_err(|_| ApiError::invalid("to_version", "no such version"))?;
    let row = app
        .store
        .version(service.id, v)
        .await?
        .ok_or_else(|| ApiError::invalid("to_version", format!("no version {v}")))?;
    Ok((v, stored(&row.document)?))
}

fn parse_version(field: &str, text: &str) -> ApiResult<i64> {
    text.parse::<i64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("{field} must be a version number, `active` or `draft`"),
        )
    })
}

/// One side of a diff: a version number, `active` or `draft`; errors name
/// `field`.
async fn resolve_side(app: &App, service_id: i64, field: &str, side: &str) -> ApiResult<Policy> {
    match side {
        "draft" => {
            let d = app
                .store
                .draft(service_id)
                .await?
                .ok_or_else(|| ApiError::invalid(field, "no draft is saved"))?;
            stored(&d.document)
        }
        "active" => active_policy(app, service_id)
            .await?
            .map(|(_, p)| p)
            .ok_or_else(|| ApiError::invalid(field, "no version is active yet")),
        other => {
            let v = parse_version(field, other)?;
            let row = app
                .store
                .version(service_id, v)
                .await?
                .ok_or_else(|| ApiError::invalid(field, format!("no version {v}")))?;
            stored(&row.document)
        }
    }
}

/// The changes between two sides, by path; `from` defaults to the active
/// version and `to` to the draft.
pub async fn diff(
    app: &App,
    service: &ServiceRow,
    from: Option<String>,
    to: Option<String>,
) -> ApiResult<DiffView> {
    let from = from.unwrap_or_else(|| "active".into());
    let to = to.unwrap_or_else(|| "draft".into());
    let old = resolve_side(app, service.id, "from", &from).await?;
    let new = resolve_side(app, service.id, "to", &to).await?;
    Ok(DiffView {
        changes: shared::policy::diff(&old, &new),
        from,
        to,
    })
}
