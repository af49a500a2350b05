//! The `ballast` command line against a real data directory.

use std::io::Write;
use std::process::{Command, Stdio};

fn ballast(data_dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .env("BALLAST_DATA_DIR", data_dir)
        .env_remove("BALLAST_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

#[test]
fn token_create_prints_only_the_token_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = ballast(
        dir.path(),
        &[
            "token",
            "create",
            "--service",
            "rag-answer",
            "--env",
            "prod",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must hold the token alone: {stdout:?}"
    );
    assert!(lines[0].starts_with("bst_") && lines[0].len() > 70);

    let list = ballast(dir.path(), &["token", "list"], None);
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains("\"service\":\"rag-answer\""));
    assert!(
        !listed.contains(&lines[0][lines[0].len() - 64..]),
        "list must not print secrets"
    );

    let bad = ballast(
        dir.path(),
        &["token", "create", "--service", "Bad Name", "--env", "prod"],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("service"));
}

#[test]
fn admin_create_user_reads_the_password_from_stdin_and_refuses_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "admin",
        "create-user",
        "--username",
        "ops",
        "--role",
        "engineer",
        "--password-stdin",
    ];
    let out = ballast(dir.path(), &args, Some("a-long-enough-password\n"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let again = ballast(dir.path(), &args, Some("a-long-enough-password\n"));
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let short = ballast(
        dir.path(),
        &[
            "admin",
            "create-user",
            "--username",
            "x",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert_eq!(short.status.code(), Some(1));

    let verify = ballast(dir.path(), &["audit", "verify"], None);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stderr).contains("1 entries verified"));
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        ballast(dir.path(), &["no-such-command"], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        ballast(
            dir.path(),
            &[
                "admin",
                "create-user",
                "--username",
                "x",
                "--role",
                "root",
                "--password-stdin"
            ],
            None
        )
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        ballast(dir.path(), &["token", "create", "--service", "x"], None)
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let secret = server::config::Secret::new("hunter2-hunter2-hunter2-hunter2-hunter2");
    assert!(!format!("{secret:?}").contains("hunter2"));
    let login = shared::api::LoginRequest {
        username: "a".into(),
        password: "hunter2".into(),
    };
    assert!(!format!("{login:?}").contains("hunter2"));
}
