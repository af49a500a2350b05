//! One service's dead-letter queue: the queue in figures (depth, age, what
//! waits for a person, the last day's depth), a search over its entries,
//! and for engineers the same action requested on many entries at once.

use super::service_in_path;
use crate::api::{self, DeadLetterFilter};
use crate::components::data_table::{DataTable, Head};
use crate::components::dlq::{ActionRequestForm, BulkResults, entry_chip};
use crate::components::selection::{SelectAll, Selection, select_cell};
use crate::components::telemetry::ChartFrame;
use crate::layout::{Crumbs, LoadError, Loading, Panel};
use crate::remote::Remote;
use crate::session::Session;
use crate::time::{Utc, age};
use leptos::prelude::*;
use leptos_meta::Title;
use shared::api::{
    ActionRequest, BulkActionRequest, BulkItemResult, DeadLetterPage, DeadLetterStatus,
    DeadLetterSummary, DeadLetterView, Me, NamedCount,
};
use shared::paths::segment;
use shared::policy::ErrorClass;
use shared::role::Permission;

#[component]
pub fn DeadLettersPage() -> impl IntoView {
    let target = service_in_path();
    let session = Session::expect();
    view! {
        <Title text=move || target.with(|(n, e)| format!("Dead letters of {n} in {e}")) />
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let me = session.me().await.ok().flatten();
                let (name, env) = target.get();
                me.map(|me| view! { <Queue name env me /> })
            })}
        </Suspense>
    }
    .into_any()
}

#[component]
fn Queue(name: String, env: String, me: Me) -> impl IntoView {
    let target = StoredValue::new((name.clone(), env.clone()));
    let summary = Remote::new(move || {
        let (n, e) = target.get_value();
        async move { api::dead_letter_summary(&n, &e).await }
    });
    let filter = RwSignal::new(DeadLetterFilter::default());
    let cursor = RwSignal::new(None::<String>);
    // The cursors of the pages before this one, for "Previous page".
    let earlier = RwSignal::new(Vec::<Option<String>>::new());
    let entries = Remote::new(move || {
        let (n, e) = target.get_value();
        let (f, c) = (filter.get(), cursor.get());
        async move { api::dead_letters(&n, &e, &f, c.as_deref()).await }
    });
    let next = Memo::new(move |_| match entries.get() {
        Some(Ok(page)) => page.next_cursor,
        _ => None,
    });
    let selection = Selection::default();
    Effect::new(move |_| {
        if let Some(Ok(page)) = entries.get() {
            selection.show(page.entries.iter().map(|e| e.id.clone()).collect());
        }
    });
    let reload = Callback::new(move |()| {
        summary.reload();
        entries.reload();
    });
    let apply = Callback::new(move |f: DeadLetterFilter| {
        earlier.set(Vec::new());
        cursor.set(None);
        filter.set(f);
    });
    let can_request = me.role.allows(Permission::RequestDlqAction);
    let service_href = format!("/services/{}/{}", segment(&name), segment(&env));
    let crumb = format!("{name} {env}");
    view! {
        <div class="page-header">
            <div>
                <Crumbs>
                    <a href=service_href>{crumb}</a>
                </Crumbs>
                <h1>
                    "Dead letters of " <span data-test="dlq-service">{name}</span> " "
                    <span class="env-badge env-badge-large">{env}</span>
                </h1>
                <p class="lede">
                    "Work that failed for good. Redrive, cancel, complete by hand or escalate it; actions on work with side effects need a second person, and every step is audited."
                </p>
            </div>
            <div class="page-actions">
                <button type="button" class="button" data-test="dlq-refresh" on:click=move |_| reload.run(())>
                    "Refresh"
                </button>
            </div>
        </div>
        <Panel id="dlq-summary-title" title="The queue now" test="dlq-summary">
            {move || match summary.get() {
                None => view! { <Loading label="Loading the queue's figures…" /> }.into_any(),
                Some(Err(e)) => view! { <LoadError message=e.message() retry=Callback::new(move |()| summary.reload()) /> }.into_any(),
                Some(Ok(s)) => summary_view(s).into_any(),
            }}
        </Panel>
        <Panel id="dlq-entries-title" title="Entries" about="Newest first. Times in UTC.">
            <Filters apply />
            {move || match entries.get() {
                None => view! { <Loading label="Loading dead letters…" /> }.into_any(),
                Some(Err(e)) => view! { <LoadError message=e.message() retry=Callback::new(move |()| entries.reload()) /> }.into_any(),
                Some(Ok(page)) => {
                    view! { <EntriesTable page selection=can_request.then_some(selection) /> }
                        .into_any()
                }
            }}
            <div class="button-row pager">
                {pager_button("Previous page", "dlq-previous-page", Signal::derive(move || earlier.with(Vec::is_empty)), move || {
                    let mut stack = earlier.get_untracked();
                    if let Some(previous) = stack.pop() {
                        earlier.set(stack);
                        cursor.set(previous);
                    }
                })}
                {pager_button("Next page", "dlq-next-page", Signal::derive(move || next.with(Option::is_none)), move || {
                    if let Some(next) = next.get_untracked() {
                        earlier.update(|s| s.push(cursor.get_untracked()));
                        cursor.set(Some(next));
                    }
                })}
            </div>
        </Panel>
        {can_request.then(|| view! { <BulkRequest selection on_done=reload /> })}
    }
    .into_any()
}

