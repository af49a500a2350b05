//! A guarded call finds its dependency's state through handles that each
//! thread keeps from call to call, and brings them up to date only where
//! the call differs from the previous one (its tenant, its bulkhead
//! partitions, the policy version). These tests switch tenants and
//! policies between calls on one thread and check that every call still
//! lands in its own tenant's partition and under the policy in force.

use agent::bulkhead::BulkheadRejection;
use agent::{Call, CompiledPolicy, DependencyError, Guard, GuardError, policy_channel};
use shared::policy::Policy;
use shared::protocol::PolicySource;
use std::future::Future;
use tokio::sync::oneshot;

/// One slot per tenant, and no queue: a second call of a busy tenant is
/// refused at once.
fn policy(version: u64, max_concurrent: u32) -> CompiledPolicy {
    let yaml = format!(
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
    max_queued: 0
    queue_timeout_ms: 1000
"#
    );
    let policy = Policy::from_yaml(&yaml).expect("the policy parses");
    CompiledPolicy::compile(policy, Some(version), PolicySource::Server)
}

/// A call for `tenant` that answers at once; whether it got a slot.
async fn quick(guard: &Guard, tenant: &str) -> Result<(), GuardError<DependencyError>> {
    guard
        .call(&Call::new("index", "query").tenant(tenant), |_| async {
            Ok::<_, DependencyError>(())
        })
        .await
        .result
}

/// A call for `tenant` that holds its slot until `release` is sent.
fn held<'g>(
    guard: &'g Guard,
    tenant: &'g str,
    release: oneshot::Receiver<()>,
) -> impl Future<Output = Result<(), GuardError<DependencyError>>> + 'g {
    let mut release = Some(release);
    async move {
        guard
            .call(&Call::new("index", "query").tenant(tenant), move |_| {
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
}

const FULL: Result<(), GuardError<DependencyError>> =
    Err(GuardError::Bulkhead(BulkheadRejection::Full));

#[tokio::test(start_paused = true)]
async fn calls_switching_tenants_on_one_thread_each_land_in_their_own_tenants_partition() {
    let (_publish, rx) = policy_channel(policy(1, 1));
    let guard = Guard::builder(rx).build();
    let (release, wait) = oneshot::channel();
    let a_busy = tokio::spawn({
        let guard = guard.clone();
        async move { held(&guard, "a", wait).await }
    });
    // Let the held call take tenant a's only slot.
    tokio::task::yield_now().await;

    // Tenant b is free, whatever tenant the thread's handles last served.
    assert_eq!(quick(&guard, "b").await, Ok(()));
    // Back to a: the handles move to a's partition, which is full...
    assert_eq!(quick(&guard, "a").await, FULL);
    // ...and stay on it for the next call of the same tenant.
    assert_eq!(quick(&guard, "a").await, FULL);
    assert_eq!(quick(&guard, "b").await, Ok(()));
    assert_eq!(quick(&guard, "b").await, Ok(()));
    assert_eq!(quick(&guard, "a").await, FULL);

    release.send(()).expect("the held call waits");
    assert_eq!(a_busy.await.expect("the held call"), Ok(()));
    assert_eq!(quick(&guard, "a").await, Ok(()));
    assert_eq!(quick(&guard, "b").await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_new_policy_reaches_the_next_call_through_the_threads_handles() {
    let (publish, rx) = policy_channel(policy(1, 1));
    let guard = Guard::builder(rx).build();
    let (release, wait) = oneshot::channel();
    let a_busy = tokio::spawn({
        let guard = guard.clone();
        async move { held(&guard, "a", wait).await }
    });
    tokio::task::yield_now().await;
    assert_eq!(quick(&guard, "a").await, FULL);

    // Two slots per tenant now: the same thread's next call has room.
    publish.send_replace(std::sync::Arc::new(policy(2, 2)));
    assert_eq!(quick(&guard, "a").await, Ok(()));

    release.send(()).expect("the held call waits");
    assert_eq!(a_busy.await.expect("the held call"), Ok(()));
}
