//! Runbooks: what to do when something fails, written in Markdown, versioned
//! (every write is a new version; none is changed), linked to the services,
//! dependencies and kinds of failure they handle, and worked through as
//! checklists during an incident ([`checklists`]).
//!
//! Policies and alert rules refer to runbooks by slug, and a publish that
//! names a runbook that does not exist is refused (see
//! `crate::policy::validation_context`). A built-in library ([`library`])
//! is there from the first start, so that every built-in alert rule and the
//! example policies have somewhere to point.
//!
//! Nothing here imports `crate::routes`.

pub mod checklists;
pub mod library;

use crate::app::App;
use crate::auth::UserPrincipal;
use crate::error::{ApiError, ApiResult};
use crate::store::{AuditRecord, NewRunbookVersion, RunbookRow, RunbookVersionRow, RunbookWritten};
use axum::http::StatusCode;
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use serde_json::json;
use shared::api::{
    RunbookLinks, RunbookSummary, RunbookTemplate, RunbookVersionSummary, RunbookView, RunbookWrite,
};

/// The longest runbook text accepted, in bytes: generous for prose, small
/// enough that rendering it is cheap on every view.
pub const MAX_BODY_BYTES: usize = 200_000;
const MAX_TITLE_CHARS: usize = 200;
const MAX_MESSAGE_CHARS: usize = 1_000;
const MAX_LINKS: usize = 50;
const MAX_LINK_CHARS: usize = 100;
const MAX_SLUG_CHARS: usize = 64;

fn markdown_options() -> Options {
    Options::ENABLE_TASKLISTS
        | Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_FOOTNOTES
}

/// Renders runbook Markdown to HTML that is safe to put in a page: the
/// Markdown renderer passes raw HTML through, so the result goes through an
/// allow-list sanitiser that drops scripts, event handlers, `javascript:`
/// links and anything else outside plain document markup.
pub fn render(body: &str) -> String {
    let mut html = String::with_capacity(body.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, Parser::new_ext(body, markdown_options()));
    ammonia::clean(&html)
}

