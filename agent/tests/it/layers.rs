//! The tower faces of the guard: the deadline layers and the guard layer.

use agent::deadline::{DeadlineLayer, Expired, PropagateDeadlineLayer};
use agent::{CompiledPolicy, DependencyError, Guard, GuardError, GuardLayer, policy_channel};
use shared::policy::{DegradedStatus, ErrorClass};
use shared::protocol::DEADLINE_HEADER;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn the_remaining_deadline_goes_out_on_the_outgoing_call_and_an_expired_one_is_never_sent() {
    let (_tx, rx) = policy_channel(CompiledPolicy::conservative_default("svc", "test"));
    // Incoming: 900 ms left; 400 ms pass in the handler before the outgoing call.
    let outgoing = ServiceBuilder::new()
        .layer(PropagateDeadlineLayer)
        .service(service_fn(|req: http::Request<()>| async move {
            Ok::<_, std::convert::Infallible>(req.headers()[DEADLINE_HEADER].clone())
        }));
    let handler = ServiceBuilder::new()
        .layer(DeadlineLayer::new(rx))
        .service(service_fn(move |req: http::Request<()>| {
            let outgoing = outgoing.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let mut out = http::Request::new(());
                *out.extensions_mut() = req.extensions().clone();
                outgoing.oneshot(out).await
            }
        }));
    let req = http::Request::builder()
        .header(DEADLINE_HEADER, "900")
        .body(())
        .unwrap();
    let sent = handler.clone().oneshot(req).await.unwrap();
    assert_eq!(sent, "500");
    let expired = http::Request::builder()
        .header(DEADLINE_HEADER, "0")
        .body(())
        .unwrap();
    let err = handler.oneshot(expired).await.unwrap_err();
    assert!(err.downcast_ref::<Expired>().is_some());
}

#[tokio::test(start_paused = true)]
async fn the_guard_layer_retries_a_read_and_reports_the_refusal_with_its_status() {
    let (_tx, rx) = policy_channel(CompiledPolicy::conservative_default("svc", "test"));
    let guard = Guard::builder(rx)
        .random(Arc::new(agent::SplitMix64::seeded(3)))
        .build();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = ServiceBuilder::new()
        .layer(GuardLayer::new(guard, "search", "query"))
        .service(service_fn(move |_req: http::Request<()>| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(DependencyError::new(ErrorClass::Unavailable, "503")) }
        }));
    let err = svc.oneshot(http::Request::new(())).await.unwrap_err();
    // The default policy: an unknown dependency is treated as a write, so
    // nothing is retried without a key, and nothing falls back: refused.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(matches!(err.error, GuardError::Dependency(_)));
    assert_eq!(err.status, DegradedStatus::Refused);
    assert!(err.user_message.is_some());
}
