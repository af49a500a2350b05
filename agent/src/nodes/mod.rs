//! Agent workflow nodes: one node of a run, executed under its policy in
//! the `agent_nodes` section and the invariants.
//!
//! Before a node runs, two holds apply. A node that needs an approval
//! (`requires_approval`, or any destructive node while a `must_not_do` of
//! kind `act_without_approval` is in force) does not run without one. While
//! the service is degraded, a node set to `hold` in degraded mode does not
//! run, and neither does a destructive node while
//! `destructive_action_in_degraded_mode` is forbidden: its evidence may be
//! incomplete. A held node is `paused`; nothing was done.
//!
//! Each attempt takes a step from the run's [`StepBudget`]. A failed
//! attempt is retried as the node's `retry` says (only the classes it
//! lists, at most its attempts, with its backoff), and a node with side
//! effects only under an idempotency key. When the node has failed for
//! good:
//!
//! 1. a must-fail-closed invariant on it stops the run: no fallback node;
//! 2. else its `fallback_node` runs instead, under that node's own policy
//!    (never a node already tried in this chain);
//! 3. else, when a node of the chain hands its failures to a person, the
//!    run is handed over (`paused`);
//! 4. else, when the node is not required for completion, the run goes on
//!    without it, its answer `partial`;
//! 5. else the run fails safe (`refused`).
//!
//! A node the policy does not name runs once and, failing, fails the run:
//! nobody said the run can complete without it.

use crate::call::Classify;
use crate::retry::Backoff;
use crate::state::Enforcement;
use crate::steps::{StepBudget, StepsExceeded};
use shared::policy::{
    AgentNodePolicy, DegradedModeAction, DegradedStatus, Effect, ErrorClass, FailureType,
    Prohibition,
};
use std::future::Future;

/// What the run knows when it is about to run a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeContext<'a> {
    /// Whether the service is degraded now (admission said so, or the
    /// answer so far is degraded).
    pub degraded: bool,
    /// Whether a valid human approval for this node's action is held.
    pub approved: bool,
    /// The idempotency key of the node's side effect, without which a node
    /// that changes something is never retried.
    pub idempotency_key: Option<&'a str>,
}

/// Why a node was held before it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// It needs an approval and has none.
    ApprovalMissing,
    /// The service is degraded and the node may not run meanwhile.
    DegradedMode,
}

/// How running a node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeOutcome<T, E> {
    /// A node of the chain produced `value`.
    Done {
        /// The node that produced it: the one asked for, or a fallback.
        node: String,
        /// Whether a fallback node produced it: a stand-in's answer is
        /// degraded, and labelled so.
        fell_back: bool,
        /// Its value.
        value: T,
        /// Attempts made across the chain.
        attempts: u32,
    },
    /// The node was not run; nothing was done.
    Held {
        /// The node.
        node: String,
        /// Why.
        hold: Hold,
    },
    /// The node failed and is not required: the run goes on without it.
    Skipped {
        /// The node.
        node: String,
        /// The last error.
        error: E,
    },
    /// The node failed and a person takes the run over.
    HandedOff {
        /// The node that failed last.
        node: String,
        /// The last error.
        error: E,
        /// The runbook for whoever picks the run up.
        runbook: Option<String>,
    },
    /// The node failed and the run fails safe.
    Failed {
        /// The node that failed last.
        node: String,
        /// The last error.
        error: E,
        /// The must-fail-closed invariant that stopped it, if one did.
        fail_closed: Option<String>,
    },
    /// The run's step budget ran out before an attempt.
    OutOfSteps(StepsExceeded),
}

impl<T, E> NodeOutcome<T, E> {
    /// The status the run's answer carries because of this node.
    pub fn status(&self) -> DegradedStatus {
        match self {
            NodeOutcome::Done {
                fell_back: false, ..
            } => DegradedStatus::Normal,
            NodeOutcome::Done {
                fell_back: true, ..
            } => DegradedStatus::Degraded,
            NodeOutcome::Skipped { .. } => DegradedStatus::Partial,
            NodeOutcome::Held { .. } | NodeOutcome::HandedOff { .. } => DegradedStatus::Paused,
            NodeOutcome::Failed { .. } => DegradedStatus::Refused,
            NodeOutcome::OutOfSteps(stop) => stop.status,
        }
    }

    /// Whether the run may go on to its next node.
    pub fn run_continues(&self) -> bool {
        matches!(self, NodeOutcome::Done { .. } | NodeOutcome::Skipped { .. })
    }
}

