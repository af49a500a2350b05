//! Services and their policy: drafts, validation, publishing (with four-eyes
//! approval where the policy needs it), versions, diffs, rollback, canary
//! rollouts and the fleet of instances.

use crate::app::AppState;
use crate::auth::{UserPrincipal, random_hex};
use crate::error::{ApiError, ApiJson, ApiResult, body_rejection};
use crate::policy_hub::document_etag;
use crate::routes::tokens::validate_name;
use crate::store::{
    AuditRecord, CanaryChange, InstanceRow, NewVersion, PublishRequestRow, ServiceRow, StoreError,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use shared::api::{
    CreateServiceRequest, DecisionRequest, DiffView, DraftView, InstanceStatus, InstanceView,
    PublishOutcome, PublishRequest, PublishRequestView, RollbackRequest, RolloutAction,
    RolloutView, ServiceView, ValidationView, VersionView,
};
use shared::policy::{Format, ParseError, Policy, RiskTier, ValidationContext, ValidationReport};
use shared::role::Permission;
use std::collections::HashMap;
use std::sync::Arc;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/services", get(list_services).post(create_service))
        .route("/services/{name}/{env}", get(get_service))
        .route(
            "/services/{name}/{env}/draft",
            get(get_draft).put(put_draft),
        )
        .route("/services/{name}/{env}/validate", post(validate_document))
        .route("/services/{name}/{env}/publish", post(publish))
        .route("/services/{name}/{env}/versions", get(list_versions))
        .route(
            "/services/{name}/{env}/versions/{version}",
            get(get_version),
        )
        .route("/services/{name}/{env}/diff", get(diff))
        .route("/services/{name}/{env}/rollback", post(rollback))
        .route("/services/{name}/{env}/rollout", post(rollout))
        .route("/services/{name}/{env}/instances", get(service_instances))
        .route("/fleet/instances", get(fleet_instances))
        .route("/publish-requests", get(list_publish_requests))
        .route("/publish-requests/{id}/approve", post(approve))
        .route("/publish-requests/{id}/reject", post(reject))
}

/// An instance heard from within this long is up; within [`STALE_MS`], stale.
pub const UP_MS: i64 = 15_000;
/// Beyond this an instance is down.
pub const STALE_MS: i64 = 60_000;
/// Instances silent for longer than this drop out of the fleet view.
const FORGET_MS: i64 = 24 * 3600 * 1000;

async fn load_service(state: &AppState, name: &str, env: &str) -> ApiResult<ServiceRow> {
    state
        .store
        .service(name, env)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no service {name} in {env}")))
}

fn service_view(s: ServiceRow, rollout: RolloutView) -> ServiceView {
    ServiceView {
        name: s.name,
        environment: s.environment,
        owner: s.owner,
        created_at_ms: s.created_at,
        rollout,
    }
}

fn rollout_view(r: &crate::store::RolloutRow) -> RolloutView {
    RolloutView {
        active_version: r.active_version.map(|v| v as u64),
        canary_version: r.canary_version.map(|v| v as u64),
        canary_percent: r.canary_percent.map(|p| p.clamp(0, 100) as u8),
    }
}

fn parse_error(err: ParseError, prefix: &str) -> ApiError {
    match err {
        ParseError::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            err.to_string(),
        ),
        other => {
            let field = other
                .path()
                .map(|p| format!("{prefix}{p}"))
                .unwrap_or_else(|| prefix.trim_end_matches('.').to_owned());
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_policy",
                other.to_string(),
            )
            .with_field(field)
        }
    }
}

/// Reads a policy document from a request body: JSON, or YAML when the
/// content type says so.
fn policy_from_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Policy> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match content_type.as_str() {
        "application/json" => Format::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" => Format::Yaml,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the policy as application/json or application/yaml",
            ));
        }
    };
    let text = std::str::from_utf8(body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            "the policy is not UTF-8 text",
        )
    })?;
    Policy::parse(text, format).map_err(|e| parse_error(e, ""))
}

