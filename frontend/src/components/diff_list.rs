//! A diff between two policy documents, and what a publish did, in words:
//! the service page's versions tab and the policy editor both show them.

use leptos::prelude::*;
use shared::api::PublishOutcome;
use shared::policy::{Change, ChangeKind};

/// What a publish or rollback did, as a sentence.
pub fn outcome_text(outcome: &PublishOutcome) -> String {
    match outcome {
        PublishOutcome::Published {
            version, canary, ..
        } => {
            if *canary {
                format!("Published v{version} to a canary.")
            } else {
                format!("Published v{version}.")
            }
        }
        PublishOutcome::PendingApproval {
            request_id,
            reasons,
            ..
        } => format!(
            "Waiting for approval: request {request_id}. Reasons: {}.",
            reasons.join("; ")
        ),
    }
}

/// A JSON value in one line, for a diff.
fn compact(value: &Option<serde_json::Value>) -> String {
    match value {
        None => "—".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// A diff as a list of changed paths with their old and new values.
#[component]
pub fn DiffList(changes: Vec<Change>) -> impl IntoView {
    if changes.is_empty() {
        return view! {
            <p class="muted" data-test="diff-list" data-empty="true">
                "No differences."
            </p>
        }
        .into_any();
    }
    let items = changes
        .into_iter()
        .map(|c| {
            let (kind, class) = match c.kind {
                ChangeKind::Added => ("added", "change change-added"),
                ChangeKind::Removed => ("removed", "change change-removed"),
                ChangeKind::Changed => ("changed", "change change-changed"),
            };
            let data_path = c.path.clone();
            view! {
                <li class=class data-test="diff-item" data-path=data_path>
                    <span class="change-kind">{kind}</span>
                    <code class="change-path">{c.path}</code>
                    <span class="change-values">
                        <code class="change-old">{compact(&c.old)}</code>
                        <span aria-hidden="true">" → "</span>
                        <span class="visually-hidden">" becomes "</span>
                        <code class="change-new">{compact(&c.new)}</code>
                    </span>
                </li>
            }
        })
        .collect_view();
    view! { <ul class="diff-list" data-test="diff-list">{items}</ul> }.into_any()
}
