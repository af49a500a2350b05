use super::Expired;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::time::Sleep;

/// A boxed error, as tower's own middleware return.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// The inner service's response, or [`Expired`] when the deadline comes
    /// first (or had already come, in which case the inner service was never
    /// called).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Expired,
        Running {
            #[pin]
            inner: F,
            #[pin]
            sleep: Sleep,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn expired() -> Self {
        ResponseFuture {
            state: State::Expired,
        }
    }

    pub(crate) fn running(inner: F, sleep: Sleep) -> Self {
        ResponseFuture {
            state: State::Running { inner, sleep },
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
        match self.project().state.project() {
            StateProj::Expired => Poll::Ready(Err(Expired::new().into())),
            StateProj::Running { inner, sleep } => {
                // The inner future first: an answer that is ready when the
                // deadline strikes is still an answer.
                if let Poll::Ready(out) = inner.poll(cx) {
                    return Poll::Ready(out.map_err(Into::into));
                }
                ready!(sleep.poll(cx));
                Poll::Ready(Err(Expired::new().into()))
            }
        }
    }
}
