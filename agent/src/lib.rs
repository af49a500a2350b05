//! Ballast's enforcement agent. It is embedded in every service, receives the
//! policy that the control plane publishes, and enforces it in-process.
//!
//! The centre is the [`Guard`]: give it a dependency, an operation and the
//! request's deadline, and it runs the call under the policy in force
//! (deadline, rate limits and reserved budgets, breaker, bulkheads,
//! retries within the retry budget) and returns the result together with
//! the status the answer must carry and the fallback, if any, the policy
//! allows. [`GuardLayer`] does the same for tower services; the
//! [`deadline`] layers carry the `ballast-deadline` header in and out.
//!
//! The policy arrives through a `tokio::sync::watch` channel of
//! [`CompiledPolicy`] values. Each call takes the version in force when it
//! starts and keeps it, so a swap never disturbs calls in flight. All time
//! goes through `tokio::time`, and jitter through an injectable
//! [`RandomSource`], so behaviour is deterministic on a paused clock.
//!
//! ```
//! use agent::{Call, CompiledPolicy, DependencyError, Guard, policy_channel};
//! use shared::policy::{DegradedStatus, ErrorClass, Policy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let policy = Policy::from_yaml(r#"
//! service: { name: rag, environment: prod, owner: me, risk_tier: medium,
//!            dependencies: { reranker: { kind: reranker, required: false } } }
//! fallbacks:
//!   - component: reranker
//!     failure: any
//!     fallback: { kind: skip_step }
//!     degraded_status: degraded
//!     user_message: Results are ranked more coarsely than usual.
//!     allowed: true
//! "#).unwrap();
//! let (_publish, policy) = policy_channel(CompiledPolicy::compile(
//!     policy, Some(1), shared::protocol::PolicySource::Server));
//! let guard = Guard::builder(policy).build();
//!
//! let out = guard
//!     .call(Call::new("reranker", "rerank"), |_attempt| async {
//!         Err::<Vec<u32>, _>(DependencyError::new(ErrorClass::Unavailable, "503"))
//!     })
//!     .await;
//! assert!(out.result.is_err());
//! assert_eq!(out.status, DegradedStatus::Degraded);
//! assert_eq!(out.fallback.unwrap().action.name(), "skip_step");
//! assert_eq!(out.user_message.as_deref(), Some("Results are ranked more coarsely than usual."));
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod backoff;
pub mod breaker;
pub mod bulkhead;
pub mod cache_key;
pub mod client;
pub mod clock;
pub mod compiled;
pub mod deadline;
pub mod dlq;
pub mod fallback;
pub mod guard;
pub mod idempotency;
pub mod limits;
pub mod random;
pub mod repair;
pub mod retry_budget;
pub mod telemetry;

pub use cache_key::{CacheKey, CacheKeyBuilder};
pub use compiled::{CompiledPolicy, PolicyReceiver, policy_channel};
pub use deadline::Deadline;
pub use guard::{
    Admitted, Attempt, Call, Classify, DependencyError, Guard, GuardError, GuardLayer, Guarded,
    Refusal, Request, Usage,
};
pub use random::{RandomSource, SplitMix64};
