//! The fallback matrix: what to do when a component fails in a given way.
//! Edited as a table of rules, and viewable as a grid of components ×
//! failure types, where a gap is easy to see.

use super::options::{DEGRADED_STATUSES, FAILURE_TYPES, FALLBACK_ACTIONS};
use crate::components::fields::{
    Choice, Doc, Field, Section, field_id, from_wire, lens, num, num32, opt_text, wire,
};
use crate::components::keyed_table::{
    AddButton, Column, Input, KeyedTable, Row, Table, list_keys, remove_at, row_number,
};
use leptos::prelude::*;
use shared::policy::{DegradedStatus, FailureType, FallbackAction, FallbackRule, Policy};
use std::collections::BTreeSet;

fn find<'a>(p: &'a Policy, k: &str) -> Option<&'a FallbackRule> {
    p.fallbacks.get(k.parse::<usize>().ok()?)
}

fn find_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut FallbackRule> {
    p.fallbacks.get_mut(k.parse::<usize>().ok()?)
}

const fn opt_column(
    title: &'static str,
    field: &'static str,
    get: fn(&FallbackRule) -> String,
    set: fn(&mut FallbackRule, &str) -> Result<(), String>,
) -> Column<FallbackRule> {
    Column::below(title, field, Input::Text(get, set))
}