fn pager_button(
    label: &'static str,
    test: &'static str,
    off: Signal<bool>,
    go: impl Fn() + 'static,
) -> impl IntoView {
    view! {
        <button
            type="button"
            class="button button-small"
            data-test=test
            disabled=move || off.get()
            on:click=move |_| go()
        >
            {label}
        </button>
    }
}

fn summary_view(s: DeadLetterSummary) -> impl IntoView {
    let oldest = s.oldest_age_ms.map_or_else(|| "—".to_owned(), age);
    let figure = |label: &'static str, value: String, test: &'static str| {
        view! {
            <div>
                <dt>{label}</dt>
                <dd data-test=test>{value}</dd>
            </div>
        }
    };
    let error_names = s
        .top_error_types
        .into_iter()
        .map(|c| NamedCount {
            name: ErrorClass::from_name(&c.name).map_or(c.name, |e| e.label().to_owned()),
            count: c.count,
        })
        .collect();
    view! {
        <div class="panel-body">
            <dl class="figures">
                {figure("Depth", s.depth.to_string(), "dlq-depth")}
                {figure("Oldest entry", oldest, "dlq-oldest")}
                {figure("Awaiting approval", s.awaiting_approval.to_string(), "dlq-awaiting")}
                {figure("Outcome uncertain", s.uncertain.to_string(), "dlq-uncertain")}
            </dl>
            <div class="split">
                {top_list("Top error classes", "dlq-top-errors", error_names)}
                {top_list("Top failed nodes", "dlq-top-nodes", s.top_failed_nodes)}
            </div>
            {depth_chart(&s.depth_by_hour)}
        </div>
    }
}

fn top_list(title: &'static str, test: &'static str, counts: Vec<NamedCount>) -> impl IntoView {
    let items = if counts.is_empty() {
        view! { <li class="muted">"None"</li> }.into_any()
    } else {
        counts
            .into_iter()
            .map(|c| {
                view! {
                    <li>
                        <span>{c.name}</span>
                        " "
                        <span class="numeric muted">{c.count}</span>
                    </li>
                }
            })
            .collect_view()
            .into_any()
    };
    view! {
        <div>
            <h3>{title}</h3>
            <ul class="top-list" data-test=test>
                {items}
            </ul>
        </div>
    }
}