/// The checklist steps of a runbook: the text of each task-list item
/// (`- [ ] …`), in document order. An item's own text only: a list nested
/// inside it holds steps of its own.
pub fn steps(body: &str) -> Vec<String> {
    let mut steps: Vec<String> = Vec::new();
    // One slot per open list item: the index of its step, if it is a task.
    let mut open: Vec<Option<usize>> = Vec::new();
    for event in Parser::new_ext(body, markdown_options()) {
        match event {
            Event::Start(Tag::Item) => open.push(None),
            Event::End(TagEnd::Item) => {
                if let Some(Some(i)) = open.pop() {
                    let text = steps[i].split_whitespace().collect::<Vec<_>>().join(" ");
                    steps[i] = text;
                }
            }
            Event::TaskListMarker(_) => {
                if let Some(slot) = open.last_mut() {
                    steps.push(String::new());
                    *slot = Some(steps.len() - 1);
                }
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(Some(i)) = open.last() {
                    steps[*i].push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some(Some(i)) = open.last() {
                    steps[*i].push(' ');
                }
            }
            _ => {}
        }
    }
    steps.retain(|s| !s.is_empty());
    steps
}

/// Checks a slug: it appears in policies, URLs and alert notifications.
pub fn check_slug(slug: &str) -> ApiResult<()> {
    crate::fields::slug("slug", slug, MAX_SLUG_CHARS, "a runbook's slug")
}

fn check_links(links: &RunbookLinks) -> ApiResult<()> {
    for (name, list) in [
        ("services", &links.services),
        ("dependencies", &links.dependencies),
        ("failure_types", &links.failure_types),
    ] {
        if list.len() > MAX_LINKS {
            return Err(ApiError::invalid(
                format!("links.{name}"),
                format!("at most {MAX_LINKS} entries"),
            ));
        }
        for (i, value) in list.iter().enumerate() {
            let field = format!("links.{name}[{i}]");
            crate::fields::text(&field, value, MAX_LINK_CHARS, true)?;
            if value.chars().any(char::is_whitespace) {
                return Err(ApiError::invalid(field, "must be one word, without spaces"));
            }
        }
    }
    Ok(())
}

/// Checks a write's fields, naming the first one at fault.
pub fn check_write(write: &RunbookWrite) -> ApiResult<()> {
    crate::fields::text("title", &write.title, MAX_TITLE_CHARS, true)?;
    if write.title.contains('\n') {
        return Err(ApiError::invalid("title", "must be one line"));
    }
    if write.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::invalid(
            "body",
            format!("must be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    crate::fields::text("body", &write.body, usize::MAX, true)?;
    crate::fields::text("message", &write.message, MAX_MESSAGE_CHARS, false)?;
    if write.base_version == Some(0) {
        return Err(ApiError::invalid("base_version", "versions start at 1"));
    }
    check_links(&write.links)
}

fn normalised(links: &RunbookLinks) -> RunbookLinks {
    let tidy = |list: &[String]| {
        let mut out: Vec<String> = list.iter().map(|s| s.trim().to_owned()).collect();
        out.sort();
        out.dedup();
        out
    };
    RunbookLinks {
        services: tidy(&links.services),
        dependencies: tidy(&links.dependencies),
        failure_types: tidy(&links.failure_types),
    }
}

fn links_of(text: &str) -> ApiResult<RunbookLinks> {
    serde_json::from_str(text)
        .map_err(|e| ApiError::internal(&format!("stored runbook links: {e}")))
}

fn version_number(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Writes a runbook's next version, or creates it. 409 when the author
/// edited an older version than the latest, or created one that exists.
pub async fn write(
    app: &App,
    user: &UserPrincipal,
    slug: &str,
    write: &RunbookWrite,
) -> ApiResult<(StatusCode, RunbookView)> {
    check_slug(slug)?;
    check_write(write)?;
    let links = normalised(&write.links);
    let links_json = serde_json::to_string(&links).map_err(|e| ApiError::internal(&e))?;
    let step_count = steps(&write.body).len();
    let base = write
        .base_version
        .map(|v| i64::try_from(v).map_err(|_| ApiError::invalid("base_version", "too large")))
        .transpose()?;
    let new = NewRunbookVersion {
        slug,
        title: write.title.trim(),
        body: &write.body,
        links: &links_json,
        step_count: i64::try_from(step_count).unwrap_or(i64::MAX),
        message: write.message.trim(),
        author: &user.actor(),
        base_version: base,
    };
    let audit = AuditRecord::new(
        user.actor(),
        if base.is_some() {
            "runbook.update"
        } else {
            "runbook.create"
        },
        format!("runbook:{slug}"),
        json!({ "base_version": base, "title": new.title, "steps": step_count }),
    );
    match app.store.write_runbook(&new, app.clock.now_ms(), &audit).await? {
        RunbookWritten::Version(v) => {
            let view = get(app, slug, Some(version_number(v))).await?;
            let status = if v == 1 { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, view))
        }
        RunbookWritten::Exists(latest) => Err(ApiError::conflict(
            "base_version",
            format!(
                "runbook `{slug}` already exists (version {latest}); send base_version to write its next version"
            ),
        )),
        RunbookWritten::Stale(latest) => Err(ApiError::conflict(
            "base_version",
            format!(
                "runbook `{slug}` is at version {latest}, not {}; reload it and apply your change again",
                base.unwrap_or_default()
            ),
        )
        .with_details(json!({ "latest_version": latest }))),
        RunbookWritten::Missing => Err(ApiError::not_found(format!("no runbook `{slug}`"))),
    }
}

fn view(row: RunbookVersionRow, latest: i64) -> ApiResult<RunbookView> {
    Ok(RunbookView {
        html: render(&row.body),
        steps: steps(&row.body),
        links: links_of(&row.links)?,
        slug: row.slug,
        version: version_number(row.version),
        latest_version: version_number(latest),
        title: row.title,
        body: row.body,
        message: row.message,
        author: row.author,
        created_at_ms: row.created_at,
    })
}

/// One version of a runbook; the latest when `version` is `None`.
pub async fn get(app: &App, slug: &str, version: Option<u64>) -> ApiResult<RunbookView> {
    let wanted = version
        .map(|v| i64::try_from(v).map_err(|_| ApiError::not_found("no such version")))
        .transpose()?;
    match app.store.runbook_version(slug, wanted).await? {
        Some((row, latest)) => view(row, latest),
        None => Err(ApiError::not_found(match version {
            Some(v) => format!("runbook `{slug}` has no version {v}"),
            None => format!("no runbook `{slug}`"),
        })),
    }
}

/// A runbook's history, newest first.
pub async fn history(app: &App, slug: &str) -> ApiResult<Vec<RunbookVersionSummary>> {
    let rows = app.store.runbook_history(slug).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found(format!("no runbook `{slug}`")));
    }
    Ok(rows
        .into_iter()
        .map(|r| RunbookVersionSummary {
            version: version_number(r.version),
            title: r.title,
            message: r.message,
            author: r.author,
            created_at_ms: r.created_at,
        })
        .collect())
}

/// What a listing may be narrowed to: runbooks linked to all of these.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunbookFilter {
    /// Only runbooks linked to this service.
    pub service: Option<String>,
    /// Only runbooks linked to this dependency.
    pub dependency: Option<String>,
    /// Only runbooks linked to this kind of failure.
    pub failure_type: Option<String>,
    /// Only runbooks whose slug or title contains this, ignoring case.
    pub q: Option<String>,
}

