//! The rate limit's decisions on the shared state: a call's request is
//! taken from its dependency's rate, its usage estimate reserved from the
//! token budgets and the tenant's spend, and settled with what it used.
//!
//! Two paths reach the same buckets. [`crate::Guard::call`] keeps a
//! [`BudgetHandles`] per thread (the buckets, found once, with this
//! thread's advances on them) and reserves into a flat [`HeldUsage`];
//! [`super::RateLimitLayer`] looks the buckets up on
//! [`Enforcement`] per call and holds a [`Reservation`].

use super::limits::{Bucket, BudgetRefusal, CostWindow, Hold, Lease, Rate, Reservation, day_of};
use crate::call::Usage;
use crate::compiled::{CompiledPolicy, DependencyRules};
use crate::state::{Enforcement, Lane};
use crate::telemetry::{DependencyStats, TenantSpend};
use std::sync::Arc;
use tokio::time::Instant;

/// A thread's handles on the budgets a call of one dependency draws on:
/// the shapes of the dependency's request rate and token budget and of
/// the service's token budget under the policy in force, with their
/// buckets and this thread's advances on them, and the tenant's spend
/// window. Kept from call to call (see [`crate::Guard::call`]), so that
/// none is looked up or reference-counted on a call's way.
#[derive(Debug, Default)]
pub(crate) struct BudgetHandles {
    /// 0 the dependency's request rate, 1 its token budget, 2 the
    /// service's token budget.
    pub(crate) rates: [Option<(Rate, Arc<Bucket>)>; 3],
    pub(crate) leases: [Lease; 3],
    pub(crate) tenant: Option<TenantHandles>,
}

impl BudgetHandles {
    /// Gives this thread's advances back to their buckets.
    pub(crate) fn give_back(&self) {
        for (rate, lease) in self.rates.iter().zip(&self.leases) {
            if let Some((rate, bucket)) = rate {
                lease.give_back(bucket, *rate);
            }
        }
    }

    /// Takes one request from the dependency's request rate at `t`, if
    /// the policy limits it.
    #[inline]
    pub(crate) fn take_request(&self, t: u64) -> bool {
        match &self.rates[0] {
            Some((rate, bucket)) => self.leases[0].take(bucket, t, 1, *rate),
            None => true,
        }
    }

    /// [`Enforcement::reserve_usage`] on these handles, at `t`: the
    /// service's token budget, the dependency's, then the tenant's spend,
    /// all or nothing; counts a refusal in `stats`.
    ///
    /// Writes the reservation into `held` where the call keeps it (built
    /// elsewhere and moved in, it cost a stalled copy per call); on a
    /// refusal `held` is left reserving nothing.
    #[inline]
    pub(crate) fn reserve_held(
        &self,
        policy: &CompiledPolicy,
        stats: &DependencyStats,
        estimate: Usage,
        t: u64,
        held: &mut HeldUsage,
    ) -> Result<(), BudgetRefusal> {
        held.tokens = estimate.tokens;
        if estimate.tokens > 0 {
            for i in [2, 1] {
                if let Some((rate, bucket)) = &self.rates[i] {
                    if !self.leases[i].take(bucket, t, estimate.tokens, *rate) {
                        std::mem::take(held).settle(self, t, 0, 0);
                        stats.rate_limited();
                        return Err(BudgetRefusal::Tokens);
                    }
                    held.budgets |= 1 << i;
                }
            }
        }
        if let (Some(tenant), Some(limit)) = (&self.tenant, policy.cost_per_tenant_per_day()) {
            let day = day_of(t);
            if !tenant
                .lease
                .reserve(&tenant.cost, day, limit, estimate.cost_usd_micros)
            {
                std::mem::take(held).settle(self, t, 0, 0);
                stats.rate_limited();
                return Err(BudgetRefusal::Cost);
            }
            held.day = day;
            held.cost = estimate.cost_usd_micros;
            held.budgets |= HeldUsage::COST;
        }
        Ok(())
    }
}

impl Drop for BudgetHandles {
    fn drop(&mut self) {
        self.give_back();
    }
}

/// A thread's handles on one tenant's spend: its window with this
/// thread's advance on it, and its telemetry counter.
#[derive(Debug)]
pub(crate) struct TenantHandles {
    pub(crate) name: Box<str>,
    pub(crate) cost: Arc<CostWindow>,
    /// This thread's advance on the tenant's spend window.
    pub(crate) lease: Lease,
    pub(crate) spend: Arc<TenantSpend>,
}

impl Drop for TenantHandles {
    fn drop(&mut self) {
        self.lease.give_back_window(&self.cost);
    }
}

