//! Admission control and load shedding: which work is still accepted, and
//! how, when the service is under pressure.

use super::options::{ADMISSION_MODES, PRIORITY_CLASSES, SIGNALS};
use crate::components::fields::{
    Choice, Doc, Field, OptionalSection, from_wire, in_present, lens, num, num32, opt_text, top,
    wire,
};
use crate::components::keyed_table::{
    AddButton, Column, Input, KeyedTable, Row, Table, list_keys, remove_at, row_number,
};
use leptos::prelude::*;
use shared::policy::{Admission, AdmissionMode, Policy, PriorityClass, Signal, Trigger};
use std::collections::BTreeMap;

fn find<'a>(p: &'a Policy, k: &str) -> Option<&'a Trigger> {
    p.admission.as_ref()?.triggers.get(k.parse::<usize>().ok()?)
}

fn find_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut Trigger> {
    p.admission
        .as_mut()?
        .triggers
        .get_mut(k.parse::<usize>().ok()?)
}

const fn text_below(
    title: &'static str,
    field: &'static str,
    get: fn(&Trigger) -> String,
    set: fn(&mut Trigger, &str) -> Result<(), String>,
) -> Column<Trigger> {
    Column::below(title, field, Input::Text(get, set))
}

static TRIGGERS: Table<Trigger> = Table {
    test: "editor-admission-triggers",
    row_test: "",
    key_title: "",
    noun: "trigger",
    keys: |p| {
        p.admission
            .as_ref()
            .map_or_else(Vec::new, |a| list_keys(&a.triggers))
    },
    path: |k| format!("admission.triggers.{k}"),
    name: row_number,
    find,
    find_mut,
    remove: |p, k| {
        if let Some(a) = p.admission.as_mut() {
            remove_at(&mut a.triggers, k);
        }
    },
    row_issues: &[],
    columns: &[
        Column::new(
            "Id",
            "id",
            Input::Text(
                |t| t.id.clone(),
                |t, text| {
                    t.id = text.trim().to_owned();
                    Ok(())
                },
            ),
        ),
        Column::new("When", "signal", Input::Custom(signal_cell)),
        Column::below("Mode per class", "modes", Input::Custom(modes_cell)),
        text_below(
            "What a shed or queued caller is told",
            "user_message",
            |t| t.user_message.clone().unwrap_or_default(),
            |t, text| {
                t.user_message = opt_text(text);
                Ok(())
            },
        ),
        text_below(
            "Alert rule",
            "alert",
            |t| t.alert.clone().unwrap_or_default(),
            |t, text| {
                t.alert = opt_text(text);
                Ok(())
            },
        ),
        text_below(
            "Runbook",
            "runbook",
            |t| t.runbook.clone().unwrap_or_default(),
            |t, text| {
                t.runbook = opt_text(text);
                Ok(())
            },
        ),
    ],
    empty: "No triggers: every request is admitted as usual.",
    extra: None,
    footer: None,
};

fn signal_kind(signal: &Signal) -> &'static str {
    match signal {
        Signal::QueueDepth { .. } => "queue_depth",
        Signal::DependencyP95 { .. } => "dependency_p95",
        Signal::BreakerOpen { .. } => "breaker_open",
        Signal::CostNearLimit { .. } => "cost_near_limit",
    }
}

/// A signal of another kind, keeping the dependency it names.
fn switch_signal(kind: &str, current: &Signal) -> Signal {
    let dependency = match current {
        Signal::QueueDepth { dependency, .. } => dependency.clone(),
        Signal::DependencyP95 { dependency, .. } | Signal::BreakerOpen { dependency } => {
            Some(dependency.clone())
        }
        Signal::CostNearLimit { .. } => None,
    };
    match kind {
        "queue_depth" => Signal::QueueDepth {
            above: 100,
            dependency,
        },
        "dependency_p95" => Signal::DependencyP95 {
            dependency: dependency.unwrap_or_default(),
            above_ms: 2_000,
        },
        "breaker_open" => Signal::BreakerOpen {
            dependency: dependency.unwrap_or_default(),
        },
        _ => Signal::CostNearLimit { percent: 80 },
    }
}

