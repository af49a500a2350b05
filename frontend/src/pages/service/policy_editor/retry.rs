//! Retries per dependency, and the service-wide retry budget.

use super::options::{ERROR_CLASSES, JITTERS};
use crate::components::fields::{
    CheckList, Doc, Field, OptionalSection, from_wire, num, num32, toggle_in, top, wire,
};
use crate::components::keyed_table::{
    AddForDependency, Column, Input, KeyedTable, Row, Table, map_keys, same,
};
use leptos::prelude::*;
use shared::policy::{ErrorClass, Jitter, RetryBudget, RetryPolicy};
use std::collections::BTreeMap;
use std::sync::Arc;

static RETRY: Table<RetryPolicy> = Table {
    test: "editor-retry",
    row_test: "editor-retry",
    key_title: "Dependency",
    noun: "",
    keys: |p| map_keys(&p.retry),
    path: |k| format!("retry.{k}"),
    name: same,
    find: |p, k| p.retry.get(k),
    find_mut: |p, k| p.retry.get_mut(k),
    remove: |p, k| {
        p.retry.remove(k);
    },
    row_issues: &[("operations", true)],
    columns: &[
        Column::new(
            "Max attempts",
            "max_attempts",
            Input::Number(
                |r| r.max_attempts.to_string(),
                |r, t| {
                    r.max_attempts = num32(t)?;
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Base delay (ms)",
            "base_delay_ms",
            Input::Number(
                |r| r.base_delay_ms.to_string(),
                |r, t| {
                    r.base_delay_ms = num(t)?;
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Max delay (ms)",
            "max_delay_ms",
            Input::Number(
                |r| r.max_delay_ms.to_string(),
                |r, t| {
                    r.max_delay_ms = num(t)?;
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Jitter",
            "jitter",
            Input::Choice(
                |r| wire(&r.jitter),
                |r, t| {
                    r.jitter = from_wire(t)?;
                    Ok(())
                },
                JITTERS,
            ),
        ),
        Column::new("Retry on", "retry_on", Input::Custom(retry_on)),
    ],
    empty: "No retry policies: every call is tried once.",
    extra: None,
    footer: None,
};

/// The retried error classes, as checkboxes.
fn retry_on(ed: Doc, row: &Row) -> AnyView {
    let (k1, k2) = (row.key.clone(), row.key.clone());
    view! {
        <CheckList
            ed
            path=format!("{}.retry_on", row.path)
            label=row.label("Retry on")
            options=ERROR_CLASSES
            get=Arc::new(move |p| {
                p.retry.get(&k1).map(|r| r.retry_on.iter().map(wire).collect()).unwrap_or_default()
            })
            set=Arc::new(move |p, name, on| {
                if let Some(r) = p.retry.get_mut(&k2) {
                    toggle_in(&mut r.retry_on, name, on);
                }
            })
            muted=not_retryable
        />
    }
    .into_any()
}

/// Error classes a retry cannot help, shown greyed out.
fn not_retryable(name: &str) -> bool {
    from_wire::<ErrorClass>(name).is_ok_and(|c| !c.is_retryable())
}

#[component]
pub fn RetrySection(ed: Doc, deps: Memo<Vec<String>>) -> impl IntoView {
    let keys = Memo::new(move |_| ed.policy.with(|p| map_keys(&p.retry)));
    view! {
        <crate::components::fields::Section
            ed
            id="retry"
            title="Retries"
            about="Per dependency: attempts (the first included), exponential backoff with jitter, and which error classes are worth another try."
        >
            <KeyedTable ed table=&RETRY />
            <AddForDependency
                deps
                taken=keys
                id="add-retry"
                button="Add retry policy"
                on_add=Callback::new(move |dep: String| {
                    ed.edit(|p| {
                        p.retry.entry(dep).or_insert_with(default_retry);
                    })
                })
            />
        </crate::components::fields::Section>
    }
    .into_any()
}

/// A retry policy as one is first added: three tries on transient errors.
pub fn default_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay_ms: 100,
        max_delay_ms: 2_000,
        jitter: Jitter::Full,
        retry_on: vec![
            ErrorClass::Timeout,
            ErrorClass::Connection,
            ErrorClass::Unavailable,
        ],
        operations: BTreeMap::new(),
    }
}

#[component]
pub fn RetryBudgetSection(ed: Doc) -> impl IntoView {
    view! {
        <OptionalSection
            ed
            id="retry_budget"
            title="Retry budget"
            about="Caps retries across the whole service, so that a failing dependency does not get more traffic while it fails."
            switch="Set a retry budget"
            present=|p| p.retry_budget.is_some()
            add=|p| {
                p.retry_budget = Some(RetryBudget {
                    ratio_percent: 10,
                    min_per_second: 1,
                })
            }
            remove=|p| p.retry_budget = None
        >
            <div class="form-grid">
                <Field
                    ed
                    path="retry_budget.ratio_percent"
                    label="Retries as % of first attempts"
                    lens=top(
                        |p| p.retry_budget.as_ref().map(|b| b.ratio_percent.to_string()).unwrap_or_default(),
                        |p, t| {
                            let n = num32(t)?;
                            if let Some(b) = p.retry_budget.as_mut() {
                                b.ratio_percent = n;
                            }
                            Ok(())
                        },
                    )
                    numeric=true
                    visible_label=true
                />
                <Field
                    ed
                    path="retry_budget.min_per_second"
                    label="Retries per second always allowed"
                    lens=top(
                        |p| p.retry_budget.as_ref().map(|b| b.min_per_second.to_string()).unwrap_or_default(),
                        |p, t| {
                            let n = num32(t)?;
                            if let Some(b) = p.retry_budget.as_mut() {
                                b.min_per_second = n;
                            }
                            Ok(())
                        },
                    )
                    numeric=true
                    visible_label=true
                />
            </div>
        </OptionalSection>
    }
    .into_any()
}
