//! What the tests of a guard on its own (no control plane) share: a
//! policy given as YAML, a guard on it, and a call that holds its bulkhead
//! slot until released.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use agent::{Call, CompiledPolicy, DependencyError, Guard, GuardError, SplitMix64, policy_channel};
use shared::policy::Policy;
use shared::protocol::PolicySource;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A policy whose one dependency, `index`, sits behind a bulkhead
/// partitioned by tenant with these limits.
pub fn tenant_pool(max_concurrent: u32, max_queued: u32, queue_timeout_ms: u64) -> String {
    format!(
        r#"
service:
  name: pool
  environment: test
  owner: reliability
  risk_tier: medium
  dependencies:
    index: {{ kind: vector_db }}
bulkheads:
  search:
    partition: tenant
    dependency: index
    max_concurrent: {max_concurrent}
    max_queued: {max_queued}
    queue_timeout_ms: {queue_timeout_ms}
"#
    )
}

/// `yaml` compiled as version `version` from the server.
pub fn policy_on(yaml: &str, version: u64) -> CompiledPolicy {
    let policy = Policy::from_yaml(yaml).expect("the test policy parses");
    CompiledPolicy::compile(policy, Some(version), PolicySource::Server)
}

/// A guard on `yaml`, with a seeded random source; nothing is published
/// to it later.
pub fn guard_on(yaml: &str) -> Guard {
    let (tx, rx) = policy_channel(policy_on(yaml, 1));
    // Kept open for the guard's life.
    std::mem::forget(tx);
    Guard::builder(rx)
        .random(Arc::new(SplitMix64::seeded(3)))
        .build()
}

/// Makes `call` with an operation that holds its bulkhead slots until
/// `release` is sent (or dropped), then answers.
pub async fn held_call(
    guard: &Guard,
    call: &Call<'_>,
    release: oneshot::Receiver<()>,
) -> Result<(), GuardError<DependencyError>> {
    let mut release = Some(release);
    guard
        .call(call, move |_| {
            let release = release.take();
            async move {
                if let Some(r) = release {
                    let _ = r.await;
                }
                Ok::<_, DependencyError>(())
            }
        })
        .await
        .result
}
