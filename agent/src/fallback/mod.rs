//! Choosing what a failed call turns into: a must-fail-closed stop, a
//! fallback from the policy's matrix, or a safe failure.
//!
//! The order is fixed. A must-fail-closed invariant on the component wins
//! over every fallback row, however permissive the rest of the policy
//! reads. Then the first row of the matrix that matches, is allowed and is
//! safe is taken. A row marked not allowed is never taken, and when no
//! allowed row remains the call fails safe (`refused`), never open.
//!
//! "Safe" is checked here again, at resolve time, although the agent
//! refuses a policy that fails validation when it arrives: a policy built
//! in code, or one from an older server with weaker rules, must not make
//! the agent do what validation forbids (defence in depth). So a row is
//! passed over when it answers from the model's memory, skips
//! authorisation or acts without approval; skips a step that serves a
//! required retrieval source; carries on past an identity or approval
//! service; stands a dependency in for itself or for an undeclared one;
//! routes to a model that [`crate::routing::admit`] does not admit for the
//! request; serves a cached (possibly stale) answer to a high-risk
//! request. The invariants relabel what would otherwise pass silently: a
//! failure a `may_degrade` invariant covers is answered labelled, never
//! `normal` and never without a message (the invariant's words when the
//! row has none); with `unlabeled_stale_data` forbidden a cached answer
//! is never labelled normal nor left without a caveat; and with
//! `hide_missing_evidence` forbidden a skipped step is never labelled
//! normal.
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

use crate::cache::DEFAULT_STALE_CAVEAT;
use crate::compiled::CompiledPolicy;
use crate::routing::{ModelGrant, ModelRequest, admit};
use crate::telemetry::DependencyStats;
use shared::policy::{
    DegradedStatus, DependencyKind, ErrorClass, FailureType, FallbackAction, FallbackRule,
    Prohibition, RiskTier,
};

/// The fallback the caller is to take instead of the failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackDecision {
    /// What to do.
    pub action: FallbackAction,
    /// The matrix row, as `component/failure`, as telemetry counts it.
    pub row: String,
    /// How much the answer's confidence drops, in percentage points.
    pub confidence_penalty_percent: u32,
    /// For an `alternate_model` fallback, the grant under which the model
    /// may serve the request: release its answer through
    /// [`ModelGrant::accept`], which runs the extra validation the model's
    /// row asks for.
    pub model: Option<ModelGrant>,
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
    request: &ModelRequest<'_>,
    stats: &DependencyStats,
) -> Resolution {
    let mut r = resolve_for(policy, dependency, failure, request);
    if r.degradation.fallback.is_none()
        && r.degradation.fail_closed.is_none()
        && failure == Some(FailureType::BreakerOpen)
    {
        r = resolve_for(policy, dependency, Some(FailureType::Unavailable), request);
    }
    if let Some(f) = &r.degradation.fallback {
        stats.fallback(&f.row);
    }
    stats.degraded(r.status);
    r
}

/// Resolves a failure of `component` of type `failure` under `policy`, for
/// a request that says nothing about its risk or feature (so it is judged
/// at the service's risk tier; see [`ModelRequest`]).
pub fn resolve(
    policy: &CompiledPolicy,
    component: &str,
    failure: Option<FailureType>,
) -> Resolution {
    resolve_for(policy, component, failure, &ModelRequest::new())
}

