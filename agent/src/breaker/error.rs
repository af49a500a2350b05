use crate::call::Classify;
use shared::policy::ErrorClass;
use std::fmt;

/// The dependency's breaker is open (or forced open, or its half-open
/// probes are all taken); the call was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BreakerOpen(());

impl BreakerOpen {
    /// The error.
    pub fn new() -> BreakerOpen {
        BreakerOpen(())
    }
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the circuit breaker is open; not called")
    }
}

impl std::error::Error for BreakerOpen {}

impl Classify for BreakerOpen {
    /// An open breaker stands for an unavailable dependency, as in the guard.
    fn class(&self) -> ErrorClass {
        ErrorClass::Unavailable
    }
}
