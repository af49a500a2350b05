//! The step budget of an agent run: a run that would take more steps than
//! it was given stops, and how it stops is the agent-node policy's call.
//!
//! An agent loop that keeps choosing another step burns tokens, time and
//! authority without converging. The budget is counted per run and checked
//! before each node runs, so the step that would exceed it never starts.
//! When it is exceeded the run does not try a fallback node (that would be
//! one more step); it either hands off to a person, when the node's policy
//! says its failures go to one, or stops and fails safe.
//!
//! The policy document has no step limit of its own yet, so the limit is
//! the workflow's to give (see [`StepBudget::new`]).

use crate::compiled::CompiledPolicy;
use shared::policy::DegradedStatus;

/// How a run that ran out of steps ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAction {
    /// The node's policy sends its failures to a person: the run is handed
    /// over as it stands, nothing more is done automatically.
    HandOff,
    /// The run stops where it is and its answer is refused. Work already
    /// checkpointed stays done; nothing further is attempted.
    FailSafe,
}

/// A run exceeded its step budget before running `node`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent run stopped before `{node}`: all {max_steps} steps used")]
pub struct StepsExceeded {
    /// The node that would have taken the step over the budget.
    pub node: String,
    /// The budget.
    pub max_steps: u32,
    /// Hand off or fail safe, as the node's policy says.
    pub action: StopAction,
    /// The status the run's answer carries: `paused` while a person takes
    /// over, `refused` when it fails safe.
    pub status: DegradedStatus,
    /// The node's runbook, for whoever picks the run up.
    pub runbook: Option<String>,
}

/// The steps one agent run may still take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepBudget {
    max_steps: u32,
    taken: u32,
}

impl StepBudget {
    /// A budget of `max_steps` node executions for one run.
    pub fn new(max_steps: u32) -> StepBudget {
        StepBudget {
            max_steps,
            taken: 0,
        }
    }

    /// Steps taken so far.
    pub fn taken(&self) -> u32 {
        self.taken
    }

    /// Takes the step that runs `node`, returning its number (1-based), or
    /// says how the run stops when no step is left. A refused step is not
    /// counted, so asking again keeps refusing.
    pub fn step(&mut self, policy: &CompiledPolicy, node: &str) -> Result<u32, StepsExceeded> {
        if self.taken < self.max_steps {
            self.taken += 1;
            return Ok(self.taken);
        }
        let rule = policy.policy().agent_nodes.get(node);
        // A node without a policy gets the safe end: stop, do nothing more.
        let action = if rule.is_some_and(|r| r.human_handoff_on_failure) {
            StopAction::HandOff
        } else {
            StopAction::FailSafe
        };
        Err(StepsExceeded {
            node: node.to_owned(),
            max_steps: self.max_steps,
            action,
            status: match action {
                StopAction::HandOff => DegradedStatus::Paused,
                StopAction::FailSafe => DegradedStatus::Refused,
            },
            runbook: rule.and_then(|r| r.runbook.clone()),
        })
    }
}

impl crate::state::Enforcement {
    /// Takes the step that runs `node` from `budget` under the policy in
    /// force (see [`StepBudget::step`]). A run stopped by its budget is
    /// counted against the node as a `budget_exceeded` failure with the
    /// status it ends in, so max-step stops show in telemetry.
    pub fn step(&self, budget: &mut StepBudget, node: &str) -> Result<u32, StepsExceeded> {
        let policy = self.policy();
        budget.step(&policy, node).inspect_err(|stop| {
            let stats = self.recorder().dependency(node);
            stats.failure(shared::policy::ErrorClass::BudgetExceeded);
            stats.degraded(stop.status);
        })
    }
}
