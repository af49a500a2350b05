//! What a request tells the tower layers, and how their outcomes are
//! classified.
//!
//! The plain async API is told about a call through [`crate::Call`]. A tower
//! request carries the same facts itself: [`GuardedRequest`] reads them, and
//! for `http::Request` they ride in its extensions as a [`CallSpec`]. One
//! [`CallRecord`] per call, attached by the outermost layer, is shared by
//! every layer and attempt below it: it carries the usage the dependency
//! reports, the class of the last failure, and who counts the call, so that
//! a stack of layers records exactly what one [`crate::Guard::call`] would.

use crate::call::{Classify, Usage};
use crate::deadline::Deadline;
use crate::telemetry::DependencyStats;
use shared::policy::{Effect, ErrorClass, PartitionKey, PriorityClass};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use tokio::time::Instant;

/// The dependency name layers use for a request that names none. No policy
/// names it, so only the conservative default's catch-all rules apply.
pub const UNNAMED_DEPENDENCY: &str = "_unnamed";

/// The facts about one outgoing call that the layers need, carried in an
/// `http::Request`'s extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallSpec {
    /// The dependency called.
    pub dependency: String,
    /// The operation; also the partition value of bulkheads per tool when
    /// no tool is named.
    pub operation: String,
    /// The tenant: partitions bulkheads and is charged the cost.
    pub tenant: Option<String>,
    /// The tool, for bulkheads partitioned by tool.
    pub tool: Option<String>,
    /// The model, for bulkheads partitioned by model.
    pub model: Option<String>,
    /// The queue, for bulkheads partitioned by queue.
    pub queue: Option<String>,
    /// The priority class, for bulkheads partitioned by priority.
    pub priority: Option<PriorityClass>,
    /// The idempotency key: without one a side effect is never retried.
    pub idempotency_key: Option<String>,
    /// The operation's effect, overriding what the policy says.
    pub effect: Option<Effect>,
    /// The usage reserved before the call.
    pub estimate: Usage,
}

impl CallSpec {
    /// A call of `operation` on `dependency`.
    pub fn new(dependency: impl Into<String>, operation: impl Into<String>) -> CallSpec {
        CallSpec {
            dependency: dependency.into(),
            operation: operation.into(),
            ..CallSpec::default()
        }
    }
    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    /// Sets the effect.
    pub fn effect(mut self, effect: Effect) -> Self {
        self.effect = Some(effect);
        self
    }
    /// Sets the usage estimate.
    pub fn estimate(mut self, usage: Usage) -> Self {
        self.estimate = usage;
        self
    }

    fn partition(&self, key: PartitionKey) -> Option<&str> {
        match key {
            PartitionKey::Tenant => self.tenant.as_deref(),
            PartitionKey::Tool => self.tool.as_deref().or(Some(self.operation.as_str())),
            PartitionKey::Model => self.model.as_deref(),
            PartitionKey::Queue => self.queue.as_deref(),
            PartitionKey::Priority => self.priority.map(PriorityClass::as_str),
        }
    }
}

#[derive(Debug, Default)]
struct RecordInner {
    tokens: AtomicU64,
    cost: AtomicU64,
    usage_reported: AtomicBool,
    latency_recorded: AtomicBool,
    /// The last classified failure's position in `ErrorClass::ALL` (its
    /// declaration order, so its discriminant) + 1; 0 for none.
    class: AtomicU8,
}

/// The shared record of one call as it passes through the layers and its
/// attempts. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    inner: Arc<RecordInner>,
}

impl CallRecord {
    /// An empty record.
    pub fn new() -> CallRecord {
        CallRecord::default()
    }

    /// Reports what an attempt actually used, to settle the reservations
    /// made from the estimate. Without a report the estimate stands.
    pub fn record_usage(&self, usage: Usage) {
        let i = &self.inner;
        i.tokens.fetch_add(usage.tokens, Ordering::Relaxed);
        i.cost.fetch_add(usage.cost_usd_micros, Ordering::Relaxed);
        i.usage_reported.store(true, Ordering::Relaxed);
    }

    /// The usage reported so far, if any was.
    pub fn usage(&self) -> Option<Usage> {
        let i = &self.inner;
        i.usage_reported.load(Ordering::Relaxed).then(|| Usage {
            tokens: i.tokens.load(Ordering::Relaxed),
            cost_usd_micros: i.cost.load(Ordering::Relaxed),
        })
    }

    /// Notes the classified outcome of the latest attempt or refusal
    /// (`None` for a success), so that the layer counting the call counts
    /// it under its class even when all it sees is a boxed error or a
    /// response.
    pub fn set_outcome(&self, class: Option<ErrorClass>) {
        let n = class.map_or(0, |class| class as u8 + 1);
        self.inner.class.store(n, Ordering::Relaxed);
    }

    /// The class of the latest outcome noted, `None` for a success.
    pub fn class(&self) -> Option<ErrorClass> {
        match self.inner.class.load(Ordering::Relaxed) {
            0 => None,
            n => ErrorClass::ALL.get(usize::from(n) - 1).copied(),
        }
    }
}

