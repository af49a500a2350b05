//! Silences: for a while, matching alerts notify nobody. They still fire
//! and show here, so nothing is hidden from the people looking.

use super::form::{FormError, LineField, Problem, SelectField};
use crate::api;
use crate::app::Hydrated;
use crate::components::data_table::{DataTable, Head};
use crate::layout::{LoadError, Loading, Outcome, Panel};
use crate::remote::Remote;
use crate::time::Utc;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use shared::api::{SilenceView, SilenceWrite};

/// How long a new silence lasts: seconds, and the words for it. The server
/// allows at most 7 days.
const DURATIONS: [(&str, &str); 6] = [
    ("1800", "30 minutes"),
    ("3600", "1 hour"),
    ("14400", "4 hours"),
    ("43200", "12 hours"),
    ("86400", "1 day"),
    ("604800", "7 days"),
];

#[component]
pub fn SilencesPanel(can_respond: bool) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let silences = Remote::new(api::silences);
    let creating = RwSignal::new(false);
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let end = Action::new_local(move |id: &String| {
        let id = id.clone();
        async move {
            outcome.try_set(Some(match api::end_silence(&id).await {
                Ok(()) => Ok("Ended the silence: matching alerts notify again.".to_owned()),
                Err(e) => Err(e.message()),
            }));
            silences.reload();
        }
    });
    let pending: Signal<bool> = end.pending().into();
    let on_end = Callback::new(move |id: String| {
        end.dispatch(id);
    });
    let created = Callback::new(move |s: SilenceView| {
        creating.set(false);
        outcome.set(Some(Ok(format!(
            "Silenced until {}.",
            Utc::from_millis(s.ends_at_ms).display()
        ))));
        silences.reload();
    });
    view! {
        <Panel
            id="silences-title"
            title="Silences"
            about="While a silence matches an alert, the alert still fires and shows, but notifies nobody. In force and of the last week; times in UTC."
            test="silences"
        >
            {can_respond
                .then(|| {
                    view! {
                        <div class="panel-body button-row">
                            <button
                                type="button"
                                class="button"
                                data-test="silence-new"
                                aria-expanded=move || creating.get().to_string()
                                disabled=move || !hydrated.get()
                                on:click=move |_| creating.set(true)
                            >
                                "New silence"
                            </button>
                        </div>
                    }
                })}
            <Outcome result=outcome test="silence-outcome" />
            {move || {
                creating
                    .get()
                    .then(|| view! { <SilenceForm on_created=created on_cancel=Callback::new(move |()| creating.set(false)) /> })
            }}
            {move || match silences.get() {
                None => view! { <Loading label="Loading silences…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| silences.reload()) /> }.into_any()
                }
                Some(Ok(list)) => {
                    let now = now_ms();
                    let rows = list
                        .into_iter()
                        .map(|s| silence_row(s, now, can_respond, on_end, pending))
                        .collect();
                    view! {
                        <DataTable caption="Silences" test="silences-table" heads=HEADS empty="No silence in the last week." rows />
                    }
                        .into_any()
                }
            }}
        </Panel>
    }
}

/// The browser's clock, to tell silences in force from those over. Only
/// the browser draws the table (the server renders it as loading).
fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        leptos::web_sys::js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0
    }
}

const HEADS: &[Head] = &[
    ("Matches", ""),
    ("Reason", ""),
    ("By", ""),
    ("From", ""),
    ("Until", ""),
    ("State", ""),
];

fn silence_row(
    s: SilenceView,
    now: i64,
    can_respond: bool,
    on_end: Callback<String>,
    pending: Signal<bool>,
) -> AnyView {
    let hydrated = Hydrated::expect();
    let matches: Vec<String> = [
        ("rule", &s.rule),
        ("service", &s.service),
        ("env", &s.environment),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
    .collect();
    let matches = if matches.is_empty() {
        "every alert".to_owned()
    } else {
        matches.join(", ")
    };
    let active = s.ended_by.is_none() && s.ends_at_ms > now;
    let (from, until) = (
        Utc::from_millis(s.starts_at_ms),
        Utc::from_millis(s.ends_at_ms),
    );
    let state = match (&s.ended_by, active) {
        (Some(by), _) => {
            view! { <span>"Ended early by " <code>{by.clone()}</code></span> }.into_any()
        }
        (None, true) if can_respond => {
            let id = s.id.clone();
            view! {
                <span class="status status-warn">"In force"</span>
                " "
                <button
                    type="button"
                    class="button button-small"
                    data-test=format!("silence-end-{}", s.id)
                    disabled=move || pending.get() || !hydrated.get()
                    on:click=move |_| on_end.run(id.clone())
                >
                    "End now"
                </button>
            }
            .into_any()
        }
        (None, true) => view! { <span class="status status-warn">"In force"</span> }.into_any(),
        (None, false) => view! { <span class="muted">"Over"</span> }.into_any(),
    };
    view! {
        <tr data-test=format!("silence-row-{}", s.id) data-active=active.to_string()>
            <td class="wrap">{matches}</td>
            <td class="wrap">{s.reason}</td>
            <td>
                <code>{s.created_by}</code>
            </td>
            <td class="nowrap">
                <time datetime=from.iso()>{from.display()}</time>
            </td>
            <td class="nowrap">
                <time datetime=until.iso()>{until.display()}</time>
            </td>
            <td>{state}</td>
        </tr>
    }
    .into_any()
}

const FIELDS: &[&str] = &["rule", "service", "environment", "duration_s", "reason"];

#[component]
fn SilenceForm(on_created: Callback<SilenceView>, on_cancel: Callback<()>) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let rule = RwSignal::new(String::new());
    let service = RwSignal::new(String::new());
    let environment = RwSignal::new(String::new());
    let duration = RwSignal::new("3600".to_owned());
    let reason = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<Problem>);
    let create = Action::new_local(move |write: &SilenceWrite| {
        let write = write.clone();
        async move {
            match api::create_silence(&write).await {
                Ok(s) => on_created.run(s),
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
        let opt = |v: RwSignal<String>| {
            Some(v.get_untracked().trim().to_owned()).filter(|s| !s.is_empty())
        };
        problem.set(None);
        create.dispatch(SilenceWrite {
            rule: opt(rule),
            service: opt(service),
            environment: opt(environment),
            duration_s: duration.get_untracked().parse().unwrap_or(3600),
            reason: reason.get_untracked().trim().to_owned(),
        });
    };
    view! {
        <form class="form panel-body" novalidate data-test="silence-form" on:submit=on_submit>
            <h3>"New silence"</h3>
            <FormError problem fields=FIELDS test="silence-form-error" />
            <LineField id="silence-rule" field="rule" label="Rule" hint="A rule's name; empty matches every rule." value=rule problem />
            <LineField id="silence-service" field="service" label="Service" hint="Empty matches every service." value=service problem />
            <LineField id="silence-environment" field="environment" label="Environment" hint="Empty matches every environment." value=environment problem />
            <SelectField
                id="silence-duration"
                field="duration_s"
                label="For"
                hint="It ends by itself; it can also be ended early."
                value=duration
                options=DURATIONS.to_vec()
                problem
            />
            <LineField id="silence-reason" field="reason" label="Reason" hint="Why, for the people who wonder where the notifications went." value=reason problem required=true />
            <div class="button-row">
                <button
                    type="submit"
                    class="button button-primary"
                    data-test="silence-save"
                    disabled=move || pending.get() || !hydrated.get()
                >
                    "Silence"
                </button>
                <button type="button" class="button button-quiet" on:click=move |_| on_cancel.run(())>
                    "Cancel"
                </button>
            </div>
        </form>
    }
}
