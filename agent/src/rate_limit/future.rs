use super::Reservation;
use crate::call::Usage;
use crate::request::{CallCount, CallRecord};
use crate::state::Enforcement;
use crate::telemetry::DependencyStats;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

/// A boxed error, as tower's own middleware return.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a call that reserved its estimate settles when it completes.
pub(crate) struct Settle {
    pub(crate) state: Enforcement,
    pub(crate) reservation: Reservation,
    pub(crate) estimate: Usage,
    pub(crate) tenant: Option<String>,
    pub(crate) stats: Arc<DependencyStats>,
    pub(crate) record: Option<CallRecord>,
    pub(crate) count: Option<CallCount>,
}

pin_project! {
    /// The inner service's response, or the refusal ([`RateLimited`](super::RateLimited)
    /// or [`BudgetExhausted`](super::BudgetExhausted)) of a call that was
    /// never made. A call dropped before it completes leaves its cost
    /// estimate spent, since the provider may well have done the work.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        refusal: Option<BoxError>,
        settle: Option<Settle>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn refused(refusal: BoxError) -> Self {
        ResponseFuture {
            inner: None,
            refusal: Some(refusal),
            settle: None,
        }
    }

    pub(crate) fn running(inner: F, settle: Settle) -> Self {
        ResponseFuture {
            inner: Some(inner),
            refusal: None,
            settle: Some(settle),
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let refusal = this.refusal.take();
            return Poll::Ready(Err(
                refusal.unwrap_or_else(|| "polled after completion".into())
            ));
        };
        let out = ready!(inner.poll(cx));
        if let Some(s) = this.settle.take() {
            // Without a report from the dependency, the estimate stands.
            let used = s
                .record
                .as_ref()
                .and_then(CallRecord::usage)
                .unwrap_or(s.estimate);
            s.state
                .settle_usage(s.reservation, used, s.tenant.as_deref(), &s.stats);
            if let Some(c) = s.count {
                c.finish(out.is_ok());
            }
        }
        Poll::Ready(out.map_err(Into::into))
    }
}
