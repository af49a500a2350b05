//! `ballast policy apply|diff|export` against a real server on loopback.

use crate::common;

use common::TestApp;
use shared::role::Role;
use std::process::{Command, Stdio};

struct Served {
    url: String,
    token: String,
    app: TestApp,
}

async fn serve() -> Served {
    let app = TestApp::sqlite().await;
    let token = app.login_as("erin", Role::Engineer).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Served { url, token, app }
}

/// Runs the CLI on a blocking thread so that the in-process server keeps serving.
async fn ballast(s: &Served, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ballast"));
    cmd.args(args)
        .env("BALLAST_URL", &s.url)
        .env("BALLAST_TOKEN", &s.token)
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn rag_yaml() -> String {
    include_str!("../../../examples/policies/rag-answer.yaml")
        .replace("risk_tier: high", "risk_tier: medium")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_shows_the_diff_then_publishes_and_export_round_trips() {
    let s = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "rag.yaml", &rag_yaml());

    // Dry run against a service that does not exist yet: validates, changes nothing.
    let (code, _, err) = ballast(&s, &["policy", "apply", "-f", &file, "--dry-run"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        s.app
            .store()
            .service("rag-answer", "prod")
            .await
            .unwrap()
            .is_none()
    );

    // Without --yes and without a terminal, nothing is published.
    let (code, _, err) = ballast(&s, &["policy", "apply", "-f", &file]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--yes"), "{err}");

    let (code, _, err) = ballast(
        &s,
        &["policy", "apply", "-f", &file, "--yes", "-m", "first"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("published rag-answer/prod version 1"), "{err}");

    // A change shows as a diff by path.
    let changed = write(
        &dir,
        "rag2.yaml",
        &rag_yaml().replace("owner: knowledge-platform", "owner: search-team"),
    );
    let (code, _, err) = ballast(&s, &["policy", "diff", "-f", &changed]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("~ service.owner: \"knowledge-platform\" -> \"search-team\""),
        "{err}"
    );
    let (code, _, err) = ballast(&s, &["policy", "apply", "-f", &changed, "--yes"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("version 2"), "{err}");

    // Export prints the document alone on stdout; it parses back to the same policy.
    let (code, out, err) = ballast(
        &s,
        &[
            "policy",
            "export",
            "--service",
            "rag-answer",
            "--env",
            "prod",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let exported = shared::policy::Policy::from_yaml(&out).unwrap();
    assert_eq!(
        exported,
        shared::policy::Policy::from_yaml(&std::fs::read_to_string(&changed).unwrap()).unwrap()
    );
    let (code, out, _) = ballast(
        &s,
        &[
            "policy",
            "export",
            "--service",
            "rag-answer",
            "--env",
            "prod",
            "--version",
            "1",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        shared::policy::Policy::from_json(&out)
            .unwrap()
            .service
            .owner,
        "knowledge-platform"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_exit_nonzero_naming_the_path() {
    let s = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let typo = write(
        &dir,
        "typo.yaml",
        &rag_yaml().replace("max_attempts:", "max_atempts:"),
    );
    let (code, _, err) = ballast(&s, &["policy", "apply", "-f", &typo, "--yes"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("max_atempts"), "{err}");
    assert!(err.contains("retry."), "the path is named: {err}");

    let invalid = write(
        &dir,
        "invalid.yaml",
        &rag_yaml().replace("total_ms: ", "total_ms: 1 #"),
    );
    let (code, _, err) = ballast(&s, &["policy", "apply", "-f", &invalid, "--yes"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("timeouts"), "{err}");
    assert!(
        s.app
            .store()
            .service("rag-answer", "prod")
            .await
            .unwrap()
            .is_none(),
        "nothing was sent"
    );

    let (code, _, _) = ballast(&s, &["policy", "apply"]).await;
    assert_eq!(code, 2, "missing -f is bad usage");

    // A viewer may look but not publish.
    s.app.user("vic", Role::Viewer).await;
    let viewer = s.app.login("vic", common::PASSWORD).await;
    let good = write(&dir, "good.yaml", &rag_yaml());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ballast"));
    cmd.args(["policy", "apply", "-f", &good, "--yes"])
        .env("BALLAST_URL", &s.url)
        .env("BALLAST_TOKEN", &viewer)
        .stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("role"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
