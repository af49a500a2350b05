//! The policy compiled for enforcement.
//!
//! A [`Policy`] is a document made for people: sections that name
//! dependencies, lists to scan. The hot path must not walk it, so each
//! version is compiled once, when it arrives, into maps keyed by dependency
//! and component. A call takes an `Arc` of the compiled version when it
//! starts and keeps it to the end, so a swap never changes the rules under a
//! call in flight.

use rustc_hash::FxHashMap;
use shared::policy::{
    Admission, BreakerMode, BreakerPolicy, Bulkhead, CacheKeyPart, DependencyKind, Effect,
    ErrorClass, FailureType, FallbackRule, ForcedState, IdempotentOperation, Jitter, OutputRepair,
    Policy, PriorityClass, Prohibition, RateLimit, RepairFailure, RetryBudget, RetryPolicy,
    RiskTier, Service,
};
use shared::protocol::PolicySource;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The receiving end through which the guard sees the policy in force.
pub type PolicyReceiver = watch::Receiver<Arc<CompiledPolicy>>;

/// A channel holding `initial` as the policy in force. The sender side is
/// what the live-policy client (or a test) swaps new versions into.
pub fn policy_channel(
    initial: CompiledPolicy,
) -> (watch::Sender<Arc<CompiledPolicy>>, PolicyReceiver) {
    watch::channel(Arc::new(initial))
}

/// One bulkhead of the policy, with its name.
#[derive(Debug, Clone)]
pub struct BulkheadRule {
    /// The bulkhead's name in the policy.
    pub name: Arc<str>,
    /// Its limits.
    pub bulkhead: Bulkhead,
}

/// A must-fail-closed invariant bound to a component.
#[derive(Debug, Clone)]
pub struct FailClosedRule {
    /// The invariant's id.
    pub id: String,
    /// Which failures of the component it covers.
    pub failure: FailureType,
    /// The invariant in words, shown to the caller when it stops an action.
    pub description: String,
}

/// Everything the policy says about one dependency, gathered from the
/// sections that mention it.
#[derive(Debug, Clone, Default)]
pub struct DependencyRules {
    /// Its kind, when declared.
    pub kind: Option<DependencyKind>,
    /// Its own timeout, tighter than its stage's budget.
    pub timeout: Option<Duration>,
    /// The budget of the stage it belongs to.
    pub stage_budget: Option<Duration>,
    /// How its calls are retried.
    pub retry: Option<RetryPolicy>,
    /// Its circuit breaker.
    pub breaker: Option<BreakerPolicy>,
    /// Its call rate.
    pub requests: Option<RateLimit>,
    /// Its model tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// The bulkheads that limit its calls.
    pub bulkheads: Vec<BulkheadRule>,
}

impl DependencyRules {
    /// The effect of `operation`: as the retry policy declares it, else
    /// assumed from the dependency's kind. An unknown operation on a kind
    /// that can have side effects is treated as a write, because retrying a
    /// write by mistake is the expensive error.
    pub fn effect_of(&self, operation: &str) -> Effect {
        if let Some(effect) = self
            .retry
            .as_ref()
            .and_then(|r| r.operations.get(operation))
        {
            return *effect;
        }
        match self.kind {
            Some(kind) if !kind.may_have_side_effects() => Effect::Read,
            _ => Effect::Write,
        }
    }
}

