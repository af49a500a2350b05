//! Runbooks and incident checklists on both databases: the built-in library,
//! versioned writes that refuse to overwrite a newer version, sanitised
//! rendering, checklists that record who ticked which step and when,
//! policy references checked at publish, and every endpoint's roles.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{NowForTests, TestApp};
use serde_json::{Value, json};
use shared::policy::Policy;
use shared::role::Role;

on_both_backends!(
    the_library_is_there_from_the_start,
    writes_are_versioned_and_never_overwrite_a_newer_version,
    runbook_input_is_checked_field_by_field,
    rendering_is_sanitised_and_steps_come_from_task_items,
    a_checklist_records_who_ticked_which_step_and_when,
    a_publish_naming_a_missing_runbook_is_refused,
    every_endpoint_checks_its_caller,
);

fn write(title: &str, body: &str) -> Value {
    json!({ "title": title, "body": body, "links": { "dependencies": ["reranker"],
            "failure_types": ["breaker_open"], "services": ["rag-answer"] } })
}

async fn the_library_is_there_from_the_start(app: TestApp) {
    let viewer = app.login_as("vic", Role::Viewer).await;
    let r = app
        .call(Method::GET, shared::paths::RUNBOOKS, None, Some(&viewer))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let slugs: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["slug"].as_str().unwrap())
        .collect();
    for slug in [
        "ai-reliability-incident",
        "case-record-outage",
        "approval-service-outage",
        "dlq-growth",
    ] {
        assert!(slugs.contains(&slug), "{slug} missing from {slugs:?}");
    }
    let r = app
        .call(
            Method::GET,
            &shared::paths::runbook("ai-reliability-incident"),
            None,
            Some(&viewer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["author"], "ballast");
    assert_eq!(r.body["steps"].as_array().unwrap().len(), 13);
    assert!(r.body["html"].as_str().unwrap().contains("<h2>"));

    // Filters narrow by link.
    let r = app
        .call(
            Method::GET,
            &format!("{}?dependency=case_record", shared::paths::RUNBOOKS),
            None,
            Some(&viewer),
        )
        .await;
    let slugs: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["case-record-outage"]);
    let r = app
        .call(
            Method::GET,
            &format!("{}?colour=red", shared::paths::RUNBOOKS),
            None,
            Some(&viewer),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

    // The template is the incident checklist.
    let r = app
        .call(
            Method::GET,
            shared::paths::RUNBOOK_TEMPLATE,
            None,
            Some(&viewer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["body"].as_str().unwrap().contains("- [ ]"));

    // Opening the store again (a restart, or a second replica) keeps an
    // edited library runbook as it is.
    let engineer = app.login_as("erin", Role::Engineer).await;
    let mut edit = write("Our incident steps", "- [ ] one\n- [ ] two\n");
    edit["base_version"] = json!(1);
    let r = app
        .call(
            Method::PUT,
            &shared::paths::runbook("dlq-growth"),
            Some(edit),
            Some(&engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let again = app.replica().await;
    let r = again
        .call(
            Method::GET,
            &shared::paths::runbook("dlq-growth"),
            None,
            Some(&viewer),
        )
        .await;
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["title"], "Our incident steps");
}

async fn writes_are_versioned_and_never_overwrite_a_newer_version(app: TestApp) {
    let erin = app.login_as("erin", Role::Engineer).await;
    let eve = app.login_as("eve", Role::Engineer).await;
    let path = shared::paths::runbook("reranker-down");

    let r = app
        .call(
            Method::PUT,
            &path,
            Some(write("Reranker down", "- [ ] a")),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["author"], "user:erin");

    // Creating it again is a conflict, not an overwrite.
    let r = app
        .call(
            Method::PUT,
            &path,
            Some(write("Other", "- [ ] b")),
            Some(&eve),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "base_version");

    // Two people edit version 1; the second to save loses, and is told why.
    let mut first = write("Reranker down (v2)", "- [ ] a\n- [ ] b");
    first["base_version"] = json!(1);
    first["message"] = json!("add step b");
    let r = app.call(Method::PUT, &path, Some(first), Some(&erin)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], 2);
    let mut second = write("Reranker down (eve)", "- [ ] c");
    second["base_version"] = json!(1);
    let r = app.call(Method::PUT, &path, Some(second), Some(&eve)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["error"]["details"]["latest_version"], 2);

    // base_version on a runbook that does not exist.
    let mut ghost = write("Ghost", "- [ ] x");
    ghost["base_version"] = json!(3);
    let r = app
        .call(
            Method::PUT,
            &shared::paths::runbook("ghost"),
            Some(ghost),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // History, and every old version stays readable as it was.
    let r = app
        .call(
            Method::GET,
            &shared::paths::runbook_versions("reranker-down"),
            None,
            Some(&eve),
        )
        .await;
    let versions: Vec<u64> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);
    assert_eq!(r.body[0]["message"], "add step b");
    let r = app
        .call(
            Method::GET,
            &shared::paths::runbook_version("reranker-down", 1),
            None,
            Some(&eve),
        )
        .await;
    assert_eq!(r.body["title"], "Reranker down");
    assert_eq!(r.body["latest_version"], 2);
    assert_eq!(r.body["steps"], json!(["a"]));
    let r = app
        .call(
            Method::GET,
            &shared::paths::runbook_version("reranker-down", 9),
            None,
            Some(&eve),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            Method::GET,
            "/api/v1/runbooks/reranker-down/versions/two",
            None,
            Some(&eve),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["field"], "version");

    // Every write is in the audit log.
    let admin = app.login_as("ada", Role::Admin).await;
    let r = app
        .call(Method::GET, shared::paths::AUDIT, None, Some(&admin))
        .await;
    let actions: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == "runbook:reranker-down")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.len(), 2, "{}", r.text);
    assert!(actions.contains(&"runbook.create") && actions.contains(&"runbook.update"));
}

