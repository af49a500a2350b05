//! Group commit: one task owns a kind of write, takes every request waiting
//! at the moment, stores them all in one transaction and only then answers
//! each. Under load the groups grow by themselves (whatever queued during
//! one commit goes into the next), so one fsync acknowledges many writes;
//! when idle a group is a single write and adds no delay.

use crate::error::{ApiError, ApiResult};
use crate::store::StoreResult;
use std::future::Future;
use tokio::sync::{mpsc, oneshot};

struct Job<W, R> {
    write: W,
    reply: oneshot::Sender<ApiResult<R>>,
}

/// The handle that request handlers submit writes through.
#[derive(Debug)]
pub struct GroupCommit<W, R> {
    tx: mpsc::Sender<Job<W, R>>,
}

impl<W, R> Clone for GroupCommit<W, R> {
    fn clone(&self) -> Self {
        GroupCommit {
            tx: self.tx.clone(),
        }
    }
}

impl<W, R> std::fmt::Debug for Job<W, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl<W: Send + 'static, R: Send + 'static> GroupCommit<W, R> {
    /// Starts the writer task, which ends when every handle is dropped.
    /// `commit` stores a group in one transaction and answers one result
    /// per write, in order; if it fails, nothing of the group was stored and
    /// every sender gets the error (and may resend). At most `max_group`
    /// writes go into one transaction; past `queue` waiting, submitters wait
    /// too (backpressure).
    pub fn spawn<F, Fut>(max_group: usize, queue: usize, commit: F) -> GroupCommit<W, R>
    where
        F: Fn(Vec<W>) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<Vec<R>>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<Job<W, R>>(queue);
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(max_group);
            while rx.recv_many(&mut jobs, max_group).await > 0 {
                let (writes, replies): (Vec<W>, Vec<_>) =
                    jobs.drain(..).map(|j| (j.write, j.reply)).unzip();
                match commit(writes).await {
                    Ok(results) => {
                        for (reply, r) in replies.into_iter().zip(results) {
                            let _ = reply.send(Ok(r));
                        }
                    }
                    Err(e) => {
                        let err = ApiError::from(e);
                        for reply in replies {
                            let _ = reply.send(Err(err.clone()));
                        }
                    }
                }
            }
        });
        GroupCommit { tx }
    }

    /// Stores one write durably, with whatever else is waiting, and answers
    /// its result.
    pub async fn write(&self, write: W) -> ApiResult<R> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { write, reply })
            .await
            .map_err(|_| ApiError::unavailable())?;
        answer.await.map_err(|_| ApiError::unavailable())?
    }
}