/// One version of the policy, compiled into lookup tables.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    version: Option<u64>,
    source: PolicySource,
    policy: Arc<Policy>,
    total_budget: Option<Duration>,
    // Looked up on every call, by names the policy and the code choose:
    // a fast hasher.
    stages: FxHashMap<String, Duration>,
    // Shared, so that the guard's per-thread call handles keep their
    // dependency's rules and skip the lookup while the version stands.
    dependencies: FxHashMap<String, Arc<DependencyRules>>,
    /// Rules for any dependency the policy does not name; only the
    /// conservative default has them.
    fallback_rules: Option<Arc<DependencyRules>>,
    retry_budget: Option<RetryBudget>,
    fallbacks: HashMap<String, Vec<FallbackRule>>,
    fail_closed: HashMap<String, Vec<FailClosedRule>>,
    /// The may-degrade invariants by component: which failures, and the
    /// invariant in words.
    may_degrade: HashMap<String, Vec<(FailureType, String)>>,
    /// The kinds of prohibition the `must_not_do` invariants name.
    must_not_do: BTreeSet<Prohibition>,
    service_bulkheads: Vec<BulkheadRule>,
    idempotency: HashMap<String, IdempotentOperation>,
    cache_key: Vec<CacheKeyPart>,
}

/// Lifts each breaker override of the version in force when it ends, on
/// this process's clock, for as long as `sender` lives.
///
/// An override from an incident ("force the reranker's breaker open for
/// 30 minutes") must end on time even when the control plane is down or
/// was killed mid-incident, so the agent ends it itself: the version stays,
/// recompiled without the ended override. A newer version replaces it as
/// usual. Spawned by [`crate::client::LiveAgent::spawn`]; a service that
/// feeds [`policy_channel`] itself spawns it beside.
pub async fn lift_overrides_on_time(
    sender: std::sync::Weak<watch::Sender<Arc<CompiledPolicy>>>,
    clock: crate::clock::WallClock,
) {
    let Some(mut changes) = sender.upgrade().map(|s| s.subscribe()) else {
        return;
    };
    loop {
        let current = changes.borrow_and_update().clone();
        let Some(end) = current.next_override_end_ms() else {
            // Nothing to lift until another version arrives; ends when the
            // sender is dropped.
            if changes.changed().await.is_err() {
                return;
            }
            continue;
        };
        let wait = end.saturating_sub(clock.now_ms());
        if wait > 0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(sender) = sender.upgrade() else {
            return;
        };
        let now = clock.now_ms();
        // Only the version that was looked at is lifted: one that arrived
        // meanwhile is looked at afresh on the next turn.
        let lifted = sender.send_if_modified(|in_force| {
            if !Arc::ptr_eq(in_force, &current) {
                return false;
            }
            match current.lift_overrides_ended_by(now) {
                Some(lifted) => {
                    tracing::info!(version = ?current.version(), "a breaker override ended; lifted");
                    *in_force = Arc::new(lifted);
                    true
                }
                None => false,
            }
        });
        // Nothing to lift (another version is in force, or this one's end
        // moved): wait for the next change rather than look again at once.
        if !lifted && changes.changed().await.is_err() {
            return;
        }
    }
}

impl CompiledPolicy {
    /// The earliest end of a breaker override in this version, in Unix
    /// milliseconds.
    pub fn next_override_end_ms(&self) -> Option<i64> {
        self.policy
            .breakers
            .values()
            .filter(|b| b.forced != ForcedState::None)
            .filter_map(|b| b.forced_until_ms)
            .min()
    }

    /// This version with every breaker override that ended by `now_ms`
    /// lifted, or `None` when none has.
    pub fn lift_overrides_ended_by(&self, now_ms: i64) -> Option<CompiledPolicy> {
        let mut policy = (*self.policy).clone();
        let mut lifted = false;
        for b in policy.breakers.values_mut() {
            if b.forced != ForcedState::None && b.forced_until_ms.is_some_and(|t| t <= now_ms) {
                b.forced = ForcedState::None;
                b.forced_until_ms = None;
                lifted = true;
            }
        }
        lifted.then(|| CompiledPolicy::compile(policy, self.version, self.source))
    }

