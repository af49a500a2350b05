//! The dashboard's client for the REST API under `/api/v1`.
//!
//! Requests go from the browser with the session cookie (same origin, so
//! `fetch` sends it by default). On the server nothing here is ever awaited:
//! pages load API data through effects (see `remote`) and event handlers,
//! which only run in the browser.

use shared::api::{
    ActionDecision, ActionRequest, ActionView, AlertRuleView, AlertRuleWrite, AlertState,
    AlertView, AuditEntryView, BulkActionRequest, BulkDecision, BulkItemResult, ChecklistStart,
    ChecklistView, CreateServiceRequest, CreateUserRequest, DeadLetterDetail, DeadLetterPage,
    DeadLetterStatus, DeadLetterSummary, DecisionRequest, DiffView, DraftView, ErrorDetail,
    InboxCount, InstanceView, LoginRequest, LoginResponse, NotificationView, PublishOutcome,
    PublishRequest, PublishRequestView, RollbackRequest, RolloutAction, RolloutView,
    RunbookSummary, RunbookTemplate, RunbookVersionSummary, RunbookView, RunbookWrite,
    ServiceTelemetry, ServiceView, SilenceView, SilenceWrite, StepTick, UserView, ValidationView,
    VersionView, WebhookView, WebhookWrite,
};
use shared::policy::ErrorClass;
use shared::policy::Policy;

/// Why a call to the API did not give the expected answer.
#[derive(Debug, Clone, PartialEq, Eq)]
// Only the browser transport sees answers, so only it builds most variants.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum ApiError {
    /// The server answered with an error status, and usually an `ErrorBody`.
    Status {
        status: u16,
        detail: Option<ErrorDetail>,
        /// The `Retry-After` header in seconds, when throttled.
        retry_after_secs: Option<u64>,
    },
    /// No answer: the server is down or the network is.
    Network,
    /// An answer that does not parse as what the endpoint promises.
    Malformed,
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The stable error code from the body, such as `validation`.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Status {
                detail: Some(d), ..
            } => Some(&d.code),
            _ => None,
        }
    }

    /// A number from the body's structured details, such as the
    /// `latest_version` of a runbook that moved on.
    pub fn detail_number(&self, key: &str) -> Option<u64> {
        match self {
            ApiError::Status {
                detail: Some(d), ..
            } => d.details.as_ref()?.get(key)?.as_u64(),
            _ => None,
        }
    }

    /// The input field the server blames, if it blames one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::Status {
                detail: Some(d), ..
            } => d.field.as_deref(),
            _ => None,
        }
    }

    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::Status {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        }
    }

    /// Whether the session has ended and the user must sign in again.
    pub fn is_unauthenticated(&self) -> bool {
        self.status() == Some(401)
    }

    /// A sentence to show. The server's own message wins when there is one,
    /// since it knows what went wrong.
    pub fn message(&self) -> String {
        match self {
            ApiError::Status {
                detail: Some(d), ..
            } if !d.message.trim().is_empty() => sentence_case(d.message.trim()),
            ApiError::Status { status, .. } => match status {
                401 => "Your session has ended. Sign in again.".to_owned(),
                403 => "Your role does not allow this.".to_owned(),
                404 => "Ballast could not find that.".to_owned(),
                429 => "Too many requests. Wait a moment, then try again.".to_owned(),
                500..=599 => {
                    format!("Ballast had a problem (HTTP {status}). Try again in a moment.")
                }
                _ => format!("The request failed (HTTP {status})."),
            },
            ApiError::Network => {
                "Could not reach Ballast. Check your connection, then try again.".to_owned()
            }
            ApiError::Malformed => {
                "Ballast sent an answer this page does not understand. Reload the page.".to_owned()
            }
        }
    }
}

