//! Dead letters of the case-review agent: what a run that failed for good
//! leaves behind, and how one is made to happen on demand.
//!
//! A run dead-letters in two places (see [`crate::case_review`]):
//!
//! * `draft`: the model's recommendation still misses its schema after the
//!   policy's repairs (`output_repair`), and the policy says fail safe.
//!   Nothing was written yet; the last checkpoint is `summarise`.
//! * `send_notice`: the case was closed, but the notice to the parties
//!   failed past its retries. The close is done and must not be repeated;
//!   the last checkpoint is `close_case`.
//!
//! The instance reports the dead letter to the control plane (only the
//! payload's hash travels) and keeps the run's input here, in a bounded map
//! by run id, so that an approved redrive can resume from the checkpoint.
//! The map is shared by the service's instances, as a real service's
//! database would be, because the control plane hands an action to any one
//! connected instance, not necessarily the one that reported.
//!
//! [`FailOnce`] makes the next execution of a run fail at a node, through
//! the real guard (its retries, breaker and fallback all see the failure):
//! the browser tests and the control API use it to produce a dead letter
//! whenever they need one.

use agent::client::ControlPlane;
use agent::dlq::{DeliveryRetry, DlqTransport, deliver};
use agent::{SplitMix64, clock::WallClock};
use serde::{Deserialize, Serialize};
use shared::policy::ErrorClass;
use shared::protocol::{ActionOutcome, DeadLetterReport, DlqActionKind};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// The task type the case-review agent reports, as its policy declares it
/// under `dead_letters.task_types`.
pub const TASK_TYPE: &str = "case_review";

/// How many dead-lettered runs the service holds; past it the oldest is
/// forgotten (and a redrive of it fails, saying so), so that a long outage
/// cannot grow the process without bound.
pub const HELD_RUNS: usize = 4096;

/// How many runs may be armed to fail at once.
pub const ARMED_RUNS: usize = 1024;

/// What a case-review run is given: its payload. Its hash is what the
/// control plane sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewInput {
    /// The run.
    pub run_id: String,
    /// Whose case it is.
    pub tenant: String,
}

impl ReviewInput {
    /// The payload's bytes, as hashed in the report.
    pub fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A node at which a run can fail for good, and from whose checkpoint a
/// redrive resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// Drafting the recommendation (a structured output).
    Draft,
    /// Sending the notice to the parties, after the case was closed.
    SendNotice,
}

impl Node {
    /// Every node, for messages.
    pub const ALL: [Node; 2] = [Node::Draft, Node::SendNotice];

    /// The node's name in reports and the control API.
    pub fn as_str(self) -> &'static str {
        match self {
            Node::Draft => "draft",
            Node::SendNotice => "send_notice",
        }
    }

    /// The node called `name`.
    pub fn parse(name: &str) -> Option<Node> {
        Node::ALL.into_iter().find(|n| n.as_str() == name)
    }

    /// The last checkpoint before the node: where a redrive resumes.
    pub fn checkpoint(self) -> &'static str {
        match self {
            Node::Draft => "summarise",
            Node::SendNotice => "close_case",
        }
    }
}

/// Runs armed to fail at a node on their next execution. Shared by every
/// instance of the process, like the fault registry.
#[derive(Debug, Clone, Default)]
pub struct FailOnce {
    armed: Arc<Mutex<HashMap<String, Node>>>,
}

/// Too many runs are armed already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyArmed;

impl FailOnce {
    /// Nothing armed.
    pub fn new() -> FailOnce {
        FailOnce::default()
    }

    /// Makes the next execution of `run_id` fail at `node` (replacing an
    /// earlier arming of the same run).
    pub fn arm(&self, run_id: &str, node: Node) -> Result<(), TooManyArmed> {
        let mut armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        if armed.len() >= ARMED_RUNS && !armed.contains_key(run_id) {
            return Err(TooManyArmed);
        }
        armed.insert(run_id.to_owned(), node);
        Ok(())
    }

    /// Whether `run_id` is armed to fail at `node`; disarms it if so.
    pub fn take(&self, run_id: &str, node: Node) -> bool {
        let mut armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        if armed.get(run_id) == Some(&node) {
            armed.remove(run_id);
            true
        } else {
            false
        }
    }

