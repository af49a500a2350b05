//! The `ballast-demo` command line refuses what it cannot run with a message
//! that says what to give it, before it touches the network.
//!
//! Also the reason `cargo test` builds the `ballast-demo` binary itself, with
//! the same features as everything else: the browser tests run that binary,
//! and a separate `cargo build` would rebuild half the workspace.

use std::process::{Command, Output};

fn demo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ballast-demo"))
        .args(args)
        .env_remove("BALLAST_TOKEN_RAG")
        .env_remove("BALLAST_TOKEN_CASE")
        .env_remove("BALLAST_ADMIN_PASSWORD")
        .env_remove("BALLAST_APPROVER_PASSWORD")
        // A port nothing listens on: a run that got past its checks would
        // fail differently, and the assertions below would catch it.
        .env("BALLAST_URL", "http://127.0.0.1:9")
        .output()
        .expect("the demo binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn without_tokens_or_bootstrap_it_names_both_ways_to_start() {
    let out = demo(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("BALLAST_TOKEN_RAG"), "{err}");
    assert!(err.contains("BALLAST_TOKEN_CASE"), "{err}");
    assert!(err.contains("--bootstrap"), "{err}");
}

#[test]
fn bootstrap_without_the_admin_password_says_which_variable() {
    let out = demo(&["--bootstrap"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("BALLAST_ADMIN_PASSWORD"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_instance_count_out_of_range_is_refused_with_the_range() {
    let out = demo(&["--instances", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("1..=500"), "{}", stderr(&out));
}
