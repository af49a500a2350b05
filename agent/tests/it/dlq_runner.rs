//! The action runner against a control plane's acknowledgement endpoint:
//! a small axum server on a loopback port that speaks the protocol's ack
//! call as the real one does (204, 204 again for the same outcome, 409 for
//! another), and can be told to fail first with given statuses. The
//! runner's real [`ControlPlane`] client talks to it over TCP, so these
//! tests also hold the client to the protocol's path.
//!
//! The runner's tests run on a paused clock (the ack backoff passes
//! without waiting); the stream test runs on real time, because the agent's
//! reconnect loop is what redelivers, and waits on a channel under a bound.

use crate::support;

use agent::Guard;
use agent::client::{AgentConfig, ControlPlane, LiveAgent};
use agent::dlq::{ActionRunner, Delivery, DeliveryRetry, Execution};
use agent::idempotency::{Claim, DedupStore, MemoryDedupStore, SqliteDedupStore, StoreError};
use agent::{RandomSource, SplitMix64};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use shared::paths;
use shared::protocol::{ActionAck, ActionOutcome, DlqAction, DlqActionKind, PolicySource, events};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::BOUND;
use tokio::sync::{mpsc, watch};

/// What the stand-in control plane saw and how it answers.
#[derive(Default)]
struct Plane {
    /// Statuses to answer the next acks with, before accepting any.
    fail_next: Mutex<VecDeque<StatusCode>>,
    /// Every ack that arrived, accepted or not.
    received: Mutex<Vec<(String, ActionAck)>>,
    /// The outcome accepted for each action.
    accepted: Mutex<BTreeMap<String, ActionAck>>,
    /// Acks answered 204 (a repeat of the same outcome counts again).
    answered_ok: watch::Sender<usize>,
    /// The actions the stream sends, one connection each, in order;
    /// later connections are refused.
    deliveries: Mutex<VecDeque<DlqAction>>,
}

async fn ack(
    State(plane): State<Arc<Plane>>,
    Path(id): Path<String>,
    axum::Json(ack): axum::Json<ActionAck>,
) -> Response {
    plane
        .received
        .lock()
        .unwrap()
        .push((id.clone(), ack.clone()));
    if let Some(status) = plane.fail_next.lock().unwrap().pop_front() {
        return status.into_response();
    }
    let mut accepted = plane.accepted.lock().unwrap();
    match accepted.get(&id) {
        Some(before) if before.outcome != ack.outcome => {
            return (StatusCode::CONFLICT, "another outcome was acknowledged").into_response();
        }
        Some(_) => {}
        None => {
            accepted.insert(id, ack);
        }
    }
    drop(accepted);
    plane.answered_ok.send_modify(|n| *n += 1);
    StatusCode::NO_CONTENT.into_response()
}

/// One action event per connection, then the stream ends (so the agent
/// reconnects, and the next connection redelivers); no more, 503.
async fn stream(State(plane): State<Arc<Plane>>) -> Response {
    let Some(action) = plane.deliveries.lock().unwrap().pop_front() else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let body = format!(
        "event: {}\ndata: {}\n\n",
        events::ACTION,
        serde_json::to_string(&action).unwrap()
    );
    ([("content-type", "text/event-stream")], body).into_response()
}

/// Serves `plane` on a loopback port; the base URL.
async fn serve(plane: Arc<Plane>) -> String {
    let app = Router::new()
        .route("/api/v1/agent/actions/{id}/ack", post(ack))
        .route(paths::AGENT_STREAM, get(stream))
        // Nothing is published; heartbeats and telemetry are taken and
        // forgotten.
        .route(paths::AGENT_POLICY, get(|| async { StatusCode::NOT_FOUND }))
        .route(
            paths::AGENT_HEARTBEAT,
            post(|| async { StatusCode::NO_CONTENT }),
        )
        .route(
            paths::AGENT_TELEMETRY,
            post(|| async { StatusCode::NO_CONTENT }),
        )
        .with_state(plane);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn client(base: &str) -> ControlPlane {
    ControlPlane::new(&AgentConfig::new(
        base,
        "bl_test",
        "case-1",
        "case-review-agent",
        "prod",
        "/nonexistent/policy.json",
    ))
}

fn redrive(id: &str) -> DlqAction {
    DlqAction {
        id: id.to_owned(),
        dead_letter_id: "dl-1".into(),
        run_id: "run-7".into(),
        kind: DlqActionKind::Redrive,
        requested_by: "user:ada".into(),
        approved_by: "user:april".into(),
        reason: "the notification API is back".into(),
    }
}

/// A handler that counts its runs and answers `answer`.
fn counting(
    answer: Result<&'static str, &'static str>,
) -> (
    Arc<AtomicU32>,
    impl Fn(DlqAction) -> std::future::Ready<Result<String, String>> + Clone + Send + Sync + 'static,
) {
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let handler = move |_: DlqAction| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(answer.map(str::to_owned).map_err(str::to_owned))
    };
    (runs, handler)
}

