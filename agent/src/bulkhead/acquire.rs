//! Acquisition: a call's slots in its dependency's bulkheads (or a
//! request's in the service's), taken on the shared state's partitions.
//!
//! [`crate::Guard::call`] keeps a [`PartitionHandle`] per bulkhead per
//! thread and takes free slots without a future ([`Enforcement::take_partitions`]),
//! awaiting only where it has to queue; [`super::BulkheadLayer`] and
//! admission look the partitions up per call ([`Enforcement::acquire_slot`]).

use super::{BulkheadRejection, Partition, PartitionLimits, QueuedGauge, Slot};
use crate::call::Call;
use crate::compiled::BulkheadRule;
use crate::deadline::Deadline;
use crate::state::Enforcement;
use crate::telemetry::DependencyStats;
use std::sync::Arc;

/// A thread's handle on one partition of one of a dependency's
/// bulkheads: the call's key, the partition with its limits, found once
/// and kept while calls bring the same key.
#[derive(Debug)]
pub(crate) struct PartitionHandle {
    pub(crate) rule: BulkheadRule,
    pub(crate) key: Box<str>,
    pub(crate) partition: Arc<Partition>,
    pub(crate) limits: PartitionLimits,
}

impl PartitionHandle {
    /// The partition of `rule`'s bulkhead that `call` falls in.
    pub(crate) fn find(
        state: &Enforcement,
        rule: BulkheadRule,
        call: &Call<'_>,
    ) -> PartitionHandle {
        let key = call.partition(rule.bulkhead.partition);
        PartitionHandle {
            key: Box::from(key),
            partition: state.inner.bulkheads.partition(&rule.name, key),
            limits: PartitionLimits::of(&rule.bulkhead, key),
            rule,
        }
    }
}

/// The slots a request holds in the service's bulkheads, given back on
/// drop.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    _slots: Vec<Slot>,
}

/// The slots a call holds in its handles' partitions: one in each of the
/// first `held`, given back on drop. Taken in order, so a count says
/// which: nothing to allocate, move or look up per slot.
#[derive(Debug)]
pub(crate) struct PartitionSlots<'h> {
    partitions: &'h [PartitionHandle],
    pub(crate) held: usize,
    /// Whether a slot had to be waited for.
    pub(crate) waited: bool,
}

impl Drop for PartitionSlots<'_> {
    #[inline]
    fn drop(&mut self) {
        for p in &self.partitions[..self.held] {
            p.partition.release();
        }
    }
}

impl Enforcement {
    /// Takes a slot in each of `rules`' bulkheads, in the partitions
    /// `call` falls in, waiting where full until `deadline`.
    pub(crate) async fn acquire_bulkheads(
        &self,
        rules: &[BulkheadRule],
        call: &Call<'_>,
        deadline: Option<Deadline>,
        stats: &DependencyStats,
    ) -> Result<Slots, BulkheadRejection> {
        let mut slots = Vec::with_capacity(rules.len());
        for rule in rules {
            let key = call.partition(rule.bulkhead.partition);
            let limits = PartitionLimits::of(&rule.bulkhead, key);
            slots.push(
                self.acquire_slot(rule, key, limits, deadline, stats)
                    .await?,
            );
        }
        Ok(Slots { _slots: slots })
    }

    /// Takes a slot of partition `key` of one bulkhead, showing the wait in
    /// the dependency's queued gauge.
    pub(crate) async fn acquire_slot(
        &self,
        rule: &BulkheadRule,
        key: &str,
        limits: PartitionLimits,
        deadline: Option<Deadline>,
        stats: &DependencyStats,
    ) -> Result<Slot, BulkheadRejection> {
        // A free slot is taken at once; only a call that may wait shows in
        // the queued gauge.
        if let Some(slot) = self.inner.bulkheads.try_acquire(&rule.name, key, limits) {
            return Ok(slot);
        }
        let _queued = QueuedGauge::enter(&stats.queued);
        self.inner
            .bulkheads
            .acquire(&rule.name, key, limits, deadline.map(|d| d.instant()))
            .await
    }

    /// Takes a slot in each of a call's partitions while they are free;
    /// stops at the first full one (`held` short of the partitions).
    #[inline]
    pub(crate) fn take_partitions(partitions: &[PartitionHandle]) -> PartitionSlots<'_> {
        let mut slots = PartitionSlots {
            partitions,
            held: 0,
            waited: false,
        };
        for p in partitions {
            if !p.partition.try_take(p.limits.max_concurrent) {
                break;
            }
            slots.held += 1;
        }
        slots
    }

    /// Takes the rest of a call's slots, after the `held` it has, waiting
    /// in the partitions' queues where full.
    pub(crate) async fn acquire_partitions(
        &self,
        slots: &mut PartitionSlots<'_>,
        deadline: Option<Deadline>,
        stats: &DependencyStats,
    ) -> Result<(), BulkheadRejection> {
        let partitions = slots.partitions;
        for p in &partitions[slots.held..] {
            if !p.partition.try_take(p.limits.max_concurrent) {
                slots.waited = true;
                let queued = QueuedGauge::enter(&stats.queued);
                let waited = self
                    .inner
                    .bulkheads
                    .wait_in(&p.partition, p.limits, deadline.map(|d| d.instant()))
                    .await;
                drop(queued);
                waited?;
            }
            slots.held += 1;
        }
        Ok(())
    }
}