/// The service named by the path and the policy document in the body, which
/// must describe that service.
async fn service_and_document(
    state: &AppState,
    name: &str,
    env: &str,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(ServiceRow, Policy)> {
    let body = body.map_err(|r| body_rejection(r.status()))?;
    let service = load_service(state, name, env).await?;
    let policy = policy_from_body(headers, &body)?;
    check_header(&policy, &service)?;
    Ok((service, policy))
}

/// The document must describe the service it is stored under.
fn check_header(policy: &Policy, service: &ServiceRow) -> ApiResult<()> {
    if policy.service.name != service.name {
        return Err(ApiError::invalid(
            "service.name",
            format!(
                "the document is for {:?}, not {:?}",
                policy.service.name, service.name
            ),
        ));
    }
    if policy.service.environment != service.environment {
        return Err(ApiError::invalid(
            "service.environment",
            format!(
                "the document is for environment {:?}, not {:?}",
                policy.service.environment, service.environment
            ),
        ));
    }
    Ok(())
}

fn validation_context() -> ValidationContext {
    // Alerts and runbooks do not exist yet, so references to them are not checked.
    ValidationContext::new()
}

/// 422 carrying every finding, pointing at the first error's path.
fn rejected(report: &ValidationReport) -> ApiError {
    let first = report.errors().next();
    let mut e = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "policy_invalid",
        format!(
            "the policy has {} error(s); the first: {}",
            report.errors().count(),
            first.map(|f| f.message.as_str()).unwrap_or("")
        ),
    );
    e.field = first.map(|f| f.path.clone());
    e.details = serde_json::to_value(report).ok();
    e
}

fn to_json(policy: &Policy) -> ApiResult<String> {
    policy.to_json().map_err(|e| ApiError::internal(&e))
}

/// The active version's document, if one is published.
async fn active_policy(state: &AppState, service_id: i64) -> ApiResult<Option<(u64, Policy)>> {
    let rollout = state.store.rollout(service_id).await?;
    let Some(v) = rollout.active_version else {
        return Ok(None);
    };
    let row = state
        .store
        .version(service_id, v)
        .await?
        .ok_or_else(|| ApiError::internal(&"active version missing"))?;
    let policy = Policy::from_json(&row.document).map_err(|e| ApiError::internal(&e))?;
    Ok(Some((v as u64, policy)))
}

/// Why publishing `new` over `active` needs an approver who is not the author.
pub fn approval_reasons(active: Option<&Policy>, new: &Policy) -> Vec<String> {
    let mut reasons = Vec::new();
    let tier = |p: &Policy| p.service.risk_tier;
    if tier(new) >= RiskTier::High {
        reasons.push(format!("the service's risk tier is {:?}", tier(new)).to_lowercase());
    } else if let Some(old) = active.filter(|old| tier(old) >= RiskTier::High) {
        reasons.push(format!("it lowers the risk tier from {:?}", tier(old)).to_lowercase());
    }
    if let Some(old) = active {
        for loosening in shared::policy::invariant_loosenings(old, new) {
            reasons.push(format!(
                "it loosens an invariant at {}: {}",
                loosening.path, loosening.message
            ));
        }
    }
    reasons
}

