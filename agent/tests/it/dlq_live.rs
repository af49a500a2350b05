//! Dead letters against the real control plane: the `ballast` server's own
//! router on a temporary SQLite file, over TCP on a loopback port, as in
//! `live`. The agent reports a dead letter, one person asks for a
//! redrive, another approves it, and the approved action travels down the
//! agent's stream to the [`ActionRunner`], whose acknowledgement closes it.
//! Nothing here stands in for the server, so a disagreement about the
//! protocol (a path, a field, a status) breaks this test.
//!
//! Every wait is bounded; the server's view of the action has no event, so
//! it is polled on a short interval up to a hard deadline.

use crate::support;

use agent::Guard;
use agent::client::{AgentConfig, LiveAgent};
use agent::dlq::{ActionRunner, DeliveryRetry, DlqTransport, deliver};
use agent::idempotency::SqliteDedupStore;
use agent::{RandomSource, SplitMix64};
use serde_json::{Value, json};
use server::app::{AppState, Settings, router};
use server::clock::{Clock, SystemClock};
use server::config::Secret;
use server::store::{AuditRecord, Store};
use shared::paths;
use shared::policy::ErrorClass;
use shared::protocol::DlqAction;
use shared::role::Role;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use support::{Admin, BOUND, ENV, PASSWORD, SERVICE, until_stream};

/// The server, signed in as `admin` and as the approver `april`, with a
/// service token; the service has a policy whose redrives need approval.
struct Ballast {
    admin: Admin,
    approver: Admin,
    token: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Ballast {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Store::sqlite_url_in(dir.path()))
        .await
        .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let settings = Settings {
        site_root: dir.path().join("site"),
        ..Settings::default()
    };
    let state = AppState::new(
        store,
        &Secret::new("dlq-live-test-secret-dlq-live-test-secret-0123"),
        clock.clone(),
        settings,
    )
    .unwrap();
    let hash = server::auth::password::hash(PASSWORD.into()).await.unwrap();
    for (name, role) in [("admin", Role::Admin), ("april", Role::Approver)] {
        state
            .store
            .create_user(
                name,
                &hash,
                role,
                clock.now_ms(),
                &AuditRecord::new("test", "user.create", "", json!({})),
            )
            .await
            .unwrap();
    }
    let token = server::auth::tokens::issue(&state.store, clock.now_ms(), "test", SERVICE, ENV)
        .await
        .unwrap()
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut admin = Admin::new(&base);
    admin.sign_in().await;
    admin.create_service().await;
    let mut policy = support::reranker_policy(1000, 3, "Ranked more coarsely than usual.");
    policy["dead_letters"] = json!({
        "task_types": { "answer": { "side_effects": true } },
        "approval": { "redrive": "always" },
        "ack_timeout_s": 30
    });
    admin.publish("redrives need an approver", policy).await;
    let mut approver = Admin::new(&base);
    approver.sign_in_as("april").await;
    Ballast {
        admin,
        approver,
        token,
        _dir: dir,
    }
}

/// The action `action` as the server shows it on the entry `entry`.
async fn action_view(plane: &Ballast, entry: &str, action: &str) -> Value {
    let (status, body) = plane
        .admin
        .call("GET", &paths::dead_letter(entry), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == action)
        .cloned()
        .unwrap_or_else(|| panic!("no action {action} on {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_dead_letter_is_redriven_once_after_a_second_person_approves() {
    let plane = start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = AgentConfig::new(
        &plane.admin.base,
        &plane.token,
        "answer-1",
        SERVICE,
        ENV,
        dir.path().join("policy.json"),
    );
    config.startup_wait = BOUND;
    let live = Arc::new(LiveAgent::start(config).await);
    let tasks = live.spawn(Guard::builder(live.policy()).build());
    until_stream(&live, true).await;

    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let handler = move |action: DlqAction| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, String>(format!("run {} resumed from close_case", action.run_id)) }
    };
    let store = SqliteDedupStore::open(&dir.path().join("actions.sqlite"))
        .await
        .unwrap();
    let runner = ActionRunner::new(store, handler, live.control_plane().clone());
    let running = runner.spawn(live.take_actions().unwrap());

    // The report, through the same resend loop a service uses; twice, as
    // a resend after a lost answer would be: one entry.
    let now_ms = agent::clock::WallClock::system().now_ms();
    let report = agent::dlq::dead_letter(
        "run-1",
        "answer",
        "send_notice",
        ErrorClass::Unavailable,
        "the notification API answered 503 twice after the case was closed",
        2,
        Some("close_case"),
        now_ms,
        br#"{"case": 1}"#,
    );
    let random: Arc<dyn RandomSource> = Arc::new(SplitMix64::seeded(4));
    let send = || async {
        deliver(&DeliveryRetry::default(), &*random, || {
            live.control_plane().report(&report)
        })
        .await
        .value()
        .flatten()
        .expect("the control plane answers with the entry's id")
        .id
    };
    let entry = send().await;
    assert_eq!(send().await, entry, "the same report is the same entry");

    let (status, requested) = plane
        .admin
        .call(
            "POST",
            &paths::dead_letter_actions(&entry),
            Some(json!({ "kind": "redrive", "reason": "the notification API is back" })),
        )
        .await;
    assert_eq!(status, 201, "{requested}");
    assert_eq!(requested["status"], "requested", "waits for an approver");
    let action = requested["id"].as_str().unwrap().to_owned();
    let (status, approved) = plane
        .approver
        .call(
            "POST",
            &paths::dlq_action(&action, "approve"),
            Some(json!({ "reason": "checked: only the notice is missing" })),
        )
        .await;
    assert_eq!(status, 200, "{approved}");

    let done = tokio::time::timeout(BOUND, async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let view = action_view(&plane, &entry, &action).await;
            if view["status"] == "succeeded" {
                return view;
            }
        }
    })
    .await
    .expect("the action was executed and acknowledged within the bound");
    assert_eq!(done["dispatched_to"], "answer-1");
    assert_eq!(done["detail"], "run run-1 resumed from close_case");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");

    running.abort();
    for t in tasks {
        t.abort();
    }
}
