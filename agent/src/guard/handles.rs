//! What a call keeps between calls on its thread: its dependency's
//! handles on the shared state (the policy version, the lane, the budgets
//! and bulkhead partitions, the clock), found once and then reused, and the
//! usage meter its attempts report into. The patterns decide; this only
//! saves finding their state again on every call.

use super::Guard;
use crate::bulkhead::PartitionHandle;
use crate::call::Call;
use crate::clock::{Anchor, CallReader};
use crate::compiled::{CompiledPolicy, DependencyRules, PolicyReceiver};
use crate::rate_limit::limits::{Lease, Rate};
use crate::rate_limit::{BudgetHandles, TenantHandles};
use crate::state::{Enforcement, Lane};
use shared::policy::PartitionKey;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(super) struct UsageCell {
    pub(super) tokens: AtomicU64,
    pub(super) cost: AtomicU64,
    pub(super) recorded: AtomicBool,
}

impl UsageCell {
    /// Makes `cell` a zeroed meter this call alone holds: the same one
    /// again when no attempt of an earlier call kept it (nearly always),
    /// else a new one. `returned` is the meter's second reference when
    /// this thread's last attempt handed it back (see [`Meter`]); it is
    /// kept for the call's first attempt, or let go if the meter is
    /// replaced.
    #[inline]
    fn fresh(cell: &mut Arc<UsageCell>, returned: &mut Option<Arc<UsageCell>>) {
        // No weak reference to a meter is ever made, so a strong count of
        // one (two with the handed-back one) means nobody else holds it: a
        // plain load, where `Arc::get_mut` would take a compare-and-swap.
        // The fence orders the reset after whatever the last other holder
        // wrote before letting go (its release decrement).
        if Arc::strong_count(cell) == 1 + usize::from(returned.is_some()) {
            std::sync::atomic::fence(Ordering::Acquire);
            cell.tokens.store(0, Ordering::Relaxed);
            cell.cost.store(0, Ordering::Relaxed);
            cell.recorded.store(false, Ordering::Relaxed);
        } else {
            *cell = Arc::default();
            *returned = None;
        }
    }
}

/// An attempt's reference to its call's usage meter. Dropped on the
/// thread that runs the call (nearly always), it hands the reference back
/// through [`Spare::meter`] instead of releasing it.
#[derive(Debug, Clone)]
pub(super) struct Meter(pub(super) Option<Arc<UsageCell>>);

impl Drop for Meter {
    fn drop(&mut self) {
        if let Some(meter) = self.0.take() {
            // During the thread's teardown the slot is gone and the
            // reference is simply released.
            let _ = SPARE.try_with(|spare| spare.meter.replace(Some(meter)));
        }
    }
}

