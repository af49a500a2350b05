//! Model routing: the primary model and its fallbacks, in order.

use crate::components::fields::{
    Check, Doc, Field, OptionalSection, from_wire, in_present, lens_bool, top, wire, words,
};
use crate::components::keyed_table::{
    AddButton, Column, Input, KeyedTable, Table, list_keys, remove_at, row_number,
};
use leptos::prelude::*;
use shared::policy::{ModelFallback, ModelRoute, ModelRouting, Policy};

static FALLBACK_MODELS: Table<ModelFallback> = Table {
    test: "editor-model-fallbacks",
    row_test: "",
    key_title: "",
    noun: "fallback",
    keys: |p| {
        p.models
            .as_ref()
            .map_or_else(Vec::new, |m| list_keys(&m.fallbacks))
    },
    path: |k| format!("models.fallbacks.{k}"),
    name: row_number,
    find: |p, k| p.models.as_ref()?.fallbacks.get(k.parse::<usize>().ok()?),
    find_mut: |p, k| {
        p.models
            .as_mut()?
            .fallbacks
            .get_mut(k.parse::<usize>().ok()?)
    },
    remove: |p, k| {
        if let Some(m) = p.models.as_mut() {
            remove_at(&mut m.fallbacks, k);
        }
    },
    row_issues: &[],
    columns: &[
        Column::new(
            "Model",
            "model",
            Input::Text(
                |f| f.model.clone(),
                |f, t| {
                    f.model = t.trim().to_owned();
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Dependency",
            "dependency",
            Input::Text(
                |f| f.dependency.clone(),
                |f, t| {
                    f.dependency = t.trim().to_owned();
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Validated",
            "validated",
            Input::Check(|f| f.validated, |f, on| f.validated = on),
        ),
        Column::new(
            "Extra validation",
            "requires_additional_validation",
            Input::Check(
                |f| f.requires_additional_validation,
                |f, on| f.requires_additional_validation = on,
            ),
        ),
        Column::below(
            "Features it may serve (comma-separated; empty: all)",
            "allowed_features",
            Input::Text(
                |f| f.allowed_features.join(", "),
                |f, t| {
                    f.allowed_features = words(t);
                    Ok(())
                },
            ),
        ),
        Column {
            title: "Risk tiers it must never serve (comma-separated)",
            field: "disallowed_risk_levels",
            input: Input::Text(
                |f| {
                    f.disallowed_risk_levels
                        .iter()
                        .map(wire)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                |f, t| {
                    f.disallowed_risk_levels = words(t)
                        .iter()
                        .map(|w| from_wire(w))
                        .collect::<Result<_, _>>()?;
                    Ok(())
                },
            ),
            placeholder: "e.g. high, regulated",
            below: true,
        },
    ],
    empty: "No fallback models: when the primary fails, the fallback matrix decides.",
    extra: None,
    footer: None,
};

fn primary(p: &Policy) -> Option<&ModelRoute> {
    p.models.as_ref().map(|m| &m.primary)
}

fn primary_mut(p: &mut Policy) -> Option<&mut ModelRoute> {
    p.models.as_mut().map(|m| &mut m.primary)
}

#[component]
pub fn ModelsSection(ed: Doc) -> impl IntoView {
    view! {
        <OptionalSection
            ed
            id="models"
            title="Model routing"
            about="The model used when all is well, and the models to fall back to, in order. High-risk services fall back only to validated models."
            switch="Route models"
            present=|p| p.models.is_some()
            add=|p| {
                let dependency = p.service.dependencies.keys().next().cloned().unwrap_or_default();
                p.models = Some(ModelRouting {
                    primary: ModelRoute {
                        model: "primary-model".into(),
                        dependency,
                        validated: true,
                    },
                    fallbacks: Vec::new(),
                })
            }
            remove=|p| p.models = None
        >
            <div class="form-grid">
                <Field
                    ed
                    path="models.primary.model"
                    label="Primary model"
                    lens=top(
                        |p| primary(p).map(|m| m.model.clone()).unwrap_or_default(),
                        |p, t| in_present(&mut p.models, |m| {
                            m.primary.model = t.trim().to_owned();
                            Ok(())
                        }),
                    )
                    visible_label=true
                />
                <Field
                    ed
                    path="models.primary.dependency"
                    label="Served by (dependency)"
                    lens=top(
                        |p| primary(p).map(|m| m.dependency.clone()).unwrap_or_default(),
                        |p, t| in_present(&mut p.models, |m| {
                            m.primary.dependency = t.trim().to_owned();
                            Ok(())
                        }),
                    )
                    visible_label=true
                />
                <Check
                    ed
                    path="models.primary.validated"
                    label="passed the evaluation suite"
                    visible_label=true
                    lens=lens_bool(
                        "",
                        |p, _| primary(p),
                        |p, _| primary_mut(p),
                        |m| m.validated,
                        |m, on| m.validated = on,
                    )
                />
            </div>
            <h3 class="subheading" id="model-fallbacks-title">
                "Fallback models"
            </h3>
            <KeyedTable ed table=&FALLBACK_MODELS labelled_by="model-fallbacks-title" />
            <AddButton
                ed
                test="add-model-fallback"
                label="Add fallback model"
                add=|p| {
                    if let Some(m) = p.models.as_mut() {
                        let dependency = m.primary.dependency.clone();
                        m.fallbacks.push(ModelFallback {
                            model: "fallback-model".into(),
                            dependency,
                            validated: false,
                            allowed_features: Vec::new(),
                            disallowed_risk_levels: Vec::new(),
                            requires_additional_validation: true,
                        });
                    }
                }
            />
        </OptionalSection>
    }
    .into_any()
}
