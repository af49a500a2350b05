use super::{Breaker, BreakerOpen, CallOutcome, Ticket};
use crate::request::{CallCount, CallRecord, Classifier};
use crate::state::Enforcement;
use crate::telemetry::DependencyStats;
use pin_project_lite::pin_project;
use shared::policy::BreakerPolicy;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::time::Instant;

/// A boxed error, as tower's own middleware return.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a call admitted by the breaker reports back when it completes.
pub(crate) struct Watch<C> {
    pub(crate) state: Enforcement,
    pub(crate) breaker: Option<(Arc<Breaker>, BreakerPolicy, Ticket)>,
    pub(crate) stats: Arc<DependencyStats>,
    pub(crate) classifier: C,
    pub(crate) record: Option<CallRecord>,
    pub(crate) count: Option<CallCount>,
    pub(crate) began: Instant,
}

pin_project! {
    /// The inner service's response, or [`BreakerOpen`] when the breaker
    /// refused the call (in which case the inner service was never called).
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: Option<F>,
        watch: Option<Watch<C>>,
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn refused() -> Self {
        ResponseFuture {
            inner: None,
            watch: None,
        }
    }

    pub(crate) fn running(inner: F, watch: Watch<C>) -> Self {
        ResponseFuture {
            inner: Some(inner),
            watch: Some(watch),
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classifier<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Err(BreakerOpen::new().into()));
        };
        let out = ready!(inner.poll(cx));
        if let Some(w) = this.watch.take() {
            let class = w.classifier.classify(&out);
            if let Some((breaker, policy, ticket)) = w.breaker {
                let mut transitions = Vec::new();
                breaker.record(
                    &policy,
                    ticket,
                    CallOutcome::of(class, w.began.elapsed()),
                    &mut transitions,
                );
                w.state.record_transitions(&w.stats, &mut transitions);
            }
            if let Some(r) = &w.record {
                r.set_outcome(class);
            }
            if let Some(c) = w.count {
                c.finish(out.is_ok());
            }
        }
        Poll::Ready(out.map_err(Into::into))
    }
}