    /// What is armed, by run.
    pub fn armed(&self) -> BTreeMap<String, Node> {
        let armed = self.armed.lock().unwrap_or_else(|e| e.into_inner());
        armed.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// The last approved action executed on a held run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRecord {
    /// The action's id.
    pub action_id: String,
    /// What it did.
    pub kind: DlqActionKind,
    /// How it ended.
    pub outcome: ActionOutcome,
    /// What the handler said.
    pub detail: String,
}

/// A dead-lettered run the service holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldRun {
    /// Its payload, to resume with.
    pub input: ReviewInput,
    /// Where it failed.
    pub node: Node,
    /// What was reported.
    pub report: DeadLetterReport,
    /// The control plane's id of the entry, once it answered.
    pub dead_letter_id: Option<String>,
    /// The last action executed on it.
    pub last_action: Option<ActionRecord>,
}

#[derive(Debug, Default)]
struct Held {
    runs: HashMap<String, HeldRun>,
    /// Run ids, oldest first, for eviction.
    order: VecDeque<String>,
}

/// The dead-lettered runs of a service, by run id, bounded by
/// [`HELD_RUNS`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct HeldRuns {
    inner: Arc<Mutex<Held>>,
    capacity: usize,
}

impl Default for HeldRuns {
    fn default() -> HeldRuns {
        HeldRuns::with_capacity(HELD_RUNS)
    }
}

impl HeldRuns {
    /// An empty map holding at most `capacity` runs (at least one).
    pub fn with_capacity(capacity: usize) -> HeldRuns {
        HeldRuns {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// Holds `run` (replacing what the run held before) and returns the
    /// report to send. A run that fails again at the same node keeps its
    /// first `created_at_ms`: the report says when the work first failed,
    /// and an unchanged report is then a repeat the control plane ignores.
    pub fn hold(&self, mut run: HeldRun) -> DeadLetterReport {
        let mut held = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = run.input.run_id.clone();
        match held.runs.get(&id) {
            Some(before) => {
                if before.node == run.node {
                    run.report.created_at_ms = before.report.created_at_ms;
                    run.dead_letter_id = before.dead_letter_id.clone();
                }
                run.last_action = before.last_action.clone();
            }
            None => {
                held.order.push_back(id.clone());
                while held.order.len() > self.capacity {
                    if let Some(oldest) = held.order.pop_front() {
                        held.runs.remove(&oldest);
                    }
                }
            }
        }
        let report = run.report.clone();
        held.runs.insert(id, run);
        report
    }

    /// Notes the control plane's id for `run_id`'s entry.
    pub fn set_dead_letter_id(&self, run_id: &str, id: &str) {
        let mut held = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(run) = held.runs.get_mut(run_id) {
            run.dead_letter_id = Some(id.to_owned());
        }
    }

    /// Notes the action last executed on `run_id`.
    pub fn record_action(&self, run_id: &str, record: ActionRecord) {
        let mut held = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(run) = held.runs.get_mut(run_id) {
            run.last_action = Some(record);
        }
    }

    /// The held run `run_id`, if it is still held.
    pub fn get(&self, run_id: &str) -> Option<HeldRun> {
        let held = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        held.runs.get(run_id).cloned()
    }

    /// Every held run, oldest first.
    pub fn list(&self) -> Vec<HeldRun> {
        let held = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        held.order
            .iter()
            .filter_map(|id| held.runs.get(id).cloned())
            .collect()
    }
}

/// A boxed future, for [`ReportFn`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Sends a report to the control plane; the entry's id when it answered.
pub type ReportFn = Arc<dyn Fn(DeadLetterReport) -> BoxFuture<Option<String>> + Send + Sync>;

/// Reports through `transport` (an instance's control-plane client),
/// resending while the control plane is away: the report is idempotent per
/// run and node, and a dead letter the control plane never hears of is
/// work nobody will look at.
pub fn reporter<T: DlqTransport + Clone>(transport: T) -> ReportFn {
    let random = Arc::new(SplitMix64::from_entropy());
    Arc::new(move |report: DeadLetterReport| {
        let transport = transport.clone();
        let random = random.clone();
        Box::pin(async move {
            let delivery = deliver(&DeliveryRetry::default(), &*random, || {
                transport.report(&report)
            })
            .await;
            if !delivery.is_delivered() {
                tracing::warn!(run_id = %report.run_id, node = %report.failed_node, ?delivery, "dead letter not reported");
            }
            delivery.value().flatten().map(|ack| ack.id)
        })
    })
}

/// The reporter of an instance connected to `plane`.
pub fn control_plane_reporter(plane: &ControlPlane) -> ReportFn {
    reporter(plane.clone())
}

/// A reporter that sends nothing, for a workflow without a control plane.
pub fn no_reporter() -> ReportFn {
    Arc::new(|_| Box::pin(async { None }))
}

/// What the service's instances share about dead letters.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterState {
    /// The held runs.
    pub held: HeldRuns,
    /// The runs armed to fail.
    pub fail_once: FailOnce,
}

/// One instance's dead-letter side: the shared state and its own reporter.
#[derive(Clone)]
pub struct DeadLetters {
    /// What the instances share.
    pub state: DeadLetterState,
    report: ReportFn,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// What went wrong at a node, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error's class.
    pub error_type: ErrorClass,
    /// Its message, without personal data.
    pub message: String,
    /// Attempts made before giving up.
    pub attempts: u32,
}

impl DeadLetters {
    /// Dead letters held in `state`, reported with `report`.
    pub fn new(state: DeadLetterState, report: ReportFn) -> DeadLetters {
        DeadLetters { state, report }
    }