/// A call's usage reservation on the budgets in its handles: which of
/// them it reserved from and how much, settled through the same handles
/// (which the call owns throughout, so they cannot change under it).
// Flat and word-aligned: it is written once and read once per call, and
// a nested `Option` made the compiler copy it in odd-sized pieces.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HeldUsage {
    /// The tokens reserved from each budget marked in `budgets`.
    tokens: u64,
    /// The day and the estimate reserved from the tenant's spend window,
    /// if bit [`HeldUsage::COST`] is set.
    day: u64,
    cost: u64,
    /// Bit `i`: reserved from `BudgetHandles::rates[i]` (1 the
    /// dependency's, 2 the service's token budget).
    budgets: u8,
}

impl HeldUsage {
    /// The bit of `budgets` that says the spend window was reserved from.
    const COST: u8 = 1 << 3;

    /// Replaces the estimates with the actual use at `t`; nothing when
    /// nothing was reserved.
    #[inline]
    pub(crate) fn settle(self, handles: &BudgetHandles, t: u64, tokens: u64, cost: u64) {
        if self.budgets == 0 {
            return;
        }
        for i in [2, 1] {
            if self.budgets & (1 << i) != 0
                && let Some((rate, bucket)) = &handles.rates[i]
            {
                handles.leases[i].adjust(bucket, t, self.tokens, tokens, *rate);
            }
        }
        if self.budgets & HeldUsage::COST != 0
            && let Some(tenant) = &handles.tenant
        {
            tenant
                .lease
                .settle(&tenant.cost, self.day, day_of(t), self.cost, cost);
        }
    }
}

impl Enforcement {
    /// Takes one request from `dependency`'s request rate, if the policy
    /// limits it; counts a refusal.
    pub(crate) fn check_request_rate(
        &self,
        policy: &CompiledPolicy,
        dependency: &str,
        stats: &DependencyStats,
    ) -> bool {
        let lane = self.lane(dependency);
        self.take_request(policy.dependency(dependency), &lane, stats, Instant::now())
    }

    /// [`Enforcement::check_request_rate`] on a lane, at `now`.
    fn take_request(
        &self,
        rules: Option<&DependencyRules>,
        lane: &Lane,
        stats: &DependencyStats,
        now: Instant,
    ) -> bool {
        let Some(limit) = rules.and_then(|r| r.requests.as_ref()) else {
            return true;
        };
        let bucket = self.request_bucket(lane);
        let ok = bucket.take(self.inner.limiters.ticks(now), 1, Rate::of_requests(limit));
        if !ok {
            stats.rate_limited();
        }
        ok
    }

    /// Reserves `estimate` from the service's and the dependency's token
    /// budgets and the tenant's daily spend, all or nothing; counts a
    /// refusal.
    pub(crate) fn reserve_usage(
        &self,
        policy: &CompiledPolicy,
        dependency: &str,
        tenant: Option<&str>,
        estimate: Usage,
        stats: &DependencyStats,
    ) -> Result<Reservation, BudgetRefusal> {
        let lane = self.lane(dependency);
        let rules = policy.dependency(dependency);
        let service = policy
            .tokens_per_minute()
            .map(|tpm| (self.service_token_bucket().clone(), Rate::of_tokens(tpm)));
        let own = rules
            .and_then(|r| r.tokens_per_minute)
            .map(|tpm| (self.token_bucket(&lane).clone(), Rate::of_tokens(tpm)));
        let cost = match (tenant, policy.cost_per_tenant_per_day()) {
            (Some(t), Some(limit)) => Some((
                self.inner.limiters.cost_window(t),
                limit,
                estimate.cost_usd_micros,
            )),
            _ => None,
        };
        let limiters = &self.inner.limiters;
        Hold::reserve(
            limiters.ticks(Instant::now()),
            service.into_iter().chain(own),
            estimate.tokens,
            cost,
        )
        .map(|hold| Reservation::new(hold, limiters.clone()))
        .inspect_err(|_| stats.rate_limited())
    }

    /// Settles a call's reservation with what it used (the estimate when
    /// the dependency reported nothing) and counts the usage.
    pub(crate) fn settle_usage(
        &self,
        reservation: Reservation,
        used: Usage,
        tenant: Option<&str>,
        stats: &DependencyStats,
    ) {
        stats.usage(used.tokens, used.cost_usd_micros);
        if let Some(t) = tenant {
            self.inner.recorder.tenant_cost(t, used.cost_usd_micros);
        }
        reservation.settle(used.tokens, used.cost_usd_micros);
    }
}
