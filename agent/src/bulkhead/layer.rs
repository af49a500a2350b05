use super::future::BoxError;
use super::{BulkheadRejected, PartitionLimits, ResponseFuture};
use crate::request::{CallCount, GuardedRequest, dependency_of};
use crate::state::Enforcement;
use shared::policy::{ErrorClass, PartitionKey};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt};

/// Holds a slot in each of the dependency's bulkheads for the length of
/// the call: the partition is the request's value of the bulkhead's key
/// (see [`GuardedRequest::partition`]), its limits the bulkhead's or that
/// value's override, in the policy in force when the call starts. A call
/// finding the queue full, or waiting past the queue timeout (or the
/// request's deadline), fails with [`BulkheadRejected`] without reaching
/// the inner service. The partitions are the shared [`Enforcement`]'s, so
/// the guard and the layer share their slots.
#[derive(Clone, Debug)]
pub struct BulkheadLayer {
    state: Enforcement,
    dependency: Option<Arc<str>>,
}

impl BulkheadLayer {
    /// A layer using `state`'s bulkheads, policy and recorder (a
    /// [`crate::Guard`] derefs to its state).
    pub fn new(state: &Enforcement) -> BulkheadLayer {
        BulkheadLayer {
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

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            state: self.state.clone(),
            dependency: self.dependency.clone(),
        }
    }
}

/// The service [`BulkheadLayer`] makes. The call waits for its slots before
/// it calls a clone of the inner service, so the service must be `Clone`.
#[derive(Clone, Debug)]
pub struct BulkheadService<S> {
    inner: S,
    state: Enforcement,
    dependency: Option<Arc<str>>,
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    Req: GuardedRequest + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The partition, not the inner service, decides whether the call
        // can go; the inner service's readiness is awaited once a slot is
        // held (oneshot), so that waiting never holds a slot for nothing.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let state = self.state.clone();
        let inner = self.inner.clone();
        let policy = state.policy();
        let dependency = dependency_of(&req, self.dependency.as_deref()).to_owned();
        let stats = state.recorder().dependency(&dependency);
        let count = CallCount::begin(&mut req, &stats);
        let record = req.call_record().cloned();
        let deadline = req.deadline();
        let keys: Vec<String> = policy
            .dependency(&dependency)
            .map(|r| r.bulkheads.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|rule| {
                let key = rule.bulkhead.partition;
                req.partition(key)
                    // Without a tool name, the operation is the tool, as
                    // in the guard.
                    .or_else(|| {
                        (key == PartitionKey::Tool)
                            .then(|| req.operation())
                            .flatten()
                    })
                    .unwrap_or("_")
                    .to_owned()
            })
            .collect();
        ResponseFuture::new(Box::pin(async move {
            let rules = policy
                .dependency(&dependency)
                .map(|r| r.bulkheads.as_slice())
                .unwrap_or_default();
            let mut slots = Vec::with_capacity(rules.len());
            for (rule, key) in rules.iter().zip(&keys) {
                let limits = PartitionLimits::of(&rule.bulkhead, key);
                match state
                    .acquire_slot(rule, key, limits, deadline, &stats)
                    .await
                {
                    Ok(slot) => slots.push(slot),
                    Err(rejection) => {
                        stats.bulkhead_rejection();
                        if let Some(r) = &record {
                            r.set_outcome(Some(ErrorClass::Overloaded));
                        }
                        if let Some(c) = count {
                            c.finish(false);
                        }
                        return Err(BulkheadRejected(rejection).into());
                    }
                }
            }
            let out = inner.oneshot(req).await;
            drop(slots);
            if let Some(c) = count {
                c.finish(out.is_ok());
            }
            out.map_err(Into::into)
        }))
    }
}
