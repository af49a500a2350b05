//! Bulkheads: a concurrency limit and a bounded queue per partition value
//! (tenant, tool, model, queue or priority class), so that one partition
//! cannot take every slot.
//!
//! The limits are passed in on each acquire, from the policy version of the
//! call, so a publish that changes them applies to the next call without
//! rebuilding anything; calls in flight keep their slots.
//!
//! Acquisition (a call's slots across its dependency's bulkheads) works on
//! the partitions of the shared [`crate::state::Enforcement`], so
//! [`BulkheadLayer`] holds a tower service's calls in the same partitions
//! as [`crate::Guard::call`] and admission.

mod acquire;
mod error;
mod future;
mod layer;

pub(crate) use acquire::{PartitionHandle, Slots};
pub use error::BulkheadRejected;
pub use future::ResponseFuture;
pub use layer::{BulkheadLayer, BulkheadService};

use rustc_hash::FxHashMap;
use shared::policy::Bulkhead;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Why a bulkhead refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkheadRejection {
    /// Every slot was taken and the queue was full.
    Full,
    /// The call waited in the queue for the whole queue timeout.
    QueueTimeout,
}

/// The effective limits of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLimits {
    /// Calls in flight.
    pub max_concurrent: u32,
    /// Calls waiting.
    pub max_queued: u32,
    /// How long a call may wait.
    pub queue_timeout: Duration,
}

impl PartitionLimits {
    /// The limits of `bulkhead` for partition value `key`: its override's
    /// fields where set, the bulkhead's elsewhere.
    pub fn of(bulkhead: &Bulkhead, key: &str) -> PartitionLimits {
        let o = bulkhead.overrides.get(key);
        PartitionLimits {
            max_concurrent: o
                .and_then(|o| o.max_concurrent)
                .unwrap_or(bulkhead.max_concurrent),
            max_queued: o.and_then(|o| o.max_queued).unwrap_or(bulkhead.max_queued),
            queue_timeout: Duration::from_millis(
                o.and_then(|o| o.queue_timeout_ms)
                    .unwrap_or(bulkhead.queue_timeout_ms),
            ),
        }
    }
}

/// One partition's counts. A slot is taken by a compare-and-swap on
/// `in_flight` and given back by a decrement, so free slots never wait on
/// a lock; only a call that has to queue touches `freed`.
#[derive(Debug, Default)]
pub(crate) struct Partition {
    in_flight: AtomicU32,
    queued: AtomicU32,
    freed: Notify,
}

impl Partition {
    /// Takes a slot if fewer than `max` are held.
    #[inline]
    pub(crate) fn try_take(&self, max: u32) -> bool {
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a slot back (the holder's part of [`Partition::try_take`]).
    #[inline]
    pub(crate) fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        // A waiter counts itself in `queued` before it looks at
        // `in_flight`, and this looks at `queued` after giving the slot
        // back (both sequentially consistent), so either the waiter sees
        // the free slot or this sees the waiter and wakes it.
        if self.queued.load(Ordering::SeqCst) > 0 {
            self.freed.notify_one();
        }
    }
}

/// A slot in a partition, given back on drop.
#[derive(Debug)]
pub struct Slot {
    partition: Arc<Partition>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.partition.release();
    }
}

/// Calls waiting, across all partitions, for telemetry and the
/// queue-depth admission signal.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Calls waiting for a slot.
    pub queued: AtomicU64,
}

/// A waiter's place in a partition's queue, given up on drop.
struct Waiting<'a> {
    partition: &'a Partition,
    _queued: QueuedGauge<'a>,
    max_concurrent: u32,
    /// Whether the waiter got its slot.
    took: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.partition.queued.fetch_sub(1, Ordering::SeqCst);
        if !self.took && self.partition.in_flight.load(Ordering::SeqCst) < self.max_concurrent {
            // This waiter may have swallowed a wake-up meant for a slot;
            // pass it on.
            self.partition.freed.notify_one();
        }
    }
}