fn tier_name(tier: RiskTier) -> String {
    serde_json::to_value(tier)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Publishes `policy` as the next version, or files it for approval.
async fn publish_policy(
    state: &AppState,
    user: &UserPrincipal,
    service: &ServiceRow,
    policy: Policy,
    message: &str,
    canary_percent: Option<u8>,
    action: &str,
) -> ApiResult<(StatusCode, PublishOutcome)> {
    user.require(Permission::PublishLowRisk)?;
    if message.trim().is_empty() || message.len() > 2000 {
        return Err(ApiError::invalid("message", "say why, in 1 to 2000 bytes"));
    }
    if let Some(p) = canary_percent
        && !(1..=99).contains(&p)
    {
        return Err(ApiError::invalid(
            "canary_percent",
            "a canary takes 1 to 99 percent of instances",
        ));
    }
    check_header(&policy, service)?;
    let report = policy.validate(&validation_context());
    if report.has_errors() {
        return Err(rejected(&report));
    }
    let active = active_policy(state, service.id).await?;
    let reasons = approval_reasons(active.as_ref().map(|(_, p)| p), &policy);
    let document = to_json(&policy)?;
    let now = state.clock.now_ms();
    if !reasons.is_empty() {
        let id = random_hex(12);
        state
            .store
            .create_publish_request(
                &PublishRequestRow {
                    id: id.clone(),
                    service_id: service.id,
                    document,
                    message: message.to_owned(),
                    canary_percent: canary_percent.map(i64::from),
                    reasons: serde_json::to_string(&reasons).unwrap_or_default(),
                    author: user.actor(),
                    created_at: now,
                    status: "pending".into(),
                    decided_by: None,
                    decided_at: None,
                    version: None,
                },
                &AuditRecord::new(
                    user.actor(),
                    "policy.publish_requested",
                    format!("service:{}/{}", service.name, service.environment),
                    json!({ "request": id, "action": action, "reasons": reasons, "message": message }),
                ),
            )
            .await?;
        return Ok((
            StatusCode::ACCEPTED,
            PublishOutcome::PendingApproval {
                request_id: id,
                reasons,
                report,
            },
        ));
    }
    let etag = document_etag(&document);
    let version = state
        .store
        .publish(
            &NewVersion {
                service_id: service.id,
                document: &document,
                etag: &etag,
                risk_tier: &tier_name(policy.service.risk_tier),
                author: &user.actor(),
                approver: None,
                message,
                canary_percent: canary_percent.map(i64::from),
                now_ms: now,
            },
            &AuditRecord::new(
                user.actor(),
                format!("policy.{action}"),
                format!("service:{}/{}", service.name, service.environment),
                json!({ "message": message, "canary_percent": canary_percent, "etag": etag }),
            ),
        )
        .await
        .map_err(publish_race)?;
    state.hub.changed(service.id).await?;
    Ok((
        StatusCode::CREATED,
        PublishOutcome::Published {
            version: version as u64,
            canary: canary_percent.is_some(),
            report,
        },
    ))
}

fn publish_race(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "another publish of this service happened at the same time; try again",
        ),
        other => other.into(),
    }
}

/// Every service with its rollout.
#[utoipa::path(get, path = "/api/v1/services", tag = "policy",
    responses((status = 200, body = Vec<ServiceView>)))]
pub async fn list_services(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<axum::Json<Vec<ServiceView>>> {
    user.require(Permission::Read)?;
    let services = state.store.list_services_with_rollouts().await?;
    Ok(axum::Json(
        services
            .into_iter()
            .map(|(s, rollout)| service_view(s, rollout_view(&rollout)))
            .collect(),
    ))
}

/// Registers a service in an environment.
#[utoipa::path(post, path = "/api/v1/services", tag = "policy", request_body = CreateServiceRequest,
    responses((status = 201, body = ServiceView), (status = 409, body = shared::api::ErrorBody)))]
pub async fn create_service(
    State(state): State<AppState>,
    user: UserPrincipal,
    ApiJson(req): ApiJson<CreateServiceRequest>,
) -> ApiResult<(StatusCode, axum::Json<ServiceView>)> {
    user.require(Permission::Edit)?;
    validate_name("name", &req.name)?;
    validate_name("environment", &req.environment)?;
    if req.owner.trim().is_empty() || req.owner.len() > 200 {
        return Err(ApiError::invalid(
            "owner",
            "name the owning team or person (1 to 200 bytes)",
        ));
    }
    let row = state
        .store
        .create_service(
            &req.name,
            &req.environment,
            req.owner.trim(),
            &user.actor(),
            state.clock.now_ms(),
            &AuditRecord::new(
                user.actor(),
                "service.create",
                format!("service:{}/{}", req.name, req.environment),
                json!({ "owner": req.owner }),
            ),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict(
                "name",
                format!("{} already exists in {}", req.name, req.environment),
            ),
            other => other.into(),
        })?;
    state
        .telemetry
        .roster
        .service(row.id, &row.name, &row.environment);
    Ok((
        StatusCode::CREATED,
        axum::Json(service_view(row, RolloutView::default())),
    ))
}