/// The last 24 hours' depth as bars, oldest first; the figures themselves
/// are the chart's text alternative.
fn depth_chart(hours: &[u64]) -> impl IntoView + use<> {
    let most = hours.iter().copied().max().unwrap_or(0);
    let scale = most.max(1) as f64;
    let step = 300.0 / hours.len().max(1) as f64;
    let bars = hours
        .iter()
        .enumerate()
        .map(|(i, &depth)| {
            let h = depth as f64 / scale * 56.0;
            view! {
                <rect
                    class="bar"
                    x=format!("{:.1}", i as f64 * step + 1.0)
                    y=format!("{:.1}", 60.0 - h)
                    width=format!("{:.1}", (step - 2.0).max(1.0))
                    height=format!("{h:.1}")
                />
            }
        })
        .collect_view();
    let figures = hours
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let frame = ChartFrame {
        title: "Depth, last 24 hours",
        top: format!("top: {}", most.max(1)),
        label: format!(
            "Depth at the end of each of the last {} hours, oldest first: {figures}. The most was {most}.",
            hours.len()
        ),
        since: "−24 h",
    };
    view! { <div data-test="dlq-depth-chart">{frame.draw(bars, ())}</div> }
}

/// Preset ages for the age filters: seconds and words.
const AGES: &[(u64, &str)] = &[
    (300, "5 minutes"),
    (3_600, "1 hour"),
    (86_400, "1 day"),
    (604_800, "7 days"),
];

