use crate::api;
use crate::app::Hydrated;
use crate::components::dlq::{ActionsTable, BulkResults, cannot_decide};
use crate::components::selection::Selection;
use crate::layout::{
    InboxBadge, LoadError, Loading, PageHeader, Panel, RequirePermission, TextInput,
};
use crate::remote::Remote;
use crate::session::Session;
use crate::time::Utc;
use leptos::prelude::*;
use leptos_meta::Title;
use shared::api::{
    ActionView, BulkDecision, BulkItemResult, DecisionRequest, Me, PublishRequestView,
};
use shared::role::Permission;

#[component]
pub fn ApprovalsPage() -> impl IntoView {
    view! {
        <Title text="Approvals" />
        <RequirePermission permission=Permission::Approve purpose="approve publishes and dead-letter actions">
            <Approvals />
        </RequirePermission>
    }
}

#[component]
fn Approvals() -> impl IntoView {
    let requests = Remote::new(api::pending_publish_requests);
    let actions = Remote::new(api::requested_dlq_actions);
    let session = Session::expect();
    let refresh = move || {
        requests.reload();
        actions.reload();
        InboxBadge::refresh();
    };
    view! {
        <PageHeader
            title="Approvals"
            lede="What needs a second person: publishes to high-risk and regulated services or that loosen an invariant, and actions on dead letters. Nobody approves their own request."
        >
            <button type="button" class="button" on:click=move |_| refresh()>
                "Refresh"
            </button>
        </PageHeader>
        <Panel
            id="dlq-approvals-title"
            title="Dead-letter actions"
            about="Redrives, cancellations, manual completions and escalations awaiting approval. Times in UTC."
            test="dlq-approvals"
        >
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    session
                        .me()
                        .await
                        .ok()
                        .flatten()
                        .map(|me| {
                            view! {
                                <DlqInbox actions me on_changed=Callback::new(move |()| refresh()) />
                            }
                        })
                })}
            </Suspense>
        </Panel>
        <section class="panel" aria-labelledby="approvals-title">
            <div class="panel-header">
                <h2 id="approvals-title">"Publishes waiting for a decision"</h2>
            </div>
            {move || match requests.get() {
                None => view! { <Loading label="Loading requests…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| requests.reload()) /> }
                        .into_any()
                }
                Some(Ok(list)) => {
                    view! {
                        <ApprovalsTable
                            requests=list
                            on_decided=Callback::new(move |()| {
                                requests.reload();
                                InboxBadge::refresh();
                            })
                        />
                    }
                        .into_any()
                }
            }}
        </section>
    }
}

/// Dead-letter actions awaiting approval, each decided on its own or many
/// approved at once with one reason.
#[component]
fn DlqInbox(actions: Remote<Vec<ActionView>>, me: Me, on_changed: Callback<()>) -> impl IntoView {
    let selection = Selection::default();
    let chooser = me.clone();
    Effect::new(move |_| {
        if let Some(Ok(list)) = actions.get() {
            let mine = |a: &&ActionView| cannot_decide(&chooser, a).is_none();
            selection.show(list.iter().filter(mine).map(|a| a.id.clone()).collect());
        }
    });
    let table = move || {
        match actions.get() {
        None => view! { <Loading label="Loading dead-letter actions…" /> }.into_any(),
        Some(Err(e)) => {
            view! { <LoadError message=e.message() retry=Callback::new(move |()| actions.reload()) /> }
                .into_any()
        }
        Some(Ok(list)) => {
            view! { <ActionsTable actions=list me=me.clone() inbox=true selection on_changed /> }
                .into_any()
        }
    }
    };
    view! {
        {table}
        <BulkApprove selection on_done=on_changed />
    }
}

/// Approves every picked action with one reason; each answers for itself.
#[component]
fn BulkApprove(selection: Selection, on_done: Callback<()>) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let reason = RwSignal::new(String::new());
    let result = RwSignal::new(None::<Result<Vec<BulkItemResult>, String>>);
    let approve = Action::new_local(move |decision: &BulkDecision| {
        let decision = decision.clone();
        async move {
            let answer = api::bulk_approve_dlq_actions(&decision).await;
            result.try_set(Some(answer.map_err(|e| e.message())));
            selection.clear();
            on_done.run(());
        }
    });
    let pending = approve.pending();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = reason.get_untracked().trim().to_owned();
        let ids = selection.ids();
        if ids.is_empty() {
            result.set(Some(Err("Select actions in the table first.".into())));
        } else if text.is_empty() {
            result.set(Some(Err(
                "Give a reason first: the audit log keeps it.".into()
            )));
        } else {
            approve.dispatch(BulkDecision { ids, reason: text });
        }
    };
    view! {
        <form class="form inline-form panel-body" novalidate on:submit=submit data-test="dlq-bulk-approve">
            <div class="cell-field">
                <TextInput id="dlq-bulk-reason" label="Reason for approving the selected actions" value=reason />
            </div>
            <div class="button-row">
                <button
                    type="submit"
                    class="button button-primary"
                    data-test="dlq-bulk-approve-submit"
                    disabled=move || pending.get() || !hydrated.get()
                >
                    {move || format!("Approve selected ({})", selection.count())}
                </button>
            </div>
            <div role="status" data-test="dlq-bulk-approve-result">
                {move || match result.get() {
                    Some(Ok(results)) => view! { <BulkResults results test="dlq-bulk-approve-results" /> }.into_any(),
                    Some(Err(m)) => view! { <p class="alert alert-error">{m}</p> }.into_any(),
                    None => ().into_any(),
                }}
            </div>
        </form>
    }
}

