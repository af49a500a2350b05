//! Classify: what a call's outcome tells the breaker. Only errors that
//! say the dependency is unwell count as failures; a validation error comes
//! from a healthy dependency.

use shared::policy::ErrorClass;
use std::time::Duration;

/// The classified outcome of a call.
#[derive(Debug, Clone, Copy)]
pub struct CallOutcome {
    /// Whether the dependency failed (an error that says it is unhealthy).
    pub failed: bool,
    /// How long the call took.
    pub latency: Duration,
}

impl CallOutcome {
    /// The outcome of a call that ended with `class` (`None` a success)
    /// after `latency`: failed when the class is one a retry could cure,
    /// the mark of a dependency in trouble.
    #[inline]
    pub fn of(class: Option<ErrorClass>, latency: Duration) -> CallOutcome {
        CallOutcome {
            failed: class.is_some_and(|c| c.is_retryable()),
            latency,
        }
    }
}
