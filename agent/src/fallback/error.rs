use super::FallbackDecision;
use crate::call::Classify;
use shared::policy::{DegradedStatus, ErrorClass};
use std::fmt;

/// A boxed error, as tower's own middleware return.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error of [`FallbackService`](super::FallbackService): why the call
/// failed, and how the answer built without it must be labelled, per the
/// policy's fallback matrix and invariants.
#[derive(Debug)]
pub struct Degraded {
    /// Why: the inner stack's error, or a [`FailedResponse`].
    pub error: BoxError,
    /// The class the failure was counted under.
    pub class: ErrorClass,
    /// The status the answer carries.
    pub status: DegradedStatus,
    /// What the caller is to be told.
    pub user_message: Option<String>,
    /// The fallback to take instead, if the policy allows one.
    pub fallback: Option<FallbackDecision>,
    /// The must-fail-closed invariant that stops the action, if any. When
    /// set, the action must not proceed in any form.
    pub fail_closed: Option<String>,
}

impl fmt::Display for Degraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.error, self.status)
    }
}

impl std::error::Error for Degraded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

impl Classify for Degraded {
    fn class(&self) -> ErrorClass {
        self.class
    }
}

/// The inner service answered, but its classifier calls the answer a
/// failure (an HTTP 503, say). The response is not passed on: what the
/// caller does next is the fallback's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedResponse {
    /// The class the classifier gave it.
    pub class: ErrorClass,
}

impl fmt::Display for FailedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the dependency answered with a {:?} failure", self.class)
    }
}

impl std::error::Error for FailedResponse {}

impl Classify for FailedResponse {
    fn class(&self) -> ErrorClass {
        self.class
    }
}