/// `a == b` for the short names a call is matched against its handles by
/// (dependency, tenant, partition keys), eight bytes at a time in place:
/// `==` on `str` calls into libc's `memcmp` for each, three times a call.
#[inline]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().unwrap_or([0; 4]));
    if n >= 8 {
        // Whole words, the last one overlapping the one before it.
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        word(a, n - 8) == word(b, n - 8)
    } else if n >= 4 {
        half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

/// Handles kept per thread: enough for a pipeline that calls a handful of
/// dependencies in turn.
const SPARE_HANDLES_PER_THREAD: usize = 8;

/// What calls on a thread leave for the next: handles and a usage meter's
/// reference. One thread-local, so a call finds both with one lookup.
struct Spare {
    /// The handles the thread's last call left: a loop calling one
    /// dependency finds them here, without a borrow or a search. A call
    /// takes its dependency's out for its whole length and puts them back
    /// at its end, so a call that runs while another holds them makes its
    /// own. (Boxed, so that a call holds a pointer and its future stays
    /// small.)
    last: Cell<Option<Box<Handles>>>,
    /// The handles before those, for a pipeline that calls a handful of
    /// dependencies in turn.
    #[allow(clippy::vec_box)]
    older: RefCell<Vec<Box<Handles>>>,
    /// The usage meter the last attempt dropped on this thread handed
    /// back: the next call on the same handles gives it to its first
    /// attempt, so that neither end of an attempt touches the meter's
    /// reference count (two locked instructions a call otherwise).
    meter: Cell<Option<Arc<UsageCell>>>,
}

thread_local! {
    static SPARE: Spare = const {
        Spare {
            last: Cell::new(None),
            older: RefCell::new(Vec::new()),
            meter: Cell::new(None),
        }
    };
}

/// Everything a call of one dependency touches, found once and then kept
/// from call to call on the thread: the policy version (with a receiver of
/// its own, so that checking for a newer one is a single load), the
/// dependency's lane, the tenant's spend window and counter, and the
/// bulkhead partitions with their limits. A call owns them while it runs,
/// so none of them is looked up, locked or reference-counted on its way.
#[derive(Debug)]
pub(super) struct Handles {
    guard: u64,
    /// Whether the policy's sender is gone (the value is final).
    closed: bool,
    rx: PolicyReceiver,
    pub(super) policy: Arc<CompiledPolicy>,
    /// The dependency's rules under `policy`, found with the partitions.
    pub(super) rules: Option<Arc<DependencyRules>>,
    pub(super) lane: Arc<Lane>,
    /// One per bulkhead of the dependency, in the policy's order.
    pub(super) partitions: Vec<PartitionHandle>,
    /// Whether `partitions` and `budgets` follow `policy` (else they are
    /// to be found again).
    partitions_current: bool,
    /// The rate limits and budgets the call draws on, with this thread's
    /// advances on them, and the tenant's spend window.
    pub(super) budgets: BudgetHandles,
    /// The usage meter of the call holding the handles, kept for the
    /// thread's next call (see [`UsageCell::fresh`]).
    pub(super) usage: Arc<UsageCell>,
    /// The guard's clock, and this thread's tie of it to tokio's.
    pub(super) clock: CallReader,
    pub(super) anchor: Anchor,
}

impl Handles {
    /// Whether these are handles of guard `guard` for `dependency`.
    #[inline]
    fn fits(&self, guard: u64, dependency: &str) -> bool {
        self.guard == guard && same(&self.lane.name, dependency)
    }

    /// Points the handles at `call`'s tenant and partition values, looking
    /// up only what differs from the previous call's.
    fn update(&mut self, state: &Enforcement, call: &Call<'_>) {
        // Whether the tenant is the previous call's.
        let same_tenant = match (call.tenant, &self.budgets.tenant) {
            (None, _) => {
                self.budgets.tenant = None;
                false
            }
            (Some(t), Some(held)) if same(&held.name, t) => true,
            (Some(t), _) => {
                self.budgets.tenant = Some(TenantHandles {
                    name: Box::from(t),
                    cost: state.inner.limiters.cost_window(t),
                    lease: Lease::default(),
                    spend: state.inner.recorder.tenant_spend(t),
                });
                false
            }
        };
        if !self.partitions_current {
            self.rules = self.policy.dependency_shared(call.dependency);
            let found = self.rules.as_deref();
            // The advances were taken at the old rates: back they go first.
            self.budgets.give_back();
            self.budgets.rates = [
                found.and_then(|r| r.requests.as_ref()).map(|l| {
                    (
                        Rate::of_requests(l),
                        state.request_bucket(&self.lane).clone(),
                    )
                }),
                found
                    .and_then(|r| r.tokens_per_minute)
                    .map(|tpm| (Rate::of_tokens(tpm), state.token_bucket(&self.lane).clone())),
                self.policy
                    .tokens_per_minute()
                    .map(|tpm| (Rate::of_tokens(tpm), state.service_token_bucket().clone())),
            ];
            let rules = found.map_or(&[][..], |r| r.bulkheads.as_slice());
            self.partitions = rules
                .iter()
                .map(|rule| PartitionHandle::find(state, rule.clone(), call))
                .collect();
            self.partitions_current = true;
            return;
        }
        for p in &mut self.partitions {
            let key = p.rule.bulkhead.partition;
            // A tenant partition's key is the previous call's tenant, so
            // the comparison above settled it.
            if same_tenant && key == PartitionKey::Tenant {
                continue;
            }
            if !same(&p.key, call.partition(key)) {
                *p = PartitionHandle::find(state, p.rule.clone(), call);
            }
        }
    }
}

impl Guard {
    /// The handles a call of `call`'s dependency needs under the policy in
    /// force: this thread's from an earlier call when they are still
    /// current (the same guard, dependency and policy version), brought up
    /// to date for the call's tenant and partitions, else made.
    /// With them, the meter's second reference if the thread's last
    /// attempt handed it back (for the call's first attempt).
    pub(super) fn handles(&self, call: &Call<'_>) -> (Box<Handles>, Option<Arc<UsageCell>>) {
        let (id, dependency) = (self.state.inner.id, call.dependency);
        let (reused, mut returned) = SPARE
            .try_with(|spare| {
                let reused = match spare.last.take() {
                    Some(h) if h.fits(id, dependency) => Some(h),
                    last => {
                        let mut older = spare.older.borrow_mut();
                        let found = older
                            .iter()
                            .position(|h| h.fits(id, dependency))
                            .map(|i| older.swap_remove(i));
                        if let Some(last) = last {
                            Guard::keep_older(&mut older, last);
                        }
                        found
                    }
                };
                (reused, spare.meter.take())
            })
            .unwrap_or_default();
        let mut h = match reused {
            Some(mut h) => {
                if !h.closed {
                    match h.rx.has_changed() {
                        Ok(false) => {}
                        Ok(true) => {
                            h.policy = h.rx.borrow_and_update().clone();
                            h.partitions_current = false;
                        }
                        // The sender is gone, so the value it left is
                        // final: take it once and stop asking.
                        Err(_) => {
                            let last = h.rx.borrow().clone();
                            if !Arc::ptr_eq(&last, &h.policy) {
                                h.policy = last;
                                h.partitions_current = false;
                            }
                            h.closed = true;
                        }
                    }
                }
                h
            }
            None => {
                let mut rx = self.state.inner.policy.clone();
                let policy = rx.borrow_and_update().clone();
                Box::new(Handles {
                    guard: self.state.inner.id,
                    closed: false,
                    rx,
                    policy,
                    rules: None,
                    lane: self.state.lane(call.dependency),
                    partitions: Vec::new(),
                    partitions_current: false,
                    budgets: BudgetHandles::default(),
                    usage: Arc::default(),
                    clock: self
                        .inner
                        .reader
                        .get_or_init(|| CallReader::resolve(self.state.inner.clock))
                        .clone(),
                    anchor: Anchor::default(),
                })
            }
        };
        h.update(&self.state, call);
        // The handed-back reference counts only if it is to these handles'
        // meter (any other is released).
        returned = returned.filter(|m| Arc::ptr_eq(m, &h.usage));
        UsageCell::fresh(&mut h.usage, &mut returned);
        (h, returned)
    }

    /// Keeps `handles` for this thread's next call.
    #[inline]
    pub(super) fn keep_handles(handles: Box<Handles>) {
        // During the thread's teardown they are simply dropped.
        let _ = SPARE.try_with(|spare| {
            if let Some(last) = spare.last.replace(Some(handles)) {
                Guard::keep_older(&mut spare.older.borrow_mut(), last);
            }
        });
    }

    /// Adds `handles` to a thread's older ones, the oldest going when
    /// there are enough.
    #[allow(clippy::vec_box)]
    fn keep_older(older: &mut Vec<Box<Handles>>, handles: Box<Handles>) {
        if older.len() + 1 >= SPARE_HANDLES_PER_THREAD {
            older.remove(0);
        }
        older.push(handles);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_compare_like_str_eq() {
        let names = [
            "",
            "a",
            "acme",
            "acmf",
            "model_provider",
            "model_providex",
            "xodel_provider",
            "twelve_bytes",
            "seventeen_bytes__",
            "seventeen_bytes_x",
        ];
        for a in names {
            for b in names {
                assert_eq!(super::same(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
    }
}
