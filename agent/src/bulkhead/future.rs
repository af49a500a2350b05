use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A boxed error, as tower's own middleware return.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

pin_project! {
    /// The response of [`BulkheadService`](super::BulkheadService). Waiting
    /// in a partition's queue is async code with an unnameable future,
    /// hence one allocation per call.
    pub struct ResponseFuture<T> {
        #[pin]
        inner: Boxed<T>,
    }
}

impl<T> ResponseFuture<T> {
    pub(crate) fn new(inner: Boxed<T>) -> Self {
        ResponseFuture { inner }
    }
}

impl<T> Future for ResponseFuture<T> {
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
