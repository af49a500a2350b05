//! Dead letters and four-eyes actions on both databases: ingest, search,
//! requests, decisions, revalidation at dispatch, exactly-once delivery to
//! one instance, missing acks, the authorization matrix, and the stale
//! publish approval that the same approval engine now refuses.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{TestApp, next_sse_event};
use serde_json::{Value, json};
use server::dead_letters::dispatch;
use shared::policy::{ApprovalNeed, DeadLetterPolicy, Policy, RiskTier, TaskType};
use shared::protocol::DlqActionKind;
use shared::role::Role;
use std::collections::HashSet;

on_both_backends!(
    a_redrive_goes_from_report_to_one_acknowledged_execution,
    a_reconnect_gets_its_unacknowledged_action_and_nobody_else_does,
    approvals_are_revalidated_at_dispatch,
    without_an_ack_an_action_becomes_uncertain_and_is_never_resent,
    reports_are_checked_bounded_and_idempotent,
    search_filters_and_pages,
    the_policy_decides_which_actions_need_an_approver,
    every_endpoint_checks_its_caller,
    a_publish_approval_computed_against_an_older_version_is_refused,
);

struct Setup {
    engineer: String,
    approver: String,
    admin: String,
    agent: String,
    service_id: i64,
}

const SERVICE: &str = "rag-answer";

fn policy(tier: RiskTier, dead_letters: DeadLetterPolicy) -> Policy {
    let mut p =
        Policy::from_yaml(include_str!("../../../examples/policies/rag-answer.yaml")).unwrap();
    p.service.risk_tier = tier;
    p.dead_letters = Some(dead_letters);
    p
}

fn strict() -> DeadLetterPolicy {
    let mut d = DeadLetterPolicy {
        approval_expires_after_s: 600,
        ack_timeout_s: 30,
        ..DeadLetterPolicy::default()
    };
    d.task_types
        .insert("answer".into(), TaskType { side_effects: true });
    d.approval
        .insert(DlqActionKind::Redrive, ApprovalNeed::Always);
    d
}

async fn publish(app: &TestApp, token: &str, p: &Policy) -> common::Response {
    app.call(
        Method::POST,
        &shared::paths::service(SERVICE, "prod").publish(),
        Some(
            json!({ "message": "dead-letter rules", "document": serde_json::to_value(p).unwrap() }),
        ),
        Some(token),
    )
    .await
}

