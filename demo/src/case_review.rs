//! The case-review agent (service `case-review-agent`): a workflow run that
//! loads a case, gathers policy and precedent, summarises and drafts a
//! recommendation, asks the approval service, and only once approved
//! closes the case and notifies the parties through the tool API.
//!
//! Every call goes through the [`Guard`]. The writes carry idempotency keys
//! made from the run and the node, so the guard may retry them and the
//! system of record does each at most once. When the approval service is
//! down the run pauses and nothing is written: the guard's fail-closed
//! resolution says so, and the run obeys.
//!
//! A run that fails for good is dead-lettered ([`crate::dead_letters`]):
//! a draft that still misses its schema after the policy's repairs, or a
//! notice that could not be sent after the case was closed. An approved
//! action on it comes back through [`agent::dlq::ActionRunner`] to
//! [`CaseReview::act`]: a redrive resumes from the checkpoint with the same
//! idempotency keys (so the close and the notice happen at most once
//! however often it runs); cancel, manual completion and escalation record
//! the decision in the case record and send nothing.

use crate::dead_letters::{
    ActionRecord, DeadLetters, Failure, HELD_RUNS, HeldRun, Node, ReviewInput,
};
use crate::deps::{Dependencies, Output};
use crate::outcome::Outcome;
use agent::dlq::ActionHandler;
use agent::repair::Repaired;
use agent::{Call, Deadline, DependencyError, Guard, Guarded, Request};
use shared::policy::{DegradedStatus, Effect, ErrorClass};
use shared::protocol::{ActionOutcome, DeadLetterReport, DlqAction, DlqActionKind};
use std::future::Future;

/// The service this workflow is.
pub const SERVICE: &str = "case-review-agent";

/// Why a draft fails validation, in the words a schema validator would use.
const SCHEMA_MISS: &str = "the recommendation does not match its schema: `citations` is missing";

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Status, confidence and messages.
    pub outcome: Outcome,
    /// Whether approval was granted.
    pub approved: bool,
    /// Whether the case was closed.
    pub closed: bool,
    /// Whether the parties were notified.
    pub notified: bool,
    /// The dead letter the run left, when it failed for good.
    pub dead_letter: Option<DeadLetterReport>,
    /// The control plane's id of that dead letter, once it answered.
    pub dead_letter_id: Option<String>,
}

impl Review {
    fn new() -> Review {
        Review {
            outcome: Outcome::default(),
            approved: false,
            closed: false,
            notified: false,
            dead_letter: None,
            dead_letter_id: None,
        }
    }
}

/// How a step of the run ended.
enum Step {
    /// Go on.
    Continue,
    /// Stop here; the outcome says why (paused, queued…), and the run
    /// resumes on its own later.
    Stop,
    /// Stop here for good: dead-letter the run.
    DeadLetter(Failure),
}

/// The workflow of one instance.
#[derive(Debug, Clone)]
pub struct CaseReview {
    guard: Guard,
    deps: Dependencies,
    dead_letters: DeadLetters,
}

impl CaseReview {
    /// A workflow calling `deps` under `guard`, dead-lettering into
    /// `dead_letters`.
    pub fn new(guard: Guard, deps: Dependencies, dead_letters: DeadLetters) -> CaseReview {
        CaseReview {
            guard,
            deps,
            dead_letters,
        }
    }

    /// Its dead letters.
    pub fn dead_letters(&self) -> &DeadLetters {
        &self.dead_letters
    }

