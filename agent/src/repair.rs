//! Structured-output repair, bounded: validate, repair at most the policy's
//! number of times, then fail safe or fall back. Each repair attempt is
//! counted, because a rising repair rate is how model drift shows first.

use crate::telemetry::DependencyStats;
use shared::policy::{DegradedStatus, OutputRepair, RepairFailure};
use std::future::Future;

/// How a repair loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repaired<T> {
    /// The output validates (after `repairs` repairs).
    Valid {
        /// The valid output.
        value: T,
        /// Repairs it took.
        repairs: u32,
    },
    /// The repairs are used up and the policy says fail safe: the invalid
    /// output must not be passed on.
    FailSafe {
        /// Repairs tried.
        repairs: u32,
        /// The last validation error.
        reason: String,
    },
    /// The repairs are used up and the policy names a fallback model to ask
    /// once instead.
    Fallback {
        /// The model.
        model: String,
        /// Repairs tried.
        repairs: u32,
        /// The last validation error.
        reason: String,
    },
}

/// Validates `output`, asking `repair` (with the invalid output and the
/// validation error) for a new one at most `policy.max_attempts` times.
/// `repair` answers `None` when the repair call itself failed, which ends
/// the loop like a last invalid output.
pub async fn repair_output<T, V, R, Fut>(
    policy: &OutputRepair,
    stats: Option<&DependencyStats>,
    output: T,
    mut validate: V,
    mut repair: R,
) -> Repaired<T>
where
    V: FnMut(&T) -> Result<(), String>,
    R: FnMut(T, String) -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let mut current = output;
    let mut repairs = 0;
    let reason = loop {
        let reason = match validate(&current) {
            Ok(()) => {
                return Repaired::Valid {
                    value: current,
                    repairs,
                };
            }
            Err(reason) => reason,
        };
        if repairs >= policy.max_attempts {
            break reason;
        }
        repairs += 1;
        if let Some(s) = stats {
            s.repair();
        }
        match repair(current, reason.clone()).await {
            Some(next) => current = next,
            None => break reason,
        }
    };
    match (policy.on_failure, &policy.fallback_model) {
        (RepairFailure::Fallback, Some(model)) => Repaired::Fallback {
            model: model.clone(),
            repairs,
            reason,
        },
        // A fallback without a model to fall back to can only fail safe.
        _ => Repaired::FailSafe { repairs, reason },
    }
}

impl crate::state::Enforcement {
    /// Validates a model's structured output and repairs it within the
    /// policy's bound (see [`crate::repair`]), counting each repair against
    /// `dependency` and labelling the outcome.
    pub async fn repair<T, V, R, Fut>(
        &self,
        dependency: &str,
        output: T,
        validate: V,
        repair: R,
    ) -> Repaired<T>
    where
        V: FnMut(&T) -> Result<(), String>,
        R: FnMut(T, String) -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let policy = self.policy();
        let stats = self.inner.recorder.dependency(dependency);
        let out = repair_output(
            &policy.output_repair(),
            Some(&stats),
            output,
            validate,
            repair,
        )
        .await;
        // The repair model is routed like any fallback model: one the
        // `models` section does not admit for the service's own risk
        // (unlisted, unvalidated in a high-risk service, disallowed at its
        // tier) is never asked, and the loop fails safe instead.
        let out = match out {
            Repaired::Fallback {
                model,
                repairs,
                reason,
            } => match crate::routing::admit(&policy, &model, &crate::routing::ModelRequest::new())
            {
                Ok(_) => Repaired::Fallback {
                    model,
                    repairs,
                    reason,
                },
                Err(refusal) => Repaired::FailSafe {
                    repairs,
                    reason: format!("{reason}; fallback model `{model}` refused: {refusal}"),
                },
            },
            other => other,
        };
        match &out {
            Repaired::Valid { .. } => {}
            Repaired::FailSafe { .. } => {
                stats.failure(shared::policy::ErrorClass::Validation);
                stats.degraded(DegradedStatus::Refused);
            }
            Repaired::Fallback { .. } => {
                stats.fallback(&format!("{dependency}/invalid_output"));
                stats.degraded(DegradedStatus::Degraded);
            }
        }
        out
    }
}
