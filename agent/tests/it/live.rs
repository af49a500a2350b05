//! The live-policy client against the real control plane: the `ballast`
//! server's own router, on a temporary SQLite file, served over TCP on a
//! loopback port. Nothing here is a stand-in for the server, so these tests
//! break when the client and the server disagree about the agent protocol.
//!
//! Every wait is bounded: a watch channel is awaited under a timeout, and
//! what has no event (the fleet view) is polled on a short interval up to a
//! hard deadline.

use crate::support;

use agent::Guard;
use agent::client::{AgentConfig, LiveAgent, Pulled, SseParser, load_last_known_good};
use http_body_util::BodyExt;
use serde_json::json;
use shared::paths;
use shared::protocol::PolicySource;
use std::sync::Arc;
use std::time::Duration;
use support::{BOUND, Ballast, ENV, SERVICE, until_stream, until_version};

/// A port that refuses connections: bound, then released.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_starts_on_the_published_policy_follows_the_stream_and_keeps_a_disk_copy() {
    let plane = Ballast::start().await;
    let v1 = plane.publish(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let config = plane.agent_config(dir.path(), "rag-1");
    let path = config.last_known_good.clone();

    let live = Arc::new(LiveAgent::start(config).await);
    assert_eq!(live.applied(), (Some(v1), PolicySource::Server));
    let mut rx = live.policy();
    assert_eq!(rx.borrow().version(), Some(v1));
    assert_eq!(
        rx.borrow().total_budget(),
        Some(Duration::from_millis(1000))
    );
    assert_eq!(load_last_known_good(&path).unwrap().version, v1);

    let guard = Guard::builder(live.policy()).instance_id("rag-1").build();
    let tasks = live.spawn(guard.clone());
    // Publishing only after the stream is open, and seeing it still open
    // after the version arrives, shows the stream carried it: the agent
    // pulls only while the stream is down.
    until_stream(&live, true).await;
    let v2 = plane.publish(2000).await;
    assert_eq!(v2, v1 + 1);
    until_version(&mut rx, v2).await;
    assert!(*live.stream_connected().borrow(), "delivered by the stream");
    assert_eq!(live.applied(), (Some(v2), PolicySource::Server));
    assert_eq!(guard.policy().version(), Some(v2), "the guard enforces it");
    assert_eq!(
        guard.policy().total_budget(),
        Some(Duration::from_millis(2000))
    );
    let on_disk = load_last_known_good(&path).unwrap();
    assert_eq!((on_disk.version, on_disk.service.as_str()), (v2, SERVICE));

    // The fleet view: the heartbeat sent on apply reports v2 long before
    // the 10 s interval would.
    let instances = paths::service(SERVICE, ENV).instances();
    let seen = tokio::time::timeout(BOUND, async {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let (status, body) = plane.admin.call("GET", &instances, None).await;
            assert_eq!(status, 200, "{body}");
            if let Some(i) = body
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["instance_id"] == "rag-1" && i["policy_version"] == json!(v2))
            {
                return i.clone();
            }
        }
    })
    .await
    .expect("the heartbeat with the new version reached the server");
    assert_eq!(seen["policy_source"], "server");
    assert_eq!(seen["desired_version"], json!(v2));
    assert_eq!(seen["lagging"], false);
    assert_eq!(seen["status"], "up");
    assert_eq!(seen["agent_version"], env!("CARGO_PKG_VERSION"));

    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_server_gone_a_fresh_agent_starts_from_the_disk_copy_within_the_bound() {
    let plane = Ballast::start().await;
    plane.publish(1000).await;
    let v2 = plane.publish(2500).await;
    let dir = tempfile::tempdir().unwrap();
    let config = plane.agent_config(dir.path(), "rag-1");
    let first = LiveAgent::start(config.clone()).await;
    assert_eq!(first.applied(), (Some(v2), PolicySource::Server));
    drop(first);

    // Stop the server: its listener goes with the task, so the port
    // refuses connections from here on.
    plane.server.abort();
    let _ = plane.server.await;

    let started = tokio::time::Instant::now();
    let fresh = LiveAgent::start(config).await;
    assert!(
        started.elapsed() < BOUND,
        "start-up is not held for the whole wait when the server refuses"
    );
    assert_eq!(fresh.applied(), (Some(v2), PolicySource::Disk));
    let policy = fresh.policy().borrow().clone();
    assert_eq!(policy.version(), Some(v2));
    assert_eq!(policy.source(), PolicySource::Disk);
    assert_eq!(policy.total_budget(), Some(Duration::from_millis(2500)));
    assert_eq!(fresh.heartbeat().policy_source, PolicySource::Disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_neither_server_nor_disk_copy_the_agent_runs_the_conservative_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AgentConfig::new(
        closed_port(),
        "bl_unused",
        "rag-1",
        SERVICE,
        ENV,
        dir.path().join("policy.json"),
    );
    config.startup_wait = BOUND;
    let started = tokio::time::Instant::now();
    let live = LiveAgent::start(config).await;
    assert!(started.elapsed() < BOUND);
    assert_eq!(live.applied(), (None, PolicySource::Default));
    let policy = live.policy().borrow().clone();
    assert_eq!(policy.source(), PolicySource::Default);
    assert_eq!(policy.total_budget(), Some(Duration::from_secs(30)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_first_publish_the_default_runs_and_the_first_publish_arrives_by_stream() {
    let plane = Ballast::start().await;
    let dir = tempfile::tempdir().unwrap();
    let live = Arc::new(LiveAgent::start(plane.agent_config(dir.path(), "rag-2")).await);
    // The server answers (404, nothing published): the default, at once.
    assert_eq!(live.applied(), (None, PolicySource::Default));
    let guard = Guard::builder(live.policy()).build();
    let tasks = live.spawn(guard);
    until_stream(&live, true).await;
    let v1 = plane.publish(1500).await;
    let mut rx = live.policy();
    until_version(&mut rx, v1).await;
    assert_eq!(live.applied(), (Some(v1), PolicySource::Server));
    assert_eq!(
        load_last_known_good(&dir.path().join("policy.json"))
            .unwrap()
            .version,
        v1
    );
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_copy_that_fails_validation_is_refused_and_the_server_hears_why() {
    let plane = Ballast::start().await;
    let v1 = plane.publish(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let config = plane.agent_config(dir.path(), "rag-refusing");
    // Newer than anything published, and unsafe: its only fallback answers
    // from the model's memory.
    let mut unsafe_policy = support::reranker_policy(5000, 3, "Answered from memory.");
    unsafe_policy["fallbacks"][0]["fallback"]["kind"] = json!("model_memory");
    let copy = shared::protocol::PolicyEnvelope {
        service: SERVICE.into(),
        environment: ENV.into(),
        version: v1 + 10,
        etag: "hand-edited".into(),
        published_at_ms: 0,
        policy: serde_json::from_value(unsafe_policy).unwrap(),
    };
    agent::client::save_last_known_good(&config.last_known_good, &copy).unwrap();

    let live = LiveAgent::start(config).await;
    assert_eq!(live.applied(), (Some(v1), PolicySource::Server));
    let beat = live.heartbeat();
    let refused = beat.refused_policy.clone().expect("reported");
    assert_eq!(
        (refused.version, refused.source),
        (v1 + 10, PolicySource::Disk)
    );
    live.control_plane()
        .heartbeat(&beat)
        .await
        .expect("the server accepts a heartbeat that reports a refusal");
    plane.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etag_pull_and_the_raw_stream_speak_the_servers_protocol() {
    let plane = Ballast::start().await;
    let v1 = plane.publish(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let config = plane.agent_config(dir.path(), "rag/odd+id");
    let cp = agent::client::ControlPlane::new(&config);

    let Pulled::Policy(envelope) = cp.pull(None).await.unwrap() else {
        panic!("a published policy is pulled");
    };
    assert_eq!(envelope.version, v1);
    assert!(
        matches!(
            cp.pull(Some(&envelope.etag)).await.unwrap(),
            Pulled::NotModified
        ),
        "the ETag the client sends back is the one the server issued"
    );

    // The stream: the current version on connect, then each publish.
    let mut body = cp.stream().await.unwrap();
    let mut parser = SseParser::new();
    let mut next_policy = async || -> u64 {
        loop {
            let frame = body.frame().await.expect("open").expect("readable");
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if let Some(e) = parser
                .feed(&data)
                .unwrap()
                .into_iter()
                .find(|e| e.event == "policy")
            {
                let envelope: shared::protocol::PolicyEnvelope =
                    serde_json::from_str(&e.data).unwrap();
                assert_eq!(e.id, Some(envelope.version.to_string()));
                return envelope.version;
            }
        }
    };
    assert_eq!(
        tokio::time::timeout(BOUND, next_policy()).await.unwrap(),
        v1
    );
    let v2 = plane.publish(2000).await;
    assert_eq!(
        tokio::time::timeout(BOUND, next_policy()).await.unwrap(),
        v2
    );

    // A revoked or wrong token is refused, and that is an error, not "nothing published".
    let mut bad = config.clone();
    bad.token = "bl_not_a_token".into();
    let err = agent::client::ControlPlane::new(&bad)
        .pull(None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, agent::client::ClientError::Status { status, .. } if status == 401),
        "{err}"
    );
}
