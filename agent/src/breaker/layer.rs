use super::ResponseFuture;
use super::future::{BoxError, Watch};
use crate::request::{ByError, CallCount, Classifier, GuardedRequest, dependency_of};
use crate::state::Enforcement;
use shared::policy::ErrorClass;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower::{Layer, Service};

/// Puts each call behind its dependency's circuit breaker: the same
/// breaker of the shared [`Enforcement`] that [`crate::Guard::call`] uses, with the parameters of the policy in force
/// when the call starts. A refused call fails with
/// [`BreakerOpen`](super::BreakerOpen) without reaching the inner service;
/// an admitted one's outcome, sorted by the classifier, feeds the breaker.
#[derive(Clone, Debug)]
pub struct BreakerLayer<C = ByError> {
    state: Enforcement,
    dependency: Option<Arc<str>>,
    classifier: C,
}

impl BreakerLayer {
    /// A layer using `state`'s breakers, policy and recorder (a
    /// [`crate::Guard`] derefs to its state), classing errors by their
    /// [`crate::Classify`].
    pub fn new(state: &Enforcement) -> BreakerLayer {
        BreakerLayer {
            state: state.clone(),
            dependency: None,
            classifier: ByError,
        }
    }
}

impl<C> BreakerLayer<C> {
    /// The dependency of requests that name none.
    pub fn dependency(mut self, dependency: &str) -> Self {
        self.dependency = Some(Arc::from(dependency));
        self
    }

    /// Classes outcomes with `classifier` instead.
    pub fn classifier<C2>(self, classifier: C2) -> BreakerLayer<C2> {
        BreakerLayer {
            state: self.state,
            dependency: self.dependency,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = BreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            state: self.state.clone(),
            dependency: self.dependency.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// The service [`BreakerLayer`] makes.
#[derive(Clone, Debug)]
pub struct BreakerService<S, C = ByError> {
    inner: S,
    state: Enforcement,
    dependency: Option<Arc<str>>,
    classifier: C,
}

impl<S, C, Req> Service<Req> for BreakerService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, S::Error> + Clone,
    Req: GuardedRequest,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let policy = self.state.policy();
        let dependency = dependency_of(&req, self.dependency.as_deref()).to_owned();
        let stats = self.state.recorder().dependency(&dependency);
        let count = CallCount::begin(&mut req, &stats);
        let record = req.call_record().cloned();
        let breaker = match policy
            .dependency(&dependency)
            .and_then(|r| r.breaker.clone())
        {
            Some(bp) => {
                let breaker = self.state.breaker(&dependency);
                let mut transitions = Vec::new();
                let ticket = breaker.acquire(&bp, &mut transitions);
                self.state.record_transitions(&stats, &mut transitions);
                match ticket {
                    Ok(ticket) => Some((breaker, bp, ticket)),
                    Err(_refused) => {
                        stats.breaker_rejection();
                        if let Some(r) = &record {
                            r.set_outcome(Some(ErrorClass::Unavailable));
                        }
                        if let Some(c) = count {
                            c.finish(false);
                        }
                        return ResponseFuture::refused();
                    }
                }
            }
            None => None,
        };
        let watch = Watch {
            state: self.state.clone(),
            breaker,
            stats,
            classifier: self.classifier.clone(),
            record,
            count,
            began: Instant::now(),
        };
        ResponseFuture::running(self.inner.call(req), watch)
    }
}