/// API messages start in lower case, like Rust's error messages; on a page
/// they stand alone, so they start with a capital.
fn sentence_case(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

use shared::paths::{
    self, ALERT_RULES, ALERTS, AUDIT, CHECKLISTS, DEAD_LETTER_BULK_ACTIONS, DEAD_LETTERS,
    DLQ_ACTIONS, DLQ_ACTIONS_BULK_APPROVE, DLQ_ACTIONS_COUNT, FLEET_INSTANCES, FLEET_LIVE,
    NOTIFICATIONS, PUBLISH_REQUESTS, RUNBOOK_TEMPLATE, RUNBOOKS, SERVICES, SILENCES, USERS,
    WEBHOOKS, segment,
};
pub use shared::paths::{LOGIN, LOGOUT};

/// How many audit entries the audit page shows.
pub const AUDIT_PAGE_SIZE: u32 = 100;

pub async fn login(request: &LoginRequest) -> Result<LoginResponse, ApiError> {
    transport::send(Method::Post, LOGIN, Some(request)).await
}

pub async fn logout() -> Result<(), ApiError> {
    transport::send_no_content(Method::Post, LOGOUT).await
}

pub async fn list_users() -> Result<Vec<UserView>, ApiError> {
    transport::send(Method::Get, USERS, None::<&()>).await
}

pub async fn create_user(request: &CreateUserRequest) -> Result<UserView, ApiError> {
    transport::send(Method::Post, USERS, Some(request)).await
}

/// The newest audit entries, newest first.
pub async fn recent_audit() -> Result<Vec<AuditEntryView>, ApiError> {
    let url = format!("{AUDIT}?limit={AUDIT_PAGE_SIZE}");
    transport::send(Method::Get, &url, None::<&()>).await
}

pub async fn list_services() -> Result<Vec<ServiceView>, ApiError> {
    transport::send(Method::Get, SERVICES, None::<&()>).await
}

pub async fn create_service(request: &CreateServiceRequest) -> Result<ServiceView, ApiError> {
    transport::send(Method::Post, SERVICES, Some(request)).await
}

/// A service's own URL under `/api/v1/services`, its name and environment
/// escaped rather than trusted (a name typed into the address bar may hold
/// anything).
fn service_url(name: &str, env: &str, rest: &str) -> String {
    format!("{}{rest}", paths::service(name, env).root())
}

pub async fn get_service(name: &str, env: &str) -> Result<ServiceView, ApiError> {
    transport::send(Method::Get, &service_url(name, env, ""), None::<&()>).await
}

/// The saved draft, or `None` when there is none (a 404 for a service that
/// exists).
pub async fn get_draft(name: &str, env: &str) -> Result<Option<DraftView>, ApiError> {
    match transport::send(Method::Get, &service_url(name, env, "/draft"), None::<&()>).await {
        Ok(draft) => Ok(Some(draft)),
        Err(e) if e.status() == Some(404) && e.code() == Some("not_found") => {
            // A missing service is also a 404; tell the two apart by asking.
            get_service(name, env).await.map(|_| None)
        }
        Err(e) => Err(e),
    }
}

pub async fn save_draft(name: &str, env: &str, policy: &Policy) -> Result<DraftView, ApiError> {
    transport::send(Method::Put, &service_url(name, env, "/draft"), Some(policy)).await
}

/// Saves a policy written as YAML as the draft. The server reads it as it
/// reads policy files; a text that is not a policy is a 422 naming the
/// field.
pub async fn save_draft_yaml(name: &str, env: &str, yaml: &str) -> Result<DraftView, ApiError> {
    let url = service_url(name, env, "/draft");
    transport::send_text(Method::Put, &url, YAML, yaml).await
}

/// Validates a policy written as YAML without saving it.
pub async fn validate_yaml(name: &str, env: &str, yaml: &str) -> Result<ValidationView, ApiError> {
    let url = service_url(name, env, "/validate");
    transport::send_text(Method::Post, &url, YAML, yaml).await
}

const YAML: &str = "application/yaml";

/// Publishes; the status tells a new version (201) from a request for
/// approval (202), and the outcome says the same.
pub async fn publish(
    name: &str,
    env: &str,
    request: &PublishRequest,
) -> Result<PublishOutcome, ApiError> {
    transport::send(
        Method::Post,
        &service_url(name, env, "/publish"),
        Some(request),
    )
    .await
}

pub async fn list_versions(name: &str, env: &str) -> Result<Vec<VersionView>, ApiError> {
    transport::send(
        Method::Get,
        &service_url(name, env, "/versions"),
        None::<&()>,
    )
    .await
}

pub async fn get_version(name: &str, env: &str, version: u64) -> Result<VersionView, ApiError> {
    let url = service_url(name, env, &format!("/versions/{version}"));
    transport::send(Method::Get, &url, None::<&()>).await
}

/// The changes from one side to another: a version number, `active` or
/// `draft`.
pub async fn diff(name: &str, env: &str, from: &str, to: &str) -> Result<DiffView, ApiError> {
    let url = service_url(
        name,
        env,
        &format!("/diff?from={}&to={}", segment(from), segment(to)),
    );
    transport::send(Method::Get, &url, None::<&()>).await
}

pub async fn rollback(
    name: &str,
    env: &str,
    request: &RollbackRequest,
) -> Result<PublishOutcome, ApiError> {
    transport::send(
        Method::Post,
        &service_url(name, env, "/rollback"),
        Some(request),
    )
    .await
}

pub async fn rollout(
    name: &str,
    env: &str,
    action: &RolloutAction,
) -> Result<RolloutView, ApiError> {
    transport::send(
        Method::Post,
        &service_url(name, env, "/rollout"),
        Some(action),
    )
    .await
}

pub async fn instances(name: &str, env: &str) -> Result<Vec<InstanceView>, ApiError> {
    transport::send(
        Method::Get,
        &service_url(name, env, "/instances"),
        None::<&()>,
    )
    .await
}

/// Every instance of every service, the lagging first.
pub async fn fleet_instances() -> Result<Vec<InstanceView>, ApiError> {
    transport::send(Method::Get, FLEET_INSTANCES, None::<&()>).await
}

/// Every service's live summary (`FleetLive`), once, read as `T`; the
/// overview asks when its stream fails, to tell an ended session from a
/// server that is away, and reads only the fields it draws.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub async fn fleet_live<T: serde::de::DeserializeOwned>() -> Result<T, ApiError> {
    transport::send(Method::Get, FLEET_LIVE, None::<&()>).await
}

