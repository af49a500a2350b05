//! One incident checklist: the runbook's steps, each with a checkbox and
//! who ticked it when (as the server recorded it), an optional note sent
//! with a tick, every tick and untick in order, and the button that closes
//! the checklist when the incident is over. A closed checklist is
//! read-only, and so is every checklist for a role that does not respond
//! to incidents.

use crate::api;
use crate::app::Hydrated;
use crate::components::checklists::progress;
use crate::layout::{Crumbs, LoadError, Loading, Panel};
use crate::remote::Remote;
use crate::session::Session;
use crate::time::Utc;
use leptos::html;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use shared::api::{ChecklistEvent, ChecklistStep, ChecklistView, Me, StepTick};
use shared::paths::segment;
use shared::role::Permission;

#[component]
pub fn ChecklistPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let session = Session::expect();
    view! {
        <Title text="Checklist" />
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let me = session.me().await.ok().flatten();
                let id = id.get();
                me.map(|me| view! { <Checklist id me /> })
            })}
        </Suspense>
    }
    .into_any()
}

/// How far a checklist's record has got: ticks only add events, and
/// closing ends it. An answer that is behind what the page shows (a
/// refresh sent before a tick, answered after it) is dropped.
fn progress_mark(c: &ChecklistView) -> (usize, bool) {
    (c.events.len(), c.closed_at_ms.is_some())
}

/// Shows `fresh` unless the page already shows a later state.
fn apply(state: RwSignal<Option<ChecklistView>>, fresh: ChecklistView) {
    let behind = state.with_untracked(|shown| {
        shown
            .as_ref()
            .is_some_and(|s| progress_mark(s) > progress_mark(&fresh))
    });
    if !behind {
        state.try_set(Some(fresh));
    }
}

/// What the header shows; it changes only when the checklist closes or a
/// step is ticked, so the steps below are not redrawn with it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    title: String,
    slug: String,
    runbook_version: u64,
    incident_ref: Option<String>,
    started_by: String,
    started_at_ms: i64,
    closed: Option<(String, i64)>,
    done: usize,
    all: usize,
}

impl Header {
    fn of(c: &ChecklistView) -> Self {
        let (done, all) = progress(c);
        Header {
            title: c.title.clone(),
            slug: c.slug.clone(),
            runbook_version: c.runbook_version,
            incident_ref: c.incident_ref.clone(),
            started_by: c.started_by.clone(),
            started_at_ms: c.started_at_ms,
            closed: c.closed_by.clone().zip(c.closed_at_ms),
            done,
            all,
        }
    }
}

#[component]
fn Checklist(id: String, me: Me) -> impl IntoView {
    let target = StoredValue::new(id);
    let loaded = Remote::new(move || {
        let id = target.get_value();
        async move { api::checklist(&id).await }
    });
    let state = RwSignal::new(None::<ChecklistView>);
    Effect::new(move |_| {
        if let Some(Ok(c)) = loaded.get() {
            apply(state, c);
        }
    });
    let header = Memo::new(move |_| state.with(|s| s.as_ref().map(Header::of)));
    let ready = Memo::new(move |_| header.with(Option::is_some));
    let closed =
        Memo::new(move |_| state.with(|s| s.as_ref().is_some_and(|c| c.closed_at_ms.is_some())));
    // Several people work one incident: while it is open, look again every
    // few seconds so that their ticks show up here too.
    Effect::new(move |_| {
        if ready.get()
            && !closed.get()
            && let Ok(handle) =
                set_interval_with_handle(move || loaded.reload(), std::time::Duration::from_secs(5))
        {
            on_cleanup(move || handle.clear());
        }
    });
    let can_respond = me.role.allows(Permission::Respond);
    let me = StoredValue::new(me);
    view! {
        // Once shown, a failed refresh leaves the checklist as it was: only
        // the first load's failure is worth a panel.
        {move || match header.get() {
            Some(h) => view! { <Head h /> }.into_any(),
            None => {
                match loaded.get() {
                    None | Some(Ok(_)) => {
                        view! { <Loading label="Loading the checklist…" /> }.into_any()
                    }
                    Some(Err(e)) => {
                        view! {
                            <Crumbs root=("/runbooks", "Runbooks") />
                            <LoadError
                                message=e.message()
                                retry=Callback::new(move |()| loaded.reload())
                            />
                        }
                            .into_any()
                    }
                }
            }
        }}
        // Drawn once the checklist is there, and not again on each tick:
        // the rows keep what is being typed into their notes.
        {move || {
            ready
                .get()
                .then(|| {
                    view! {
                        <Steps id=target.get_value() state closed can_respond />
                        {(!can_respond)
                            .then(|| {
                                let role = me.with_value(|me| me.role);
                                view! {
                                    <p class="muted" data-test="checklist-read-only">
                                        {format!(
                                            "Your role ({role}) can follow this checklist; an engineer, approver or admin ticks its steps.",
                                        )}
                                    </p>
                                }
                            })}
                        <Record state />
                    }
                })
        }}
    }
    .into_any()
}

