use crate::api;
use crate::app::Hydrated;
use crate::layout::{LoadError, Loading, PageHeader, RequirePermission};
use crate::remote::Remote;
use crate::time::Utc;
use leptos::prelude::*;
use leptos_meta::Title;
use shared::api::{DecisionRequest, PublishRequestView};
use shared::role::Permission;

#[component]
pub fn ApprovalsPage() -> impl IntoView {
    view! {
        <Title text="Approvals" />
        <RequirePermission permission=Permission::Approve purpose="approve publishes">
            <Approvals />
        </RequirePermission>
    }
}

#[component]
fn Approvals() -> impl IntoView {
    let requests = Remote::new(api::pending_publish_requests);
    view! {
        <PageHeader
            title="Approvals"
            lede="Publishes that need a second person: high-risk and regulated services, and changes that loosen an invariant. Nobody approves their own request."
        >
            <button type="button" class="button" on:click=move |_| requests.reload()>
                "Refresh"
            </button>
        </PageHeader>
        <section class="panel" aria-labelledby="approvals-title">
            <div class="panel-header">
                <h2 id="approvals-title">"Waiting for a decision"</h2>
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
                            on_decided=Callback::new(move |()| requests.reload())
                        />
                    }
                        .into_any()
                }
            }}
        </section>
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
