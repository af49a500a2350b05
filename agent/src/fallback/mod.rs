//! Choosing what a failed call turns into: a must-fail-closed stop, a
//! fallback from the policy's matrix, or a safe failure.
//!
//! The order is fixed. A must-fail-closed invariant on the component wins
//! over every fallback row, however permissive the rest of the policy
//! reads. Then the first row of the matrix that matches and is allowed is
//! taken. A row marked not allowed is never taken, and when no allowed row
//! remains the call fails safe (`refused`), never open.
//!
//! [`FallbackLayer`] gives a stack of tower layers the same labels
//! [`crate::Guard::call`] gives its callers: it sits outermost, and turns
//! every failure (an error, or a response its classifier calls a failure)
//! into a [`Degraded`] error that carries the status, the user message, the
//! fallback to take (never one the policy does not allow) and any
//! must-fail-closed invariant, resolved under the policy in force when the
//! call started. A success passes through unchanged: its status is normal.

mod error;
mod future;
mod layer;

pub use error::{Degraded, FailedResponse};
pub use future::ResponseFuture;
pub use layer::{FallbackLayer, FallbackService};

use crate::compiled::CompiledPolicy;
use crate::telemetry::DependencyStats;
use shared::policy::{DegradedStatus, ErrorClass, FailureType, FallbackAction, FallbackRule};

/// The fallback the caller is to take instead of the failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackDecision {
    /// What to do.
    pub action: FallbackAction,
    /// The matrix row, as `component/failure`, as telemetry counts it.
    pub row: String,
    /// How much the answer's confidence drops, in percentage points.
    pub confidence_penalty_percent: u32,
}

/// What a failure resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The status the caller's answer carries.
    pub status: DegradedStatus,
    /// What goes with it.
    pub degradation: Degradation,
}

/// What the policy says about an outcome that is not normal, besides its
/// status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Degradation {
    /// What the caller is to be told.
    pub user_message: Option<String>,
    /// The fallback to take instead, if the policy allows one.
    pub fallback: Option<FallbackDecision>,
    /// The id of the must-fail-closed invariant that stops the action, if
    /// any. When set, the action must not proceed in any form.
    pub fail_closed: Option<String>,
}

impl Degradation {
    /// Boxed, or `None` when it says nothing.
    pub(crate) fn boxed(self) -> Option<Box<Degradation>> {
        (self != Degradation::default()).then(|| Box::new(self))
    }
}

/// The failure type an error class counts as in the fallback matrix.
/// `None` for classes that only `any` rows cover.
pub fn failure_type_of(class: ErrorClass) -> Option<FailureType> {
    match class {
        ErrorClass::Timeout => Some(FailureType::Timeout),
        ErrorClass::Connection | ErrorClass::Unavailable | ErrorClass::Overloaded => {
            Some(FailureType::Unavailable)
        }
        ErrorClass::RateLimited => Some(FailureType::RateLimited),
        _ => None,
    }
}

fn matches(rule: &FallbackRule, failure: Option<FailureType>) -> bool {
    rule.failure == FailureType::Any || Some(rule.failure) == failure
}

fn row_name(rule: &FallbackRule) -> String {
    let failure = serde_json::to_value(rule.failure)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("{}/{}", rule.component, failure)
}

/// Resolves a failure of `dependency` through the fallback matrix, where a
/// breaker-open row is specific and, without one, the open breaker is an
/// unavailable dependency; counts the fallback taken and the degraded
/// answer.
pub(crate) fn resolve_counted(
    policy: &CompiledPolicy,
    dependency: &str,
    failure: Option<FailureType>,
    stats: &DependencyStats,
) -> Resolution {
    let mut r = resolve(policy, dependency, failure);
    if r.degradation.fallback.is_none()
        && r.degradation.fail_closed.is_none()
        && failure == Some(FailureType::BreakerOpen)
    {
        r = resolve(policy, dependency, Some(FailureType::Unavailable));
    }
    if let Some(f) = &r.degradation.fallback {
        stats.fallback(&f.row);
    }
    stats.degraded(r.status);
    r
}

/// Resolves a failure of `component` of type `failure` under `policy`.
pub fn resolve(
    policy: &CompiledPolicy,
    component: &str,
    failure: Option<FailureType>,
) -> Resolution {
    let rows = policy.fallbacks(component);
    let mut closed = policy.fail_closed(component, failure.unwrap_or(FailureType::Any));
    if let Some(invariant) = closed.next() {
        // Only a row that itself fails closed (pause, refuse, hand off…) may
        // shape the answer; it lends its status and message, nothing else.
        let row = rows
            .iter()
            .find(|r| r.allowed && r.fallback.fails_closed() && matches(r, failure));
        return Resolution {
            status: row.map_or(DegradedStatus::Paused, |r| r.degraded_status),
            degradation: Degradation {
                user_message: Some(
                    row.and_then(|r| r.user_message.clone())
                        .unwrap_or_else(|| invariant.description.clone()),
                ),
                fallback: None,
                fail_closed: Some(invariant.id.clone()),
            },
        };
    }
    let mut forbidden_message = None;
    for rule in rows.iter().filter(|r| matches(r, failure)) {
        if !rule.allowed {
            forbidden_message = forbidden_message.or(rule.user_message.clone());
            continue;
        }
        return Resolution {
            status: rule.degraded_status,
            degradation: Degradation {
                user_message: rule.user_message.clone(),
                fallback: Some(FallbackDecision {
                    action: rule.fallback.clone(),
                    row: row_name(rule),
                    confidence_penalty_percent: rule.confidence_penalty_percent,
                }),
                fail_closed: None,
            },
        };
    }
    Resolution {
        status: DegradedStatus::Refused,
        degradation: Degradation {
            user_message: Some(forbidden_message.unwrap_or_else(|| {
                format!("{component} is unavailable right now, so this cannot be completed.")
            })),
            fallback: None,
            fail_closed: None,
        },
    }
}
