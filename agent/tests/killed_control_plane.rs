//! The control plane killed, or never started, against a real `ballast`
//! server process.
//!
//! The server is this test binary run again: started with
//! [`SERVER_CHILD`] set, `main` hands its command line to the `ballast`
//! binary's own entry point (`server::cli::main`), so the child runs the
//! real `ballast admin create-user`, `ballast token create` and
//! `ballast serve`, in an OS process of its own that the test SIGKILLs.
//! Cargo builds it with the tests, so a fresh clone needs nothing built
//! first, and no nested cargo runs. Hence `harness = false`: a test binary
//! whose `main` is libtest's could not become the server.
//!
//! Every wait is bounded: the agent's own watch channels are awaited under
//! a timeout, and the server's readiness is polled up to a hard deadline.

use agent::client::{AgentConfig, LiveAgent, load_last_known_good};
use agent::{Call, DependencyError, Guard, PolicyReceiver};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use shared::policy::{DegradedStatus, ErrorClass};
use shared::protocol::PolicySource;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// Set in the environment of a child that is to be the server.
const SERVER_CHILD: &str = "BALLAST_AGENT_TEST_BE_SERVER";
/// Long enough for a loaded 2-core CI machine; nothing waits this long
/// when it works.
const BOUND: Duration = Duration::from_secs(20);
const PASSWORD: &str = "a-long-enough-password";
const SERVICE: &str = "rag-answer";
const ENV: &str = "prod";

fn main() -> ExitCode {
    if std::env::var_os(SERVER_CHILD).is_some() {
        return server::cli::main();
    }
    let tests: [(&str, fn()); 2] = [
        (
            "killed_the_agent_keeps_enforcing_the_last_known_good_and_a_restart_loads_it_from_disk",
            killed,
        ),
        (
            "never_started_the_agent_runs_the_default_then_takes_the_policy_once_the_server_is_up",
            never_started,
        ),
    ];
    run_tests(&tests)
}

/// A small stand-in for libtest's runner: `--list`, name filters and
/// `--skip`, one line per test, exit code 101 on failure.
fn run_tests(tests: &[(&str, fn())]) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skip" => skips.extend(it.next()),
            a if a.starts_with('-') => {}
            _ => filters.push(a),
        }
    }
    let chosen: Vec<_> = tests
        .iter()
        .filter(|(n, _)| filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str())))
        .filter(|(n, _)| !skips.iter().any(|s| n.contains(s.as_str())))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    let mut failed = Vec::new();
    for (name, test) in &chosen {
        let ok = std::panic::catch_unwind(test).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {} passed; {} failed\n",
        chosen.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// This binary as the `ballast` command line, with `args`, and none of the
/// caller's `BALLAST_*` settings (they would override the arguments).
fn ballast(args: &[&str]) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BALLAST_") {
            cmd.env_remove(key);
        }
    }
    cmd.env(SERVER_CHILD, "1");
    cmd
}

/// A data directory with an admin user and a service token, made with the
/// real command line before any server runs.
struct DataDir {
    dir: tempfile::TempDir,
    token: String,
}

