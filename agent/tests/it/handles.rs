//! A guarded call finds its dependency's state through handles that each
//! thread keeps from call to call, and brings them up to date only where
//! the call differs from the previous one (its tenant, its bulkhead
//! partitions, the policy version). These tests switch tenants and
//! policies between calls on one thread and check that every call still
//! lands in its own tenant's partition and under the policy in force.

use crate::local;

use agent::bulkhead::BulkheadRejection;
use agent::{Call, CompiledPolicy, DependencyError, Guard, GuardError, policy_channel};
use local::{held_call, policy_on, tenant_pool};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One slot per tenant, and no queue: a second call of a busy tenant is
/// refused at once.
fn policy(version: u64, max_concurrent: u32) -> CompiledPolicy {
    policy_on(&tenant_pool(max_concurrent, 0, 1_000), version)
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

/// Starts a call for tenant `a` that holds its slot until the sender is
/// used, and lets it take the slot.
async fn hold_a(
    guard: &Guard,
) -> (
    oneshot::Sender<()>,
    JoinHandle<Result<(), GuardError<DependencyError>>>,
) {
    let (release, wait) = oneshot::channel();
    let call = tokio::spawn({
        let guard = guard.clone();
        async move { held_call(&guard, &Call::new("index", "query").tenant("a"), wait).await }
    });
    tokio::task::yield_now().await;
    (release, call)
}

const FULL: Result<(), GuardError<DependencyError>> =
    Err(GuardError::Bulkhead(BulkheadRejection::Full));

#[tokio::test(start_paused = true)]
async fn calls_switching_tenants_on_one_thread_each_land_in_their_own_tenants_partition() {
    let (_publish, rx) = policy_channel(policy(1, 1));
    let guard = Guard::builder(rx).build();
    // The held call takes tenant a's only slot.
    let (release, a_busy) = hold_a(&guard).await;

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
    let (release, a_busy) = hold_a(&guard).await;
    assert_eq!(quick(&guard, "a").await, FULL);

    // Two slots per tenant now: the same thread's next call has room.
    publish.send_replace(std::sync::Arc::new(policy(2, 2)));
    assert_eq!(quick(&guard, "a").await, Ok(()));

    release.send(()).expect("the held call waits");
    assert_eq!(a_busy.await.expect("the held call"), Ok(()));
}
