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

use crate::deps::Dependencies;
use crate::outcome::Outcome;
use agent::{Call, Deadline, Guard, Guarded, Request};
use shared::policy::{DegradedStatus, Effect};

/// The service this workflow is.
pub const SERVICE: &str = "case-review-agent";

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
}

/// The workflow of one instance.
#[derive(Debug, Clone)]
pub struct CaseReview {
    guard: Guard,
    deps: Dependencies,
}

impl CaseReview {
    /// A workflow calling `deps` under `guard`.
    pub fn new(guard: Guard, deps: Dependencies) -> CaseReview {
        CaseReview { guard, deps }
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
    ) -> Guarded<(), agent::DependencyError> {
        let dep = self.deps.get(dependency);
        self.guard
            .call(
                &CaseReview::describe(dependency, operation, stage, tenant, deadline),
                |_| dep.call(),
            )
            .await
    }

    /// A write of `(dependency, operation, stage)` under `key`.
    async fn write(
        &self,
        (dependency, operation, stage): (&str, &str, &str),
        tenant: &str,
        key: &str,
        effect: Effect,
        deadline: Option<Deadline>,
    ) -> Guarded<bool, agent::DependencyError> {
        let dep = self.deps.get(dependency);
        self.guard
            .call(
                &CaseReview::describe(dependency, operation, stage, tenant, deadline)
                    .idempotency_key(key)
                    .effect(effect),
                |attempt| async move {
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
        let mut review = Review {
            outcome: Outcome::default(),
            approved: false,
            closed: false,
            notified: false,
        };
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
        let deadline = admitted.deadline;
        let out = &mut review.outcome;
        out.admitted(admitted.mode, admitted.user_message.as_deref());
        if !out.may_continue() {
            return review;
        }

        let auth = self
            .read("identity", "authorize", "intake", tenant, deadline)
            .await;
        if !out.absorb(&auth) {
            out.worsen(DegradedStatus::Refused, None);
            return review;
        }
        let key = |node: &str| format!("{run_id}/{node}");
        let checkpoint = self
            .write(
                ("checkpoint_store", "save_checkpoint", "intake"),
                tenant,
                &key("intake"),
                Effect::Write,
                deadline,
            )
            .await;
        // Without a checkpoint a crash would lose the run: stop here.
        if !out.absorb(&checkpoint) || !out.may_continue() {
            out.worsen(DegradedStatus::Paused, None);
            return review;
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
                return review;
            }
        }
        // Optional evidence: labelled and skipped when it fails.
        let (prior, reranked) = tokio::join!(
            self.read("prior_decisions", "search", "retrieval", tenant, deadline),
            self.read("reranker", "rerank", "retrieval", tenant, deadline),
        );
        out.absorb(&prior);
        out.absorb(&reranked);
        for (operation, stage) in [("summarize", "summarise"), ("draft", "draft")] {
            let step = self
                .read("model_provider", operation, stage, tenant, deadline)
                .await;
            if !out.absorb(&step) {
                // Resumes from its checkpoint when the provider is back.
                out.worsen(DegradedStatus::Queued, None);
                return review;
            }
        }
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
            )
            .await;
        if !out.absorb(&closed) {
            out.worsen(DegradedStatus::Paused, None);
            return review;
        }
        review.closed = true;
        // External notices are held while the review is degraded: the
        // policy forbids sending one in degraded mode.
        if out.status != DegradedStatus::Normal {
            out.worsen(
                DegradedStatus::Queued,
                Some("The notice is held until the review runs normally again.".into()),
            );
            return review;
        }
        let notice = self
            .write(
                ("notification_api", "send_notice", "act"),
                tenant,
                &key("send_notice"),
                Effect::Destructive,
                deadline,
            )
            .await;
        review.notified = out.absorb(&notice);
        review
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{FaultSpec, Faults};
    use agent::{CompiledPolicy, SplitMix64, policy_channel};
    use shared::policy::Policy;
    use shared::protocol::PolicySource;
    use std::sync::Arc;

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
        (CaseReview::new(guard, deps.clone()), deps)
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
