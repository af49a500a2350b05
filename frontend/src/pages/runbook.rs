//! One runbook: its text (rendered and sanitised by the server), what it is
//! about, who wrote this version and why, its history, and its checklists.
//! People who write runbooks edit it here (each save is a new version);
//! people who respond to incidents start a checklist from it.
//!
//! `/runbooks/:slug` shows the latest version, `/runbooks/:slug/versions/:v`
//! an older one, read-only.

use crate::api;
use crate::app::Hydrated;
use crate::components::checklists::ChecklistsTable;
use crate::components::runbook_form::{RunbookDraft, RunbookForm};
use crate::layout::{Crumbs, FieldBlock, LoadError, Loading, Panel};
use crate::remote::Remote;
use crate::session::Session;
use crate::time::Utc;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};
use shared::api::{ChecklistStart, ChecklistView, Me, RunbookVersionSummary, RunbookView};
use shared::paths::segment;
use shared::role::Permission;

const ROOT: (&str, &str) = ("/runbooks", "Runbooks");

#[component]
pub fn RunbookPage() -> impl IntoView {
    let params = use_params_map();
    let target =
        Memo::new(move |_| params.with(|p| (p.get("slug").unwrap_or_default(), p.get("v"))));
    let session = Session::expect();
    view! {
        <Title text=move || target.with(|(slug, _)| format!("Runbook {slug}")) />
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let me = session.me().await.ok().flatten();
                let (slug, version) = target.get();
                me.map(|me| match version.map(|v| v.parse::<u64>().map_err(|_| v)).transpose() {
                    Ok(version) => view! { <Runbook slug version me /> }.into_any(),
                    Err(bad) => view! { <NoSuchVersion slug bad /> }.into_any(),
                })
            })}
        </Suspense>
    }
    .into_any()
}

/// An address whose version is not a number: say so, and where to go.
#[component]
fn NoSuchVersion(slug: String, bad: String) -> impl IntoView {
    let href = format!("/runbooks/{}", segment(&slug));
    view! {
        <Crumbs root=ROOT />
        <div class="notice notice-error" role="alert" data-test="runbook-bad-version">
            <h1 class="notice-title">"No such version"</h1>
            <p>
                <code>{bad}</code>
                " is not a version number. "
                <a href=href>{format!("Open the latest version of {slug}")}</a>
                "."
            </p>
        </div>
    }
}

#[component]
fn Runbook(slug: String, version: Option<u64>, me: Me) -> impl IntoView {
    let target = StoredValue::new(slug);
    let runbook = Remote::new(move || {
        let slug = target.get_value();
        async move { api::runbook(&slug, version).await }
    });
    let history = Remote::new(move || {
        let slug = target.get_value();
        async move { api::runbook_history(&slug).await }
    });
    let checklists = Remote::new(move || {
        let slug = target.get_value();
        async move { api::checklists(Some(&slug)).await }
    });
    // Outlive the body, which is drawn again whenever the runbook reloads.
    let editing = RwSignal::new(false);
    let notice = RwSignal::new(None::<String>);
    let reload = Callback::new(move |()| {
        runbook.reload();
        history.reload();
        checklists.reload();
    });
    let me = StoredValue::new(me);
    view! {
        {move || match runbook.get() {
            None => view! { <Loading label="Loading the runbook…" /> }.into_any(),
            Some(Err(e)) => {
                view! {
                    <Crumbs root=ROOT />
                    <LoadError message=e.message() retry=reload />
                }
                    .into_any()
            }
            Some(Ok(rb)) => {
                view! { <RunbookBody rb me=me.get_value() editing notice reload /> }.into_any()
            }
        }}
        <Panel
            id="runbook-checklists-title"
            title="Checklists"
            about="Incidents worked through with this runbook, open ones first. Times in UTC."
            test="runbook-checklists"
        >
            {move || match checklists.get() {
                None => view! { <Loading label="Loading checklists…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| checklists.reload()) /> }
                        .into_any()
                }
                Some(Ok(list)) => {
                    view! {
                        <ChecklistsTable
                            checklists=list
                            caption="Checklists of this runbook"
                            test="runbook-checklists-table"
                            empty="None yet."
                        />
                    }
                        .into_any()
                }
            }}
        </Panel>
        <Panel
            id="runbook-history-title"
            title="History"
            about="Every version, newest first. Times in UTC."
            test="runbook-history-panel"
        >
            {move || match history.get() {
                None => view! { <Loading label="Loading the history…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| history.reload()) /> }
                        .into_any()
                }
                Some(Ok(list)) => {
                    let slug = target.get_value();
                    let shown = runbook.get().and_then(Result::ok).map(|rb| rb.version);
                    history_list(&slug, shown, list).into_any()
                }
            }}
        </Panel>
    }
    .into_any()
}

