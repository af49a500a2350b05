//! The findings summary and the actions that save, diff and publish.

use super::{Saved, Source};
use crate::api::{self, ApiError};
use crate::app::Hydrated;
use crate::components::diff_list::{DiffList, outcome_text};
use crate::components::fields::{Doc, field_id};
use crate::time::Utc;
use leptos::prelude::*;
use shared::api::{DiffView, PublishOutcome, PublishRequest};
use shared::policy::{Severity, ValidationReport};

/// Moves the keyboard to the field a finding names, or the nearest thing
/// above it that the form shows.
fn focus_path(path: &str) {
    let mut path = path.to_owned();
    loop {
        if let Some(element) = document().get_element_by_id(&field_id(&path)) {
            use leptos::wasm_bindgen::JsCast;
            if let Ok(html) = element.dyn_into::<leptos::web_sys::HtmlElement>() {
                let _ = html.focus();
            }
            return;
        }
        match path.rfind('.') {
            Some(i) => path.truncate(i),
            None => return,
        }
    }
}

#[component]
pub fn FindingsSummary(ed: Doc) -> impl IntoView {
    let counts = Memo::new(move |_| {
        ed.report
            .with(|r| (r.errors().count(), r.warnings().count()))
    });
    view! {
        <section class="panel summary" aria-labelledby="summary-title" data-test="findings-summary">
            <div class="panel-header">
                <h2 id="summary-title">"Validation"</h2>
                <p class="summary-counts" aria-live="polite">
                    <span class="count count-error" data-test="error-count">
                        {move || counts.get().0}
                    </span>
                    " errors · "
                    <span class="count count-warning" data-test="warning-count">
                        {move || counts.get().1}
                    </span>
                    " warnings"
                </p>
            </div>
            {move || {
                let findings = ed.report.with(|r| r.findings.clone());
                if findings.is_empty() {
                    return view! {
                        <p class="summary-empty" data-test="findings-none">
                            "No findings: the policy is valid."
                        </p>
                    }
                        .into_any();
                }
                view! {
                    <ul class="findings">
                        {findings
                            .into_iter()
                            .map(|f| {
                                let (class, label) = match f.severity {
                                    Severity::Error => ("finding finding-error", "error"),
                                    Severity::Warning => ("finding finding-warning", "warning"),
                                };
                                let path = f.path.clone();
                                let data_path = f.path.clone();
                                view! {
                                    <li class=class data-test="finding" data-path=data_path>
                                        <span class="finding-severity">{label}</span>
                                        <button
                                            type="button"
                                            class="link-button"
                                            title="Go to the field"
                                            on:click=move |_| focus_path(&path)
                                        >
                                            <code>{f.path}</code>
                                        </button>
                                        <span class="finding-message">{f.message}</span>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                }
                    .into_any()
            }}
        </section>
    }
    .into_any()
}

#[component]
pub fn Actions(
    ed: Doc,
    target: StoredValue<(String, String)>,
    can_edit: bool,
    can_publish: bool,
    saved: Saved,
    active_version: Signal<Option<u64>>,
    on_published: Callback<()>,
) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let dirty = saved.dirty;
    let save_result = RwSignal::new(None::<Result<String, String>>);
    let diff = RwSignal::new(None::<Result<DiffView, String>>);
    let publish_result = RwSignal::new(None::<Result<PublishOutcome, String>>);
    let message = RwSignal::new(String::new());
    let canary = RwSignal::new(String::new());
    let has_errors = Memo::new(move |_| ed.report.with(ValidationReport::has_errors));

    // Saves the editor's document as the draft; returns whether it worked.
    let save = move || async move {
        let (n, e) = target.get_value();
        let policy = ed.policy.get_untracked();
        match api::save_draft(&n, &e, &policy).await {
            Ok(draft) => {
                saved.policy.try_set(policy);
                saved.source.try_set(Source::Draft {
                    by: draft.updated_by,
                    at_ms: draft.updated_at_ms,
                });
                save_result.try_set(Some(Ok(format!(
                    "Draft saved, {}.",
                    Utc::from_millis(draft.updated_at_ms).display()
                ))));
                true
            }
            Err(error) => {
                save_result.try_set(Some(Err(describe(&error))));
                false
            }
        }
    };
    let save_action = Action::new_local(move |(): &()| async move {
        save().await;
    });
    let diff_action = Action::new_local(move |(): &()| async move {
        if can_edit && dirty.get_untracked() && !save().await {
            return;
        }
        let (n, e) = target.get_value();
        let result = api::diff(&n, &e, "active", "draft").await;
        diff.try_set(Some(result.map_err(|e| describe(&e))));
    });
    let publish_action = Action::new_local(move |request: &PublishRequest| {
        let request = request.clone();
        async move {
            let (n, e) = target.get_value();
            let result = api::publish(&n, &e, &request).await;
            if result.is_ok() {
                on_published.run(());
            }
            publish_result.try_set(Some(result.map_err(|e| describe(&e))));
        }
    });
    let busy = move || {
        save_action.pending().get() || diff_action.pending().get() || publish_action.pending().get()
    };
    let on_publish = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = message.get_untracked();
        if text.trim().is_empty() {
            publish_result.set(Some(Err(
                "Say why you publish: the message lands in the version and the audit log.".into(),
            )));
            return;
        }
        let canary_percent = match canary.get_untracked().trim() {
            "" => None,
            t => match t.parse::<u8>() {
                Ok(p) if (1..=99).contains(&p) => Some(p),
                _ => {
                    publish_result.set(Some(Err(
                        "A canary takes 1 to 99 percent of instances.".into()
                    )));
                    return;
                }
            },
        };
        publish_result.set(None);
        publish_action.dispatch(PublishRequest {
            message: text.trim().to_owned(),
            canary_percent,
            document: Some(ed.policy.get_untracked()),
        });
    };

    view! {
        <section class="panel actions" aria-labelledby="actions-title">
            <div class="panel-header">
                <h2 id="actions-title">"Save and publish"</h2>
            </div>
            <div class="actions-body">
                <div class="button-row">
                    {can_edit
                        .then(|| {
                            view! {
                                <button
                                    type="button"
                                    class="button"
                                    data-test="save-draft"
                                    disabled=move || busy() || !hydrated.get()
                                    on:click=move |_| {
                                        save_action.dispatch(());
                                    }
                                >
                                    "Save draft"
                                </button>
                            }
                        })}
                    <button
                        type="button"
                        class="button"
                        data-test="diff-button"
                        disabled=move || busy() || !hydrated.get() || active_version.get().is_none()
                        title=move || {
                            if active_version.get().is_none() { "Nothing is published yet" } else { "" }
                        }
                        on:click=move |_| {
                            diff_action.dispatch(());
                        }
                    >
                        {move || {
                            if can_edit && dirty.get() { "Save and diff against active" } else { "Diff against active" }
                        }}
                    </button>
                </div>
                <p class="action-result" data-test="save-result" role="status">
                    {move || match save_result.get() {
                        Some(Ok(m)) => view! { <span class="ok">{m}</span> }.into_any(),
                        Some(Err(m)) => view! { <span class="bad">{m}</span> }.into_any(),
                        None => ().into_any(),
                    }}
                </p>
                {move || {
                    diff.get()
                        .map(|d| match d {
                            Ok(view) => {
                                view! {
                                    <h3 class="subheading">
                                        {format!("From {} to {}", view.from, view.to)}
                                    </h3>
                                    <DiffList changes=view.changes />
                                }
                                    .into_any()
                            }
                            Err(m) => view! { <p class="alert alert-error" data-test="diff-error">{m}</p> }.into_any(),
                        })
                }}
                {can_publish
                    .then(|| {
                        view! {
                            <form class="publish-form" novalidate on:submit=on_publish>
                                <div class="cell-field">
                                    <label for="publish-message">"Why (for the version and the audit log)"</label>
                                    <input
                                        id="publish-message"
                                        type="text"
                                        autocomplete="off"
                                        data-test="publish-message"
                                        prop:value=move || message.get()
                                        on:input=move |ev| message.set(event_target_value(&ev))
                                    />
                                </div>
                                <div class="cell-field">
                                    <label for="publish-canary">"Canary share (%, optional)"</label>
                                    <input
                                        id="publish-canary"
                                        type="text"
                                        inputmode="numeric"
                                        class="numeric"
                                        autocomplete="off"
                                        placeholder="all instances"
                                        data-test="publish-canary"
                                        prop:value=move || canary.get()
                                        on:input=move |ev| canary.set(event_target_value(&ev))
                                    />
                                </div>
                                <button
                                    type="submit"
                                    class="button button-primary button-block"
                                    data-test="publish-button"
                                    disabled=move || has_errors.get() || busy() || !hydrated.get()
                                    aria-describedby="publish-hint"
                                >
                                    {move || if publish_action.pending().get() { "Publishing…" } else { "Publish" }}
                                </button>
                                <p id="publish-hint" class="field-hint">
                                    {move || {
                                        if has_errors.get() {
                                            "Fix every error to publish. Warnings do not block."
                                        } else {
                                            "Publishes what the editor shows. High-risk services and loosened invariants wait for an approver."
                                        }
                                    }}
                                </p>
                            </form>
                        }
                    })}
                <div class="action-result" data-test="publish-result" role="status" aria-live="polite">
                    {move || match publish_result.get() {
                        Some(Ok(outcome)) => view! { <p class="alert alert-success">{outcome_text(&outcome)}</p> }.into_any(),
                        Some(Err(m)) => view! { <p class="alert alert-error">{m}</p> }.into_any(),
                        None => ().into_any(),
                    }}
                </div>
            </div>
        </section>
    }
    .into_any()
}

/// An API error as a sentence, naming the field the server blames.
pub fn describe(error: &ApiError) -> String {
    match error.field() {
        Some(field) if !field.is_empty() => format!("{} (at {field})", error.message()),
        _ => error.message(),
    }
}
