//! Reading through a cache under the policy's staleness rules.
//!
//! An entry is fresh for the TTL the cache policy gives its data's
//! sensitivity; a fresh entry is served without calling the source. An
//! entry past its TTL is stale: the source is called, under the guard
//! (`Guard::read_through`, which composes this rule with the call), and
//! its answer wins. Only when the source fails may a stale entry stand in,
//! and only if the policy allows stale entries, the decision built on it is
//! not high-risk, and the answer says it is stale. A high-risk decision
//! (risk tier `high` or `regulated`) never sees a stale value: it gets the
//! source's answer or the source's failure. That holds even if a policy
//! sets `stale_for_high_risk`, which validation refuses anyway, because an
//! outdated fact behind a high-risk action is exactly the failure the rule
//! exists to prevent.

use crate::compiled::CompiledPolicy;
use shared::policy::{RiskTier, Sensitivity};
use std::time::Duration;
use tokio::time::Instant;

/// The caveat shown with a stale answer when the policy gives none: stale
/// data is never served unlabelled.
pub const DEFAULT_STALE_CAVEAT: &str =
    "This answer uses saved data that may be out of date; the live source is unavailable.";

/// A cached value with what decides its freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry<T> {
    /// The value.
    pub value: T,
    /// When it was stored, on tokio's clock.
    pub stored_at: Instant,
    /// How sensitive its data is, which sets its TTL.
    pub sensitivity: Sensitivity,
}

impl<T> CacheEntry<T> {
    /// `value`, stored now.
    pub fn new(value: T, sensitivity: Sensitivity) -> CacheEntry<T> {
        CacheEntry {
            value,
            stored_at: Instant::now(),
            sensitivity,
        }
    }

    /// Whether the entry is within its TTL under `policy`. Data whose
    /// sensitivity has no TTL is never fresh: nobody said how long it may
    /// be trusted.
    pub fn is_fresh(&self, policy: &CompiledPolicy) -> bool {
        ttl(policy, self.sensitivity).is_some_and(|ttl| self.stored_at.elapsed() < ttl)
    }
}

/// The TTL of data of `sensitivity` under `policy`.
pub fn ttl(policy: &CompiledPolicy, sensitivity: Sensitivity) -> Option<Duration> {
    policy
        .policy()
        .cache
        .as_ref()?
        .ttl_ms_by_sensitivity
        .get(&sensitivity)
        .map(|ms| Duration::from_millis(*ms))
}

/// Why a stale entry may not stand in for a failed source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleRefusal {
    /// The decision is high-risk.
    HighRisk,
    /// The cache policy does not allow stale entries at all.
    NotAllowed,
}

/// Whether a stale entry may stand in for a failed source, for a decision
/// of `risk`; when it may, the caveat the answer must carry.
pub fn stale_use(policy: &CompiledPolicy, risk: RiskTier) -> Result<String, StaleRefusal> {
    if matches!(risk, RiskTier::High | RiskTier::Regulated) {
        return Err(StaleRefusal::HighRisk);
    }
    match policy.policy().cache.as_ref() {
        Some(cache) if cache.allow_stale => Ok(cache
            .stale_caveat
            .clone()
            .unwrap_or_else(|| DEFAULT_STALE_CAVEAT.to_owned())),
        _ => Err(StaleRefusal::NotAllowed),
    }
}

/// Where a value read through the cache came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served<T> {
    /// A fresh cache entry; the source was not called.
    Cached(T),
    /// The source, now (the caller stores it).
    Source(T),
    /// A stale entry standing in for a failed source. The outcome's status
    /// is `degraded` and its user message is the caveat.
    Stale(T),
}

impl<T> Served<T> {
    /// The value, wherever it came from.
    pub fn into_inner(self) -> T {
        match self {
            Served::Cached(t) | Served::Source(t) | Served::Stale(t) => t,
        }
    }
}