#[component]
fn Head(h: Header) -> impl IntoView {
    let runbook_href = format!(
        "/runbooks/{}/versions/{}",
        segment(&h.slug),
        h.runbook_version
    );
    let runbook_href_latest = format!("/runbooks/{}", segment(&h.slug));
    let runbook_words = format!("{} version {}", h.slug, h.runbook_version);
    let started = Utc::from_millis(h.started_at_ms);
    let state = if h.closed.is_some() {
        ("badge", "closed", "Closed")
    } else {
        ("badge badge-warn", "open", "Open")
    };
    let closed = h.closed.map(|(by, at)| {
        let at = Utc::from_millis(at);
        view! {
            <p class="alert alert-info" data-test="checklist-closed">
                "Closed by " <code>{by}</code> " at " <time datetime=at.iso()>{at.display()}</time>
                ". The checklist is read-only now."
            </p>
        }
    });
    view! {
        <div class="page-header">
            <div>
                <Crumbs root=("/runbooks", "Runbooks")>
                    <a href=runbook_href_latest>{h.slug}</a>
                </Crumbs>
                <h1>
                    <span data-test="checklist-title">{h.title}</span>
                    " "
                    <span class=state.0 data-test="checklist-state" data-status=state.1>
                        {state.2}
                    </span>
                </h1>
                <p class="lede">
                    "Following " <a href=runbook_href data-test="checklist-runbook">
                        {runbook_words}
                    </a>
                    {h.incident_ref.map(|r| view! { " · incident " <code data-test="checklist-incident-ref">{r}</code> })}
                    " · started by " <code data-test="checklist-started-by">{h.started_by}</code> " at "
                    <time datetime=started.iso()>{started.display()}</time>
                </p>
            </div>
        </div>
        {closed}
        <p class="muted" data-test="checklist-progress">
            {format!("{} of {} steps done.", h.done, h.all)}
        </p>
    }
}

#[component]
fn Steps(
    id: String,
    state: RwSignal<Option<ChecklistView>>,
    closed: Memo<bool>,
    can_respond: bool,
) -> impl IntoView {
    let count = Memo::new(move |_| state.with(|s| s.as_ref().map_or(0, |c| c.steps.len())));
    let id = StoredValue::new(id);
    let close = Action::new_local(move |(): &()| {
        let id = id.get_value();
        async move { api::close_checklist(&id).await }
    });
    let close_error = RwSignal::new(None::<String>);
    Effect::new(move |_| match close.value().get() {
        Some(Ok(c)) => {
            close_error.set(None);
            apply(state, c);
        }
        Some(Err(e)) => close_error.set(Some(e.message())),
        None => {}
    });
    let hydrated = Hydrated::expect();
    let pending = close.pending();
    view! {
        <Panel
            id="checklist-steps-title"
            title="Steps"
            about="Tick each step as you finish it. Times in UTC."
            test="checklist-steps"
        >
            <ol class="checklist">
                <For each=move || 0..count.get() key=|i| *i let:index>
                    <StepRow id=id.get_value() index state closed can_respond />
                </For>
            </ol>
            {move || {
                (can_respond && !closed.get())
                    .then(|| {
                        view! {
                            <div class="panel-body button-row">
                                <button
                                    type="button"
                                    class="button"
                                    data-test="checklist-close"
                                    disabled=move || pending.get() || !hydrated.get()
                                    on:click=move |_| {
                                        close.dispatch(());
                                    }
                                >
                                    "Close checklist"
                                </button>
                                <span class="muted small">"When the incident is over. Nothing can be ticked afterwards."</span>
                            </div>
                        }
                    })
            }}
            <p class="bad panel-body" role="alert" data-test="checklist-close-error">
                {move || close_error.get()}
            </p>
        </Panel>
    }
}

