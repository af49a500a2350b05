use super::BulkheadRejection;
use crate::call::Classify;
use shared::policy::ErrorClass;
use std::fmt;

/// A bulkhead of the dependency had no room for the call, or the call
/// waited in its queue for the whole queue timeout; it was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadRejected(pub(crate) BulkheadRejection);

impl BulkheadRejected {
    /// Whether the queue was full or the wait timed out.
    pub fn rejection(&self) -> BulkheadRejection {
        self.0
    }
}

impl fmt::Display for BulkheadRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            BulkheadRejection::Full => f.write_str("the bulkhead is full; not called"),
            BulkheadRejection::QueueTimeout => {
                f.write_str("timed out waiting in the bulkhead queue; not called")
            }
        }
    }
}

impl std::error::Error for BulkheadRejected {}

impl Classify for BulkheadRejected {
    /// A full bulkhead is local overload, as in the guard.
    fn class(&self) -> ErrorClass {
        ErrorClass::Overloaded
    }
}
