//! The policy editor: one form per section of the document, a YAML view of
//! the whole of it, and the actions that save, diff and publish it.
//!
//! The document lives in one signal (see [`Doc`]). Validation is `shared`'s
//! own, run in the browser on every change: the server runs the same code
//! before it publishes, so what the editor accepts is what the server
//! accepts. Each section is a module here; the fields and the one table
//! editor they are made of live in `components`.

mod actions;
mod admission;
mod ai;
mod breakers;
mod bulkheads;
mod dead_letters;
mod fallbacks;
mod goals;
mod invariants;
mod limits;
mod models;
mod objectives;
mod options;
mod retry;
mod service_header;
mod timeouts;
mod yaml;

use crate::api::{self, ApiError};
use crate::components::fields::{Doc, Options, section_anchor};
use crate::layout::{LoadError, Loading};
use crate::remote::Remote;
use crate::time::Utc;
use leptos::prelude::*;
use shared::policy::{Policy, RiskTier, Service, ValidationContext, validate};
use std::collections::BTreeMap;

/// Where the document the editor opened with came from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Draft { by: String, at_ms: i64 },
    Active(u64),
    New,
}

#[derive(Debug, Clone, PartialEq)]
struct Start {
    policy: Policy,
    source: Source,
}

/// The draft if there is one, else the active version, else a new policy
/// with only the service header.
async fn load(name: &str, env: &str) -> Result<Start, ApiError> {
    if let Some(draft) = api::get_draft(name, env).await? {
        return Ok(Start {
            policy: draft.policy,
            source: Source::Draft {
                by: draft.updated_by,
                at_ms: draft.updated_at_ms,
            },
        });
    }
    let service = api::get_service(name, env).await?;
    if let Some(v) = service.rollout.active_version
        && let Some(policy) = api::get_version(name, env, v).await?.policy
    {
        return Ok(Start {
            policy,
            source: Source::Active(v),
        });
    }
    Ok(Start {
        policy: Policy::new(Service {
            name: service.name,
            environment: service.environment,
            owner: service.owner,
            risk_tier: RiskTier::Low,
            description: None,
            dependencies: BTreeMap::new(),
        }),
        source: Source::New,
    })
}

#[component]
pub fn PolicyEditor(
    name: String,
    env: String,
    can_edit: bool,
    can_publish: bool,
    active_version: Signal<Option<u64>>,
    on_published: Callback<()>,
) -> impl IntoView {
    let (n, e) = (name.clone(), env.clone());
    let start = Remote::new(move || {
        let (n, e) = (n.clone(), e.clone());
        async move { load(&n, &e).await }
    });
    move || match start.get() {
        None => view! { <Loading label="Loading the policy…" /> }.into_any(),
        Some(Err(error)) => view! {
            <LoadError message=error.message() retry=Callback::new(move |()| start.reload()) />
        }
        .into_any(),
        Some(Ok(start)) => view! {
            <EditorBody
                start
                name=name.clone()
                env=env.clone()
                can_edit
                can_publish
                active_version
                on_published
            />
        }
        .into_any(),
    }
}

/// What the editor's document was last saved as, and where it came from;
/// the actions and the YAML view both save.
#[derive(Clone, Copy)]
struct Saved {
    policy: RwSignal<Policy>,
    source: RwSignal<Source>,
    dirty: Memo<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Form,
    Yaml,
}

#[component]
fn EditorBody(
    start: Start,
    name: String,
    env: String,
    can_edit: bool,
    can_publish: bool,
    active_version: Signal<Option<u64>>,
    on_published: Callback<()>,
) -> impl IntoView {
    let policy = RwSignal::new(start.policy.clone());
    let saved_policy = RwSignal::new(start.policy);
    let source = RwSignal::new(start.source);
    let report = Memo::new(move |_| policy.with(|p| validate(p, &ValidationContext::new())));
    let ed = Doc { policy, report };
    let dirty = Memo::new(move |_| policy.with(|p| saved_policy.with(|s| p != s)));
    let saved = Saved {
        policy: saved_policy,
        source,
        dirty,
    };
    let mode = RwSignal::new(Mode::Form);
    let target = StoredValue::new((name, env));

    let mode_button = move |m: Mode, label: &'static str, test: &'static str| {
        view! {
            <button
                type="button"
                class="segment"
                data-test=test
                aria-pressed=move || if mode.get() == m { "true" } else { "false" }
                on:click=move |_| mode.set(m)
            >
                {label}
            </button>
        }
    };

    view! {
        <div class="editor-layout">
            <div class="editor-main">
                <div class="editor-toolbar">
                    <div class="segmented" role="group" aria-label="Edit as">
                        {mode_button(Mode::Form, "Form", "mode-form")}
                        {mode_button(Mode::Yaml, "YAML", "mode-yaml")}
                    </div>
                    <SourceLine source dirty />
                </div>
                <fieldset class="editor-fieldset" disabled=!can_edit>
                    <legend class="visually-hidden">"Policy document"</legend>
                    {(!can_edit)
                        .then(|| {
                            view! {
                                <p class="alert alert-info">
                                    "Your role can read this policy but not change it."
                                </p>
                            }
                        })}
                    {move || match mode.get() {
                        Mode::Form => view! { <FormSections ed /> }.into_any(),
                        Mode::Yaml => view! { <yaml::YamlView ed saved target /> }.into_any(),
                    }}
                </fieldset>
            </div>
            <aside class="editor-aside" aria-label="Sections, validation and actions">
                {move || (mode.get() == Mode::Form).then(|| view! { <SectionIndex /> })}
                <actions::FindingsSummary ed />
                <actions::Actions
                    ed
                    target
                    can_edit
                    can_publish
                    saved
                    active_version
                    on_published
                />
            </aside>
        </div>
    }
    .into_any()
}