/// A waiter counted in a queued gauge (the bulkheads' own, a
/// dependency's) while it waits for a slot; counted out on drop, so one
/// dropped mid-wait (its caller's own timeout) does not stay in the gauge.
pub(crate) struct QueuedGauge<'a>(&'a AtomicU64);

impl<'a> QueuedGauge<'a> {
    pub(crate) fn enter(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        QueuedGauge(gauge)
    }
}

impl Drop for QueuedGauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One bulkhead's partitions by partition value. The values come from
/// requests (tenants, tools), so this map keeps std's keyed hasher.
type PartitionMap = RwLock<HashMap<Box<str>, Arc<Partition>>>;

/// Every partition of every bulkhead, by bulkhead name (from the policy,
/// hence a fast hasher), then by partition value.
#[derive(Debug, Default)]
pub struct Bulkheads {
    partitions: RwLock<FxHashMap<Arc<str>, PartitionMap>>,
    gauges: Gauges,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Bulkheads {
    /// No partitions yet; they are made on first use.
    pub fn new() -> Bulkheads {
        Bulkheads::default()
    }

    /// The gauges summed over every partition.
    pub fn gauges(&self) -> &Gauges {
        &self.gauges
    }

    /// Partition `key` of `bulkhead`, made on first use. The guard keeps
    /// the ones its calls use.
    pub(crate) fn partition(&self, bulkhead: &Arc<str>, key: &str) -> Arc<Partition> {
        {
            let tables = read(&self.partitions);
            if let Some(table) = tables.get(&**bulkhead) {
                if let Some(p) = read(table).get(key) {
                    return p.clone();
                }
                return write(table).entry(Box::from(key)).or_default().clone();
            }
        }
        let mut tables = write(&self.partitions);
        let mut table = write(tables.entry(bulkhead.clone()).or_default());
        table.entry(Box::from(key)).or_default().clone()
    }

    /// A slot in partition `key` of `bulkhead` if one is free now; never
    /// waits. The layer tries this first and queues only when it fails.
    pub(crate) fn try_acquire(
        &self,
        bulkhead: &Arc<str>,
        key: &str,
        limits: PartitionLimits,
    ) -> Option<Slot> {
        let partition = self.partition(bulkhead, key);
        // Lazily: a `Slot` made and dropped would give back a slot that
        // was never taken.
        partition
            .try_take(limits.max_concurrent)
            .then(|| Slot { partition })
    }

    /// Takes a slot in partition `key` of `bulkhead`, waiting in its queue
    /// if there is room, for at most the queue timeout (and never past
    /// `deadline`).
    pub async fn acquire(
        &self,
        bulkhead: &Arc<str>,
        key: &str,
        limits: PartitionLimits,
        deadline: Option<Instant>,
    ) -> Result<Slot, BulkheadRejection> {
        let partition = self.partition(bulkhead, key);
        self.wait_in(&partition, limits, deadline).await?;
        Ok(Slot { partition })
    }

    /// Takes a slot of `partition` (free now, or after a wait in its
    /// queue); on `Ok` the caller holds it and must give it back.
    pub(crate) async fn wait_in(
        &self,
        partition: &Partition,
        limits: PartitionLimits,
        deadline: Option<Instant>,
    ) -> Result<(), BulkheadRejection> {
        if partition.try_take(limits.max_concurrent) {
            return Ok(());
        }
        let has_room = partition
            .queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q < limits.max_queued).then_some(q + 1)
            })
            .is_ok();
        if !has_room {
            return Err(BulkheadRejection::Full);
        }
        // Leaves the queue however the wait ends, dropped mid-wait too (a
        // caller's own timeout): a place kept by a cancelled waiter would
        // shrink the queue for good.
        let mut waiting = Waiting {
            partition,
            _queued: QueuedGauge::enter(&self.gauges.queued),
            max_concurrent: limits.max_concurrent,
            took: false,
        };
        let mut until = Instant::now() + limits.queue_timeout;
        if let Some(d) = deadline {
            until = until.min(d);
        }
        let result = loop {
            let notified = partition.freed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a slot freed in between still
            // wakes this waiter.
            notified.as_mut().enable();
            if partition.try_take(limits.max_concurrent) {
                break Ok(());
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                break Err(BulkheadRejection::QueueTimeout);
            }
        };
        waiting.took = result.is_ok();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn limits(c: u32, q: u32, ms: u64) -> PartitionLimits {
        PartitionLimits {
            max_concurrent: c,
            max_queued: q,
            queue_timeout: Duration::from_millis(ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_partition_queues_then_rejects_and_other_partitions_are_unaffected() {
        let b = Arc::new(Bulkheads::new());
        let name: Arc<str> = Arc::from("per_tenant");
        let l = limits(1, 1, 500);
        let held = b.acquire(&name, "a", l, None).await.unwrap();
        // A second call for tenant a waits in the queue…
        let b2 = b.clone();
        let n2 = name.clone();
        let waiter = tokio::spawn(async move { b2.acquire(&n2, "a", l, None).await.map(drop) });
        tokio::task::yield_now().await;
        assert_eq!(b.gauges().queued.load(Ordering::Relaxed), 1);
        // …a third finds the queue full…
        assert_eq!(
            b.acquire(&name, "a", l, None).await.unwrap_err(),
            BulkheadRejection::Full
        );
        // …and tenant b is not affected at all.
        assert!(b.acquire(&name, "b", l, None).await.is_ok());
        drop(held);
        assert!(
            waiter.await.unwrap().is_ok(),
            "the queued call got the freed slot"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_call_gives_up_after_the_queue_timeout() {
        let b = Bulkheads::new();
        let name: Arc<str> = Arc::from("tools");
        let l = limits(1, 5, 300);
        let _held = b.acquire(&name, "search", l, None).await.unwrap();
        let start = Instant::now();
        let err = b.acquire(&name, "search", l, None).await.unwrap_err();
        assert_eq!(err, BulkheadRejection::QueueTimeout);
        assert_eq!(start.elapsed(), Duration::from_millis(300));
        assert_eq!(b.gauges().queued.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn overrides_replace_only_the_fields_they_set() {
        let mut bh = Bulkhead {
            partition: shared::policy::PartitionKey::Tenant,
            dependency: None,
            max_concurrent: 20,
            max_queued: 40,
            queue_timeout_ms: 1000,
            overrides: Default::default(),
        };
        bh.overrides.insert(
            "big".into(),
            shared::policy::BulkheadOverride {
                max_concurrent: Some(60),
                ..Default::default()
            },
        );
        assert_eq!(PartitionLimits::of(&bh, "big"), limits(60, 40, 1000));
        assert_eq!(PartitionLimits::of(&bh, "small"), limits(20, 40, 1000));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_never_hold_more_slots_than_the_limit() {
        let b = Arc::new(Bulkheads::new());
        let name: Arc<str> = Arc::from("tools");
        let l = limits(3, 1_000, 60_000);
        let holding = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (b, name, holding, most) =
                    (b.clone(), name.clone(), holding.clone(), most.clone());
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let slot = b.acquire(&name, "search", l, None).await.unwrap();
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        holding.fetch_sub(1, Ordering::SeqCst);
                        drop(slot);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 3, "{most:?}");
        assert_eq!(most.load(Ordering::SeqCst), 3, "the limit was reached");
        let p = b.partition(&name, "search");
        assert_eq!(
            p.in_flight.load(Ordering::SeqCst),
            0,
            "every slot came back"
        );
        assert_eq!(b.gauges().queued.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_try_gives_back_nothing() {
        let b = Bulkheads::new();
        let name: Arc<str> = Arc::from("tools");
        let l = limits(1, 0, 100);
        let held = b.try_acquire(&name, "x", l).unwrap();
        for _ in 0..3 {
            assert!(b.try_acquire(&name, "x", l).is_none());
        }
        assert_eq!(b.partition(&name, "x").in_flight.load(Ordering::SeqCst), 1);
        drop(held);
        assert!(b.try_acquire(&name, "x", l).is_some());
    }
}