/// Why `rule` keeps its node from running in `context` under `policy`.
fn hold(
    policy: &crate::CompiledPolicy,
    rule: Option<&AgentNodePolicy>,
    context: &NodeContext<'_>,
) -> Option<Hold> {
    let rule = rule?;
    let destructive = rule.effect == Effect::Destructive;
    let needs_approval =
        rule.requires_approval || (destructive && policy.forbids(Prohibition::ActWithoutApproval));
    if needs_approval && !context.approved {
        return Some(Hold::ApprovalMissing);
    }
    let holds_when_degraded = rule.in_degraded_mode == DegradedModeAction::Hold
        || (destructive && policy.forbids(Prohibition::DestructiveActionInDegradedMode));
    if context.degraded && holds_when_degraded {
        return Some(Hold::DegradedMode);
    }
    None
}

impl Enforcement {
    /// Runs `node` of a run under its policy (see [`crate::nodes`]). `op`
    /// runs one attempt of the node it is given (the node asked for or a
    /// fallback node) with the attempt's number within that node. Failures,
    /// retries, fallback nodes taken and the status of an outcome other
    /// than done are counted against the node.
    pub async fn run_node<T, E, F, Fut>(
        &self,
        budget: &mut StepBudget,
        node: &str,
        context: NodeContext<'_>,
        mut op: F,
    ) -> NodeOutcome<T, E>
    where
        E: Classify,
        F: FnMut(&str, u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = self.policy();
        let nodes = &policy.policy().agent_nodes;
        let origin = self.recorder().dependency(node);
        let required = nodes.get(node).is_none_or(|r| r.required_for_completion);
        let mut chain: Vec<&str> = Vec::new();
        let mut current = node;
        let mut attempts = 0;
        let outcome = 'run: loop {
            let rule = nodes.get(current);
            if let Some(hold) = hold(&policy, rule, &context) {
                break NodeOutcome::Held {
                    node: current.to_owned(),
                    hold,
                };
            }
            chain.push(current);
            let stats = self.recorder().dependency(current);
            let retry = rule.and_then(|r| r.retry.as_ref());
            let may_repeat = !rule.is_some_and(|r| r.effect.has_side_effects())
                || context.idempotency_key.is_some();
            let mut backoff = retry.map(Backoff::for_policy);
            let mut attempt = 0;
            let error = loop {
                if let Err(stop) = self.step(budget, current) {
                    // Counted by the step budget, against `current`.
                    return NodeOutcome::OutOfSteps(stop);
                }
                attempt += 1;
                attempts += 1;
                let error = match op(current, attempt).await {
                    Ok(value) => {
                        break 'run NodeOutcome::Done {
                            node: current.to_owned(),
                            fell_back: current != node,
                            value,
                            attempts,
                        };
                    }
                    Err(e) => e,
                };
                let retryable = retry.is_some_and(|r| {
                    attempt < r.max_attempts && r.retry_on.contains(&error.class())
                });
                match (&mut backoff, retryable && may_repeat) {
                    (Some(b), true) => {
                        tokio::time::sleep(b.delay(attempt, &*self.inner.random)).await;
                        stats.retry();
                    }
                    _ => break error,
                }
            };
            stats.failure(error.class());
            let failure = match error.class() {
                ErrorClass::Timeout => FailureType::Timeout,
                _ => FailureType::Unavailable,
            };
            if let Some(invariant) = policy.fail_closed(current, failure).next() {
                break NodeOutcome::Failed {
                    node: current.to_owned(),
                    error,
                    fail_closed: Some(invariant.id.clone()),
                };
            }
            if let Some(next) = rule.and_then(|r| r.fallback_node.as_deref())
                && !chain.contains(&next)
            {
                stats.fallback(&format!("{current}/fallback_node"));
                current = next;
                continue;
            }
            let handoff = chain
                .iter()
                .filter_map(|n| nodes.get(*n))
                .find(|r| r.human_handoff_on_failure);
            if let Some(r) = handoff {
                break NodeOutcome::HandedOff {
                    node: current.to_owned(),
                    error,
                    runbook: r.runbook.clone(),
                };
            }
            if !required {
                break NodeOutcome::Skipped {
                    node: current.to_owned(),
                    error,
                };
            }
            break NodeOutcome::Failed {
                node: current.to_owned(),
                error,
                fail_closed: None,
            };
        };
        origin.degraded(outcome.status());
        outcome
    }
}