#[component]
fn SourceLine(source: RwSignal<Source>, dirty: Memo<bool>) -> impl IntoView {
    view! {
        <p class="source-line muted" data-test="editor-source">
            {move || match source.get() {
                Source::Draft { by, at_ms } => {
                    format!("Draft saved by {by}, {}", Utc::from_millis(at_ms).display())
                }
                Source::Active(v) => format!("No draft: showing the active version v{v}"),
                Source::New => "No draft and no version yet: a new policy".to_owned(),
            }}
            <span class="dirty-badge" data-test="editor-dirty" class:is-dirty=move || dirty.get()>
                {move || if dirty.get() { "Unsaved changes" } else { "" }}
            </span>
        </p>
    }
    .into_any()
}

/// Every section of the form, in the document's order: id and title.
const SECTIONS: Options = &[
    ("service", "Service"),
    ("goals", "Goals"),
    ("timeouts", "Timeout budget"),
    ("retry", "Retries"),
    ("retry_budget", "Retry budget"),
    ("breakers", "Circuit breakers"),
    ("fallbacks", "Fallback matrix"),
    ("models", "Model routing"),
    ("bulkheads", "Bulkheads"),
    ("limits", "Rate limits and budgets"),
    ("admission", "Admission control"),
    ("output_repair", "Output repair"),
    ("retrieval", "Retrieval sources"),
    ("agent_nodes", "Agent nodes"),
    ("cache", "Cache"),
    ("idempotency", "Idempotency"),
    ("invariants", "Invariants"),
    ("dead_letters", "Dead letters"),
];

/// Links to each section of the form; the page is long.
#[component]
fn SectionIndex() -> impl IntoView {
    let links = SECTIONS
        .iter()
        .map(|(id, title)| {
            let anchor = section_anchor(id);
            let href = format!("#{anchor}");
            view! {
                <li>
                    <a
                        href=href
                        data-test=format!("section-link-{id}")
                        on:click=move |ev| {
                            ev.prevent_default();
                            jump_to(&anchor);
                        }
                    >
                        {*title}
                    </a>
                </li>
            }
        })
        .collect_view();
    view! {
        <nav class="panel section-index" aria-labelledby="section-index-title" data-test="section-index">
            <h2 id="section-index-title" class="visually-hidden">
                "Sections"
            </h2>
            <ul>{links}</ul>
        </nav>
    }
    .into_any()
}

/// Scrolls a section into view and moves the keyboard there. The router
/// would treat a bare `#anchor` link as a navigation, so the link does it
/// itself.
fn jump_to(anchor: &str) {
    if let Some(element) = document().get_element_by_id(anchor) {
        element.scroll_into_view();
        let _ = element.set_attribute("tabindex", "-1");
        use leptos::wasm_bindgen::JsCast;
        if let Ok(html) = element.dyn_into::<leptos::web_sys::HtmlElement>() {
            let _ = html.focus();
        }
    }
}

#[component]
fn FormSections(ed: Doc) -> impl IntoView {
    let deps = Memo::new(move |_| {
        ed.policy
            .with(|p| p.service.dependencies.keys().cloned().collect::<Vec<_>>())
    });
    view! {
        <service_header::ServiceSection ed />
        <goals::GoalsSection ed />
        <timeouts::TimeoutsSection ed deps />
        <retry::RetrySection ed deps />
        <retry::RetryBudgetSection ed />
        <breakers::BreakersSection ed deps />
        <fallbacks::FallbacksSection ed />
        <models::ModelsSection ed />
        <bulkheads::BulkheadsSection ed />
        <limits::LimitsSection ed deps />
        <admission::AdmissionSection ed />
        <ai::OutputRepairSection ed />
        <ai::RetrievalSection ed />
        <ai::AgentNodesSection ed />
        <ai::CacheSection ed />
        <ai::IdempotencySection ed />
        <invariants::InvariantsSection ed />
        <dead_letters::DeadLettersSection ed />
    }
    .into_any()
}
