//! The policy editor: one form per section of the document, a YAML view of
//! the whole of it, and the actions that save, diff and publish it.
//!
//! The document lives in one signal. Every field reads its value through a
//! memo, so typing in one field re-renders only that field, and writes the
//! parsed value back into the document. Validation is `shared`'s own, run in
//! the browser on every change: the server runs the same code before it
//! publishes, so what the editor accepts is what the server accepts.

use crate::api::{self, ApiError};
use crate::app::Hydrated;
use crate::layout::{LoadError, Loading};
use crate::pages::service::{DiffList, outcome_text};
use crate::remote::Remote;
use crate::time::Utc;
use leptos::html;
use leptos::prelude::*;
use serde::{Serialize, de::DeserializeOwned};
use shared::api::{DiffView, PublishOutcome, PublishRequest};
use shared::policy::{
    BreakerMode, BreakerPolicy, Bulkhead, BulkheadOverride, Dependency, DependencyKind,
    DependencyLimit, ErrorClass, FailureType, FallbackAction, FallbackRule, Jitter, Limits, Policy,
    RateLimit, RetryPolicy, RiskTier, Service, Severity, SlowCall, Stage, Timeouts,
    ValidationContext, ValidationReport, validate,
};
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// The document being edited and what validation says about it.
#[derive(Clone, Copy)]
struct Ed {
    policy: RwSignal<Policy>,
    report: Memo<ValidationReport>,
}

impl Ed {
    fn edit(self, f: impl FnOnce(&mut Policy)) {
        self.policy.update(f);
    }
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
    let saved = RwSignal::new(start.policy);
    let source = RwSignal::new(start.source);
    let report = Memo::new(move |_| policy.with(|p| validate(p, &ValidationContext::new())));
    let ed = Ed { policy, report };
    let dirty = Memo::new(move |_| policy.with(|p| saved.with(|s| p != s)));
    let mode = RwSignal::new(Mode::Form);

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
                        Mode::Yaml => view! { <YamlView ed /> }.into_any(),
                    }}
                </fieldset>
            </div>
            <aside class="editor-aside" aria-label="Validation and actions">
                <FindingsSummary ed />
                <Actions
                    ed
                    name
                    env
                    can_edit
                    can_publish
                    saved
                    source
                    dirty
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

// ----- Fields -------------------------------------------------------------

type Getter = Arc<dyn Fn(&Policy) -> String + Send + Sync>;
type Setter = Arc<dyn Fn(&mut Policy, &str) -> Result<(), String> + Send + Sync>;

/// The id of the control for a document path, so that a finding can take
/// the keyboard to its field.
fn field_id(path: &str) -> String {
    format!("f-{path}")
}

/// `retry.model.max_attempts` → `editor-retry-model-max_attempts`.
fn test_id(path: &str) -> String {
    format!("editor-{}", path.replace('.', "-"))
}

/// Whether a finding at `finding` belongs beside the field at `field`:
/// the same path, or (for a group such as a list) a path inside it.
fn covers(field: &str, finding: &str, inside: bool) -> bool {
    finding == field
        || (inside
            && finding
                .strip_prefix(field)
                .is_some_and(|rest| rest.starts_with('.')))
}

fn num(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| "enter a whole number, 0 or more".to_owned())
}

fn num32(text: &str) -> Result<u32, String> {
    num(text).and_then(|n| u32::try_from(n).map_err(|_| "that number is too large".to_owned()))
}

fn opt_num(text: &str) -> Result<Option<u64>, String> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        num(text).map(Some)
    }
}

fn opt_num32(text: &str) -> Result<Option<u32>, String> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        num32(text).map(Some)
    }
}

fn opt_text(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn show_opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// The wire name of an enum value, such as `rate_limited`.
fn wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn from_wire<T: DeserializeOwned>(name: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| format!("`{name}` is not one of the choices"))
}

/// A getter and setter for one field of an item that `find` locates by
/// `key` (a map key, or a list index as text).
fn lens<T: 'static>(
    key: &str,
    find: for<'a> fn(&'a Policy, &str) -> Option<&'a T>,
    find_mut: for<'a> fn(&'a mut Policy, &str) -> Option<&'a mut T>,
    get: fn(&T) -> String,
    set: fn(&mut T, &str) -> Result<(), String>,
) -> (Getter, Setter) {
    let (k1, k2) = (key.to_owned(), key.to_owned());
    (
        Arc::new(move |p| find(p, &k1).map(get).unwrap_or_default()),
        Arc::new(move |p, text| match find_mut(p, &k2) {
            Some(item) => set(item, text),
            None => Ok(()),
        }),
    )
}

/// Findings at a path, beside its field. `local` is a complaint of the
/// field itself, such as text that is not a number.
#[component]
fn Issues(
    ed: Ed,
    #[prop(into)] path: String,
    #[prop(optional)] inside: bool,
    #[prop(optional)] local: Option<RwSignal<Option<String>>>,
    #[prop(optional, into)] id: Option<String>,
) -> impl IntoView {
    let found = Memo::new(move |_| {
        ed.report.with(|r| {
            r.findings
                .iter()
                .filter(|f| covers(&path, &f.path, inside))
                .map(|f| (f.severity, f.path.clone(), f.message.clone()))
                .collect::<Vec<_>>()
        })
    });
    view! {
        <div class="issues" id=id aria-live="polite">
            {move || {
                local
                    .and_then(|l| l.get())
                    .map(|message| {
                        view! {
                            <p class="issue issue-error" data-test="editor-error">
                                {message}
                            </p>
                        }
                    })
            }}
            {move || {
                found
                    .get()
                    .into_iter()
                    .map(|(severity, path, message)| {
                        let (class, test) = match severity {
                            Severity::Error => ("issue issue-error", "editor-error"),
                            Severity::Warning => ("issue issue-warning", "editor-warning"),
                        };
                        view! {
                            <p class=class data-test=test data-path=path>
                                {message}
                            </p>
                        }
                    })
                    .collect_view()
            }}
        </div>
    }
    .into_any()
}

/// A text or number input bound to one field of the document.
#[component]
fn Field(
    ed: Ed,
    #[prop(into)] path: String,
    #[prop(into)] label: String,
    lens: (Getter, Setter),
    #[prop(optional)] numeric: bool,
    /// Show the label above the control (forms); otherwise it is for screen
    /// readers only (table cells, whose column header says it).
    #[prop(optional)]
    visible_label: bool,
    #[prop(optional, into)] placeholder: String,
    #[prop(optional)] wide: bool,
) -> impl IntoView {
    let (get, set) = lens;
    let id = field_id(&path);
    let issues_id = format!("{id}-issues");
    let local = RwSignal::new(None::<String>);
    let value = Memo::new(move |_| ed.policy.with(|p| get(p)));
    let error_path = path.clone();
    let invalid = move || {
        local.with(Option::is_some)
            || ed
                .report
                .with(|r| r.errors().any(|f| covers(&error_path, &f.path, false)))
    };
    let on_input = move |ev| {
        let text = event_target_value(&ev);
        let next = ed.policy.with_untracked(|p| {
            let mut next = p.clone();
            set(&mut next, &text).map(|()| next)
        });
        match next {
            Ok(next) => {
                local.set(None);
                if ed.policy.with_untracked(|p| *p != next) {
                    ed.policy.set(next);
                }
            }
            Err(message) => local.set(Some(message)),
        }
    };
    let label_class = if visible_label { "" } else { "visually-hidden" };
    view! {
        <div class="cell-field" class:cell-wide=wide>
            <label for=id.clone() class=label_class>
                {label}
            </label>
            <input
                id=id
                type="text"
                class:numeric=numeric
                inputmode=numeric.then_some("numeric")
                autocomplete="off"
                spellcheck="false"
                placeholder=placeholder
                data-test=test_id(&path)
                aria-describedby=issues_id.clone()
                aria-invalid=move || invalid().then_some("true")
                prop:value=move || value.get()
                on:input=on_input
            />
            <Issues ed path local id=issues_id />
        </div>
    }
    .into_any()
}

