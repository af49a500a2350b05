//! Retries: the whole story in one folder. The service-wide retry
//! [`budget`], the [`backoff`] between attempts, the plan that decides
//! whether a failure is retried, and the [`RetryLayer`] for a tower
//! service.
//!
//! Whether a failure is retried, and after how long, is decided by the same
//! plan in [`crate::Guard::call`] and in the layer (the retryable classes
//! of the dependency's retry policy, the operation's effect and idempotency
//! key, the budget, the backoff and the deadline), on the retry budget of
//! the shared [`crate::state::Enforcement`], so retries made through either
//! API draw on one budget.
//!
//! The layer adds no error of its own: a call that is not retried (or runs
//! out of attempts, budget or time) fails with the inner service's last
//! error, unchanged, so that the layers above can still classify it.

pub mod backoff;
pub mod budget;
mod future;
mod layer;
mod plan;

pub use backoff::Backoff;
pub use budget::RetryBudget;
pub use future::ResponseFuture;
pub use layer::{RetryLayer, RetryService};
pub(crate) use plan::RetryPlan;