/// Who last ticked or unticked a step, and when, as the server recorded it.
fn by_line(step: &ChecklistStep) -> AnyView {
    match (&step.by, step.at_ms) {
        (Some(by), Some(at)) => {
            let at = Utc::from_millis(at);
            let verb = if step.done { "✓ by " } else { "Unticked by " };
            view! {
                {verb}
                <code>{by.clone()}</code>
                " at "
                <time datetime=at.iso()>{at.display()}</time>
            }
            .into_any()
        }
        _ => "Not done yet".into_any(),
    }
}

#[component]
fn StepRow(
    id: String,
    index: usize,
    state: RwSignal<Option<ChecklistView>>,
    closed: Memo<bool>,
    can_respond: bool,
) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let step =
        Memo::new(move |_| state.with(|s| s.as_ref().and_then(|c| c.steps.get(index).cloned())));
    let done = move || step.with(|s| s.as_ref().is_some_and(|s| s.done));
    let note = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let checkbox = NodeRef::<html::Input>::new();
    let step_number = u32::try_from(index).unwrap_or(u32::MAX);
    let tick = Action::new_local(move |done: &bool| {
        let (id, tick) = (
            id.clone(),
            StepTick {
                done: *done,
                note: note.get_untracked().trim().to_owned(),
            },
        );
        async move {
            match api::tick_step(&id, step_number, &tick).await {
                Ok(c) => {
                    error.try_set(None);
                    note.try_set(String::new());
                    apply(state, c);
                }
                Err(e) => {
                    error.try_set(Some(e.message()));
                    // The box shows the click; put it back to what is
                    // recorded, since the server did not record the click.
                    let recorded = step.try_with_untracked(|s| s.as_ref().is_some_and(|s| s.done));
                    if let (Some(input), Some(recorded)) = (checkbox.get_untracked(), recorded) {
                        input.set_checked(recorded);
                    }
                }
            }
        }
    });
    let pending = tick.pending();
    let text = move || step.with(|s| s.as_ref().map(|s| s.text.clone()).unwrap_or_default());
    let box_id = format!("step-{index}");
    let note_id = format!("step-note-{index}");
    let editable = move || can_respond && !closed.get();
    view! {
        <li
            class="checklist-step"
            data-test=format!("checklist-step-{index}")
            data-done=move || done().to_string()
        >
            <div class="checklist-step-main">
                <input
                    type="checkbox"
                    id=box_id.clone()
                    data-test=format!("checklist-step-box-{index}")
                    node_ref=checkbox
                    prop:checked=done
                    disabled=move || !editable() || pending.get() || !hydrated.get()
                    on:change=move |ev| {
                        tick.dispatch(event_target_checked(&ev));
                    }
                />
                <label for=box_id>{text}</label>
            </div>
            <p class="checklist-step-by small muted" data-test=format!("checklist-step-by-{index}")>
                {move || step.with(|s| s.as_ref().map(by_line))}
            </p>
            {move || {
                step.with(|s| {
                    s.as_ref()
                        .filter(|s| !s.note.is_empty())
                        .map(|s| {
                            view! {
                                <p class="small" data-test=format!("checklist-step-note-{index}")>
                                    "Note: " {s.note.clone()}
                                </p>
                            }
                        })
                })
            }}
            {move || {
                editable()
                    .then(|| {
                        let note_id = note_id.clone();
                        view! {
                            // Folded away: most ticks need no note, and
                            // a box per step would bury the steps.
                            <details class="checklist-note">
                                <summary data-test=format!("step-note-toggle-{index}")>
                                    "Add a note"
                                    <span class="visually-hidden">{format!(" to step {}", index + 1)}</span>
                                </summary>
                                <label for=note_id.clone() class="small">
                                    "Note, saved with your next tick or untick"
                                </label>
                                <input
                                    id=note_id.clone()
                                    type="text"
                                    class="input-small"
                                    autocomplete="off"
                                    data-test=note_id
                                    prop:value=move || note.get()
                                    on:input=move |ev| note.set(event_target_value(&ev))
                                />
                            </details>
                        }
                    })
            }}
            <p class="bad small" role="alert" data-test=format!("checklist-step-error-{index}")>
                {move || error.get()}
            </p>
        </li>
    }
}

