//! Rate limits and usage budgets: the buckets and spend windows
//! ([`limits`]), the decisions taken on them for a call (its request taken
//! from the dependency's rate, its usage estimate reserved and settled),
//! and the [`RateLimitLayer`] that enforces them on a tower service exactly
//! as [`crate::Guard::call`] does, on the same buckets of the shared
//! [`crate::state::Enforcement`].
//!
//! The rate is checked and the estimate reserved when the call is made, not
//! in `poll_ready`: both depend on the request (its dependency, tenant and
//! estimate), and a refusal must never be paid for with a call.

mod error;
mod future;
mod layer;
pub mod limits;
mod reserve;

pub use error::{BudgetExhausted, RateLimited};
pub use future::ResponseFuture;
pub use layer::{RateLimitLayer, RateLimitService};
pub use limits::{BudgetRefusal, Limiters, Reservation};
pub(crate) use reserve::{BudgetHandles, HeldUsage, TenantHandles};
