use super::BudgetRefusal;
use crate::call::Classify;
use shared::policy::ErrorClass;
use std::fmt;

/// The dependency's request rate was exceeded; the call was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimited(());

impl RateLimited {
    /// The error.
    pub fn new() -> RateLimited {
        RateLimited(())
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rate limited; not called")
    }
}

impl std::error::Error for RateLimited {}

impl Classify for RateLimited {
    fn class(&self) -> ErrorClass {
        ErrorClass::RateLimited
    }
}

/// The call's token or cost estimate could not be reserved; the call was
/// not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetExhausted(pub(crate) BudgetRefusal);

impl BudgetExhausted {
    /// Which budget refused.
    pub fn refusal(&self) -> BudgetRefusal {
        self.0
    }
}

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            BudgetRefusal::Tokens => f.write_str("the token budget is exhausted; not called"),
            BudgetRefusal::Cost => f.write_str("the cost budget is exhausted; not called"),
        }
    }
}

impl std::error::Error for BudgetExhausted {}

impl Classify for BudgetExhausted {
    fn class(&self) -> ErrorClass {
        ErrorClass::BudgetExceeded
    }
}