/// One service with its rollout.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = ServiceView), (status = 404, body = shared::api::ErrorBody)))]
pub async fn get_service(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
) -> ApiResult<axum::Json<ServiceView>> {
    user.require(Permission::Read)?;
    let s = load_service(&state, &name, &env).await?;
    let rollout = state.store.rollout(s.id).await?;
    Ok(axum::Json(service_view(s, rollout_view(&rollout))))
}

/// The working draft and what validation says about it.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/draft", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = DraftView), (status = 404, body = shared::api::ErrorBody)))]
pub async fn get_draft(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
) -> ApiResult<axum::Json<DraftView>> {
    user.require(Permission::Read)?;
    let s = load_service(&state, &name, &env).await?;
    let draft = state
        .store
        .draft(s.id)
        .await?
        .ok_or_else(|| ApiError::not_found("no draft saved for this service"))?;
    let policy = Policy::from_json(&draft.document).map_err(|e| ApiError::internal(&e))?;
    let report = policy.validate(&validation_context());
    Ok(axum::Json(DraftView {
        policy,
        updated_by: draft.updated_by,
        updated_at_ms: draft.updated_at,
        report,
    }))
}

/// Saves the working draft (JSON or YAML). A draft may have validation
/// errors: they block publishing, not saving.
#[utoipa::path(put, path = "/api/v1/services/{name}/{env}/draft", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    request_body(content = Object, description = "A policy document", content_type = "application/json"),
    responses((status = 200, body = DraftView), (status = 422, body = shared::api::ErrorBody)))]
pub async fn put_draft(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<axum::Json<DraftView>> {
    user.require(Permission::Edit)?;
    let (s, policy) = service_and_document(&state, &name, &env, &headers, body).await?;
    let document = to_json(&policy)?;
    let now = state.clock.now_ms();
    state
        .store
        .save_draft(
            s.id,
            &document,
            &user.actor(),
            now,
            &AuditRecord::new(
                user.actor(),
                "policy.draft_save",
                format!("service:{}/{}", s.name, s.environment),
                json!({ "etag": document_etag(&document) }),
            ),
        )
        .await?;
    let report = policy.validate(&validation_context());
    Ok(axum::Json(DraftView {
        policy,
        updated_by: user.actor(),
        updated_at_ms: now,
        report,
    }))
}

/// Validates a document without saving it, and diffs it against the active
/// version: what `ballast policy apply --dry-run` shows.
#[utoipa::path(post, path = "/api/v1/services/{name}/{env}/validate", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    request_body(content = Object, description = "A policy document", content_type = "application/json"),
    responses((status = 200, body = ValidationView), (status = 422, body = shared::api::ErrorBody)))]
pub async fn validate_document(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<axum::Json<ValidationView>> {
    user.require(Permission::Read)?;
    let (s, policy) = service_and_document(&state, &name, &env, &headers, body).await?;
    let report = policy.validate(&validation_context());
    let active = active_policy(&state, s.id).await?;
    let changes = match &active {
        Some((_, old)) => shared::policy::diff(old, &policy),
        None => Vec::new(),
    };
    Ok(axum::Json(ValidationView {
        report,
        against_version: active.as_ref().map(|(v, _)| *v),
        approval_reasons: approval_reasons(active.as_ref().map(|(_, p)| p), &policy),
        changes,
    }))
}

/// Publishes the draft, or the document in the body, as a new immutable
/// version — or files it for approval when the policy needs a second person.
#[utoipa::path(post, path = "/api/v1/services/{name}/{env}/publish", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    request_body = PublishRequest,
    responses(
        (status = 201, description = "Published", body = PublishOutcome),
        (status = 202, description = "Waiting for an approver", body = PublishOutcome),
        (status = 422, description = "Validation errors; `details` lists every finding", body = shared::api::ErrorBody),
    ))]
