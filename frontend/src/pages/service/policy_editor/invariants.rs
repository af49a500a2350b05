//! The invariants: what must fail closed, what may degrade, and what must
//! never be done. Loosening one makes a publish need an approver.

use super::options::{FAILURE_TYPES, PROHIBITIONS};
use crate::components::fields::{Doc, Section, from_wire, in_section, opt_text, wire};
use crate::components::keyed_table::{
    AddButton, Column, Input, KeyedTable, Table, list_keys, remove_at, row_number,
};
use leptos::prelude::*;
use shared::policy::{
    FailClosed, FailureType, Invariants, MayDegrade, MustNotDo, Policy, Prohibition,
};

fn lists(p: &Policy) -> Option<&Invariants> {
    p.invariants.as_ref()
}

fn lists_mut(p: &mut Policy) -> Option<&mut Invariants> {
    p.invariants.as_mut()
}

/// Removes an entry, and the section with its last one.
fn remove_entry(p: &mut Policy, f: impl FnOnce(&mut Invariants)) {
    let _ = in_section(&mut p.invariants, |i| {
        f(i);
        Ok(())
    });
}

macro_rules! text {
    ($ctor:ident, $title:literal, $field:ident) => {
        Column::$ctor(
            $title,
            stringify!($field),
            Input::Text(
                |e| e.$field.clone(),
                |e, t| {
                    e.$field = t.trim().to_owned();
                    Ok(())
                },
            ),
        )
    };
}

macro_rules! component {
    () => {
        Column::new(
            "Component",
            "component",
            Input::Text(
                |e| e.component.clone().unwrap_or_default(),
                |e, t| {
                    e.component = opt_text(t.trim());
                    Ok(())
                },
            ),
        )
    };
}

macro_rules! failure {
    () => {
        Column::new(
            "Failure",
            "failure",
            Input::Choice(
                |e| wire(&e.failure),
                |e, t| {
                    e.failure = from_wire(t)?;
                    Ok(())
                },
                FAILURE_TYPES,
            ),
        )
    };
}

static FAIL_CLOSED: Table<FailClosed> = Table {
    test: "editor-must-fail-closed",
    row_test: "",
    key_title: "",
    noun: "fail-closed entry",
    keys: |p| lists(p).map_or_else(Vec::new, |i| list_keys(&i.must_fail_closed)),
    path: |k| format!("invariants.must_fail_closed.{k}"),
    name: row_number,
    find: |p, k| lists(p)?.must_fail_closed.get(k.parse::<usize>().ok()?),
    find_mut: |p, k| {
        lists_mut(p)?
            .must_fail_closed
            .get_mut(k.parse::<usize>().ok()?)
    },
    remove: |p, k| remove_entry(p, |i| remove_at(&mut i.must_fail_closed, k)),
    row_issues: &[],
    columns: &[
        text!(new, "Id", id),
        component!(),
        failure!(),
        text!(below, "Description", description),
    ],
    empty: "Nothing must fail closed.",
    extra: None,
    footer: None,
};

static MAY_DEGRADE: Table<MayDegrade> = Table {
    test: "editor-may-degrade",
    row_test: "",
    key_title: "",
    noun: "may-degrade entry",
    keys: |p| lists(p).map_or_else(Vec::new, |i| list_keys(&i.may_degrade)),
    path: |k| format!("invariants.may_degrade.{k}"),
    name: row_number,
    find: |p, k| lists(p)?.may_degrade.get(k.parse::<usize>().ok()?),
    find_mut: |p, k| lists_mut(p)?.may_degrade.get_mut(k.parse::<usize>().ok()?),
    remove: |p, k| remove_entry(p, |i| remove_at(&mut i.may_degrade, k)),
    row_issues: &[],
    columns: &[
        text!(new, "Id", id),
        component!(),
        failure!(),
        text!(below, "Description", description),
    ],
    empty: "Nothing is declared as allowed to degrade.",
    extra: None,
    footer: None,
};

static MUST_NOT_DO: Table<MustNotDo> = Table {
    test: "editor-must-not-do",
    row_test: "",
    key_title: "",
    noun: "prohibition",
    keys: |p| lists(p).map_or_else(Vec::new, |i| list_keys(&i.must_not_do)),
    path: |k| format!("invariants.must_not_do.{k}"),
    name: row_number,
    find: |p, k| lists(p)?.must_not_do.get(k.parse::<usize>().ok()?),
    find_mut: |p, k| lists_mut(p)?.must_not_do.get_mut(k.parse::<usize>().ok()?),
    remove: |p, k| remove_entry(p, |i| remove_at(&mut i.must_not_do, k)),
    row_issues: &[],
    columns: &[
        text!(new, "Id", id),
        Column::new(
            "Kind",
            "kind",
            Input::Choice(
                |e| wire(&e.kind),
                |e, t| {
                    e.kind = from_wire(t)?;
                    Ok(())
                },
                PROHIBITIONS,
            ),
        ),
        text!(below, "Description", description),
    ],
    empty: "No prohibitions.",
    extra: None,
    footer: None,
};

/// Adds an entry, creating the section with its first one.
fn add_entry(p: &mut Policy, f: impl FnOnce(&mut Invariants)) {
    let _ = in_section(&mut p.invariants, |i| {
        f(i);
        Ok(())
    });
}

/// One of the three lists: its heading, its table and its add button.
#[component]
fn InvariantList<T: Send + Sync + 'static>(
    ed: Doc,
    id: &'static str,
    title: &'static str,
    table: &'static Table<T>,
    add_test: &'static str,
    add_label: &'static str,
    add: fn(&mut Policy),
) -> impl IntoView {
    view! {
        <h3 class="subheading" id=id>
            {title}
        </h3>
        <KeyedTable ed table labelled_by=id />
        <AddButton ed test=add_test label=add_label add />
    }
    .into_any()
}

#[component]
pub fn InvariantsSection(ed: Doc) -> impl IntoView {
    view! {
        <Section
            ed
            id="invariants"
            title="Invariants"
            about="Validation checks the rest of the policy against these, and a publish that loosens one needs an approver."
        >
            <InvariantList
                ed
                id="fail-closed-title"
                title="Must fail closed"
                table=&FAIL_CLOSED
                add_test="add-fail-closed"
                add_label="Add fail-closed entry"
                add=|p| {
                    add_entry(p, |i| {
                        i.must_fail_closed.push(FailClosed {
                            id: format!("fail-closed-{}", i.must_fail_closed.len() + 1),
                            component: None,
                            failure: FailureType::Any,
                            description: "Describe what must stop.".into(),
                        })
                    })
                }
            />
            <InvariantList
                ed
                id="may-degrade-title"
                title="May degrade"
                table=&MAY_DEGRADE
                add_test="add-may-degrade"
                add_label="Add may-degrade entry"
                add=|p| {
                    add_entry(p, |i| {
                        i.may_degrade.push(MayDegrade {
                            id: format!("may-degrade-{}", i.may_degrade.len() + 1),
                            component: None,
                            failure: FailureType::Any,
                            description: "Describe what may degrade, and when.".into(),
                        })
                    })
                }
            />
            <InvariantList
                ed
                id="must-not-do-title"
                title="Must not do"
                table=&MUST_NOT_DO
                add_test="add-must-not-do"
                add_label="Add prohibition"
                add=|p| {
                    add_entry(p, |i| {
                        i.must_not_do.push(MustNotDo {
                            id: format!("must-not-{}", i.must_not_do.len() + 1),
                            kind: Prohibition::Other,
                            description: "Describe what must never happen.".into(),
                        })
                    })
                }
            />
        </Section>
    }
    .into_any()
}
