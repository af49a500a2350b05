use super::{Guard, GuardFailure, ResponseFuture};
use crate::call::{Call, Classify};
use crate::request::GuardedRequest;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt};

/// Guards every call of the inner service as `operation` on `dependency`.
#[derive(Clone, Debug)]
pub struct GuardLayer {
    guard: Guard,
    dependency: Arc<str>,
    operation: Arc<str>,
}

impl GuardLayer {
    /// A layer guarding calls to `dependency` as `operation`.
    pub fn new(guard: Guard, dependency: &str, operation: &str) -> GuardLayer {
        GuardLayer {
            guard,
            dependency: Arc::from(dependency),
            operation: Arc::from(operation),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            guard: self.guard.clone(),
            dependency: self.dependency.clone(),
            operation: self.operation.clone(),
        }
    }
}

/// The service [`GuardLayer`] makes. Each attempt calls a clone of the inner
/// service with a clone of the request, so both must be `Clone`.
#[derive(Clone, Debug)]
pub struct GuardService<S> {
    inner: S,
    guard: Guard,
    dependency: Arc<str>,
    operation: Arc<str>,
}

impl<S, Req> Service<Req> for GuardService<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: Classify + Send + 'static,
    Req: GuardedRequest + Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = GuardFailure<S::Error>;
    type Future = ResponseFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is checked per attempt (oneshot), because the breaker
        // and bulkheads, not the inner service, decide whether a call goes.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let guard = self.guard.clone();
        let inner = self.inner.clone();
        let dependency = self.dependency.clone();
        let operation = self.operation.clone();
        ResponseFuture::new(Box::pin(async move {
            let tenant = req.tenant().map(str::to_owned);
            let mut call = Call::new(&dependency, &operation);
            if let Some(d) = req.deadline() {
                call = call.deadline(d);
            }
            if let Some(t) = tenant.as_deref() {
                call = call.tenant(t);
            }
            let g = guard
                .call(&call, move |attempt| {
                    let mut req = req.clone();
                    if let Some(d) = attempt.deadline {
                        req.set_attempt_deadline(d);
                    }
                    inner.clone().oneshot(req)
                })
                .await;
            let degradation = g.degradation.map(|d| *d).unwrap_or_default();
            g.result.map_err(|error| GuardFailure {
                error,
                status: g.status,
                user_message: degradation.user_message,
                fallback: degradation.fallback,
                fail_closed: degradation.fail_closed,
            })
        }))
    }
}
