//! One dead letter: everything known about the failed work, the form that
//! asks for an action on it, the actions so far with their decisions, and
//! its history.

use crate::api;
use crate::components::dlq::{ActionRequestForm, ActionsTable, entry_chip};
use crate::layout::{Crumbs, LoadError, Loading, Panel};
use crate::remote::Remote;
use crate::session::Session;
use crate::time::Utc;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use shared::api::{
    ActionRequest, ActionStatus, ApprovalRequirement, DeadLetterDetail, DeadLetterEvent,
    DeadLetterView, Me,
};
use shared::paths::segment;
use shared::role::Permission;

#[component]
pub fn DeadLetterPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let session = Session::expect();
    view! {
        <Title text="Dead letter" />
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let me = session.me().await.ok().flatten();
                let id = id.get();
                me.map(|me| view! { <Entry id me /> })
            })}
        </Suspense>
    }
    .into_any()
}

#[component]
fn Entry(id: String, me: Me) -> impl IntoView {
    let target = StoredValue::new(id);
    let detail = Remote::new(move || {
        let id = target.get_value();
        async move { api::dead_letter(&id).await }
    });
    // While an approved action is on its way to an agent and back, look
    // again every few seconds; a request waiting for a person waits for a
    // click on Refresh.
    let in_flight = Memo::new(
        move |_| matches!(detail.get(), Some(Ok(d)) if d.actions.iter().any(|a| matches!(a.status, ActionStatus::Approved | ActionStatus::Dispatched))),
    );
    Effect::new(move |_| {
        if in_flight.get()
            && let Ok(handle) =
                set_interval_with_handle(move || detail.reload(), std::time::Duration::from_secs(2))
        {
            on_cleanup(move || handle.clear());
        }
    });
    let reload = Callback::new(move |()| detail.reload());
    // Outlives the body, which is drawn again when the entry reloads.
    let notice = RwSignal::new(None::<String>);
    view! {
        {move || match detail.get() {
            None => view! { <Loading label="Loading the dead letter…" /> }.into_any(),
            Some(Err(e)) => {
                view! { <LoadError message=e.message() retry=Callback::new(move |()| detail.reload()) /> }
                    .into_any()
            }
            Some(Ok(d)) => view! { <EntryBody detail=d me=me.clone() notice reload /> }.into_any(),
        }}
    }
    .into_any()
}

#[component]
fn EntryBody(
    detail: DeadLetterDetail,
    me: Me,
    notice: RwSignal<Option<String>>,
    reload: Callback<()>,
) -> impl IntoView {
    let DeadLetterDetail {
        entry,
        actions,
        events,
        approval_needed,
    } = detail;
    let live = actions.iter().any(|a| a.status.is_live());
    let form = if !me.role.allows(Permission::RequestDlqAction) {
        None
    } else if entry.resolved_at_ms.is_some() {
        Some(view! { <p class="muted">"This entry has left the queue; nothing more can be done to it."</p> }.into_any())
    } else if live {
        Some(view! { <p class="muted">"An action is under way. An entry has one action at a time."</p> }.into_any())
    } else {
        Some(request_form(&entry, approval_needed, notice, reload))
    };
    let queue_href = format!(
        "/services/{}/{}/dead-letters",
        segment(&entry.service),
        segment(&entry.environment)
    );
    let queue_name = format!("Dead letters of {} {}", entry.service, entry.environment);
    let status = entry.status;
    view! {
        <div class="page-header">
            <div>
                <Crumbs>
                    <a href=queue_href>{queue_name}</a>
                </Crumbs>
                <h1>
                    "Run " <code data-test="dlq-entry-run">{entry.run_id.clone()}</code>
                    {entry_chip(status, "dlq-entry-status".to_owned())}
                </h1>
                <p class="lede">{entry.error_message.clone()}</p>
            </div>
            <div class="page-actions">
                <button type="button" class="button" data-test="dlq-entry-refresh" on:click=move |_| reload.run(())>
                    "Refresh"
                </button>
            </div>
        </div>
        <p role="status" class="page-notice" data-test="dlq-entry-notice">
            {move || notice.get()}
        </p>
        <Panel
            id="dlq-entry-title"
            title="The failed work"
            about="Times in UTC. The payload stays in the service; only its hash is here."
        >
            <div class="panel-body">{facts(entry)}</div>
        </Panel>
        {form
            .map(|form| {
                view! {
                    <Panel id="dlq-request-title" title="Ask for an action">
                        <div class="panel-body">{form}</div>
                    </Panel>
                }
            })}
        <Panel id="dlq-actions-title" title="Actions" about="Newest first. Nobody approves their own request.">
            <ActionsTable actions me inbox=false on_changed=reload />
        </Panel>
        <Panel id="dlq-history-title" title="History" about="Every step, oldest first, as the audit log records it.">
            <div class="panel-body">{history(events)}</div>
        </Panel>
    }
    .into_any()
}

