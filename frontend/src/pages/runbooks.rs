//! The runbook library: the incidents being worked through now, every
//! runbook with what it is about, a search over them, and (for people who
//! write runbooks) a new runbook started from the incident template.

use crate::api::{self, RunbookFilter};
use crate::app::Hydrated;
use crate::components::checklists::ChecklistsTable;
use crate::components::data_table::{DataTable, Head};
use crate::components::runbook_form::{RunbookDraft, RunbookForm};
use crate::layout::{LoadError, Loading, PageHeader, Panel};
use crate::remote::Remote;
use crate::session::Session;
use crate::time::Utc;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_navigate;
use shared::api::{Me, RunbookLinks, RunbookSummary, RunbookView};
use shared::paths::segment;
use shared::role::Permission;

#[component]
pub fn RunbooksPage() -> impl IntoView {
    let session = Session::expect();
    view! {
        <Title text="Runbooks" />
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                session.me().await.ok().flatten().map(|me| view! { <Library me /> })
            })}
        </Suspense>
    }
    .into_any()
}

#[component]
fn Library(me: Me) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let filter = RwSignal::new(RunbookFilter::default());
    let runbooks = Remote::new(move || {
        let f = filter.get();
        async move { api::runbooks(&f).await }
    });
    // The listing puts open checklists first; only those are incidents now.
    let open = Remote::new(|| async {
        let all = api::checklists(None).await?;
        Ok(all
            .into_iter()
            .filter(|c| c.closed_at_ms.is_none())
            .collect::<Vec<_>>())
    });
    let creating = RwSignal::new(false);
    let can_edit = me.role.allows(Permission::Edit);
    let new_button = can_edit.then(|| {
        view! {
            <button
                type="button"
                class="button button-primary"
                data-test="runbook-new"
                aria-expanded=move || creating.get().to_string()
                aria-controls="new-runbook"
                disabled=move || !hydrated.get()
                on:click=move |_| creating.set(true)
            >
                "New runbook"
            </button>
        }
    });
    view! {
        <PageHeader
            title="Runbooks"
            lede="What to do when something fails, written down before it does. Every alert leads to one; during an incident, work through its steps as a checklist that records who did what, and when."
        >
            {new_button}
        </PageHeader>
        <div id="new-runbook">
            {move || {
                creating
                    .get()
                    .then(|| view! { <NewRunbook on_cancel=Callback::new(move |()| creating.set(false)) /> })
            }}
        </div>
        <Panel
            id="open-incidents-title"
            title="Open incidents"
            about="Checklists being worked through now. Times in UTC."
            test="open-incidents"
        >
            {move || match open.get() {
                None => view! { <Loading label="Loading open checklists…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| open.reload()) /> }
                        .into_any()
                }
                Some(Ok(list)) => {
                    view! {
                        <ChecklistsTable
                            checklists=list
                            caption="Open incident checklists"
                            test="open-checklists"
                            empty="No incident is open. Start a checklist from a runbook when one begins."
                            with_runbook=true
                        />
                    }
                        .into_any()
                }
            }}
        </Panel>
        <Panel id="runbooks-title" title="Library" about="By slug. Times in UTC." test="runbooks">
            <Filters apply=Callback::new(move |f| filter.set(f)) />
            {move || match runbooks.get() {
                None => view! { <Loading label="Loading runbooks…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| runbooks.reload()) /> }
                        .into_any()
                }
                Some(Ok(list)) => view! { <RunbooksTable runbooks=list /> }.into_any(),
            }}
        </Panel>
    }
    .into_any()
}

/// A new runbook, starting from the server's incident template.
#[component]
fn NewRunbook(on_cancel: Callback<()>) -> impl IntoView {
    let template = Remote::new(api::runbook_template);
    let navigate = use_navigate();
    let on_saved = Callback::new(move |view: RunbookView| {
        navigate(
            &format!("/runbooks/{}", segment(&view.slug)),
            Default::default(),
        );
    });
    view! {
        <Panel id="new-runbook-title" title="New runbook" test="new-runbook">
            {move || match template.get() {
                None => view! { <Loading label="Loading the template…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| template.reload()) /> }
                        .into_any()
                }
                Some(Ok(t)) => {
                    let draft = RunbookDraft {
                        title: t.title,
                        body: t.body,
                        links: RunbookLinks::default(),
                    };
                    view! { <RunbookForm slug=None draft base_version=None on_saved on_cancel /> }
                        .into_any()
                }
            }}
        </Panel>
    }
}