/// One service's live figures and time series over the last `window_secs`.
pub async fn telemetry(
    name: &str,
    env: &str,
    window_secs: u64,
) -> Result<ServiceTelemetry, ApiError> {
    let url = service_url(name, env, &format!("/telemetry?window_secs={window_secs}"));
    transport::send(Method::Get, &url, None::<&()>).await
}

/// Every service's tightest error budget and the analysis's last canary
/// decision of the last day (`FleetObjectives`), read as `T`: the overview
/// reads it as a JSON value, for the main bundle's sake.
pub async fn fleet_objectives<T: serde::de::DeserializeOwned>() -> Result<T, ApiError> {
    transport::send(Method::Get, paths::OBJECTIVES, None::<&()>).await
}

/// One service's objectives: budgets, burn rates, and the canary analysis.
pub async fn service_objectives(
    name: &str,
    env: &str,
) -> Result<shared::api::ServiceObjectives, ApiError> {
    let url = paths::service(name, env).objectives();
    transport::send(Method::Get, &url, None::<&()>).await
}

pub async fn pending_publish_requests() -> Result<Vec<PublishRequestView>, ApiError> {
    let url = format!("{PUBLISH_REQUESTS}?status=pending");
    transport::send(Method::Get, &url, None::<&()>).await
}

pub async fn decide_publish_request(
    id: &str,
    approve: bool,
    request: &DecisionRequest,
) -> Result<PublishRequestView, ApiError> {
    let url = if approve {
        paths::approve_publish(id)
    } else {
        paths::reject_publish(id)
    };
    transport::send(Method::Post, &url, Some(request)).await
}

/// How many dead letters one page of the queue shows.
pub const DEAD_LETTER_PAGE_SIZE: u32 = 50;

/// What the dead-letter page searches for; empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    pub task_type: String,
    pub failed_node: String,
    pub error_type: Option<ErrorClass>,
    pub status: Option<DeadLetterStatus>,
    /// Only entries at least this old, in seconds.
    pub min_age_s: Option<u64>,
    /// Only entries at most this old, in seconds.
    pub max_age_s: Option<u64>,
}