    /// Compiles `policy`, published as `version` and obtained from `source`.
    pub fn compile(policy: Policy, version: Option<u64>, source: PolicySource) -> CompiledPolicy {
        let mut dependencies: FxHashMap<String, DependencyRules> = FxHashMap::default();
        for (name, dep) in &policy.service.dependencies {
            dependencies.entry(name.clone()).or_default().kind = Some(dep.kind);
        }
        let mut stages = FxHashMap::default();
        let mut total_budget = None;
        if let Some(t) = &policy.timeouts {
            total_budget = Some(Duration::from_millis(t.total_ms));
            for stage in &t.stages {
                let budget = Duration::from_millis(stage.budget_ms);
                stages.insert(stage.name.clone(), budget);
                for dep in &stage.dependencies {
                    let rules = dependencies.entry(dep.clone()).or_default();
                    // A dependency listed in two stages gets the tighter budget.
                    rules.stage_budget = Some(rules.stage_budget.map_or(budget, |b| b.min(budget)));
                }
            }
            for (dep, ms) in &t.dependencies {
                dependencies.entry(dep.clone()).or_default().timeout =
                    Some(Duration::from_millis(*ms));
            }
        }
        for (dep, retry) in &policy.retry {
            dependencies.entry(dep.clone()).or_default().retry = Some(retry.clone());
        }
        for (dep, breaker) in &policy.breakers {
            dependencies.entry(dep.clone()).or_default().breaker = Some(breaker.clone());
        }
        if let Some(limits) = &policy.limits {
            for (dep, limit) in &limits.dependencies {
                let rules = dependencies.entry(dep.clone()).or_default();
                rules.requests = limit.requests.clone();
                rules.tokens_per_minute = limit.tokens_per_minute;
            }
        }
        let mut service_bulkheads = Vec::new();
        for (name, bulkhead) in &policy.bulkheads {
            let rule = BulkheadRule {
                name: Arc::from(name.as_str()),
                bulkhead: bulkhead.clone(),
            };
            match &bulkhead.dependency {
                Some(dep) => dependencies
                    .entry(dep.clone())
                    .or_default()
                    .bulkheads
                    .push(rule),
                None => service_bulkheads.push(rule),
            }
        }
        let mut fallbacks: HashMap<String, Vec<FallbackRule>> = HashMap::new();
        for rule in &policy.fallbacks {
            fallbacks
                .entry(rule.component.clone())
                .or_default()
                .push(rule.clone());
        }
        let mut fail_closed: HashMap<String, Vec<FailClosedRule>> = HashMap::new();
        if let Some(inv) = &policy.invariants {
            for fc in &inv.must_fail_closed {
                if let Some(component) = &fc.component {
                    fail_closed
                        .entry(component.clone())
                        .or_default()
                        .push(FailClosedRule {
                            id: fc.id.clone(),
                            failure: fc.failure,
                            description: fc.description.clone(),
                        });
                }
            }
        }
        let mut may_degrade: HashMap<String, Vec<(FailureType, String)>> = HashMap::new();
        let mut must_not_do = BTreeSet::new();
        if let Some(inv) = &policy.invariants {
            for d in &inv.may_degrade {
                if let Some(component) = &d.component {
                    may_degrade
                        .entry(component.clone())
                        .or_default()
                        .push((d.failure, d.description.clone()));
                }
            }
            must_not_do.extend(inv.must_not_do.iter().map(|m| m.kind));
        }
        // A retrieval source that fails closed (or may degrade) speaks for
        // its dependency too: the invariant names the source, the call
        // names the dependency.
        if let Some(retrieval) = &policy.retrieval {
            for (source, req) in &retrieval.sources {
                let Some(dep) = &req.dependency else { continue };
                if let Some(rules) = fail_closed.get(source).cloned() {
                    fail_closed.entry(dep.clone()).or_default().extend(rules);
                }
                if let Some(entries) = may_degrade.get(source).cloned() {
                    may_degrade.entry(dep.clone()).or_default().extend(entries);
                }
            }
        }
        let idempotency = policy
            .idempotency
            .as_ref()
            .map(|i| i.operations.clone().into_iter().collect())
            .unwrap_or_default();
        // The mandatory parts are required whatever the policy lists: a key
        // without the tenant or security context can leak answers across them.
        let mut key: BTreeSet<CacheKeyPart> = CacheKeyPart::MANDATORY.into_iter().collect();
        if let Some(cache) = &policy.cache {
            key.extend(cache.key.iter().copied());
        }
        CompiledPolicy {
            version,
            source,
            total_budget,
            stages,
            dependencies: dependencies
                .into_iter()
                .map(|(name, rules)| (name, Arc::new(rules)))
                .collect(),
            fallback_rules: None,
            retry_budget: policy.retry_budget.clone(),
            fallbacks,
            fail_closed,
            may_degrade,
            must_not_do,
            service_bulkheads,
            idempotency,
            cache_key: key.into_iter().collect(),
            policy: Arc::new(policy),
        }
    }