#[component]
fn RunbookBody(
    rb: RunbookView,
    me: Me,
    editing: RwSignal<bool>,
    notice: RwSignal<Option<String>>,
    reload: Callback<()>,
) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let latest = rb.version == rb.latest_version;
    let can_edit = me.role.allows(Permission::Edit) && latest;
    let can_respond = me.role.allows(Permission::Respond);
    let latest_href = format!("/runbooks/{}", segment(&rb.slug));
    let edit_button = can_edit.then(|| {
        view! {
            <button
                type="button"
                class="button"
                data-test="runbook-edit"
                aria-expanded=move || editing.get().to_string()
                disabled=move || !hydrated.get() || editing.get()
                on:click=move |_| {
                    notice.set(None);
                    editing.set(true);
                }
            >
                "Edit"
            </button>
        }
    });
    let older = (!latest).then(|| {
        view! {
            <p class="alert alert-info" data-test="runbook-old-version">
                {format!("You are reading version {} of {}. ", rb.version, rb.latest_version)}
                <a href=latest_href.clone()>"Open the latest version"</a>
                " to edit it or start a checklist."
            </p>
        }
    });
    let version_words = if latest {
        format!("Version {} (latest)", rb.version)
    } else {
        format!("Version {} of {}", rb.version, rb.latest_version)
    };
    let start = if !latest || !can_respond {
        None
    } else if rb.steps.is_empty() {
        Some(
            view! {
                <p class="muted">
                    "This runbook has no checklist steps yet: steps are task-list items such as "
                    <code>"- [ ] Check the breaker"</code> "."
                </p>
            }
            .into_any(),
        )
    } else {
        Some(view! { <StartChecklist slug=rb.slug.clone() steps=rb.steps.len() /> }.into_any())
    };
    let draft = StoredValue::new(RunbookDraft {
        title: rb.title.clone(),
        body: rb.body.clone(),
        links: rb.links.clone(),
    });
    let (slug, version) = (StoredValue::new(rb.slug.clone()), rb.version);
    let facts = facts(&rb);
    let html = rb.html.clone();
    let editor = move || {
        editing.get().then(|| {
            let on_saved = Callback::new(move |saved: RunbookView| {
                notice.set(Some(format!("Saved version {}.", saved.version)));
                editing.set(false);
                reload.run(());
            });
            view! {
                <Panel id="runbook-edit-title" title="Edit the runbook" test="runbook-editor">
                    <RunbookForm
                        slug=Some(slug.get_value())
                        draft=draft.get_value()
                        base_version=Some(version)
                        on_saved
                        on_cancel=Callback::new(move |()| editing.set(false))
                        on_reload=reload
                    />
                </Panel>
            }
        })
    };
    view! {
        <div class="page-header">
            <div>
                <Crumbs root=ROOT />
                <h1 data-test="runbook-heading">{rb.title.clone()}</h1>
                <p class="lede">
                    <code data-test="runbook-shown-slug">{rb.slug.clone()}</code>
                    " · "
                    <span data-test="runbook-version" data-version=rb.version.to_string()>
                        {version_words}
                    </span>
                </p>
            </div>
            <div class="page-actions">{edit_button}</div>
        </div>
        <p role="status" class="page-notice" data-test="runbook-notice">
            {move || notice.get()}
        </p>
        {older}
        {editor}
        <Panel id="runbook-facts-title" title="About this version">
            <div class="panel-body">{facts}</div>
        </Panel>
        <Panel id="runbook-text-title" title="What to do">
            // The server renders the Markdown and sanitises the HTML with an
            // allow-list (no scripts, handlers or javascript: links), so it
            // is safe to insert as it is.
            <div class="panel-body prose" data-test="runbook-html" inner_html=html></div>
        </Panel>
        {start
            .map(|start| {
                view! {
                    <Panel
                        id="runbook-start-title"
                        title="Start a checklist"
                        about="For an incident happening now: work through this version's steps, each tick recorded with who and when."
                        test="runbook-start"
                    >
                        <div class="panel-body">{start}</div>
                    </Panel>
                }
            })}
    }
    .into_any()
}

fn facts(rb: &RunbookView) -> impl IntoView + use<> {
    let at = Utc::from_millis(rb.created_at_ms);
    let list = |items: &[String]| {
        if items.is_empty() {
            "—".to_owned()
        } else {
            items.join(", ")
        }
    };
    let message = if rb.message.is_empty() {
        "—".to_owned()
    } else {
        rb.message.clone()
    };
    let rows: Vec<(&'static str, &'static str, AnyView)> = vec![
        (
            "Written by",
            "author",
            view! { <code>{rb.author.clone()}</code> }.into_any(),
        ),
        (
            "When",
            "created",
            view! { <time datetime=at.iso()>{at.display()}</time> }.into_any(),
        ),
        ("Why", "message", message.into_any()),
        (
            "Checklist steps",
            "steps",
            rb.steps.len().to_string().into_any(),
        ),
        ("Services", "services", list(&rb.links.services).into_any()),
        (
            "Dependencies",
            "dependencies",
            list(&rb.links.dependencies).into_any(),
        ),
        (
            "Failure types",
            "failure-types",
            list(&rb.links.failure_types).into_any(),
        ),
    ];
    let items = rows
        .into_iter()
        .map(|(label, test, value)| {
            view! {
                <div>
                    <dt>{label}</dt>
                    <dd data-test=format!("runbook-fact-{test}")>{value}</dd>
                </div>
            }
        })
        .collect_view();
    view! { <dl class="facts">{items}</dl> }
}