/// `GET /api/v1/dead-letters` for one service's queue, filtered, one page
/// from `cursor` on. Every value is escaped: the filters are typed by
/// people.
fn dead_letters_url(
    name: &str,
    env: &str,
    filter: &DeadLetterFilter,
    cursor: Option<&str>,
) -> String {
    let mut url = format!(
        "{DEAD_LETTERS}?service={}&environment={}&limit={DEAD_LETTER_PAGE_SIZE}",
        segment(name),
        segment(env)
    );
    let mut add = |key: &str, value: &str| {
        if !value.trim().is_empty() {
            url.push_str(&format!("&{key}={}", segment(value.trim())));
        }
    };
    add("task_type", &filter.task_type);
    add("failed_node", &filter.failed_node);
    add(
        "error_type",
        filter.error_type.map_or("", ErrorClass::as_str),
    );
    add("status", filter.status.map_or("", DeadLetterStatus::as_str));
    add(
        "min_age_s",
        &filter.min_age_s.map(|s| s.to_string()).unwrap_or_default(),
    );
    add(
        "max_age_s",
        &filter.max_age_s.map(|s| s.to_string()).unwrap_or_default(),
    );
    add("cursor", cursor.unwrap_or_default());
    url
}

pub async fn dead_letters(
    name: &str,
    env: &str,
    filter: &DeadLetterFilter,
    cursor: Option<&str>,
) -> Result<DeadLetterPage, ApiError> {
    let url = dead_letters_url(name, env, filter, cursor);
    transport::send(Method::Get, &url, None::<&()>).await
}

pub async fn dead_letter_summary(name: &str, env: &str) -> Result<DeadLetterSummary, ApiError> {
    let url = paths::service(name, env).dead_letter_summary();
    transport::send(Method::Get, &url, None::<&()>).await
}

/// One dead letter with its actions, history and what each action needs.
pub async fn dead_letter(id: &str) -> Result<DeadLetterDetail, ApiError> {
    transport::send(Method::Get, &paths::dead_letter(id), None::<&()>).await
}

pub async fn request_dlq_action(id: &str, request: &ActionRequest) -> Result<ActionView, ApiError> {
    let url = paths::dead_letter_actions(id);
    transport::send(Method::Post, &url, Some(request)).await
}

/// The same action on many entries; each answers for itself.
pub async fn bulk_dlq_action(request: &BulkActionRequest) -> Result<Vec<BulkItemResult>, ApiError> {
    transport::send(Method::Post, DEAD_LETTER_BULK_ACTIONS, Some(request)).await
}

/// Dead-letter actions waiting for an approver, newest first.
pub async fn requested_dlq_actions() -> Result<Vec<ActionView>, ApiError> {
    let url = format!("{DLQ_ACTIONS}?status=requested");
    transport::send(Method::Get, &url, None::<&()>).await
}

/// How many decisions wait for the signed-in user.
pub async fn inbox_count() -> Result<InboxCount, ApiError> {
    transport::send(Method::Get, DLQ_ACTIONS_COUNT, None::<&()>).await
}

/// What a person may do to a dead-letter action that is still live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject,
    Withdraw,
}

impl Verdict {
    /// The verb in the action's path.
    pub fn verb(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
            Verdict::Withdraw => "withdraw",
        }
    }
}

pub async fn decide_dlq_action(
    id: &str,
    verdict: Verdict,
    decision: &ActionDecision,
) -> Result<ActionView, ApiError> {
    let url = paths::dlq_action(id, verdict.verb());
    transport::send(Method::Post, &url, Some(decision)).await
}

pub async fn bulk_approve_dlq_actions(
    decision: &BulkDecision,
) -> Result<Vec<BulkItemResult>, ApiError> {
    transport::send(Method::Post, DLQ_ACTIONS_BULK_APPROVE, Some(decision)).await
}

/// What the runbooks page searches for; empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunbookFilter {
    pub service: String,
    pub dependency: String,
    pub failure_type: String,
    /// Words in the slug or title.
    pub text: String,
}

/// `GET /api/v1/runbooks`, filtered; every value escaped, since people
/// type them.
fn runbooks_url(filter: &RunbookFilter) -> String {
    let query: Vec<String> = [
        ("service", &filter.service),
        ("dependency", &filter.dependency),
        ("failure_type", &filter.failure_type),
        ("q", &filter.text),
    ]
    .into_iter()
    .filter(|(_, value)| !value.trim().is_empty())
    .map(|(key, value)| format!("{key}={}", segment(value.trim())))
    .collect();
    if query.is_empty() {
        RUNBOOKS.to_owned()
    } else {
        format!("{RUNBOOKS}?{}", query.join("&"))
    }
}

