//! Group commit for telemetry (see [`crate::group_commit`]): many agents'
//! batches, one transaction and one fsync.

use crate::clock::Clock;
use crate::error::ApiResult;
use crate::group_commit::GroupCommit;
use crate::store::{BatchWrite, Store};
use std::sync::Arc;

/// The most batches one transaction takes.
const MAX_GROUP: usize = 1024;
/// Batches waiting beyond this make ingest wait too (backpressure).
const QUEUE: usize = 8192;

/// The handle that request handlers submit batches through.
#[derive(Debug, Clone)]
pub struct Writer(GroupCommit<BatchWrite, bool>);

impl Writer {
    /// Starts the writer task; it ends when every handle is dropped.
    pub fn spawn(store: Store, clock: Arc<dyn Clock>) -> Writer {
        Writer(GroupCommit::spawn(MAX_GROUP, QUEUE, move |writes| {
            let store = store.clone();
            let now = clock.now_ms();
            async move { store.record_telemetry(&writes, now).await }
        }))
    }

    /// Records one batch durably; true when it was new.
    pub async fn write(&self, write: BatchWrite) -> ApiResult<bool> {
        self.0.write(write).await
    }
}