/// The signal's kind and its numbers.
fn signal_cell(ed: Doc, row: &Row) -> AnyView {
    let (key, path) = (row.key.clone(), row.path.clone());
    let k = key.clone();
    let kind = Memo::new(move |_| {
        ed.policy
            .with(|p| find(p, &k).map_or("", |t| signal_kind(&t.signal)))
    });
    let choice = lens(
        &key,
        find,
        find_mut,
        |t| signal_kind(&t.signal).to_owned(),
        |t, text| {
            t.signal = switch_signal(text, &t.signal);
            Ok(())
        },
    );
    let params = move || {
        let field = |field: &str, label: &'static str, numeric: bool, get, set| {
            view! {
                <Field
                    ed
                    path=format!("{path}.signal.{field}")
                    label
                    lens=lens(&key, find, find_mut, get, set)
                    numeric
                    visible_label=true
                />
            }
        };
        let dependency = field(
            "dependency",
            "Dependency",
            false,
            |t| match &t.signal {
                Signal::QueueDepth { dependency, .. } => dependency.clone().unwrap_or_default(),
                Signal::DependencyP95 { dependency, .. } | Signal::BreakerOpen { dependency } => {
                    dependency.clone()
                }
                Signal::CostNearLimit { .. } => String::new(),
            },
            |t, text| {
                match &mut t.signal {
                    Signal::QueueDepth { dependency, .. } => *dependency = opt_text(text.trim()),
                    Signal::DependencyP95 { dependency, .. }
                    | Signal::BreakerOpen { dependency } => *dependency = text.trim().to_owned(),
                    Signal::CostNearLimit { .. } => {}
                }
                Ok(())
            },
        );
        match kind.get() {
            "queue_depth" => view! {
                {field(
                    "above",
                    "Deeper than",
                    true,
                    |t| match t.signal {
                        Signal::QueueDepth { above, .. } => above.to_string(),
                        _ => String::new(),
                    },
                    |t, text| {
                        let n = num(text)?;
                        if let Signal::QueueDepth { above, .. } = &mut t.signal {
                            *above = n;
                        }
                        Ok(())
                    },
                )}
                {dependency}
            }
            .into_any(),
            "dependency_p95" => view! {
                {dependency}
                {field(
                    "above_ms",
                    "p95 above (ms)",
                    true,
                    |t| match t.signal {
                        Signal::DependencyP95 { above_ms, .. } => above_ms.to_string(),
                        _ => String::new(),
                    },
                    |t, text| {
                        let n = num(text)?;
                        if let Signal::DependencyP95 { above_ms, .. } = &mut t.signal {
                            *above_ms = n;
                        }
                        Ok(())
                    },
                )}
            }
            .into_any(),
            "breaker_open" => dependency.into_any(),
            _ => field(
                "percent",
                "Share of the cost budget (%)",
                true,
                |t| match t.signal {
                    Signal::CostNearLimit { percent } => percent.to_string(),
                    _ => String::new(),
                },
                |t, text| {
                    let n = num32(text)?;
                    if let Signal::CostNearLimit { percent } = &mut t.signal {
                        *percent = n;
                    }
                    Ok(())
                },
            )
            .into_any(),
        }
    };
    view! {
        <div class="stack">
            <Choice ed path=format!("{}.signal", row.path) label=row.label("When") lens=choice options=SIGNALS />
            <div class="form-row">{params}</div>
        </div>
    }
    .into_any()
}

/// One choice per priority class; a class at `normal` is left out of the
/// document.
fn modes_cell(ed: Doc, row: &Row) -> AnyView {
    let fields = PRIORITY_CLASSES
        .iter()
        .map(|(class, words)| {
            let key = format!("{}/{class}", row.key);
            let (k1, k2) = (key.clone(), key);
            let get = std::sync::Arc::new(move |p: &Policy| {
                let (row, class) = k1.split_once('/').unwrap_or_default();
                find(p, row)
                    .and_then(|t| {
                        t.modes
                            .get(&from_wire::<PriorityClass>(class).ok()?)
                            .copied()
                    })
                    .map_or_else(|| "normal".to_owned(), |m| wire(&m))
            }) as crate::components::fields::Getter;
            let set = std::sync::Arc::new(move |p: &mut Policy, text: &str| {
                let (row, class) = k2.split_once('/').unwrap_or_default();
                let (Some(class), Ok(mode)) = (
                    from_wire::<PriorityClass>(class).ok(),
                    from_wire::<AdmissionMode>(text),
                ) else {
                    return Ok(());
                };
                if let Some(t) = find_mut(p, row) {
                    if mode == AdmissionMode::Normal {
                        t.modes.remove(&class);
                    } else {
                        t.modes.insert(class, mode);
                    }
                }
                Ok(())
            }) as crate::components::fields::Setter;
            view! {
                <Choice
                    ed
                    path=format!("{}.modes.{class}", row.path)
                    label=*words
                    lens=(get, set)
                    options=ADMISSION_MODES
                    visible_label=true
                />
            }
        })
        .collect_view();
    view! {
        <fieldset class="row-below-group">
            <legend>{row.label("Mode per class")}</legend>
            <div class="row-below">{fields}</div>
        </fieldset>
    }
    .into_any()
}

#[component]
pub fn AdmissionSection(ed: Doc) -> impl IntoView {
    view! {
        <OptionalSection
            ed
            id="admission"
            title="Admission control"
            about="Load shedding by priority class: when a trigger fires, each class is served normally, degraded, queued or rejected. When several fire, the strictest mode wins."
            switch="Control admission"
            present=|p| p.admission.is_some()
            add=|p| p.admission = Some(Admission::default())
            remove=|p| p.admission = None
        >
            <div class="form-grid">
                <Choice
                    ed
                    path="admission.default_class"
                    label="Class of a request that names none"
                    lens=top(
                        |p| p.admission.as_ref().map(|a| wire(&a.default_class)).unwrap_or_default(),
                        |p, t| {
                            let class = from_wire(t)?;
                            in_present(&mut p.admission, |a| {
                                a.default_class = class;
                                Ok(())
                            })
                        },
                    )
                    options=PRIORITY_CLASSES
                    visible_label=true
                />
            </div>
            <h3 class="subheading" id="triggers-title">
                "Triggers"
            </h3>
            <KeyedTable ed table=&TRIGGERS labelled_by="triggers-title" />
            <AddButton
                ed
                test="add-trigger"
                label="Add trigger"
                add=|p| {
                    if let Some(a) = p.admission.as_mut() {
                        let n = a.triggers.len() + 1;
                        a.triggers.push(Trigger {
                            id: format!("trigger-{n}"),
                            signal: Signal::QueueDepth { above: 100, dependency: None },
                            modes: BTreeMap::from([
                                (PriorityClass::BatchEval, AdmissionMode::Rejected),
                                (PriorityClass::OptionalEnrichment, AdmissionMode::Rejected),
                            ]),
                            user_message: None,
                            alert: None,
                            runbook: None,
                        });
                    }
                }
            />
        </OptionalSection>
    }
    .into_any()
}
