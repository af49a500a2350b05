//! Admission control and load shedding: whether a request entering the
//! service is served normally, degraded, queued or shed, by the policy's
//! triggers (queue depth, a dependency's p95, an open breaker, a tenant's
//! spend near its limit), then the per-tenant request rate and the
//! service's own bulkheads.
//!
//! It decides on the shared [`Enforcement`] alone: the signals are read
//! from its recorder, breakers, limiters and reported queue depths, and a
//! request's slots are taken in its bulkheads. [`crate::Guard`] offers it
//! as `guard.admit(..)` through its state.

use crate::bulkhead::{BulkheadRejection, Slots};
use crate::call::Call;
use crate::compiled::CompiledPolicy;
use crate::deadline::Deadline;
use crate::state::{Enforcement, SERVICE_COMPONENT};
use crate::telemetry::DependencyStats;
use shared::policy::{
    AdmissionMode, DegradedStatus, PriorityClass, REQUESTS_COMPONENT, SafetyViolation, Signal,
};
use shared::protocol::BreakerState;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

/// A request admitted by [`Enforcement::admit`]. It holds the request's slots in
/// the service's bulkheads until dropped.
///
/// Call [`Admitted::finish`] with the status the caller got: that one
/// record per request (its end-to-end latency and final status) is what the
/// policy's objectives are measured on. A request dropped without it is in
/// no objective, because nothing says whether it was answered.
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
    record: RequestRecord,
    _slots: Slots,
}

impl Admitted {
    /// Records how the request ended: its status (the worst any step
    /// earned) and, unless refused, its latency since admission. Frees the
    /// request's bulkhead slots.
    pub fn finish(self, status: DegradedStatus) {
        self.record.end(status);
    }
}

/// What admission decided: mode, class, message, trigger, deadline, slots.
type Decision = (
    AdmissionMode,
    PriorityClass,
    Option<String>,
    Option<String>,
    Option<Deadline>,
    Slots,
);

/// The start of one request's record under [`REQUESTS_COMPONENT`].
#[derive(Debug)]
struct RequestRecord {
    stats: Arc<DependencyStats>,
    began: Instant,
}

impl RequestRecord {
    fn end(&self, status: DegradedStatus) {
        self.stats.call();
        // A refusal is the availability objective's business; timing it
        // would count a fast "no" as a fast answer.
        if status != DegradedStatus::Refused {
            self.stats.latency(self.began.elapsed());
            self.stats.success();
        }
        self.stats.degraded(status);
    }
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

/// A request entering the service, for [`Enforcement::admit`].
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

impl Enforcement {
    /// Whether a trigger's `signal` fires now, read from the state: the
    /// reported queue depths (or the bulkheads' own queue), a dependency's
    /// p95, its breaker, the tenant's spend.
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

    /// Counts a violation of a safety goal (an unauthorised retrieval, an
    /// unapproved high-risk action, a duplicate side effect, an answer
    /// without evidence) that the service detected. The control plane fires
    /// the matching safety objective's alert on the first one.
    pub fn report_violation(&self, violation: SafetyViolation) {
        self.inner
            .recorder
            .dependency(&violation.component())
            .call();
    }

    /// Admits (or refuses) a request entering the service. A refusal is
    /// recorded as the request's outcome; an admitted request records its
    /// own with [`Admitted::finish`].
    pub async fn admit(&self, request: Request<'_>) -> Result<Admitted, Refusal> {
        let record = RequestRecord {
            stats: self.inner.recorder.dependency(REQUESTS_COMPONENT),
            began: Instant::now(),
        };
        match self.decide(request).await {
            Ok((mode, priority, user_message, trigger, deadline, slots)) => Ok(Admitted {
                mode,
                priority,
                user_message,
                trigger,
                deadline,
                record,
                _slots: slots,
            }),
            Err(refusal) => {
                record.end(DegradedStatus::Refused);
                Err(refusal)
            }
        }
    }

    /// The admission decision, without the request's record.
    async fn decide(&self, request: Request<'_>) -> Result<Decision, Refusal> {
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
        let user_message = if mode == AdmissionMode::Normal {
            None
        } else {
            user_message
        };
        Ok((mode, priority, user_message, trigger_id, deadline, slots))
    }
}
