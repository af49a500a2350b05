//! The timeout budget: one deadline for the request, split over stages, and
//! per-dependency timeouts.

use crate::components::fields::{
    Doc, Field, Issues, OptionalSection, field_id, num, opt_num, show_opt, top, words,
};
use crate::components::keyed_table::{
    AddButton, Column, Input, KeyedTable, Row, Table, list_keys, remove_at, row_number,
};
use leptos::prelude::*;
use shared::policy::{Policy, Stage, Timeouts};
use std::sync::Arc;

fn stages_sum(p: &Policy, upto: usize) -> u64 {
    p.timeouts.as_ref().map_or(0, |t| {
        t.stages
            .iter()
            .take(upto)
            .fold(0_u64, |acc, s| acc.saturating_add(s.budget_ms))
    })
}

fn total(p: &Policy) -> u64 {
    p.timeouts.as_ref().map_or(0, |t| t.total_ms)
}

static STAGES: Table<Stage> = Table {
    test: "editor-stages",
    row_test: "",
    key_title: "",
    noun: "stage",
    keys: |p| {
        p.timeouts
            .as_ref()
            .map_or_else(Vec::new, |t| list_keys(&t.stages))
    },
    path: |k| format!("timeouts.stages.{k}"),
    name: row_number,
    find: |p, k| p.timeouts.as_ref()?.stages.get(k.parse::<usize>().ok()?),
    find_mut: |p, k| {
        p.timeouts
            .as_mut()?
            .stages
            .get_mut(k.parse::<usize>().ok()?)
    },
    remove: |p, k| {
        if let Some(t) = p.timeouts.as_mut() {
            remove_at(&mut t.stages, k);
        }
    },
    row_issues: &[],
    columns: &[
        Column::new(
            "Stage",
            "name",
            Input::Text(
                |s| s.name.clone(),
                |s, t| {
                    s.name = t.to_owned();
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Budget (ms)",
            "budget_ms",
            Input::Number(
                |s| s.budget_ms.to_string(),
                |s, t| {
                    s.budget_ms = num(t)?;
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Dependencies (comma-separated)",
            "dependencies",
            Input::Text(
                |s| s.dependencies.join(", "),
                |s, t| {
                    s.dependencies = words(t);
                    Ok(())
                },
            ),
        ),
        Column::new("Running sum (ms)", "running", Input::Custom(running_sum)),
    ],
    empty: "No stages: the whole budget is one.",
    extra: None,
    footer: Some(budget_footer),
};

/// What the stages up to this one spend, red once it passes the total.
fn running_sum(ed: Doc, row: &Row) -> AnyView {
    let upto = row.index + 1;
    let dependencies = format!("{}.dependencies", row.path);
    let running = Memo::new(move |_| ed.policy.with(|p| stages_sum(p, upto)));
    let over = move || ed.policy.with(|p| running.get() > total(p));
    view! {
        <span class="figure num" class:is-over=over>
            {move || running.get()}
        </span>
        <Issues ed path=dependencies inside=true />
    }
    .into_any()
}

fn budget_footer(ed: Doc, span: usize) -> AnyView {
    let sum = Memo::new(move |_| ed.policy.with(|p| stages_sum(p, usize::MAX)));
    let total = Memo::new(move |_| ed.policy.with(total));
    let over = move || sum.get() > total.get();
    let share = move || {
        sum.get()
            .saturating_mul(100)
            .checked_div(total.get())
            .map_or(100, |share| share.min(100))
    };
    view! {
        <tfoot>
            <tr>
                <td colspan=span>
                    <div
                        class="budget-sum"
                        class:is-over=over
                        data-test="timeouts-sum"
                        id=field_id("timeouts.stages")
                        tabindex="-1"
                    >
                        <span>
                            "Stages add up to "
                            <span class="figure" data-test="timeouts-sum-value">
                                {move || sum.get()}
                            </span> " ms of the " <span class="figure">{move || total.get()}</span>
                            " ms total"
                            {move || {
                                over().then(|| format!(" — {} ms over", sum.get() - total.get()))
                            }}
                        </span>
                        <span class="meter" aria-hidden="true">
                            <span class="meter-fill" style:width=move || format!("{}%", share())></span>
                        </span>
                    </div>
                    <Issues ed path="timeouts.stages" />
                </td>
            </tr>
        </tfoot>
    }
    .into_any()
}

#[component]
pub fn TimeoutsSection(ed: Doc, deps: Memo<Vec<String>>) -> impl IntoView {
    view! {
        <OptionalSection
            ed
            id="timeouts"
            title="Timeout budget"
            about="One deadline for the whole request, split over its stages. The agent propagates what is left, so late stages cannot overspend."
            switch="Set a timeout budget"
            present=|p| p.timeouts.is_some()
            add=|p| {
                p.timeouts = Some(Timeouts {
                    total_ms: 10_000,
                    ..Timeouts::default()
                })
            }
            remove=|p| p.timeouts = None
        >
            <TimeoutsBody ed deps />
        </OptionalSection>
    }
    .into_any()
}

#[component]
fn TimeoutsBody(ed: Doc, deps: Memo<Vec<String>>) -> impl IntoView {
    let total_lens = top(
        |p| show_opt(p.timeouts.as_ref().map(|t| t.total_ms)),
        |p, t| {
            let n = num(t)?;
            if let Some(timeouts) = p.timeouts.as_mut() {
                timeouts.total_ms = n;
            }
            Ok(())
        },
    );
    view! {
        <div class="form-grid">
            <Field
                ed
                path="timeouts.total_ms"
                label="Total budget (ms)"
                lens=total_lens
                numeric=true
                visible_label=true
            />
        </div>
        <h3 class="subheading" id="stages-title">
            "Stages"
        </h3>
        <KeyedTable ed table=&STAGES labelled_by="stages-title" />
        <AddButton
            ed
            test="add-stage"
            label="Add stage"
            add=|p| {
                if let Some(t) = p.timeouts.as_mut() {
                    let n = t.stages.len() + 1;
                    t.stages.push(Stage {
                        name: format!("stage-{n}"),
                        budget_ms: 1_000,
                        dependencies: Vec::new(),
                    });
                }
            }
        />
        <h3 class="subheading" id="dep-timeouts-title">
            "Per-dependency timeouts"
        </h3>
        <p class="section-note muted">
            "Leave empty to bound a dependency by the budget of the stage that lists it."
        </p>
        <div class="form-grid" aria-labelledby="dep-timeouts-title" role="group">
            {move || {
                deps.get()
                    .into_iter()
                    .map(|dep| {
                        let (k1, k2) = (dep.clone(), dep.clone());
                        let lens = (
                            Arc::new(move |p: &Policy| {
                                show_opt(p.timeouts.as_ref().and_then(|t| t.dependencies.get(&k1)))
                            }) as crate::components::fields::Getter,
                            Arc::new(move |p: &mut Policy, t: &str| {
                                let ms = opt_num(t)?;
                                if let Some(timeouts) = p.timeouts.as_mut() {
                                    match ms {
                                        Some(ms) => {
                                            timeouts.dependencies.insert(k2.clone(), ms);
                                        }
                                        None => {
                                            timeouts.dependencies.remove(&k2);
                                        }
                                    }
                                }
                                Ok(())
                            }) as crate::components::fields::Setter,
                        );
                        view! {
                            <Field
                                ed
                                path=format!("timeouts.dependencies.{dep}")
                                label=format!("{dep} (ms)")
                                lens
                                numeric=true
                                visible_label=true
                                placeholder="stage budget"
                            />
                        }
                    })
                    .collect_view()
            }}
        </div>
    }
    .into_any()
}