    /// Dead letters held locally and reported nowhere.
    pub fn local() -> DeadLetters {
        DeadLetters::new(DeadLetterState::default(), no_reporter())
    }

    /// Holds the run `input` that failed for good at `node` and reports
    /// it; the report and the control plane's id of the entry.
    pub async fn dead_letter(
        &self,
        input: &ReviewInput,
        node: Node,
        failure: Failure,
    ) -> (DeadLetterReport, Option<String>) {
        let report = agent::dlq::dead_letter(
            &input.run_id,
            TASK_TYPE,
            node.as_str(),
            failure.error_type,
            &failure.message,
            failure.attempts,
            Some(node.checkpoint()),
            WallClock::system().now_ms(),
            &input.payload(),
        );
        let report = self.state.held.hold(HeldRun {
            input: input.clone(),
            node,
            report,
            dead_letter_id: None,
            last_action: None,
        });
        tracing::info!(
            run_id = %input.run_id, node = node.as_str(), error = %failure.message,
            "run dead-lettered"
        );
        let id = (self.report)(report.clone()).await;
        if let Some(id) = &id {
            self.state.held.set_dead_letter_id(&input.run_id, id);
        }
        (report, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, node: Node, created_at_ms: i64) -> HeldRun {
        let input = ReviewInput {
            run_id: id.into(),
            tenant: "tenant-a".into(),
        };
        let report = agent::dlq::dead_letter(
            id,
            TASK_TYPE,
            node.as_str(),
            ErrorClass::Connection,
            "refused",
            2,
            Some(node.checkpoint()),
            created_at_ms,
            &input.payload(),
        );
        HeldRun {
            input,
            node,
            report,
            dead_letter_id: None,
            last_action: None,
        }
    }

    #[test]
    fn held_runs_are_bounded_and_a_repeat_keeps_its_first_failure_time() {
        let held = HeldRuns::with_capacity(2);
        held.hold(run("r1", Node::SendNotice, 10));
        held.set_dead_letter_id("r1", "dl-1");
        let again = held.hold(run("r1", Node::SendNotice, 20));
        assert_eq!(again.created_at_ms, 10, "when it first failed");
        assert_eq!(
            held.get("r1").unwrap().dead_letter_id.as_deref(),
            Some("dl-1")
        );
        let elsewhere = held.hold(run("r1", Node::Draft, 30));
        assert_eq!(
            elsewhere.created_at_ms, 30,
            "another node is another failure"
        );
        held.hold(run("r2", Node::Draft, 40));
        held.hold(run("r3", Node::Draft, 50));
        let ids: Vec<String> = held.list().into_iter().map(|r| r.input.run_id).collect();
        assert_eq!(ids, ["r2", "r3"], "the oldest is forgotten");
        assert!(held.get("r1").is_none());
    }

    #[test]
    fn a_run_fails_once_at_the_armed_node_only() {
        let f = FailOnce::new();
        f.arm("r1", Node::SendNotice).unwrap();
        assert!(!f.take("r1", Node::Draft));
        assert!(f.take("r1", Node::SendNotice));
        assert!(!f.take("r1", Node::SendNotice), "once");
        assert_eq!(Node::parse("send_notice"), Some(Node::SendNotice));
        assert_eq!(Node::parse("close_case"), None);
    }
}