pub async fn runbooks(filter: &RunbookFilter) -> Result<Vec<RunbookSummary>, ApiError> {
    transport::send(Method::Get, &runbooks_url(filter), None::<&()>).await
}

/// The text a new runbook starts from.
pub async fn runbook_template() -> Result<RunbookTemplate, ApiError> {
    transport::send(Method::Get, RUNBOOK_TEMPLATE, None::<&()>).await
}

/// One version of a runbook, rendered; the latest when `version` is `None`.
pub async fn runbook(slug: &str, version: Option<u64>) -> Result<RunbookView, ApiError> {
    let url = match version {
        Some(v) => paths::runbook_version(slug, v),
        None => paths::runbook(slug),
    };
    transport::send(Method::Get, &url, None::<&()>).await
}

/// A runbook's versions, newest first.
pub async fn runbook_history(slug: &str) -> Result<Vec<RunbookVersionSummary>, ApiError> {
    transport::send(Method::Get, &paths::runbook_versions(slug), None::<&()>).await
}

/// Creates a runbook (no `base_version`) or writes its next version.
pub async fn write_runbook(slug: &str, write: &RunbookWrite) -> Result<RunbookView, ApiError> {
    transport::send(Method::Put, &paths::runbook(slug), Some(write)).await
}

/// Starts a checklist from a runbook's latest version.
pub async fn start_checklist(
    slug: &str,
    start: &ChecklistStart,
) -> Result<ChecklistView, ApiError> {
    transport::send(Method::Post, &paths::runbook_checklists(slug), Some(start)).await
}

/// Checklists, open ones first; only one runbook's when `runbook` is given.
pub async fn checklists(runbook: Option<&str>) -> Result<Vec<ChecklistView>, ApiError> {
    let url = match runbook {
        Some(slug) => format!("{CHECKLISTS}?runbook={}", segment(slug)),
        None => CHECKLISTS.to_owned(),
    };
    transport::send(Method::Get, &url, None::<&()>).await
}

pub async fn checklist(id: &str) -> Result<ChecklistView, ApiError> {
    transport::send(Method::Get, &paths::checklist(id), None::<&()>).await
}

/// Ticks or unticks a step; the answer says who and when, as recorded.
pub async fn tick_step(id: &str, index: u32, tick: &StepTick) -> Result<ChecklistView, ApiError> {
    transport::send(Method::Put, &paths::checklist_step(id, index), Some(tick)).await
}

pub async fn close_checklist(id: &str) -> Result<ChecklistView, ApiError> {
    transport::send(Method::Post, &paths::close_checklist(id), None::<&()>).await
}

/// Every alert rule, the built-in ones included.
pub async fn alert_rules() -> Result<Vec<AlertRuleView>, ApiError> {
    transport::send(Method::Get, ALERT_RULES, None::<&()>).await
}

/// Creates or replaces a rule; a missing runbook is a 422 naming `runbook`.
pub async fn put_alert_rule(name: &str, rule: &AlertRuleWrite) -> Result<AlertRuleView, ApiError> {
    transport::send(Method::Put, &paths::alert_rule(name), Some(rule)).await
}

/// Alerts in one state, or all of them (firing first, then pending, then
/// resolved, newest first).
pub async fn alerts(state: Option<AlertState>) -> Result<Vec<AlertView>, ApiError> {
    let url = match state {
        Some(state) => format!("{ALERTS}?state={}", state.as_str()),
        None => ALERTS.to_owned(),
    };
    transport::send(Method::Get, &url, None::<&()>).await
}

/// The alerts firing now, read as `T`: the overview's banner reads only
/// the fields it shows, which keeps the main bundle small.
pub async fn firing_alerts<T: serde::de::DeserializeOwned>() -> Result<Vec<T>, ApiError> {
    let url = format!("{ALERTS}?state={}", AlertState::Firing.as_str());
    transport::send(Method::Get, &url, None::<&()>).await
}

/// Says that someone is on a firing alert; the answer names who.
pub async fn acknowledge_alert(id: &str) -> Result<AlertView, ApiError> {
    transport::send(Method::Post, &paths::acknowledge_alert(id), None::<&()>).await
}

