//! The RAG answer pipeline (service `rag-answer`): authorise, plan the
//! query, embed it, search the vector index and the keyword index side by
//! side, rerank, generate, validate. Every dependency call goes through the
//! [`Guard`], which applies the deadline, stage budgets, retries, breakers,
//! bulkheads and budgets of the policy in force and says what a failure
//! turns into; the pipeline only follows what it is told.

use crate::deps::Dependencies;
use crate::outcome::Outcome;
use agent::{Call, Deadline, Guard, Request, Usage};
use shared::policy::{DegradedStatus, FallbackAction};

/// The service this pipeline is.
pub const SERVICE: &str = "rag-answer";

/// One question from one tenant.
#[derive(Debug, Clone)]
pub struct Question {
    /// Who asks; partitions bulkheads and is charged the cost.
    pub tenant: String,
}

/// The pipeline of one instance.
#[derive(Debug, Clone)]
pub struct RagPipeline {
    guard: Guard,
    deps: Dependencies,
}

/// The dependency that serves `model`: the secondary provider's models
/// live there, everything else on the primary provider.
fn provider_of(model: &str) -> &'static str {
    if model.starts_with("secondary") {
        "secondary_provider"
    } else {
        "model_provider"
    }
}

impl RagPipeline {
    /// A pipeline calling `deps` under `guard`.
    pub fn new(guard: Guard, deps: Dependencies) -> RagPipeline {
        RagPipeline { guard, deps }
    }

