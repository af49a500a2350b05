use super::future::BoxError;
use super::{Deadline, ResponseFuture};
use crate::compiled::PolicyReceiver;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Starts each incoming request's [`Deadline`] (from its header or the
/// policy's total budget), stores it in the request's extensions, and
/// bounds the inner service by it.
#[derive(Clone)]
pub struct DeadlineLayer {
    policy: PolicyReceiver,
}

impl DeadlineLayer {
    /// A layer that reads the total budget from the policy in force.
    pub fn new(policy: PolicyReceiver) -> DeadlineLayer {
        DeadlineLayer { policy }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service [`DeadlineLayer`] makes.
#[derive(Clone)]
pub struct DeadlineService<S> {
    inner: S,
    policy: PolicyReceiver,
}

impl<S, B> Service<http::Request<B>> for DeadlineService<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let deadline = {
            let policy = self.policy.borrow();
            Deadline::for_incoming(req.headers(), &policy)
        };
        match deadline {
            Some(d) if d.is_expired() => ResponseFuture::expired(),
            Some(d) => {
                req.extensions_mut().insert(d);
                let sleep = tokio::time::sleep_until(d.instant());
                ResponseFuture::running(self.inner.call(req), sleep)
            }
            // No header and no budget: nothing to bound by. A far-off sleep
            // keeps one future type for both cases.
            None => ResponseFuture::running(
                self.inner.call(req),
                tokio::time::sleep(std::time::Duration::from_secs(86_400 * 365)),
            ),
        }
    }
}

/// Writes the remaining time of the [`Deadline`] found in an outgoing
/// request's extensions into its `ballast-deadline` header, refuses to send
/// a request whose deadline has passed, and bounds the call by it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PropagateDeadlineLayer;

impl<S> Layer<S> for PropagateDeadlineLayer {
    type Service = PropagateDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PropagateDeadline { inner }
    }
}

/// The service [`PropagateDeadlineLayer`] makes.
#[derive(Clone, Debug)]
pub struct PropagateDeadline<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for PropagateDeadline<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match req.extensions().get::<Deadline>().copied() {
            Some(d) if d.is_expired() => ResponseFuture::expired(),
            Some(d) => {
                d.propagate(req.headers_mut());
                ResponseFuture::running(self.inner.call(req), tokio::time::sleep_until(d.instant()))
            }
            None => ResponseFuture::running(
                self.inner.call(req),
                tokio::time::sleep(std::time::Duration::from_secs(86_400 * 365)),
            ),
        }
    }
}