    /// The conservative default, enforced when neither the control plane nor
    /// a last-known-good copy on disk is available. It is deliberately
    /// cautious, because nobody has said what the service can afford:
    ///
    /// * requests get a 30 s deadline, and every dependency call at most 10 s;
    /// * reads are retried once more (2 attempts) after 100–1000 ms of full
    ///   jitter, only on timeout, connection, unavailable, overloaded and
    ///   rate-limited errors; writes are never retried without a key;
    /// * retries are capped at 10 % of first attempts plus 1 per second;
    /// * every dependency has a breaker that opens after 5 failures in a row
    ///   and probes once after 30 s;
    /// * there are no fallbacks, so a failure that would need one fails safe
    ///   (`refused`), and no rate limits, bulkheads or budgets, because
    ///   inventing a capacity limit could refuse legitimate work.
    pub fn conservative_default(service: &str, environment: &str) -> CompiledPolicy {
        let policy = Policy::new(Service {
            name: service.to_owned(),
            environment: environment.to_owned(),
            owner: String::from("unknown"),
            risk_tier: RiskTier::High,
            description: Some(String::from(
                "Ballast agent's built-in conservative default",
            )),
            dependencies: Default::default(),
        });
        let mut compiled = CompiledPolicy::compile(policy, None, PolicySource::Default);
        compiled.total_budget = Some(Duration::from_secs(30));
        compiled.retry_budget = Some(RetryBudget {
            ratio_percent: 10,
            min_per_second: 1,
        });
        compiled.fallback_rules = Some(Arc::new(DependencyRules {
            kind: None,
            timeout: Some(Duration::from_secs(10)),
            stage_budget: None,
            retry: Some(RetryPolicy {
                max_attempts: 2,
                base_delay_ms: 100,
                max_delay_ms: 1_000,
                jitter: Jitter::Full,
                retry_on: vec![
                    ErrorClass::Timeout,
                    ErrorClass::Connection,
                    ErrorClass::Unavailable,
                    ErrorClass::Overloaded,
                    ErrorClass::RateLimited,
                ],
                operations: Default::default(),
            }),
            breaker: Some(BreakerPolicy {
                mode: BreakerMode::Consecutive { failures: 5 },
                slow_call: None,
                cooldown_ms: 30_000,
                half_open_probes: 1,
                forced: ForcedState::None,
                forced_until_ms: None,
                forced_reason: None,
                alert: None,
                runbook: None,
            }),
            requests: None,
            tokens_per_minute: None,
            bulkheads: Vec::new(),
        }));
        compiled
    }

    /// The published version, if the policy came from the control plane.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Where the policy came from.
    pub fn source(&self) -> PolicySource {
        self.source
    }

    /// The document itself.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The whole request's time budget.
    pub fn total_budget(&self) -> Option<Duration> {
        self.total_budget
    }

    /// A stage's budget.
    pub fn stage_budget(&self, stage: &str) -> Option<Duration> {
        self.stages.get(stage).copied()
    }

    /// The rules for one dependency, if the policy has any.
    pub fn dependency(&self, name: &str) -> Option<&DependencyRules> {
        self.dependencies
            .get(name)
            .or(self.fallback_rules.as_ref())
            .map(|r| &**r)
    }

