//! The rate limit layer: a dependency's request rate and the usage budgets
//! of [`crate::limits`], enforced on a tower service exactly as
//! [`crate::Guard::call`] enforces them, on the same buckets.
//!
//! The rate is checked and the estimate reserved when the call is made, not
//! in `poll_ready`: both depend on the request (its dependency, tenant and
//! estimate), and a refusal must never be paid for with a call.

mod error;
mod future;
mod layer;

pub use error::{BudgetExhausted, RateLimited};
pub use future::ResponseFuture;
pub use layer::{RateLimitLayer, RateLimitService};