    fn describe<'a>(
        dependency: &'a str,
        operation: &'a str,
        stage: &'a str,
        tenant: &'a str,
        deadline: Option<Deadline>,
    ) -> Call<'a> {
        let call = Call::new(dependency, operation).stage(stage).tenant(tenant);
        match deadline {
            Some(d) => call.deadline(d),
            None => call,
        }
    }

    async fn read(
        &self,
        dependency: &str,
        operation: &str,
        stage: &str,
        tenant: &str,
        deadline: Option<Deadline>,
    ) -> Guarded<(), DependencyError> {
        let dep = self.deps.get(dependency);
        self.guard
            .call(
                &CaseReview::describe(dependency, operation, stage, tenant, deadline),
                |_| dep.call(),
            )
            .await
    }

    /// A model call producing structured output, on `model` when given;
    /// every output misses its schema when `force_invalid` is set.
    async fn generate(
        &self,
        (operation, stage): (&str, &str),
        model: Option<&str>,
        tenant: &str,
        deadline: Option<Deadline>,
        force_invalid: bool,
    ) -> Guarded<Output, DependencyError> {
        let dep = self.deps.get("model_provider");
        let call = CaseReview::describe("model_provider", operation, stage, tenant, deadline);
        let call = match model {
            Some(m) => call.model(m),
            None => call,
        };
        self.guard
            .call(&call, |_| dep.generate(force_invalid))
            .await
    }

    /// A write of `(dependency, operation, stage)` under `key`; every
    /// attempt is refused when `refuse` is set (see
    /// [`crate::dead_letters::FailOnce`]).
    async fn write(
        &self,
        (dependency, operation, stage): (&str, &str, &str),
        tenant: &str,
        key: &str,
        effect: Effect,
        deadline: Option<Deadline>,
        refuse: bool,
    ) -> Guarded<bool, DependencyError> {
        let dep = self.deps.get(dependency);
        self.guard
            .call(
                &CaseReview::describe(dependency, operation, stage, tenant, deadline)
                    .idempotency_key(key)
                    .effect(effect),
                |attempt| async move {
                    if refuse {
                        return dep.refuse().await.map(|()| false);
                    }
                    // The key travels with every attempt: that is what lets
                    // the system of record recognise a retry.
                    let key = attempt.idempotency_key.expect("writes carry a key");
                    dep.write(&key).await
                },
            )
            .await
    }

    /// Runs the review `run_id` for `tenant`.
    pub async fn review(&self, run_id: &str, tenant: &str) -> Review {
        let input = ReviewInput {
            run_id: run_id.to_owned(),
            tenant: tenant.to_owned(),
        };
        self.execute(&input, None).await
    }

    /// Runs the review `input` again from the checkpoint before `from`,
    /// the node where it failed: the steps before it are done and are not
    /// repeated, and the steps from it on use the run's own idempotency
    /// keys, so whatever they did before is not done twice.
    pub async fn resume(&self, input: &ReviewInput, from: Node) -> Review {
        self.execute(input, Some(from)).await
    }

    async fn execute(&self, input: &ReviewInput, resume: Option<Node>) -> Review {
        let tenant = input.tenant.as_str();
        let mut review = Review::new();
        let admitted = match self
            .guard
            .admit(Request {
                tenant: Some(tenant),
                ..Request::default()
            })
            .await
        {
            Ok(a) => a,
            Err(refusal) => {
                review.outcome = Outcome::refused_at_admission(&refusal);
                return review;
            }
        };
        let review = self
            .execute_admitted(input, resume, &admitted, review)
            .await;
        // The run's record: what the objectives are measured on.
        admitted.finish(review.outcome.status);
        review
    }

    async fn execute_admitted(
        &self,
        input: &ReviewInput,
        resume: Option<Node>,
        admitted: &agent::Admitted,
        mut review: Review,
    ) -> Review {
        let (run_id, tenant) = (input.run_id.as_str(), input.tenant.as_str());
        let deadline = admitted.deadline;
        review
            .outcome
            .admitted(admitted.mode, admitted.user_message.as_deref());
        if !review.outcome.may_continue() {
            return review;
        }
        let key = |node: &str| format!("{run_id}/{node}");

        if resume.is_none() && !self.gather(input, deadline, &mut review.outcome).await {
            return review;
        }
        if resume == Some(Node::SendNotice) {
            // The checkpoint says so: approved, and the case closed.
            review.approved = true;
            review.closed = true;
        } else {
            match self.draft(input, deadline, &mut review.outcome).await {
                Step::Continue => {}
                Step::Stop => return review,
                Step::DeadLetter(failure) => {
                    review.outcome.worsen(
                        DegradedStatus::Paused,
                        Some("The recommendation could not be drafted in a valid form; a person decides how this review goes on.".into()),
                    );
                    self.fail(&mut review, input, Node::Draft, failure).await;
                    return review;
                }
            }
            let out = &mut review.outcome;
            let judged = self
                .read("style_judge", "judge", "validate", tenant, deadline)
                .await;
            out.absorb(&judged);

            // Approval gates every action. Down means pause, never act.
            let approval = self
                .write(
                    ("approval_service", "request_approval", "approval"),
                    tenant,
                    &key("request_approval"),
                    Effect::Write,
                    deadline,
                    false,
                )
                .await;
            if !out.absorb(&approval) || !out.may_continue() {
                out.worsen(DegradedStatus::Paused, None);
                return review;
            }
            review.approved = true;
            let closed = self
                .write(
                    ("case_record", "close_case", "act"),
                    tenant,
                    &key("close_case"),
                    Effect::Destructive,
                    deadline,
                    false,
                )
                .await;
            if !review.outcome.absorb(&closed) {
                review.outcome.worsen(DegradedStatus::Paused, None);
                return review;
            }
            review.closed = true;
        }
        // External notices are held while the review is degraded: the
        // policy forbids sending one in degraded mode.
        if review.outcome.status != DegradedStatus::Normal {
            review.outcome.worsen(
                DegradedStatus::Queued,
                Some("The notice is held until the review runs normally again.".into()),
            );
            return review;
        }
        let refuse = self
            .dead_letters
            .state
            .fail_once
            .take(run_id, Node::SendNotice);
        let notice = self
            .write(
                ("notification_api", "send_notice", "act"),
                tenant,
                &key("send_notice"),
                Effect::Destructive,
                deadline,
                refuse,
            )
            .await;
        review.notified = review.outcome.absorb(&notice);
        if !review.notified {
            // The case is closed and the notice did not go: nothing retries
            // it from here, so a person must decide.
            let failure = Failure {
                error_type: notice
                    .result
                    .as_ref()
                    .err()
                    .map_or(ErrorClass::Unavailable, |e| e.class()),
                message: notice_failure(&notice),
                attempts: notice.attempts,
            };
            self.fail(&mut review, input, Node::SendNotice, failure)
                .await;
        }
        review
    }

    /// Intake, the case, policy and precedent, and the summary: everything
    /// before the draft. Whether the run may go on.
    async fn gather(
        &self,
        input: &ReviewInput,
        deadline: Option<Deadline>,
        out: &mut Outcome,
    ) -> bool {
        let tenant = input.tenant.as_str();
        let auth = self
            .read("identity", "authorize", "intake", tenant, deadline)
            .await;
        if !out.absorb(&auth) {
            out.worsen(DegradedStatus::Refused, None);
            return false;
        }
        let checkpoint = self
            .write(
                ("checkpoint_store", "save_checkpoint", "intake"),
                tenant,
                &format!("{}/intake", input.run_id),
                Effect::Write,
                deadline,
                false,
            )
            .await;
        // Without a checkpoint a crash would lose the run: stop here.
        if !out.absorb(&checkpoint) || !out.may_continue() {
            out.worsen(DegradedStatus::Paused, None);
            return false;
        }
        // Required nodes: a failure pauses or hands the run off, as the
        // guard's resolution says, and the run stops here.
        for (dependency, operation, stage) in [
            ("case_record", "read_case", "load_case"),
            ("policy_index", "search", "retrieval"),
        ] {
            let step = self
                .read(dependency, operation, stage, tenant, deadline)
                .await;
            if !out.absorb(&step) {
                out.worsen(DegradedStatus::Paused, None);
                return false;
            }
        }
        // Optional evidence: labelled and skipped when it fails.
        let (prior, reranked) = tokio::join!(
            self.read("prior_decisions", "search", "retrieval", tenant, deadline),
            self.read("reranker", "rerank", "retrieval", tenant, deadline),
        );
        out.absorb(&prior);
        out.absorb(&reranked);
        let summary = self
            .read("model_provider", "summarize", "summarise", tenant, deadline)
            .await;
        if !out.absorb(&summary) {
            // Resumes from its checkpoint when the provider is back.
            out.worsen(DegradedStatus::Queued, None);
            return false;
        }
        true
    }

    /// The draft: a structured output, validated and repaired within the
    /// policy's bound (`output_repair`).
    async fn draft(
        &self,
        input: &ReviewInput,
        deadline: Option<Deadline>,
        out: &mut Outcome,
    ) -> Step {
        let tenant = input.tenant.as_str();
        let forced = self
            .dead_letters
            .state
            .fail_once
            .take(&input.run_id, Node::Draft);
        let first = self
            .generate(("draft", "draft"), None, tenant, deadline, forced)
            .await;
        if !out.absorb(&first) {
            // The provider is down, not wrong: resumes from its checkpoint
            // when it is back.
            out.worsen(DegradedStatus::Queued, None);
            return Step::Stop;
        }
        let Ok(output) = first.result else {
            return Step::Stop;
        };
        let validate = |o: &Output| {
            if o.valid {
                Ok(())
            } else {
                Err(SCHEMA_MISS.to_owned())
            }
        };
        let repaired = self
            .guard
            .state()
            .repair("model_provider", output, validate, |_, _| async move {
                // A failed repair call ends the repairs like an invalid
                // output: the draft is not trusted either way.
                self.generate(("repair", "draft"), None, tenant, deadline, forced)
                    .await
                    .result
                    .ok()
            })
            .await;
        match repaired {
            Repaired::Valid { .. } => Step::Continue,
            Repaired::FailSafe { repairs, reason } => Step::DeadLetter(Failure {
                error_type: ErrorClass::Validation,
                message: format!(
                    "the draft still fails validation after {repairs} repair(s), and the policy says fail safe: {reason}"
                ),
                attempts: repairs + 1,
            }),
            Repaired::Fallback {
                model,
                repairs,
                reason,
            } => {
                let again = self
                    .generate(("draft", "draft"), Some(&model), tenant, deadline, forced)
                    .await;
                match again.result {
                    Ok(o) if o.valid => {
                        out.worsen(DegradedStatus::Degraded, None);
                        Step::Continue
                    }
                    _ => Step::DeadLetter(Failure {
                        error_type: ErrorClass::Validation,
                        message: format!(
                            "the draft still fails validation after {repairs} repair(s) and one try on {model}: {reason}"
                        ),
                        attempts: repairs + 2,
                    }),
                }
            }
        }
    }

    /// Dead-letters the run at `node`.
    async fn fail(&self, review: &mut Review, input: &ReviewInput, node: Node, failure: Failure) {
        let (report, id) = self.dead_letters.dead_letter(input, node, failure).await;
        review.dead_letter = Some(report);
        review.dead_letter_id = id;
    }

    /// Executes an approved action on a dead-lettered run: `Ok(detail)`
    /// when done, `Err(detail)` when tried and failed. Either way the
    /// held run records it.
    pub async fn act(&self, action: &DlqAction) -> Result<String, String> {
        let held = self.dead_letters.state.held.get(&action.run_id);
        let result = match (action.kind, &held) {
            (DlqActionKind::Redrive, Some(run)) => self.redrive(run).await,
            (DlqActionKind::Redrive, None) => Err(format!(
                "run {} is not held by this service: it was never dead-lettered here, or it was \
                 forgotten (a restart, or more than {HELD_RUNS} newer dead letters); nothing was done",
                action.run_id
            )),
            (kind, held) => self.record_decision(action, kind, held.as_ref()).await,
        };
        let (outcome, detail) = match &result {
            Ok(d) => (ActionOutcome::Succeeded, d),
            Err(d) => (ActionOutcome::Failed, d),
        };
        self.dead_letters.state.held.record_action(
            &action.run_id,
            ActionRecord {
                action_id: action.id.clone(),
                kind: action.kind,
                outcome,
                detail: detail.clone(),
            },
        );
        result
    }

    async fn redrive(&self, run: &HeldRun) -> Result<String, String> {
        let review = self.resume(&run.input, run.node).await;
        let from = run.node.checkpoint();
        if review.notified {
            return Ok(format!(
                "redriven from checkpoint {from}: the case is closed and the notice delivered \
                 (idempotency key {}/send_notice, which the notification API applies at most once)",
                run.input.run_id
            ));
        }
        if let Some(report) = &review.dead_letter {
            return Err(format!(
                "redriven from checkpoint {from}; failed again at {}: {}",
                report.failed_node, report.error_message
            ));
        }
        let closed = if review.closed {
            "the case is closed, but "
        } else {
            ""
        };
        Err(format!(
            "redriven from checkpoint {from}; {closed}the run stopped {}: {}",
            review.outcome.status.as_str(),
            review.outcome.messages.join(" ")
        ))
    }

    /// Records a cancel, manual completion or escalation in the case
    /// record, under a key of the run and the decision, and sends nothing.
    async fn record_decision(
        &self,
        action: &DlqAction,
        kind: DlqActionKind,
        held: Option<&HeldRun>,
    ) -> Result<String, String> {
        // The tenant partitions the bulkhead; a run no longer held still
        // gets its decision recorded, in a partition of its own.
        let tenant = held.map_or("unknown", |r| r.input.tenant.as_str());
        let key = format!("{}/{}", action.run_id, kind.as_str());
        let written = self
            .write(
                ("case_record", "update_case", "act"),
                tenant,
                &key,
                Effect::Write,
                None,
                false,
            )
            .await;
        if let Err(e) = written.result {
            return Err(format!(
                "the case record did not confirm the {} ({e}); nothing was sent",
                kind.as_str()
            ));
        }
        Ok(match kind {
            DlqActionKind::Cancel => {
                "cancelled: the case record says so, and no notice is sent".to_owned()
            }
            DlqActionKind::ManualComplete => {
                "recorded as completed by a person outside the system; nothing was sent".to_owned()
            }
            DlqActionKind::Escalate | DlqActionKind::Redrive => {
                "escalated: the case record hands the review to a case officer".to_owned()
            }
        })
    }
}