static FALLBACKS: Table<FallbackRule> = Table {
    test: "editor-fallbacks",
    row_test: "",
    key_title: "",
    noun: "row",
    keys: |p| list_keys(&p.fallbacks),
    path: |k| format!("fallbacks.{k}"),
    name: row_number,
    find,
    find_mut,
    remove: |p, k| remove_at(&mut p.fallbacks, k),
    row_issues: &[],
    columns: &[
        Column::new(
            "Component",
            "component",
            Input::Text(
                |f| f.component.clone(),
                |f, t| {
                    f.component = t.to_owned();
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Failure",
            "failure",
            Input::Choice(
                |f| wire(&f.failure),
                |f, t| {
                    f.failure = from_wire(t)?;
                    Ok(())
                },
                FAILURE_TYPES,
            ),
        ),
        Column::new("Fallback", "fallback", Input::Custom(fallback_cell)),
        Column::new(
            "Status",
            "degraded_status",
            Input::Choice(
                |f| wire(&f.degraded_status),
                |f, t| {
                    f.degraded_status = from_wire(t)?;
                    Ok(())
                },
                DEGRADED_STATUSES,
            ),
        ),
        Column::new(
            "Allowed",
            "allowed",
            Input::Check(|f| f.allowed, |f, on| f.allowed = on),
        ),
        Column::new(
            "Confidence penalty (%)",
            "confidence_penalty_percent",
            Input::Number(
                |f| f.confidence_penalty_percent.to_string(),
                |f, t| {
                    f.confidence_penalty_percent = num32(t)?;
                    Ok(())
                },
            ),
        ),
        opt_column(
            "User message",
            "user_message",
            |f| f.user_message.clone().unwrap_or_default(),
            |f, t| {
                f.user_message = opt_text(t);
                Ok(())
            },
        ),
        opt_column(
            "Note",
            "note",
            |f| f.note.clone().unwrap_or_default(),
            |f, t| {
                f.note = opt_text(t);
                Ok(())
            },
        ),
        opt_column(
            "Alert rule",
            "alert",
            |f| f.alert.clone().unwrap_or_default(),
            |f, t| {
                f.alert = opt_text(t);
                Ok(())
            },
        ),
        opt_column(
            "Runbook",
            "runbook",
            |f| f.runbook.clone().unwrap_or_default(),
            |f, t| {
                f.runbook = opt_text(t);
                Ok(())
            },
        ),
    ],
    empty: "No fallbacks: failures surface as errors.",
    extra: None,
    footer: None,
};

/// A fallback action of the given kind, keeping the parameter the row
/// already has where it fits.
fn fallback_action(kind: &str, current: &FallbackAction) -> Option<FallbackAction> {
    let dependency = match current {
        FallbackAction::AlternateDependency { dependency } => dependency.clone(),
        FallbackAction::AlternateModel { model } => model.clone(),
        _ => String::new(),
    };
    Some(match kind {
        "alternate_dependency" => FallbackAction::AlternateDependency { dependency },
        "alternate_model" => FallbackAction::AlternateModel { model: dependency },
        "cached" => FallbackAction::Cached {
            max_staleness_ms: 60_000,
        },
        other => serde_json::from_value(serde_json::json!({ "kind": other })).ok()?,
    })
}

/// The action, and its one parameter when it has one.
fn fallback_cell(ed: Doc, row: &Row) -> AnyView {
    let (key, path) = (row.key.clone(), row.path.clone());
    let k = key.clone();
    let kind = Memo::new(move |_| {
        ed.policy
            .with(|p| find(p, &k).map(|f| f.fallback.name()).unwrap_or(""))
    });
    let action = lens(
        &key,
        find,
        find_mut,
        |f| f.fallback.name().to_owned(),
        |f, t| {
            if let Some(next) = fallback_action(t, &f.fallback) {
                f.fallback = next;
            }
            Ok(())
        },
    );
    let param = move || {
        let (label, field) = match kind.get() {
            "alternate_dependency" => ("Dependency", "dependency"),
            "alternate_model" => ("Model", "model"),
            "cached" => ("Max staleness (ms)", "max_staleness_ms"),
            _ => return None,
        };
        let lens = lens(
            &key,
            find,
            find_mut,
            |f| match &f.fallback {
                FallbackAction::AlternateDependency { dependency } => dependency.clone(),
                FallbackAction::AlternateModel { model } => model.clone(),
                FallbackAction::Cached { max_staleness_ms } => max_staleness_ms.to_string(),
                _ => String::new(),
            },
            |f, t| {
                match &mut f.fallback {
                    FallbackAction::AlternateDependency { dependency } => {
                        *dependency = t.to_owned()
                    }
                    FallbackAction::AlternateModel { model } => *model = t.to_owned(),
                    FallbackAction::Cached { max_staleness_ms } => *max_staleness_ms = num(t)?,
                    _ => {}
                }
                Ok(())
            },
        );
        Some(view! {
            <Field
                ed
                path=format!("{path}.fallback.{field}")
                label=label
                lens
                numeric=field == "max_staleness_ms"
                visible_label=true
            />
        })
    };
    view! {
        <div class="stack">
            <Choice
                ed
                path=format!("{}.fallback", row.path)
                label=row.label("Fallback")
                lens=action
                options=FALLBACK_ACTIONS
            />
            {param}
        </div>
    }
    .into_any()
}

fn new_rule(component: String, failure: FailureType) -> FallbackRule {
    FallbackRule {
        component,
        failure,
        fallback: FallbackAction::ExplainUnavailable {},
        degraded_status: DegradedStatus::Refused,
        user_message: Some("This is unavailable right now.".into()),
        allowed: true,
        confidence_penalty_percent: 0,
        note: None,
        alert: None,
        runbook: None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Table,
    Grid,
}

#[component]
pub fn FallbacksSection(ed: Doc) -> impl IntoView {
    let shown = RwSignal::new(View::Table);
    let button = move |v: View, label: &'static str, test: &'static str| {
        view! {
            <button
                type="button"
                class="segment"
                data-test=test
                aria-pressed=move || if shown.get() == v { "true" } else { "false" }
                on:click=move |_| shown.set(v)
            >
                {label}
            </button>
        }
    };
    view! {
        <Section
            ed
            id="fallbacks"
            title="Fallback matrix"
            about="When a component fails in a given way: what to do instead, how the answer is labelled, and what the caller is told. Unsafe fallbacks are rejected."
        >
            <div class="section-toolbar">
                <div class="segmented" role="group" aria-label="Show the matrix as">
                    {button(View::Table, "Rules", "fallbacks-view-table")}
                    {button(View::Grid, "Grid", "fallbacks-view-grid")}
                </div>
            </div>
            {move || match shown.get() {
                View::Table => view! { <KeyedTable ed table=&FALLBACKS /> }.into_any(),
                View::Grid => {
                    view! {
                        <FallbackGrid
                            ed
                            on_open=Callback::new(move |index: usize| {
                                shown.set(View::Table);
                                focus_later(field_id(&format!("fallbacks.{index}.fallback")));
                            })
                        />
                    }
                        .into_any()
                }
            }}
            <AddButton
                ed
                test="add-fallback"
                label="Add fallback row"
                add=|p| {
                    let component = p.service.dependencies.keys().next().cloned().unwrap_or_default();
                    p.fallbacks.push(new_rule(component, FailureType::Unavailable));
                }
            />
        </Section>
    }
    .into_any()
}

/// Moves the keyboard to an element once the view that holds it is drawn.
fn focus_later(id: String) {
    request_animation_frame(move || {
        if let Some(element) = document().get_element_by_id(&id) {
            use leptos::wasm_bindgen::JsCast;
            if let Ok(html) = element.dyn_into::<leptos::web_sys::HtmlElement>() {
                let _ = html.focus();
            }
        }
    });
}

/// Components (declared dependencies and every component a rule names) ×
/// failure types. Each cell lists its rules; a rule opens in the table, an
/// empty cell adds one.
#[component]
fn FallbackGrid(ed: Doc, on_open: Callback<usize>) -> impl IntoView {
    let components = Memo::new(move |_| {
        ed.policy.with(|p| {
            p.service
                .dependencies
                .keys()
                .cloned()
                .chain(p.fallbacks.iter().map(|f| f.component.clone()))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        })
    });
    let rows = move || {
        components
            .get()
            .into_iter()
            .map(|component| {
                let cells = FAILURE_TYPES
                    .iter()
                    .map(|(failure, words)| {
                        let component = component.clone();
                        view! { <td>{grid_cell(ed, component, failure, words, on_open)}</td> }
                    })
                    .collect_view();
                view! {
                    <tr>
                        <th scope="row">
                            <code>{component.clone()}</code>
                        </th>
                        {cells}
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <div class="table-scroll">
            <table class="table table-matrix" data-test="fallback-grid">
                <thead>
                    <tr>
                        <th scope="col">"Component"</th>
                        {FAILURE_TYPES
                            .iter()
                            .map(|(_, words)| view! { <th scope="col">{*words}</th> })
                            .collect_view()}
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

fn grid_cell(
    ed: Doc,
    component: String,
    failure: &'static str,
    words: &'static str,
    on_open: Callback<usize>,
) -> impl IntoView + use<> {
    let c = component.clone();
    let rules = Memo::new(move |_| {
        ed.policy.with(|p| {
            p.fallbacks
                .iter()
                .enumerate()
                .filter(|(_, f)| f.component == c && wire(&f.failure) == failure)
                .map(|(i, f)| (i, f.fallback.name(), f.allowed))
                .collect::<Vec<_>>()
        })
    });
    move || {
        let rules = rules.get();
        if rules.is_empty() {
            let component = component.clone();
            let label = format!("Add a fallback for {component} when {words}");
            return view! {
                <button
                    type="button"
                    class="link-button matrix-add"
                    aria-label=label.clone()
                    title=label
                    on:click=move |_| {
                        let component = component.clone();
                        ed.edit(move |p| {
                            if let Ok(failure) = from_wire::<FailureType>(failure) {
                                p.fallbacks.push(new_rule(component, failure));
                            }
                        })
                    }
                >
                    "+"
                </button>
            }
            .into_any();
        }
        rules
            .into_iter()
            .map(|(index, action, allowed)| {
                let words = FALLBACK_ACTIONS
                    .iter()
                    .find(|(w, _)| *w == action)
                    .map_or(action, |(_, t)| *t);
                view! {
                    <button
                        type="button"
                        class="link-button matrix-rule"
                        class:is-blocked=!allowed
                        title=format!("Open row {} in the rules", index + 1)
                        on:click=move |_| on_open.run(index)
                    >
                        {words}
                    </button>
                }
            })
            .collect_view()
            .into_any()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_kinds_switch_and_keep_their_target() {
        let current = FallbackAction::AlternateDependency {
            dependency: "lexical".into(),
        };
        assert_eq!(
            fallback_action("alternate_model", &current),
            Some(FallbackAction::AlternateModel {
                model: "lexical".into()
            })
        );
        assert_eq!(
            fallback_action("refuse", &current),
            Some(FallbackAction::Refuse {})
        );
        assert_eq!(fallback_action("nonsense", &current), None);
    }
}