/// Why the agent passes over an allowed row, or `None` when it may be
/// taken for `request`.
fn unsafe_row(
    policy: &CompiledPolicy,
    rule: &FallbackRule,
    request: &ModelRequest<'_>,
) -> Option<String> {
    let doc = policy.policy();
    let kind = doc
        .service
        .dependencies
        .get(&rule.component)
        .map(|d| d.kind);
    let reason = match &rule.fallback {
        FallbackAction::ModelMemory {} => Some("answering from memory drops grounding".into()),
        FallbackAction::SkipAuthorization {} => Some("it skips authorisation".into()),
        FallbackAction::ProceedWithoutApproval {} => Some("it acts without approval".into()),
        FallbackAction::SkipStep {} if serves_required_source(policy, &rule.component) => {
            Some("it skips a required retrieval source".into())
        }
        FallbackAction::AlternateDependency { dependency }
            if *dependency == rule.component
                || !doc.service.dependencies.contains_key(dependency) =>
        {
            Some(format!(
                "`{dependency}` cannot stand in for `{}`",
                rule.component
            ))
        }
        FallbackAction::AlternateModel { model } => admit(policy, model, request)
            .err()
            .map(|e| format!("model `{model}`: {e}")),
        FallbackAction::Cached { .. } if request.risk_under(policy) >= RiskTier::High => {
            Some("a possibly stale answer never feeds a high-risk decision".into())
        }
        _ => None,
    };
    if reason.is_some() {
        return reason;
    }
    if !rule.fallback.fails_closed()
        && matches!(
            kind,
            Some(DependencyKind::Identity | DependencyKind::ApprovalService)
        )
    {
        return Some("without identity or approval the work must stop, not carry on".into());
    }
    None
}

/// Whether `component` is a required retrieval source, or the dependency
/// that serves one.
fn serves_required_source(policy: &CompiledPolicy, component: &str) -> bool {
    policy.policy().retrieval.as_ref().is_some_and(|r| {
        r.sources.iter().any(|(name, s)| {
            s.required && (name == component || s.dependency.as_deref() == Some(component))
        })
    })
}

/// The status and message a taken row gives the answer, relabelled where
/// an invariant forbids what the row would let pass silently.
fn labels(
    policy: &CompiledPolicy,
    rule: &FallbackRule,
    failure: Option<FailureType>,
) -> (DegradedStatus, Option<String>) {
    let mut status = rule.degraded_status;
    let mut message = rule.user_message.clone();
    if !rule.fallback.fails_closed()
        && let Some(invariant) = policy.may_degrade(&rule.component, failure)
    {
        status = status.max(DegradedStatus::Degraded);
        message = message.or_else(|| Some(invariant.to_owned()));
    }
    match rule.fallback {
        FallbackAction::Cached { .. } if policy.forbids(Prohibition::UnlabeledStaleData) => {
            status = status.max(DegradedStatus::Degraded);
            if message.is_none() {
                let caveat = policy
                    .policy()
                    .cache
                    .as_ref()
                    .and_then(|c| c.stale_caveat.clone());
                message = Some(caveat.unwrap_or_else(|| DEFAULT_STALE_CAVEAT.to_owned()));
            }
        }
        FallbackAction::SkipStep {} if policy.forbids(Prohibition::HideMissingEvidence) => {
            status = status.max(DegradedStatus::Degraded);
            if message.is_none() {
                message = Some(format!(
                    "Part of the evidence is missing: {} is unavailable.",
                    rule.component
                ));
            }
        }
        _ => {}
    }
    (status, message)
}

/// Resolves a failure of `component` of type `failure` under `policy`, for
/// `request`: its risk and feature decide which model rows and cached rows
/// may serve it.
pub fn resolve_for(
    policy: &CompiledPolicy,
    component: &str,
    failure: Option<FailureType>,
    request: &ModelRequest<'_>,
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
        if let Some(reason) = unsafe_row(policy, rule, request) {
            // Its message describes an answer that is not given: not
            // shown.
            tracing::debug!(row = %row_name(rule), %reason, "fallback row passed over");
            continue;
        }
        let model = match &rule.fallback {
            FallbackAction::AlternateModel { model } => admit(policy, model, request).ok(),
            _ => None,
        };
        let (status, user_message) = labels(policy, rule, failure);
        return Resolution {
            status,
            degradation: Degradation {
                user_message,
                fallback: Some(FallbackDecision {
                    action: rule.fallback.clone(),
                    row: row_name(rule),
                    confidence_penalty_percent: rule.confidence_penalty_percent,
                    model,
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