#[component]
fn Filters(apply: Callback<RunbookFilter>) -> impl IntoView {
    let draft = RwSignal::new(RunbookFilter::default());
    let text = move |id: &'static str,
                     label: &'static str,
                     get: fn(&RunbookFilter) -> &String,
                     set: fn(&mut RunbookFilter, String)| {
        view! {
            <div class="cell-field">
                <label for=id>{label}</label>
                <input
                    id=id
                    type="text"
                    autocomplete="off"
                    spellcheck="false"
                    data-test=id
                    prop:value=move || draft.with(|f| get(f).clone())
                    on:input=move |ev| draft.update(|f| set(f, event_target_value(&ev)))
                />
            </div>
        }
    };
    view! {
        <form
            class="form-grid filters"
            role="search"
            aria-label="Filter runbooks"
            on:submit=move |ev| {
                ev.prevent_default();
                apply.run(draft.get_untracked());
            }
        >
            {text("runbook-filter-text", "Title or slug contains", |f| &f.text, |f, v| f.text = v)}
            {text("runbook-filter-service", "Service", |f| &f.service, |f, v| f.service = v)}
            {text("runbook-filter-dependency", "Dependency", |f| &f.dependency, |f, v| f.dependency = v)}
            {text(
                "runbook-filter-failure",
                "Failure type",
                |f| &f.failure_type,
                |f, v| f.failure_type = v,
            )}
            <div class="button-row">
                <button type="submit" class="button" data-test="runbook-filter-apply">
                    "Apply filters"
                </button>
                <button
                    type="button"
                    class="button button-quiet"
                    data-test="runbook-filter-clear"
                    on:click=move |_| {
                        draft.set(RunbookFilter::default());
                        apply.run(RunbookFilter::default());
                    }
                >
                    "Clear"
                </button>
            </div>
        </form>
    }
}

const HEADS: &[Head] = &[
    ("Runbook", ""),
    ("Version", "num"),
    ("Steps", "num"),
    ("About", ""),
    ("Updated", ""),
];

#[component]
fn RunbooksTable(runbooks: Vec<RunbookSummary>) -> impl IntoView {
    let rows = runbooks.into_iter().map(runbook_row).collect();
    view! {
        <DataTable
            caption="Runbooks"
            test="runbooks-table"
            heads=HEADS
            empty="No runbook matches."
            rows
        />
    }
}

fn runbook_row(r: RunbookSummary) -> AnyView {
    let href = format!("/runbooks/{}", segment(&r.slug));
    let updated = Utc::from_millis(r.updated_at_ms);
    let test = format!("runbook-row-{}", r.slug);
    let link_test = format!("runbook-link-{}", r.slug);
    view! {
        <tr data-test=test>
            <td class="wrap">
                <a href=href data-test=link_test>
                    <strong>{r.title}</strong>
                </a>
                <p class="muted small">
                    <code>{r.slug}</code>
                </p>
            </td>
            <td class="num">{format!("v{}", r.version)}</td>
            <td class="num">{r.step_count}</td>
            <td class="wrap">{about(&r.links)}</td>
            <td class="nowrap">
                <time datetime=updated.iso()>{updated.display()}</time>
                <p class="muted small">"by " <code>{r.updated_by}</code></p>
            </td>
        </tr>
    }
    .into_any()
}

/// What a runbook is linked to, one line per kind; a dash for none.
fn about(links: &RunbookLinks) -> AnyView {
    let kinds = [
        ("Services", &links.services),
        ("Dependencies", &links.dependencies),
        ("Failures", &links.failure_types),
    ]
    .into_iter()
    .filter(|(_, list)| !list.is_empty())
    .map(|(kind, list)| {
        view! {
            <p class="small">
                <span class="muted">{kind} ": "</span>
                {list.join(", ")}
            </p>
        }
    })
    .collect::<Vec<_>>();
    if kinds.is_empty() {
        view! { <span class="muted">"—"</span> }.into_any()
    } else {
        kinds.into_any()
    }
}
