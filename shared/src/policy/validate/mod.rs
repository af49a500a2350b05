//! Policy validation. The same code runs in the server (before a publish),
//! in the agent (before it applies a pushed policy) and in the browser (as
//! the engineer types), so the three can never disagree.
//!
//! Errors block a publish; warnings don't. Every finding names the path of
//! the field it is about, in the form `retry.model_provider.max_attempts`
//! (map keys and list indices joined with dots), and a stable [`Code`] that
//! the dashboard and tests match on.

mod calls;
mod dead_letters;
mod degradation;
mod header;
mod invariants;
mod workflow;

#[cfg(test)]
mod tests;

use super::{DependencyKind, Policy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Whether a finding blocks a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The policy is unsafe or inconsistent: it cannot be published.
    Error,
    /// Probably a mistake, or a known risk: published if the engineer wants.
    Warning,
}

macro_rules! codes {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $name:literal, )+) => {
        /// What a finding is about: a stable, machine-readable name that tests
        /// and the dashboard match on, rendered as snake_case on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Code {
            $( $(#[doc = $doc])+ #[serde(rename = $name)] $variant, )+
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The wire name, such as `stage_budgets_exceed_total`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)+ }
            }
        }
    };
}

codes! {
    /// A name (dependency, stage, node, source, bulkhead, trigger or
    /// invariant id) is empty or uses characters other than lower-case
    /// letters, digits, `_` and `-`. Names appear in finding paths, so a dot
    /// in one would make paths ambiguous.
    InvalidName = "invalid_name",
    /// A required text field is empty.
    EmptyField = "empty_field",
    /// Two entries in a list share a name or id.
    DuplicateName = "duplicate_name",
    /// A number is outside the range that makes sense for it.
    OutOfRange = "out_of_range",
    /// A section names a dependency the service header does not declare.
    UnknownDependency = "unknown_dependency",
    /// A dependency is used in a role its kind does not fit.
    DependencyKindMismatch = "dependency_kind_mismatch",
    /// A fallback or invariant names a component that nothing declares.
    UnknownComponent = "unknown_component",
    /// A model is named that the `models` section does not list.
    UnknownModel = "unknown_model",
    /// An agent node names a node that does not exist.
    UnknownNode = "unknown_node",
    /// A bulkhead override names a priority class that does not exist.
    UnknownPriorityClass = "unknown_priority_class",
    /// An alert rule is referenced that does not exist.
    UnknownAlert = "unknown_alert",
    /// A runbook is referenced that does not exist.
    UnknownRunbook = "unknown_runbook",
    /// The timeout budget's total is longer than the goal's timeout.
    TotalExceedsGoal = "total_exceeds_goal",
    /// The goals contradict each other.
    GoalInconsistent = "goal_inconsistent",
    /// The stage budgets add up to more than the total.
    StageBudgetsExceedTotal = "stage_budgets_exceed_total",
    /// A dependency has neither its own timeout nor a stage that bounds it.
    DependencyWithoutTimeout = "dependency_without_timeout",
    /// A timeout or queue wait is longer than the budget it sits in, so the
    /// deadline, not the setting, decides.
    TimeoutExceedsBudget = "timeout_exceeds_budget",
    /// More attempts than the configured bound.
    MaxAttemptsAboveBound = "max_attempts_above_bound",
    /// The backoff cap is below the base delay.
    BackoffCapBelowBase = "backoff_cap_below_base",
    /// Retries with no delay between them.
    NoBackoff = "no_backoff",
    /// Retries without jitter: clients that failed together retry together.
    RetryWithoutJitter = "retry_without_jitter",
    /// Retries are allowed but no error class is retried.
    RetryOnEmpty = "retry_on_empty",
    /// An error class that never succeeds on retry (auth denied, validation,
    /// insufficient evidence, policy violation, budget, permanent) is retried.
    NonRetryableErrorClass = "non_retryable_error_class",
    /// An operation with side effects is retried without an idempotency key.
    RetryWithoutIdempotencyKey = "retry_without_idempotency_key",
    /// Retries to a dependency that may have side effects, with no
    /// operations declared to say which calls are safe to repeat.
    SideEffectsUndeclared = "side_effects_undeclared",
    /// Retries are configured but no retry budget caps them.
    MissingRetryBudget = "missing_retry_budget",
    /// The retry budget lets retries add a large share of load.
    RetryBudgetHigh = "retry_budget_high",
    /// An agent node retries as a whole and a dependency it calls retries
    /// too, so attempts multiply.
    NestedRetries = "nested_retries",
    /// The worst case of all attempts and backoffs exceeds the request's
    /// total budget, so the last attempts can never run.
    RetriesExceedDeadline = "retries_exceed_deadline",
    /// A dependency that needs a circuit breaker has none.
    MissingBreaker = "missing_breaker",
    /// A breaker is forced open or closed for the whole fleet.
    BreakerForced = "breaker_forced",
    /// The slow-call threshold is not below the dependency's timeout, so no
    /// call is ever counted as slow.
    SlowCallAboveTimeout = "slow_call_above_timeout",
    /// Two allowed fallback rows cover the same component and failure.
    DuplicateFallback = "duplicate_fallback",
    /// A fallback drops grounding: it answers without authorised evidence.
    FallbackLosesGrounding = "fallback_loses_grounding",
    /// A fallback works around an authorisation check.
    FallbackBypassesAuthorization = "fallback_bypasses_authorization",
    /// A fallback performs a side effect without its approval.
    FallbackActsWithoutApproval = "fallback_acts_without_approval",
    /// A fallback replaces a component with itself.
    FallbackToItself = "fallback_to_itself",
    /// A high or regulated service can fall back to an unvalidated model.
    UnvalidatedFallbackModel = "unvalidated_fallback_model",
    /// A high or regulated service's primary model is not validated.
    UnvalidatedModel = "unvalidated_model",
    /// A fallback lowers quality but labels the answer as normal.
    SilentFallback = "silent_fallback",
    /// A degraded answer lowers quality without lowering its confidence.
    NoConfidencePenalty = "no_confidence_penalty",
    /// A degraded, queued or refused outcome has no message for the caller.
    MissingUserMessage = "missing_user_message",
    /// A burst smaller than the sustained rate.
    BurstBelowRate = "burst_below_rate",
    /// A trigger watches a cost budget that is not set.
    MissingBudget = "missing_budget",
    /// Load shedding rejects safety-critical work.
    ShedsSafetyCritical = "sheds_safety_critical",
    /// A trigger treats a more important class worse than a less important one.
    PriorityInversion = "priority_inversion",
    /// A trigger changes nothing.
    TriggerWithoutEffect = "trigger_without_effect",
    /// The structured-output repair loop is longer than its bound.
    RepairAboveBound = "repair_above_bound",
    /// Output repair falls back without naming the model.
    MissingFallbackModel = "missing_fallback_model",
    /// A required retrieval source is silently omitted when it fails.
    RequiredSourceOmitted = "required_source_omitted",
    /// A required retrieval source only degrades the answer when it fails.
    RequiredSourceDegrades = "required_source_degrades",
    /// Agent node fallbacks form a cycle.
    FallbackCycle = "fallback_cycle",
    /// A destructive agent node runs without approval.
    SideEffectWithoutApproval = "side_effect_without_approval",
    /// A high-risk side-effecting node falls back to another node rather
    /// than to a person.
    PreferHumanHandoff = "prefer_human_handoff",
    /// A cache key lacks a mandatory part.
    CacheKeyMissingPart = "cache_key_missing_part",
    /// Stale cache entries may feed high-risk decisions.
    StaleCacheForHighRisk = "stale_cache_for_high_risk",
    /// Stale entries are served without a caveat.
    StaleWithoutCaveat = "stale_without_caveat",
    /// The cache has no TTL by sensitivity.
    MissingTtl = "missing_ttl",
    /// More sensitive data is cached longer than less sensitive data.
    TtlNotDecreasing = "ttl_not_decreasing",
    /// Cache entries survive an update of their source.
    NoInvalidation = "no_invalidation",
    /// An idempotency key has no parts.
    IdempotencyKeyEmpty = "idempotency_key_empty",
    /// An idempotency key can collide across operations or requests.
    WeakIdempotencyKey = "weak_idempotency_key",
    /// A key reused with a different payload returns the first result.
    ReplayOnMismatch = "replay_on_mismatch",
    /// A fallback, retrieval rule or agent node does what an invariant forbids.
    InvariantContradicted = "invariant_contradicted",
    /// The invariants contradict each other.
    InvariantConflict = "invariant_conflict",
    /// A high or regulated service lets a dead-letter action with side
    /// effects run without an approver.
    DlqActionWithoutApproval = "dlq_action_without_approval",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Whether it blocks a publish.
    pub severity: Severity,
    /// The field it is about, such as `fallbacks.3.fallback`.
    pub path: String,
    /// What kind of problem it is.
    pub code: Code,
    /// A sentence for the engineer: what is wrong and why it matters.
    pub message: String,
}

