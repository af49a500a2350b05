//! A silent network partition between the agent and the real control
//! plane: a proxy on the path stops passing bytes without closing
//! anything, as a dropped route or a stuck middlebox does. No reset
//! arrives, so only the agent's own deadlines can tell it the stream is
//! dead. It must notice within its idle deadline, fall back to pulling,
//! and pick up a rollback published while it could not hear.
//!
//! Every wait is bounded (see `support::BOUND`); nothing sleeps to let
//! time pass.

use crate::support;

use agent::Guard;
use agent::client::LiveAgent;
use serde_json::json;
use shared::paths;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::{BOUND, Ballast, ENV, SERVICE, until_stream, until_version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Copies `from` to `to`, dropping every byte while `cut` is set.
async fn pass(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) if !cut.load(Ordering::SeqCst) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            // Partitioned: swallowed, and nobody is told.
            Ok(_) => {}
        }
    }
}

/// A TCP proxy to `upstream` whose traffic `cut` silences; returns its
/// base URL.
async fn proxy(upstream: String, cut: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pass(cr, sw, cut.clone()));
            tokio::spawn(pass(sr, cw, cut.clone()));
        }
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_is_noticed_within_the_idle_deadline_and_a_rollback_still_arrives() {
    let plane = Ballast::start().await;
    let v1 = plane.publish(1000).await;
    // The version that will misbehave, in force when the partition starts.
    let v2 = plane.publish(2000).await;
    let cut = Arc::new(AtomicBool::new(false));
    let through_proxy = proxy(plane.admin.base.clone(), cut.clone()).await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = plane.agent_config(dir.path(), "rag-partitioned");
    config.base_url = through_proxy;
    // Shorter than the server's 15 s keep-alive, so the test runs in
    // seconds: a healthy stream is then also dropped and reopened every
    // two seconds, which is harmless (each connect delivers the current
    // policy) and keeps the point of the test, a dead stream's end.
    let idle = Duration::from_secs(2);
    config.stream_idle = idle;
    config.request_timeout = Duration::from_millis(500);
    config.connect_timeout = Duration::from_millis(500);
    config.reconnect_max = Duration::from_millis(500);
    let live = Arc::new(LiveAgent::start(config).await);
    let guard = Guard::builder(live.policy()).build();
    let tasks = live.spawn(guard.clone());
    until_stream(&live, true).await;
    let mut rx = live.policy();
    until_version(&mut rx, v2).await;

    // When the agent gives the stream up, taken as it happens: the
    // rollback below may take a while on a loaded machine.
    let mut connected = live.stream_connected();
    let dropped = tokio::spawn(async move {
        let _ = connected.wait_for(|open| !*open).await;
        tokio::time::Instant::now()
    });
    // The partition: the stream stays open at both ends, and silent.
    cut.store(true, Ordering::SeqCst);
    let cut_at = tokio::time::Instant::now();
    // Rolled back to v1 while the agent cannot hear.
    let (status, body) = plane
        .admin
        .call(
            "POST",
            &paths::service(SERVICE, ENV).rollback(),
            Some(json!({ "to_version": v1, "message": "v2 misbehaves" })),
        )
        .await;
    assert_eq!(status, 201, "rollback: {body}");
    let rollback = body["version"].as_u64().expect("the rollback's version");
    assert!(rollback > v2);

    let dropped_at = tokio::time::timeout(BOUND, dropped)
        .await
        .unwrap_or_else(|_| panic!("the silent stream was still open after {BOUND:?}"))
        .unwrap();
    let noticed = dropped_at.saturating_duration_since(cut_at);
    assert!(
        noticed <= idle + Duration::from_secs(1),
        "the dead stream was noticed after {noticed:?}, its idle deadline is {idle:?}"
    );
    assert_eq!(
        rx.borrow().version(),
        Some(v2),
        "nothing got through meanwhile"
    );

    // The partition heals: the pull or the next stream brings the rollback.
    cut.store(false, Ordering::SeqCst);
    until_version(&mut rx, rollback).await;
    assert_eq!(
        rx.borrow().total_budget(),
        Some(Duration::from_millis(1000)),
        "the rollback restores v1's content"
    );
    for t in tasks {
        t.abort();
    }
    plane.server.abort();
}
