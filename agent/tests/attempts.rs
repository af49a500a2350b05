//! What an attempt holds, and when it lets go: an attempt cut off at its
//! deadline is dropped (so its request is cancelled and its connection
//! freed) before its bulkhead slot goes back and the retry's backoff
//! starts, on a paused clock so that every instant below is exact.

use agent::{Call, CompiledPolicy, DependencyError, Guard, policy_channel};
use shared::policy::Policy;
use shared::protocol::PolicySource;
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
    let policy = Policy::from_yaml(POLICY).expect("the test policy parses");
    let (_publish, rx) = policy_channel(CompiledPolicy::compile(
        policy,
        Some(1),
        PolicySource::Server,
    ));
    let guard = Guard::builder(rx).build();
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