/// Everything validation found, in the order of the document's sections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl ValidationReport {
    /// Whether anything blocks a publish.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The findings that block a publish.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The findings that don't.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }

    /// Whether there is a finding with this code at this path.
    pub fn contains(&self, code: Code, path: &str) -> bool {
        self.findings
            .iter()
            .any(|f| f.code == code && f.path == path)
    }
}

/// What validation needs to know beyond the policy itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationContext {
    /// The alert rules that exist. `None` skips the check, for callers (the
    /// agent, an offline CLI) that cannot know.
    pub known_alerts: Option<BTreeSet<String>>,
    /// The runbooks that exist. `None` skips the check.
    pub known_runbooks: Option<BTreeSet<String>>,
    /// The most attempts a retry policy may have, the first included.
    pub max_retry_attempts: u32,
    /// The most structured-output repair attempts.
    pub max_repair_attempts: u32,
}

impl ValidationContext {
    /// The default bound on retry attempts: beyond five, a retry is more
    /// likely to add to an outage than to ride one out.
    pub const DEFAULT_MAX_RETRY_ATTEMPTS: u32 = 5;
    /// The default bound on repair attempts: a model that did not fix its
    /// output in three tries will not fix it in a fourth.
    pub const DEFAULT_MAX_REPAIR_ATTEMPTS: u32 = 3;

