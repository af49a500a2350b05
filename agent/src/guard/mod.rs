//! The guard: every pattern of the policy around one call, as a plain async
//! API ([`Guard::call`]), and as a tower layer ([`GuardLayer`]) for code
//! that is tower-shaped.
//!
//! A call goes through, in order: the deadline (an expired one fails fast),
//! the dependency's rate limit, the token and cost reservations, then per
//! attempt the breaker, the bulkheads and the call itself bounded by the
//! attempt's deadline. A failure is retried only if its class is retryable
//! under the policy, the operation is free of side effects or carries an
//! idempotency key, the retry budget allows it and the deadline leaves room
//! for the backoff. A failure that remains resolves through the invariants
//! and the fallback matrix ([`crate::fallback`]); the caller always gets the
//! resulting status and user message with the result.
//!
//! The guard only composes: each decision is its pattern's, in its folder
//! ([`crate::rate_limit`], [`crate::retry`], [`crate::breaker`],
//! [`crate::bulkhead`], [`crate::fallback`], [`crate::deadline`]), on the
//! shared [`Enforcement`] state, which the guard derefs to. So
//! [`crate::admission`]'s [`Enforcement::admit`], which requests entering
//! the service go through first, is `guard.admit(..)`, and a layer is made
//! with `RateLimitLayer::new(&guard)`.

mod cache;
mod call;
mod error;
mod future;
mod handles;
mod layer;
mod outcome;

pub use error::{GuardError, GuardFailure};
pub use future::ResponseFuture;
pub use layer::{GuardLayer, GuardService};
pub use outcome::{Attempt, Guarded};

use crate::clock::{CallClock, WallClock};
use crate::compiled::PolicyReceiver;
use crate::random::RandomSource;
use crate::state::{Enforcement, EnforcementBuilder};
use std::sync::Arc;

/// Enforces the policy in force; cheap to clone and share. It derefs to
/// its [`Enforcement`] state, shared with every layer made from it.
#[derive(Clone)]
pub struct Guard {
    state: Enforcement,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("policy_version", &self.policy().version())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Guard {
    type Target = Enforcement;

    fn deref(&self) -> &Enforcement {
        &self.state
    }
}

impl From<Enforcement> for Guard {
    /// A guard composing the patterns on `state`: it shares the state's
    /// breakers, limits and telemetry with every layer made from it.
    fn from(state: Enforcement) -> Guard {
        Guard { state }
    }
}

impl From<Guard> for Enforcement {
    /// The guard's state, for code that takes the state alone (the
    /// control-plane client, the layers).
    fn from(guard: Guard) -> Enforcement {
        guard.state
    }
}

/// Builds a [`Guard`]: the options of its [`Enforcement`] state.
pub struct GuardBuilder(EnforcementBuilder);

impl GuardBuilder {
    /// The source of jitter; seed one in tests for determinism.
    pub fn random(self, random: Arc<dyn RandomSource>) -> Self {
        GuardBuilder(self.0.random(random))
    }
    /// The instance id telemetry is reported under.
    pub fn instance_id(self, id: impl Into<String>) -> Self {
        GuardBuilder(self.0.instance_id(id))
    }
    /// The wall clock telemetry is stamped with.
    pub fn wall_clock(self, wall: WallClock) -> Self {
        GuardBuilder(self.0.wall_clock(wall))
    }
    /// The clock calls read at their start and end (see [`CallClock`]):
    /// by default the cycle counter, or tokio's clock when it is paused.
    pub fn clock(self, clock: CallClock) -> Self {
        GuardBuilder(self.0.clock(clock))
    }
    /// How many sealed telemetry batches are kept while the control plane
    /// is unreachable.
    pub fn telemetry_capacity(self, batches: usize) -> Self {
        GuardBuilder(self.0.telemetry_capacity(batches))
    }
    /// The guard.
    pub fn build(self) -> Guard {
        Guard {
            state: self.0.build(),
        }
    }
}

impl Guard {
    /// A builder for a guard enforcing the policy seen through `policy`.
    pub fn builder(policy: PolicyReceiver) -> GuardBuilder {
        GuardBuilder(Enforcement::builder(policy))
    }

    /// The state the guard decides on, shared with the layers made from it.
    pub fn state(&self) -> &Enforcement {
        &self.state
    }
}