fn request_form(
    entry: &DeadLetterView,
    requirements: Vec<ApprovalRequirement>,
    notice: RwSignal<Option<String>>,
    reload: Callback<()>,
) -> AnyView {
    let id = entry.id.clone();
    let result = RwSignal::new(None::<Result<String, String>>);
    let send = Action::new_local(move |request: &ActionRequest| {
        let (id, request) = (id.clone(), request.clone());
        async move {
            match api::request_dlq_action(&id, &request).await {
                Ok(action) => {
                    let text = format!(
                        "{} requested: {}.",
                        action.kind.label(),
                        action.status.label().to_lowercase()
                    );
                    notice.try_set(Some(text.clone()));
                    result.try_set(Some(Ok(text)));
                    reload.run(());
                }
                Err(e) => {
                    result.try_set(Some(Err(e.message())));
                }
            }
        }
    });
    let pending = send.pending();
    view! {
        <ActionRequestForm
            id="dlq-request"
            requirements
            revision=Some(entry.revision)
            submit=Callback::new(move |request: ActionRequest| {
                send.dispatch(request);
            })
            pending=pending.into()
            result
            button="Request"
        />
    }
    .into_any()
}

fn facts(e: DeadLetterView) -> impl IntoView {
    let time = |ms: i64| {
        let at = Utc::from_millis(ms);
        view! { <time datetime=at.iso()>{at.display()}</time> }.into_any()
    };
    let text = |s: String| view! { {s} }.into_any();
    let code = |s: String| view! { <code>{s}</code> }.into_any();
    let rows: Vec<(&'static str, &'static str, AnyView)> = vec![
        (
            "Service",
            "service",
            text(format!("{} in {}", e.service, e.environment)),
        ),
        ("Entry id", "id", code(e.id)),
        ("Task type", "task-type", text(e.task_type)),
        ("Failed node", "failed-node", code(e.failed_node)),
        (
            "Error class",
            "error-type",
            text(e.error_type.label().to_owned()),
        ),
        ("Error message", "error-message", text(e.error_message)),
        (
            "Attempts before giving up",
            "retries",
            text(e.retry_count.to_string()),
        ),
        (
            "Last checkpoint",
            "checkpoint",
            e.last_checkpoint
                .map_or_else(|| text("none".to_owned()), code),
        ),
        (
            "Payload hash (SHA-256)",
            "payload-hash",
            view! { <code class="hash wrap-anywhere">{e.payload_hash}</code> }.into_any(),
        ),
        ("Revision", "revision", text(e.revision.to_string())),
        ("Status", "status-text", text(e.status.label().to_owned())),
        (
            "First failed (the agent's clock)",
            "created",
            time(e.created_at_ms),
        ),
        ("Received", "received", time(e.received_at_ms)),
        ("Last changed", "updated", time(e.updated_at_ms)),
        (
            "Left the queue",
            "resolved",
            e.resolved_at_ms
                .map_or_else(|| text("not yet".to_owned()), time),
        ),
    ];
    let items = rows
        .into_iter()
        .map(|(label, test, value)| {
            view! {
                <div>
                    <dt>{label}</dt>
                    <dd data-test=format!("dlq-entry-{test}")>{value}</dd>
                </div>
            }
        })
        .collect_view();
    view! { <dl class="facts">{items}</dl> }
}

fn history(events: Vec<DeadLetterEvent>) -> impl IntoView {
    if events.is_empty() {
        return view! { <p class="muted">"Nothing recorded yet."</p> }.into_any();
    }
    let items = events
        .into_iter()
        .map(|ev| {
            let at = Utc::from_millis(ev.at_ms);
            let key = ev.event.clone();
            view! {
                <li data-event=key>
                    <time datetime=at.iso()>{at.display()}</time>
                    " "
                    <strong>{ev.event}</strong>
                    " by "
                    <code>{ev.actor}</code>
                    {(!ev.detail.is_empty()).then(|| view! { <p class="small">{ev.detail}</p> })}
                </li>
            }
        })
        .collect_view();
    view! {
        <ol class="history" data-test="dlq-history">
            {items}
        </ol>
    }
    .into_any()
}