pub async fn publish(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    ApiJson(req): ApiJson<PublishRequest>,
) -> ApiResult<(StatusCode, axum::Json<PublishOutcome>)> {
    user.require(Permission::PublishLowRisk)?;
    let s = load_service(&state, &name, &env).await?;
    let policy = match req.document {
        Some(p) => p,
        None => {
            let draft = state.store.draft(s.id).await?.ok_or_else(|| {
                ApiError::invalid(
                    "document",
                    "no draft is saved; send the policy as `document`",
                )
            })?;
            Policy::from_json(&draft.document).map_err(|e| ApiError::internal(&e))?
        }
    };
    let (status, outcome) = publish_policy(
        &state,
        &user,
        &s,
        policy,
        &req.message,
        req.canary_percent,
        "publish",
    )
    .await?;
    Ok((status, axum::Json(outcome)))
}

fn version_view(row: crate::store::VersionRow, with_policy: bool) -> ApiResult<VersionView> {
    let policy = if with_policy {
        Some(Policy::from_json(&row.document).map_err(|e| ApiError::internal(&e))?)
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

/// Every version, newest first (without documents).
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/versions", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Vec<VersionView>)))]
pub async fn list_versions(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<VersionView>>> {
    user.require(Permission::Read)?;
    let s = load_service(&state, &name, &env).await?;
    let rows = state.store.versions(s.id).await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|r| version_view(r, false))
            .collect::<ApiResult<_>>()?,
    ))
}

/// One version, with its document.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/versions/{version}", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path), ("version" = u64, Path)),
    responses((status = 200, body = VersionView), (status = 404, body = shared::api::ErrorBody)))]
pub async fn get_version(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env, version)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<VersionView>> {
    user.require(Permission::Read)?;
    let s = load_service(&state, &name, &env).await?;
    let v = parse_version("version", &version)?;
    let row = state
        .store
        .version(s.id, v)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no version {v}")))?;
    Ok(axum::Json(version_view(row, true)?))
}

fn parse_version(field: &str, text: &str) -> ApiResult<i64> {
    text.parse::<i64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("{field} must be a version number, `active` or `draft`"),
        )
    })
}

/// Sides of a diff.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DiffQuery {
    /// A version number, `active` (the default) or `draft`.
    pub from: Option<String>,
    /// A version number, `active` or `draft` (the default).
    pub to: Option<String>,
}

async fn resolve_side(
    state: &AppState,
    service_id: i64,
    field: &str,
    side: &str,
) -> ApiResult<Policy> {
    match side {
        "draft" => {
            let d = state
                .store
                .draft(service_id)
                .await?
                .ok_or_else(|| ApiError::invalid(field, "no draft is saved"))?;
            Policy::from_json(&d.document).map_err(|e| ApiError::internal(&e))
        }
        "active" => active_policy(state, service_id)
            .await?
            .map(|(_, p)| p)
            .ok_or_else(|| ApiError::invalid(field, "no version is active yet")),
        other => {
            let v = parse_version(field, other)?;
            let row = state
                .store
                .version(service_id, v)
                .await?
                .ok_or_else(|| ApiError::invalid(field, format!("no version {v}")))?;
            Policy::from_json(&row.document).map_err(|e| ApiError::internal(&e))
        }
    }
}

/// The changes between two versions (or the draft), by path.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/diff", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path), DiffQuery),
    responses((status = 200, body = DiffView), (status = 422, body = shared::api::ErrorBody)))]
