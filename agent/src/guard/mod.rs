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
//! Requests entering the service go through [`Guard::admit`] first:
//! admission control and load shedding, the per-tenant request rate and
//! the service's own bulkheads.

mod error;
mod future;
mod layer;

pub use crate::fallback::Degradation;
pub use crate::request::GuardedRequest;
pub use error::{Classify, DependencyError, GuardError, GuardFailure};
pub use future::ResponseFuture;
pub use layer::{GuardLayer, GuardService};

use crate::backoff::Backoff;
use crate::breaker::{Breaker, CallOutcome, Transition};
use crate::bulkhead::{
    BulkheadRejection, Bulkheads, Partition, PartitionLimits, QueuedGauge, Slot,
};
use crate::clock::{Anchor, CallClock, CallReader, WallClock, instant_at};
use crate::compiled::{BulkheadRule, CompiledPolicy, DependencyRules, PolicyReceiver};
use crate::deadline::Deadline;
use crate::fallback::{FallbackDecision, Resolution, failure_type_of, resolve_counted};
use crate::limits::{Bucket, BudgetRefusal, Hold, Lease, Limiters, Rate, Reservation, day_of};
use crate::random::{RandomSource, SplitMix64};
use crate::retry_budget::RetryBudget;
use crate::telemetry::{DEFAULT_RING_CAPACITY, DependencyStats, Recorder, shard_index};
use rustc_hash::FxHashMap;
use shared::policy::{
    AdmissionMode, DegradedStatus, Effect, PartitionKey, PriorityClass,
    RetryBudget as RetryBudgetPolicy, RetryPolicy, Signal,
};
use shared::protocol::{BreakerState, BreakerTransition};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;

/// The pseudo-dependency under which service-level events (admission,
/// the request rate, the service's bulkheads) are counted.
pub const SERVICE_COMPONENT: &str = "_service";

/// Model tokens and spend of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Model tokens.
    pub tokens: u64,
    /// Spend in micro-dollars.
    pub cost_usd_micros: u64,
}

#[derive(Debug, Default)]
struct UsageCell {
    tokens: AtomicU64,
    cost: AtomicU64,
    recorded: AtomicBool,
}

impl UsageCell {
    /// Makes `cell` a zeroed meter this call alone holds: the same one
    /// again when no attempt of an earlier call kept it (nearly always),
    /// else a new one. `returned` is the meter's second reference when
    /// this thread's last attempt handed it back (see [`Meter`]); it is
    /// kept for the call's first attempt, or let go if the meter is
    /// replaced.
    #[inline]
    fn fresh(cell: &mut Arc<UsageCell>, returned: &mut Option<Arc<UsageCell>>) {
        // No weak reference to a meter is ever made, so a strong count of
        // one (two with the handed-back one) means nobody else holds it: a
        // plain load, where `Arc::get_mut` would take a compare-and-swap.
        // The fence orders the reset after whatever the last other holder
        // wrote before letting go (its release decrement).
        if Arc::strong_count(cell) == 1 + usize::from(returned.is_some()) {
            std::sync::atomic::fence(Ordering::Acquire);
            cell.tokens.store(0, Ordering::Relaxed);
            cell.cost.store(0, Ordering::Relaxed);
            cell.recorded.store(false, Ordering::Relaxed);
        } else {
            *cell = Arc::default();
            *returned = None;
        }
    }
}

/// An attempt's reference to its call's usage meter. Dropped on the
/// thread that runs the call (nearly always), it hands the reference back
/// through [`Spare::meter`] instead of releasing it.
#[derive(Debug, Clone)]
struct Meter(Option<Arc<UsageCell>>);

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(meter) = self.0.take() {
            // During the thread's teardown the slot is gone and the
            // reference is simply released.
            let _ = SPARE.try_with(|spare| spare.meter.replace(Some(meter)));
        }
    }
}