    fn call<'a>(
        dependency: &'a str,
        operation: &'a str,
        stage: &'a str,
        q: &'a Question,
        deadline: Option<Deadline>,
    ) -> Call<'a> {
        let call = Call::new(dependency, operation)
            .stage(stage)
            .tenant(&q.tenant);
        match deadline {
            Some(d) => call.deadline(d),
            None => call,
        }
    }

    async fn plain(
        &self,
        dependency: &str,
        operation: &str,
        stage: &str,
        q: &Question,
        deadline: Option<Deadline>,
    ) -> agent::Guarded<(), agent::DependencyError> {
        let dep = self.deps.get(dependency);
        self.guard
            .call(
                &RagPipeline::call(dependency, operation, stage, q, deadline),
                |_| dep.call(),
            )
            .await
    }

    /// Answers `q`, or says why not.
    pub async fn answer(&self, q: &Question) -> Outcome {
        let admitted = match self
            .guard
            .admit(Request {
                tenant: Some(&q.tenant),
                ..Request::default()
            })
            .await
        {
            Ok(a) => a,
            Err(refusal) => return Outcome::refused_at_admission(&refusal),
        };
        let out = self.answer_admitted(q, &admitted).await;
        // The request's record: what the objectives are measured on.
        admitted.finish(out.status);
        out
    }

    async fn answer_admitted(&self, q: &Question, admitted: &agent::Admitted) -> Outcome {
        let deadline = admitted.deadline;
        let mut out = Outcome::default();
        out.admitted(admitted.mode, admitted.user_message.as_deref());
        if !out.may_continue() {
            return out;
        }

        // Authorisation fails closed: nothing is retrieved for a caller
        // who cannot be checked.
        let auth = self
            .plain("identity", "authorize", "api_auth", q, deadline)
            .await;
        if !out.absorb(&auth) {
            out.worsen(DegradedStatus::Refused, None);
            return out;
        }
        // Optional steps: a failure is labelled and skipped.
        let planned = self
            .plain("query_planner", "plan", "query_planning", q, deadline)
            .await;
        out.absorb(&planned);
        let embedded = self
            .plain("embedding", "embed", "embedding", q, deadline)
            .await;
        let embedded = out.absorb(&embedded);

        // Both searches at once; without an embedding there is nothing to
        // search the vector index with.
        let (vector, lexical) = tokio::join!(
            async {
                if embedded {
                    Some(
                        self.plain("vector_db", "search", "retrieval", q, deadline)
                            .await,
                    )
                } else {
                    None
                }
            },
            self.plain("lexical_search", "search", "retrieval", q, deadline),
        );
        if let Some(v) = &vector {
            out.absorb(v);
        }
        // The keyword index is the floor: without it there is no evidence,
        // and the policy never lets the model answer from memory.
        if !out.absorb(&lexical) {
            out.worsen(DegradedStatus::Refused, None);
            return out;
        }
        let reranked = self
            .plain("reranker", "rerank", "reranking", q, deadline)
            .await;
        out.absorb(&reranked);

        if !self.generate(q, deadline, &mut out).await {
            out.worsen(DegradedStatus::Refused, None);
            return out;
        }
        let judged = self
            .plain("validation_judge", "judge", "validation", q, deadline)
            .await;
        out.absorb(&judged);
        out
    }

    /// Generation on the primary model, then on the fallback model the
    /// policy names for the failure, if it names one.
    async fn generate(&self, q: &Question, deadline: Option<Deadline>, out: &mut Outcome) -> bool {
        let estimate = Usage {
            tokens: 1500,
            cost_usd_micros: 4_000,
        };
        let primary = self.deps.get("model_provider");
        let first = self
            .guard
            .call(
                &RagPipeline::call("model_provider", "generate", "generation", q, deadline)
                    .model("large-2026-01")
                    .estimate(estimate),
                |attempt| async move {
                    primary.call().await?;
                    attempt.record_usage(Usage {
                        tokens: 1400,
                        cost_usd_micros: 3_600,
                    });
                    Ok::<_, agent::DependencyError>(())
                },
            )
            .await;
        if out.absorb(&first) {
            return true;
        }
        let Some(FallbackAction::AlternateModel { model }) =
            first.fallback().map(|f| f.action.clone())
        else {
            return false;
        };
        let provider = provider_of(&model);
        let dep = self.deps.get(provider);
        let second = self
            .guard
            .call(
                &RagPipeline::call(provider, "generate", "generation", q, deadline)
                    .model(&model)
                    .estimate(estimate),
                |_| dep.call(),
            )
            .await;
        out.absorb(&second)
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

    fn pipeline(faults: &Faults) -> (RagPipeline, Guard) {
        let policy =
            Policy::from_yaml(include_str!("../../examples/policies/rag-answer.yaml")).unwrap();
        // The policy never changes here; a receiver keeps the last value
        // after its sender is gone.
        let (_, rx) = policy_channel(CompiledPolicy::compile(
            policy,
            Some(1),
            PolicySource::Server,
        ));
        let guard = Guard::builder(rx)
            .random(Arc::new(SplitMix64::seeded(5)))
            .build();
        // The catalogue's small error rates, on a fixed seed.
        let deps = Dependencies::new(faults, 9);
        (RagPipeline::new(guard.clone(), deps), guard)
    }

    fn outage() -> FaultSpec {
        FaultSpec {
            outage: true,
            ..FaultSpec::default()
        }
    }

    fn q() -> Question {
        Question {
            tenant: "tenant-a".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reranker_outage_degrades_the_answer_then_its_breaker_opens() {
        let faults = Faults::new();
        let (rag, guard) = pipeline(&faults);
        faults.set("reranker", outage()).unwrap();
        let mut last = Outcome::default();
        for _ in 0..5 {
            last = rag.answer(&q()).await;
        }
        // The baseline error rates are low but not zero; the reranker's
        // own row is what must be there.
        assert!(
            last.fallbacks.contains(&"reranker/any".to_owned()),
            "{last:?}"
        );
        assert!(last.status >= DegradedStatus::Degraded);
        assert!(
            last.messages
                .contains(&"Results are ranked more coarsely than usual.".to_owned())
        );
        assert_eq!(
            guard.breaker_state("reranker"),
            Some(shared::protocol::BreakerState::Open),
            "three consecutive failures open it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_keyword_search_there_is_no_answer() {
        let faults = Faults::new();
        let (rag, _) = pipeline(&faults);
        faults.set("lexical_search", outage()).unwrap();
        let out = rag.answer(&q()).await;
        assert_eq!(out.status, DegradedStatus::Refused);
        assert_eq!(out.confidence_percent, 0);
        assert!(
            out.messages.contains(
                &"We cannot search the policy library right now, so we cannot answer.".to_owned()
            ),
            "{out:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_primary_model_outage_answers_from_the_secondary_provider() {
        let faults = Faults::new();
        let (rag, _) = pipeline(&faults);
        faults.set("model_provider", outage()).unwrap();
        let out = rag.answer(&q()).await;
        assert!(
            out.fallbacks
                .contains(&"model_provider/unavailable".to_owned()),
            "{out:?}"
        );
        assert!(
            out.messages
                .contains(&"This answer comes from our backup model.".to_owned())
        );
        assert!(out.status < DegradedStatus::Refused, "{out:?}");
    }
}
