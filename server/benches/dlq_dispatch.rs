//! Dead-letter benchmark (issue: dead letters and approvals).
//!
//! Run: `cargo bench -p ballast-server --bench dlq_dispatch`
//! (`DLQ_ENTRIES`, `DLQ_STREAMS`, `DLQ_POSTERS` override the defaults; the
//! same on PostgreSQL when `BALLAST_TEST_PG_URL` is set).
//!
//! 1. Ingest: `DLQ_POSTERS` agents post `DLQ_ENTRIES` dead letters through
//!    the router; dead letters stored per second.
//! 2. Dispatch: as many approved actions (cancels the policy lets run
//!    without a second person, so the redrive pace does not cap the
//!    figure) wait while `DLQ_STREAMS` agent instances connect over TCP;
//!    each reads its `action` events and acknowledges each at once (acks
//!    in flight side by side, as the agent's runner sends them).
//!    Actions dispatched and acknowledged per second, from the first
//!    connect to the last ack, every one revalidated, claimed, audited.
//!
//! Server and clients share this 2-core machine, so the figures are a floor.

mod support;

use axum::http::Method;
use serde_json::json;
use server::store::Store;
use std::time::Instant;
use support::{Bench, env_or, now_ms};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        println!("SQLite");
        run(&Store::sqlite_url_in(dir.path())).await;
        if let Ok(url) = std::env::var("BALLAST_TEST_PG_URL") {
            println!("PostgreSQL");
            run(&fresh_pg(&url).await).await;
        }
    });
}

async fn fresh_pg(admin_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("ballast_dlq_bench_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")),
    )
    .await
    .unwrap();
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .unwrap();
    let base = admin_url.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

async fn run(url: &str) {
    let entries: usize = env_or("DLQ_ENTRIES", 5000);
    let streams: usize = env_or("DLQ_STREAMS", 8);
    let posters: usize = env_or("DLQ_POSTERS", 16);

    let bench = Bench::start(url).await;
    let agent = bench.register("case-review").await;
    let admin = Some(bench.admin.as_str());
    let mut policy =
        shared::policy::Policy::from_yaml(include_str!("../../examples/policies/rag-answer.yaml"))
            .unwrap();
    policy.service.name = "case-review".into();
    policy.service.risk_tier = shared::policy::RiskTier::Medium;
    let mut dl = shared::policy::DeadLetterPolicy::default();
    dl.approval.insert(
        shared::protocol::DlqActionKind::Cancel,
        shared::policy::ApprovalNeed::Never,
    );
    policy.dead_letters = Some(dl);
    bench
        .ok(
            Method::POST,
            "/api/v1/services/case-review/prod/publish",
            admin,
            Some(json!({ "message": "bench", "document": policy })),
        )
        .await;

    // 1. Ingest.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..posters {
        let app = bench.app.clone();
        let agent = agent.clone();
        tasks.push(tokio::spawn(async move {
            let b = Bench {
                app,
                admin: String::new(),
            };
            let mut ids = Vec::new();
            for i in (p..entries).step_by(posters) {
                let r = b
                    .ok(
                        Method::POST,
                        shared::paths::AGENT_DEAD_LETTERS,
                        Some(&agent),
                        Some(json!({
                            "run_id": format!("run-{i}"), "task_type": "case_review",
                            "failed_node": "send_notice", "error_type": "unavailable",
                            "error_message": "notification API 503", "retry_count": 3,
                            "last_checkpoint": "close_case", "created_at_ms": now_ms(),
                            "payload_hash": "ab".repeat(32),
                        })),
                    )
                    .await;
                ids.push(r["id"].as_str().unwrap().to_owned());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  ingest: {entries} dead letters in {secs:.2} s = {:.0}/s ({posters} agents)",
        entries as f64 / secs
    );

    // 2. Approved actions (untimed), then dispatch and ack over TCP.
    for chunk in ids.chunks(500) {
        let r = bench
            .ok(
                Method::POST,
                shared::paths::DEAD_LETTER_BULK_ACTIONS,
                admin,
                Some(json!({ "ids": chunk, "action": { "kind": "cancel", "reason": "bench" } })),
            )
            .await;
        assert!(
            r.as_array().unwrap().iter().all(|i| i["error"].is_null()),
            "{r}"
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = bench.app.clone();
    tokio::spawn(async move { axum::serve(listener, served).await.unwrap() });
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let started = Instant::now();
    for i in 0..streams {
        let agent = agent.clone();
        let done = done_tx.clone();
        let app = bench.app.clone();
        tokio::spawn(async move {
            let s = TcpStream::connect(addr).await.unwrap();
            let (read, mut write) = s.into_split();
            write
                .write_all(format!(
                    "GET {}?instance_id=bench-{i} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {agent}\r\n\r\n",
                    shared::paths::AGENT_STREAM
                ).as_bytes())
                .await
                .unwrap();
            // Each action is acknowledged as soon as it arrives, without
            // waiting for the previous ack, as the agent's runner does; the
            // acks travel through the router in this process.
            let mut lines = BufReader::new(read).lines();
            let mut is_action = false;
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "event: action" {
                    is_action = true;
                } else if let Some(data) = line.strip_prefix("data: ")
                    && is_action
                {
                    is_action = false;
                    let action: serde_json::Value = serde_json::from_str(data).unwrap();
                    let id = action["id"].as_str().unwrap().to_owned();
                    let b = Bench {
                        app: app.clone(),
                        admin: String::new(),
                    };
                    let agent = agent.clone();
                    let done = done.clone();
                    tokio::spawn(async move {
                        b.ok(
                            Method::POST,
                            &shared::paths::agent_action_ack(&id),
                            Some(&agent),
                            Some(json!({ "outcome": "succeeded", "detail": "bench" })),
                        )
                        .await;
                        done.send(()).unwrap();
                    });
                }
            }
        });
    }
    for _ in 0..entries {
        done_rx.recv().await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  dispatch: {entries} actions dispatched and acknowledged in {secs:.2} s = {:.0}/s ({streams} instances)",
        entries as f64 / secs
    );
}