/// `a == b` for the short names a call is matched against its handles by
/// (dependency, tenant, partition keys), eight bytes at a time in place:
/// `==` on `str` calls into libc's `memcmp` for each, three times a call.
#[inline]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().unwrap_or([0; 4]));
    if n >= 8 {
        // Whole words, the last one overlapping the one before it.
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        word(a, n - 8) == word(b, n - 8)
    } else if n >= 4 {
        half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

/// Numbers guards, so that per-thread handles are never taken for
/// another guard's (an address could be reused, a number is not).
static NEXT_GUARD: AtomicU64 = AtomicU64::new(1);

/// Handles kept per thread: enough for a pipeline that calls a handful of
/// dependencies in turn.
const SPARE_HANDLES_PER_THREAD: usize = 8;

/// What calls on a thread leave for the next: handles and a usage meter's
/// reference. One thread-local, so a call finds both with one lookup.
struct Spare {
    /// The handles the thread's last call left: a loop calling one
    /// dependency finds them here, without a borrow or a search. A call
    /// takes its dependency's out for its whole length and puts them back
    /// at its end, so a call that runs while another holds them makes its
    /// own. (Boxed, so that a call holds a pointer and its future stays
    /// small.)
    last: Cell<Option<Box<Handles>>>,
    /// The handles before those, for a pipeline that calls a handful of
    /// dependencies in turn.
    #[allow(clippy::vec_box)]
    older: RefCell<Vec<Box<Handles>>>,
    /// The usage meter the last attempt dropped on this thread handed
    /// back: the next call on the same handles gives it to its first
    /// attempt, so that neither end of an attempt touches the meter's
    /// reference count (two locked instructions a call otherwise).
    meter: Cell<Option<Arc<UsageCell>>>,
}

thread_local! {
    static SPARE: Spare = const {
        Spare {
            last: Cell::new(None),
            older: RefCell::new(Vec::new()),
            meter: Cell::new(None),
        }
    };
}

/// A call's usage reservation on the budgets in its handles: which of
/// them it reserved from and how much, settled through the same handles
/// (which the call owns throughout, so they cannot change under it).
// Flat and word-aligned: it is written once and read once per call, and
// a nested `Option` made the compiler copy it in odd-sized pieces.
#[derive(Debug, Default, Clone, Copy)]
struct HeldUsage {
    /// The tokens reserved from each budget marked in `budgets`.
    tokens: u64,
    /// The day and the estimate reserved from the tenant's spend window,
    /// if bit [`HeldUsage::COST`] is set.
    day: u64,
    cost: u64,
    /// Bit `i`: reserved from `Handles::rates[i]` (1 the dependency's, 2
    /// the service's token budget).
    budgets: u8,
}

impl HeldUsage {
    /// The bit of `budgets` that says the spend window was reserved from.
    const COST: u8 = 1 << 3;

    /// Replaces the estimates with the actual use at `t`; nothing when
    /// nothing was reserved.
    #[inline]
    fn settle(self, handles: &Handles, t: u64, tokens: u64, cost: u64) {
        if self.budgets == 0 {
            return;
        }
        for i in [2, 1] {
            if self.budgets & (1 << i) != 0
                && let Some((rate, bucket)) = &handles.rates[i]
            {
                handles.leases[i].adjust(bucket, t, self.tokens, tokens, *rate);
            }
        }
        if self.budgets & HeldUsage::COST != 0
            && let Some(tenant) = &handles.tenant
        {
            tenant
                .lease
                .settle(&tenant.cost, self.day, day_of(t), self.cost, cost);
        }
    }
}

/// Everything a call of one dependency touches, found once and then kept
/// from call to call on the thread: the policy version (with a receiver of
/// its own, so that checking for a newer one is a single load), the
/// dependency's lane, the tenant's spend window and counter, and the
/// bulkhead partitions with their limits. A call owns them while it runs,
/// so none of them is looked up, locked or reference-counted on its way.
#[derive(Debug)]
struct Handles {
    guard: u64,
    /// Whether the policy's sender is gone (the value is final).
    closed: bool,
    rx: PolicyReceiver,
    policy: Arc<CompiledPolicy>,
    /// The dependency's rules under `policy`, found with the partitions.
    rules: Option<Arc<DependencyRules>>,
    lane: Arc<Lane>,
    tenant: Option<TenantHandles>,
    /// One per bulkhead of the dependency, in the policy's order.
    partitions: Vec<PartitionHandle>,
    /// Whether `partitions` and `rates` follow `policy` (else they are to
    /// be found again).
    partitions_current: bool,
    /// The shapes of the dependency's request rate and token budget and of
    /// the service's token budget under `policy`, with their buckets and
    /// this thread's advances on them.
    rates: [Option<(Rate, Arc<Bucket>)>; 3],
    leases: [Lease; 3],
    /// The usage meter of the call holding the handles, kept for the
    /// thread's next call (see [`UsageCell::fresh`]).
    usage: Arc<UsageCell>,
    /// The guard's clock, and this thread's tie of it to tokio's.
    clock: CallReader,
    anchor: Anchor,
}

impl Handles {
    /// Gives this thread's advances back to their buckets.
    fn give_back(&self) {
        for (rate, lease) in self.rates.iter().zip(&self.leases) {
            if let Some((rate, bucket)) = rate {
                lease.give_back(bucket, *rate);
            }
        }
    }
}

impl Drop for Handles {
    fn drop(&mut self) {
        self.give_back();
    }
}

#[derive(Debug)]
struct TenantHandles {
    name: Box<str>,
    cost: Arc<crate::limits::CostWindow>,
    /// This thread's advance on the tenant's spend window.
    lease: Lease,
    spend: Arc<crate::telemetry::TenantSpend>,
}

impl Drop for TenantHandles {
    fn drop(&mut self) {
        self.lease.give_back_window(&self.cost);
    }
}

#[derive(Debug)]
struct PartitionHandle {
    rule: BulkheadRule,
    key: Box<str>,
    partition: Arc<Partition>,
    limits: PartitionLimits,
}

impl Handles {
    /// Whether these are handles of guard `guard` for `dependency`.
    #[inline]
    fn fits(&self, guard: u64, dependency: &str) -> bool {
        self.guard == guard && same(&self.lane.name, dependency)
    }

    /// Points the handles at `call`'s tenant and partition values, looking
    /// up only what differs from the previous call's.
    fn update(&mut self, guard: &Guard, call: &Call<'_>) {
        // Whether the tenant is the previous call's.
        let same_tenant = match (call.tenant, &self.tenant) {
            (None, _) => {
                self.tenant = None;
                false
            }
            (Some(t), Some(held)) if same(&held.name, t) => true,
            (Some(t), _) => {
                self.tenant = Some(TenantHandles {
                    name: Box::from(t),
                    cost: guard.inner.limiters.cost_window(t),
                    lease: Lease::default(),
                    spend: guard.inner.recorder.tenant_spend(t),
                });
                false
            }
        };
        if !self.partitions_current {
            self.rules = self.policy.dependency_shared(call.dependency);
            let found = self.rules.as_deref();
            // The advances were taken at the old rates: back they go first.
            self.give_back();
            self.rates = [
                found.and_then(|r| r.requests.as_ref()).map(|l| {
                    (
                        Rate::of_requests(l),
                        guard.request_bucket(&self.lane).clone(),
                    )
                }),
                found
                    .and_then(|r| r.tokens_per_minute)
                    .map(|tpm| (Rate::of_tokens(tpm), guard.token_bucket(&self.lane).clone())),
                self.policy
                    .tokens_per_minute()
                    .map(|tpm| (Rate::of_tokens(tpm), guard.service_token_bucket().clone())),
            ];
            let rules = found.map_or(&[][..], |r| r.bulkheads.as_slice());
            self.partitions = rules
                .iter()
                .map(|rule| PartitionHandle::find(guard, rule.clone(), call))
                .collect();
            self.partitions_current = true;
            return;
        }
        for p in &mut self.partitions {
            let key = p.rule.bulkhead.partition;
            // A tenant partition's key is the previous call's tenant, so
            // the comparison above settled it.
            if same_tenant && key == PartitionKey::Tenant {
                continue;
            }
            if !same(&p.key, call.partition(key)) {
                *p = PartitionHandle::find(guard, p.rule.clone(), call);
            }
        }
    }
}

impl PartitionHandle {
    fn find(guard: &Guard, rule: BulkheadRule, call: &Call<'_>) -> PartitionHandle {
        let key = call.partition(rule.bulkhead.partition);
        PartitionHandle {
            key: Box::from(key),
            partition: guard.inner.bulkheads.partition(&rule.name, key),
            limits: PartitionLimits::of(&rule.bulkhead, key),
            rule,
        }
    }
}

/// One dependency's share of the guard's state (its counters, request
/// rate and token buckets, breaker), found by its name once per call
/// rather than once per pattern. The buckets and the breaker are the same
/// ones the layers find by key, made on first use as before.
#[derive(Debug)]
pub(crate) struct Lane {
    name: Box<str>,
    stats: Arc<DependencyStats>,
    requests: OnceLock<Arc<Bucket>>,
    tokens: OnceLock<Arc<Bucket>>,
    breaker: OnceLock<Arc<Breaker>>,
}

/// The slots a request holds in the service's bulkheads, given back on
/// drop.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    _slots: Vec<Slot>,
}

/// The slots a call holds in its handles' partitions: one in each of the
/// first `held`, given back on drop. Taken in order, so a count says
/// which: nothing to allocate, move or look up per slot.
#[derive(Debug)]
struct PartitionSlots<'h> {
    partitions: &'h [PartitionHandle],
    held: usize,
    /// Whether a slot had to be waited for.
    waited: bool,
}

impl Drop for PartitionSlots<'_> {
    #[inline]
    fn drop(&mut self) {
        for p in &self.partitions[..self.held] {
            p.partition.release();
        }
    }
}

/// Polls `fut` once: its output if it is ready at once. (A call whose
/// dependency answers at once so never touches the timer wheel.)
fn poll_once<F: Future + ?Sized>(
    mut fut: std::pin::Pin<&mut F>,
) -> impl Future<Output = Option<F::Output>> + '_ {
    std::future::poll_fn(move |cx| {
        Poll::Ready(match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
}

/// What one attempt of a guarded call knows.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// 1 for the first attempt, 2 for the first retry, …
    pub number: u32,
    /// The attempt's deadline, to send on (see [`Deadline::propagate`]).
    pub deadline: Option<Deadline>,
    /// The call's idempotency key, to send with a side effect.
    pub idempotency_key: Option<Arc<str>>,
    usage: Meter,
}

impl Attempt {
    /// Reports what the attempt actually used. Budgets reserved the
    /// estimate before the call; this settles them. Without a report the
    /// estimate stands.
    pub fn record_usage(&self, usage: Usage) {
        // Only a dropped meter has none, and a dropped attempt records
        // nothing.
        let Some(meter) = &self.usage.0 else { return };
        meter.tokens.fetch_add(usage.tokens, Ordering::Relaxed);
        meter
            .cost
            .fetch_add(usage.cost_usd_micros, Ordering::Relaxed);
        meter.recorded.store(true, Ordering::Relaxed);
    }
}

/// One call to describe to the guard: which dependency and operation, and
/// what the request knows about itself.
#[derive(Debug, Clone, Default)]
pub struct Call<'a> {
    dependency: &'a str,
    operation: &'a str,
    deadline: Option<Deadline>,
    stage: Option<&'a str>,
    tenant: Option<&'a str>,
    priority: Option<PriorityClass>,
    tool: Option<&'a str>,
    model: Option<&'a str>,
    queue: Option<&'a str>,
    idempotency_key: Option<&'a str>,
    effect: Option<Effect>,
    estimate: Usage,
}