async fn runbook_input_is_checked_field_by_field(app: TestApp) {
    let erin = app.login_as("erin", Role::Engineer).await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("Bad Slug", write("t", "- [ ] a"), "slug"),
        ("ok", write("", "- [ ] a"), "title"),
        ("ok", write("two\nlines", "- [ ] a"), "title"),
        ("ok", write("t", "   "), "body"),
        (
            "ok",
            json!({ "title": "t", "body": "b", "links": { "services": ["has space"] } }),
            "links.services[0]",
        ),
        (
            "ok",
            json!({ "title": "t", "body": "b", "base_version": 0 }),
            "base_version",
        ),
        (
            "ok",
            json!({ "title": "t", "body": "b", "colour": "red" }),
            "body",
        ),
        ("ok", json!({ "title": 5, "body": "b" }), "title"),
    ];
    for (slug, body, field) in cases {
        let r = app
            .call(
                Method::PUT,
                &shared::paths::runbook(slug),
                Some(body.clone()),
                Some(&erin),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        if field != "body" || r.body["error"]["field"] == "body" {
            assert_eq!(r.body["error"]["field"], field, "{body}: {}", r.text);
        }
    }
    // The text's own cap, behind a body limit that lets it through.
    let roomy = app.replica_with(|s| s.body_limit = 1024 * 1024).await;
    let r = roomy
        .call(
            Method::PUT,
            &shared::paths::runbook("ok"),
            Some(write("t", &"x".repeat(200_001))),
            Some(&erin),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        &r.text[..200.min(r.text.len())]
    );
    assert_eq!(r.body["error"]["field"], "body");
    // Nothing was stored.
    let r = app
        .call(
            Method::GET,
            &shared::paths::runbook("ok"),
            None,
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn rendering_is_sanitised_and_steps_come_from_task_items(app: TestApp) {
    let erin = app.login_as("erin", Role::Engineer).await;
    let body = "# Hostile\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n\
                [click](javascript:alert(3))\n\n- [ ] First step\n- plain item\n- [x] Second `step`\n";
    let r = app
        .call(
            Method::PUT,
            &shared::paths::runbook("hostile"),
            Some(write("Hostile", body)),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let html = r.body["html"].as_str().unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("onerror"), "{html}");
    assert!(!html.contains("javascript:"), "{html}");
    assert!(html.contains("<h1>Hostile</h1>"), "{html}");
    assert_eq!(r.body["steps"], json!(["First step", "Second step"]));
    // The Markdown is kept exactly as written.
    assert_eq!(r.body["body"], body);
}

async fn a_checklist_records_who_ticked_which_step_and_when(app: TestApp) {
    let erin = app.login_as("erin", Role::Engineer).await;
    let april = app.login_as("april", Role::Approver).await;
    let viewer = app.login_as("vic", Role::Viewer).await;
    let r = app
        .call(
            Method::POST,
            &shared::paths::runbook_checklists("ai-reliability-incident"),
            Some(json!({ "title": "Reranker outage", "incident_ref": "INC-42" })),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["runbook_version"], 1);
    assert_eq!(r.body["steps"].as_array().unwrap().len(), 13);
    assert_eq!(r.body["started_by"], "user:erin");

    // Editing the runbook later does not move the steps under the responders.
    let mut edit = write("Shorter", "- [ ] only one");
    edit["base_version"] = json!(1);
    let r = app
        .call(
            Method::PUT,
            &shared::paths::runbook("ai-reliability-incident"),
            Some(edit),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let t0 = app.clock.now_ms_for_tests();
    let r = app
        .call(
            Method::PUT,
            &shared::paths::checklist_step(&id, 1),
            Some(json!({ "done": true, "note": "breaker on reranker is open" })),
            Some(&april),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.clock.advance_ms(30_000);
    let r = app
        .call(
            Method::PUT,
            &shared::paths::checklist_step(&id, 0),
            Some(json!({ "done": true })),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .call(
            Method::PUT,
            &shared::paths::checklist_step(&id, 0),
            Some(json!({ "done": false, "note": "not yet, after all" })),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = app
        .call(
            Method::GET,
            &shared::paths::checklist(&id),
            None,
            Some(&viewer),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let steps = r.body["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 13);
    assert_eq!(steps[1]["done"], true);
    assert_eq!(steps[1]["by"], "user:april");
    assert_eq!(steps[1]["at_ms"], t0);
    assert_eq!(steps[1]["note"], "breaker on reranker is open");
    assert_eq!(steps[0]["done"], false);
    assert_eq!(steps[0]["by"], "user:erin");
    assert_eq!(steps[0]["at_ms"], t0 + 30_000);
    assert_eq!(steps[2]["done"], false);
    assert!(steps[2].get("by").is_none());
    let events = r.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["by"], "user:april");
    assert_eq!(events[2]["done"], false);

    // Listed, with its state.
    let r = app
        .call(
            Method::GET,
            &format!(
                "{}?runbook=ai-reliability-incident",
                shared::paths::CHECKLISTS
            ),
            None,
            Some(&viewer),
        )
        .await;
    assert_eq!(r.body[0]["id"], id.as_str());
    assert_eq!(r.body[0]["steps"][1]["done"], true);

    // Bad steps, a viewer, then closing.
    let r = app
        .call(
            Method::PUT,
            &shared::paths::checklist_step(&id, 13),
            Some(json!({ "done": true })),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["field"], "index");
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/checklists/{id}/steps/-1"),
            Some(json!({ "done": true })),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .call(
            Method::PUT,
            &shared::paths::checklist_step(&id, 2),
            Some(json!({ "done": true })),
            Some(&viewer),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            Method::POST,
            &shared::paths::close_checklist(&id),
            None,
            Some(&april),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["closed_by"], "user:april");
    let r = app
        .call(
            Method::PUT,
            &shared::paths::checklist_step(&id, 2),
            Some(json!({ "done": true })),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .call(
            Method::POST,
            &shared::paths::close_checklist(&id),
            None,
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .call(
            Method::GET,
            &shared::paths::checklist("cl-nope"),
            None,
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A runbook without steps cannot be worked as a checklist.
    let r = app
        .call(
            Method::PUT,
            &shared::paths::runbook("prose-only"),
            Some(write("Prose", "Just words.")),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .call(
            Method::POST,
            &shared::paths::runbook_checklists("prose-only"),
            Some(json!({ "title": "x" })),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
}

async fn a_publish_naming_a_missing_runbook_is_refused(app: TestApp) {
    let erin = app.login_as("erin", Role::Engineer).await;
    let r = app
        .call(
            Method::POST,
            shared::paths::SERVICES,
            Some(json!({ "name": "case-review-agent", "environment": "prod", "owner": "cases" })),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let mut policy = Policy::from_yaml(include_str!(
        "../../../examples/policies/case-review-agent.yaml"
    ))
    .unwrap();
    policy.service.environment = "prod".into();
    let breaker = policy.breakers.values_mut().next().unwrap();
    breaker.runbook = Some("nobody-wrote-this".into());
    let dep = policy
        .breakers
        .iter()
        .find(|(_, b)| b.runbook.as_deref() == Some("nobody-wrote-this"))
        .map(|(d, _)| d.clone())
        .unwrap();
    let r = app
        .call(
            Method::POST,
            &shared::paths::service("case-review-agent", "prod").publish(),
            Some(json!({ "message": "m", "document": serde_json::to_value(&policy).unwrap() })),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let field = format!("breakers.{dep}.runbook");
    assert!(r.text.contains(&field), "{field} not named in {}", r.text);
    assert!(r.text.contains("nobody-wrote-this"), "{}", r.text);

    // Once the runbook exists, the same document gets past the check (it
    // may still wait for an approver: the example is high risk).
    let r = app
        .call(
            Method::PUT,
            &shared::paths::runbook("nobody-wrote-this"),
            Some(write("Now written", "- [ ] step")),
            Some(&erin),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .call(
            Method::POST,
            &shared::paths::service("case-review-agent", "prod").publish(),
            Some(json!({ "message": "m", "document": serde_json::to_value(&policy).unwrap() })),
            Some(&erin),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
}

async fn every_endpoint_checks_its_caller(app: TestApp) {
    let viewer = app.login_as("vic", Role::Viewer).await;
    let engineer = app.login_as("erin", Role::Engineer).await;
    let approver = app.login_as("april", Role::Approver).await;
    let admin = app.login_as("ada", Role::Admin).await;
    let r = app
        .call(
            Method::POST,
            shared::paths::SERVICES,
            Some(json!({ "name": "svc", "environment": "prod", "owner": "x" })),
            Some(&engineer),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let agent = app.agent_token(&admin, "svc").await;
    let r = app
        .call(
            Method::POST,
            &shared::paths::runbook_checklists("dlq-growth"),
            Some(json!({ "title": "t" })),
            Some(&engineer),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();

    // (method, path, body, who may: viewer, engineer, approver)
    let rows: Vec<(Method, String, Option<Value>, [bool; 3])> = vec![
        (Method::GET, shared::paths::RUNBOOKS.into(), None, [true; 3]),
        (
            Method::GET,
            shared::paths::RUNBOOK_TEMPLATE.into(),
            None,
            [true; 3],
        ),
        (
            Method::GET,
            shared::paths::runbook("dlq-growth"),
            None,
            [true; 3],
        ),
        (
            Method::GET,
            shared::paths::runbook_versions("dlq-growth"),
            None,
            [true; 3],
        ),
        (
            Method::GET,
            shared::paths::runbook_version("dlq-growth", 1),
            None,
            [true; 3],
        ),
        (
            Method::PUT,
            shared::paths::runbook("new-one"),
            Some(write("t", "- [ ] a")),
            [false, true, false],
        ),
        (
            Method::POST,
            shared::paths::runbook_checklists("dlq-growth"),
            Some(json!({ "title": "t" })),
            [false, true, true],
        ),
        (
            Method::GET,
            shared::paths::CHECKLISTS.into(),
            None,
            [true; 3],
        ),
        (Method::GET, shared::paths::checklist(&id), None, [true; 3]),
        (
            Method::PUT,
            shared::paths::checklist_step(&id, 0),
            Some(json!({ "done": true })),
            [false, true, true],
        ),
        (
            Method::POST,
            shared::paths::close_checklist(&id),
            None,
            [false, true, true],
        ),
    ];
    for (method, path, body, allowed) in rows {
        // No credentials, and an agent's token: never.
        for token in [None, Some(agent.as_str())] {
            let r = app.call(method.clone(), &path, body.clone(), token).await;
            assert!(
                r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::FORBIDDEN,
                "{method} {path} with {token:?}: {}",
                r.status
            );
        }
        // A second close is a 409, which still shows the role was let in.
        for (who, may) in [
            (&viewer, allowed[0]),
            (&engineer, allowed[1]),
            (&approver, allowed[2]),
        ] {
            let r = app
                .call(method.clone(), &path, body.clone(), Some(who))
                .await;
            if may {
                assert_ne!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path}: {}",
                    r.text
                );
                assert!(
                    r.status.is_success() || r.status == StatusCode::CONFLICT,
                    "{method} {path}: {}",
                    r.text
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path}: {}",
                    r.text
                );
            }
        }
    }
}
