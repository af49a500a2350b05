//! The pieces the alerts page's forms share: a labelled field that shows
//! the server's complaint about it, and the complaint about the whole form.
//! The forms only appear after a click, so they are drawn by the hydrated
//! browser and their fields live in signals.

use crate::api::ApiError;
use crate::layout::FieldBlock;
use leptos::prelude::*;

/// Why the last submit was refused: the field the server blamed (its path
/// in the request, such as `runbook` or `scope.service`), and its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn of(error: &ApiError) -> Self {
        Problem {
            field: error.field().map(str::to_owned),
            message: error.message(),
        }
    }
}

/// The server's words about `field`, while it blames that field.
pub fn error_for(
    problem: RwSignal<Option<Problem>>,
    field: &'static str,
) -> Signal<Option<String>> {
    Signal::derive(move || {
        problem.with(|p| match p {
            Some(p) if p.field.as_deref() == Some(field) => Some(p.message.clone()),
            _ => None,
        })
    })
}

/// A complaint that no field of the form shows: about the whole request,
/// or about a field the form does not have.
#[component]
pub fn FormError(
    problem: RwSignal<Option<Problem>>,
    /// The fields the form shows complaints beside.
    fields: &'static [&'static str],
    test: &'static str,
) -> impl IntoView {
    view! {
        <div role="alert" data-test=test>
            {move || {
                problem
                    .get()
                    .filter(|p| p.field.as_deref().is_none_or(|f| !fields.contains(&f)))
                    .map(|p| view! { <p class="alert alert-error">{p.message}</p> })
            }}
        </div>
    }
}

/// A labelled text input; `id` is also its `data-test`.
#[component]
pub fn LineField(
    id: &'static str,
    /// The request field the server names when it refuses this one.
    field: &'static str,
    label: &'static str,
    hint: &'static str,
    value: RwSignal<String>,
    problem: RwSignal<Option<Problem>>,
    /// The input's type: `text` unless given.
    #[prop(default = "text")]
    kind: &'static str,
    #[prop(optional)] required: bool,
) -> impl IntoView {
    let error = error_for(problem, field);
    view! {
        <FieldBlock id label hint error>
            <input
                id=id
                type=kind
                autocomplete="off"
                spellcheck="false"
                data-test=id
                required=required
                aria-describedby=format!("{id}-hint {id}-error")
                aria-invalid=move || error.get().map(|_| "true")
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))
            />
        </FieldBlock>
    }
}

/// A labelled choice among `options` (wire name, label); `id` is also its
/// `data-test`.
#[component]
pub fn SelectField(
    id: &'static str,
    field: &'static str,
    label: &'static str,
    hint: &'static str,
    value: RwSignal<String>,
    options: Vec<(&'static str, &'static str)>,
    problem: RwSignal<Option<Problem>>,
) -> impl IntoView {
    let error = error_for(problem, field);
    view! {
        <FieldBlock id label hint error>
            <select
                id=id
                data-test=id
                aria-describedby=format!("{id}-hint {id}-error")
                aria-invalid=move || error.get().map(|_| "true")
                on:change=move |ev| value.set(event_target_value(&ev))
            >
                {options
                    .into_iter()
                    .map(|(wire, text)| {
                        view! {
                            <option value=wire selected=move || value.with(|v| v == wire)>
                                {text}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
        </FieldBlock>
    }
}
