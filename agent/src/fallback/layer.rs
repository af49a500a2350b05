use super::ResponseFuture;
use super::error::BoxError;
use super::future::{Label, degrade};
use crate::request::{
    ByError, CallCount, Classifier, GuardedRequest, UNNAMED_DEPENDENCY, dependency_of,
};
use crate::state::Enforcement;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Labels each call's outcome per the fallback matrix of the policy in
/// force when the call starts, as [`crate::Guard::call`] does: a success passes
/// through (its status is normal); a failure becomes a
/// [`Degraded`](super::Degraded) with the status, the user message, the
/// allowed fallback and any must-fail-closed invariant. Put it outermost,
/// so that it sees what is left after the retries, the breaker, the
/// bulkheads and the rate limits: their refusals are failures it labels
/// too (an open breaker by the matrix's `breaker_open` row, else as an
/// unavailable dependency). Fallbacks taken and degraded answers are
/// counted in the dependency's telemetry.
#[derive(Clone, Debug)]
pub struct FallbackLayer<C = ByError> {
    state: Enforcement,
    dependency: Option<Arc<str>>,
    classifier: C,
}

impl FallbackLayer {
    /// A layer using `state`'s policy and recorder (a [`crate::Guard`]
    /// derefs to its state), classing errors by their [`crate::Classify`]
    /// and every response as a success.
    pub fn new(state: &Enforcement) -> FallbackLayer {
        FallbackLayer {
            state: state.clone(),
            dependency: None,
            classifier: ByError,
        }
    }
}

impl<C> FallbackLayer<C> {
    /// The dependency of requests that name none.
    pub fn dependency(mut self, dependency: &str) -> Self {
        self.dependency = Some(Arc::from(dependency));
        self
    }

    /// Classes outcomes with `classifier` instead, so that a failed
    /// response (an HTTP 503, say) is labelled too.
    pub fn classifier<C2>(self, classifier: C2) -> FallbackLayer<C2> {
        FallbackLayer {
            state: self.state,
            dependency: self.dependency,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for FallbackLayer<C> {
    type Service = FallbackService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        FallbackService {
            inner,
            state: self.state.clone(),
            dependency: self.dependency.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// The service [`FallbackLayer`] makes.
#[derive(Clone, Debug)]
pub struct FallbackService<S, C = ByError> {
    inner: S,
    state: Enforcement,
    dependency: Option<Arc<str>>,
    classifier: C,
}

impl<S, C, Req> Service<Req> for FallbackService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, S::Error> + Clone,
    Req: GuardedRequest,
{
    type Response = S::Response;
    type Error = super::Degraded;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A stack that cannot take calls fails them all: labelled too.
        self.inner.poll_ready(cx).map_err(|e| {
            let error: BoxError = e.into();
            let class = crate::Classify::class(&error);
            let dependency = self.dependency.as_deref().unwrap_or(UNNAMED_DEPENDENCY);
            let stats = self.state.recorder().dependency(dependency);
            degrade(&self.state.policy(), dependency, &stats, error, class)
        })
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let policy = self.state.policy();
        let dependency = dependency_of(&req, self.dependency.as_deref()).to_owned();
        let stats = self.state.recorder().dependency(&dependency);
        let count = CallCount::begin(&mut req, &stats);
        let record = req.call_record().cloned();
        let label = Label {
            policy,
            dependency,
            stats,
            classifier: self.classifier.clone(),
            record,
            count,
        };
        ResponseFuture::new(self.inner.call(req), label)
    }
}