/// Forces a dependency's breaker open or closed across the fleet (or lifts
/// that): each service's next version goes through the publish path.
pub async fn breaker_override(
    req: &shared::api::BreakerOverrideRequest,
) -> Result<Vec<shared::api::BreakerOverrideResult>, ApiError> {
    transport::send(Method::Post, paths::BREAKER_OVERRIDE, Some(req)).await
}

/// Silences in force, and those of the last week.
pub async fn silences() -> Result<Vec<SilenceView>, ApiError> {
    let url = format!("{SILENCES}?all=true");
    transport::send(Method::Get, &url, None::<&()>).await
}

pub async fn create_silence(write: &SilenceWrite) -> Result<SilenceView, ApiError> {
    transport::send(Method::Post, SILENCES, Some(write)).await
}

pub async fn end_silence(id: &str) -> Result<(), ApiError> {
    transport::send_no_content(Method::Post, &paths::end_silence(id)).await
}

pub async fn webhooks() -> Result<Vec<WebhookView>, ApiError> {
    transport::send(Method::Get, WEBHOOKS, None::<&()>).await
}

pub async fn create_webhook(write: &WebhookWrite) -> Result<WebhookView, ApiError> {
    transport::send(Method::Post, WEBHOOKS, Some(write)).await
}

pub async fn delete_webhook(id: &str) -> Result<(), ApiError> {
    transport::send_no_content(Method::Delete, &paths::webhook(id)).await
}

/// One alert's notifications and how their delivery went, newest first.
pub async fn notifications(alert: &str) -> Result<Vec<NotificationView>, ApiError> {
    let url = format!("{NOTIFICATIONS}?alert={}", segment(alert));
    transport::send(Method::Get, &url, None::<&()>).await
}

#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

#[cfg(feature = "hydrate")]
mod transport {
    use super::{ApiError, Method};
    use gloo_net::http::{Request, RequestBuilder, Response};
    use serde::{Serialize, de::DeserializeOwned};
    use shared::api::ErrorBody;

    fn builder(method: Method, url: &str) -> RequestBuilder {
        let builder = match method {
            Method::Get => Request::get(url),
            Method::Post => Request::post(url),
            Method::Put => Request::put(url),
            Method::Delete => Request::delete(url),
        };
        builder.header("accept", "application/json")
    }

    async fn fetch<B: Serialize>(
        method: Method,
        url: &str,
        body: Option<&B>,
    ) -> Result<Response, ApiError> {
        let builder = builder(method, url);
        let request = match body {
            Some(body) => builder.json(body).map_err(|_| ApiError::Malformed)?,
            None => builder.build().map_err(|_| ApiError::Malformed)?,
        };
        answer(request).await
    }

    async fn answer(request: Request) -> Result<Response, ApiError> {
        let response = request.send().await.map_err(|_| ApiError::Network)?;
        if response.ok() {
            Ok(response)
        } else {
            // A proxy's HTML error page has no ErrorBody; the status still
            // says enough to write a message.
            let retry_after_secs = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.trim().parse().ok());
            let detail = response.json::<ErrorBody>().await.ok().map(|b| b.error);
            Err(ApiError::Status {
                status: response.status(),
                detail,
                retry_after_secs,
            })
        }
    }

    pub(super) async fn send<B: Serialize, T: DeserializeOwned>(
        method: Method,
        url: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let response = fetch(method, url, body).await?;
        response.json::<T>().await.map_err(|_| ApiError::Malformed)
    }

    pub(super) async fn send_no_content(method: Method, url: &str) -> Result<(), ApiError> {
        fetch(method, url, None::<&()>).await.map(drop)
    }

    /// Sends a text body of the given content type.
    pub(super) async fn send_text<T: DeserializeOwned>(
        method: Method,
        url: &str,
        content_type: &str,
        text: &str,
    ) -> Result<T, ApiError> {
        let request = builder(method, url)
            .header("content-type", content_type)
            .body(text)
            .map_err(|_| ApiError::Malformed)?;
        let response = answer(request).await?;
        response.json::<T>().await.map_err(|_| ApiError::Malformed)
    }
}

#[cfg(not(feature = "hydrate"))]
mod transport {
    //! Only the browser talks to the API. Without `hydrate` these exist so
    //! that the pages compile; nothing calls them on the server.

    use super::{ApiError, Method};
    use serde::{Serialize, de::DeserializeOwned};

