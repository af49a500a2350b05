//! Properties that must hold over any sequence of calls, not just the
//! matrix's scenarios: the retry budget's bound and the bulkhead's limit.
//! Each case runs on its own paused clock, so time is whatever the case
//! says it is.

use crate::local;

use agent::retry::RetryBudget;
use agent::{Call, DependencyError, Guard};
use proptest::prelude::*;
use shared::policy::RetryBudget as RetryBudgetPolicy;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

/// One step of a retry-budget history.
#[derive(Debug, Clone)]
enum Step {
    /// A first attempt.
    Call,
    /// A failure asking for a retry.
    Retry,
    /// The clock moves on.
    Wait(Duration),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Call),
        4 => Just(Step::Retry),
        1 => (0u64..4_000).prop_map(|ms| Step::Wait(Duration::from_millis(ms))),
    ]
}

/// The budget's window, as documented in `retry_budget`.
const WINDOW_SECS: u64 = 10;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over the whole history, retries never exceed the ratio of first
    /// attempts plus the floor for every second elapsed (and one window's
    /// worth of floor to start with); and within every window that ends at
    /// a granted retry, retries never exceed the ratio of that window's
    /// first attempts plus the window's floor.
    #[test]
    fn the_retry_budget_never_grants_more_than_the_ratio_of_first_attempts_plus_the_floor(
        ratio_percent in 0u32..=100,
        min_per_second in 0u32..=5,
        steps in prop::collection::vec(step(), 1..400),
    ) {
        let policy = RetryBudgetPolicy { ratio_percent, min_per_second };
        paused_runtime().block_on(async {
            let budget = RetryBudget::new();
            let epoch = Instant::now();
            let second = || Instant::now().duration_since(epoch).as_secs();
            let mut calls: Vec<u64> = Vec::new();
            let mut granted: Vec<u64> = Vec::new();
            for step in &steps {
                match step {
                    Step::Call => {
                        budget.deposit(&policy);
                        calls.push(second());
                    }
                    Step::Retry => {
                        if budget.withdraw(&policy) {
                            let now = second();
                            granted.push(now);
                            // The sliding bound, in whole hundredths so
                            // that it is exact.
                            let since = now.saturating_sub(WINDOW_SECS - 1);
                            let in_window = |t: &&u64| **t >= since;
                            let retries = granted.iter().filter(in_window).count() as u64;
                            let firsts = calls.iter().filter(in_window).count() as u64;
                            prop_assert!(
                                retries * 100
                                    <= u64::from(ratio_percent) * firsts
                                        + u64::from(min_per_second) * WINDOW_SECS * 100,
                                "{retries} retries for {firsts} first attempts in the window \
                                 ending at second {now}"
                            );
                        }
                    }
                    Step::Wait(d) => tokio::time::advance(*d).await,
                }
            }
            let total = granted.len() as u64;
            let seconds = second();
            prop_assert!(
                total * 100
                    <= u64::from(ratio_percent) * calls.len() as u64
                        + u64::from(min_per_second) * (seconds + WINDOW_SECS) * 100,
                "{total} retries for {} first attempts over {seconds} s",
                calls.len()
            );
            Ok(())
        })?;
    }
}

/// Every call waits for its slot rather than being refused.
fn bulkhead_guard(max_concurrent: u32) -> Guard {
    local::guard_on(&local::tenant_pool(max_concurrent, 10_000, 86_400_000))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// However many calls arrive at once and however long each takes, the
    /// bulkhead never lets more than its limit run together, and (since
    /// every call waits rather than being refused) it does use the limit.
    #[test]
    fn a_bulkhead_never_admits_more_than_its_limit_under_concurrent_load(
        max_concurrent in 1u32..8,
        durations in prop::collection::vec(1u64..50, 1..64),
    ) {
        let (peak, done) = paused_runtime().block_on(async {
            let guard = bulkhead_guard(max_concurrent);
            let running = Arc::new(AtomicU32::new(0));
            let peak = Arc::new(AtomicU32::new(0));
            let mut tasks = Vec::new();
            for ms in durations.iter().copied() {
                let (guard, running, peak) = (guard.clone(), running.clone(), peak.clone());
                tasks.push(tokio::spawn(async move {
                    guard
                        .call(&Call::new("index", "search"), |_| {
                            let (running, peak) = (running.clone(), peak.clone());
                            async move {
                                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                                peak.fetch_max(now, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                                running.fetch_sub(1, Ordering::SeqCst);
                                Ok::<_, DependencyError>(())
                            }
                        })
                        .await
                        .is_ok()
                }));
            }
            let mut done = 0;
            for t in tasks {
                done += u32::from(t.await.expect("the task completes"));
            }
            (peak.load(Ordering::SeqCst), done)
        });
        let calls = durations.len() as u32;
        prop_assert_eq!(done, calls, "every call waited its turn and ran");
        prop_assert!(peak <= max_concurrent, "{} ran at once, limit {}", peak, max_concurrent);
        prop_assert_eq!(peak, max_concurrent.min(calls), "the limit is used");
    }
}
