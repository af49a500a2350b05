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

/// A table of one of the two lists whose entries name a component and a
/// failure (must fail closed, may degrade).
macro_rules! failure_list {
    ($name:ident, $item:ty, $list:ident, $noun:literal, $empty:literal) => {
        static $name: Table<$item> = Table {
            test: concat!("editor-", stringify!($list)),
            row_test: "",
            key_title: "",
            noun: $noun,
            keys: |p| lists(p).map_or_else(Vec::new, |i| list_keys(&i.$list)),
            path: |k| format!(concat!("invariants.", stringify!($list), ".{}"), k),
            name: row_number,
            find: |p, k| lists(p)?.$list.get(k.parse::<usize>().ok()?),
            find_mut: |p, k| lists_mut(p)?.$list.get_mut(k.parse::<usize>().ok()?),
            remove: |p, k| remove_entry(p, |i| remove_at(&mut i.$list, k)),
            row_issues: &[],
            columns: &[
                text!(new, "Id", id),
                component!(),
                failure!(),
                text!(below, "Description", description),
            ],
            empty: $empty,
            extra: None,
            footer: None,
        };
    };
}

failure_list!(
    FAIL_CLOSED,
    FailClosed,
    must_fail_closed,
    "fail-closed entry",
    "Nothing must fail closed."
);
failure_list!(
    MAY_DEGRADE,
    MayDegrade,
    may_degrade,
    "may-degrade entry",
    "Nothing is declared as allowed to degrade."
);

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