    pub(super) async fn send<B: Serialize, T: DeserializeOwned>(
        _method: Method,
        _url: &str,
        _body: Option<&B>,
    ) -> Result<T, ApiError> {
        Err(ApiError::Network)
    }

    pub(super) async fn send_no_content(_method: Method, _url: &str) -> Result<(), ApiError> {
        Err(ApiError::Network)
    }

    pub(super) async fn send_text<T: DeserializeOwned>(
        _method: Method,
        _url: &str,
        _content_type: &str,
        _text: &str,
    ) -> Result<T, ApiError> {
        Err(ApiError::Network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, message: &str, field: Option<&str>) -> ApiError {
        ApiError::Status {
            status,
            detail: Some(ErrorDetail {
                code: "validation".into(),
                message: message.into(),
                field: field.map(Into::into),
                details: None,
            }),
            retry_after_secs: None,
        }
    }

    #[test]
    fn the_servers_message_wins_over_the_generic_one() {
        let e = status(422, "username is taken", Some("username"));
        assert_eq!(e.message(), "Username is taken");
        assert_eq!(e.field(), Some("username"));
        assert_eq!(e.code(), Some("validation"));
    }

    #[test]
    fn a_blank_server_message_falls_back_to_the_status() {
        let e = status(503, "  ", None);
        assert!(e.message().contains("HTTP 503"), "{}", e.message());
        let e = ApiError::Status {
            status: 403,
            detail: None,
            retry_after_secs: None,
        };
        assert_eq!(e.message(), "Your role does not allow this.");
        assert_eq!(e.field(), None);
    }

    #[test]
    fn server_messages_read_as_sentences() {
        assert_eq!(
            status(422, "password must have at least 12 characters", None).message(),
            "Password must have at least 12 characters"
        );
        assert_eq!(
            status(409, " Already Capitalised", None).message(),
            "Already Capitalised"
        );
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("rag-answer_v1.2"), "rag-answer_v1.2");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(
            service_url("x", "prod", "/draft"),
            "/api/v1/services/x/prod/draft"
        );
    }

    #[test]
    fn dead_letter_searches_escape_their_filters() {
        let all = DeadLetterFilter::default();
        assert_eq!(
            dead_letters_url("case-review", "prod", &all, None),
            "/api/v1/dead-letters?service=case-review&environment=prod&limit=50"
        );
        let some = DeadLetterFilter {
            task_type: " case review ".into(),
            failed_node: "a&b=c".into(),
            error_type: Some(ErrorClass::Timeout),
            status: Some(DeadLetterStatus::Open),
            min_age_s: Some(3600),
            max_age_s: None,
        };
        assert_eq!(
            dead_letters_url("x", "prod", &some, Some("c/1")),
            "/api/v1/dead-letters?service=x&environment=prod&limit=50&task_type=case%20review\
             &failed_node=a%26b%3Dc&error_type=timeout&status=open&min_age_s=3600&cursor=c%2F1"
        );
    }

    #[test]
    fn runbook_searches_escape_their_filters() {
        assert_eq!(runbooks_url(&RunbookFilter::default()), "/api/v1/runbooks");
        let some = RunbookFilter {
            service: " rag-answer ".into(),
            dependency: String::new(),
            failure_type: "breaker_open".into(),
            text: "dlq & more".into(),
        };
        assert_eq!(
            runbooks_url(&some),
            "/api/v1/runbooks?service=rag-answer&failure_type=breaker_open&q=dlq%20%26%20more"
        );
    }

    #[test]
    fn numbers_in_the_details_are_read() {
        let e = ApiError::Status {
            status: 409,
            detail: Some(ErrorDetail {
                code: "conflict".into(),
                message: "moved on".into(),
                field: Some("base_version".into()),
                details: Some(serde_json::json!({ "latest_version": 3 })),
            }),
            retry_after_secs: None,
        };
        assert_eq!(e.detail_number("latest_version"), Some(3));
        assert_eq!(e.detail_number("other"), None);
        assert_eq!(ApiError::Network.detail_number("latest_version"), None);
    }

    #[test]
    fn only_401_ends_the_session() {
        assert!(status(401, "expired", None).is_unauthenticated());
        assert!(!status(403, "no", None).is_unauthenticated());
        assert!(!ApiError::Network.is_unauthenticated());
    }
}
