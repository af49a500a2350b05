//! Group commit for telemetry. One task per replica owns the writes: it takes
//! every batch waiting at the moment, records them all in one transaction and
//! only then answers each. Under load the groups grow by themselves (whatever
//! queued during one commit goes into the next), so one fsync acknowledges
//! many batches; when idle a group is a single batch and adds no delay.

use crate::clock::Clock;
use crate::error::{ApiError, ApiResult};
use crate::store::{BatchWrite, Store};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The most batches one transaction takes.
const MAX_GROUP: usize = 1024;
/// Batches waiting beyond this make ingest wait too (backpressure).
const QUEUE: usize = 8192;

struct Job {
    write: BatchWrite,
    reply: oneshot::Sender<ApiResult<bool>>,
}

/// The handle that request handlers submit batches through.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("receipt", &self.write.receipt)
            .finish()
    }
}

impl Writer {
    /// Starts the writer task; it ends when every handle is dropped.
    pub fn spawn(store: Store, clock: Arc<dyn Clock>) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(MAX_GROUP);
            while rx.recv_many(&mut jobs, MAX_GROUP).await > 0 {
                let writes: Vec<BatchWrite> = jobs.iter().map(|j| j.write.clone()).collect();
                match store.record_telemetry(&writes, clock.now_ms()).await {
                    Ok(accepted) => {
                        for (job, new) in jobs.drain(..).zip(accepted) {
                            let _ = job.reply.send(Ok(new));
                        }
                    }
                    Err(e) => {
                        // Nothing of the group was written; every sender
                        // gets the error and resends later.
                        let err = ApiError::from(e);
                        for job in jobs.drain(..) {
                            let _ = job.reply.send(Err(err.clone()));
                        }
                    }
                }
            }
        });
        Writer { tx }
    }

    /// Records one batch durably; true when it was new.
    pub async fn write(&self, write: BatchWrite) -> ApiResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { write, reply })
            .await
            .map_err(|_| ApiError::unavailable())?;
        answer.await.map_err(|_| ApiError::unavailable())?
    }
}
