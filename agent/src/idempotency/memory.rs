use super::{Claim, DedupStore, StoreError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
struct Entry {
    fingerprint: String,
    result: Option<Vec<u8>>,
    expires: Instant,
}

/// A dedup store in memory: for tests, and for services whose duplicates
/// only ever arrive within one process's life.
#[derive(Debug, Default)]
pub struct MemoryDedupStore {
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryDedupStore {
    /// An empty store.
    pub fn new() -> MemoryDedupStore {
        MemoryDedupStore::default()
    }
}

impl DedupStore for MemoryDedupStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        retention: Duration,
    ) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Expired keys go on every claim, which keeps the map bounded by
        // the keys of one retention period.
        entries.retain(|_, e| e.expires > now);
        match entries.get(key) {
            Some(e) if e.fingerprint != fingerprint => Ok(Claim::Conflict {
                stored: e.result.clone(),
            }),
            Some(e) => Ok(match &e.result {
                Some(r) => Claim::Done(r.clone()),
                None => Claim::InProgress,
            }),
            None => {
                entries.insert(
                    key.to_owned(),
                    Entry {
                        fingerprint: fingerprint.to_owned(),
                        result: None,
                        expires: now + retention,
                    },
                );
                Ok(Claim::Fresh)
            }
        }
    }

    async fn complete(&self, key: &str, result: &[u8]) -> Result<(), StoreError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get_mut(key) {
            Some(e) => {
                e.result = Some(result.to_vec());
                Ok(())
            }
            None => Err(StoreError(format!("no claim for key {key}"))),
        }
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.get(key).is_some_and(|e| e.result.is_none()) {
            entries.remove(key);
        }
        Ok(())
    }
}