pub async fn diff(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    query: Result<Query<DiffQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<DiffView>> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let s = load_service(&state, &name, &env).await?;
    let from = q.from.unwrap_or_else(|| "active".into());
    let to = q.to.unwrap_or_else(|| "draft".into());
    let old = resolve_side(&state, s.id, "from", &from).await?;
    let new = resolve_side(&state, s.id, "to", &to).await?;
    Ok(axum::Json(DiffView {
        changes: shared::policy::diff(&old, &new),
        from,
        to,
    }))
}

/// Publishes an earlier version's content as a new version. Goes through the
/// same checks, approvals included, as any publish.
#[utoipa::path(post, path = "/api/v1/services/{name}/{env}/rollback", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    request_body = RollbackRequest,
    responses((status = 201, body = PublishOutcome), (status = 202, body = PublishOutcome)))]
pub async fn rollback(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> ApiResult<(StatusCode, axum::Json<PublishOutcome>)> {
    user.require(Permission::PublishLowRisk)?;
    let s = load_service(&state, &name, &env).await?;
    let v = i64::try_from(req.to_version)
        .map_err(|_| ApiError::invalid("to_version", "no such version"))?;
    let row = state
        .store
        .version(s.id, v)
        .await?
        .ok_or_else(|| ApiError::invalid("to_version", format!("no version {v}")))?;
    let policy = Policy::from_json(&row.document).map_err(|e| ApiError::internal(&e))?;
    let message = format!("rollback to version {v}: {}", req.message);
    let (status, outcome) =
        publish_policy(&state, &user, &s, policy, &message, None, "rollback").await?;
    Ok((status, axum::Json(outcome)))
}

/// Promotes, aborts or resizes a canary.
#[utoipa::path(post, path = "/api/v1/services/{name}/{env}/rollout", tag = "policy",
    params(("name" = String, Path), ("env" = String, Path)),
    request_body = RolloutAction,
    responses((status = 200, body = RolloutView), (status = 409, description = "No canary is running", body = shared::api::ErrorBody)))]
pub async fn rollout(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
    ApiJson(action): ApiJson<RolloutAction>,
) -> ApiResult<axum::Json<RolloutView>> {
    user.require(Permission::PublishLowRisk)?;
    let s = load_service(&state, &name, &env).await?;
    let (change, verb) = match action {
        RolloutAction::Promote => (CanaryChange::Promote, "rollout.promote"),
        RolloutAction::Abort => (CanaryChange::Abort, "rollout.abort"),
        RolloutAction::SetPercent { percent } => {
            if !(1..=99).contains(&percent) {
                return Err(ApiError::invalid(
                    "percent",
                    "a canary takes 1 to 99 percent of instances",
                ));
            }
            (
                CanaryChange::Percent(i64::from(percent)),
                "rollout.set_percent",
            )
        }
    };
    let row = state
        .store
        .change_canary(
            s.id,
            change,
            state.clock.now_ms(),
            &AuditRecord::new(
                user.actor(),
                verb,
                format!("service:{}/{}", s.name, s.environment),
                json!({ "change": format!("{change:?}") }),
            ),
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::new(
                StatusCode::CONFLICT,
                "no_canary",
                "no canary is running for this service",
            ),
            other => other.into(),
        })?;
    state.hub.changed(s.id).await?;
    Ok(axum::Json(rollout_view(&row)))
}