/// A choice among an enum's values, bound to one field of the document.
#[component]
fn Choice(
    ed: Ed,
    #[prop(into)] path: String,
    #[prop(into)] label: String,
    lens: (Getter, Setter),
    options: &'static [(&'static str, &'static str)],
    #[prop(optional)] visible_label: bool,
) -> impl IntoView {
    let (get, set) = lens;
    let id = field_id(&path);
    let issues_id = format!("{id}-issues");
    let value = Memo::new(move |_| ed.policy.with(|p| get(p)));
    let on_change = move |ev| {
        let text = event_target_value(&ev);
        ed.edit(|p| {
            let _ = set(p, &text);
        });
    };
    let label_class = if visible_label { "" } else { "visually-hidden" };
    view! {
        <div class="cell-field">
            <label for=id.clone() class=label_class>
                {label}
            </label>
            <select
                id=id
                data-test=test_id(&path)
                aria-describedby=issues_id.clone()
                on:change=on_change
            >
                {options
                    .iter()
                    .map(|(wire, text)| {
                        view! {
                            <option value=*wire selected=move || value.with(|v| v == wire)>
                                {*text}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <Issues ed path id=issues_id />
        </div>
    }
    .into_any()
}

type GetBool = Arc<dyn Fn(&Policy) -> bool + Send + Sync>;
type SetBool = Arc<dyn Fn(&mut Policy, bool) + Send + Sync>;

/// A yes/no field of the document.
#[component]
fn Check(
    ed: Ed,
    #[prop(into)] path: String,
    #[prop(into)] label: String,
    get: GetBool,
    set: SetBool,
    #[prop(optional)] visible_label: bool,
) -> impl IntoView {
    let id = field_id(&path);
    let value = Memo::new(move |_| ed.policy.with(|p| get(p)));
    let label_class = if visible_label {
        "check-label"
    } else {
        "visually-hidden"
    };
    view! {
        <div class="cell-field cell-check">
            <input
                id=id.clone()
                type="checkbox"
                data-test=test_id(&path)
                prop:checked=move || value.get()
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    ed.edit(|p| set(p, on));
                }
            />
            <label for=id class=label_class>
                {label}
            </label>
            <Issues ed path />
        </div>
    }
    .into_any()
}

const RISK_TIERS: &[(&str, &str)] = &[
    ("low", "low"),
    ("medium", "medium"),
    ("high", "high — publishes need an approver"),
    ("regulated", "regulated — publishes need an approver"),
];

const DEPENDENCY_KINDS: &[(&str, &str)] = &[
    ("model_provider", "model provider"),
    ("embedding", "embedding"),
    ("vector_db", "vector DB"),
    ("lexical_search", "lexical search"),
    ("reranker", "reranker"),
    ("tool_api", "tool API"),
    ("queue", "queue"),
    ("database", "database"),
    ("object_store", "object store"),
    ("identity", "identity"),
    ("approval_service", "approval service"),
    ("case_record", "case record"),
    ("other", "other"),
];

const JITTERS: &[(&str, &str)] = &[
    ("full", "full"),
    ("decorrelated", "decorrelated"),
    ("none", "none"),
];

const ERROR_CLASSES: [ErrorClass; 11] = [
    ErrorClass::Timeout,
    ErrorClass::Connection,
    ErrorClass::RateLimited,
    ErrorClass::Unavailable,
    ErrorClass::Overloaded,
    ErrorClass::AuthDenied,
    ErrorClass::Validation,
    ErrorClass::InsufficientEvidence,
    ErrorClass::PolicyViolation,
    ErrorClass::BudgetExceeded,
    ErrorClass::Permanent,
];

const FORCED: &[(&str, &str)] = &[
    ("none", "no override"),
    ("open", "forced open"),
    ("closed", "forced closed"),
];

const BREAKER_MODES: &[(&str, &str)] = &[
    ("consecutive", "failures in a row"),
    ("failure_rate", "failure rate"),
];

const FAILURE_TYPES: &[(&str, &str)] = &[
    ("unavailable", "unavailable"),
    ("timeout", "timeout"),
    ("slow", "slow"),
    ("rate_limited", "rate limited"),
    ("invalid_output", "invalid output"),
    ("breaker_open", "breaker open"),
    ("any", "any"),
];

const FALLBACK_ACTIONS: &[(&str, &str)] = &[
    ("alternate_dependency", "alternate dependency"),
    ("alternate_model", "alternate model"),
    ("skip_step", "skip step"),
    ("cached", "cached result"),
    ("deterministic_checks_only", "deterministic checks only"),
    ("queue", "queue"),
    ("resume_from_checkpoint", "resume from checkpoint"),
    ("pause", "pause"),
    ("human_handoff", "human handoff"),
    ("explain_unavailable", "explain unavailable"),
    ("refuse", "refuse"),
    ("model_memory", "model memory (unsafe)"),
    ("skip_authorization", "skip authorisation (unsafe)"),
    (
        "proceed_without_approval",
        "proceed without approval (unsafe)",
    ),
];

const DEGRADED_STATUSES: &[(&str, &str)] = &[
    ("normal", "normal"),
    ("degraded", "degraded"),
    ("partial", "partial"),
    ("queued", "queued"),
    ("paused", "paused"),
    ("refused", "refused"),
];

const PARTITIONS: &[(&str, &str)] = &[
    ("tenant", "tenant"),
    ("tool", "tool"),
    ("model", "model"),
    ("queue", "queue"),
    ("priority", "priority class"),
];

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

// ----- Sections -----------------------------------------------------------

#[component]
fn FormSections(ed: Ed) -> impl IntoView {
    let deps = Memo::new(move |_| {
        ed.policy
            .with(|p| p.service.dependencies.keys().cloned().collect::<Vec<_>>())
    });
    view! {
        <HeaderSection ed deps />
        <TimeoutsSection ed deps />
        <RetrySection ed deps />
        <BreakersSection ed deps />
        <FallbacksSection ed />
        <BulkheadsSection ed />
        <LimitsSection ed deps />
        <section class="panel editor-section">
            <div class="panel-header">
                <h2>"Other sections"</h2>
            </div>
            <p class="section-note muted">
                "Goals, the retry budget, model routing, admission control, the AI policies and the invariants are edited in the YAML view. Their findings appear in the summary."
            </p>
        </section>
    }
    .into_any()
}

/// A panel for one section of the document, with the findings about the
/// section as a whole.
#[component]
fn Section(
    ed: Ed,
    #[prop(into)] id: String,
    title: &'static str,
    about: &'static str,
    children: Children,
) -> impl IntoView {
    let heading = format!("{id}-title");
    let labelled_by = heading.clone();
    let test = format!("editor-section-{id}");
    let issues_id = field_id(&id);
    view! {
        <section class="panel editor-section" aria-labelledby=labelled_by data-test=test>
            <div class="panel-header">
                <h2 id=heading>{title}</h2>
                <p class="muted">{about}</p>
            </div>
            <div class="section-issues" id=issues_id tabindex="-1">
                <Issues ed path=id />
            </div>
            {children()}
        </section>
    }
    .into_any()
}

#[component]
fn HeaderSection(ed: Ed, deps: Memo<Vec<String>>) -> impl IntoView {
    let name = Memo::new(move |_| ed.policy.with(|p| p.service.name.clone()));
    let environment = Memo::new(move |_| ed.policy.with(|p| p.service.environment.clone()));
    let owner = (
        Arc::new(|p: &Policy| p.service.owner.clone()) as Getter,
        Arc::new(|p: &mut Policy, t: &str| {
            p.service.owner = t.to_owned();
            Ok(())
        }) as Setter,
    );
    let tier = (
        Arc::new(|p: &Policy| wire(&p.service.risk_tier)) as Getter,
        Arc::new(|p: &mut Policy, t: &str| {
            p.service.risk_tier = from_wire(t)?;
            Ok(())
        }) as Setter,
    );
    let description = (
        Arc::new(|p: &Policy| p.service.description.clone().unwrap_or_default()) as Getter,
        Arc::new(|p: &mut Policy, t: &str| {
            p.service.description = opt_text(t);
            Ok(())
        }) as Setter,
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
            <div class="table-scroll">
                <table class="table table-edit" aria-labelledby="deps-title" data-test="editor-dependencies">
                    <thead>
                        <tr>
                            <th scope="col">"Name"</th>
                            <th scope="col">"Kind"</th>
                            <th scope="col">"Required"</th>
                            <th scope="col">"Description"</th>
                            <th scope="col">
                                <span class="visually-hidden">"Actions"</span>
                            </th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            let list = deps.get();
                            if list.is_empty() {
                                return view! {
                                    <tr>
                                        <td colspan="5" class="table-empty">
                                            "No dependencies declared. Retries, breakers and timeouts name one of these."
                                        </td>
                                    </tr>
                                }
                                    .into_any();
                            }
                            list.into_iter()
                                .map(|dep| view! { <DependencyRow ed dep /> })
                                .collect_view()
                                .into_any()
                        }}
                    </tbody>
                </table>
            </div>
            <AddDependency ed />
        </Section>
    }
    .into_any()
}

fn find_dep<'a>(p: &'a Policy, k: &str) -> Option<&'a Dependency> {
    p.service.dependencies.get(k)
}

fn find_dep_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut Dependency> {
    p.service.dependencies.get_mut(k)
}

#[component]
fn DependencyRow(ed: Ed, dep: String) -> impl IntoView {
    let path = format!("service.dependencies.{dep}");
    let kind = lens(
        &dep,
        find_dep,
        find_dep_mut,
        |d| wire(&d.kind),
        |d, t| {
            d.kind = from_wire(t)?;
            Ok(())
        },
    );
    let description = lens(
        &dep,
        find_dep,
        find_dep_mut,
        |d| d.description.clone().unwrap_or_default(),
        |d, t| {
            d.description = opt_text(t);
            Ok(())
        },
    );
    let (k1, k2) = (dep.clone(), dep.clone());
    let remove_key = dep.clone();
    view! {
        <tr data-test=format!("editor-dependency-{dep}")>
            <th scope="row">
                <code>{dep.clone()}</code>
                <Issues ed path=path.clone() />
            </th>
            <td>
                <Choice
                    ed
                    path=format!("{path}.kind")
                    label=format!("Kind of {dep}")
                    lens=kind
                    options=DEPENDENCY_KINDS
                />
            </td>
            <td>
                <Check
                    ed
                    path=format!("{path}.required")
                    label=format!("{dep} is required")
                    get=Arc::new(move |p| find_dep(p, &k1).is_some_and(|d| d.required))
                    set=Arc::new(move |p, on| {
                        if let Some(d) = find_dep_mut(p, &k2) {
                            d.required = on;
                        }
                    })
                />
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.description")
                    label=format!("Description of {dep}")
                    lens=description
                />
            </td>
            <td>
                <RemoveButton
                    label=format!("Remove dependency {dep}")
                    on_remove=Callback::new(move |()| {
                        let key = remove_key.clone();
                        ed.edit(move |p| {
                            p.service.dependencies.remove(&key);
                        })
                    })
                />
            </td>
        </tr>
    }
    .into_any()
}

#[component]
fn RemoveButton(#[prop(into)] label: String, on_remove: Callback<()>) -> impl IntoView {
    view! {
        <button
            type="button"
            class="button button-quiet button-small"
            aria-label=label.clone()
            title=label
            on:click=move |_| on_remove.run(())
        >
            "Remove"
        </button>
    }
    .into_any()
}

#[component]
fn AddDependency(ed: Ed) -> impl IntoView {
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

fn find_stage<'a>(p: &'a Policy, k: &str) -> Option<&'a Stage> {
    let i: usize = k.parse().ok()?;
    p.timeouts.as_ref()?.stages.get(i)
}

fn find_stage_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut Stage> {
    let i: usize = k.parse().ok()?;
    p.timeouts.as_mut()?.stages.get_mut(i)
}

#[component]
fn TimeoutsSection(ed: Ed, deps: Memo<Vec<String>>) -> impl IntoView {
    let enabled = Memo::new(move |_| ed.policy.with(|p| p.timeouts.is_some()));
    let toggle = move |ev| {
        let on = event_target_checked(&ev);
        ed.edit(|p| {
            p.timeouts = on.then(|| Timeouts {
                total_ms: 10_000,
                ..Timeouts::default()
            });
        });
    };
    view! {
        <Section
            ed
            id="timeouts"
            title="Timeout budget"
            about="One deadline for the whole request, split over its stages. The agent propagates what is left, so late stages cannot overspend."
        >
            <div class="section-toggle">
                <input
                    id="timeouts-enabled"
                    type="checkbox"
                    data-test="editor-timeouts-enabled"
                    prop:checked=move || enabled.get()
                    on:change=toggle
                />
                <label for="timeouts-enabled">"Set a timeout budget"</label>
            </div>
            {move || enabled.get().then(|| view! { <TimeoutsBody ed deps /> })}
        </Section>
    }
    .into_any()
}