impl<'a> Call<'a> {
    /// A call of `operation` on `dependency`.
    pub fn new(dependency: &'a str, operation: &'a str) -> Call<'a> {
        Call {
            dependency,
            operation,
            ..Call::default()
        }
    }
    /// The request's deadline.
    pub fn deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }
    /// The stage the call belongs to: its budget bounds the call too.
    pub fn stage(mut self, stage: &'a str) -> Self {
        self.stage = Some(stage);
        self
    }
    /// The tenant: partitions bulkheads and is charged the cost.
    pub fn tenant(mut self, tenant: &'a str) -> Self {
        self.tenant = Some(tenant);
        self
    }
    /// The request's priority class.
    pub fn priority(mut self, priority: PriorityClass) -> Self {
        self.priority = Some(priority);
        self
    }
    /// The tool, for bulkheads partitioned by tool.
    pub fn tool(mut self, tool: &'a str) -> Self {
        self.tool = Some(tool);
        self
    }
    /// The model, for bulkheads partitioned by model.
    pub fn model(mut self, model: &'a str) -> Self {
        self.model = Some(model);
        self
    }
    /// The queue, for bulkheads partitioned by queue.
    pub fn queue(mut self, queue: &'a str) -> Self {
        self.queue = Some(queue);
        self
    }
    /// The idempotency key: without one a side effect is never retried.
    pub fn idempotency_key(mut self, key: &'a str) -> Self {
        self.idempotency_key = Some(key);
        self
    }
    /// The operation's effect, overriding what the policy says.
    pub fn effect(mut self, effect: Effect) -> Self {
        self.effect = Some(effect);
        self
    }
    /// The usage to reserve before the call.
    pub fn estimate(mut self, usage: Usage) -> Self {
        self.estimate = usage;
        self
    }

    /// The dependency called, as named to [`Call::new`].
    pub(crate) fn dependency_name(&self) -> &'a str {
        self.dependency
    }

    fn partition(&self, key: PartitionKey) -> &str {
        let value = match key {
            PartitionKey::Tenant => self.tenant,
            PartitionKey::Tool => self.tool.or(Some(self.operation)),
            PartitionKey::Model => self.model,
            PartitionKey::Queue => self.queue,
            PartitionKey::Priority => self.priority.map(PriorityClass::as_str),
        };
        value.unwrap_or("_")
    }
}

/// The outcome of a guarded call: the result, and how the answer built on
/// it must be labelled.
#[derive(Debug)]
pub struct Guarded<T, E> {
    /// The value, or why there is none.
    pub result: Result<T, GuardError<E>>,
    /// The status the answer carries; `normal` on success.
    pub status: DegradedStatus,
    /// Attempts made (0 when refused before calling).
    pub attempts: u32,
    /// Whether the side effect may have happened although the call failed:
    /// the operation changes something, and an attempt was sent whose reply
    /// was lost (it timed out, or the connection broke after sending). The
    /// guard never retries such a call without an idempotency key; the
    /// caller must reconcile it (look the effect up at the target, or
    /// report it with [`crate::dlq::dead_letter`]) rather than repeat it.
    pub side_effect_uncertain: bool,
    /// What a degraded or failed outcome tells the caller besides its
    /// status; `None` for a normal one. Boxed: a success carries none, and
    /// an outcome half the size is cheaper to hand back on every call.
    pub degradation: Option<Box<Degradation>>,
}

impl<T, E> Guarded<T, E> {
    /// Whether the call succeeded.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// What the caller is to be told, when not normal.
    pub fn user_message(&self) -> Option<&str> {
        self.degradation.as_ref()?.user_message.as_deref()
    }

    /// The fallback to take instead, if the policy allows one.
    pub fn fallback(&self) -> Option<&FallbackDecision> {
        self.degradation.as_ref()?.fallback.as_ref()
    }

    /// The must-fail-closed invariant that stops the action, if any. When
    /// set, the action must not proceed in any form.
    pub fn fail_closed(&self) -> Option<&str> {
        self.degradation.as_ref()?.fail_closed.as_deref()
    }

    /// The same outcome with its value mapped by `f`; the labels stay.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Guarded<U, E> {
        Guarded {
            result: self.result.map(f),
            status: self.status,
            attempts: self.attempts,
            side_effect_uncertain: self.side_effect_uncertain,
            degradation: self.degradation,
        }
    }
}

/// A request admitted by [`Guard::admit`]. It holds the request's slots in
/// the service's bulkheads until dropped.
#[derive(Debug)]
pub struct Admitted {
    /// Normal, degraded or queued (rejected requests are not admitted).
    pub mode: AdmissionMode,
    /// The request's priority class.
    pub priority: PriorityClass,
    /// What the caller is told when the mode is not normal.
    pub user_message: Option<String>,
    /// The trigger that chose the mode.
    pub trigger: Option<String>,
    /// The request's deadline.
    pub deadline: Option<Deadline>,
    _slots: Slots,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Shed by admission control.
    Shed {
        /// The trigger.
        trigger: String,
        /// What the caller is told.
        user_message: Option<String>,
    },
    /// The tenant's request rate is exceeded.
    RateLimited,
    /// A service bulkhead had no room.
    Bulkhead(BulkheadRejection),
    /// The deadline had already passed.
    DeadlineExpired,
}

/// A request entering the service, for [`Guard::admit`].
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// The deadline (see [`Deadline::for_incoming`]); absent, the policy's
    /// total budget starts now.
    pub deadline: Option<Deadline>,
    /// The tenant.
    pub tenant: Option<&'a str>,
    /// The priority class; absent, the policy's default class.
    pub priority: Option<PriorityClass>,
    /// The tool, model and queue, for bulkheads partitioned by them.
    pub tool: Option<&'a str>,
    /// See `tool`.
    pub model: Option<&'a str>,
    /// See `tool`.
    pub queue: Option<&'a str>,
}

struct Inner {
    policy: PolicyReceiver,
    random: Arc<dyn RandomSource>,
    recorder: Arc<Recorder>,
    breakers: RwLock<HashMap<String, Arc<Breaker>>>,
    lanes: RwLock<FxHashMap<Box<str>, Arc<Lane>>>,
    /// Tells this guard's per-thread handles from another's.
    id: u64,
    /// The service-wide tokens-per-minute bucket, once made.
    service_tokens: OnceLock<Arc<Bucket>>,
    bulkheads: Bulkheads,
    limiters: Arc<Limiters>,
    retry_budget: RetryBudget,
    queue_depths: RwLock<HashMap<String, u64>>,
    clock: CallClock,
    /// `clock` resolved: at the build when built inside a runtime, else
    /// at the first call.
    reader: OnceLock<CallReader>,
}