fn summary(row: RunbookRow) -> ApiResult<RunbookSummary> {
    Ok(RunbookSummary {
        links: links_of(&row.links)?,
        slug: row.slug,
        title: row.title,
        version: version_number(row.latest_version),
        step_count: u32::try_from(row.step_count).unwrap_or(u32::MAX),
        updated_by: row.updated_by,
        updated_at_ms: row.updated_at,
    })
}

/// Runbooks matching `filter`, by slug.
pub async fn list(app: &App, filter: &RunbookFilter) -> ApiResult<Vec<RunbookSummary>> {
    let q = filter.q.as_deref().map(str::to_lowercase);
    let mut out = Vec::new();
    for row in app.store.runbooks().await? {
        let s = summary(row)?;
        let has = |list: &[String], want: &Option<String>| {
            want.as_ref().is_none_or(|w| list.iter().any(|v| v == w))
        };
        if has(&s.links.services, &filter.service)
            && has(&s.links.dependencies, &filter.dependency)
            && has(&s.links.failure_types, &filter.failure_type)
            && q.as_ref().is_none_or(|q| {
                s.slug.contains(q.as_str()) || s.title.to_lowercase().contains(q.as_str())
            })
        {
            out.push(s);
        }
    }
    Ok(out)
}

/// The text a new runbook starts from.
pub fn template() -> RunbookTemplate {
    RunbookTemplate {
        title: library::TEMPLATE_TITLE.to_owned(),
        body: library::TEMPLATE_BODY.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_the_task_items_in_order_without_their_nested_lists() {
        let body = "# Outage\n\nIntro with a [link](https://example.com).\n\n\
                    - [ ] Check the `breaker` state\n  on the overview\n\
                    - [x] Page the owner\n  - [ ] nested step\n  - plain nested item\n\
                    - not a step\n\n1. [ ] Numbered **step**\n";
        assert_eq!(
            steps(body),
            vec![
                "Check the breaker state on the overview",
                "Page the owner",
                "nested step",
                "Numbered step",
            ]
        );
    }

    #[test]
    fn rendering_drops_scripts_handlers_and_javascript_links() {
        let html = render(
            "Hello <script>alert(1)</script> <img src=x onerror=alert(2)> \
             [x](javascript:alert(3)) <a href=\"https://ok.example\">ok</a>\n\n- [ ] step",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("https://ok.example"), "{html}");
        assert!(html.contains("<li>"), "{html}");
    }

    #[test]
    fn slugs_are_plain() {
        for good in ["a", "model-provider-outage", "dlq2"] {
            assert!(check_slug(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "A",
            "a b",
            "a/b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_library_runbook_is_valid_and_has_steps() {
        for book in library::LIBRARY {
            check_slug(book.slug).unwrap();
            let write = RunbookWrite {
                title: book.title.into(),
                body: book.body.into(),
                links: book.links(),
                base_version: None,
                message: String::new(),
            };
            check_write(&write).unwrap();
            assert!(
                steps(book.body).len() >= 4,
                "{} has too few steps",
                book.slug
            );
        }
        assert!(steps(library::TEMPLATE_BODY).len() >= 12);
    }
}
