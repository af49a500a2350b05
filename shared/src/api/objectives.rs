//! Service level objectives as the dashboard and the REST API see them:
//! how much of each error budget is left, how fast it burns, and how the
//! running canary compares with the stable version.

use serde::{Deserialize, Serialize};

/// The windows burn rates are reported over, in seconds, shortest first:
/// the short and long windows of the burn-rate alerts.
pub const BURN_WINDOWS_S: [u32; 5] = [300, 1800, 3600, 21_600, 259_200];

/// `GET /api/v1/services/{service}/{env}/objectives`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceObjectives {
    /// The service.
    pub service: String,
    /// Its environment.
    pub environment: String,
    /// When the figures were computed, Unix milliseconds.
    pub as_of_ms: i64,
    /// One entry per objective of the active policy, in its order.
    pub objectives: Vec<ObjectiveStatus>,
    /// The running canary's comparison with the stable version, if a canary
    /// runs and its policy asks for analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryComparison>,
    /// Canaries that the analysis promoted or aborted, newest first.
    #[serde(default)]
    pub canary_history: Vec<CanaryVerdict>,
}

/// One objective's standing over its window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObjectiveStatus {
    /// The objective's id.
    pub id: String,
    /// `latency`, `availability`, `quality` or `safety`.
    pub kind: String,
    /// The objective in a sentence, as "95.00 % of requests within 5000 ms".
    pub summary: String,
    /// The target, in basis points.
    pub target_bp: u32,
    /// The rolling window, in days.
    pub window_days: u32,
    /// Requests in the window (for a safety goal: requests seen, if any).
    pub valid: u64,
    /// Good requests in the window.
    pub good: u64,
    /// The share of good requests achieved, in basis points; absent with no
    /// requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_bp: Option<u32>,
    /// The error budget left, in basis points of the budget: 10000 is
    /// untouched, 0 spent, below zero overspent. A safety goal has 10000
    /// until its first violation in the window, then 0.
    pub budget_remaining_bp: i64,
    /// Safety violations in the window (0 for other kinds).
    pub violations: u64,
    /// The burn rate over each of [`BURN_WINDOWS_S`]: 1.0 spends the budget
    /// exactly over the window; 14.4 spends 2 % of a 30-day budget an hour.
    pub burn_rates: Vec<BurnRate>,
    /// The budget left at the end of each day of the window, oldest first,
    /// counting only the requests inside the window as of that day's end.
    pub burn_down: Vec<BudgetPoint>,
    /// Where the burn-rate alerts lead.
    pub runbook: String,
}

/// The burn rate over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BurnRate {
    /// The window, in seconds.
    pub window_s: u32,
    /// Bad requests' share of the window over the share the target allows.
    pub rate: f64,
    /// Requests in the window.
    pub requests: u64,
}

/// The budget left at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetPoint {
    /// The moment, Unix milliseconds.
    pub at_ms: i64,
    /// The budget left then, in basis points of the budget.
    pub remaining_bp: i64,
}

/// How the running canary compares with the stable version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CanaryComparison {
    /// The canary's policy version.
    pub canary_version: u64,
    /// The version everyone else runs.
    pub stable_version: u64,
    /// When the canary started, Unix milliseconds.
    pub started_at_ms: i64,
    /// Requests the canary's instances served since.
    pub canary_requests: u64,
    /// Requests the stable instances served since.
    pub stable_requests: u64,
    /// Per objective: both burn rates since the canary started.
    pub objectives: Vec<CanaryObjective>,
    /// What the analysis makes of it.
    pub verdict: CanaryState,
    /// Why, in a sentence.
    pub reason: String,
}

/// One objective's burn on both sides of a canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CanaryObjective {
    /// The objective's id.
    pub id: String,
    /// The canary's burn rate (or, for a safety goal, its violations).
    pub canary_burn: f64,
    /// The stable version's.
    pub stable_burn: f64,
}

crate::wire_enum! {
    /// Where a canary stands with the analysis.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "snake_case")]
    pub enum CanaryState {
        /// Too few requests yet to judge.
        Gathering => ("gathering", "Gathering requests"),
        /// Burning no faster than allowed; baking.
        Holding => ("holding", "Holding"),
        /// Held for its bake time: may be promoted.
        Baked => ("baked", "Baked"),
        /// Burning too fast: aborted, or to abort.
        Failing => ("failing", "Failing"),
    }
}

/// What the analysis did with a canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CanaryVerdict {
    /// The canary's version.
    pub canary_version: u64,
    /// The stable version it was compared with.
    pub stable_version: u64,
    /// `aborted` or `promoted`.
    pub decision: String,
    /// Why, in a sentence that names the objective and both burn rates.
    pub reason: String,
    /// When, Unix milliseconds.
    pub decided_at_ms: i64,
}

/// `GET /api/v1/objectives`: every service's tightest budget, for the
/// overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetObjectives {
    /// When the figures were computed, Unix milliseconds.
    pub as_of_ms: i64,
    /// Services whose active policy has objectives.
    pub services: Vec<ServiceBudget>,
}

/// One service's standing, for its overview card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceBudget {
    /// The service.
    pub service: String,
    /// Its environment.
    pub environment: String,
    /// The objective with the least budget left.
    pub tightest: String,
    /// Its budget left, in basis points of the budget.
    pub budget_remaining_bp: i64,
    /// Safety violations in any safety goal's window.
    pub violations: u64,
    /// The latest automatic canary decision in the last day, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_canary_verdict: Option<CanaryVerdict>,
}
