//! What a call is and what it ends with, in the terms every pattern
//! shares: the [`Call`] described to the guard, the [`Usage`] it reserves
//! and reports, and the [`Classify`] trait that sorts its errors into the
//! policy's classes. They live apart from the guard so that the pattern
//! folders, which the guard composes, can use them without depending on
//! it.

use crate::deadline::Deadline;
use shared::policy::{Effect, ErrorClass, PartitionKey, PriorityClass, RiskTier};
use std::fmt;

/// Model tokens and spend of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Model tokens.
    pub tokens: u64,
    /// Spend in micro-dollars.
    pub cost_usd_micros: u64,
}

/// Sorts a dependency's error into the policy's error classes, which decide
/// whether it is retried, whether it trips the breaker, and which fallback
/// row applies.
pub trait Classify {
    /// The error's class.
    fn class(&self) -> ErrorClass;
}

impl Classify for ErrorClass {
    fn class(&self) -> ErrorClass {
        *self
    }
}

/// A ready-made classified error for callers without their own type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyError {
    /// The class.
    pub class: ErrorClass,
    /// What happened, without secrets.
    pub message: String,
}

impl DependencyError {
    /// An error of `class` saying `message`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> DependencyError {
        DependencyError {
            class,
            message: message.into(),
        }
    }
}

impl Classify for DependencyError {
    fn class(&self) -> ErrorClass {
        self.class
    }
}

impl fmt::Display for DependencyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.class, self.message)
    }
}

impl std::error::Error for DependencyError {}

/// One call to describe to the guard: which dependency and operation, and
/// what the request knows about itself.
#[derive(Debug, Clone, Default)]
pub struct Call<'a> {
    pub(crate) dependency: &'a str,
    pub(crate) operation: &'a str,
    pub(crate) deadline: Option<Deadline>,
    pub(crate) stage: Option<&'a str>,
    pub(crate) tenant: Option<&'a str>,
    pub(crate) priority: Option<PriorityClass>,
    pub(crate) tool: Option<&'a str>,
    pub(crate) model: Option<&'a str>,
    pub(crate) queue: Option<&'a str>,
    pub(crate) idempotency_key: Option<&'a str>,
    pub(crate) effect: Option<Effect>,
    pub(crate) estimate: Usage,
    pub(crate) risk: Option<RiskTier>,
    pub(crate) feature: Option<&'a str>,
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
    /// The risk of the decision the answer feeds. Absent, the service's
    /// risk tier: a fallback model or a cached answer is chosen as if the
    /// request were as risky as the service (see [`crate::routing`]).
    pub fn risk(mut self, risk: RiskTier) -> Self {
        self.risk = Some(risk);
        self
    }
    /// The feature the answer serves, such as `summary`: a fallback model
    /// that serves only some features serves only those.
    pub fn feature(mut self, feature: &'a str) -> Self {
        self.feature = Some(feature);
        self
    }
    /// What model routing needs to know about the call.
    pub(crate) fn model_request(&self) -> crate::routing::ModelRequest<'a> {
        crate::routing::ModelRequest {
            risk: self.risk,
            feature: self.feature,
        }
    }

    /// The dependency called, as named to [`Call::new`].
    pub(crate) fn dependency_name(&self) -> &'a str {
        self.dependency
    }

    /// The call's value of a bulkhead's partition key; `_` when it has
    /// none. Without a tool name the operation is the tool.
    pub(crate) fn partition(&self, key: PartitionKey) -> &str {
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
