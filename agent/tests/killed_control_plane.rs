//! The control plane killed, or never started, against a real `ballast`
//! server process.
//!
//! The server is this test binary run again: started with
//! [`SERVER_CHILD`] set, `main` hands its command line to the `ballast`
//! binary's own entry point (`server::cli::main`), so the child runs the
//! real `ballast admin create-user`, `ballast token create` and
//! `ballast serve`, in an OS process of its own that the test SIGKILLs.
//! Cargo builds it with the tests, so a fresh clone needs nothing built
//! first, and no nested cargo runs. Hence `harness = false` (libtest-mimic
//! runs the tests): a test binary whose `main` is libtest's could not
//! become the server.
//!
//! Every wait is bounded: the agent's own watch channels are awaited under
//! a timeout, and the server's readiness is polled up to a hard deadline.

#[path = "it/support/mod.rs"]
mod support;

use agent::client::{AgentConfig, LiveAgent, load_last_known_good};
use agent::{Call, DependencyError, Guard};
use shared::policy::{DegradedStatus, ErrorClass};
use shared::protocol::PolicySource;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::{Admin, BOUND, ENV, PASSWORD, SERVICE, until_stream, until_version};

/// Set in the environment of a child that is to be the server.
const SERVER_CHILD: &str = "BALLAST_AGENT_TEST_BE_SERVER";

fn main() -> ExitCode {
    if std::env::var_os(SERVER_CHILD).is_some() {
        return server::cli::main();
    }
    let trial = |name: &str, test: fn()| {
        libtest_mimic::Trial::test(name, move || {
            test();
            Ok(())
        })
    };
    let tests = vec![
        trial(
            "killed_the_agent_keeps_enforcing_the_last_known_good_and_a_restart_loads_it_from_disk",
            killed,
        ),
        trial(
            "never_started_the_agent_runs_the_default_then_takes_the_policy_once_the_server_is_up",
            never_started,
        ),
    ];
    libtest_mimic::run(&libtest_mimic::Arguments::from_args(), tests).exit_code()
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
    log: PathBuf,
    admin: Admin,
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
            log,
            admin: Admin::new(&format!("http://{address}")),
        };
        server.until_healthy().await;
        server.admin.sign_in().await;
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
                if self.admin.status_of("/healthz").await == Some(200) {
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

    /// Publishes a policy whose fallback message names `mark`, which tells
    /// the versions apart in what a guarded call returns.
    async fn publish(&self, mark: &str) -> u64 {
        // The breaker never opens: the fallback message alone shows the
        // version.
        let message = format!("Ranked coarsely under {mark}.");
        let policy = support::reranker_policy(5000, 100, &message);
        self.admin.publish(mark, policy).await
    }

    /// SIGKILL: no graceful shutdown, the stream just breaks.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status}");
    }
}

/// The user message a failed reranker call gets under the policy in force:
/// which version the guard enforces, seen through a guarded call.
async fn enforced_mark(guard: &Guard) -> Option<String> {
    let ok = guard
        .call(&Call::new("reranker", "rerank"), |_| async {
            Ok::<_, DependencyError>(7)
        })
        .await;
    assert_eq!(
        (ok.status, ok.result.ok()),
        (DegradedStatus::Normal, Some(7))
    );
    let failed = guard
        .call(&Call::new("reranker", "rerank"), |_| async {
            Err::<u32, _>(DependencyError::new(ErrorClass::Unavailable, "503"))
        })
        .await;
    match failed.status {
        DegradedStatus::Degraded => {
            assert_eq!(failed.fallback().unwrap().action.name(), "skip_step");
            failed.user_message().map(str::to_owned)
        }
        // The conservative default has no fallback: it fails safe.
        status => {
            assert_eq!(status, DegradedStatus::Refused);
            None
        }
    }
}

fn killed() {
    runtime().block_on(async {
        let data = DataDir::create();
        let address = free_address();
        let mut server = Server::start(&data, &address).await;
        server.admin.create_service().await;
        let v1 = server.publish("v1").await;
        let lkg = data.dir.path().join("agent/policy.json");
        let config = data.agent_config(&server.admin.base, &lkg, "rag-1");

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
        server.admin.create_service().await;
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