async fn setup(app: &TestApp) -> Setup {
    let engineer = app.login_as("erin", Role::Engineer).await;
    let approver = app.login_as("april", Role::Approver).await;
    let admin = app.login_as("ada", Role::Admin).await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/services",
            Some(json!({ "name": SERVICE, "environment": "prod", "owner": "knowledge-platform" })),
            Some(&engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = publish(app, &engineer, &policy(RiskTier::Medium, strict())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let agent = app.agent_token(&admin, SERVICE).await;
    let service_id = app
        .state
        .hub
        .service_id(SERVICE, "prod")
        .await
        .unwrap()
        .unwrap();
    Setup {
        engineer,
        approver,
        admin,
        agent,
        service_id,
    }
}

fn report(run: &str, retries: u32) -> Value {
    json!({
        "run_id": run,
        "task_type": "answer",
        "failed_node": "send_notice",
        "error_type": "unavailable",
        "error_message": "notification API 503 after the case was closed",
        "retry_count": retries,
        "last_checkpoint": "close_case",
        "created_at_ms": common::T0_MS - 1000,
        "payload_hash": "ab".repeat(32),
    })
}

async fn dead_letter(app: &TestApp, s: &Setup, run: &str, retries: u32) -> String {
    let r = app
        .call(
            Method::POST,
            shared::paths::AGENT_DEAD_LETTERS,
            Some(report(run, retries)),
            Some(&s.agent),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn request(app: &TestApp, token: &str, entry: &str, kind: &str) -> common::Response {
    app.call(
        Method::POST,
        &shared::paths::dead_letter_actions(entry),
        Some(
            json!({ "kind": kind, "reason": "the notification API is back",
                     "resolution_note": "sent by hand", "escalate_to": "INC-42" }),
        ),
        Some(token),
    )
    .await
}

async fn decide(app: &TestApp, token: &str, action: &str, verb: &str) -> common::Response {
    app.call(
        Method::POST,
        &shared::paths::dlq_action(action, verb),
        Some(json!({ "reason": "checked the run" })),
        Some(token),
    )
    .await
}

/// A dead letter with an approved redrive; returns (entry, action).
async fn approved_redrive(app: &TestApp, s: &Setup, run: &str) -> (String, String) {
    let entry = dead_letter(app, s, run, 3).await;
    let r = request(app, &s.engineer, &entry, "redrive").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"], "requested");
    let action = r.body["id"].as_str().unwrap().to_owned();
    let r = decide(app, &s.approver, &action, "approve").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "approved");
    (entry, action)
}

async fn action_status(app: &TestApp, s: &Setup, entry: &str, action: &str) -> (Value, Value) {
    let r = app
        .call(
            Method::GET,
            &shared::paths::dead_letter(entry),
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let a = r.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == action)
        .cloned()
        .unwrap();
    (r.body["entry"].clone(), a)
}

async fn claim(app: &TestApp, s: &Setup, instance: &str) -> Vec<String> {
    let mut sent = HashSet::new();
    dispatch::claim(&app.state, s.service_id, instance, &mut sent)
        .await
        .unwrap()
        .actions
        .into_iter()
        .map(|a| a.id)
        .collect()
}

async fn ack(app: &TestApp, token: &str, action: &str, outcome: &str) -> common::Response {
    app.call(
        Method::POST,
        &shared::paths::agent_action_ack(action),
        Some(json!({ "outcome": outcome, "detail": "notice sent" })),
        Some(token),
    )
    .await
}

async fn open_stream(app: &TestApp, token: &str, instance: &str) -> Body {
    let response = tower::ServiceExt::oneshot(
        app.router.clone(),
        Request::builder()
            .uri(format!(
                "{}?instance_id={instance}",
                shared::paths::AGENT_STREAM
            ))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body()
}

async fn audit_actions(app: &TestApp, s: &Setup) -> Vec<String> {
    let r = app
        .call(Method::GET, "/api/v1/audit?limit=200", None, Some(&s.admin))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_redrive_goes_from_report_to_one_acknowledged_execution(app: TestApp) {
    let s = setup(&app).await;
    let entry = dead_letter(&app, &s, "run-1", 3).await;
    let r = request(&app, &s.engineer, &entry, "redrive").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let action = r.body["id"].as_str().unwrap().to_owned();
    assert!(!r.body["approval_reasons"].as_array().unwrap().is_empty());

    // The requester never approves: not as an engineer, and not as the
    // admin they might also be.
    let r = decide(&app, &s.engineer, &action, "approve").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let admin_entry = dead_letter(&app, &s, "run-admin", 1).await;
    let r = request(&app, &s.admin, &admin_entry, "redrive").await;
    let own = r.body["id"].as_str().unwrap().to_owned();
    let r = decide(&app, &s.admin, &own, "approve").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "own_request");

    // The approver's inbox counts it; the requester's does not.
    let r = app
        .call(
            Method::GET,
            shared::paths::DLQ_ACTIONS_COUNT,
            None,
            Some(&s.approver),
        )
        .await;
    assert_eq!(r.body["actions"], 2, "{}", r.text);
    let r = decide(&app, &s.approver, &action, "approve").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A second decision is a conflict, not a second approval.
    let r = decide(&app, &s.approver, &action, "reject").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    let mut stream = open_stream(&app, &s.agent, "pod-1").await;
    let mut buffer = String::new();
    let sent = next_sse_event(&mut stream, &mut buffer, "action").await;
    assert_eq!(sent["id"], action.as_str());
    assert_eq!(sent["kind"], "redrive");
    assert_eq!(sent["run_id"], "run-1");
    assert_eq!(sent["approved_by"], "user:april");

    let r = ack(&app, &s.agent, &action, "succeeded").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // The same outcome again (a retried ack) is fine; a different one is not.
    let r = ack(&app, &s.agent, &action, "succeeded").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = ack(&app, &s.agent, &action, "failed").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    let (e, a) = action_status(&app, &s, &entry, &action).await;
    assert_eq!(a["status"], "succeeded");
    assert_eq!(a["dispatched_to"], "pod-1");
    assert_eq!(e["status"], "redriven");
    let audit = audit_actions(&app, &s).await;
    // Two requests (the admin's own stays waiting); one action went all
    // the way.
    for (step, times) in [
        ("dlq.action_requested", 2),
        ("dlq.action_approved", 1),
        ("dlq.action_dispatched", 1),
        ("dlq.action_succeeded", 1),
    ] {
        let n = audit.iter().filter(|a| a.as_str() == step).count();
        assert_eq!(n, times, "{step} in {audit:?}");
    }
}

async fn a_reconnect_gets_its_unacknowledged_action_and_nobody_else_does(app: TestApp) {
    let s = setup(&app).await;
    let (_, action) = approved_redrive(&app, &s, "run-2").await;
    assert_eq!(claim(&app, &s, "pod-1").await, vec![action.clone()]);
    // Another instance never gets it, however often it asks.
    assert!(claim(&app, &s, "pod-2").await.is_empty());
    assert!(claim(&app, &s, "pod-2").await.is_empty());
    // pod-1 reconnects (a fresh stream knows nothing it sent): it gets the
    // action again, and its idempotency store replays the outcome.
    assert_eq!(claim(&app, &s, "pod-1").await, vec![action.clone()]);
    let mut stream = open_stream(&app, &s.agent, "pod-1").await;
    let mut buffer = String::new();
    let sent = next_sse_event(&mut stream, &mut buffer, "action").await;
    assert_eq!(sent["id"], action.as_str());
    assert_eq!(
        ack(&app, &s.agent, &action, "succeeded").await.status,
        StatusCode::NO_CONTENT
    );
    assert!(claim(&app, &s, "pod-1").await.is_empty());
}

async fn approvals_are_revalidated_at_dispatch(app: TestApp) {
    let s = setup(&app).await;
    // The entry changed after approval: the redrive is of something else now.
    let (entry, changed) = approved_redrive(&app, &s, "run-changed").await;
    dead_letter(&app, &s, "run-changed", 5).await;
    assert!(claim(&app, &s, "pod-1").await.is_empty());
    let (e, a) = action_status(&app, &s, &entry, &changed).await;
    assert_eq!(a["status"], "refused", "{a}");
    assert!(a["detail"].as_str().unwrap().contains("changed"), "{a}");
    assert_eq!(e["status"], "open");
    assert_eq!(e["revision"], 2);
    // The approval expired before any agent took it.
    let (_, expired) = approved_redrive(&app, &s, "run-expired").await;
    app.clock.advance_ms(601_000);
    assert!(claim(&app, &s, "pod-1").await.is_empty());
    let r = app
        .call(
            Method::GET,
            &format!("{}?status=expired", shared::paths::DLQ_ACTIONS),
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.body[0]["id"], expired.as_str(), "{}", r.text);

    // The approver lost the role.
    let (entry, demoted) = approved_redrive(&app, &s, "run-demoted").await;
    let april = app
        .store()
        .user_by_username("april")
        .await
        .unwrap()
        .unwrap();
    let r = app
        .call(
            Method::PATCH,
            &shared::paths::user(april.id),
            Some(json!({ "role": "engineer" })),
            Some(&s.admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(claim(&app, &s, "pod-1").await.is_empty());
    let (_, a) = action_status(&app, &s, &entry, &demoted).await;
    assert_eq!(a["status"], "refused", "{a}");
    assert!(
        a["detail"]
            .as_str()
            .unwrap()
            .contains("may no longer approve"),
        "{a}"
    );

    // The policy changed after the request.
    let second = app.login_as("abe", Role::Approver).await;
    let entry = dead_letter(&app, &s, "run-policy", 1).await;
    let r = request(&app, &s.engineer, &entry, "redrive").await;
    let moved = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        decide(&app, &second, &moved, "approve").await.status,
        StatusCode::OK
    );
    let mut next = policy(RiskTier::Medium, strict());
    next.service.owner = "search-team".into();
    assert_eq!(
        publish(&app, &s.engineer, &next).await.status,
        StatusCode::CREATED
    );
    assert!(claim(&app, &s, "pod-1").await.is_empty());
    let (_, a) = action_status(&app, &s, &entry, &moved).await;
    assert_eq!(a["status"], "refused", "{a}");
    assert!(
        a["detail"].as_str().unwrap().contains("policy changed"),
        "{a}"
    );
    // And a request filed before a publish cannot be approved after it.
    let entry = dead_letter(&app, &s, "run-policy-2", 1).await;
    let r = request(&app, &s.engineer, &entry, "redrive").await;
    let pending = r.body["id"].as_str().unwrap().to_owned();
    next.service.owner = "search-team-2".into();
    assert_eq!(
        publish(&app, &s.engineer, &next).await.status,
        StatusCode::CREATED
    );
    let r = decide(&app, &second, &pending, "approve").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "stale");
    let audit = audit_actions(&app, &s).await;
    assert_eq!(
        audit.iter().filter(|a| *a == "dlq.action_refused").count(),
        3
    );
    assert_eq!(
        audit.iter().filter(|a| *a == "dlq.action_expired").count(),
        1
    );
}

async fn without_an_ack_an_action_becomes_uncertain_and_is_never_resent(app: TestApp) {
    let s = setup(&app).await;
    let (entry, action) = approved_redrive(&app, &s, "run-3").await;
    assert_eq!(claim(&app, &s, "pod-1").await, vec![action.clone()]);
    app.clock.advance_ms(29_000);
    dispatch::sweep(&app.state).await.unwrap();
    assert_eq!(
        action_status(&app, &s, &entry, &action).await.1["status"],
        "dispatched"
    );
    app.clock.advance_ms(2_000);
    dispatch::sweep(&app.state).await.unwrap();
    let (e, a) = action_status(&app, &s, &entry, &action).await;
    assert_eq!(a["status"], "uncertain", "{a}");
    assert_eq!(e["status"], "open", "a person decides what happens next");
    assert!(claim(&app, &s, "pod-1").await.is_empty());
    assert!(claim(&app, &s, "pod-2").await.is_empty());
    // A late ack settles what happened.
    assert_eq!(
        ack(&app, &s.agent, &action, "succeeded").await.status,
        StatusCode::NO_CONTENT
    );
    let (e, a) = action_status(&app, &s, &entry, &action).await;
    assert_eq!(a["status"], "succeeded");
    assert_eq!(e["status"], "redriven");
}

async fn reports_are_checked_bounded_and_idempotent(app: TestApp) {
    let s = setup(&app).await;
    let first = dead_letter(&app, &s, "run-4", 2).await;
    assert_eq!(dead_letter(&app, &s, "run-4", 2).await, first);
    let r = app
        .call(
            Method::GET,
            &shared::paths::dead_letter(&first),
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.body["entry"]["revision"], 1);
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1);
    for (field, value) in [
        ("payload_hash", json!("not-a-hash")),
        ("run_id", json!("")),
        ("run_id", json!("has space")),
        ("retry_count", json!(1_000_000)),
        ("error_message", json!("x".repeat(5000))),
        ("created_at_ms", json!(0)),
    ] {
        let mut body = report("run-bad", 1);
        body[field] = value;
        let r = app
            .call(
                Method::POST,
                shared::paths::AGENT_DEAD_LETTERS,
                Some(body),
                Some(&s.agent),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            r.text
        );
        assert_eq!(r.body["error"]["field"], field, "{}", r.text);
    }
    let mut body = report("run-bad", 1);
    body["surprise"] = json!(1);
    let r = app
        .call(
            Method::POST,
            shared::paths::AGENT_DEAD_LETTERS,
            Some(body),
            Some(&s.agent),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);

    let small = app
        .replica_with(|settings| settings.dead_letter_max_live = 2)
        .await;
    let r = small
        .call(
            Method::POST,
            shared::paths::AGENT_DEAD_LETTERS,
            Some(report("run-5", 1)),
            Some(&s.agent),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = small
        .call(
            Method::POST,
            shared::paths::AGENT_DEAD_LETTERS,
            Some(report("run-6", 1)),
            Some(&s.agent),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "dead_letter_queue_full");
    // The same work again is not new work, so it is still accepted.
    let r = small
        .call(
            Method::POST,
            shared::paths::AGENT_DEAD_LETTERS,
            Some(report("run-4", 2)),
            Some(&s.agent),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn search_filters_and_pages(app: TestApp) {
    let s = setup(&app).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(dead_letter(&app, &s, &format!("run-p{i}"), i).await);
        app.clock.advance_ms(1000);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{}?service={SERVICE}&limit=2", shared::paths::DEAD_LETTERS);
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = app.call(Method::GET, &path, None, Some(&s.engineer)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        for e in r.body["entries"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    let r = app
        .call(
            Method::GET,
            &format!(
                "{}?min_age_s=3&error_type=unavailable&status=open",
                shared::paths::DEAD_LETTERS
            ),
            None,
            Some(&s.engineer),
        )
        .await;
    // Received 0–4 s after T0, now T0 + 5 s: three are 3 s old or more.
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 3, "{}", r.text);
    for (query, field) in [
        ("error_type=nonsense", "error_type"),
        ("status=lost", "status"),
        ("limit=0", "limit"),
        ("cursor=zzz", "cursor"),
        ("min_age_s=-1", "query"),
        ("colour=red", "query"),
    ] {
        let r = app
            .call(
                Method::GET,
                &format!("{}?{query}", shared::paths::DEAD_LETTERS),
                None,
                Some(&s.engineer),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            r.text
        );
        assert_eq!(r.body["error"]["field"], field, "{query}: {}", r.text);
    }
    let r = app
        .call(
            Method::GET,
            &shared::paths::service(SERVICE, "prod").dead_letter_summary(),
            None,
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["depth"], 5);
    assert_eq!(r.body["oldest_age_ms"], 5000);
    assert_eq!(r.body["top_failed_nodes"][0]["name"], "send_notice");
    assert_eq!(r.body["depth_by_hour"][23], 5);
}

async fn the_policy_decides_which_actions_need_an_approver(app: TestApp) {
    let s = setup(&app).await;
    let mut rules = strict();
    rules.task_types.insert(
        "answer".into(),
        TaskType {
            side_effects: false,
        },
    );
    assert_eq!(
        publish(&app, &s.engineer, &policy(RiskTier::Low, rules))
            .await
            .status,
        StatusCode::CREATED
    );
    // Cancelling read-only work in a low tier needs nobody else...
    let entry = dead_letter(&app, &s, "run-7", 1).await;
    let r = request(&app, &s.engineer, &entry, "cancel").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"], "approved");
    assert_eq!(r.body["approval_reasons"], json!([]));
    let action = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(claim(&app, &s, "pod-1").await, vec![action]);
    // ...a redrive still does, as the policy says.
    let entry = dead_letter(&app, &s, "run-8", 1).await;
    let r = request(&app, &s.engineer, &entry, "redrive").await;
    assert_eq!(r.body["status"], "requested", "{}", r.text);
    // One live action per entry.
    let r = request(&app, &s.engineer, &entry, "cancel").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    // A manual completion needs its note; an escalation, its target.
    let other = dead_letter(&app, &s, "run-9", 1).await;
    let r = app
        .call(
            Method::POST,
            &shared::paths::dead_letter_actions(&other),
            Some(json!({ "kind": "manual_complete", "reason": "done by phone" })),
            Some(&s.engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "resolution_note");
    // A high tier may not let a redrive skip the approver at all.
    let mut loose = strict();
    loose
        .approval
        .insert(DlqActionKind::Redrive, ApprovalNeed::Never);
    let r = app
        .call(
            Method::POST,
            &shared::paths::service(SERVICE, "prod").validate(),
            Some(serde_json::to_value(policy(RiskTier::High, loose)).unwrap()),
            Some(&s.engineer),
        )
        .await;
    assert!(r.text.contains("dlq_action_without_approval"), "{}", r.text);
}

async fn every_endpoint_checks_its_caller(app: TestApp) {
    let s = setup(&app).await;
    let viewer = app.login_as("vic", Role::Viewer).await;
    let admin = &s.admin;
    let other_agent = {
        let r = app
            .call(
                Method::POST,
                "/api/v1/services",
                Some(json!({ "name": "other", "environment": "prod", "owner": "x" })),
                Some(&s.engineer),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        app.agent_token(admin, "other").await
    };
    let entry = dead_letter(&app, &s, "run-10", 1).await;
    let r = request(&app, &s.engineer, &entry, "redrive").await;
    let action = r.body["id"].as_str().unwrap().to_owned();
    let decision = Some(json!({ "reason": "r" }));
    let act = json!({ "kind": "cancel", "reason": "r" });
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, shared::paths::DEAD_LETTERS.into(), None),
        (Method::GET, shared::paths::dead_letter(&entry), None),
        (
            Method::POST,
            shared::paths::dead_letter_actions(&entry),
            Some(act.clone()),
        ),
        (
            Method::POST,
            shared::paths::DEAD_LETTER_BULK_ACTIONS.into(),
            Some(json!({ "ids": [entry.clone()], "action": act })),
        ),
        (Method::GET, shared::paths::DLQ_ACTIONS.into(), None),
        (Method::GET, shared::paths::DLQ_ACTIONS_COUNT.into(), None),
        (
            Method::POST,
            shared::paths::dlq_action(&action, "approve"),
            decision.clone(),
        ),
        (
            Method::POST,
            shared::paths::dlq_action(&action, "reject"),
            decision.clone(),
        ),
        (
            Method::POST,
            shared::paths::dlq_action(&action, "withdraw"),
            decision.clone(),
        ),
        (
            Method::POST,
            shared::paths::DLQ_ACTIONS_BULK_APPROVE.into(),
            Some(json!({ "ids": [action.clone()], "reason": "r" })),
        ),
        (
            Method::GET,
            shared::paths::service(SERVICE, "prod").dead_letter_summary(),
            None,
        ),
    ];
    for (method, path, post) in &calls {
        // Nobody anonymous; no service token on a person's endpoint.
        let r = app.call(method.clone(), path, post.clone(), None).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            r.text
        );
        let r = app
            .call(method.clone(), path, post.clone(), Some(&s.agent))
            .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            r.text
        );
        // A viewer reads and does nothing else.
        let r = app
            .call(method.clone(), path, post.clone(), Some(&viewer))
            .await;
        if *method == Method::GET {
            assert_eq!(r.status, StatusCode::OK, "{method} {path}: {}", r.text);
        } else {
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{method} {path}: {}",
                r.text
            );
        }
    }
    // Approvers decide but do not request; engineers request but do not decide.
    assert_eq!(
        request(&app, &s.approver, &entry, "cancel").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        decide(&app, &s.engineer, &action, "approve").await.status,
        StatusCode::FORBIDDEN
    );
    // Agent endpoints take only service tokens, and only their own actions.
    for token in [None, Some(s.engineer.as_str()), Some(admin.as_str())] {
        let r = app
            .call(
                Method::POST,
                shared::paths::AGENT_DEAD_LETTERS,
                Some(report("run-x", 1)),
                token,
            )
            .await;
        let want = if token.is_none() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(r.status, want, "{}", r.text);
    }
    assert_eq!(
        decide(&app, &s.approver, &action, "approve").await.status,
        StatusCode::OK
    );
    assert_eq!(claim(&app, &s, "pod-1").await, vec![action.clone()]);
    let r = ack(&app, &other_agent, &action, "succeeded").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Only the requester or approver withdraws.
    let entry = dead_letter(&app, &s, "run-11", 1).await;
    let r = request(&app, &s.engineer, &entry, "redrive").await;
    let pending = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        decide(&app, &viewer, &pending, "withdraw").await.status,
        StatusCode::FORBIDDEN
    );
    let r = decide(&app, &s.engineer, &pending, "withdraw").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "withdrawn");
}

async fn a_publish_approval_computed_against_an_older_version_is_refused(app: TestApp) {
    let s = setup(&app).await;
    let high = policy(RiskTier::High, strict());
    let r = publish(&app, &s.engineer, &high).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let request_id = r.body["request_id"].as_str().unwrap().to_owned();
    // It waits in the approver's inbox, and not in its author's.
    for (token, waiting) in [(&s.approver, 1), (&s.engineer, 0)] {
        let r = app
            .call(
                Method::GET,
                shared::paths::DLQ_ACTIONS_COUNT,
                None,
                Some(token),
            )
            .await;
        assert_eq!(r.body["publishes"], waiting, "{}", r.text);
    }
    // Meanwhile another version is published, adding an invariant the
    // request knows nothing about.
    let mut newer = policy(RiskTier::Medium, strict());
    newer.service.owner = "search-team".into();
    assert_eq!(
        publish(&app, &s.engineer, &newer).await.status,
        StatusCode::CREATED
    );
    let r = app
        .call(
            Method::POST,
            &shared::paths::approve_publish(&request_id),
            None,
            Some(&s.approver),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "stale");
    assert_eq!(r.body["error"]["details"]["active_version"], 2);
    assert_eq!(r.body["error"]["details"]["base_version"], 1);
    assert!(
        !r.body["error"]["details"]["changes"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let svc = app
        .call(
            Method::GET,
            &shared::paths::service(SERVICE, "prod").root(),
            None,
            Some(&s.admin),
        )
        .await;
    assert_eq!(svc.body["rollout"]["active_version"], 2);
}
