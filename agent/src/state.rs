//! The enforcement state: everything the patterns keep between calls, in
//! one place. One breaker per dependency, the bulkhead partitions, the
//! rate and usage buckets, the retry budget, the reported queue depths and
//! the telemetry recorder, with the receiver of the compiled policy they
//! enforce.
//!
//! Each pattern folder decides on this state and nothing else: the layers
//! ([`crate::rate_limit::RateLimitLayer`], [`crate::retry::RetryLayer`],
//! [`crate::breaker::BreakerLayer`], [`crate::bulkhead::BulkheadLayer`],
//! [`crate::fallback::FallbackLayer`]) are made from an [`Enforcement`],
//! and so is [`crate::Guard`], which composes them around one call. A call
//! made through the layers and one made through the guard meet the same
//! limits and are counted alike, because they share this state.
//!
//! ```
//! use agent::breaker::BreakerLayer;
//! use agent::state::Enforcement;
//! use agent::{CallSpec, CompiledPolicy, DependencyError, policy_channel};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let (_publish, policy) = policy_channel(CompiledPolicy::conservative_default("rag", "prod"));
//! let state = Enforcement::builder(policy).build();
//! let search = ServiceBuilder::new()
//!     .layer(BreakerLayer::new(&state))
//!     .service(service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, DependencyError>("hits")
//!     }));
//! let mut req = http::Request::new(());
//! req.extensions_mut().insert(CallSpec::new("search", "query"));
//! assert_eq!(search.oneshot(req).await.unwrap(), "hits");
//! # }
//! ```

use crate::breaker::Breaker;
use crate::bulkhead::Bulkheads;
use crate::clock::{CallClock, CallReader, WallClock};
use crate::compiled::{CompiledPolicy, PolicyReceiver};
use crate::random::{RandomSource, SplitMix64};
use crate::rate_limit::limits::{Bucket, Limiters};
use crate::retry::budget::RetryBudget;
use crate::telemetry::{DEFAULT_RING_CAPACITY, DependencyStats, Recorder};
use rustc_hash::FxHashMap;
use shared::protocol::BreakerState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// The pseudo-dependency under which service-level events (admission,
/// the request rate, the service's bulkheads) are counted.
pub const SERVICE_COMPONENT: &str = "_service";

/// Numbers states, so that per-thread handles are never taken for
/// another state's (an address could be reused, a number is not).
static NEXT_STATE: AtomicU64 = AtomicU64::new(1);

/// One dependency's share of the state (its counters, request rate and
/// token buckets, breaker), found by its name once per call rather than
/// once per pattern. The buckets and the breaker are the same ones the
/// layers find by key, made on first use.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) name: Box<str>,
    pub(crate) stats: Arc<DependencyStats>,
    pub(crate) requests: OnceLock<Arc<Bucket>>,
    pub(crate) tokens: OnceLock<Arc<Bucket>>,
    pub(crate) breaker: OnceLock<Arc<Breaker>>,
}

/// The state behind an [`Enforcement`] handle.
pub(crate) struct Inner {
    pub(crate) policy: PolicyReceiver,
    pub(crate) random: Arc<dyn RandomSource>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) breakers: RwLock<HashMap<String, Arc<Breaker>>>,
    pub(crate) lanes: RwLock<FxHashMap<Box<str>, Arc<Lane>>>,
    /// Tells this state's per-thread handles from another's.
    pub(crate) id: u64,
    /// The service-wide tokens-per-minute bucket, once made.
    pub(crate) service_tokens: OnceLock<Arc<Bucket>>,
    pub(crate) bulkheads: Bulkheads,
    pub(crate) limiters: Arc<Limiters>,
    pub(crate) retry_budget: RetryBudget,
    pub(crate) queue_depths: RwLock<HashMap<String, u64>>,
    pub(crate) clock: CallClock,
    /// `clock` resolved: at the build when built inside a runtime, else
    /// at the first call.
    pub(crate) reader: OnceLock<CallReader>,
}

/// The enforcement state of one service: the breakers, bulkheads,
/// limiters, retry budget and recorder every pattern decides on, and the
/// policy they enforce. Cheap to clone and share; clones share the state.
#[derive(Clone)]
pub struct Enforcement {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Enforcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcement")
            .field("policy_version", &self.policy().version())
            .finish_non_exhaustive()
    }
}

/// Builds an [`Enforcement`] (and, through [`crate::GuardBuilder`], a
/// [`crate::Guard`]).
pub struct EnforcementBuilder {
    policy: PolicyReceiver,
    random: Option<Arc<dyn RandomSource>>,
    instance_id: String,
    wall: Option<WallClock>,
    ring_capacity: usize,
    clock: CallClock,
}

