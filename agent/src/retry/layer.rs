use super::ResponseFuture;
use super::RetryPlan;
use crate::deadline::Deadline;
use crate::request::{ByError, CallCount, Classifier, GuardedRequest, dependency_of};
use crate::state::Enforcement;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// Retries failed calls as [`crate::Guard::call`] does, with the same retry
/// budget: only failures whose class is retryable and listed in the
/// dependency's retry policy, only operations free of side effects or
/// carrying an idempotency key, at most the policy's attempts, after its
/// backoff, and never when the backoff would outlast the request's
/// deadline. Each attempt gets the deadline of the dependency's timeout (see
/// [`GuardedRequest::set_attempt_deadline`]) for an inner deadline layer to
/// enforce and send on.
#[derive(Clone, Debug)]
pub struct RetryLayer<C = ByError> {
    state: Enforcement,
    dependency: Option<Arc<str>>,
    classifier: C,
}

impl RetryLayer {
    /// A layer using `state`'s retry budget, jitter, policy and recorder
    /// (a [`crate::Guard`] derefs to its state), classing errors by their
    /// [`crate::Classify`].
    pub fn new(state: &Enforcement) -> RetryLayer {
        RetryLayer {
            state: state.clone(),
            dependency: None,
            classifier: ByError,
        }
    }
}

impl<C> RetryLayer<C> {
    /// The dependency of requests that name none.
    pub fn dependency(mut self, dependency: &str) -> Self {
        self.dependency = Some(Arc::from(dependency));
        self
    }

    /// Classes outcomes with `classifier` instead, so that a failed
    /// response (an HTTP 503, say) is retried too.
    pub fn classifier<C2>(self, classifier: C2) -> RetryLayer<C2> {
        RetryLayer {
            state: self.state,
            dependency: self.dependency,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = RetryService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            state: self.state.clone(),
            dependency: self.dependency.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// The service [`RetryLayer`] makes. Each attempt calls a clone of the
/// inner service with a clone of the request, so both must be `Clone`.
#[derive(Clone, Debug)]
pub struct RetryService<S, C = ByError> {
    inner: S,
    state: Enforcement,
    dependency: Option<Arc<str>>,
    classifier: C,
}

impl<S, C, Req> Service<Req> for RetryService<S, C>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    C: Classifier<S::Response, S::Error> + Clone + Send + 'static,
    Req: GuardedRequest + Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each attempt awaits the readiness of its own clone (oneshot):
        // a retry is made long after this readiness would have been used.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let state = self.state.clone();
        let inner = self.inner.clone();
        let classifier = self.classifier.clone();
        // The policy of the whole call: a swap mid-call changes nothing.
        let policy = state.policy();
        let dependency = dependency_of(&req, self.dependency.as_deref()).to_owned();
        let stats = state.recorder().dependency(&dependency);
        let count = CallCount::begin(&mut req, &stats);
        let record = req.call_record().cloned();
        if let Some(r) = &record {
            r.attempts_timed();
        }
        let operation = req.operation().unwrap_or_default().to_owned();
        let effect = req.effect();
        let keyed = req.idempotency_key().is_some();
        let deadline = req.deadline();
        ResponseFuture::new(Box::pin(async move {
            let per_attempt = policy.dependency(&dependency).and_then(|r| r.timeout);
            let mut plan =
                RetryPlan::start(&state, &policy, &dependency, &operation, effect, keyed);
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                let mut attempt = req.clone();
                let attempt_deadline = match (deadline, per_attempt) {
                    (Some(d), Some(t)) => Some(d.stage(t)),
                    (None, Some(t)) => Some(Deadline::after(t)),
                    (d, None) => d,
                };
                if let Some(d) = attempt_deadline {
                    attempt.set_attempt_deadline(d);
                }
                let began = Instant::now();
                let out = inner.clone().oneshot(attempt).await;
                stats.latency(began.elapsed());
                let class = classifier.classify(&out);
                if let Some(r) = &record {
                    r.set_outcome(class);
                }
                let delay =
                    class.and_then(|c| plan.next_delay(&state, c, attempts, deadline, &stats));
                let Some(delay) = delay else {
                    if let Some(c) = count {
                        c.finish(out.is_ok());
                    }
                    return out;
                };
                tokio::time::sleep(delay).await;
                stats.retry();
            }
        }))
    }
}