impl DataDir {
    fn create() -> DataDir {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data = data.to_str().unwrap();
        let mut admin = ballast(&[
            "admin",
            "create-user",
            "--username",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
            "--data-dir",
            data,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary runs as `ballast`");
        writeln!(admin.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        let out = admin.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ballast admin create-user: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = ballast(&[
            "token",
            "create",
            "--service",
            SERVICE,
            "--env",
            ENV,
            "--data-dir",
            data,
        ])
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "ballast token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(!token.is_empty(), "the token is printed on stdout");
        DataDir { dir, token }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn agent_config(&self, base: &str, lkg: &Path, instance: &str) -> AgentConfig {
        let mut config = AgentConfig::new(base, &self.token, instance, SERVICE, ENV, lkg);
        config.startup_wait = Duration::from_secs(5);
        // Reconnects come quickly, so the never-started case does not
        // wait half a minute for the server it was waiting for.
        config.reconnect_max = Duration::from_millis(500);
        config
    }
}

/// A loopback address nobody listens on now.
fn free_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A `ballast serve` process, killed when dropped.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
    admin: String,
    http: Client<HttpConnector, Full<bytes::Bytes>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `ballast serve` on `address` over `data`, waits until it
    /// answers `/healthz`, and signs in as the admin.
    async fn start(data: &DataDir, address: &str) -> Server {
        let log = data
            .dir
            .path()
            .join(format!("server-{}.log", address.replace(':', "_")));
        let site = data.dir.path().join("site");
        let child = ballast(&[
            "serve",
            "--listen",
            address,
            "--data-dir",
            data.data().to_str().unwrap(),
            "--site-root",
            site.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the test binary runs as `ballast serve`");
        let mut server = Server {
            child,
            base: format!("http://{address}"),
            log,
            admin: String::new(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        };
        server.until_healthy().await;
        let (status, body) = server
            .call(
                "POST",
                "/api/v1/auth/login",
                Some(json!({ "username": "admin", "password": PASSWORD })),
            )
            .await;
        assert_eq!(status, 200, "login: {body}");
        server.admin = body["token"].as_str().unwrap().to_owned();
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn until_healthy(&mut self) {
        let ready = tokio::time::timeout(BOUND, async {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                if let Some(status) = self.child.try_wait().unwrap() {
                    panic!("ballast serve exited with {status}:\n{}", self.log());
                }
                let req = http::Request::get(format!("{}/healthz", self.base))
                    .body(Full::default())
                    .unwrap();
                if let Ok(resp) = self.http.request(req).await
                    && resp.status() == 200
                {
                    return;
                }
            }
        })
        .await;
        if ready.is_err() {
            panic!(
                "ballast serve did not answer /healthz within {BOUND:?}:\n{}",
                self.log()
            );
        }
    }

    /// A JSON call as the admin; the status and the parsed body.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.admin));
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Full::from(b.to_string())
            }
            None => Full::default(),
        };
        let resp = self.http.request(req.body(body).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn create_service(&self) {
        let (status, body) = self
            .call(
                "POST",
                "/api/v1/services",
                Some(json!({ "name": SERVICE, "environment": ENV, "owner": "knowledge-platform" })),
            )
            .await;
        assert_eq!(status, 201, "create service: {body}");
    }

    /// Publishes a policy whose fallback message names `mark`, which tells
    /// the versions apart in what a guarded call returns.
    async fn publish(&self, mark: &str) -> u64 {
        let (status, body) = self
            .call(
                "POST",
                &format!("/api/v1/services/{SERVICE}/{ENV}/publish"),
                Some(json!({ "message": mark, "document": policy(mark) })),
            )
            .await;
        assert_eq!(status, 201, "publish: {body}");
        body["version"].as_u64().unwrap()
    }

    /// SIGKILL: no graceful shutdown, the stream just breaks.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status}");
    }
}

fn policy(mark: &str) -> Value {
    json!({
        "service": {
            "name": SERVICE, "environment": ENV, "owner": "knowledge-platform",
            "risk_tier": "medium",
            "dependencies": { "reranker": { "kind": "reranker", "required": false } }
        },
        "timeouts": { "total_ms": 5000, "dependencies": { "reranker": 300 } },
        "breakers": { "reranker": {
            "mode": { "kind": "consecutive", "failures": 100 },
            "cooldown_ms": 1000, "half_open_probes": 1
        } },
        "fallbacks": [{
            "component": "reranker", "failure": "any",
            "fallback": { "kind": "skip_step" },
            "degraded_status": "degraded",
            "user_message": format!("Ranked coarsely under {mark}."),
            "allowed": true,
            "confidence_penalty_percent": 10
        }]
    })
}

/// The user message a failed reranker call gets under the policy in force:
/// which version the guard enforces, seen through a guarded call.
async fn enforced_mark(guard: &Guard) -> Option<String> {
    let ok = guard
        .call(Call::new("reranker", "rerank"), |_| async {
            Ok::<_, DependencyError>(7)
        })
        .await;
    assert_eq!(
        (ok.status, ok.result.ok()),
        (DegradedStatus::Normal, Some(7))
    );
    let failed = guard
        .call(Call::new("reranker", "rerank"), |_| async {
            Err::<u32, _>(DependencyError::new(ErrorClass::Unavailable, "503"))
        })
        .await;
    match failed.status {
        DegradedStatus::Degraded => {
            assert_eq!(failed.fallback.unwrap().action.name(), "skip_step");
            failed.user_message
        }
        // The conservative default has no fallback: it fails safe.
        status => {
            assert_eq!(status, DegradedStatus::Refused);
            None
        }
    }
}

async fn until_version(rx: &mut PolicyReceiver, version: u64) {
    tokio::time::timeout(BOUND, rx.wait_for(|p| p.version() == Some(version)))
        .await
        .unwrap_or_else(|_| panic!("version {version} did not arrive within {BOUND:?}"))
        .expect("the agent is alive");
}

async fn until_stream(live: &LiveAgent, open: bool) {
    let mut connected = live.stream_connected();
    tokio::time::timeout(BOUND, connected.wait_for(|c| *c == open))
        .await
        .unwrap_or_else(|_| panic!("the stream was not {open} within {BOUND:?}"))
        .unwrap();
}

fn killed() {
    runtime().block_on(async {
        let data = DataDir::create();
        let address = free_address();
        let mut server = Server::start(&data, &address).await;
        server.create_service().await;
        let v1 = server.publish("v1").await;
        let lkg = data.dir.path().join("agent/policy.json");
        let config = data.agent_config(&server.base, &lkg, "rag-1");

        let live = Arc::new(LiveAgent::start(config.clone()).await);
        assert_eq!(live.applied(), (Some(v1), PolicySource::Server));
        let guard = Guard::builder(live.policy()).instance_id("rag-1").build();
        let tasks = live.spawn(guard.clone());
        until_stream(&live, true).await;
        let v2 = server.publish("v2").await;
        until_version(&mut live.policy(), v2).await;
        assert_eq!(load_last_known_good(&lkg).unwrap().version, v2);
        assert_eq!(
            enforced_mark(&guard).await.as_deref(),
            Some("Ranked coarsely under v2.")
        );

        server.kill();
        // The agent notices: its stream breaks and it starts reconnecting.
        until_stream(&live, false).await;
        assert_eq!(live.applied(), (Some(v2), PolicySource::Server));
        assert_eq!(
            enforced_mark(&guard).await.as_deref(),
            Some("Ranked coarsely under v2."),
            "guarded calls go on under the last-known-good version"
        );
        assert_eq!(guard.policy().version(), Some(v2));

        // A restart with the server still dead: the disk copy, well
        // within the start-up bound (the connection is refused at once).
        let started = tokio::time::Instant::now();
        let fresh = LiveAgent::start(config).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(fresh.applied(), (Some(v2), PolicySource::Disk));
        let restarted = Guard::builder(fresh.policy()).build();
        assert_eq!(restarted.policy().source(), PolicySource::Disk);
        assert_eq!(
            enforced_mark(&restarted).await.as_deref(),
            Some("Ranked coarsely under v2.")
        );
        for t in tasks {
            t.abort();
        }
    });
}

fn never_started() {
    runtime().block_on(async {
        let data = DataDir::create();
        let address = free_address();
        let base = format!("http://{address}");
        let lkg = data.dir.path().join("agent/policy.json");

        // Nothing has ever listened there, and there is no disk copy.
        let live = Arc::new(LiveAgent::start(data.agent_config(&base, &lkg, "rag-2")).await);
        assert_eq!(live.applied(), (None, PolicySource::Default));
        let guard = Guard::builder(live.policy()).instance_id("rag-2").build();
        let tasks = live.spawn(guard.clone());
        assert_eq!(
            enforced_mark(&guard).await,
            None,
            "the conservative default fails safe"
        );

        // The control plane comes up for the first time and publishes:
        // the reconnecting agent takes it and keeps a disk copy.
        let server = Server::start(&data, &address).await;
        server.create_service().await;
        let v1 = server.publish("first").await;
        until_version(&mut live.policy(), v1).await;
        assert_eq!(live.applied(), (Some(v1), PolicySource::Server));
        assert_eq!(
            enforced_mark(&guard).await.as_deref(),
            Some("Ranked coarsely under first.")
        );
        assert_eq!(load_last_known_good(&lkg).unwrap().version, v1);
        for t in tasks {
            t.abort();
        }
    });
}