fn instance_view(
    state: &AppState,
    service: &ServiceRow,
    snapshot: &crate::policy_hub::Snapshot,
    row: InstanceRow,
) -> InstanceView {
    let desired = snapshot.for_instance(&row.instance_id).map(|p| p.version);
    let age = state.clock.now_ms() - row.last_seen_at;
    let status = if age <= UP_MS {
        InstanceStatus::Up
    } else if age <= STALE_MS {
        InstanceStatus::Stale
    } else {
        InstanceStatus::Down
    };
    let applied = row.policy_version.map(|v| v as u64);
    InstanceView {
        service: service.name.clone(),
        environment: service.environment.clone(),
        lagging: desired.is_some() && applied != desired,
        instance_id: row.instance_id,
        agent_version: row.agent_version,
        policy_version: applied,
        policy_source: row.policy_source,
        desired_version: desired,
        status,
        last_seen_at_ms: row.last_seen_at,
        started_at_ms: row.started_at,
    }
}

/// The service's instances: what each runs, what it should run, and whether
/// it lags.
#[utoipa::path(get, path = "/api/v1/services/{name}/{env}/instances", tag = "fleet",
    params(("name" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Vec<InstanceView>)))]
pub async fn service_instances(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path((name, env)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<InstanceView>>> {
    user.require(Permission::Read)?;
    let s = load_service(&state, &name, &env).await?;
    let snapshot = state.hub.snapshot(s.id).await?;
    let rows = state
        .store
        .instances(s.id, state.clock.now_ms() - FORGET_MS)
        .await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|r| instance_view(&state, &s, &snapshot, r))
            .collect(),
    ))
}

/// Every instance of every service heard from in the last day: what each
/// runs, what it should run, and whether it lags. Lagging instances come
/// first, then by service, environment and instance id.
#[utoipa::path(get, path = "/api/v1/fleet/instances", tag = "fleet",
    responses((status = 200, body = Vec<InstanceView>)))]
pub async fn fleet_instances(
    State(state): State<AppState>,
    user: UserPrincipal,
) -> ApiResult<axum::Json<Vec<InstanceView>>> {
    user.require(Permission::Read)?;
    let services: HashMap<i64, ServiceRow> = state
        .store
        .list_services()
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let rows = state
        .store
        .all_instances(state.clock.now_ms() - FORGET_MS)
        .await?;
    let mut snapshots = HashMap::new();
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        // An instance of a service removed since is not part of the fleet.
        let Some(service) = services.get(&row.service_id) else {
            continue;
        };
        let snapshot = match snapshots.get(&row.service_id) {
            Some(s) => Arc::clone(s),
            None => {
                let s = state.hub.snapshot(row.service_id).await?;
                snapshots.insert(row.service_id, Arc::clone(&s));
                s
            }
        };
        views.push(instance_view(&state, service, &snapshot, row.instance));
    }
    views.sort_by(|a, b| {
        (!a.lagging, &a.service, &a.environment, &a.instance_id).cmp(&(
            !b.lagging,
            &b.service,
            &b.environment,
            &b.instance_id,
        ))
    });
    Ok(axum::Json(views))
}

/// Filter for publish requests.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RequestQuery {
    /// `pending`, `approved` or `rejected`; all when absent.
    pub status: Option<String>,
}

async fn request_view(state: &AppState, row: PublishRequestRow) -> ApiResult<PublishRequestView> {
    let service = state.store.service_by_id(row.service_id).await?;
    let (name, env) = service.map(|s| (s.name, s.environment)).unwrap_or_default();
    Ok(PublishRequestView {
        id: row.id,
        service: name,
        environment: env,
        message: row.message,
        canary_percent: row.canary_percent.map(|p| p.clamp(0, 100) as u8),
        reasons: serde_json::from_str(&row.reasons).unwrap_or_default(),
        author: row.author,
        created_at_ms: row.created_at,
        status: row.status,
        decided_by: row.decided_by,
        decided_at_ms: row.decided_at,
        version: row.version.map(|v| v as u64),
    })
}

/// Publish requests, newest first.
#[utoipa::path(get, path = "/api/v1/publish-requests", tag = "policy", params(RequestQuery),
    responses((status = 200, body = Vec<PublishRequestView>)))]
