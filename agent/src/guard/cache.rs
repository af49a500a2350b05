//! The cache's read-through composed with a guarded call: the staleness
//! rules are [`crate::cache`]'s, the call is [`Guard::call`].

use super::{Guard, Guarded};
use crate::cache::{CacheEntry, Served, stale_use};
use crate::call::{Call, Classify};
use crate::fallback::Degradation;
use shared::policy::{DegradedStatus, RiskTier};
use std::future::Future;

impl Guard {
    /// Reads a value for a decision of `risk` through the cache: `entry`
    /// when it is fresh, else the source through [`Guard::call`], else,
    /// when the source fails and [`stale_use`] allows it, the stale entry
    /// labelled `degraded` with the policy's caveat. Otherwise the source's
    /// failure is returned as the guard resolved it.
    pub async fn read_through<T, E, F, Fut>(
        &self,
        call: &Call<'_>,
        risk: RiskTier,
        entry: Option<&CacheEntry<T>>,
        op: F,
    ) -> Guarded<Served<T>, E>
    where
        T: Clone,
        E: Classify,
        F: FnMut(crate::Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let policy = self.policy();
        if let Some(e) = entry.filter(|e| e.is_fresh(&policy)) {
            return Guarded {
                result: Ok(Served::Cached(e.value.clone())),
                status: DegradedStatus::Normal,
                attempts: 0,
                side_effect_uncertain: false,
                degradation: None,
            };
        }
        let dependency = call.dependency_name();
        let out = self.call(call, op).await;
        if out.is_ok() {
            return out.map(Served::Source);
        }
        // A fail-closed invariant stops the action whatever the cache
        // holds; only a plain failure may be covered by a stale entry.
        if let (Some(e), Ok(caveat), None) = (entry, stale_use(&policy, risk), out.fail_closed()) {
            let stats = self.recorder().dependency(dependency);
            stats.fallback(&format!("{dependency}/stale_cache"));
            stats.degraded(DegradedStatus::Degraded);
            return Guarded {
                result: Ok(Served::Stale(e.value.clone())),
                status: DegradedStatus::Degraded,
                attempts: out.attempts,
                side_effect_uncertain: false,
                degradation: Some(Box::new(Degradation {
                    user_message: Some(caveat),
                    ..Degradation::default()
                })),
            };
        }
        out.map(Served::Source)
    }
}