/// Every tick and untick, oldest first: the incident's timeline.
#[component]
fn Record(state: RwSignal<Option<ChecklistView>>) -> impl IntoView {
    let events = Memo::new(move |_| {
        state.with(|s| {
            s.as_ref().map(|c| {
                (
                    c.events.clone(),
                    c.steps.iter().map(|s| s.text.clone()).collect::<Vec<_>>(),
                )
            })
        })
    });
    view! {
        <Panel id="checklist-record-title" title="Record" about="Every tick and untick, oldest first." test="checklist-record">
            <div class="panel-body">
                {move || events.get().map(|(events, texts)| record_list(events, &texts))}
            </div>
        </Panel>
    }
}

fn record_list(events: Vec<ChecklistEvent>, texts: &[String]) -> AnyView {
    if events.is_empty() {
        return view! { <p class="muted">"Nothing ticked yet."</p> }.into_any();
    }
    let items = events
        .into_iter()
        .map(|e| {
            let at = Utc::from_millis(e.at_ms);
            let what = if e.done { "ticked" } else { "unticked" };
            let text = texts.get(e.index as usize).cloned().unwrap_or_default();
            view! {
                <li>
                    <time datetime=at.iso()>{at.display()}</time>
                    " "
                    <code>{e.by}</code>
                    {format!(" {what} step {}: ", e.index + 1)}
                    {text}
                    {(!e.note.is_empty()).then(|| view! { <p class="small">"Note: " {e.note}</p> })}
                </li>
            }
        })
        .collect_view();
    view! {
        <ol class="history" data-test="checklist-events">
            {items}
        </ol>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checklist(events: usize, closed: bool) -> ChecklistView {
        ChecklistView {
            id: "cl-1".into(),
            slug: "dlq-growth".into(),
            runbook_version: 1,
            title: "DLQ growing".into(),
            incident_ref: None,
            started_by: "user:ana".into(),
            started_at_ms: 0,
            closed_by: closed.then(|| "user:ana".into()),
            closed_at_ms: closed.then_some(10),
            steps: vec![ChecklistStep {
                index: 0,
                text: "Look".into(),
                done: events % 2 == 1,
                by: None,
                at_ms: None,
                note: String::new(),
            }],
            events: (0..events)
                .map(|i| ChecklistEvent {
                    index: 0,
                    done: i % 2 == 0,
                    by: "user:ana".into(),
                    at_ms: i as i64,
                    note: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn an_answer_behind_the_page_is_dropped() {
        let owner = Owner::new();
        owner.with(|| {
            let state = RwSignal::new(None);
            apply(state, checklist(2, false));
            assert_eq!(state.with(|s| s.as_ref().unwrap().events.len()), 2);
            apply(state, checklist(1, false));
            assert_eq!(state.with(|s| s.as_ref().unwrap().events.len()), 2);
            apply(state, checklist(2, true));
            assert!(state.with(|s| s.as_ref().unwrap().closed_at_ms.is_some()));
            apply(state, checklist(2, false));
            assert!(state.with(|s| s.as_ref().unwrap().closed_at_ms.is_some()));
        });
    }
}