#[component]
fn TimeoutsBody(ed: Ed, deps: Memo<Vec<String>>) -> impl IntoView {
    let count = Memo::new(move |_| {
        ed.policy
            .with(|p| p.timeouts.as_ref().map_or(0, |t| t.stages.len()))
    });
    let total = Memo::new(move |_| {
        ed.policy
            .with(|p| p.timeouts.as_ref().map_or(0, |t| t.total_ms))
    });
    let sum = Memo::new(move |_| {
        ed.policy.with(|p| {
            p.timeouts.as_ref().map_or(0, |t| {
                t.stages
                    .iter()
                    .fold(0_u64, |acc, s| acc.saturating_add(s.budget_ms))
            })
        })
    });
    let over = move || sum.get() > total.get();
    let share = move || {
        sum.get()
            .saturating_mul(100)
            .checked_div(total.get())
            .map_or(100, |share| share.min(100))
    };
    let total_lens = (
        Arc::new(|p: &Policy| show_opt(p.timeouts.as_ref().map(|t| t.total_ms))) as Getter,
        Arc::new(|p: &mut Policy, t: &str| {
            let n = num(t)?;
            if let Some(timeouts) = p.timeouts.as_mut() {
                timeouts.total_ms = n;
            }
            Ok(())
        }) as Setter,
    );
    let add_stage = move |_| {
        ed.edit(|p| {
            if let Some(t) = p.timeouts.as_mut() {
                let n = t.stages.len() + 1;
                t.stages.push(Stage {
                    name: format!("stage-{n}"),
                    budget_ms: 1_000,
                    dependencies: Vec::new(),
                });
            }
        })
    };
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
        <div class="table-scroll">
            <table class="table table-edit" aria-labelledby="stages-title" data-test="editor-stages">
                <thead>
                    <tr>
                        <th scope="col" class="num">"#"</th>
                        <th scope="col">"Stage"</th>
                        <th scope="col">"Budget (ms)"</th>
                        <th scope="col">"Dependencies (comma-separated)"</th>
                        <th scope="col" class="num">"Running sum (ms)"</th>
                        <th scope="col">
                            <span class="visually-hidden">"Actions"</span>
                        </th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        let n = count.get();
                        if n == 0 {
                            return view! {
                                <tr>
                                    <td colspan="6" class="table-empty">
                                        "No stages: the whole budget is one."
                                    </td>
                                </tr>
                            }
                                .into_any();
                        }
                        (0..n)
                            .map(|i| view! { <StageRow ed index=i total /> })
                            .collect_view()
                            .into_any()
                    }}
                </tbody>
                <tfoot>
                    <tr>
                        <td colspan="6">
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
                                        over()
                                            .then(|| {
                                                format!(" — {} ms over", sum.get() - total.get())
                                            })
                                    }}
                                </span>
                                <span class="meter" aria-hidden="true">
                                    <span
                                        class="meter-fill"
                                        style:width=move || format!("{}%", share())
                                    ></span>
                                </span>
                            </div>
                            <Issues ed path="timeouts.stages" />
                        </td>
                    </tr>
                </tfoot>
            </table>
        </div>
        <button type="button" class="button button-small add-button" data-test="add-stage" on:click=add_stage>
            "Add stage"
        </button>
        <h3 class="subheading" id="dep-timeouts-title">
            "Per-dependency timeouts"
        </h3>
        <p class="section-note muted">
            "Leave empty to bound a dependency by the budget of the stage that lists it."
        </p>
        <div class="table-scroll">
            <table class="table table-edit" aria-labelledby="dep-timeouts-title">
                <thead>
                    <tr>
                        <th scope="col">"Dependency"</th>
                        <th scope="col">"Timeout (ms)"</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        deps.get()
                            .into_iter()
                            .map(|dep| {
                                let (k1, k2) = (dep.clone(), dep.clone());
                                let lens = (
                                    Arc::new(move |p: &Policy| {
                                        show_opt(
                                            p.timeouts.as_ref().and_then(|t| t.dependencies.get(&k1)),
                                        )
                                    }) as Getter,
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
                                    }) as Setter,
                                );
                                view! {
                                    <tr>
                                        <th scope="row">
                                            <code>{dep.clone()}</code>
                                        </th>
                                        <td>
                                            <Field
                                                ed
                                                path=format!("timeouts.dependencies.{dep}")
                                                label=format!("Timeout of {dep} in ms")
                                                lens
                                                numeric=true
                                                placeholder="stage budget"
                                            />
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()
                    }}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn StageRow(ed: Ed, index: usize, total: Memo<u64>) -> impl IntoView {
    let key = index.to_string();
    let path = format!("timeouts.stages.{index}");
    let name = lens(
        &key,
        find_stage,
        find_stage_mut,
        |s| s.name.clone(),
        |s, t| {
            s.name = t.to_owned();
            Ok(())
        },
    );
    let budget = lens(
        &key,
        find_stage,
        find_stage_mut,
        |s| s.budget_ms.to_string(),
        |s, t| {
            s.budget_ms = num(t)?;
            Ok(())
        },
    );
    let dependencies = lens(
        &key,
        find_stage,
        find_stage_mut,
        |s| s.dependencies.join(", "),
        |s, t| {
            s.dependencies = t
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect();
            Ok(())
        },
    );
    let running = Memo::new(move |_| {
        ed.policy.with(|p| {
            p.timeouts.as_ref().map_or(0, |t| {
                t.stages
                    .iter()
                    .take(index + 1)
                    .fold(0_u64, |acc, s| acc.saturating_add(s.budget_ms))
            })
        })
    });
    let over = move || running.get() > total.get();
    view! {
        <tr>
            <td class="num">{index + 1}</td>
            <td>
                <Field ed path=format!("{path}.name") label=format!("Name of stage {}", index + 1) lens=name />
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.budget_ms")
                    label=format!("Budget of stage {} in ms", index + 1)
                    lens=budget
                    numeric=true
                />
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.dependencies")
                    label=format!("Dependencies of stage {}", index + 1)
                    lens=dependencies
                />
                <Issues ed path=format!("{path}.dependencies") inside=true />
            </td>
            <td class="num">
                <span class="figure" class:is-over=over>
                    {move || running.get()}
                </span>
            </td>
            <td>
                <RemoveButton
                    label=format!("Remove stage {}", index + 1)
                    on_remove=Callback::new(move |()| {
                        ed.edit(|p| {
                            if let Some(t) = p.timeouts.as_mut()
                                && index < t.stages.len()
                            {
                                t.stages.remove(index);
                            }
                        })
                    })
                />
            </td>
        </tr>
    }
    .into_any()
}

/// A picker of declared dependencies that `has` does not cover yet, and a
/// button that adds one.
#[component]
fn AddForDependency(
    deps: Memo<Vec<String>>,
    taken: Memo<Vec<String>>,
    #[prop(into)] id: String,
    button: &'static str,
    on_add: Callback<String>,
) -> impl IntoView {
    let select = NodeRef::<html::Select>::new();
    let free = Memo::new(move |_| {
        let taken = taken.get();
        deps.get()
            .into_iter()
            .filter(|d| !taken.contains(d))
            .collect::<Vec<_>>()
    });
    let select_id = format!("{id}-dependency");
    view! {
        <div class="add-row">
            {move || {
                let free = free.get();
                if free.is_empty() {
                    return view! {
                        <p class="muted section-note">
                            "Every declared dependency has one. Declare more under Service."
                        </p>
                    }
                        .into_any();
                }
                let select_id = select_id.clone();
                let test = format!("{select_id}-select");
                view! {
                    <div class="cell-field">
                        <label for=select_id.clone()>"Dependency"</label>
                        <select id=select_id data-test=test node_ref=select>
                            {free
                                .into_iter()
                                .map(|d| {
                                    let value = d.clone();
                                    view! { <option value=value>{d}</option> }
                                })
                                .collect_view()}
                        </select>
                    </div>
                    <button
                        type="button"
                        class="button"
                        data-test=id.clone()
                        on:click=move |_| {
                            if let Some(s) = select.get_untracked() {
                                let value = s.value();
                                if !value.is_empty() {
                                    on_add.run(value);
                                }
                            }
                        }
                    >
                        {button}
                    </button>
                }
                    .into_any()
            }}
        </div>
    }
    .into_any()
}

fn find_retry<'a>(p: &'a Policy, k: &str) -> Option<&'a RetryPolicy> {
    p.retry.get(k)
}

fn find_retry_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut RetryPolicy> {
    p.retry.get_mut(k)
}

#[component]
fn RetrySection(ed: Ed, deps: Memo<Vec<String>>) -> impl IntoView {
    let keys = Memo::new(move |_| {
        ed.policy
            .with(|p| p.retry.keys().cloned().collect::<Vec<_>>())
    });
    view! {
        <Section
            ed
            id="retry"
            title="Retries"
            about="Per dependency: attempts (the first included), exponential backoff with jitter, and which error classes are worth another try."
        >
            <div class="table-scroll">
                <table class="table table-edit" data-test="editor-retry">
                    <thead>
                        <tr>
                            <th scope="col">"Dependency"</th>
                            <th scope="col">"Max attempts"</th>
                            <th scope="col">"Base delay (ms)"</th>
                            <th scope="col">"Max delay (ms)"</th>
                            <th scope="col">"Jitter"</th>
                            <th scope="col">"Retry on"</th>
                            <th scope="col">
                                <span class="visually-hidden">"Actions"</span>
                            </th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            let keys = keys.get();
                            if keys.is_empty() {
                                return view! {
                                    <tr>
                                        <td colspan="7" class="table-empty">
                                            "No retry policies: every call is tried once."
                                        </td>
                                    </tr>
                                }
                                    .into_any();
                            }
                            keys.into_iter()
                                .map(|dep| view! { <RetryRow ed dep /> })
                                .collect_view()
                                .into_any()
                        }}
                    </tbody>
                </table>
            </div>
            <AddForDependency
                deps
                taken=keys
                id="add-retry"
                button="Add retry policy"
                on_add=Callback::new(move |dep: String| {
                    ed.edit(|p| {
                        p.retry
                            .entry(dep)
                            .or_insert(RetryPolicy {
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
                            });
                    })
                })
            />
        </Section>
    }
    .into_any()
}

#[component]
fn RetryRow(ed: Ed, dep: String) -> impl IntoView {
    let path = format!("retry.{dep}");
    let attempts = lens(
        &dep,
        find_retry,
        find_retry_mut,
        |r| r.max_attempts.to_string(),
        |r, t| {
            r.max_attempts = num32(t)?;
            Ok(())
        },
    );
    let base = lens(
        &dep,
        find_retry,
        find_retry_mut,
        |r| r.base_delay_ms.to_string(),
        |r, t| {
            r.base_delay_ms = num(t)?;
            Ok(())
        },
    );
    let max = lens(
        &dep,
        find_retry,
        find_retry_mut,
        |r| r.max_delay_ms.to_string(),
        |r, t| {
            r.max_delay_ms = num(t)?;
            Ok(())
        },
    );
    let jitter = lens(
        &dep,
        find_retry,
        find_retry_mut,
        |r| wire(&r.jitter),
        |r, t| {
            r.jitter = from_wire(t)?;
            Ok(())
        },
    );
    let remove_key = dep.clone();
    view! {
        <tr data-test=format!("editor-retry-{dep}")>
            <th scope="row">
                <code>{dep.clone()}</code>
                <Issues ed path=path.clone() />
                <Issues ed path=format!("{path}.operations") inside=true />
            </th>
            <td>
                <Field
                    ed
                    path=format!("{path}.max_attempts")
                    label=format!("Max attempts for {dep}")
                    lens=attempts
                    numeric=true
                />
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.base_delay_ms")
                    label=format!("Base delay for {dep} in ms")
                    lens=base
                    numeric=true
                />
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.max_delay_ms")
                    label=format!("Max delay for {dep} in ms")
                    lens=max
                    numeric=true
                />
            </td>
            <td>
                <Choice
                    ed
                    path=format!("{path}.jitter")
                    label=format!("Jitter for {dep}")
                    lens=jitter
                    options=JITTERS
                />
            </td>
            <td>
                <RetryOn ed dep=dep.clone() />
            </td>
            <td>
                <RemoveButton
                    label=format!("Remove the retry policy for {dep}")
                    on_remove=Callback::new(move |()| {
                        let key = remove_key.clone();
                        ed.edit(move |p| {
                            p.retry.remove(&key);
                        })
                    })
                />
            </td>
        </tr>
    }
    .into_any()
}

