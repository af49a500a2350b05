//! Dead letters: which kinds of work have side effects, which actions on a
//! dead letter need an approver, and how long decisions and their
//! execution may take.

use super::options::APPROVAL_NEEDS;
use crate::components::fields::{
    Choice, Doc, Field, Getter, OptionalSection, Setter, from_wire, in_present, in_section, num,
    show_opt, wire,
};
use crate::components::keyed_table::{AddNamed, Column, Input, KeyedTable, Table, map_keys, same};
use leptos::prelude::*;
use shared::policy::{DeadLetterPolicy, Policy, TaskType};
use shared::protocol::DlqActionKind;
use std::sync::Arc;

static TASK_TYPES: Table<TaskType> = Table {
    test: "editor-dlq-task-types",
    row_test: "editor-task-type",
    key_title: "Task type",
    noun: "",
    keys: |p| {
        p.dead_letters
            .as_ref()
            .map(|d| map_keys(&d.task_types))
            .unwrap_or_default()
    },
    path: |k| format!("dead_letters.task_types.{k}"),
    name: same,
    find: |p, k| p.dead_letters.as_ref()?.task_types.get(k),
    find_mut: |p, k| p.dead_letters.as_mut()?.task_types.get_mut(k),
    remove: |p, k| {
        let _ = in_section(&mut p.dead_letters, |d| {
            d.task_types.remove(k);
            Ok(())
        });
    },
    row_issues: &[],
    columns: &[Column::new(
        "Side effects",
        "side_effects",
        Input::Check(|t| t.side_effects, |t, on| t.side_effects = on),
    )],
    empty: "No task types declared: every one counts as having side effects.",
    extra: None,
    footer: None,
};

/// A lens on whether `kind` needs an approver: a wire name, or empty for
/// the risk tier's default.
fn approval(kind: DlqActionKind) -> (Getter, Setter) {
    (
        Arc::new(move |p: &Policy| {
            p.dead_letters
                .as_ref()
                .and_then(|d| d.approval.get(&kind))
                .map(wire)
                .unwrap_or_default()
        }),
        Arc::new(move |p: &mut Policy, t: &str| {
            let need = if t.is_empty() {
                None
            } else {
                Some(from_wire(t)?)
            };
            in_present(&mut p.dead_letters, |d| {
                match need {
                    Some(need) => d.approval.insert(kind, need),
                    None => d.approval.remove(&kind),
                };
                Ok(())
            })
        }),
    )
}

/// One choice per action kind.
fn approvals(ed: Doc) -> impl IntoView {
    DlqActionKind::ALL
        .into_iter()
        .map(|kind| {
            view! {
                <Choice
                    ed
                    path=format!("dead_letters.approval.{}", kind.as_str())
                    label=format!("{} needs an approver", kind.label())
                    lens=approval(kind)
                    options=APPROVAL_NEEDS
                    visible_label=true
                />
            }
        })
        .collect_view()
}

/// A number of the section, such as a time limit in seconds.
fn limit(
    ed: Doc,
    field: &'static str,
    label: &'static str,
    get: fn(&DeadLetterPolicy) -> u64,
    set: fn(&mut DeadLetterPolicy, u64),
) -> impl IntoView {
    let lens: (Getter, Setter) = (
        Arc::new(move |p: &Policy| show_opt(p.dead_letters.as_ref().map(get))),
        Arc::new(move |p: &mut Policy, t: &str| {
            let n = num(t)?;
            in_present(&mut p.dead_letters, |d| {
                set(d, n);
                Ok(())
            })
        }),
    );
    view! {
        <Field
            ed
            path=format!("dead_letters.{field}")
            label
            lens
            numeric=true
            visible_label=true
        />
    }
}

#[component]
pub fn DeadLettersSection(ed: Doc) -> impl IntoView {
    view! {
        <OptionalSection
            ed
            id="dead_letters"
            title="Dead letters"
            about="Which actions on failed work need a second person, and how long a decision and its execution may take. By default a high or regulated service needs an approver for every action; elsewhere only for work with side effects."
            switch="Set dead-letter rules"
            present=|p| p.dead_letters.is_some()
            add=|p| p.dead_letters = Some(DeadLetterPolicy::default())
            remove=|p| p.dead_letters = None
        >
            <h3 class="subheading" id="dlq-task-types-title">
                "Task types"
            </h3>
            <KeyedTable ed table=&TASK_TYPES labelled_by="dlq-task-types-title" />
            <AddNamed
                id="add-task-type"
                label="New task type"
                button="Add task type"
                placeholder="e.g. case_review"
                on_add=Callback::new(move |key: String| {
                    if ed.policy.with_untracked(|p| (TASK_TYPES.find)(p, &key).is_some()) {
                        return Err(format!("`{key}` already exists"));
                    }
                    ed.edit(|p| {
                        let _ = in_present(&mut p.dead_letters, |d| {
                            d.task_types.insert(key, TaskType { side_effects: true });
                            Ok(())
                        });
                    });
                    Ok(())
                })
            />
            <h3 class="subheading">"Approval and timing"</h3>
            <div class="form-grid">
                {approvals(ed)}
                {limit(ed, "approval_expires_after_s", "A request or approval lapses after (s)", |d| d.approval_expires_after_s, |d, n| d.approval_expires_after_s = n)}
                {limit(ed, "ack_timeout_s", "Uncertain without an acknowledgement after (s)", |d| d.ack_timeout_s, |d, n| d.ack_timeout_s = n)}
                {limit(ed, "redrive_per_s", "Redrives at most (per second)", |d| d.redrive_per_s.into(), |d, n| d.redrive_per_s = n.try_into().unwrap_or(u32::MAX))}
            </div>
        </OptionalSection>
    }
    .into_any()
}
