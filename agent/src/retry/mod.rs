//! The retry layer: the guard's retries, within the service-wide retry
//! budget, for a tower service.
//!
//! Whether a failure is retried, and after how long, is decided by the same
//! code as in [`crate::Guard::call`] (the retryable classes of the
//! dependency's retry policy, the operation's effect and idempotency key,
//! the budget, the backoff of [`crate::backoff`] and the deadline), on the
//! guard's own retry budget, so retries made through either API draw on
//! one budget.
//!
//! The layer adds no error of its own: a call that is not retried (or runs
//! out of attempts, budget or time) fails with the inner service's last
//! error, unchanged, so that the layers above can still classify it.

mod future;
mod layer;

pub use future::ResponseFuture;
pub use layer::{RetryLayer, RetryService};
