use super::error::BoxError;
use super::{Degraded, FailedResponse, Resolution, failure_type_of, resolve_counted};
use crate::compiled::CompiledPolicy;
use crate::request::{CallCount, CallRecord, Classifier};
use crate::telemetry::DependencyStats;
use pin_project_lite::pin_project;
use shared::policy::{ErrorClass, FailureType};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

/// What a call needs to label its outcome when it completes.
pub(crate) struct Label<C> {
    pub(crate) policy: Arc<CompiledPolicy>,
    pub(crate) dependency: String,
    pub(crate) stats: Arc<DependencyStats>,
    pub(crate) classifier: C,
    pub(crate) record: Option<CallRecord>,
    pub(crate) count: Option<CallCount>,
}

pin_project! {
    /// The inner service's response, or [`Degraded`].
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: F,
        label: Option<Label<C>>,
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn new(inner: F, label: Label<C>) -> Self {
        ResponseFuture {
            inner,
            label: Some(label),
        }
    }
}

/// The row of the matrix a failure looks up: an open breaker and a refused
/// budget are failures of their own kind, whatever class they count as.
fn failure_type(error: &BoxError, class: ErrorClass) -> Option<FailureType> {
    if error.is::<crate::breaker::BreakerOpen>() {
        Some(FailureType::BreakerOpen)
    } else if error.is::<crate::rate_limit::BudgetExhausted>() {
        None
    } else {
        failure_type_of(class)
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classifier<T, E>,
{
    type Output = Result<T, Degraded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        let label = this
            .label
            .take()
            .expect("the fallback future polled after it completed");
        let class = label.classifier.classify(&out);
        let (error, class) = match (out, class) {
            (Ok(response), None) => {
                if let Some(c) = label.count {
                    c.finish(true);
                }
                return Poll::Ready(Ok(response));
            }
            (Ok(_), Some(class)) => (BoxError::from(FailedResponse { class }), class),
            (Err(e), class) => {
                let error: BoxError = e.into();
                let class = class.unwrap_or_else(|| crate::Classify::class(&error));
                (error, class)
            }
        };
        if let Some(r) = &label.record {
            r.set_outcome(Some(class));
        }
        if let Some(c) = label.count {
            c.finish(false);
        }
        Poll::Ready(Err(degrade(
            &label.policy,
            &label.dependency,
            &label.stats,
            error,
            class,
        )))
    }
}

/// Labels a failure of `dependency` per `policy`, counting the fallback and
/// the degraded answer.
pub(crate) fn degrade(
    policy: &CompiledPolicy,
    dependency: &str,
    stats: &DependencyStats,
    error: BoxError,
    class: ErrorClass,
) -> Degraded {
    let Resolution {
        status,
        degradation,
    } = resolve_counted(
        policy,
        dependency,
        failure_type(&error, class),
        // A tower request carries no risk or feature: it is judged at the
        // service's tier, the strict reading.
        &crate::routing::ModelRequest::new(),
        stats,
    );
    Degraded {
        error,
        class,
        status,
        user_message: degradation.user_message,
        fallback: degradation.fallback,
        fail_closed: degradation.fail_closed,
    }
}