/// The retried error classes as checkboxes, folded into a summary line.
#[component]
fn RetryOn(ed: Ed, dep: String) -> impl IntoView {
    let path = format!("retry.{dep}.retry_on");
    let key = dep.clone();
    let chosen = Memo::new(move |_| {
        ed.policy.with(|p| {
            p.retry
                .get(&key)
                .map(|r| r.retry_on.clone())
                .unwrap_or_default()
        })
    });
    let summary = move || {
        let chosen = chosen.get();
        if chosen.is_empty() {
            "nothing".to_owned()
        } else {
            chosen.iter().map(wire).collect::<Vec<_>>().join(", ")
        }
    };
    let boxes = ERROR_CLASSES
        .into_iter()
        .map(|class| {
            let id = format!("{}-{}", field_id(&path), wire(&class));
            let dep = dep.clone();
            let name = wire(&class);
            view! {
                <li>
                    <input
                        id=id.clone()
                        type="checkbox"
                        data-test=format!("editor-retry-{dep}-retry_on-{name}")
                        prop:checked=move || chosen.with(|c| c.contains(&class))
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            ed.edit(|p| {
                                if let Some(r) = p.retry.get_mut(&dep) {
                                    r.retry_on.retain(|c| *c != class);
                                    if on {
                                        r.retry_on.push(class);
                                        r.retry_on.sort();
                                    }
                                }
                            })
                        }
                    />
                    <label for=id class:muted=!class.is_retryable()>
                        {name.clone()}
                    </label>
                </li>
            }
        })
        .collect_view();
    view! {
        <details class="multi" id=field_id(&path)>
            <summary>{summary}</summary>
            <ul class="check-list">{boxes}</ul>
        </details>
        <Issues ed path inside=true />
    }
    .into_any()
}

fn find_breaker<'a>(p: &'a Policy, k: &str) -> Option<&'a BreakerPolicy> {
    p.breakers.get(k)
}

fn find_breaker_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut BreakerPolicy> {
    p.breakers.get_mut(k)
}

#[component]
fn BreakersSection(ed: Ed, deps: Memo<Vec<String>>) -> impl IntoView {
    let keys = Memo::new(move |_| {
        ed.policy
            .with(|p| p.breakers.keys().cloned().collect::<Vec<_>>())
    });
    view! {
        <Section
            ed
            id="breakers"
            title="Circuit breakers"
            about="Per dependency: when the breaker opens, how long it stays open, and how many probes it lets through before it closes."
        >
            <div class="table-scroll">
                <table class="table table-edit" data-test="editor-breakers">
                    <thead>
                        <tr>
                            <th scope="col">"Dependency"</th>
                            <th scope="col">"Opens on"</th>
                            <th scope="col">"Slow calls"</th>
                            <th scope="col">"Cooldown (ms)"</th>
                            <th scope="col">"Half-open probes"</th>
                            <th scope="col">"Override"</th>
                            <th scope="col">
                                <span class="visually-hidden">"Actions"</span>
                            </th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            let keys = keys.get();
                            if keys.is_empty() {
                                return view! {
                                    <tr>
                                        <td colspan="7" class="table-empty">"No circuit breakers."</td>
                                    </tr>
                                }
                                    .into_any();
                            }
                            keys.into_iter()
                                .map(|dep| view! { <BreakerRow ed dep /> })
                                .collect_view()
                                .into_any()
                        }}
                    </tbody>
                </table>
            </div>
            <AddForDependency
                deps
                taken=keys
                id="add-breaker"
                button="Add circuit breaker"
                on_add=Callback::new(move |dep: String| {
                    ed.edit(|p| {
                        p.breakers
                            .entry(dep)
                            .or_insert(BreakerPolicy {
                                mode: BreakerMode::FailureRate {
                                    threshold_percent: 50,
                                    window_ms: 30_000,
                                    minimum_calls: 20,
                                },
                                slow_call: None,
                                cooldown_ms: 30_000,
                                half_open_probes: 3,
                                forced: Default::default(),
                                alert: None,
                                runbook: None,
                            });
                    })
                })
            />
        </Section>
    }
    .into_any()
}

#[component]
fn BreakerRow(ed: Ed, dep: String) -> impl IntoView {
    let path = format!("breakers.{dep}");
    let key = dep.clone();
    let consecutive = Memo::new(move |_| {
        ed.policy.with(|p| {
            p.breakers
                .get(&key)
                .is_some_and(|b| matches!(b.mode, BreakerMode::Consecutive { .. }))
        })
    });
    let key = dep.clone();
    let slow = Memo::new(move |_| {
        ed.policy
            .with(|p| p.breakers.get(&key).is_some_and(|b| b.slow_call.is_some()))
    });
    let mode = lens(
        &dep,
        find_breaker,
        find_breaker_mut,
        |b| match b.mode {
            BreakerMode::Consecutive { .. } => "consecutive".into(),
            BreakerMode::FailureRate { .. } => "failure_rate".into(),
        },
        |b, t| {
            b.mode = match t {
                "consecutive" => BreakerMode::Consecutive { failures: 5 },
                _ => BreakerMode::FailureRate {
                    threshold_percent: 50,
                    window_ms: 30_000,
                    minimum_calls: 20,
                },
            };
            Ok(())
        },
    );
    let cooldown = lens(
        &dep,
        find_breaker,
        find_breaker_mut,
        |b| b.cooldown_ms.to_string(),
        |b, t| {
            b.cooldown_ms = num(t)?;
            Ok(())
        },
    );
    let probes = lens(
        &dep,
        find_breaker,
        find_breaker_mut,
        |b| b.half_open_probes.to_string(),
        |b, t| {
            b.half_open_probes = num32(t)?;
            Ok(())
        },
    );
    let forced = lens(
        &dep,
        find_breaker,
        find_breaker_mut,
        |b| wire(&b.forced),
        |b, t| {
            b.forced = from_wire(t)?;
            Ok(())
        },
    );
    let remove_key = dep.clone();
    let (slow_get, slow_set) = (dep.clone(), dep.clone());
    let mode_fields = {
        let dep = dep.clone();
        let path = path.clone();
        move || {
            if consecutive.get() {
                let failures = lens(
                    &dep,
                    find_breaker,
                    find_breaker_mut,
                    |b| match b.mode {
                        BreakerMode::Consecutive { failures } => failures.to_string(),
                        _ => String::new(),
                    },
                    |b, t| {
                        let n = num32(t)?;
                        if let BreakerMode::Consecutive { failures } = &mut b.mode {
                            *failures = n;
                        }
                        Ok(())
                    },
                );
                view! {
                    <Field
                        ed
                        path=format!("{path}.mode.failures")
                        label="Failures in a row"
                        lens=failures
                        numeric=true
                        visible_label=true
                    />
                }
                .into_any()
            } else {
                let threshold = lens(
                    &dep,
                    find_breaker,
                    find_breaker_mut,
                    |b| match b.mode {
                        BreakerMode::FailureRate {
                            threshold_percent, ..
                        } => threshold_percent.to_string(),
                        _ => String::new(),
                    },
                    |b, t| {
                        let n = num32(t)?;
                        if let BreakerMode::FailureRate {
                            threshold_percent, ..
                        } = &mut b.mode
                        {
                            *threshold_percent = n;
                        }
                        Ok(())
                    },
                );
                let window = lens(
                    &dep,
                    find_breaker,
                    find_breaker_mut,
                    |b| match b.mode {
                        BreakerMode::FailureRate { window_ms, .. } => window_ms.to_string(),
                        _ => String::new(),
                    },
                    |b, t| {
                        let n = num(t)?;
                        if let BreakerMode::FailureRate { window_ms, .. } = &mut b.mode {
                            *window_ms = n;
                        }
                        Ok(())
                    },
                );
                let minimum = lens(
                    &dep,
                    find_breaker,
                    find_breaker_mut,
                    |b| match b.mode {
                        BreakerMode::FailureRate { minimum_calls, .. } => minimum_calls.to_string(),
                        _ => String::new(),
                    },
                    |b, t| {
                        let n = num32(t)?;
                        if let BreakerMode::FailureRate { minimum_calls, .. } = &mut b.mode {
                            *minimum_calls = n;
                        }
                        Ok(())
                    },
                );
                view! {
                    <Field
                        ed
                        path=format!("{path}.mode.threshold_percent")
                        label="Failure rate (%)"
                        lens=threshold
                        numeric=true
                        visible_label=true
                    />
                    <Field
                        ed
                        path=format!("{path}.mode.window_ms")
                        label="Window (ms)"
                        lens=window
                        numeric=true
                        visible_label=true
                    />
                    <Field
                        ed
                        path=format!("{path}.mode.minimum_calls")
                        label="Minimum calls"
                        lens=minimum
                        numeric=true
                        visible_label=true
                    />
                }
                .into_any()
            }
        }
    };
    let slow_fields = {
        let dep = dep.clone();
        let path = path.clone();
        move || {
            slow.get().then(|| {
                let threshold = lens(
                    &dep,
                    find_breaker,
                    find_breaker_mut,
                    |b| show_opt(b.slow_call.as_ref().map(|s| s.threshold_ms)),
                    |b, t| {
                        let n = num(t)?;
                        if let Some(s) = b.slow_call.as_mut() {
                            s.threshold_ms = n;
                        }
                        Ok(())
                    },
                );
                let rate = lens(
                    &dep,
                    find_breaker,
                    find_breaker_mut,
                    |b| show_opt(b.slow_call.as_ref().map(|s| s.rate_percent)),
                    |b, t| {
                        let n = num32(t)?;
                        if let Some(s) = b.slow_call.as_mut() {
                            s.rate_percent = n;
                        }
                        Ok(())
                    },
                );
                view! {
                    <Field
                        ed
                        path=format!("{path}.slow_call.threshold_ms")
                        label="Slower than (ms)"
                        lens=threshold
                        numeric=true
                        visible_label=true
                    />
                    <Field
                        ed
                        path=format!("{path}.slow_call.rate_percent")
                        label="Share that opens (%)"
                        lens=rate
                        numeric=true
                        visible_label=true
                    />
                }
            })
        }
    };
    view! {
        <tr data-test=format!("editor-breaker-{dep}")>
            <th scope="row">
                <code>{dep.clone()}</code>
                <Issues ed path=path.clone() />
            </th>
            <td class="stack">
                <Choice
                    ed
                    path=format!("{path}.mode")
                    label=format!("When the breaker for {dep} opens")
                    lens=mode
                    options=BREAKER_MODES
                />
                {mode_fields}
            </td>
            <td class="stack">
                <Check
                    ed
                    path=format!("{path}.slow_call")
                    label="count slow calls"
                    visible_label=true
                    get=Arc::new(move |p| p.breakers.get(&slow_get).is_some_and(|b| b.slow_call.is_some()))
                    set=Arc::new(move |p, on| {
                        if let Some(b) = p.breakers.get_mut(&slow_set) {
                            b.slow_call = on
                                .then_some(SlowCall {
                                    threshold_ms: 2_000,
                                    rate_percent: 50,
                                });
                        }
                    })
                />
                {slow_fields}
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.cooldown_ms")
                    label=format!("Cooldown for {dep} in ms")
                    lens=cooldown
                    numeric=true
                />
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.half_open_probes")
                    label=format!("Half-open probes for {dep}")
                    lens=probes
                    numeric=true
                />
            </td>
            <td>
                <Choice
                    ed
                    path=format!("{path}.forced")
                    label=format!("Manual override for {dep}")
                    lens=forced
                    options=FORCED
                />
            </td>
            <td>
                <RemoveButton
                    label=format!("Remove the breaker for {dep}")
                    on_remove=Callback::new(move |()| {
                        let key = remove_key.clone();
                        ed.edit(move |p| {
                            p.breakers.remove(&key);
                        })
                    })
                />
            </td>
        </tr>
    }
    .into_any()
}