/// What the layers read from (and write into) a request. Every method has
/// a default, so a request type implements only what it knows.
pub trait GuardedRequest {
    /// The request's deadline.
    fn deadline(&self) -> Option<Deadline> {
        None
    }
    /// The tenant.
    fn tenant(&self) -> Option<&str> {
        None
    }
    /// Stores the attempt's deadline so that an inner layer (such as
    /// [`crate::deadline::PropagateDeadlineLayer`]) can send it on.
    fn set_attempt_deadline(&mut self, _deadline: Deadline) {}
    /// The dependency called; absent, the layer's own or
    /// [`UNNAMED_DEPENDENCY`].
    fn dependency(&self) -> Option<&str> {
        None
    }
    /// The operation, which decides its effect under the policy.
    fn operation(&self) -> Option<&str> {
        None
    }
    /// The request's value of a bulkhead's partition key.
    fn partition(&self, _key: PartitionKey) -> Option<&str> {
        None
    }
    /// The idempotency key: without one a side effect is never retried.
    fn idempotency_key(&self) -> Option<&str> {
        None
    }
    /// The operation's effect, overriding what the policy says.
    fn effect(&self) -> Option<Effect> {
        None
    }
    /// The usage to reserve before the call.
    fn estimate(&self) -> Usage {
        Usage::default()
    }
    /// The call's shared record, once a layer has attached one.
    fn call_record(&self) -> Option<&CallRecord> {
        None
    }
    /// Attaches the call's shared record. A request type that cannot carry
    /// one leaves the call-level counters (calls, successes, failures) to
    /// nobody, rather than to every layer at once.
    fn attach_call_record(&mut self, _record: CallRecord) {}
}

impl<B> GuardedRequest for http::Request<B> {
    fn deadline(&self) -> Option<Deadline> {
        self.extensions().get::<Deadline>().copied()
    }
    fn tenant(&self) -> Option<&str> {
        self.extensions().get::<CallSpec>()?.tenant.as_deref()
    }
    fn set_attempt_deadline(&mut self, deadline: Deadline) {
        self.extensions_mut().insert(deadline);
    }
    fn dependency(&self) -> Option<&str> {
        Some(self.extensions().get::<CallSpec>()?.dependency.as_str())
    }
    fn operation(&self) -> Option<&str> {
        Some(self.extensions().get::<CallSpec>()?.operation.as_str())
    }
    fn partition(&self, key: PartitionKey) -> Option<&str> {
        self.extensions().get::<CallSpec>()?.partition(key)
    }
    fn idempotency_key(&self) -> Option<&str> {
        self.extensions()
            .get::<CallSpec>()?
            .idempotency_key
            .as_deref()
    }
    fn effect(&self) -> Option<Effect> {
        self.extensions().get::<CallSpec>()?.effect
    }
    fn estimate(&self) -> Usage {
        self.extensions()
            .get::<CallSpec>()
            .map(|s| s.estimate)
            .unwrap_or_default()
    }
    fn call_record(&self) -> Option<&CallRecord> {
        self.extensions().get::<CallRecord>()
    }
    fn attach_call_record(&mut self, record: CallRecord) {
        self.extensions_mut().insert(record);
    }
}

/// Attaches a fresh record to `req` unless an outer layer already did;
/// returns it when this layer is the one that attached it, and so the one
/// that counts the call.
pub(crate) fn claim_call<R: GuardedRequest>(req: &mut R) -> Option<CallRecord> {
    if req.call_record().is_some() {
        return None;
    }
    req.attach_call_record(CallRecord::new());
    req.call_record().cloned()
}

/// The call-level counters of a call, kept by the layer that attached its
/// record: one call, one success or failure, and the latency when no
/// retry layer timed the attempts, exactly as [`crate::Guard::call`]
/// counts them.
pub(crate) struct CallCount {
    stats: Arc<DependencyStats>,
    record: CallRecord,
    began: Instant,
}

impl CallCount {
    /// Counts the call if this layer is the first to see it.
    pub(crate) fn begin<R: GuardedRequest>(
        req: &mut R,
        stats: &Arc<DependencyStats>,
    ) -> Option<CallCount> {
        let record = claim_call(req)?;
        stats.call();
        stats.attempt_started();
        Some(CallCount {
            stats: stats.clone(),
            record,
            began: Instant::now(),
        })
    }

    /// Counts the outcome: the class an inner layer noted, else a success
    /// for `Ok` and a permanent failure for an unclassified error.
    pub(crate) fn finish(self, ok: bool) {
        if !self.record.inner.latency_recorded.load(Ordering::Relaxed) {
            self.stats.latency(self.began.elapsed());
        }
        match (ok, self.record.class()) {
            (true, None) => self.stats.success(),
            (_, Some(class)) => self.stats.failure(class),
            (false, None) => self.stats.failure(ErrorClass::Permanent),
        }
    }
}