    /// [`CompiledPolicy::dependency`], shared: the guard keeps it with a
    /// call's handles for as long as this version is in force.
    pub(crate) fn dependency_shared(&self, name: &str) -> Option<Arc<DependencyRules>> {
        self.dependencies
            .get(name)
            .or(self.fallback_rules.as_ref())
            .cloned()
    }

    /// The service-wide retry budget.
    pub fn retry_budget(&self) -> Option<&RetryBudget> {
        self.retry_budget.as_ref()
    }

    /// The fallback matrix rows for `component`, in the policy's order.
    pub fn fallbacks(&self, component: &str) -> &[FallbackRule] {
        self.fallbacks.get(component).map_or(&[], Vec::as_slice)
    }

    /// The must-fail-closed invariants that cover `failure` of `component`.
    pub fn fail_closed(
        &self,
        component: &str,
        failure: FailureType,
    ) -> impl Iterator<Item = &FailClosedRule> {
        self.fail_closed
            .get(component)
            .into_iter()
            .flatten()
            .filter(move |r| r.failure.overlaps(failure))
    }

    /// The `may_degrade` invariant that covers a failure of `component` of
    /// type `failure`, in words, if one does. Such a failure may be
    /// answered with a degraded result, and the invariant promises it is
    /// labelled: an answer given despite it is never labelled normal, and
    /// tells the caller. An entry covers a failure when it is for `any`
    /// failure or for this one. The list is not exhaustive (the example
    /// policies name a few components each), so a failure it does not
    /// cover is left to the rest of the policy.
    pub fn may_degrade(&self, component: &str, failure: Option<FailureType>) -> Option<&str> {
        self.may_degrade
            .get(component)?
            .iter()
            .find(|(f, _)| *f == FailureType::Any || Some(*f) == failure)
            .map(|(_, description)| description.as_str())
    }

    /// Whether a `must_not_do` invariant of kind `prohibition` is in force.
    pub fn forbids(&self, prohibition: Prohibition) -> bool {
        self.must_not_do.contains(&prohibition)
    }

    /// The bulkheads on the service's own requests.
    pub fn service_bulkheads(&self) -> &[BulkheadRule] {
        &self.service_bulkheads
    }

    /// The admission section.
    pub fn admission(&self) -> Option<&Admission> {
        self.policy.admission.as_ref()
    }

    /// The class assumed for a request that names none.
    pub fn default_class(&self) -> PriorityClass {
        self.admission()
            .map_or(PriorityClass::Interactive, |a| a.default_class)
    }

    /// The service's request rate per tenant.
    pub fn request_rate(&self) -> Option<&RateLimit> {
        self.policy.limits.as_ref()?.requests.as_ref()
    }

    /// Model tokens per minute across the service.
    pub fn tokens_per_minute(&self) -> Option<u64> {
        self.policy.limits.as_ref()?.tokens_per_minute
    }

    /// Spend per tenant per day, in micro-dollars.
    pub fn cost_per_tenant_per_day(&self) -> Option<u64> {
        self.policy
            .limits
            .as_ref()?
            .cost_per_tenant_per_day_usd_micros
    }

    /// The structured-output repair rule; without one, one repair then fail
    /// safe, as the domain reference advises.
    pub fn output_repair(&self) -> OutputRepair {
        self.policy.output_repair.clone().unwrap_or(OutputRepair {
            max_attempts: 1,
            on_failure: RepairFailure::FailSafe,
            fallback_model: None,
        })
    }

    /// The idempotency rule of an operation.
    pub fn idempotent_operation(&self, operation: &str) -> Option<&IdempotentOperation> {
        self.idempotency.get(operation)
    }

    /// The parts every cache key must have: the mandatory six plus whatever
    /// the policy adds.
    pub fn cache_key_parts(&self) -> &[CacheKeyPart] {
        &self.cache_key
    }
}