fn history_list(
    slug: &str,
    shown: Option<u64>,
    versions: Vec<RunbookVersionSummary>,
) -> impl IntoView + use<> {
    let items = versions
        .into_iter()
        .map(|v| {
            let href = format!("/runbooks/{}/versions/{}", segment(slug), v.version);
            let at = Utc::from_millis(v.created_at_ms);
            let current = (shown == Some(v.version)).then_some("page");
            view! {
                <li data-version=v.version.to_string()>
                    <a href=href aria-current=current data-test=format!("runbook-version-link-{}", v.version)>
                        {format!("Version {}", v.version)}
                    </a>
                    " · "
                    <time datetime=at.iso()>{at.display()}</time>
                    " by "
                    <code>{v.author}</code>
                    <p class="small">
                        {v.title}
                        {(!v.message.is_empty()).then(|| format!(": {}", v.message))}
                    </p>
                </li>
            }
        })
        .collect_view();
    view! {
        <div class="panel-body">
            <ol class="history" data-test="runbook-history">
                {items}
            </ol>
        </div>
    }
}

/// Starts a checklist from this runbook's latest version, then opens it.
#[component]
fn StartChecklist(slug: String, steps: usize) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let title = RwSignal::new(String::new());
    let incident = RwSignal::new(String::new());
    // The server's complaint: the field it names (if any) and its words.
    let problem = RwSignal::new(None::<(Option<String>, String)>);
    let navigate = use_navigate();
    let start = Action::new_local(move |(slug, request): &(String, ChecklistStart)| {
        let (slug, request) = (slug.clone(), request.clone());
        let navigate = navigate.clone();
        async move {
            match api::start_checklist(&slug, &request).await {
                Ok(checklist) => open_checklist(&navigate, &checklist),
                Err(e) => {
                    problem.try_set(Some((e.field().map(str::to_owned), e.message())));
                }
            }
        }
    });
    let pending = start.pending();
    let target = StoredValue::new(slug);
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let what = title.get_untracked().trim().to_owned();
        if what.is_empty() {
            problem.set(Some((
                Some("title".to_owned()),
                "Say in a line what is happening.".to_owned(),
            )));
            return;
        }
        problem.set(None);
        let incident_ref =
            Some(incident.get_untracked().trim().to_owned()).filter(|r| !r.is_empty());
        start.dispatch((
            target.get_value(),
            ChecklistStart {
                title: what,
                incident_ref,
            },
        ));
    };
    let error_at = move |field: &'static str| {
        Signal::derive(move || {
            problem.with(|p| match p {
                Some((Some(f), message)) if f == field => Some(message.clone()),
                _ => None,
            })
        })
    };
    let general = move || {
        problem.with(|p| match p {
            Some((f, message)) if !matches!(f.as_deref(), Some("title" | "incident_ref")) => {
                Some(message.clone())
            }
            _ => None,
        })
    };
    view! {
        <form class="form form-flat" novalidate data-test="checklist-start-form" on:submit=on_submit>
            {move || {
                general()
                    .map(|message| {
                        view! {
                            <p class="alert alert-error" role="alert" data-test="checklist-start-error">
                                {message}
                            </p>
                        }
                    })
            }}
            <FieldBlock
                id="checklist-title"
                label="What is happening"
                hint="One line, such as “Reranker timeouts on rag-answer”."
                error=error_at("title")
            >
                <input
                    id="checklist-title"
                    type="text"
                    autocomplete="off"
                    data-test="checklist-title"
                    aria-describedby="checklist-title-hint checklist-title-error"
                    aria-invalid=move || error_at("title").get().map(|_| "true")
                    prop:value=move || title.get()
                    on:input=move |ev| title.set(event_target_value(&ev))
                />
            </FieldBlock>
            <FieldBlock
                id="checklist-incident"
                label="Incident reference (optional)"
                hint="The incident's id in your incident tool."
                error=error_at("incident_ref")
            >
                <input
                    id="checklist-incident"
                    type="text"
                    autocomplete="off"
                    spellcheck="false"
                    data-test="checklist-incident"
                    aria-describedby="checklist-incident-hint checklist-incident-error"
                    aria-invalid=move || error_at("incident_ref").get().map(|_| "true")
                    prop:value=move || incident.get()
                    on:input=move |ev| incident.set(event_target_value(&ev))
                />
            </FieldBlock>
            <div class="button-row">
                <button
                    type="submit"
                    class="button button-primary"
                    data-test="checklist-start"
                    disabled=move || pending.get() || !hydrated.get()
                    aria-busy=move || pending.get().then_some("true")
                >
                    {move || {
                        if pending.get() {
                            "Starting…".to_owned()
                        } else {
                            format!("Start checklist ({steps} steps)")
                        }
                    }}
                </button>
            </div>
        </form>
    }
}

fn open_checklist(navigate: &impl Fn(&str, leptos_router::NavigateOptions), c: &ChecklistView) {
    navigate(
        &format!("/checklists/{}", segment(&c.id)),
        Default::default(),
    );
}