/// Enforces the policy in force; cheap to clone and share.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("policy_version", &self.policy().version())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Guard`].
pub struct GuardBuilder {
    policy: PolicyReceiver,
    random: Option<Arc<dyn RandomSource>>,
    instance_id: String,
    wall: Option<WallClock>,
    ring_capacity: usize,
    clock: CallClock,
}

impl GuardBuilder {
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
    /// The guard.
    pub fn build(self) -> Guard {
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
        Guard {
            inner: Arc::new(Inner {
                policy: self.policy,
                random: self
                    .random
                    .unwrap_or_else(|| Arc::new(SplitMix64::from_entropy())),
                recorder: Arc::new(Recorder::new(self.instance_id, wall, self.ring_capacity)),
                breakers: RwLock::default(),
                lanes: RwLock::default(),
                id: NEXT_GUARD.fetch_add(1, Ordering::Relaxed),
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

/// The retry decisions of one call: which failures are retried, within
/// the retry budget, after what backoff. Shared by [`Guard::call`] and
/// [`crate::retry::RetryLayer`].
pub(crate) struct RetryPlan<'p> {
    retry: Option<&'p RetryPolicy>,
    max_attempts: u32,
    may_retry: bool,
    budget: Option<&'p RetryBudgetPolicy>,
    backoff: Option<Backoff>,
}

impl<'p> RetryPlan<'p> {
    /// The plan for a call of `operation` on `dependency` under `policy`;
    /// deposits the call's first attempt into the retry budget.
    pub(crate) fn start(
        guard: &Guard,
        policy: &'p CompiledPolicy,
        dependency: &str,
        operation: &str,
        effect: Option<Effect>,
        keyed: bool,
    ) -> RetryPlan<'p> {
        if let Some(b) = policy.retry_budget() {
            guard.inner.retry_budget.deposit(b);
        }
        RetryPlan::for_call(
            policy,
            policy.dependency(dependency),
            operation,
            effect,
            keyed,
        )
    }

    /// The plan for a call whose first attempt has already been deposited
    /// into the retry budget, with the dependency's rules already found.
    /// [`Guard::call`] makes it only once an attempt has failed: a call
    /// that succeeds at once never needs it.
    pub(crate) fn for_call(
        policy: &'p CompiledPolicy,
        rules: Option<&'p DependencyRules>,
        operation: &str,
        effect: Option<Effect>,
        keyed: bool,
    ) -> RetryPlan<'p> {
        let retry = rules.and_then(|r| r.retry.as_ref());
        let effect = effect
            .or_else(|| rules.map(|r| r.effect_of(operation)))
            .unwrap_or(Effect::Read);
        let budget = policy.retry_budget();
        RetryPlan {
            retry,
            max_attempts: retry.map_or(1, |r| r.max_attempts.max(1)),
            // A side effect is retried only under an idempotency key: the
            // first attempt may have done its work before failing.
            may_retry: !effect.has_side_effects() || keyed,
            budget,
            backoff: retry.map(Backoff::for_policy),
        }
    }

    /// The wait before retrying a failure of `class` after `attempts`
    /// attempts, or `None` when it is not retried. Takes the retry from
    /// the budget and counts a refusal by it.
    pub(crate) fn next_delay(
        &mut self,
        guard: &Guard,
        class: shared::policy::ErrorClass,
        attempts: u32,
        deadline: Option<Deadline>,
        stats: &DependencyStats,
    ) -> Option<std::time::Duration> {
        let retryable = self.retry.is_some_and(|r| r.retry_on.contains(&class))
            && class.is_retryable()
            && self.may_retry
            && attempts < self.max_attempts;
        if !retryable {
            return None;
        }
        if let Some(b) = self.budget
            && !guard.inner.retry_budget.withdraw(b)
        {
            stats.retry_budget_exhausted();
            return None;
        }
        let delay = self
            .backoff
            .as_mut()
            .map(|b| b.delay(attempts, &*guard.inner.random))
            .unwrap_or_default();
        // No retry that cannot finish in time: sleeping into the deadline
        // only to fail is load with no chance of an answer.
        if deadline.is_some_and(|d| d.remaining() <= delay) {
            return None;
        }
        Some(delay)
    }
}

/// How a call's run ended: the value and the last attempt's latency, or
/// why it failed.
type RunResult<T, E> = Result<(T, Duration), GuardError<E>>;

/// What a call's run reports back besides its result: attempts made,
/// whether a reply was lost, and the last reading of the clock (in the
/// limiters' ticks).
struct Progress {
    attempts: u32,
    lost_reply: bool,
    ticks: u64,
}

/// The earlier of two optional deadlines, or the smaller of two optional
/// budgets, in ticks.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Nanoseconds, saturated (a budget of 584 years is no budget to speak of).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The bounds of a call, in the limiters' ticks (nanoseconds from the
/// guard's epoch: the clock is read in them, and sums and comparisons of
/// them are single instructions, where instants need normalising): the
/// deadline it was given, and the tightest of the budgets that started
/// with it. Kept apart rather than added up at once: the first attempt's
/// deadline needs one addition for the call's and its own budget
/// together, and the call's own deadline is only needed again by a retry.
#[derive(Debug, Clone, Copy)]
struct Budgets {
    start: u64,
    given: Option<u64>,
    budget: Option<u64>,
}

impl Budgets {
    /// The call's deadline, retries included.
    fn deadline(&self) -> Option<u64> {
        earliest(
            self.given,
            self.budget.map(|b| self.start.saturating_add(b)),
        )
    }

    /// Whether the call's deadline has passed at its start (a budget of
    /// zero has).
    #[inline]
    fn expired(&self) -> bool {
        self.given.is_some_and(|d| d <= self.start) || self.budget == Some(0)
    }

    /// The deadline of an attempt starting at `start` with its own
    /// `per_attempt` budget: the earlier of the call's and its own.
    #[inline]
    fn for_attempt(&self, start: u64, per_attempt: Option<u64>) -> Option<u64> {
        let after = |b: u64| start.saturating_add(b);
        if start == self.start {
            // Both budgets run from the same reading: add the smaller.
            earliest(self.given, earliest(self.budget, per_attempt).map(after))
        } else {
            earliest(self.deadline(), per_attempt.map(after))
        }
    }
}

impl Guard {
    /// A builder for a guard enforcing the policy seen through `policy`.
    pub fn builder(policy: PolicyReceiver) -> GuardBuilder {
        GuardBuilder {
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

    /// A receiver of the policy this guard enforces, for the layers that
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
    fn lane_breaker<'l>(&self, lane: &'l Lane) -> &'l Arc<Breaker> {
        lane.breaker.get_or_init(|| self.breaker(&lane.name))
    }

    fn signal_fires(&self, policy: &CompiledPolicy, signal: &Signal, tenant: Option<&str>) -> bool {
        match signal {
            Signal::QueueDepth { above, dependency } => {
                let depths = self
                    .inner
                    .queue_depths
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                let depth = match depths.get(dependency.as_deref().unwrap_or("")) {
                    Some(d) => *d,
                    // Unreported, the service's own queue is what waits in
                    // the bulkheads.
                    None if dependency.is_none() => {
                        self.inner.bulkheads.gauges().queued.load(Ordering::Relaxed)
                    }
                    None => 0,
                };
                depth > *above
            }
            Signal::DependencyP95 {
                dependency,
                above_ms,
            } => self
                .inner
                .recorder
                .existing(dependency)
                .and_then(|s| s.p95_ms())
                .is_some_and(|p95| p95 > *above_ms),
            Signal::BreakerOpen { dependency } => matches!(
                self.breaker_state(dependency),
                Some(BreakerState::Open | BreakerState::ForcedOpen)
            ),
            Signal::CostNearLimit { percent } => match (tenant, policy.cost_per_tenant_per_day()) {
                (Some(t), Some(limit)) => {
                    self.inner.limiters.cost_percent(t, limit) >= u64::from(*percent)
                }
                _ => false,
            },
        }
    }

    /// The admission mode for `class` now: the strictest mode any firing
    /// trigger selects for it, with that trigger's id and user message.
    pub fn admission_mode(
        &self,
        policy: &CompiledPolicy,
        class: PriorityClass,
        tenant: Option<&str>,
    ) -> (AdmissionMode, Option<(String, Option<String>)>) {
        let mut best = (AdmissionMode::Normal, None);
        if let Some(admission) = policy.admission() {
            for trigger in &admission.triggers {
                let Some(mode) = trigger.modes.get(&class).copied() else {
                    continue;
                };
                if mode > best.0 && self.signal_fires(policy, &trigger.signal, tenant) {
                    best = (
                        mode,
                        Some((trigger.id.clone(), trigger.user_message.clone())),
                    );
                }
            }
        }
        // Safety-critical work is never shed or deferred, whatever a
        // trigger says: losing it endangers someone.
        if class == PriorityClass::SafetyCritical && best.0 > AdmissionMode::Degraded {
            best.0 = AdmissionMode::Degraded;
        }
        best
    }

    /// Admits (or refuses) a request entering the service.
    pub async fn admit(&self, request: Request<'_>) -> Result<Admitted, Refusal> {
        let policy = self.policy();
        let stats = self.inner.recorder.dependency(SERVICE_COMPONENT);
        let deadline = request
            .deadline
            .or_else(|| policy.total_budget().map(Deadline::after));
        if deadline.is_some_and(|d| d.is_expired()) {
            stats.failure(shared::policy::ErrorClass::Timeout);
            return Err(Refusal::DeadlineExpired);
        }
        let priority = request.priority.unwrap_or_else(|| policy.default_class());
        let (mode, trigger) = self.admission_mode(&policy, priority, request.tenant);
        let (trigger_id, user_message) = trigger.unzip();
        let user_message = user_message.flatten();
        if mode == AdmissionMode::Rejected {
            stats.shed();
            stats.degraded(DegradedStatus::Refused);
            return Err(Refusal::Shed {
                trigger: trigger_id.unwrap_or_default(),
                user_message,
            });
        }
        if let Some(limit) = policy.request_rate() {
            let key = format!("tenant/{}", request.tenant.unwrap_or("_"));
            if !self.inner.limiters.try_request(&key, limit) {
                stats.rate_limited();
                return Err(Refusal::RateLimited);
            }
        }
        let call = Call {
            tenant: request.tenant,
            priority: Some(priority),
            tool: request.tool,
            model: request.model,
            queue: request.queue,
            ..Call::default()
        };
        let slots = match self
            .acquire_bulkheads(policy.service_bulkheads(), &call, deadline, &stats)
            .await
        {
            Ok(slots) => slots,
            Err(r) => {
                stats.bulkhead_rejection();
                return Err(Refusal::Bulkhead(r));
            }
        };
        match mode {
            AdmissionMode::Degraded => stats.degraded(DegradedStatus::Degraded),
            AdmissionMode::Queued => stats.degraded(DegradedStatus::Queued),
            _ => {}
        }
        Ok(Admitted {
            mode,
            priority,
            user_message: if mode == AdmissionMode::Normal {
                None
            } else {
                user_message
            },
            trigger: trigger_id,
            deadline,
            _slots: slots,
        })
    }

    pub(crate) async fn acquire_bulkheads(
        &self,
        rules: &[BulkheadRule],
        call: &Call<'_>,
        deadline: Option<Deadline>,
        stats: &DependencyStats,
    ) -> Result<Slots, BulkheadRejection> {
        let mut slots = Vec::with_capacity(rules.len());
        for rule in rules {
            let key = call.partition(rule.bulkhead.partition);
            let limits = PartitionLimits::of(&rule.bulkhead, key);
            slots.push(
                self.acquire_slot(rule, key, limits, deadline, stats)
                    .await?,
            );
        }
        Ok(Slots { _slots: slots })
    }

    /// Takes a slot of partition `key` of one bulkhead, showing the wait in
    /// the dependency's queued gauge.
    pub(crate) async fn acquire_slot(
        &self,
        rule: &BulkheadRule,
        key: &str,
        limits: PartitionLimits,
        deadline: Option<Deadline>,
        stats: &DependencyStats,
    ) -> Result<Slot, BulkheadRejection> {
        // A free slot is taken at once; only a call that may wait shows in
        // the queued gauge.
        if let Some(slot) = self.inner.bulkheads.try_acquire(&rule.name, key, limits) {
            return Ok(slot);
        }
        let _queued = QueuedGauge::enter(&stats.queued);
        self.inner
            .bulkheads
            .acquire(&rule.name, key, limits, deadline.map(|d| d.instant()))
            .await
    }

    /// Takes a slot in each of a call's partitions while they are free;
    /// stops at the first full one (`held` short of the partitions).
    #[inline]
    fn take_partitions(handles: &Handles) -> PartitionSlots<'_> {
        let mut slots = PartitionSlots {
            partitions: &handles.partitions,
            held: 0,
            waited: false,
        };
        for p in &handles.partitions {
            if !p.partition.try_take(p.limits.max_concurrent) {
                break;
            }
            slots.held += 1;
        }
        slots
    }

    /// Takes the rest of a call's slots, after the `held` it has, waiting
    /// in the partitions' queues where full.
    async fn acquire_partitions(
        &self,
        slots: &mut PartitionSlots<'_>,
        deadline: Option<Deadline>,
        stats: &DependencyStats,
    ) -> Result<(), BulkheadRejection> {
        let partitions = slots.partitions;
        for p in &partitions[slots.held..] {
            if !p.partition.try_take(p.limits.max_concurrent) {
                slots.waited = true;
                let queued = QueuedGauge::enter(&stats.queued);
                let waited = self
                    .inner
                    .bulkheads
                    .wait_in(&p.partition, p.limits, deadline.map(|d| d.instant()))
                    .await;
                drop(queued);
                waited?;
            }
            slots.held += 1;
        }
        Ok(())
    }

    /// Takes one request from `dependency`'s request rate, if the policy
    /// limits it; counts a refusal.
    pub(crate) fn check_request_rate(
        &self,
        policy: &CompiledPolicy,
        dependency: &str,
        stats: &DependencyStats,
    ) -> bool {
        let lane = self.lane(dependency);
        self.take_request(policy.dependency(dependency), &lane, stats, Instant::now())
    }

    /// [`Guard::check_request_rate`] on a lane, at `now`.
    fn take_request(
        &self,
        rules: Option<&DependencyRules>,
        lane: &Lane,
        stats: &DependencyStats,
        now: Instant,
    ) -> bool {
        let Some(limit) = rules.and_then(|r| r.requests.as_ref()) else {
            return true;
        };
        let bucket = self.request_bucket(lane);
        let ok = bucket.take(self.inner.limiters.ticks(now), 1, Rate::of_requests(limit));
        if !ok {
            stats.rate_limited();
        }
        ok
    }

    fn request_bucket<'l>(&self, lane: &'l Lane) -> &'l Arc<Bucket> {
        lane.requests.get_or_init(|| {
            let key = format!("dependency/{}", lane.name);
            self.inner.limiters.bucket(&key)
        })
    }

    fn token_bucket<'l>(&self, lane: &'l Lane) -> &'l Arc<Bucket> {
        lane.tokens.get_or_init(|| {
            let key = format!("tokens/{}", lane.name);
            self.inner.limiters.bucket(&key)
        })
    }

    fn service_token_bucket(&self) -> &Arc<Bucket> {
        self.inner
            .service_tokens
            .get_or_init(|| self.inner.limiters.bucket("tokens"))
    }

    /// Reserves `estimate` from the service's and the dependency's token
    /// budgets and the tenant's daily spend, all or nothing; counts a
    /// refusal.
    pub(crate) fn reserve_usage(
        &self,
        policy: &CompiledPolicy,
        dependency: &str,
        tenant: Option<&str>,
        estimate: Usage,
        stats: &DependencyStats,
    ) -> Result<Reservation, BudgetRefusal> {
        let lane = self.lane(dependency);
        let rules = policy.dependency(dependency);
        let service = policy
            .tokens_per_minute()
            .map(|tpm| (self.service_token_bucket().clone(), Rate::of_tokens(tpm)));
        let own = rules
            .and_then(|r| r.tokens_per_minute)
            .map(|tpm| (self.token_bucket(&lane).clone(), Rate::of_tokens(tpm)));
        let cost = match (tenant, policy.cost_per_tenant_per_day()) {
            (Some(t), Some(limit)) => Some((
                self.inner.limiters.cost_window(t),
                limit,
                estimate.cost_usd_micros,
            )),
            _ => None,
        };
        let limiters = &self.inner.limiters;
        Hold::reserve(
            limiters.ticks(Instant::now()),
            service.into_iter().chain(own),
            estimate.tokens,
            cost,
        )
        .map(|hold| Reservation::new(hold, limiters.clone()))
        .inspect_err(|_| stats.rate_limited())
    }

    /// [`Guard::reserve_usage`] on a call's handles, at `t`: the service's
    /// token budget, the dependency's, then the tenant's spend, all or
    /// nothing.
    ///
    /// Writes the reservation into `held` where the call keeps it (built
    /// elsewhere and moved in, it cost a stalled copy per call); on a
    /// refusal `held` is left reserving nothing.
    #[inline]
    fn reserve_held(
        policy: &CompiledPolicy,
        handles: &Handles,
        estimate: Usage,
        t: u64,
        held: &mut HeldUsage,
    ) -> Result<(), BudgetRefusal> {
        held.tokens = estimate.tokens;
        if estimate.tokens > 0 {
            for i in [2, 1] {
                if let Some((rate, bucket)) = &handles.rates[i] {
                    if !handles.leases[i].take(bucket, t, estimate.tokens, *rate) {
                        std::mem::take(held).settle(handles, t, 0, 0);
                        handles.lane.stats.rate_limited();
                        return Err(BudgetRefusal::Tokens);
                    }
                    held.budgets |= 1 << i;
                }
            }
        }
        if let (Some(tenant), Some(limit)) = (&handles.tenant, policy.cost_per_tenant_per_day()) {
            let day = day_of(t);
            if !tenant
                .lease
                .reserve(&tenant.cost, day, limit, estimate.cost_usd_micros)
            {
                std::mem::take(held).settle(handles, t, 0, 0);
                handles.lane.stats.rate_limited();
                return Err(BudgetRefusal::Cost);
            }
            held.day = day;
            held.cost = estimate.cost_usd_micros;
            held.budgets |= HeldUsage::COST;
        }
        Ok(())
    }

    /// Settles a call's reservation with what it used (the estimate when
    /// the dependency reported nothing) and counts the usage.
    pub(crate) fn settle_usage(
        &self,
        reservation: Reservation,
        used: Usage,
        tenant: Option<&str>,
        stats: &DependencyStats,
    ) {
        stats.usage(used.tokens, used.cost_usd_micros);
        if let Some(t) = tenant {
            self.inner.recorder.tenant_cost(t, used.cost_usd_micros);
        }
        reservation.settle(used.tokens, used.cost_usd_micros);
    }

    #[inline]
    pub(crate) fn record_transitions(
        &self,
        stats: &DependencyStats,
        transitions: &mut Vec<Transition>,
    ) {
        // Nearly every acquire and record changes nothing.
        if !transitions.is_empty() {
            self.report_transitions(stats, transitions);
        }
    }

    #[inline(never)]
    fn report_transitions(&self, stats: &DependencyStats, transitions: &mut Vec<Transition>) {
        let wall = self.inner.recorder.wall();
        for (at, from, to) in transitions.drain(..) {
            stats.transition(BreakerTransition {
                at_ms: wall.unix_ms_at(at),
                from,
                to,
            });
        }
    }

    /// The handles a call of `call`'s dependency needs under the policy in
    /// force: this thread's from an earlier call when they are still
    /// current (the same guard, dependency and policy version), brought up
    /// to date for the call's tenant and partitions, else made.
    /// With them, the meter's second reference if the thread's last
    /// attempt handed it back (for the call's first attempt).
    fn handles(&self, call: &Call<'_>) -> (Box<Handles>, Option<Arc<UsageCell>>) {
        let (id, dependency) = (self.inner.id, call.dependency);
        let (reused, mut returned) = SPARE
            .try_with(|spare| {
                let reused = match spare.last.take() {
                    Some(h) if h.fits(id, dependency) => Some(h),
                    last => {
                        let mut older = spare.older.borrow_mut();
                        let found = older
                            .iter()
                            .position(|h| h.fits(id, dependency))
                            .map(|i| older.swap_remove(i));
                        if let Some(last) = last {
                            Guard::keep_older(&mut older, last);
                        }
                        found
                    }
                };
                (reused, spare.meter.take())
            })
            .unwrap_or_default();
        let mut h = match reused {
            Some(mut h) => {
                if !h.closed {
                    match h.rx.has_changed() {
                        Ok(false) => {}
                        Ok(true) => {
                            h.policy = h.rx.borrow_and_update().clone();
                            h.partitions_current = false;
                        }
                        // The sender is gone, so the value it left is
                        // final: take it once and stop asking.
                        Err(_) => {
                            let last = h.rx.borrow().clone();
                            if !Arc::ptr_eq(&last, &h.policy) {
                                h.policy = last;
                                h.partitions_current = false;
                            }
                            h.closed = true;
                        }
                    }
                }
                h
            }
            None => {
                let mut rx = self.inner.policy.clone();
                let policy = rx.borrow_and_update().clone();
                Box::new(Handles {
                    guard: self.inner.id,
                    closed: false,
                    rx,
                    policy,
                    rules: None,
                    lane: self.lane(call.dependency),
                    tenant: None,
                    partitions: Vec::new(),
                    partitions_current: false,
                    rates: [None, None, None],
                    leases: Default::default(),
                    usage: Arc::default(),
                    clock: self
                        .inner
                        .reader
                        .get_or_init(|| CallReader::resolve(self.inner.clock))
                        .clone(),
                    anchor: Anchor::default(),
                })
            }
        };
        h.update(self, call);
        // The handed-back reference counts only if it is to these handles'
        // meter (any other is released).
        returned = returned.filter(|m| Arc::ptr_eq(m, &h.usage));
        UsageCell::fresh(&mut h.usage, &mut returned);
        (h, returned)
    }

    /// Keeps `handles` for this thread's next call.
    #[inline]
    fn keep_handles(handles: Box<Handles>) {
        // During the thread's teardown they are simply dropped.
        let _ = SPARE.try_with(|spare| {
            if let Some(last) = spare.last.replace(Some(handles)) {
                Guard::keep_older(&mut spare.older.borrow_mut(), last);
            }
        });
    }

    /// Adds `handles` to a thread's older ones, the oldest going when
    /// there are enough.
    #[allow(clippy::vec_box)]
    fn keep_older(older: &mut Vec<Box<Handles>>, handles: Box<Handles>) {
        if older.len() + 1 >= SPARE_HANDLES_PER_THREAD {
            older.remove(0);
        }
        older.push(handles);
    }

    /// Runs `op` as a guarded call described by `call`.
    ///
    /// `op` is called once per attempt with what the attempt knows (its
    /// deadline to propagate, the idempotency key, a usage meter). The
    /// outcome carries the result and the status the answer must show.
    pub async fn call<T, E, F, Fut>(&self, call: &Call<'_>, mut op: F) -> Guarded<T, E>
    where
        E: Classify,
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // The policy of the whole call, in the handles the call owns until
        // it ends: a swap mid-call changes nothing here. (One async fn
        // rather than two: each level of nesting copies the whole future.)
        let (mut handles, mut returned_meter) = self.handles(call);
        // The clock is read once here and once per attempt's end, in
        // nanoseconds from the guard's epoch ("ticks"), and every pattern
        // decides on those readings: the deadlines, buckets, windows,
        // breaker and retry budget. An instant is made only for what leaves
        // the guard (the attempt's deadline).
        let epoch = self.inner.limiters.epoch();
        let ticks = {
            let h = &mut *handles;
            h.clock.start(&mut h.anchor, epoch)
        };
        let policy = &*handles.policy;
        let rules = handles.rules.as_deref();
        let stats = &*handles.lane.stats;
        // This thread's telemetry shard, looked up once and again after
        // each await that can suspend the call (it may resume on another
        // thread, whose shard it must count in).
        let mut at = shard_index();
        // Counted at once, so that a call cancelled while it waits (for a
        // bulkhead slot, say) is counted too.
        stats.call_at(at);
        // The stage's budget bounds the call as a whole, retries included.
        let stage_budget = call
            .stage
            .and_then(|s| policy.stage_budget(s))
            .or(rules.and_then(|r| r.stage_budget));
        let budgets = Budgets {
            start: ticks,
            given: call
                .deadline
                .map(|d| nanos(d.instant().saturating_duration_since(epoch))),
            // The policy's total budget applies only without a deadline.
            budget: earliest(
                call.deadline
                    .is_none()
                    .then(|| policy.total_budget())
                    .flatten()
                    .map(nanos),
                stage_budget.map(nanos),
            ),
        };
        let mut progress = Progress {
            attempts: 0,
            lost_reply: false,
            ticks,
        };
        // The call's run, in this function's body rather than an async fn
        // of its own: each level of nesting is a future moved whole into
        // its parent's, about half a kilobyte copied per call.
        // What the run reserves, settled after it whatever its end.
        let mut reservation = HeldUsage::default();
        let result: RunResult<T, E> = 'run: {
            let handles: &Handles = &handles;
            let progress = &mut progress;
            let usage = &handles.usage;
            let lane = &*handles.lane;
            let t = progress.ticks;
            if budgets.expired() {
                break 'run Err(GuardError::DeadlineExpired);
            }
            if let Some((rate, bucket)) = &handles.rates[0]
                && !handles.leases[0].take(bucket, t, 1, *rate)
            {
                stats.rate_limited();
                break 'run Err(GuardError::RateLimited);
            }
            if let Err(refusal) =
                Guard::reserve_held(policy, handles, call.estimate, t, &mut reservation)
            {
                break 'run Err(GuardError::BudgetExhausted(refusal));
            }
            // The first attempt earns its share of retries now; how to retry is
            // worked out only once an attempt has failed.
            if let Some(b) = policy.retry_budget() {
                self.inner.retry_budget.deposit_ticks(t, b, at);
            }
            let mut plan: Option<RetryPlan<'_>> = None;
            let key: Option<Arc<str>> = call.idempotency_key.map(Arc::from);
            let breaker_policy = rules.and_then(|r| r.breaker.as_ref());
            let breaker = breaker_policy.map(|_| self.lane_breaker(lane));
            let per_attempt = rules.and_then(|r| r.timeout).map(nanos);
            let mut transitions = Vec::new();
            loop {
                progress.attempts += 1;
                // The first attempt starts at the call's reading; a retry after
                // its sleep reads the clock anew.
                let start = if progress.attempts == 1 {
                    t
                } else {
                    handles.clock.later(&handles.anchor, epoch)
                };
                let ticket = match (breaker, breaker_policy) {
                    (Some(b), Some(p)) => {
                        let t = b.acquire_at(start, p, &mut transitions);
                        self.record_transitions(stats, &mut transitions);
                        match t {
                            Ok(t) => Some(t),
                            Err(_refused) => {
                                stats.breaker_rejection();
                                progress.attempts -= 1;
                                break 'run Err(GuardError::BreakerOpen);
                            }
                        }
                    }
                    _ => None,
                };
                let attempt_deadline = budgets
                    .for_attempt(start, per_attempt)
                    .map(|d| Deadline::at(instant_at(epoch, d)));
                // Free slots are taken without a future; only a call that has
                // to queue awaits one (boxed, so that the call's own future
                // stays small).
                let mut slots = Guard::take_partitions(handles);
                if slots.held < handles.partitions.len() {
                    let waited =
                        Box::pin(self.acquire_partitions(&mut slots, attempt_deadline, stats))
                            .await;
                    at = shard_index();
                    if let Err(rejection) = waited {
                        stats.bulkhead_rejection();
                        progress.attempts -= 1;
                        break 'run Err(GuardError::Bulkhead(rejection));
                    }
                }
                let attempt = Attempt {
                    number: progress.attempts,
                    deadline: attempt_deadline,
                    idempotency_key: key.clone(),
                    usage: Meter(Some(returned_meter.take().unwrap_or_else(|| usage.clone()))),
                };
                // Waiting for a bulkhead slot is not the dependency's latency.
                let began = if slots.waited {
                    handles.clock.later(&handles.anchor, epoch)
                } else {
                    start
                };
                stats.attempt_started_at(at);
                // The attempt runs until its deadline: polled once before
                // any timer exists, and only one that has to wait gets the
                // timer (boxed: it would otherwise enlarge every call's
                // future). Written out here, not as an async fn, which was
                // one more state machine per call. The attempt's future
                // lives in this block only: one cut off at its deadline is
                // dropped (its request cancelled) before its slot goes back,
                // never kept through a retry's backoff.
                let outcome: Result<T, Option<E>> = {
                    let mut fut = std::pin::pin!(op(attempt));
                    match poll_once(fut.as_mut()).await {
                        Some(r) => r.map_err(Some),
                        None => match attempt_deadline {
                            Some(d) => {
                                let r = Box::pin(tokio::time::timeout_at(d.instant(), fut)).await;
                                at = shard_index();
                                match r {
                                    Ok(r) => r.map_err(Some),
                                    Err(_elapsed) => Err(None),
                                }
                            }
                            None => {
                                let r = fut.await;
                                at = shard_index();
                                r.map_err(Some)
                            }
                        },
                    }
                };
                drop(slots);
                let end_ticks = handles.clock.later(&handles.anchor, epoch);
                progress.ticks = end_ticks;
                let latency = std::time::Duration::from_nanos(end_ticks.saturating_sub(began));
                let outcome = outcome.map_err(|e| match e {
                    Some(e) => GuardError::Dependency(e),
                    None => GuardError::Timeout,
                });
                let failed = outcome.as_ref().err().map(GuardError::class);
                if let (Some(b), Some(p), Some(t)) = (breaker, breaker_policy, ticket) {
                    // Only errors that say the dependency is unwell trip it: a
                    // validation error comes from a healthy dependency.
                    b.record_at(
                        end_ticks,
                        at,
                        p,
                        t,
                        CallOutcome {
                            failed: failed.is_some_and(|c| c.is_retryable()),
                            latency,
                        },
                        &mut transitions,
                    );
                    self.record_transitions(stats, &mut transitions);
                }
                let error = match outcome {
                    Ok(value) => {
                        // The attempt's end and latency are counted with the
                        // call's success, in one go.
                        break 'run Ok((value, latency));
                    }
                    Err(error) => error,
                };
                let deadline = budgets.deadline().map(|d| instant_at(epoch, d));
                let Some(delay) = self.after_failure(
                    &error, latency, call, policy, rules, &mut plan, progress, deadline, stats,
                ) else {
                    break 'run Err(error);
                };
                // Boxed: a retry's timer is rare next to the calls that need
                // none, and would otherwise make every call's future larger.
                Box::pin(tokio::time::sleep(delay)).await;
                at = shard_index();
                stats.retry();
            }
        };
        let Progress {
            attempts,
            lost_reply,
            ticks: end,
        } = progress;
        let usage = &handles.usage;
        let used = if usage.recorded.load(Ordering::Relaxed) {
            Usage {
                tokens: usage.tokens.load(Ordering::Relaxed),
                cost_usd_micros: usage.cost.load(Ordering::Relaxed),
            }
        } else if attempts > 0 {
            call.estimate
        } else {
            Usage::default()
        };
        if let Some(t) = &handles.tenant
            && used.cost_usd_micros > 0
        {
            t.spend.add_at(at, used.cost_usd_micros);
        }
        reservation.settle(&handles, end, used.tokens, used.cost_usd_micros);
        let out = match result {
            Ok((value, latency)) => {
                stats.succeeded_at(at, latency, used.tokens, used.cost_usd_micros);
                Guarded {
                    result: Ok(value),
                    status: DegradedStatus::Normal,
                    attempts,
                    side_effect_uncertain: false,
                    degradation: None,
                }
            }
            Err(error) => Guard::failed(
                error, call, policy, rules, stats, used, attempts, lost_reply,
            ),
        };
        Guard::keep_handles(handles);
        out
    }
}