impl Drop for CallCount {
    fn drop(&mut self) {
        self.stats.attempt_ended();
    }
}

impl CallRecord {
    /// Notes that attempt latencies are counted by a retry layer.
    pub(crate) fn attempts_timed(&self) {
        self.inner.latency_recorded.store(true, Ordering::Relaxed);
    }
}

/// Sorts the outcome of a call (its response as well as its error) into the
/// policy's error classes; `None` is a success.
pub trait Classifier<T, E> {
    /// The class of the failure, or `None` if the call succeeded.
    fn classify(&self, result: &Result<T, E>) -> Option<ErrorClass>;
}

/// Every response is a success; errors are classed by their [`Classify`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ByError;

impl<T, E: Classify> Classifier<T, E> for ByError {
    fn classify(&self, result: &Result<T, E>) -> Option<ErrorClass> {
        result.as_ref().err().map(Classify::class)
    }
}

/// Classes HTTP responses by status as well: 408 and 504 are timeouts, 429
/// rate limited, 503 unavailable, other 5xx unavailable, 401 and 403 denied,
/// other 4xx validation errors. Errors are classed by their [`Classify`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpStatus;

impl<B, E: Classify> Classifier<http::Response<B>, E> for HttpStatus {
    fn classify(&self, result: &Result<http::Response<B>, E>) -> Option<ErrorClass> {
        let status = match result {
            Ok(r) => r.status().as_u16(),
            Err(e) => return Some(e.class()),
        };
        match status {
            408 | 504 => Some(ErrorClass::Timeout),
            429 => Some(ErrorClass::RateLimited),
            401 | 403 => Some(ErrorClass::AuthDenied),
            500..=599 => Some(ErrorClass::Unavailable),
            400..=499 => Some(ErrorClass::Validation),
            _ => None,
        }
    }
}

/// The dependency a request names, else the layer's, else
/// [`UNNAMED_DEPENDENCY`].
pub(crate) fn dependency_of<'a, R: GuardedRequest>(req: &'a R, layer: Option<&'a str>) -> &'a str {
    req.dependency().or(layer).unwrap_or(UNNAMED_DEPENDENCY)
}

/// A boxed error, as tower's own middleware (and this crate's layers)
/// return it, is classed by what it turns out to be: the refusals of this
/// crate's layers and [`crate::DependencyError`] by their own class, an
/// expired deadline as a timeout, anything else as permanent, since an
/// error nobody classified must not be retried.
impl Classify for Box<dyn std::error::Error + Send + Sync> {
    fn class(&self) -> ErrorClass {
        let e = &**self;
        if let Some(e) = e.downcast_ref::<crate::DependencyError>() {
            e.class()
        } else if e.is::<crate::deadline::Expired>() {
            ErrorClass::Timeout
        } else if let Some(e) = e.downcast_ref::<crate::breaker::BreakerOpen>() {
            e.class()
        } else if let Some(e) = e.downcast_ref::<crate::bulkhead::BulkheadRejected>() {
            e.class()
        } else if let Some(e) = e.downcast_ref::<crate::rate_limit::RateLimited>() {
            e.class()
        } else if let Some(e) = e.downcast_ref::<crate::rate_limit::BudgetExhausted>() {
            e.class()
        } else {
            ErrorClass::Permanent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_the_policy_classes() {
        let class = |status: u16| {
            let r: Result<_, crate::DependencyError> =
                Ok(http::Response::builder().status(status).body(()).unwrap());
            HttpStatus.classify(&r)
        };
        assert_eq!(class(200), None);
        assert_eq!(class(429), Some(ErrorClass::RateLimited));
        assert_eq!(class(503), Some(ErrorClass::Unavailable));
        assert_eq!(class(504), Some(ErrorClass::Timeout));
        assert_eq!(class(403), Some(ErrorClass::AuthDenied));
        assert_eq!(class(422), Some(ErrorClass::Validation));
    }

    #[test]
    fn boxed_errors_keep_their_class_and_unknown_ones_are_never_retried() {
        let boxed = |e: Box<dyn std::error::Error + Send + Sync>| e.class();
        assert_eq!(
            boxed(Box::new(crate::DependencyError::new(
                ErrorClass::Connection,
                "reset"
            ))),
            ErrorClass::Connection
        );
        assert_eq!(
            boxed(Box::new(crate::deadline::Expired::new())),
            ErrorClass::Timeout
        );
        assert_eq!(
            boxed(Box::new(crate::breaker::BreakerOpen::new())),
            ErrorClass::Unavailable
        );
        assert_eq!(boxed("something else".into()), ErrorClass::Permanent);
    }

    #[test]
    fn a_record_notes_the_latest_outcome() {
        let r = CallRecord::new();
        assert_eq!(r.class(), None);
        for class in ErrorClass::ALL {
            r.set_outcome(Some(class));
            assert_eq!(r.class(), Some(class));
        }
        r.set_outcome(None);
        assert_eq!(r.class(), None);
        assert_eq!(r.usage(), None);
    }
}
