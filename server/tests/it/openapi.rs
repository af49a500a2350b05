//! The OpenAPI document is the API's contract for outside clients (and for
//! agents written in other languages): every route the router serves is in
//! it, everything in it is served, and every call of the agent protocol
//! table is documented.

use crate::common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use std::collections::BTreeSet;

/// Agent protocol calls that `shared/src/protocol.rs` documents but the
/// server does not serve yet (none today). A gap that gets served must
/// leave this list, so the test fails both ways.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// Routes served outside the contract: the document itself and its
/// readable rendering.
const UNDOCUMENTED: &[&str] = &["/api/v1/openapi.json", "/api/v1/docs"];

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// (method, path) of every operation in the OpenAPI document.
async fn documented(app: &TestApp) -> BTreeSet<(String, String)> {
    let r = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut ops = BTreeSet::new();
    for (path, item) in r.body["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(*method).is_some() {
                ops.insert((method.to_string(), path.clone()));
            }
        }
    }
    ops
}

/// (method, path) of every `.route(…)` in `server/src/routes`, read from the
/// source: axum's router cannot list its routes, and reading the source is
/// what catches a handler someone mounted without documenting it.
fn mounted() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for (route, methods) in route_calls(&source) {
            for method in methods {
                routes.insert((method, format!("/api/v1{route}")));
            }
        }
    }
    assert!(
        routes.len() > 20,
        "the scan found too few routes: {routes:?}"
    );
    routes
}

/// The path and methods of each `.route("path", get(a).post(b))` call.
fn route_calls(source: &str) -> Vec<(String, Vec<String>)> {
    let mut calls = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        // The call's arguments run to the parenthesis that closes it.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find_map(|(i, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(i)
            })
            .expect("a closed .route( call");
        let args = &rest[..end];
        let Some(open) = args.find('"') else { continue };
        let close = open + 1 + args[open + 1..].find('"').unwrap();
        let route = args[open + 1..close].to_owned();
        let handlers = &args[close + 1..];
        let methods = METHODS
            .iter()
            .filter(|m| {
                handlers.match_indices(&format!("{m}(")).any(|(i, _)| {
                    i == 0 || !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
            .map(|m| m.to_string())
            .collect();
        calls.push((route, methods));
        rest = &rest[end..];
    }
    calls
}

#[tokio::test]
async fn every_mounted_route_is_documented_and_every_documented_one_is_mounted() {
    let app = TestApp::sqlite().await;
    let documented = documented(&app).await;
    let mounted: BTreeSet<_> = mounted()
        .into_iter()
        .filter(|(_, p)| !UNDOCUMENTED.contains(&p.as_str()))
        .collect();
    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "mounted but not in the OpenAPI document: {undocumented:?}"
    );
    let unmounted: Vec<_> = documented.difference(&mounted).collect();
    assert!(
        unmounted.is_empty(),
        "in the OpenAPI document but not mounted: {unmounted:?}"
    );
}

/// Each documented operation reaches a handler: with made-up parameters and
/// no credentials it may be refused (401, 404 for an unknown service, 400),
/// but never with the router's own "no such route" 404 or a 405.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::sqlite().await;
    for (method, path) in documented(&app).await {
        let concrete = path
            .replace("{name}", "svc")
            .replace("{env}", "prod")
            .replace("{version}", "1")
            .replace("{id}", "1");
        let method: Method = method.to_uppercase().parse().unwrap();
        let r = app.call(method.clone(), &concrete, None, None).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let unrouted = r.status == StatusCode::NOT_FOUND
            && r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no API route"));
        assert!(!unrouted, "{method} {path} has no route: {}", r.text);
    }
}

/// The agent protocol is implemented by agents in other languages from the
/// OpenAPI document, so each row of the protocol's table must be in it.
#[tokio::test]
async fn every_agent_protocol_call_is_documented() {
    let app = TestApp::sqlite().await;
    let documented = documented(&app).await;
    let table = include_str!("../../../shared/src/protocol.rs");
    let mut rows = Vec::new();
    for line in table.lines() {
        let Some(cell) = line.strip_prefix("//! | `") else {
            continue;
        };
        let call = &cell[..cell.find('`').unwrap()];
        let (method, path) = call.split_once(' ').unwrap();
        let path = path.split('?').next().unwrap();
        rows.push((method.to_lowercase(), format!("/api/v1{path}")));
    }
    assert!(
        rows.len() >= 6,
        "the protocol table has {} rows",
        rows.len()
    );
    for (method, path) in &rows {
        let gap = KNOWN_GAPS.contains(&(method.as_str(), path.as_str()));
        let listed = documented.contains(&(method.clone(), path.clone()));
        assert!(
            listed || gap,
            "{method} {path} is in the agent protocol table but not in the OpenAPI document"
        );
        assert!(
            !(listed && gap),
            "{method} {path} is documented now: take it off KNOWN_GAPS"
        );
    }
}

#[test]
fn the_route_scan_reads_chained_and_multi_line_routes() {
    let source = r#"
        Router::new()
            .route("/users", get(list_users).post(create_user))
            .route(
                "/users/{id}",
                patch(update_user),
            )
            .route("/things", get(forget))
    "#;
    assert_eq!(
        route_calls(source),
        vec![
            ("/users".into(), vec!["get".into(), "post".into()]),
            ("/users/{id}".into(), vec!["patch".into()]),
            ("/things".into(), vec!["get".into()]),
        ]
    );
}