fn find_fallback<'a>(p: &'a Policy, k: &str) -> Option<&'a FallbackRule> {
    p.fallbacks.get(k.parse::<usize>().ok()?)
}

fn find_fallback_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut FallbackRule> {
    p.fallbacks.get_mut(k.parse::<usize>().ok()?)
}

#[component]
fn FallbacksSection(ed: Ed) -> impl IntoView {
    let count = Memo::new(move |_| ed.policy.with(|p| p.fallbacks.len()));
    let add = move |_| {
        ed.edit(|p| {
            let component = p
                .service
                .dependencies
                .keys()
                .next()
                .cloned()
                .unwrap_or_default();
            p.fallbacks.push(FallbackRule {
                component,
                failure: FailureType::Unavailable,
                fallback: FallbackAction::ExplainUnavailable {},
                degraded_status: shared::policy::DegradedStatus::Refused,
                user_message: Some("This is unavailable right now.".into()),
                allowed: true,
                confidence_penalty_percent: 0,
                note: None,
                alert: None,
                runbook: None,
            });
        })
    };
    view! {
        <Section
            ed
            id="fallbacks"
            title="Fallback matrix"
            about="When a component fails in a given way: what to do instead, how the answer is labelled, and what the caller is told. Unsafe fallbacks are rejected."
        >
            <div class="table-scroll">
                <table class="table table-edit table-grid" data-test="editor-fallbacks">
                    <thead>
                        <tr>
                            <th scope="col">"Component"</th>
                            <th scope="col">"Failure"</th>
                            <th scope="col">"Fallback"</th>
                            <th scope="col">"Status"</th>
                            <th scope="col">"User message"</th>
                            <th scope="col">"Allowed"</th>
                            <th scope="col">"Confidence penalty (%)"</th>
                            <th scope="col">
                                <span class="visually-hidden">"Actions"</span>
                            </th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            let n = count.get();
                            if n == 0 {
                                return view! {
                                    <tr>
                                        <td colspan="8" class="table-empty">"No fallbacks: failures surface as errors."</td>
                                    </tr>
                                }
                                    .into_any();
                            }
                            (0..n).map(|i| view! { <FallbackRow ed index=i /> }).collect_view().into_any()
                        }}
                    </tbody>
                </table>
            </div>
            <button type="button" class="button button-small add-button" data-test="add-fallback" on:click=add>
                "Add fallback row"
            </button>
        </Section>
    }
    .into_any()
}

#[component]
fn FallbackRow(ed: Ed, index: usize) -> impl IntoView {
    let key = index.to_string();
    let path = format!("fallbacks.{index}");
    let row = index + 1;
    let component = lens(
        &key,
        find_fallback,
        find_fallback_mut,
        |f| f.component.clone(),
        |f, t| {
            f.component = t.to_owned();
            Ok(())
        },
    );
    let failure = lens(
        &key,
        find_fallback,
        find_fallback_mut,
        |f| wire(&f.failure),
        |f, t| {
            f.failure = from_wire(t)?;
            Ok(())
        },
    );
    let action = lens(
        &key,
        find_fallback,
        find_fallback_mut,
        |f| f.fallback.name().to_owned(),
        |f, t| {
            if let Some(next) = fallback_action(t, &f.fallback) {
                f.fallback = next;
            }
            Ok(())
        },
    );
    let status = lens(
        &key,
        find_fallback,
        find_fallback_mut,
        |f| wire(&f.degraded_status),
        |f, t| {
            f.degraded_status = from_wire(t)?;
            Ok(())
        },
    );
    let message = lens(
        &key,
        find_fallback,
        find_fallback_mut,
        |f| f.user_message.clone().unwrap_or_default(),
        |f, t| {
            f.user_message = opt_text(t);
            Ok(())
        },
    );
    let penalty = lens(
        &key,
        find_fallback,
        find_fallback_mut,
        |f| f.confidence_penalty_percent.to_string(),
        |f, t| {
            f.confidence_penalty_percent = num32(t)?;
            Ok(())
        },
    );
    let k = key.clone();
    let kind = Memo::new(move |_| {
        ed.policy.with(|p| {
            find_fallback(p, &k)
                .map(|f| f.fallback.name())
                .unwrap_or("")
        })
    });
    let param = {
        let key = key.clone();
        let path = path.clone();
        move || {
            let (label, field) = match kind.get() {
                "alternate_dependency" => ("Dependency", "dependency"),
                "alternate_model" => ("Model", "model"),
                "cached" => ("Max staleness (ms)", "max_staleness_ms"),
                _ => return None,
            };
            let lens = lens(
                &key,
                find_fallback,
                find_fallback_mut,
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
        }
    };
    let (allowed_get, allowed_set) = (key.clone(), key.clone());
    view! {
        <tr>
            <td>
                <Field ed path=format!("{path}.component") label=format!("Component of row {row}") lens=component />
                <Issues ed path=path.clone() />
            </td>
            <td>
                <Choice
                    ed
                    path=format!("{path}.failure")
                    label=format!("Failure of row {row}")
                    lens=failure
                    options=FAILURE_TYPES
                />
            </td>
            <td class="stack">
                <Choice
                    ed
                    path=format!("{path}.fallback")
                    label=format!("Fallback of row {row}")
                    lens=action
                    options=FALLBACK_ACTIONS
                />
                {param}
            </td>
            <td>
                <Choice
                    ed
                    path=format!("{path}.degraded_status")
                    label=format!("Status of row {row}")
                    lens=status
                    options=DEGRADED_STATUSES
                />
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.user_message")
                    label=format!("User message of row {row}")
                    lens=message
                />
            </td>
            <td>
                <Check
                    ed
                    path=format!("{path}.allowed")
                    label=format!("Row {row} is allowed")
                    get=Arc::new(move |p| find_fallback(p, &allowed_get).is_some_and(|f| f.allowed))
                    set=Arc::new(move |p, on| {
                        if let Some(f) = find_fallback_mut(p, &allowed_set) {
                            f.allowed = on;
                        }
                    })
                />
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.confidence_penalty_percent")
                    label=format!("Confidence penalty of row {row} in percent")
                    lens=penalty
                    numeric=true
                />
            </td>
            <td>
                <RemoveButton
                    label=format!("Remove fallback row {row}")
                    on_remove=Callback::new(move |()| {
                        ed.edit(|p| {
                            if index < p.fallbacks.len() {
                                p.fallbacks.remove(index);
                            }
                        })
                    })
                />
            </td>
        </tr>
    }
    .into_any()
}

fn find_bulkhead<'a>(p: &'a Policy, k: &str) -> Option<&'a Bulkhead> {
    p.bulkheads.get(k)
}

fn find_bulkhead_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut Bulkhead> {
    p.bulkheads.get_mut(k)
}

/// `bulkhead/override` as a lens key.
fn find_override<'a>(p: &'a Policy, k: &str) -> Option<&'a BulkheadOverride> {
    let (b, o) = k.split_once('/')?;
    p.bulkheads.get(b)?.overrides.get(o)
}

fn find_override_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut BulkheadOverride> {
    let (b, o) = k.split_once('/')?;
    p.bulkheads.get_mut(b)?.overrides.get_mut(o)
}

#[component]
fn BulkheadsSection(ed: Ed) -> impl IntoView {
    let keys = Memo::new(move |_| {
        ed.policy
            .with(|p| p.bulkheads.keys().cloned().collect::<Vec<_>>())
    });
    let name = NodeRef::<html::Input>::new();
    let error = RwSignal::new(None::<String>);
    let add = move |_| {
        let Some(input) = name.get_untracked() else {
            return;
        };
        let key = input.value().trim().to_owned();
        if key.is_empty() {
            error.set(Some("name the bulkhead".into()));
            return;
        }
        if ed.policy.with_untracked(|p| p.bulkheads.contains_key(&key)) {
            error.set(Some(format!("`{key}` already exists")));
            return;
        }
        error.set(None);
        ed.edit(|p| {
            p.bulkheads.insert(
                key,
                Bulkhead {
                    partition: shared::policy::PartitionKey::Tenant,
                    dependency: None,
                    max_concurrent: 10,
                    max_queued: 20,
                    queue_timeout_ms: 500,
                    overrides: BTreeMap::new(),
                },
            );
        });
        input.set_value("");
    };
    view! {
        <Section
            ed
            id="bulkheads"
            title="Bulkheads"
            about="Concurrency and queue limits per partition (tenant, tool, model, queue or priority class), with overrides for particular keys."
        >
            <div class="table-scroll">
                <table class="table table-edit" data-test="editor-bulkheads">
                    <thead>
                        <tr>
                            <th scope="col">"Bulkhead"</th>
                            <th scope="col">"Partition by"</th>
                            <th scope="col">"Dependency"</th>
                            <th scope="col">"Max concurrent"</th>
                            <th scope="col">"Max queued"</th>
                            <th scope="col">"Queue timeout (ms)"</th>
                            <th scope="col">
                                <span class="visually-hidden">"Actions"</span>
                            </th>
                        </tr>
                    </thead>
                    {move || {
                        let keys = keys.get();
                        if keys.is_empty() {
                            return view! {
                                <tbody>
                                    <tr>
                                        <td colspan="7" class="table-empty">"No bulkheads."</td>
                                    </tr>
                                </tbody>
                            }
                                .into_any();
                        }
                        keys.into_iter()
                            .map(|b| view! { <BulkheadRows ed name=b /> })
                            .collect_view()
                            .into_any()
                    }}
                </table>
            </div>
            <div class="add-row">
                <div class="cell-field">
                    <label for="add-bulkhead-name">"New bulkhead"</label>
                    <input
                        id="add-bulkhead-name"
                        type="text"
                        autocomplete="off"
                        spellcheck="false"
                        placeholder="e.g. tenants"
                        data-test="add-bulkhead-name"
                        node_ref=name
                    />
                </div>
                <button type="button" class="button" data-test="add-bulkhead" on:click=add>
                    "Add bulkhead"
                </button>
                <p class="field-error" role="alert">
                    {move || error.get()}
                </p>
            </div>
        </Section>
    }
    .into_any()
}