impl Guard {
    /// Counts a failed attempt and decides whether and after what backoff
    /// it is retried. Out of line: the success path stays short and its
    /// code compact.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn after_failure<'p, E: Classify>(
        &self,
        error: &GuardError<E>,
        latency: Duration,
        call: &Call<'_>,
        policy: &'p CompiledPolicy,
        rules: Option<&'p DependencyRules>,
        plan: &mut Option<RetryPlan<'p>>,
        progress: &mut Progress,
        deadline: Option<Instant>,
        stats: &DependencyStats,
    ) -> Option<Duration> {
        let class = error.class();
        stats.attempt_ended();
        stats.latency(latency);
        // A timeout or a broken connection says nothing about whether the
        // dependency acted: the request may have arrived.
        progress.lost_reply |= matches!(
            class,
            shared::policy::ErrorClass::Timeout | shared::policy::ErrorClass::Connection
        );
        let plan = plan.get_or_insert_with(|| {
            RetryPlan::for_call(
                policy,
                rules,
                call.operation,
                call.effect,
                call.idempotency_key.is_some(),
            )
        });
        plan.next_delay(
            self,
            class,
            progress.attempts,
            deadline.map(Deadline::at),
            stats,
        )
    }

    /// The outcome of a call that failed for good: counted, and resolved
    /// through the invariants and the fallback matrix. Out of line, like
    /// [`Guard::after_failure`].
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn failed<T, E: Classify>(
        error: GuardError<E>,
        call: &Call<'_>,
        policy: &CompiledPolicy,
        rules: Option<&DependencyRules>,
        stats: &DependencyStats,
        used: Usage,
        attempts: u32,
        lost_reply: bool,
    ) -> Guarded<T, E> {
        stats.usage(used.tokens, used.cost_usd_micros);
        // As the retry plan judged it, so that "not retried because it is
        // a write" and "uncertain" agree.
        let effect = call
            .effect
            .or_else(|| rules.map(|r| r.effect_of(call.operation)))
            .unwrap_or(Effect::Read);
        let class = error.class();
        stats.failure(class);
        let failure_type = match error {
            GuardError::BreakerOpen => Some(shared::policy::FailureType::BreakerOpen),
            GuardError::BudgetExhausted(_) => None,
            _ => failure_type_of(class),
        };
        let Resolution {
            status,
            degradation,
        } = resolve_counted(policy, call.dependency, failure_type, stats);
        Guarded {
            result: Err(error),
            status,
            attempts,
            side_effect_uncertain: effect.has_side_effects() && lost_reply,
            degradation: degradation.boxed(),
        }
    }

    /// Validates a model's structured output and repairs it within the
    /// policy's bound (see [`crate::repair`]), counting each repair against
    /// `dependency` and labelling the outcome.
    pub async fn repair<T, V, R, Fut>(
        &self,
        dependency: &str,
        output: T,
        validate: V,
        repair: R,
    ) -> crate::repair::Repaired<T>
    where
        V: FnMut(&T) -> Result<(), String>,
        R: FnMut(T, String) -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let policy = self.policy();
        let stats = self.inner.recorder.dependency(dependency);
        let out = crate::repair::repair_output(
            &policy.output_repair(),
            Some(&stats),
            output,
            validate,
            repair,
        )
        .await;
        match &out {
            crate::repair::Repaired::Valid { .. } => {}
            crate::repair::Repaired::FailSafe { .. } => {
                stats.failure(shared::policy::ErrorClass::Validation);
                stats.degraded(DegradedStatus::Refused);
            }
            crate::repair::Repaired::Fallback { .. } => {
                stats.fallback(&format!("{dependency}/invalid_output"));
                stats.degraded(DegradedStatus::Degraded);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_compare_like_str_eq() {
        let names = [
            "",
            "a",
            "acme",
            "acmf",
            "model_provider",
            "model_providex",
            "xodel_provider",
            "twelve_bytes",
            "seventeen_bytes__",
            "seventeen_bytes_x",
        ];
        for a in names {
            for b in names {
                assert_eq!(super::same(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
    }
}
