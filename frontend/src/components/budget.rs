//! Error budgets in words and colours, shared by the service page's
//! objectives and the overview's cards; and the overview's per-card line.
//!
//! Budgets come from the server in basis points of the budget (10000 is
//! untouched, 0 spent, below zero overspent): the server computes them from
//! the persisted rollups, so every page shows the same figure.

// TEMPORARY: the overview's cards use the fleet half once its open bundle
// work is committed; until then it is unused.
#![allow(dead_code)]

use crate::api::ApiError;
use crate::remote::Remote;
use crate::time::age;
use leptos::prelude::*;
use shared::api::{CanaryVerdict, FleetObjectives, ServiceObjectives};

/// `GET /api/v1/objectives`: every service's tightest budget.
pub async fn fleet_objectives() -> Result<FleetObjectives, ApiError> {
    get_json(shared::paths::OBJECTIVES).await
}

/// `GET /api/v1/services/{name}/{env}/objectives`: one service's objectives
/// and canary analysis.
pub async fn service_objectives(name: &str, env: &str) -> Result<ServiceObjectives, ApiError> {
    get_json(&shared::paths::service(name, env).objectives()).await
}

/// A GET of JSON, as `api`'s transport makes it (its module is private to
/// `api`, which another change has open; these two move there later).
#[cfg(feature = "hydrate")]
async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, ApiError> {
    let response = gloo_net::http::Request::get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|_| ApiError::Network)?;
    if !response.ok() {
        let detail = response
            .json::<shared::api::ErrorBody>()
            .await
            .ok()
            .map(|b| b.error);
        return Err(ApiError::Status {
            status: response.status(),
            detail,
            retry_after_secs: None,
        });
    }
    response.json::<T>().await.map_err(|_| ApiError::Malformed)
}

/// Only the browser talks to the API (see `api`).
#[cfg(not(feature = "hydrate"))]
async fn get_json<T>(_url: &str) -> Result<T, ApiError> {
    Err(ApiError::Network)
}

/// How often the overview asks for the budgets again. Budgets move slowly
/// (they cover days), but an automatic canary rollback should show soon.
const FLEET_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// A budget's state: `healthy`, `low` (under a quarter left) or `spent`
/// (nothing left). The key is the CSS class suffix and `data-state`.
pub fn budget_state(remaining_bp: i64) -> &'static str {
    if remaining_bp <= 0 {
        "spent"
    } else if remaining_bp < 2_500 {
        "low"
    } else {
        "healthy"
    }
}

/// Basis points as a percentage with two decimals: 9950 → `99.50 %`.
pub fn bp_percent(bp: i64) -> String {
    let sign = if bp < 0 { "−" } else { "" };
    let a = bp.unsigned_abs();
    format!("{sign}{}.{:02} %", a / 100, a % 100)
}

/// The budget left in words: `73.4 % left`, `spent`, `overspent by 12.0 %`.
pub fn budget_text(remaining_bp: i64) -> String {
    let one_decimal = |bp: u64| format!("{}.{} %", bp / 100, bp % 100 / 10);
    match remaining_bp {
        0 => "spent".to_owned(),
        bp if bp < 0 => format!("overspent by {}", one_decimal(bp.unsigned_abs())),
        bp => format!("{} left", one_decimal(bp as u64)),
    }
}

/// What the analysis did, as a sentence start: "rolled back" or "promoted".
pub fn decision_text(decision: &str) -> &'static str {
    match decision {
        "aborted" => "rolled back",
        "promoted" => "promoted",
        _ => "decided on",
    }
}

/// The overview's budgets: one request for every card, made in the
/// browser after hydration and again every [`FLEET_REFRESH`]. Provided as
/// context by the overview, read by each [`CardBudget`].
#[derive(Clone, Copy)]
pub struct FleetBudgets(Remote<FleetObjectives>);

impl FleetBudgets {
    /// Starts loading and provides the budgets to the cards below.
    pub fn provide() {
        let remote = Remote::new(fleet_objectives);
        Effect::new(move |_| {
            if let Ok(handle) = set_interval_with_handle(move || remote.reload(), FLEET_REFRESH) {
                on_cleanup(move || handle.clear());
            }
        });
        provide_context(FleetBudgets(remote));
    }
}

/// One card's tightest budget and the last automatic canary decision, if
/// the service has objectives. Draws nothing until the budgets arrive (the
/// server renders the cards without them), or without [`FleetBudgets`].
#[component]
pub fn CardBudget(name: String, env: String) -> impl IntoView {
    let Some(FleetBudgets(remote)) = use_context::<FleetBudgets>() else {
        return ().into_any();
    };
    let prefix = format!("{name}-{env}");
    let line = move || {
        let fleet = remote.get()?.ok()?;
        let b = fleet
            .services
            .into_iter()
            .find(|b| b.service == name && b.environment == env)?;
        let state = budget_state(b.budget_remaining_bp);
        let verdict = b
            .last_canary_verdict
            .map(|v| verdict_line(&prefix, v, fleet.as_of_ms));
        let violations = (b.violations > 0).then(|| {
            view! {
                <span class="budget-violations">
                    {format!(" · {} safety violation{}", b.violations, if b.violations == 1 { "" } else { "s" })}
                </span>
            }
        });
        Some(view! {
            <p
                class=format!("fleet-budget budget-{state}")
                data-test=format!("budget-{prefix}")
                data-state=state
                data-value=b.budget_remaining_bp
            >
                <span class="budget-dot" aria-hidden="true"></span>
                "Error budget: "
                <strong>{budget_text(b.budget_remaining_bp)}</strong>
                <span class="muted">{format!(" ({})", b.tightest)}</span>
                {violations}
            </p>
            {verdict}
        })
    };
    view! { <div class="fleet-budget-lines" aria-live="polite">{line}</div> }.into_any()
}

fn verdict_line(prefix: &str, v: CanaryVerdict, as_of_ms: i64) -> impl IntoView + use<> {
    let class = if v.decision == "aborted" {
        "fleet-canary is-bad"
    } else {
        "fleet-canary is-ok"
    };
    view! {
        <p class=class data-test=format!("canary-verdict-{prefix}") data-decision=v.decision.clone()>
            {format!(
                "Canary v{} {} automatically {} ago: ",
                v.canary_version,
                decision_text(&v.decision),
                age(as_of_ms - v.decided_at_ms),
            )}
            <span data-test=format!("canary-reason-{prefix}")>{v.reason}</span>
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_have_three_states() {
        assert_eq!(budget_state(10_000), "healthy");
        assert_eq!(budget_state(2_500), "healthy");
        assert_eq!(budget_state(2_499), "low");
        assert_eq!(budget_state(1), "low");
        assert_eq!(budget_state(0), "spent");
        assert_eq!(budget_state(-300), "spent");
    }

    #[test]
    fn budgets_read_as_words() {
        assert_eq!(budget_text(10_000), "100.0 % left");
        assert_eq!(budget_text(7_345), "73.4 % left");
        assert_eq!(budget_text(0), "spent");
        assert_eq!(budget_text(-1_200), "overspent by 12.0 %");
        assert_eq!(bp_percent(9_950), "99.50 %");
        assert_eq!(bp_percent(5), "0.05 %");
        assert_eq!(bp_percent(-250), "−2.50 %");
    }
}