    /// A context that checks no references and uses the default bounds.
    pub fn new() -> ValidationContext {
        ValidationContext {
            known_alerts: None,
            known_runbooks: None,
            max_retry_attempts: Self::DEFAULT_MAX_RETRY_ATTEMPTS,
            max_repair_attempts: Self::DEFAULT_MAX_REPAIR_ATTEMPTS,
        }
    }

    /// Checks alert references against these ids.
    pub fn with_alerts<I, S>(mut self, ids: I) -> ValidationContext
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.known_alerts = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// Checks runbook references against these ids.
    pub fn with_runbooks<I, S>(mut self, ids: I) -> ValidationContext
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.known_runbooks = Some(ids.into_iter().map(Into::into).collect());
        self
    }
}

impl Default for ValidationContext {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks a policy. Never panics, whatever the numbers: all arithmetic
/// saturates.
pub fn validate(policy: &Policy, context: &ValidationContext) -> ValidationReport {
    let mut checker = Checker {
        policy,
        context,
        findings: Vec::new(),
    };
    header::check(&mut checker);
    calls::check(&mut checker);
    degradation::check(&mut checker);
    workflow::check(&mut checker);
    invariants::check(&mut checker);
    dead_letters::check(&mut checker);
    ValidationReport {
        findings: checker.findings,
    }
}

/// The state of one validation run, shared by the rule modules.
pub(super) struct Checker<'a> {
    pub(super) policy: &'a Policy,
    pub(super) context: &'a ValidationContext,
    findings: Vec<Finding>,
}

