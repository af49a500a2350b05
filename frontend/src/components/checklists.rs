//! Incident checklists as a table: the open incidents on the runbooks page,
//! and one runbook's checklists on its own page.

use crate::components::data_table::{DataTable, Head};
use crate::time::Utc;
use leptos::prelude::*;
use shared::api::ChecklistView;
use shared::paths::segment;

/// Steps ticked, and steps in all.
pub fn progress(c: &ChecklistView) -> (usize, usize) {
    (c.steps.iter().filter(|s| s.done).count(), c.steps.len())
}

/// A checklist's state in words and colour; `data-status` says `open` or
/// `closed`.
pub fn checklist_chip(c: &ChecklistView, test: String) -> AnyView {
    let (tone, key, label) = if c.closed_at_ms.is_some() {
        ("badge", "closed", "Closed")
    } else {
        ("badge badge-warn", "open", "Open")
    };
    view! {
        <span class=tone data-test=test data-status=key>
            {label}
        </span>
    }
    .into_any()
}

const HEADS: &[Head] = &[
    ("Checklist", ""),
    ("Runbook", ""),
    ("Incident", ""),
    ("Steps done", "num"),
    ("Started", ""),
    ("State", ""),
];

/// The same without the runbook column, for a runbook's own page.
const HEADS_OF_ONE: &[Head] = &[
    ("Checklist", ""),
    ("Incident", ""),
    ("Steps done", "num"),
    ("Started", ""),
    ("State", ""),
];

#[component]
pub fn ChecklistsTable(
    checklists: Vec<ChecklistView>,
    caption: &'static str,
    test: &'static str,
    empty: &'static str,
    /// Whether to show which runbook each one follows.
    #[prop(optional)]
    with_runbook: bool,
) -> impl IntoView {
    let rows = checklists
        .into_iter()
        .map(|c| row(c, with_runbook))
        .collect();
    view! {
        <DataTable
            caption
            test
            heads=if with_runbook { HEADS } else { HEADS_OF_ONE }
            empty
            rows
        />
    }
}

fn row(c: ChecklistView, with_runbook: bool) -> AnyView {
    let (done, all) = progress(&c);
    let href = format!("/checklists/{}", segment(&c.id));
    let started = Utc::from_millis(c.started_at_ms);
    let chip = checklist_chip(&c, format!("checklist-state-{}", c.id));
    let runbook = with_runbook.then(|| {
        let href = format!("/runbooks/{}", segment(&c.slug));
        view! {
            <td>
                <a href=href>
                    <code>{c.slug.clone()}</code>
                </a>
                <span class="muted small">{format!(" v{}", c.runbook_version)}</span>
            </td>
        }
    });
    view! {
        <tr data-test=format!("checklist-row-{}", c.id)>
            <td class="wrap">
                <a href=href data-test=format!("checklist-link-{}", c.id)>
                    {c.title}
                </a>
            </td>
            {runbook}
            <td>{c.incident_ref.unwrap_or_else(|| "—".to_owned())}</td>
            <td class="num">{format!("{done} of {all}")}</td>
            <td class="nowrap">
                <time datetime=started.iso()>{started.display()}</time>
                <p class="muted small">"by " <code>{c.started_by}</code></p>
            </td>
            <td>{chip}</td>
        </tr>
    }
    .into_any()
}
