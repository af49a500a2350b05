//! The service header: owner, risk tier, description and dependencies.

use super::options::{DEPENDENCY_KINDS, RISK_TIERS};
use crate::components::fields::{
    Choice, Doc, Field, Issues, Section, from_wire, opt_text, top, wire,
};
use crate::components::keyed_table::{Column, Input, KeyedTable, Table, map_keys, same};
use leptos::html;
use leptos::prelude::*;
use shared::policy::{Dependency, DependencyKind};

static DEPENDENCIES: Table<Dependency> = Table {
    test: "editor-dependencies",
    row_test: "editor-dependency",
    key_title: "Name",
    noun: "",
    keys: |p| map_keys(&p.service.dependencies),
    path: |k| format!("service.dependencies.{k}"),
    name: same,
    find: |p, k| p.service.dependencies.get(k),
    find_mut: |p, k| p.service.dependencies.get_mut(k),
    remove: |p, k| {
        p.service.dependencies.remove(k);
    },
    row_issues: &[],
    columns: &[
        Column::new(
            "Kind",
            "kind",
            Input::Choice(
                |d| wire(&d.kind),
                |d, t| {
                    d.kind = from_wire(t)?;
                    Ok(())
                },
                DEPENDENCY_KINDS,
            ),
        ),
        Column::new(
            "Required",
            "required",
            Input::Check(|d| d.required, |d, on| d.required = on),
        ),
        Column::new(
            "Description",
            "description",
            Input::Text(
                |d| d.description.clone().unwrap_or_default(),
                |d, t| {
                    d.description = opt_text(t);
                    Ok(())
                },
            ),
        ),
    ],
    empty: "No dependencies declared. Retries, breakers and timeouts name one of these.",
    extra: None,
    footer: None,
};

#[component]
pub fn ServiceSection(ed: Doc) -> impl IntoView {
    let name = Memo::new(move |_| ed.policy.with(|p| p.service.name.clone()));
    let environment = Memo::new(move |_| ed.policy.with(|p| p.service.environment.clone()));
    let owner = top(
        |p| p.service.owner.clone(),
        |p, t| {
            p.service.owner = t.to_owned();
            Ok(())
        },
    );
    let tier = top(
        |p| wire(&p.service.risk_tier),
        |p, t| {
            p.service.risk_tier = from_wire(t)?;
            Ok(())
        },
    );
    let description = top(
        |p| p.service.description.clone().unwrap_or_default(),
        |p, t| {
            p.service.description = opt_text(t);
            Ok(())
        },
    );
    view! {
        <Section
            ed
            id="service"
            title="Service"
            about="Who answers for it, how much is at stake, and what it calls."
        >
            <div class="form-grid">
                <div class="cell-field">
                    <span class="static-label">"Service and environment"</span>
                    <span class="static-value">
                        <code>{move || name.get()}</code>
                        " in "
                        <code>{move || environment.get()}</code>
                    </span>
                    <Issues ed path="service.name" />
                    <Issues ed path="service.environment" />
                </div>
                <Field ed path="service.owner" label="Owner" lens=owner visible_label=true />
                <Choice
                    ed
                    path="service.risk_tier"
                    label="Risk tier"
                    lens=tier
                    options=RISK_TIERS
                    visible_label=true
                />
                <Field
                    ed
                    path="service.description"
                    label="Description"
                    lens=description
                    visible_label=true
                    wide=true
                    placeholder="A sentence for the dashboard"
                />
            </div>
            <h3 class="subheading" id="deps-title">
                "Dependencies"
            </h3>
            <KeyedTable ed table=&DEPENDENCIES labelled_by="deps-title" />
            <AddDependency ed />
        </Section>
    }
    .into_any()
}

#[component]
fn AddDependency(ed: Doc) -> impl IntoView {
    let name = NodeRef::<html::Input>::new();
    let kind = NodeRef::<html::Select>::new();
    let error = RwSignal::new(None::<String>);
    let add = move |_| {
        let Some(input) = name.get_untracked() else {
            return;
        };
        let key = input.value().trim().to_owned();
        let picked = kind
            .get_untracked()
            .map(|s| s.value())
            .and_then(|k| from_wire::<DependencyKind>(&k).ok())
            .unwrap_or(DependencyKind::Other);
        if key.is_empty() {
            error.set(Some("name the dependency".into()));
            return;
        }
        if ed
            .policy
            .with_untracked(|p| p.service.dependencies.contains_key(&key))
        {
            error.set(Some(format!("`{key}` is already declared")));
            return;
        }
        error.set(None);
        ed.edit(|p| {
            p.service.dependencies.insert(
                key,
                Dependency {
                    kind: picked,
                    required: true,
                    description: None,
                },
            );
        });
        input.set_value("");
    };
    view! {
        <div class="add-row">
            <div class="cell-field">
                <label for="add-dependency-name">"New dependency"</label>
                <input
                    id="add-dependency-name"
                    type="text"
                    autocomplete="off"
                    spellcheck="false"
                    placeholder="e.g. reranker"
                    data-test="add-dependency-name"
                    node_ref=name
                />
            </div>
            <div class="cell-field">
                <label for="add-dependency-kind">"Kind"</label>
                <select id="add-dependency-kind" data-test="add-dependency-kind" node_ref=kind>
                    {DEPENDENCY_KINDS
                        .iter()
                        .map(|(w, t)| view! { <option value=*w>{*t}</option> })
                        .collect_view()}
                </select>
            </div>
            <button type="button" class="button" data-test="add-dependency" on:click=add>
                "Add dependency"
            </button>
            <p class="field-error" role="alert">
                {move || error.get()}
            </p>
        </div>
    }
    .into_any()
}