impl<'a> Checker<'a> {
    pub(super) fn error(
        &mut self,
        path: impl Into<String>,
        code: Code,
        message: impl Into<String>,
    ) {
        self.push(Severity::Error, path.into(), code, message.into());
    }

    pub(super) fn warn(&mut self, path: impl Into<String>, code: Code, message: impl Into<String>) {
        self.push(Severity::Warning, path.into(), code, message.into());
    }

    fn push(&mut self, severity: Severity, path: String, code: Code, message: String) {
        self.findings.push(Finding {
            severity,
            path,
            code,
            message,
        });
    }

    /// The kind of a declared dependency.
    pub(super) fn kind_of(&self, name: &str) -> Option<DependencyKind> {
        self.policy.service.dependencies.get(name).map(|d| d.kind)
    }

    /// Reports `name` at `path` unless the header declares it; returns its
    /// kind when it does.
    pub(super) fn dependency(
        &mut self,
        path: impl Into<String>,
        name: &str,
    ) -> Option<DependencyKind> {
        let kind = self.kind_of(name);
        if kind.is_none() {
            self.error(
                path,
                Code::UnknownDependency,
                format!("`{name}` is not declared under service.dependencies"),
            );
        }
        kind
    }

    /// Reports a name that is not a plain identifier.
    pub(super) fn name(&mut self, path: impl Into<String>, what: &str, name: &str) {
        if !is_valid_name(name) {
            self.error(
                path,
                Code::InvalidName,
                format!(
                    "{what} `{name}` must be 1 to 64 lower-case letters, digits, `_` or `-`, starting with a letter or digit"
                ),
            );
        }
    }

    /// Reports a percentage above 100.
    pub(super) fn percent(&mut self, path: impl Into<String>, value: u32) {
        if value > 100 {
            self.error(
                path,
                Code::OutOfRange,
                format!("{value} is not a percentage (0–100)"),
            );
        }
    }

    /// The timeout that bounds calls to a dependency: its own, else the
    /// tightest budget of a stage that lists it.
    pub(super) fn effective_timeout(&self, dependency: &str) -> Option<u64> {
        let timeouts = self.policy.timeouts.as_ref()?;
        if let Some(&own) = timeouts.dependencies.get(dependency) {
            return Some(own);
        }
        timeouts
            .stages
            .iter()
            .filter(|s| s.dependencies.iter().any(|d| d == dependency))
            .map(|s| s.budget_ms)
            .min()
    }

    /// Whether the name is something a fallback or invariant can be about:
    /// a dependency, agent node, retrieval source, stage or model.
    pub(super) fn is_component(&self, name: &str) -> bool {
        let p = self.policy;
        p.service.dependencies.contains_key(name)
            || p.agent_nodes.contains_key(name)
            || p.retrieval
                .as_ref()
                .is_some_and(|r| r.sources.contains_key(name))
            || p.timeouts
                .as_ref()
                .is_some_and(|t| t.stages.iter().any(|s| s.name == name))
            || p.models.as_ref().is_some_and(|m| {
                m.primary.model == name || m.fallbacks.iter().any(|f| f.model == name)
            })
    }

    /// Whether a model is listed, and if so whether it is validated.
    pub(super) fn model_validated(&self, model: &str) -> Option<bool> {
        let routing = self.policy.models.as_ref()?;
        if routing.primary.model == model {
            return Some(routing.primary.validated);
        }
        routing
            .fallbacks
            .iter()
            .find(|f| f.model == model)
            .map(|f| f.validated)
    }
}

/// The wire name of an enum value, for messages: `auth_denied`, not
/// `AuthDenied`.
pub(super) fn wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::from("?"),
    }
}

/// Whether a name can be used as a key: it appears in paths between dots.
pub(super) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}
