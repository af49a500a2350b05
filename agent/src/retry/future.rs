use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Boxed<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

pin_project! {
    /// The response of [`RetryService`](super::RetryService): the first
    /// success, or the last failure. The attempts with their backoff are
    /// async code with an unnameable future, hence one allocation per call.
    pub struct ResponseFuture<T, E> {
        #[pin]
        inner: Boxed<T, E>,
    }
}

impl<T, E> ResponseFuture<T, E> {
    pub(crate) fn new(inner: Boxed<T, E>) -> Self {
        ResponseFuture { inner }
    }
}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