fn seeded() -> Arc<dyn RandomSource> {
    Arc::new(SplitMix64::seeded(9))
}

/// Delivers `actions` on a channel that then closes, and runs the runner
/// until it has handled them and delivered every acknowledgement.
async fn run_all<S: DedupStore + 'static, H: agent::dlq::ActionHandler>(
    runner: ActionRunner<S, H, ControlPlane>,
    actions: &[DlqAction],
) {
    let (tx, rx) = mpsc::channel(8);
    for a in actions {
        tx.send(a.clone()).await.unwrap();
    }
    drop(tx);
    runner.run(rx).await;
}

#[tokio::test(start_paused = true)]
async fn an_action_delivered_twice_runs_its_handler_once_and_is_acknowledged_both_times() {
    let plane = Arc::new(Plane::default());
    let base = serve(plane.clone()).await;
    let (runs, handler) = counting(Ok("notice sent"));
    let runner =
        ActionRunner::new(MemoryDedupStore::new(), handler, client(&base)).random(seeded());
    let action = redrive("act-1");
    run_all(runner, &[action.clone(), action]).await;

    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
    let received = plane.received.lock().unwrap().clone();
    let expected = ActionAck {
        outcome: ActionOutcome::Succeeded,
        detail: "notice sent".into(),
    };
    // The redelivery means the first ack may not have landed, so the
    // stored outcome is acknowledged again, unchanged.
    assert_eq!(
        received,
        vec![
            ("act-1".to_owned(), expected.clone()),
            ("act-1".to_owned(), expected)
        ]
    );
    assert_eq!(*plane.answered_ok.borrow(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_handler_is_acknowledged_failed_and_not_run_again_on_redelivery() {
    let plane = Arc::new(Plane::default());
    let base = serve(plane.clone()).await;
    let (runs, handler) = counting(Err("the notification API is still down"));
    let runner =
        ActionRunner::new(MemoryDedupStore::new(), handler, client(&base)).random(seeded());

    let first = runner.handle(&redrive("act-2")).await;
    let failed = ActionAck {
        outcome: ActionOutcome::Failed,
        detail: "the notification API is still down".into(),
    };
    assert_eq!(first.execution, Execution::Ran(failed.clone()));
    assert!(first.ack.unwrap().is_delivered());

    let again = runner.handle(&redrive("act-2")).await;
    assert_eq!(again.execution, Execution::AlreadyRan(failed.clone()));
    assert!(again.ack.unwrap().is_delivered());
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "a failure is final, not retried"
    );
    assert_eq!(
        plane.accepted.lock().unwrap().get("act-2"),
        Some(&failed),
        "acknowledged as failed"
    );
}

#[tokio::test(start_paused = true)]
async fn an_ack_that_meets_two_503s_is_resent_and_lands_once_without_rerunning_the_handler() {
    let plane = Arc::new(Plane::default());
    plane.fail_next.lock().unwrap().extend([
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::SERVICE_UNAVAILABLE,
    ]);
    let base = serve(plane.clone()).await;
    let (runs, handler) = counting(Ok("case marked cancelled"));
    let retry = DeliveryRetry {
        max_attempts: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    };
    let runner = ActionRunner::new(MemoryDedupStore::new(), handler, client(&base))
        .retry(retry)
        .random(seeded());

    let started = tokio::time::Instant::now();
    let handled = runner.handle(&redrive("act-3")).await;
    let delivery = handled.ack.unwrap();
    assert!(delivery.is_delivered(), "{delivery:?}");
    assert_eq!(delivery.attempts(), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "each resend waited at least the base delay: {:?}",
        started.elapsed()
    );
    assert_eq!(
        plane.received.lock().unwrap().len(),
        3,
        "two refused, one landed"
    );
    assert_eq!(*plane.answered_ok.borrow(), 1, "it landed once");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "resending the ack is not rerunning"
    );
}

#[tokio::test(start_paused = true)]
async fn an_ack_the_control_plane_refuses_is_not_resent() {
    let plane = Arc::new(Plane::default());
    // The action was acknowledged as failed before (by an earlier
    // incarnation that lost its store, say); a success now conflicts.
    plane.accepted.lock().unwrap().insert(
        "act-4".into(),
        ActionAck {
            outcome: ActionOutcome::Failed,
            detail: "earlier".into(),
        },
    );
    let base = serve(plane.clone()).await;
    let (_, handler) = counting(Ok("done"));
    let runner =
        ActionRunner::new(MemoryDedupStore::new(), handler, client(&base)).random(seeded());
    let handled = runner.handle(&redrive("act-4")).await;
    match handled.ack.unwrap() {
        Delivery::Refused { error, attempts } => {
            assert_eq!(attempts, 1);
            assert!(error.to_string().contains("409"), "{error}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A dedup store whose disk is gone.
struct Unavailable;

impl DedupStore for Unavailable {
    async fn claim(&self, _: &str, _: &str, _: Duration) -> Result<Claim, StoreError> {
        Err(StoreError("disk I/O error".into()))
    }
    async fn complete(&self, _: &str, _: &[u8]) -> Result<(), StoreError> {
        Err(StoreError("disk I/O error".into()))
    }
    async fn release(&self, _: &str) -> Result<(), StoreError> {
        Err(StoreError("disk I/O error".into()))
    }
}

#[tokio::test(start_paused = true)]
async fn with_the_dedup_store_unavailable_no_handler_runs_and_nothing_is_acknowledged() {
    let plane = Arc::new(Plane::default());
    let base = serve(plane.clone()).await;
    let (runs, handler) = counting(Ok("notice sent"));
    let runner = ActionRunner::new(Unavailable, handler.clone(), client(&base)).random(seeded());

    let handled = runner.handle(&redrive("act-5")).await;
    assert!(
        matches!(&handled.execution, Execution::NotRun(why) if why.contains("disk I/O error")),
        "{handled:?}"
    );
    assert!(handled.ack.is_none());
    // The same through the loop, delivered twice.
    let runner = ActionRunner::new(Unavailable, handler, client(&base)).random(seeded());
    run_all(runner, &[redrive("act-5"), redrive("act-5")]).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0, "never run without a record");
    assert!(
        plane.received.lock().unwrap().is_empty(),
        "no acknowledgement: the control plane marks the action uncertain"
    );
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_panics_is_not_acknowledged_and_the_runner_goes_on() {
    let plane = Arc::new(Plane::default());
    let base = serve(plane.clone()).await;
    let handler = |action: DlqAction| async move {
        assert_ne!(action.id, "act-boom", "the handler crashed mid-action");
        Ok::<_, String>(format!("{} done", action.id))
    };
    let runner =
        ActionRunner::new(MemoryDedupStore::new(), handler, client(&base)).random(seeded());
    run_all(runner, &[redrive("act-boom"), redrive("act-6")]).await;
    let received: Vec<String> = plane
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(received, vec!["act-6".to_owned()]);
}

/// The whole path on real time: the stream delivers an action, the
/// connection drops before the instance's acknowledgement is in, and the
/// reconnected stream delivers it again, as the control plane does for an
/// unacknowledged action. The handler runs once, the stored outcome is
/// acknowledged for each delivery, and it survives a restart of the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_redelivered_over_a_reconnected_stream_runs_once() {
    let plane = Arc::new(Plane::default());
    let action = redrive("act-7");
    plane
        .deliveries
        .lock()
        .unwrap()
        .extend([action.clone(), action.clone()]);
    let base = serve(plane.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = AgentConfig::new(
        &base,
        "bl_test",
        "case-1",
        "case-review-agent",
        "prod",
        dir.path().join("policy.json"),
    );
    config.reconnect_max = Duration::from_millis(500);
    let live = Arc::new(LiveAgent::start(config).await);
    assert_eq!(live.applied().1, PolicySource::Default);
    let tasks = live.spawn(Guard::builder(live.policy()).build());

    let store_path = dir.path().join("actions.sqlite");
    let (runs, handler) = counting(Ok("notice sent"));
    let store = SqliteDedupStore::open(&store_path).await.unwrap();
    let runner = ActionRunner::new(store, handler, live.control_plane().clone());
    let running = runner.spawn(live.take_actions().expect("taken once"));

    let mut answered = plane.answered_ok.subscribe();
    tokio::time::timeout(BOUND, answered.wait_for(|n| *n >= 2))
        .await
        .expect("both deliveries were acknowledged within the bound")
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
    let outcomes: Vec<ActionOutcome> = plane
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(id, a)| {
            assert_eq!(id, "act-7");
            a.outcome
        })
        .collect();
    assert_eq!(outcomes, vec![ActionOutcome::Succeeded; 2]);
    running.abort();
    for t in tasks {
        t.abort();
    }

    // A restarted instance opens the same file and still knows.
    let store = SqliteDedupStore::open(&store_path).await.unwrap();
    let (runs_after, handler) = counting(Ok("notice sent"));
    let runner = ActionRunner::new(store, handler, client(&base));
    let handled = runner.handle(&action).await;
    assert!(matches!(handled.execution, Execution::AlreadyRan(_)));
    assert_eq!(runs_after.load(Ordering::SeqCst), 0);
}
