//! What a call and its attempts hold, and when they let go: an attempt cut
//! off at its deadline is dropped (so its request is cancelled and its
//! connection freed) before its bulkhead slot goes back and the retry's
//! backoff starts; a call its caller abandons while it waits for a slot
//! gives up its place in the queue. On a paused clock, so that every
//! instant below is exact.

use crate::local;

use agent::{Call, DependencyError};
use local::{guard_on, held_call};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const POLICY: &str = r#"
service:
  name: attempts
  environment: test
  owner: reliability
  risk_tier: medium
  dependencies:
    search: { kind: vector_db }
timeouts:
  total_ms: 60000
  dependencies: { search: 100 }
retry:
  search:
    max_attempts: 2
    base_delay_ms: 1000
    max_delay_ms: 1000
    jitter: none
    retry_on: [timeout]
retry_budget: { ratio_percent: 100, min_per_second: 10 }
"#;

/// Notes the instant it is dropped.
struct DropClock(Arc<Mutex<Option<Instant>>>);

impl Drop for DropClock {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_cut_off_at_its_deadline_is_dropped_before_the_retrys_backoff() {
    let guard = guard_on(POLICY);
    let dropped = Arc::new(Mutex::new(None));
    let started = Instant::now();
    let out = guard
        .call(&Call::new("search", "query"), |attempt| {
            // Only the first attempt holds something, and never answers:
            // its deadline (100 ms) cuts it off.
            let held = (attempt.number == 1).then(|| DropClock(dropped.clone()));
            async move {
                if let Some(held) = held {
                    let _held = held;
                    std::future::pending::<()>().await;
                }
                Ok::<_, DependencyError>(attempt.number)
            }
        })
        .await;
    assert_eq!(out.result, Ok(2), "the retry answers");
    assert_eq!(started.elapsed(), Duration::from_millis(100 + 1000));
    assert_eq!(
        *dropped.lock().unwrap(),
        Some(started + Duration::from_millis(100)),
        "dropped at its deadline, not after the backoff"
    );
}

/// One slot, one place in the queue.
const NARROW: &str = r#"
service:
  name: narrow
  environment: test
  owner: reliability
  risk_tier: medium
  dependencies:
    search: { kind: vector_db }
bulkheads:
  search:
    partition: tenant
    dependency: search
    max_concurrent: 1
    max_queued: 1
    queue_timeout_ms: 60000
"#;

#[tokio::test(start_paused = true)]
async fn a_call_abandoned_while_it_waits_for_a_slot_gives_up_its_place_in_the_queue() {
    let guard = guard_on(NARROW);
    let call = Call::new("search", "query").tenant("acme");
    let (release, wait) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn({
        let guard = guard.clone();
        let call = call.clone();
        async move { held_call(&guard, &call, wait).await }
    });
    tokio::task::yield_now().await;

    // Three callers in turn give up after 10 ms in the queue; each leaves
    // the one place free for the next.
    for _ in 0..3 {
        let waiting = guard.call(&call, |_| async { Ok::<_, DependencyError>(()) });
        assert!(
            tokio::time::timeout(Duration::from_millis(10), waiting)
                .await
                .is_err(),
            "it waits for the slot"
        );
    }
    guard.seal_telemetry();
    let batch = guard.recorder().next_batch().expect("a batch");
    assert_eq!(batch.dependencies["search"].queued, 0, "nobody waits now");

    // The place is free: this caller queues, and gets the slot once the
    // holder lets go.
    let queued = tokio::spawn({
        let guard = guard.clone();
        let call = call.clone();
        async move {
            guard
                .call(&call, |_| async { Ok::<_, DependencyError>(()) })
                .await
                .result
        }
    });
    tokio::task::yield_now().await;
    release.send(()).expect("the holder waits");
    assert_eq!(holder.await.expect("the holder"), Ok(()));
    assert_eq!(queued.await.expect("the queued call"), Ok(()));
}