impl EnforcementBuilder {
    /// The source of jitter; seed one in tests for determinism.
    pub fn random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = Some(random);
        self
    }
    /// The instance id telemetry is reported under.
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = id.into();
        self
    }
    /// The wall clock telemetry is stamped with.
    pub fn wall_clock(mut self, wall: WallClock) -> Self {
        self.wall = Some(wall);
        self
    }
    /// The clock calls read at their start and end (see [`CallClock`]):
    /// by default the cycle counter, or tokio's clock when it is paused.
    pub fn clock(mut self, clock: CallClock) -> Self {
        self.clock = clock;
        self
    }
    /// How many sealed telemetry batches are kept while the control plane
    /// is unreachable.
    pub fn telemetry_capacity(mut self, batches: usize) -> Self {
        self.ring_capacity = batches;
        self
    }
    /// The state.
    pub fn build(self) -> Enforcement {
        let wall = self.wall.unwrap_or_else(WallClock::system);
        // One epoch for the limiters, the breakers and the retry budget, so
        // that a call converts each clock reading into ticks once.
        let limiters = Arc::new(Limiters::new());
        let epoch = limiters.epoch();
        // Resolved now when built inside the runtime that will run the
        // calls, so that the counter's calibration (about a millisecond)
        // is start-up's cost, not the first call's.
        let reader = OnceLock::new();
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = reader.set(CallReader::resolve(self.clock));
        }
        Enforcement {
            inner: Arc::new(Inner {
                policy: self.policy,
                random: self
                    .random
                    .unwrap_or_else(|| Arc::new(SplitMix64::from_entropy())),
                recorder: Arc::new(Recorder::new(self.instance_id, wall, self.ring_capacity)),
                breakers: RwLock::default(),
                lanes: RwLock::default(),
                id: NEXT_STATE.fetch_add(1, Ordering::Relaxed),
                service_tokens: OnceLock::new(),
                bulkheads: Bulkheads::new(),
                limiters,
                retry_budget: RetryBudget::with_epoch(epoch),
                queue_depths: RwLock::default(),
                clock: self.clock,
                reader,
            }),
        }
    }
}

impl Enforcement {
    /// A builder for the state enforcing the policy seen through `policy`.
    pub fn builder(policy: PolicyReceiver) -> EnforcementBuilder {
        EnforcementBuilder {
            policy,
            random: None,
            instance_id: String::from("local"),
            wall: None,
            ring_capacity: DEFAULT_RING_CAPACITY,
            clock: CallClock::default(),
        }
    }

    /// The policy in force now. A call takes this once, at its start.
    pub fn policy(&self) -> Arc<CompiledPolicy> {
        self.inner.policy.borrow().clone()
    }

    /// A receiver of the policy this state enforces, for the layers that
    /// read it themselves (such as [`crate::deadline::DeadlineLayer`]).
    pub fn policy_receiver(&self) -> PolicyReceiver {
        self.inner.policy.clone()
    }

    /// The clock calls read, once resolved (at the build inside a
    /// runtime, else at the first call): [`CallClock::CycleCounter`] or
    /// [`CallClock::Runtime`].
    pub fn call_clock(&self) -> Option<CallClock> {
        self.inner.reader.get().map(|r| {
            if r.uses_cycles() {
                CallClock::CycleCounter
            } else {
                CallClock::Runtime
            }
        })
    }

    /// The telemetry recorder.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.inner.recorder
    }

    /// Seals the current telemetry window into a batch; returns its
    /// sequence number.
    pub fn seal_telemetry(&self) -> u64 {
        let version = self.policy().version();
        self.inner
            .recorder
            .seal(version, &|dep| self.breaker_state(dep))
    }

    /// The state of a dependency's breaker, if it has one yet.
    pub fn breaker_state(&self, dependency: &str) -> Option<BreakerState> {
        self.inner
            .breakers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(dependency)
            .map(|b| b.state())
    }

    /// Reports a queue's depth for the queue-depth admission signal; `None`
    /// is the service's own work queue.
    pub fn set_queue_depth(&self, queue: Option<&str>, depth: u64) {
        self.inner
            .queue_depths
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(queue.unwrap_or("").to_owned(), depth);
    }

    /// The breaker of `dependency`, shared by the guard and
    /// [`crate::breaker::BreakerLayer`].
    pub(crate) fn breaker(&self, dependency: &str) -> Arc<Breaker> {
        if let Some(b) = self
            .inner
            .breakers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(dependency)
        {
            return b.clone();
        }
        self.inner
            .breakers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(dependency.to_owned())
            .or_insert_with(|| Breaker::with_epoch(self.inner.limiters.epoch()))
            .clone()
    }

    /// The lane of `dependency`, made on first use.
    pub(crate) fn lane(&self, dependency: &str) -> Arc<Lane> {
        if let Some(l) = self
            .inner
            .lanes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(dependency)
        {
            return l.clone();
        }
        let stats = self.inner.recorder.dependency(dependency);
        self.inner
            .lanes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(Box::from(dependency))
            .or_insert_with(|| {
                Arc::new(Lane {
                    name: Box::from(dependency),
                    stats,
                    requests: OnceLock::new(),
                    tokens: OnceLock::new(),
                    breaker: OnceLock::new(),
                })
            })
            .clone()
    }

    /// The breaker of a lane's dependency.
    pub(crate) fn lane_breaker<'l>(&self, lane: &'l Lane) -> &'l Arc<Breaker> {
        lane.breaker.get_or_init(|| self.breaker(&lane.name))
    }

    /// The request-rate bucket of a lane's dependency.
    pub(crate) fn request_bucket<'l>(&self, lane: &'l Lane) -> &'l Arc<Bucket> {
        lane.requests.get_or_init(|| {
            let key = format!("dependency/{}", lane.name);
            self.inner.limiters.bucket(&key)
        })
    }

    /// The token-budget bucket of a lane's dependency.
    pub(crate) fn token_bucket<'l>(&self, lane: &'l Lane) -> &'l Arc<Bucket> {
        lane.tokens.get_or_init(|| {
            let key = format!("tokens/{}", lane.name);
            self.inner.limiters.bucket(&key)
        })
    }

    /// The service-wide token-budget bucket.
    pub(crate) fn service_token_bucket(&self) -> &Arc<Bucket> {
        self.inner
            .service_tokens
            .get_or_init(|| self.inner.limiters.bucket("tokens"))
    }
}