#[component]
fn Filters(apply: Callback<DeadLetterFilter>) -> impl IntoView {
    let draft = RwSignal::new(DeadLetterFilter::default());
    let text = move |id: &'static str,
                     label: &'static str,
                     get: fn(&DeadLetterFilter) -> &String,
                     set: fn(&mut DeadLetterFilter, String)| {
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
    let choice = move |id: &'static str,
                       label: &'static str,
                       options: Vec<(String, &'static str)>,
                       set: fn(&mut DeadLetterFilter, &str)| {
        view! {
            <div class="cell-field">
                <label for=id>{label}</label>
                <select
                    id=id
                    data-test=id
                    on:change=move |ev| draft.update(|f| set(f, &event_target_value(&ev)))
                >
                    <option value="">"any"</option>
                    {options
                        .into_iter()
                        .map(|(value, words)| view! { <option value=value>{words}</option> })
                        .collect_view()}
                </select>
            </div>
        }
    };
    let named = |options: &[(&'static str, &'static str)]| {
        options
            .iter()
            .map(|(v, w)| ((*v).to_owned(), *w))
            .collect::<Vec<_>>()
    };
    let ages = || {
        AGES.iter()
            .map(|(s, w)| (s.to_string(), *w))
            .collect::<Vec<_>>()
    };
    view! {
        <form
            class="form-grid filters"
            role="search"
            aria-label="Filter dead letters"
            on:submit=move |ev| {
                ev.prevent_default();
                apply.run(draft.get_untracked());
            }
        >
            {text("dlq-filter-task-type", "Task type", |f| &f.task_type, |f, v| f.task_type = v)}
            {text("dlq-filter-failed-node", "Failed node", |f| &f.failed_node, |f, v| f.failed_node = v)}
            {choice(
                "dlq-filter-error",
                "Error class",
                named(&ErrorClass::OPTIONS),
                |f, v| f.error_type = ErrorClass::from_name(v),
            )}
            {choice(
                "dlq-filter-status",
                "Status",
                named(&DeadLetterStatus::OPTIONS),
                |f, v| f.status = DeadLetterStatus::from_name(v),
            )}
            {choice("dlq-filter-older", "Older than", ages(), |f, v| f.min_age_s = v.parse().ok())}
            {choice("dlq-filter-newer", "Newer than", ages(), |f, v| f.max_age_s = v.parse().ok())}
            <div class="button-row">
                <button type="submit" class="button" data-test="dlq-filter-apply">
                    "Apply filters"
                </button>
            </div>
        </form>
    }
}

const ENTRY_HEADS: &[Head] = &[
    ("Run", ""),
    ("Task type", ""),
    ("Failed node", ""),
    ("Error", ""),
    ("Retries", "num"),
    ("Status", ""),
    ("Received", ""),
];

#[component]
fn EntriesTable(page: DeadLetterPage, selection: Option<Selection>) -> impl IntoView {
    let lead = selection.map(|selection| {
        view! { <SelectAll selection label="Select every entry on this page" test="dlq-select-all" /> }
            .into_any()
    });
    let rows = page
        .entries
        .into_iter()
        .map(|e| entry_row(e, selection))
        .collect();
    view! {
        <DataTable
            caption="Dead letters on this page"
            test="dlq-entries"
            heads=ENTRY_HEADS
            lead
            empty="No dead letters match."
            rows
        />
    }
}

fn entry_row(e: DeadLetterView, selection: Option<Selection>) -> AnyView {
    let id = e.id.clone();
    let href = format!("/dead-letters/{}", segment(&id));
    let received = Utc::from_millis(e.received_at_ms);
    let select = selection.map(|s| {
        let label = format!("Select run {}", e.run_id);
        select_cell(Some(s), &id, label, format!("dlq-select-{id}"))
    });
    view! {
        <tr data-test=format!("dlq-entry-{id}") data-status=e.status.as_str()>
            {select}
            <td class="wrap">
                <a href=href data-test=format!("dlq-entry-link-{id}")>
                    <code>{e.run_id}</code>
                </a>
            </td>
            <td>{e.task_type}</td>
            <td>
                <code>{e.failed_node}</code>
            </td>
            <td class="wrap">
                {e.error_type.label()}
                <p class="muted small">{e.error_message}</p>
            </td>
            <td class="num">{e.retry_count}</td>
            <td>{entry_chip(e.status, format!("dlq-entry-status-{id}"))}</td>
            <td class="nowrap">
                <time datetime=received.iso()>{received.display()}</time>
            </td>
        </tr>
    }
    .into_any()
}

/// The same action asked for on every picked entry, each handled as if alone.
#[component]
fn BulkRequest(selection: Selection, on_done: Callback<()>) -> impl IntoView {
    let result = RwSignal::new(None::<Result<String, String>>);
    let outcome = RwSignal::new(None::<Vec<BulkItemResult>>);
    let send = Action::new_local(move |request: &BulkActionRequest| {
        let request = request.clone();
        async move {
            match api::bulk_dlq_action(&request).await {
                Ok(items) => {
                    result.try_set(Some(Ok("Asked; each entry's answer is below.".to_owned())));
                    outcome.try_set(Some(items));
                    selection.clear();
                    on_done.run(());
                }
                Err(e) => {
                    result.try_set(Some(Err(e.message())));
                }
            }
        }
    });
    let pending = send.pending();
    let submit = Callback::new(move |action: ActionRequest| {
        let ids = selection.ids();
        if ids.is_empty() {
            result.set(Some(Err("Select entries in the table first.".to_owned())));
        } else {
            outcome.set(None);
            send.dispatch(BulkActionRequest { ids, action });
        }
    });
    view! {
        <Panel id="dlq-bulk-title" title="Request an action on the selected entries" test="dlq-bulk">
            <div class="panel-body">
                <p class="muted" aria-live="polite" data-test="dlq-selected-count">
                    {move || match selection.count() {
                        0 => "Nothing selected.".to_owned(),
                        1 => "1 entry selected.".to_owned(),
                        n => format!("{n} entries selected."),
                    }}
                </p>
                <ActionRequestForm
                    id="dlq-bulk"
                    requirements=Vec::new()
                    revision=None
                    submit
                    pending=pending.into()
                    result
                    button="Request for the selection"
                />
                {move || outcome.get().map(|results| view! { <BulkResults results test="dlq-bulk-results" /> })}
            </div>
        </Panel>
    }
}