pub async fn list_publish_requests(
    State(state): State<AppState>,
    user: UserPrincipal,
    query: Result<Query<RequestQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<Vec<PublishRequestView>>> {
    user.require(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    if let Some(s) = &q.status
        && !matches!(s.as_str(), "pending" | "approved" | "rejected")
    {
        return Err(ApiError::invalid(
            "status",
            "status is pending, approved or rejected",
        ));
    }
    let rows = state.store.publish_requests(q.status.as_deref()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(request_view(&state, row).await?);
    }
    Ok(axum::Json(out))
}

async fn decide(
    state: AppState,
    user: UserPrincipal,
    id: String,
    approve: bool,
    comment: Option<String>,
) -> ApiResult<axum::Json<PublishRequestView>> {
    user.require(Permission::Approve)?;
    let row = state
        .store
        .publish_request(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such publish request"))?;
    if row.author == user.actor() {
        return Err(ApiError::forbidden(
            "nobody approves or rejects their own request",
        ));
    }
    if row.status != "pending" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_decided",
            format!("this request is already {}", row.status),
        ));
    }
    let service = state
        .store
        .service_by_id(row.service_id)
        .await?
        .ok_or_else(|| ApiError::internal(&"request for a missing service"))?;
    let policy = Policy::from_json(&row.document).map_err(|e| ApiError::internal(&e))?;
    // The policy may have been published over since the request was filed;
    // the approver approves exactly what is recorded, which still validates.
    let report = policy.validate(&validation_context());
    if approve && report.has_errors() {
        return Err(rejected(&report));
    }
    let etag = document_etag(&row.document);
    let approver = user.actor();
    let now = state.clock.now_ms();
    let tier = tier_name(policy.service.risk_tier);
    let new = NewVersion {
        service_id: row.service_id,
        document: &row.document,
        etag: &etag,
        risk_tier: &tier,
        author: &row.author,
        approver: Some(&approver),
        message: &row.message,
        canary_percent: row.canary_percent,
        now_ms: now,
    };
    let verb = if approve {
        "policy.publish_approved"
    } else {
        "policy.publish_rejected"
    };
    state
        .store
        .decide_publish_request(
            &id,
            approve,
            &approver,
            approve.then_some(&new),
            now,
            &AuditRecord::new(
                approver.clone(),
                verb,
                format!("service:{}/{}", service.name, service.environment),
                json!({ "request": id, "author": row.author, "comment": comment }),
            ),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "already_decided",
                "someone decided this request first",
            ),
            other => other.into(),
        })?;
    if approve {
        state.hub.changed(row.service_id).await?;
    }
    let row = state
        .store
        .publish_request(&id)
        .await?
        .ok_or_else(|| ApiError::internal(&"request vanished"))?;
    Ok(axum::Json(request_view(&state, row).await?))
}

/// The optional JSON body of a decision.
fn decision_comment(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Option<String>> {
    let body = body.map_err(|r| body_rejection(r.status()))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let req: DecisionRequest = crate::error::parse_json(&body)?;
    Ok(req.comment)
}

/// Approves someone else's request; publishes it.
#[utoipa::path(post, path = "/api/v1/publish-requests/{id}/approve", tag = "policy",
    params(("id" = String, Path)), request_body = DecisionRequest,
    responses((status = 200, body = PublishRequestView), (status = 403, description = "Your own request, or not an approver", body = shared::api::ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<axum::Json<PublishRequestView>> {
    let comment = decision_comment(body)?;
    decide(state, user, id, true, comment).await
}

/// Rejects someone else's request.
#[utoipa::path(post, path = "/api/v1/publish-requests/{id}/reject", tag = "policy",
    params(("id" = String, Path)), request_body = DecisionRequest,
    responses((status = 200, body = PublishRequestView), (status = 403, body = shared::api::ErrorBody)))]
pub async fn reject(
    State(state): State<AppState>,
    user: UserPrincipal,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<axum::Json<PublishRequestView>> {
    let comment = decision_comment(body)?;
    decide(state, user, id, false, comment).await
}
