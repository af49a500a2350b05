//! The REST API under `/api/v1`, one module per resource, merged here.
//!
//! A handler checks the caller's role, parses the request, calls one
//! function of the domain (`crate::policy`, `crate::dead_letters`,
//! `crate::telemetry`, `crate::auth`, `crate::runbooks`, `crate::alerts`) and turns the answer into a response. Workflows and their
//! side effects live in the domain, so nothing outside this module imports
//! it.

pub mod agent;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod dead_letters;
pub mod dlq_actions;
pub mod drafts;
pub mod health;
pub mod incidents;
pub mod instances;
pub mod metrics;
pub mod objectives;
pub mod publish;
pub mod publish_requests;
pub mod report;
pub mod rollout;
pub mod runbooks;
pub mod services;
pub mod telemetry;
pub mod tokens;
pub mod users;
pub mod versions;

use crate::app::AppState;
use crate::error::ApiError;
use axum::Router;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

/// The OpenAPI document, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ballast",
        description = "Reliability control plane for AI applications. Humans authenticate with a session \
                       token (bearer or cookie); enforcement agents with a service token scoped to one \
                       service and environment.",
    ),
    paths(
        auth::login, auth::logout, auth::me,
        users::list_users, users::create_user, users::update_user,
        tokens::list_tokens, tokens::create_token, tokens::revoke_token,
        audit::list_audit,
        services::list_services, services::create_service, services::get_service,
        drafts::get_draft, drafts::put_draft, drafts::validate_document, publish::publish,
        versions::list_versions, versions::get_version, versions::diff, publish::rollback, rollout::rollout,
        instances::service_instances, instances::fleet_instances,
        publish_requests::list_publish_requests, publish_requests::approve, publish_requests::reject,
        agent::policy, agent::stream, agent::heartbeat, agent::dead_letter, agent::ack_action,
        dead_letters::list_dead_letters, dead_letters::get_dead_letter, dead_letters::request_action,
        dead_letters::bulk_request, dead_letters::summary,
        dlq_actions::list_actions, dlq_actions::count, dlq_actions::approve, dlq_actions::reject,
        dlq_actions::withdraw, dlq_actions::bulk_approve,
        telemetry::ingest, telemetry::service_telemetry, telemetry::fleet_live, telemetry::live,
        runbooks::list_runbooks, runbooks::template, runbooks::get_runbook, runbooks::put_runbook,
        runbooks::runbook_history, runbooks::runbook_version, runbooks::start_checklist,
        runbooks::list_checklists, runbooks::get_checklist, runbooks::tick_step, runbooks::close_checklist,
        alerts::list_rules, alerts::get_rule, alerts::put_rule, alerts::delete_rule, alerts::list_alerts,
        alerts::get_alert, alerts::acknowledge, alerts::list_silences, alerts::create_silence,
        alerts::end_silence, alerts::list_webhooks, alerts::create_webhook, alerts::delete_webhook,
        alerts::list_notifications, report::report, incidents::breaker_override,
        objectives::service_objectives, objectives::fleet_objectives,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "Sign in and out"),
        (name = "users", description = "User administration (admin)"),
        (name = "tokens", description = "Service tokens for agents (admin)"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "policy", description = "Services, drafts, versions, publishing, approvals and rollouts"),
        (name = "fleet", description = "Agent instances, the versions they run, and live telemetry"),
        (name = "agent", description = "The agent protocol (service tokens only)"),
        (name = "dead-letters", description = "Dead letters, and four-eyes actions on them"),
        (name = "alerts", description = "Alert rules on live metrics, alerts, silences and webhook notifications"),
        (name = "runbooks", description = "Runbooks, versioned, and the checklists worked through in incidents"),
        (name = "objectives", description = "Service level objectives: error budgets, burn rates and canary analysis"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every route under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(tokens::router())
        .merge(audit::router())
        .merge(services::router())
        .merge(drafts::router())
        .merge(versions::router())
        .merge(publish::router())
        .merge(publish_requests::router())
        .merge(rollout::router())
        .merge(instances::router())
        .merge(agent::router())
        .merge(telemetry::router())
        .merge(dead_letters::router())
        .merge(dlq_actions::router())
        .merge(runbooks::router())
        .merge(alerts::router())
        .merge(report::router())
        .merge(objectives::router())
        .merge(incidents::router())
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
}

async fn openapi_json() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}

/// A readable reference page built from the same OpenAPI document, so the
/// docs cannot drift from the code. Served without third-party scripts.
async fn docs() -> Html<String> {
    let doc = ApiDoc::openapi();
    let mut html = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ballast API</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/pkg/ballast.css\"></head><body class=\"docs\"><main class=\"page\">\
         <h1>Ballast API</h1>",
    );
    if let Some(desc) = &doc.info.description {
        html.push_str(&format!("<p>{}</p>", escape(desc)));
    }
    html.push_str(
        "<p>Machine-readable: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a></p>",
    );
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            html.push_str(&format!(
                "<section class=\"card\"><h2><code>{method} {}</code></h2>",
                escape(path)
            ));
            if let Some(summary) = &op.summary {
                html.push_str(&format!("<p>{}</p>", escape(summary)));
            }
            html.push_str("<ul>");
            for (status, response) in &op.responses.responses {
                let text = match response {
                    utoipa::openapi::RefOr::T(r) => r.description.clone(),
                    utoipa::openapi::RefOr::Ref(r) => r.ref_location.clone(),
                };
                html.push_str(&format!(
                    "<li><code>{}</code> {}</li>",
                    escape(status),
                    escape(&text)
                ));
            }
            html.push_str("</ul></section>");
        }
    }
    html.push_str("</main></body></html>");
    Html(html)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Unknown API routes get a JSON 404 rather than the dashboard's HTML.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no API route at {}", uri.path()))
}

/// A known route with the wrong method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not supported on {}", uri.path()),
    )
}

/// A safety net for errors produced outside our handlers (a layer's 408 or
/// 413, a caught panic): every error under `/api` leaves as JSON.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let (code, message) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => (
                "payload_too_large",
                "the request body is larger than the server accepts",
            ),
            StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
            StatusCode::METHOD_NOT_ALLOWED => {
                ("method_not_allowed", "method not allowed on this route")
            }
            s if s.is_server_error() => {
                ("internal", "an internal error occurred; it has been logged")
            }
            _ => ("bad_request", "the request could not be handled"),
        };
        let mut fixed = ApiError::new(status, code, message).into_response();
        if let Some(v) = response.headers().get(header::RETRY_AFTER) {
            fixed.headers_mut().insert(header::RETRY_AFTER, v.clone());
        }
        return fixed;
    }
    response
}