/// What a failed notice says in its dead letter.
fn notice_failure(notice: &Guarded<bool, DependencyError>) -> String {
    let mut message = match &notice.result {
        Err(e) => format!("the notice was not sent after the case was closed: {e}"),
        Ok(_) => "the notice was not sent after the case was closed".to_owned(),
    };
    if notice.side_effect_uncertain {
        message.push_str(
            "; a reply was lost, so it may have gone out: a redrive reuses its idempotency key",
        );
    }
    message
}

/// The case-review agent executes approved dead-letter actions itself.
impl ActionHandler for CaseReview {
    fn handle(&self, action: &DlqAction) -> impl Future<Output = Result<String, String>> + Send {
        self.act(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letters::{DeadLetterState, reporter};
    use crate::faults::{FaultSpec, Faults};
    use agent::client::ClientError;
    use agent::dlq::{ActionRunner, DlqTransport, Execution};
    use agent::idempotency::{Fingerprint, MemoryDedupStore};
    use agent::{CompiledPolicy, SplitMix64, policy_channel};
    use shared::policy::Policy;
    use shared::protocol::{ActionAck, DeadLetterAck, PolicySource};
    use std::sync::{Arc, Mutex};

    fn workflow(faults: &Faults) -> (CaseReview, Dependencies) {
        let policy = Policy::from_yaml(include_str!(
            "../../examples/policies/case-review-agent.yaml"
        ))
        .unwrap();
        let (_, rx) = policy_channel(CompiledPolicy::compile(
            policy,
            Some(1),
            PolicySource::Server,
        ));
        let guard = Guard::builder(rx)
            .random(Arc::new(SplitMix64::seeded(5)))
            .build();
        let deps = Dependencies::new(faults, 21);
        (
            CaseReview::new(guard, deps.clone(), DeadLetters::local()),
            deps,
        )
    }

    /// The control plane's dead-letter calls, as the instance makes them:
    /// reports answered with an id, acknowledgements taken and kept.
    #[derive(Clone, Default)]
    struct Plane {
        reports: Arc<Mutex<Vec<DeadLetterReport>>>,
        acks: Arc<Mutex<Vec<(String, ActionAck)>>>,
    }

    impl DlqTransport for Plane {
        async fn report(&self, r: &DeadLetterReport) -> Result<Option<DeadLetterAck>, ClientError> {
            self.reports.lock().unwrap().push(r.clone());
            Ok(Some(DeadLetterAck {
                id: format!("dl-{}", r.run_id),
            }))
        }
        async fn ack(&self, id: &str, ack: &ActionAck) -> Result<(), ClientError> {
            self.acks.lock().unwrap().push((id.to_owned(), ack.clone()));
            Ok(())
        }
    }

    /// A workflow whose dead letters go to `plane`.
    fn reporting(faults: &Faults, plane: &Plane) -> (CaseReview, Dependencies) {
        let (case, deps) = workflow(faults);
        let dead_letters = DeadLetters::new(DeadLetterState::default(), reporter(plane.clone()));
        (
            CaseReview::new(case.guard.clone(), deps.clone(), dead_letters),
            deps,
        )
    }

    fn outage() -> FaultSpec {
        FaultSpec {
            outage: true,
            ..FaultSpec::default()
        }
    }

    fn action(id: &str, run_id: &str, kind: DlqActionKind) -> DlqAction {
        DlqAction {
            id: id.into(),
            dead_letter_id: format!("dl-{run_id}"),
            run_id: run_id.into(),
            kind,
            requested_by: "user:ada".into(),
            approved_by: "user:april".into(),
            reason: "the notification API is back".into(),
        }
    }

    /// A run whose notice fails against an outage after the case closed.
    async fn notice_outage(
        faults: &Faults,
        plane: &Plane,
        run_id: &str,
    ) -> (CaseReview, Dependencies, Review) {
        let (case, deps) = reporting(faults, plane);
        faults.set("notification_api", outage()).unwrap();
        let review = case.review(run_id, "tenant-a").await;
        faults.clear("notification_api");
        (case, deps, review)
    }

    #[tokio::test(start_paused = true)]
    async fn a_notice_outage_after_the_close_dead_letters_one_report_with_the_right_fields() {
        let (faults, plane) = (Faults::new(), Plane::default());
        let (case, deps, review) = notice_outage(&faults, &plane, "run-3").await;
        assert!(
            review.approved && review.closed && !review.notified,
            "{review:?}"
        );
        let reports = plane.reports.lock().unwrap().clone();
        assert_eq!(reports.len(), 1, "{reports:?}");
        let r = &reports[0];
        assert_eq!(r.run_id, "run-3");
        assert_eq!(r.task_type, "case_review");
        assert_eq!(r.failed_node, "send_notice");
        assert_eq!(r.error_type, ErrorClass::Connection);
        assert!(
            r.error_message.contains("connection refused"),
            "{}",
            r.error_message
        );
        assert_eq!(
            r.retry_count, 2,
            "the policy's two attempts at notification_api"
        );
        assert_eq!(r.last_checkpoint.as_deref(), Some("close_case"));
        let input = ReviewInput {
            run_id: "run-3".into(),
            tenant: "tenant-a".into(),
        };
        assert_eq!(r.payload_hash, Fingerprint::of(&input.payload()).as_str());
        assert!(!r.payload_hash.contains("tenant"), "only the hash travels");
        assert!(r.created_at_ms > 0);
        assert_eq!(review.dead_letter.as_ref(), Some(r));
        assert_eq!(review.dead_letter_id.as_deref(), Some("dl-run-3"));
        let held = case.dead_letters().state.held.get("run-3").unwrap();
        assert_eq!(held.input, input, "the payload stays here, for a redrive");
        assert_eq!(held.dead_letter_id.as_deref(), Some("dl-run-3"));
        assert_eq!(deps.get("case_record").effects_of("run-3/close_case"), 1);
        assert_eq!(
            deps.get("notification_api").effects_of("run-3/send_notice"),
            0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_redrive_delivered_twice_sends_the_notice_once() {
        let (faults, plane) = (Faults::new(), Plane::default());
        let (case, deps, _) = notice_outage(&faults, &plane, "run-4").await;
        let runner = ActionRunner::new(MemoryDedupStore::new(), case.clone(), plane.clone());
        let redrive = action("act-1", "run-4", DlqActionKind::Redrive);

        let first = runner.handle(&redrive).await;
        let Execution::Ran(ack) = &first.execution else {
            panic!("{first:?}")
        };
        assert_eq!(ack.outcome, ActionOutcome::Succeeded, "{}", ack.detail);
        assert!(
            ack.detail.contains("from checkpoint close_case"),
            "{}",
            ack.detail
        );
        let again = runner.handle(&redrive).await;
        assert_eq!(again.execution, Execution::AlreadyRan(ack.clone()));

        let effects = deps.side_effects();
        assert_eq!(effects["run-4"]["send_notice"], 1, "{effects:?}");
        assert_eq!(
            effects["run-4"]["close_case"], 1,
            "the close is not repeated"
        );
        let acks = plane.acks.lock().unwrap().clone();
        assert_eq!(acks.len(), 2, "each delivery is acknowledged");
        assert!(acks.iter().all(|(id, a)| id == "act-1" && a == ack));
        // Even a second redrive (another action, another id) reuses the
        // run's key, so the parties still get one notice.
        case.act(&action("act-2", "run-4", DlqActionKind::Redrive))
            .await
            .unwrap();
        assert_eq!(deps.side_effects()["run-4"]["send_notice"], 1);
        let held = case.dead_letters().state.held.get("run-4").unwrap();
        assert_eq!(held.last_action.unwrap().action_id, "act-2");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancel_records_the_decision_and_sends_nothing() {
        let (faults, plane) = (Faults::new(), Plane::default());
        let (case, deps, _) = notice_outage(&faults, &plane, "run-5").await;
        let runner = ActionRunner::new(MemoryDedupStore::new(), case.clone(), plane.clone());
        let handled = runner
            .handle(&action("act-3", "run-5", DlqActionKind::Cancel))
            .await;
        let Execution::Ran(ack) = &handled.execution else {
            panic!("{handled:?}")
        };
        assert_eq!(ack.outcome, ActionOutcome::Succeeded, "{}", ack.detail);
        let effects = deps.side_effects();
        assert_eq!(effects["run-5"].get("send_notice"), None, "{effects:?}");
        assert_eq!(effects["run-5"]["cancel"], 1, "recorded in the case record");
        assert_eq!(
            deps.get("notification_api").effects_of("run-5/send_notice"),
            0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_draft_that_misses_its_schema_past_repair_dead_letters_and_a_redrive_finishes_it() {
        let (faults, plane) = (Faults::new(), Plane::default());
        let (case, deps) = reporting(&faults, &plane);
        case.dead_letters()
            .state
            .fail_once
            .arm("run-6", Node::Draft)
            .unwrap();
        let review = case.review("run-6", "tenant-a").await;
        assert!(!review.approved && !review.closed, "{review:?}");
        assert_eq!(review.outcome.status, DegradedStatus::Paused);
        let r = review.dead_letter.expect("dead-lettered");
        assert_eq!(r.failed_node, "draft");
        assert_eq!(r.error_type, ErrorClass::Validation);
        assert_eq!(r.retry_count, 2, "the draft and the policy's one repair");
        assert_eq!(r.last_checkpoint.as_deref(), Some("summarise"));
        assert!(r.error_message.contains("schema"), "{}", r.error_message);
        assert_eq!(deps.side_effects()["run-6"].get("close_case"), None);

        let detail = case
            .act(&action("act-4", "run-6", DlqActionKind::Redrive))
            .await
            .unwrap();
        assert!(detail.contains("from checkpoint summarise"), "{detail}");
        let effects = deps.side_effects();
        assert_eq!(effects["run-6"]["close_case"], 1);
        assert_eq!(effects["run-6"]["send_notice"], 1);
        assert_eq!(plane.reports.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_redrive_of_a_run_this_service_does_not_hold_fails_and_does_nothing() {
        let (faults, plane) = (Faults::new(), Plane::default());
        let (case, deps) = reporting(&faults, &plane);
        let err = case
            .act(&action("act-5", "run-unknown", DlqActionKind::Redrive))
            .await
            .unwrap_err();
        assert!(err.contains("not held"), "{err}");
        assert!(deps.side_effects().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn with_the_approval_service_down_the_run_pauses_and_writes_nothing() {
        let faults = Faults::new();
        let (case, deps) = workflow(&faults);
        faults
            .set(
                "approval_service",
                FaultSpec {
                    outage: true,
                    ..FaultSpec::default()
                },
            )
            .unwrap();
        let review = case.review("run-1", "tenant-a").await;
        assert_eq!(review.outcome.status, DegradedStatus::Paused, "{review:?}");
        assert!(!review.approved && !review.closed && !review.notified);
        assert_eq!(deps.get("case_record").effects_of("run-1/close_case"), 0);
        assert_eq!(
            deps.get("notification_api").effects_of("run-1/send_notice"),
            0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_run_is_approved_then_closes_the_case_once() {
        let faults = Faults::new();
        let (case, deps) = workflow(&faults);
        let review = case.review("run-2", "tenant-a").await;
        assert!(review.approved, "{review:?}");
        assert!(review.closed, "{review:?}");
        assert_eq!(deps.get("case_record").effects_of("run-2/close_case"), 1);
        // Running the same run again (a redelivered task) repeats nothing.
        case.review("run-2", "tenant-a").await;
        assert_eq!(deps.get("case_record").effects_of("run-2/close_case"), 1);
    }
}
