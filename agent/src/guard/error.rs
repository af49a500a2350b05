use crate::bulkhead::BulkheadRejection;
use crate::call::Classify;
use crate::rate_limit::BudgetRefusal;
use shared::policy::ErrorClass;
use std::fmt;

/// Why a guarded call did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError<E> {
    /// The dependency answered with an error (after any retries).
    Dependency(E),
    /// The request's deadline had passed before the call; it was not made.
    DeadlineExpired,
    /// The call did not answer within its deadline or timeout.
    Timeout,
    /// The breaker is open; the call was not made.
    BreakerOpen,
    /// A bulkhead had no room; the call was not made.
    Bulkhead(BulkheadRejection),
    /// A rate limit refused the call; it was not made.
    RateLimited,
    /// A token or cost budget could not be reserved; the call was not made.
    BudgetExhausted(BudgetRefusal),
}

impl<E: Classify> GuardError<E> {
    /// The error class, as the fallback matrix and telemetry see it.
    pub fn class(&self) -> ErrorClass {
        match self {
            GuardError::Dependency(e) => e.class(),
            GuardError::DeadlineExpired | GuardError::Timeout => ErrorClass::Timeout,
            GuardError::BreakerOpen => ErrorClass::Unavailable,
            GuardError::Bulkhead(_) => ErrorClass::Overloaded,
            GuardError::RateLimited => ErrorClass::RateLimited,
            GuardError::BudgetExhausted(_) => ErrorClass::BudgetExceeded,
        }
    }
}

impl<E: fmt::Display> fmt::Display for GuardError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::Dependency(e) => write!(f, "dependency error: {e}"),
            GuardError::DeadlineExpired => f.write_str("the deadline had passed; not called"),
            GuardError::Timeout => f.write_str("the call timed out"),
            GuardError::BreakerOpen => f.write_str("the circuit breaker is open; not called"),
            GuardError::Bulkhead(BulkheadRejection::Full) => {
                f.write_str("the bulkhead is full; not called")
            }
            GuardError::Bulkhead(BulkheadRejection::QueueTimeout) => {
                f.write_str("timed out waiting in the bulkhead queue; not called")
            }
            GuardError::RateLimited => f.write_str("rate limited; not called"),
            GuardError::BudgetExhausted(BudgetRefusal::Tokens) => {
                f.write_str("the token budget is exhausted; not called")
            }
            GuardError::BudgetExhausted(BudgetRefusal::Cost) => {
                f.write_str("the cost budget is exhausted; not called")
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for GuardError<E> {}

/// The error of [`GuardService`](super::GuardService): why the call failed,
/// and the status and fallback the answer must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardFailure<E> {
    /// Why.
    pub error: GuardError<E>,
    /// The status the answer carries.
    pub status: shared::policy::DegradedStatus,
    /// What the caller is to be told.
    pub user_message: Option<String>,
    /// The fallback to take instead, if the policy allows one.
    pub fallback: Option<crate::fallback::FallbackDecision>,
    /// The must-fail-closed invariant that stops the action, if any.
    pub fail_closed: Option<String>,
}

impl<E: fmt::Display> fmt::Display for GuardFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.error, self.status)
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for GuardFailure<E> {}
