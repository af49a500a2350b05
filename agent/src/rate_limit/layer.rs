use super::future::{BoxError, Settle};
use super::{BudgetExhausted, RateLimited, ResponseFuture};
use crate::request::{CallCount, CallRecord, GuardedRequest, dependency_of};
use crate::state::Enforcement;
use shared::policy::ErrorClass;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Takes each call from its dependency's request rate (requests per second
/// with a burst), then reserves its usage estimate (see
/// [`GuardedRequest::estimate`]) from the service's and the dependency's
/// token budgets and the tenant's daily spend, before the call; a call
/// that cannot have either fails with [`RateLimited`] or
/// [`BudgetExhausted`] and never reaches the inner service. When the call
/// completes the reservation is settled with the usage reported into the
/// call's [`crate::request::CallRecord`], or the estimate. The buckets are
/// those of the shared [`Enforcement`], so the guard and the layer draw on
/// the same limits.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    state: Enforcement,
    dependency: Option<Arc<str>>,
}

impl RateLimitLayer {
    /// A layer using `state`'s limiters, policy and recorder (a
    /// [`crate::Guard`] derefs to its state).
    pub fn new(state: &Enforcement) -> RateLimitLayer {
        RateLimitLayer {
            state: state.clone(),
            dependency: None,
        }
    }

    /// The dependency of requests that name none.
    pub fn dependency(mut self, dependency: &str) -> Self {
        self.dependency = Some(Arc::from(dependency));
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            state: self.state.clone(),
            dependency: self.dependency.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] makes.
#[derive(Clone, Debug)]
pub struct RateLimitService<S> {
    inner: S,
    state: Enforcement,
    dependency: Option<Arc<str>>,
}

impl<S, Req> Service<Req> for RateLimitService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    Req: GuardedRequest,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let policy = self.state.policy();
        let dependency = dependency_of(&req, self.dependency.as_deref()).to_owned();
        let stats = self.state.recorder().dependency(&dependency);
        let count = CallCount::begin(&mut req, &stats);
        let record = req.call_record().cloned();
        if !self.state.check_request_rate(&policy, &dependency, &stats) {
            return refuse(
                record.as_ref(),
                count,
                ErrorClass::RateLimited,
                RateLimited::new().into(),
            );
        }
        let tenant = req.tenant().map(str::to_owned);
        let estimate = req.estimate();
        let reservation = match self.state.reserve_usage(
            &policy,
            &dependency,
            tenant.as_deref(),
            estimate,
            &stats,
        ) {
            Ok(r) => r,
            Err(refusal) => {
                return refuse(
                    record.as_ref(),
                    count,
                    ErrorClass::BudgetExceeded,
                    BudgetExhausted(refusal).into(),
                );
            }
        };
        let settle = Settle {
            state: self.state.clone(),
            reservation,
            estimate,
            tenant,
            stats,
            record: record.clone(),
            count,
        };
        ResponseFuture::running(self.inner.call(req), settle)
    }
}

/// Counts a refused call and answers it without calling.
fn refuse<F>(
    record: Option<&CallRecord>,
    count: Option<CallCount>,
    class: ErrorClass,
    error: BoxError,
) -> ResponseFuture<F> {
    if let Some(r) = record {
        r.set_outcome(Some(class));
    }
    if let Some(c) = count {
        c.finish(false);
    }
    ResponseFuture::refused(error)
}