#[component]
fn ApprovalsTable(requests: Vec<PublishRequestView>, on_decided: Callback<()>) -> impl IntoView {
    if requests.is_empty() {
        return view! {
            <div class="empty-state empty-state-flat" data-test="approvals-empty">
                <h2>"Nothing waits for you."</h2>
                <p>"Publishes that need an approver show up here."</p>
            </div>
        }
        .into_any();
    }
    let rows = requests
        .into_iter()
        .map(|r| view! { <RequestRow request=r on_decided /> })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="table" data-test="approvals-table">
                <thead>
                    <tr>
                        <th scope="col">"Service"</th>
                        <th scope="col">"Author and message"</th>
                        <th scope="col">"Why it needs approval"</th>
                        <th scope="col">"Requested"</th>
                        <th scope="col">"Decision"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn RequestRow(request: PublishRequestView, on_decided: Callback<()>) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let id = request.id.clone();
    let at = Utc::from_millis(request.created_at_ms);
    let href = format!(
        "/services/{}/{}?tab=versions",
        shared::paths::segment(&request.service),
        shared::paths::segment(&request.environment)
    );
    let comment = RwSignal::new(String::new());
    let result = RwSignal::new(None::<Result<String, String>>);
    let decide = Action::new_local(move |(id, approve): &(String, bool)| {
        let (id, approve) = (id.clone(), *approve);
        async move {
            let text = comment.get_untracked();
            let request = DecisionRequest {
                comment: (!text.trim().is_empty()).then(|| text.trim().to_owned()),
            };
            match api::decide_publish_request(&id, approve, &request).await {
                Ok(view) => {
                    let text = match (approve, view.version) {
                        (true, Some(v)) => format!("Approved: published v{v}."),
                        (true, None) => "Approved.".to_owned(),
                        (false, _) => "Rejected.".to_owned(),
                    };
                    result.try_set(Some(Ok(text)));
                    on_decided.run(());
                }
                Err(e) => {
                    result.try_set(Some(Err(e.message())));
                }
            }
        }
    });
    let pending = decide.pending();
    let disabled = move || pending.get() || !hydrated.get();
    let reasons = request
        .reasons
        .into_iter()
        .map(|r| view! { <li>{r}</li> })
        .collect_view();
    let comment_id = format!("comment-{id}");
    let (approve_id, reject_id) = (id.clone(), id.clone());
    view! {
        <tr data-test=format!("approval-row-{id}")>
            <td>
                <a href=href>
                    <strong>{request.service}</strong>
                </a>
                " "
                <span class="env-badge">{request.environment}</span>
                {request
                    .canary_percent
                    .map(|p| view! { <p class="muted small">{format!("to a {p} % canary")}</p> })}
            </td>
            <td class="wrap">
                <code>{request.author}</code>
                <p class="request-message">{request.message}</p>
            </td>
            <td>
                <ul class="reasons">{reasons}</ul>
            </td>
            <td class="nowrap">
                <time datetime=at.iso()>{at.display()}</time>
            </td>
            <td class="decision">
                <label for=comment_id.clone() class="visually-hidden">
                    "Comment for the audit log"
                </label>
                <input
                    id=comment_id
                    type="text"
                    class="input-small"
                    placeholder="Comment (optional)"
                    autocomplete="off"
                    prop:value=move || comment.get()
                    on:input=move |ev| comment.set(event_target_value(&ev))
                />
                <div class="button-row">
                    <button
                        type="button"
                        class="button button-primary button-small"
                        data-test=format!("approve-{id}")
                        disabled=disabled
                        on:click=move |_| {
                            decide.dispatch((approve_id.clone(), true));
                        }
                    >
                        "Approve"
                    </button>
                    <button
                        type="button"
                        class="button button-small"
                        data-test=format!("reject-{id}")
                        disabled=disabled
                        on:click=move |_| {
                            decide.dispatch((reject_id.clone(), false));
                        }
                    >
                        "Reject"
                    </button>
                </div>
                <div role="status" data-test=format!("decision-result-{id}")>
                    {move || match result.get() {
                        Some(Ok(m)) => view! { <p class="ok small">{m}</p> }.into_any(),
                        Some(Err(m)) => view! { <p class="bad small">{m}</p> }.into_any(),
                        None => ().into_any(),
                    }}
                </div>
            </td>
        </tr>
    }
}
