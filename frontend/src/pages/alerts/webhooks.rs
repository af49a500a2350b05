//! Webhooks that receive alert notifications (admins only: they hold
//! signing secrets and make the server call out). A secret is typed once
//! and never shown again.

use super::form::{FormError, LineField, Problem};
use crate::api;
use crate::app::Hydrated;
use crate::components::data_table::{DataTable, Head};
use crate::layout::{LoadError, Loading, Outcome, Panel};
use crate::remote::Remote;
use crate::time::Utc;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use shared::api::{WebhookView, WebhookWrite};

#[component]
pub fn WebhooksPanel() -> impl IntoView {
    let hydrated = Hydrated::expect();
    let hooks = Remote::new(api::webhooks);
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let remove = Action::new_local(move |(id, name): &(String, String)| {
        let (id, name) = (id.clone(), name.clone());
        async move {
            outcome.try_set(Some(match api::delete_webhook(&id).await {
                Ok(()) => Ok(format!(
                    "Deleted webhook {name}; what it had not received yet failed."
                )),
                Err(e) => Err(e.message()),
            }));
            hooks.reload();
        }
    });
    let pending: Signal<bool> = remove.pending().into();
    let on_delete = Callback::new(move |pair: (String, String)| {
        remove.dispatch(pair);
    });
    let created = Callback::new(move |w: WebhookView| {
        outcome.set(Some(Ok(format!(
            "Added webhook {} with id {}. Its secret is not shown again: keep it with the receiver. Name the id in a rule's webhooks to notify it.",
            w.name, w.id
        ))));
        hooks.reload();
    });
    view! {
        <Panel
            id="webhooks-title"
            title="Webhooks"
            about="Where notifications go, each request signed with the webhook's secret. Failed deliveries are retried with backoff; after 5 failures in a row, deliveries wait while the receiver recovers."
            test="webhooks"
        >
            <Outcome result=outcome test="webhook-outcome" />
            {move || match hooks.get() {
                None => view! { <Loading label="Loading webhooks…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| hooks.reload()) /> }.into_any()
                }
                Some(Ok(list)) => {
                    let rows = list.into_iter().map(|w| webhook_row(w, on_delete, pending, hydrated)).collect();
                    view! { <DataTable caption="Webhooks" test="webhooks-table" heads=HEADS empty="No webhook: notifications go nowhere." rows /> }
                        .into_any()
                }
            }}
            <WebhookForm on_created=created />
        </Panel>
    }
}

const HEADS: &[Head] = &[
    ("Webhook", ""),
    ("URL", ""),
    ("Added", ""),
    ("Breaker", ""),
    ("Pending", "num"),
    ("", ""),
];

fn webhook_row(
    w: WebhookView,
    on_delete: Callback<(String, String)>,
    pending: Signal<bool>,
    hydrated: Hydrated,
) -> AnyView {
    let added = Utc::from_millis(w.created_at_ms);
    let breaker = match w.breaker_open_until_ms {
        Some(until) => {
            let until = Utc::from_millis(until);
            view! {
                <span class="breaker breaker-open" data-state="open">"open"</span>
                <p class="small muted">"until " <time datetime=until.iso()>{until.display()}</time></p>
            }
            .into_any()
        }
        None => view! { <span class="breaker breaker-closed" data-state="closed">"closed"</span> }
            .into_any(),
    };
    let failures = (w.consecutive_failures > 0)
        .then(|| view! { <p class="small bad">{format!("{} failed in a row", w.consecutive_failures)}</p> });
    let pair = (w.id.clone(), w.name.clone());
    view! {
        <tr data-test=format!("webhook-row-{}", w.id)>
            <td class="wrap">
                <strong>{w.name.clone()}</strong>
                <p class="muted small">"id " <code>{w.id.clone()}</code></p>
            </td>
            <td class="wrap">
                <code>{w.url}</code>
            </td>
            <td class="nowrap">
                <time datetime=added.iso()>{added.display()}</time>
                <p class="muted small">"by " <code>{w.created_by}</code></p>
            </td>
            <td>{breaker} {failures}</td>
            <td class="num">{w.pending}</td>
            <td>
                <button
                    type="button"
                    class="button button-small button-quiet"
                    data-test=format!("webhook-delete-{}", w.id)
                    disabled=move || pending.get() || !hydrated.get()
                    on:click=move |_| on_delete.run(pair.clone())
                >
                    "Delete " <span class="visually-hidden">{w.name}</span>
                </button>
            </td>
        </tr>
    }
    .into_any()
}

const FIELDS: &[&str] = &["name", "url", "secret"];

#[component]
fn WebhookForm(on_created: Callback<WebhookView>) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let name = RwSignal::new(String::new());
    let url = RwSignal::new(String::new());
    let secret = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<Problem>);
    let create = Action::new_local(move |write: &WebhookWrite| {
        let write = write.clone();
        async move {
            match api::create_webhook(&write).await {
                Ok(w) => {
                    // The secret leaves the page with the request.
                    secret.try_set(String::new());
                    name.try_set(String::new());
                    url.try_set(String::new());
                    on_created.run(w);
                }
                Err(e) => {
                    problem.try_set(Some(Problem::of(&e)));
                }
            }
        }
    });
    let pending = create.pending();
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        problem.set(None);
        create.dispatch(WebhookWrite {
            name: name.get_untracked().trim().to_owned(),
            url: url.get_untracked().trim().to_owned(),
            secret: secret.get_untracked(),
        });
    };
    view! {
        <form class="form panel-body" novalidate data-test="webhook-form" on:submit=on_submit>
            <h3>"Add a webhook"</h3>
            <FormError problem fields=FIELDS test="webhook-form-error" />
            <LineField id="webhook-name" field="name" label="Name" hint="For people." value=name problem required=true />
            <LineField id="webhook-url" field="url" label="URL" hint="An http:// address that accepts POST." value=url problem required=true />
            <LineField
                id="webhook-secret"
                field="secret"
                label="Signing secret"
                hint="16 to 256 characters. Requests carry an HMAC-SHA256 signature made with it. It is never shown again."
                value=secret
                problem
                kind="password"
                required=true
            />
            <div class="button-row">
                <button
                    type="submit"
                    class="button button-primary"
                    data-test="webhook-save"
                    disabled=move || pending.get() || !hydrated.get()
                >
                    "Add webhook"
                </button>
            </div>
        </form>
    }
}