/// One bulkhead: its own row, then one row per override.
#[component]
fn BulkheadRows(ed: Ed, name: String) -> impl IntoView {
    let path = format!("bulkheads.{name}");
    let partition = lens(
        &name,
        find_bulkhead,
        find_bulkhead_mut,
        |b| wire(&b.partition),
        |b, t| {
            b.partition = from_wire(t)?;
            Ok(())
        },
    );
    let dependency = lens(
        &name,
        find_bulkhead,
        find_bulkhead_mut,
        |b| b.dependency.clone().unwrap_or_default(),
        |b, t| {
            b.dependency = opt_text(t.trim());
            Ok(())
        },
    );
    let concurrent = lens(
        &name,
        find_bulkhead,
        find_bulkhead_mut,
        |b| b.max_concurrent.to_string(),
        |b, t| {
            b.max_concurrent = num32(t)?;
            Ok(())
        },
    );
    let queued = lens(
        &name,
        find_bulkhead,
        find_bulkhead_mut,
        |b| b.max_queued.to_string(),
        |b, t| {
            b.max_queued = num32(t)?;
            Ok(())
        },
    );
    let timeout = lens(
        &name,
        find_bulkhead,
        find_bulkhead_mut,
        |b| b.queue_timeout_ms.to_string(),
        |b, t| {
            b.queue_timeout_ms = num(t)?;
            Ok(())
        },
    );
    let k = name.clone();
    let overrides = Memo::new(move |_| {
        ed.policy.with(|p| {
            p.bulkheads
                .get(&k)
                .map(|b| b.overrides.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let remove_key = name.clone();
    let override_input = NodeRef::<html::Input>::new();
    let add_for = name.clone();
    let add_override = move |_| {
        let Some(input) = override_input.get_untracked() else {
            return;
        };
        let key = input.value().trim().to_owned();
        if key.is_empty() {
            return;
        }
        let b = add_for.clone();
        ed.edit(move |p| {
            if let Some(b) = p.bulkheads.get_mut(&b) {
                b.overrides.entry(key).or_default();
            }
        });
        input.set_value("");
    };
    let override_id = format!("add-override-{name}");
    let rows_for = name.clone();
    view! {
        <tbody class="group" data-test=format!("editor-bulkhead-{name}")>
            <tr>
                <th scope="row">
                    <code>{name.clone()}</code>
                    <Issues ed path=path.clone() />
                </th>
                <td>
                    <Choice
                        ed
                        path=format!("{path}.partition")
                        label=format!("Partition of {name}")
                        lens=partition
                        options=PARTITIONS
                    />
                </td>
                <td>
                    <Field
                        ed
                        path=format!("{path}.dependency")
                        label=format!("Dependency of {name}")
                        lens=dependency
                        placeholder="the service itself"
                    />
                </td>
                <td>
                    <Field
                        ed
                        path=format!("{path}.max_concurrent")
                        label=format!("Max concurrent for {name}")
                        lens=concurrent
                        numeric=true
                    />
                </td>
                <td>
                    <Field
                        ed
                        path=format!("{path}.max_queued")
                        label=format!("Max queued for {name}")
                        lens=queued
                        numeric=true
                    />
                </td>
                <td>
                    <Field
                        ed
                        path=format!("{path}.queue_timeout_ms")
                        label=format!("Queue timeout for {name} in ms")
                        lens=timeout
                        numeric=true
                    />
                </td>
                <td>
                    <RemoveButton
                        label=format!("Remove bulkhead {name}")
                        on_remove=Callback::new(move |()| {
                            let key = remove_key.clone();
                            ed.edit(move |p| {
                                p.bulkheads.remove(&key);
                            })
                        })
                    />
                </td>
            </tr>
            {move || {
                overrides
                    .get()
                    .into_iter()
                    .map(|o| view! { <OverrideRow ed bulkhead=rows_for.clone() key_name=o /> })
                    .collect_view()
            }}
            <tr class="subrow">
                <td></td>
                <td colspan="6">
                    <div class="add-row add-row-inline">
                        <div class="cell-field">
                            <label for=override_id.clone()>{format!("Override a key of {name}")}</label>
                            <input
                                id=override_id
                                type="text"
                                autocomplete="off"
                                spellcheck="false"
                                placeholder="e.g. tenant-a or batch_eval"
                                node_ref=override_input
                            />
                        </div>
                        <button type="button" class="button button-small" on:click=add_override>
                            "Add override"
                        </button>
                    </div>
                </td>
            </tr>
        </tbody>
    }
    .into_any()
}

#[component]
fn OverrideRow(ed: Ed, bulkhead: String, key_name: String) -> impl IntoView {
    let key = format!("{bulkhead}/{key_name}");
    let path = format!("bulkheads.{bulkhead}.overrides.{key_name}");
    let concurrent = lens(
        &key,
        find_override,
        find_override_mut,
        |o| show_opt(o.max_concurrent),
        |o, t| {
            o.max_concurrent = opt_num32(t)?;
            Ok(())
        },
    );
    let queued = lens(
        &key,
        find_override,
        find_override_mut,
        |o| show_opt(o.max_queued),
        |o, t| {
            o.max_queued = opt_num32(t)?;
            Ok(())
        },
    );
    let timeout = lens(
        &key,
        find_override,
        find_override_mut,
        |o| show_opt(o.queue_timeout_ms),
        |o, t| {
            o.queue_timeout_ms = opt_num(t)?;
            Ok(())
        },
    );
    let (b, k) = (bulkhead.clone(), key_name.clone());
    view! {
        <tr class="subrow">
            <td></td>
            <td colspan="2">
                "override for " <code>{key_name.clone()}</code>
                <Issues ed path=path.clone() />
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.max_concurrent")
                    label=format!("Max concurrent for {key_name}")
                    lens=concurrent
                    numeric=true
                    placeholder="inherit"
                />
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.max_queued")
                    label=format!("Max queued for {key_name}")
                    lens=queued
                    numeric=true
                    placeholder="inherit"
                />
            </td>
            <td>
                <Field
                    ed
                    path=format!("{path}.queue_timeout_ms")
                    label=format!("Queue timeout for {key_name} in ms")
                    lens=timeout
                    numeric=true
                    placeholder="inherit"
                />
            </td>
            <td>
                <RemoveButton
                    label=format!("Remove the override for {key_name}")
                    on_remove=Callback::new(move |()| {
                        let (b, k) = (b.clone(), k.clone());
                        ed.edit(move |p| {
                            if let Some(b) = p.bulkheads.get_mut(&b) {
                                b.overrides.remove(&k);
                            }
                        })
                    })
                />
            </td>
        </tr>
    }
    .into_any()
}

/// Runs `f` on the limits section, creating it, and drops it again when
/// nothing is left in it.
fn with_limits(
    p: &mut Policy,
    f: impl FnOnce(&mut Limits) -> Result<(), String>,
) -> Result<(), String> {
    let limits = p.limits.get_or_insert_with(Limits::default);
    let result = f(limits);
    if *limits == Limits::default() {
        p.limits = None;
    }
    result
}

/// Sets one of a rate's two numbers. No rate means no limit; an empty burst
/// is the rate itself.
fn set_rate(
    rate: &mut Option<RateLimit>,
    per_second: Option<&str>,
    burst: Option<&str>,
) -> Result<(), String> {
    let current = rate.clone();
    let per_second = match per_second {
        Some(t) => match opt_num32(t)? {
            // Clearing the rate removes the limit, burst and all.
            None => {
                *rate = None;
                return Ok(());
            }
            some => some,
        },
        None => current.as_ref().map(|r| r.per_second),
    };
    let burst = match burst {
        Some(t) => opt_num32(t)?,
        None => current.as_ref().map(|r| r.burst),
    };
    if per_second.is_none() && burst.is_some() {
        return Err("set the rate first".to_owned());
    }
    *rate = per_second.map(|p| RateLimit {
        per_second: p,
        burst: burst.unwrap_or(p),
    });
    Ok(())
}

#[component]
fn LimitsSection(ed: Ed, deps: Memo<Vec<String>>) -> impl IntoView {
    let rate = (
        Arc::new(|p: &Policy| {
            show_opt(
                p.limits
                    .as_ref()
                    .and_then(|l| l.requests.as_ref())
                    .map(|r| r.per_second),
            )
        }) as Getter,
        Arc::new(|p: &mut Policy, t: &str| {
            with_limits(p, |l| set_rate(&mut l.requests, Some(t), None))
        }) as Setter,
    );
    let burst = (
        Arc::new(|p: &Policy| {
            show_opt(
                p.limits
                    .as_ref()
                    .and_then(|l| l.requests.as_ref())
                    .map(|r| r.burst),
            )
        }) as Getter,
        Arc::new(|p: &mut Policy, t: &str| {
            with_limits(p, |l| set_rate(&mut l.requests, None, Some(t)))
        }) as Setter,
    );
    let tokens = (
        Arc::new(|p: &Policy| show_opt(p.limits.as_ref().and_then(|l| l.tokens_per_minute)))
            as Getter,
        Arc::new(|p: &mut Policy, t: &str| {
            let n = opt_num(t)?;
            with_limits(p, |l| {
                l.tokens_per_minute = n;
                Ok(())
            })
        }) as Setter,
    );
    let cost = (
        Arc::new(|p: &Policy| {
            show_opt(
                p.limits
                    .as_ref()
                    .and_then(|l| l.cost_per_tenant_per_day_usd_micros),
            )
        }) as Getter,
        Arc::new(|p: &mut Policy, t: &str| {
            let n = opt_num(t)?;
            with_limits(p, |l| {
                l.cost_per_tenant_per_day_usd_micros = n;
                Ok(())
            })
        }) as Setter,
    );
    let keys = Memo::new(move |_| {
        ed.policy.with(|p| {
            p.limits
                .as_ref()
                .map(|l| l.dependencies.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    view! {
        <Section
            ed
            id="limits"
            title="Rate limits and budgets"
            about="Reserved before each call. Leave a field empty for no limit."
        >
            <div class="form-grid">
                <Field ed path="limits.requests.per_second" label="Requests per second, per tenant" lens=rate numeric=true visible_label=true />
                <Field ed path="limits.requests.burst" label="Burst" lens=burst numeric=true visible_label=true />
                <Field ed path="limits.tokens_per_minute" label="Model tokens per minute" lens=tokens numeric=true visible_label=true />
                <Field
                    ed
                    path="limits.cost_per_tenant_per_day_usd_micros"
                    label="Cost per tenant per day (micro-USD)"
                    lens=cost
                    numeric=true
                    visible_label=true
                />
            </div>
            <Issues ed path="limits.requests" />
            <h3 class="subheading" id="dep-limits-title">
                "Per dependency"
            </h3>
            <div class="table-scroll">
                <table class="table table-edit" aria-labelledby="dep-limits-title" data-test="editor-dependency-limits">
                    <thead>
                        <tr>
                            <th scope="col">"Dependency"</th>
                            <th scope="col">"Calls per second"</th>
                            <th scope="col">"Burst"</th>
                            <th scope="col">"Tokens per minute"</th>
                            <th scope="col">
                                <span class="visually-hidden">"Actions"</span>
                            </th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            let keys = keys.get();
                            if keys.is_empty() {
                                return view! {
                                    <tr>
                                        <td colspan="5" class="table-empty">"No per-dependency limits."</td>
                                    </tr>
                                }
                                    .into_any();
                            }
                            keys.into_iter()
                                .map(|dep| view! { <DependencyLimitRow ed dep /> })
                                .collect_view()
                                .into_any()
                        }}
                    </tbody>
                </table>
            </div>
            <AddForDependency
                deps
                taken=keys
                id="add-limit"
                button="Add dependency limit"
                on_add=Callback::new(move |dep: String| {
                    ed.edit(|p| {
                        let _ = with_limits(
                            p,
                            |l| {
                                l.dependencies
                                    .entry(dep)
                                    .or_insert(DependencyLimit {
                                        requests: Some(RateLimit {
                                            per_second: 50,
                                            burst: 100,
                                        }),
                                        tokens_per_minute: None,
                                    });
                                Ok(())
                            },
                        );
                    })
                })
            />
        </Section>
    }
    .into_any()
}

fn find_limit<'a>(p: &'a Policy, k: &str) -> Option<&'a DependencyLimit> {
    p.limits.as_ref()?.dependencies.get(k)
}

fn find_limit_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut DependencyLimit> {
    p.limits.as_mut()?.dependencies.get_mut(k)
}

#[component]
fn DependencyLimitRow(ed: Ed, dep: String) -> impl IntoView {
    let path = format!("limits.dependencies.{dep}");
    let rate = lens(
        &dep,
        find_limit,
        find_limit_mut,
        |l| show_opt(l.requests.as_ref().map(|r| r.per_second)),
        |l, t| set_rate(&mut l.requests, Some(t), None),
    );
    let burst = lens(
        &dep,
        find_limit,
        find_limit_mut,
        |l| show_opt(l.requests.as_ref().map(|r| r.burst)),
        |l, t| set_rate(&mut l.requests, None, Some(t)),
    );
    let tokens = lens(
        &dep,
        find_limit,
        find_limit_mut,
        |l| show_opt(l.tokens_per_minute),
        |l, t| {
            l.tokens_per_minute = opt_num(t)?;
            Ok(())
        },
    );
    let remove_key = dep.clone();
    view! {
        <tr>
            <th scope="row">
                <code>{dep.clone()}</code>
                <Issues ed path=path.clone() />
                <Issues ed path=format!("{path}.requests") />
            </th>
            <td>
                <Field ed path=format!("{path}.requests.per_second") label=format!("Calls per second to {dep}") lens=rate numeric=true />
            </td>
            <td>
                <Field ed path=format!("{path}.requests.burst") label=format!("Burst for {dep}") lens=burst numeric=true />
            </td>
            <td>
                <Field ed path=format!("{path}.tokens_per_minute") label=format!("Tokens per minute for {dep}") lens=tokens numeric=true />
            </td>
            <td>
                <RemoveButton
                    label=format!("Remove the limit for {dep}")
                    on_remove=Callback::new(move |()| {
                        let key = remove_key.clone();
                        ed.edit(move |p| {
                            let _ = with_limits(
                                p,
                                |l| {
                                    l.dependencies.remove(&key);
                                    Ok(())
                                },
                            );
                        })
                    })
                />
            </td>
        </tr>
    }
    .into_any()
}

// ----- YAML ---------------------------------------------------------------
//
// YAML is read and written by the server, through the two server functions
// below, not in the browser: the YAML parser and emitter were the largest
// single part of the wasm bundle (about 470 KiB before compression) and only
// this view needs them. The server runs the very same `Policy::from_yaml`
// and `to_yaml` that `ballast policy apply` and the REST API use, so the text
// means the same everywhere. What comes back is the document as JSON, and
// the browser validates it with `shared`'s own code, as it does for the
// form. The price is a round trip per edit, and no YAML view without the
// server; the form works offline as before.

/// What the server made of a YAML text.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum YamlRead {
    /// The text is a policy: here it is as JSON, and as canonical YAML.
    Parsed { json: String, tidy: String },
    /// The text is not a policy: the parse error as a sentence, and the
    /// path of the field it blames.
    Invalid {
        message: String,
        path: Option<String>,
    },
}

/// Only a signed-in user may make the server parse documents.
#[cfg(feature = "ssr")]
fn require_user() -> Result<(), ServerFnError> {
    use axum::http::request::Parts;
    let signed_in = use_context::<Parts>()
        .is_some_and(|parts| parts.extensions.get::<shared::api::Me>().is_some());
    if signed_in {
        Ok(())
    } else {
        Err(ServerFnError::new("your session has ended; sign in again"))
    }
}

/// Reads a YAML text as a policy, exactly as the server reads policy files.
#[server(prefix = "/_ballast/fn", endpoint = "policy_yaml_read")]
pub async fn read_policy_yaml(text: String) -> Result<YamlRead, ServerFnError> {
    require_user()?;
    Ok(match Policy::from_yaml(&text) {
        Ok(policy) => {
            let json = serde_json::to_string(&policy).map_err(ServerFnError::new)?;
            let tidy = policy.to_yaml().map_err(ServerFnError::new)?;
            YamlRead::Parsed { json, tidy }
        }
        Err(e) => YamlRead::Invalid {
            message: e.to_string(),
            path: e.path().map(str::to_owned),
        },
    })
}

/// Writes a policy, given as JSON, in canonical YAML.
#[server(prefix = "/_ballast/fn", endpoint = "policy_yaml_write")]
pub async fn write_policy_yaml(json: String) -> Result<String, ServerFnError> {
    require_user()?;
    let policy = Policy::from_json(&json).map_err(ServerFnError::new)?;
    policy.to_yaml().map_err(ServerFnError::new)
}

/// Where the YAML view stands.
#[derive(Debug, Clone, PartialEq)]
enum YamlStatus {
    /// Waiting for the server to write the document out.
    Rendering,
    /// The text is the document (or the last good state of it).
    Parses,
    /// "Apply and tidy" worked.
    Applied,
    /// The text does not parse: the message and the path it blames.
    Invalid(String, Option<String>),
}

/// The whole document as YAML. Whenever the text parses, it becomes the
/// document (so validation follows the typing); when it does not, the parse
/// error shows and the document keeps its last good state. Apply also
/// rewrites the text in canonical form.
#[component]
fn YamlView(ed: Ed) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let status = RwSignal::new(YamlStatus::Rendering);
    let textarea = NodeRef::<html::Textarea>::new();
    // Answers can overtake each other; only the one to the newest request
    // may change the document.
    let latest = StoredValue::new(0_u64);
    let next_request = move || {
        let generation = latest.get_value() + 1;
        latest.set_value(generation);
        generation
    };
    let is_latest = move |generation| latest.try_get_value() == Some(generation);

    let generation = next_request();
    let json = ed
        .policy
        .with_untracked(serde_json::to_string)
        .unwrap_or_default();
    leptos::task::spawn_local(async move {
        let answer = write_policy_yaml(json).await;
        if !is_latest(generation) {
            return;
        }
        match answer {
            Ok(yaml) => {
                text.try_set(yaml);
                status.try_set(YamlStatus::Parses);
            }
            Err(e) => {
                status.try_set(YamlStatus::Invalid(yaml_call_failed(&e), None));
            }
        }
    });

    // Reads `source` on the server; with `tidy`, also replaces the text with
    // the canonical form (or, on an error, takes the keyboard to the text).
    let read = move |source: String, tidy: bool| {
        let generation = next_request();
        leptos::task::spawn_local(async move {
            let answer = read_policy_yaml(source).await;
            if !is_latest(generation) {
                return;
            }
            match answer {
                Ok(YamlRead::Parsed {
                    json,
                    tidy: canonical,
                }) => match serde_json::from_str::<Policy>(&json) {
                    Ok(policy) => {
                        if ed.policy.with_untracked(|p| *p != policy) {
                            ed.policy.try_set(policy);
                        }
                        if tidy {
                            text.try_set(canonical);
                            status.try_set(YamlStatus::Applied);
                        } else {
                            status.try_set(YamlStatus::Parses);
                        }
                    }
                    Err(e) => {
                        status.try_set(YamlStatus::Invalid(e.to_string(), None));
                    }
                },
                Ok(YamlRead::Invalid { message, path }) => {
                    status.try_set(YamlStatus::Invalid(message, path));
                    if tidy && let Some(t) = textarea.get_untracked() {
                        let _ = t.focus();
                    }
                }
                Err(e) => {
                    status.try_set(YamlStatus::Invalid(yaml_call_failed(&e), None));
                }
            }
        });
    };
    let on_input = move |ev| {
        let value = event_target_value(&ev);
        text.set(value.clone());
        read(value, false);
    };
    let apply = move |_| read(text.get_untracked(), true);
    let rendering = move || status.with(|s| *s == YamlStatus::Rendering);
    view! {
        <section class="panel editor-section" aria-labelledby="yaml-title">
            <div class="panel-header">
                <h2 id="yaml-title">"The whole document as YAML"</h2>
                <p class="muted">"Edits apply as you type whenever the text parses."</p>
            </div>
            <div class="yaml-body">
                <label for="yaml-editor" class="visually-hidden">
                    "Policy YAML"
                </label>
                <textarea
                    id="yaml-editor"
                    class="yaml-editor"
                    data-test="yaml-editor"
                    spellcheck="false"
                    autocomplete="off"
                    autocapitalize="none"
                    rows="28"
                    aria-describedby="yaml-status"
                    aria-invalid=move || {
                        status.with(|s| matches!(s, YamlStatus::Invalid(..))).then_some("true")
                    }
                    aria-busy=move || rendering().then_some("true")
                    readonly=rendering
                    prop:value=move || text.get()
                    node_ref=textarea
                    on:input=on_input
                ></textarea>
                <div class="yaml-actions">
                    <button
                        type="button"
                        class="button"
                        data-test="yaml-apply"
                        disabled=rendering
                        on:click=apply
                    >
                        "Apply and tidy"
                    </button>
                    <div id="yaml-status" class="yaml-status" aria-live="polite">
                        {move || match status.get() {
                            YamlStatus::Invalid(message, path) => {
                                view! {
                                    <p class="issue issue-error" data-test="yaml-error" data-path=path>
                                        {message}
                                    </p>
                                }
                                    .into_any()
                            }
                            YamlStatus::Applied => {
                                view! {
                                    <p class="muted" data-test="yaml-applied">
                                        "Applied."
                                    </p>
                                }
                                    .into_any()
                            }
                            YamlStatus::Rendering => {
                                view! { <p class="muted">"Writing the document as YAML…"</p> }
                                    .into_any()
                            }
                            YamlStatus::Parses => view! { <p class="muted">"Parses."</p> }.into_any(),
                        }}
                    </div>
                </div>
            </div>
        </section>
    }
    .into_any()
}

/// A failed server function call as a sentence; the document is unchanged.
fn yaml_call_failed(error: &ServerFnError) -> String {
    format!("Ballast could not read the YAML, so the document is unchanged: {error}")
}

// ----- Summary and actions ------------------------------------------------

/// Moves the keyboard to the field a finding names, or the nearest thing
/// above it that the form shows.
fn focus_path(path: &str) {
    let mut path = path.to_owned();
    loop {
        if let Some(element) = document().get_element_by_id(&field_id(&path)) {
            use leptos::wasm_bindgen::JsCast;
            if let Ok(html) = element.dyn_into::<leptos::web_sys::HtmlElement>() {
                let _ = html.focus();
            }
            return;
        }
        match path.rfind('.') {
            Some(i) => path.truncate(i),
            None => return,
        }
    }
}

#[component]
fn FindingsSummary(ed: Ed) -> impl IntoView {
    let counts = Memo::new(move |_| {
        ed.report
            .with(|r| (r.errors().count(), r.warnings().count()))
    });
    view! {
        <section class="panel summary" aria-labelledby="summary-title" data-test="findings-summary">
            <div class="panel-header">
                <h2 id="summary-title">"Validation"</h2>
                <p class="summary-counts" aria-live="polite">
                    <span class="count count-error" data-test="error-count">
                        {move || counts.get().0}
                    </span>
                    " errors · "
                    <span class="count count-warning" data-test="warning-count">
                        {move || counts.get().1}
                    </span>
                    " warnings"
                </p>
            </div>
            {move || {
                let findings = ed.report.with(|r| r.findings.clone());
                if findings.is_empty() {
                    return view! {
                        <p class="summary-empty" data-test="findings-none">
                            "No findings: the policy is valid."
                        </p>
                    }
                        .into_any();
                }
                view! {
                    <ul class="findings">
                        {findings
                            .into_iter()
                            .map(|f| {
                                let (class, label) = match f.severity {
                                    Severity::Error => ("finding finding-error", "error"),
                                    Severity::Warning => ("finding finding-warning", "warning"),
                                };
                                let path = f.path.clone();
                                let data_path = f.path.clone();
                                view! {
                                    <li class=class data-test="finding" data-path=data_path>
                                        <span class="finding-severity">{label}</span>
                                        <button
                                            type="button"
                                            class="link-button"
                                            title="Go to the field"
                                            on:click=move |_| focus_path(&path)
                                        >
                                            <code>{f.path}</code>
                                        </button>
                                        <span class="finding-message">{f.message}</span>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                }
                    .into_any()
            }}
        </section>
    }
    .into_any()
}

#[component]
fn Actions(
    ed: Ed,
    name: String,
    env: String,
    can_edit: bool,
    can_publish: bool,
    saved: RwSignal<Policy>,
    source: RwSignal<Source>,
    dirty: Memo<bool>,
    active_version: Signal<Option<u64>>,
    on_published: Callback<()>,
) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let target = StoredValue::new((name, env));
    let save_result = RwSignal::new(None::<Result<String, String>>);
    let diff = RwSignal::new(None::<Result<DiffView, String>>);
    let publish_result = RwSignal::new(None::<Result<PublishOutcome, String>>);
    let message = RwSignal::new(String::new());
    let canary = RwSignal::new(String::new());
    let has_errors = Memo::new(move |_| ed.report.with(ValidationReport::has_errors));

    // Saves the editor's document as the draft; returns whether it worked.
    let save = move || async move {
        let (n, e) = target.get_value();
        let policy = ed.policy.get_untracked();
        match api::save_draft(&n, &e, &policy).await {
            Ok(draft) => {
                saved.try_set(policy);
                source.try_set(Source::Draft {
                    by: draft.updated_by,
                    at_ms: draft.updated_at_ms,
                });
                save_result.try_set(Some(Ok(format!(
                    "Draft saved, {}.",
                    Utc::from_millis(draft.updated_at_ms).display()
                ))));
                true
            }
            Err(error) => {
                save_result.try_set(Some(Err(describe(&error))));
                false
            }
        }
    };
    let save_action = Action::new_local(move |(): &()| async move {
        save().await;
    });
    let diff_action = Action::new_local(move |(): &()| async move {
        if can_edit && dirty.get_untracked() && !save().await {
            return;
        }
        let (n, e) = target.get_value();
        let result = api::diff(&n, &e, "active", "draft").await;
        diff.try_set(Some(result.map_err(|e| describe(&e))));
    });
    let publish_action = Action::new_local(move |request: &PublishRequest| {
        let request = request.clone();
        async move {
            let (n, e) = target.get_value();
            let result = api::publish(&n, &e, &request).await;
            if result.is_ok() {
                on_published.run(());
            }
            publish_result.try_set(Some(result.map_err(|e| describe(&e))));
        }
    });
    let busy = move || {
        save_action.pending().get() || diff_action.pending().get() || publish_action.pending().get()
    };
    let on_publish = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = message.get_untracked();
        if text.trim().is_empty() {
            publish_result.set(Some(Err(
                "Say why you publish: the message lands in the version and the audit log.".into(),
            )));
            return;
        }
        let canary_percent = match canary.get_untracked().trim() {
            "" => None,
            t => match t.parse::<u8>() {
                Ok(p) if (1..=99).contains(&p) => Some(p),
                _ => {
                    publish_result.set(Some(Err(
                        "A canary takes 1 to 99 percent of instances.".into()
                    )));
                    return;
                }
            },
        };
        publish_result.set(None);
        publish_action.dispatch(PublishRequest {
            message: text.trim().to_owned(),
            canary_percent,
            document: Some(ed.policy.get_untracked()),
        });
    };

    view! {
        <section class="panel actions" aria-labelledby="actions-title">
            <div class="panel-header">
                <h2 id="actions-title">"Save and publish"</h2>
            </div>
            <div class="actions-body">
                <div class="button-row">
                    {can_edit
                        .then(|| {
                            view! {
                                <button
                                    type="button"
                                    class="button"
                                    data-test="save-draft"
                                    disabled=move || busy() || !hydrated.get()
                                    on:click=move |_| {
                                        save_action.dispatch(());
                                    }
                                >
                                    "Save draft"
                                </button>
                            }
                        })}
                    <button
                        type="button"
                        class="button"
                        data-test="diff-button"
                        disabled=move || busy() || !hydrated.get() || active_version.get().is_none()
                        title=move || {
                            if active_version.get().is_none() { "Nothing is published yet" } else { "" }
                        }
                        on:click=move |_| {
                            diff_action.dispatch(());
                        }
                    >
                        {move || {
                            if can_edit && dirty.get() { "Save and diff against active" } else { "Diff against active" }
                        }}
                    </button>
                </div>
                <p class="action-result" data-test="save-result" role="status">
                    {move || match save_result.get() {
                        Some(Ok(m)) => view! { <span class="ok">{m}</span> }.into_any(),
                        Some(Err(m)) => view! { <span class="bad">{m}</span> }.into_any(),
                        None => ().into_any(),
                    }}
                </p>
                {move || {
                    diff.get()
                        .map(|d| match d {
                            Ok(view) => {
                                view! {
                                    <h3 class="subheading">
                                        {format!("From {} to {}", view.from, view.to)}
                                    </h3>
                                    <DiffList changes=view.changes />
                                }
                                    .into_any()
                            }
                            Err(m) => view! { <p class="alert alert-error" data-test="diff-error">{m}</p> }.into_any(),
                        })
                }}
                {can_publish
                    .then(|| {
                        view! {
                            <form class="publish-form" novalidate on:submit=on_publish>
                                <div class="cell-field">
                                    <label for="publish-message">"Why (for the version and the audit log)"</label>
                                    <input
                                        id="publish-message"
                                        type="text"
                                        autocomplete="off"
                                        data-test="publish-message"
                                        prop:value=move || message.get()
                                        on:input=move |ev| message.set(event_target_value(&ev))
                                    />
                                </div>
                                <div class="cell-field">
                                    <label for="publish-canary">"Canary share (%, optional)"</label>
                                    <input
                                        id="publish-canary"
                                        type="text"
                                        inputmode="numeric"
                                        class="numeric"
                                        autocomplete="off"
                                        placeholder="all instances"
                                        data-test="publish-canary"
                                        prop:value=move || canary.get()
                                        on:input=move |ev| canary.set(event_target_value(&ev))
                                    />
                                </div>
                                <button
                                    type="submit"
                                    class="button button-primary button-block"
                                    data-test="publish-button"
                                    disabled=move || has_errors.get() || busy() || !hydrated.get()
                                    aria-describedby="publish-hint"
                                >
                                    {move || if publish_action.pending().get() { "Publishing…" } else { "Publish" }}
                                </button>
                                <p id="publish-hint" class="field-hint">
                                    {move || {
                                        if has_errors.get() {
                                            "Fix every error to publish. Warnings do not block."
                                        } else {
                                            "Publishes what the editor shows. High-risk services and loosened invariants wait for an approver."
                                        }
                                    }}
                                </p>
                            </form>
                        }
                    })}
                <div class="action-result" data-test="publish-result" role="status" aria-live="polite">
                    {move || match publish_result.get() {
                        Some(Ok(outcome)) => view! { <p class="alert alert-success">{outcome_text(&outcome)}</p> }.into_any(),
                        Some(Err(m)) => view! { <p class="alert alert-error">{m}</p> }.into_any(),
                        None => ().into_any(),
                    }}
                </div>
            </div>
        </section>
    }
    .into_any()
}

/// An API error as a sentence, naming the field the server blames.
fn describe(error: &ApiError) -> String {
    match error.field() {
        Some(field) if !field.is_empty() => format!("{} (at {field})", error.message()),
        _ => error.message(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_sit_beside_the_field_they_name() {
        assert!(covers(
            "retry.model.max_attempts",
            "retry.model.max_attempts",
            false
        ));
        assert!(!covers("retry.model", "retry.model.max_attempts", false));
        assert!(covers(
            "retry.model.retry_on",
            "retry.model.retry_on.2",
            true
        ));
        assert!(!covers("retry.model", "retry.model-b.jitter", true));
        assert_eq!(
            test_id("retry.model.max_attempts"),
            "editor-retry-model-max_attempts"
        );
    }

    #[test]
    fn numbers_parse_or_explain() {
        assert_eq!(num(" 120 "), Ok(120));
        assert!(num("12a").is_err());
        assert_eq!(opt_num(""), Ok(None));
        assert!(num32("99999999999").is_err());
    }

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

    #[test]
    fn an_empty_rate_is_no_limit() {
        let mut rate = None;
        set_rate(&mut rate, Some("5"), None).unwrap();
        assert_eq!(
            rate,
            Some(RateLimit {
                per_second: 5,
                burst: 5
            })
        );
        set_rate(&mut rate, None, Some("8")).unwrap();
        assert_eq!(
            rate,
            Some(RateLimit {
                per_second: 5,
                burst: 8
            })
        );
        set_rate(&mut rate, Some(""), None).unwrap();
        assert_eq!(rate, None);
        assert!(set_rate(&mut rate, None, Some("3")).is_err());
    }
}
