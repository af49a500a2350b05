//! Dead letters and the actions on them, as the entry page, the queue page
//! and the approvals inbox show them: status chips, the table of actions
//! with each one's decision, and the form that asks for an action.
//!
//! Who may decide is the server's call (an approver or admin, never on
//! their own request); the buttons follow the same rule so that nobody is
//! offered a click that can only fail, and say why when they are off.

use crate::api::{self, Verdict};
use crate::app::Hydrated;
use crate::components::data_table::{DataTable, Head};
use crate::components::selection::{SelectAll, Selection, select_cell};
use crate::layout::{Outcome, TextInput};
use crate::time::Utc;
use leptos::prelude::*;
use shared::api::{
    ActionDecision, ActionRequest, ActionStatus, ActionView, ApprovalRequirement, BulkItemResult,
    DeadLetterStatus, Me,
};
use shared::protocol::DlqActionKind;
use shared::role::Permission;

/// An entry's status in words and colour (what needs a person stands
/// out); `data-status` carries the wire name.
pub fn entry_chip(status: DeadLetterStatus, test: String) -> AnyView {
    let tone = match status {
        DeadLetterStatus::Open | DeadLetterStatus::Escalated => "badge badge-warn",
        DeadLetterStatus::Pending => "badge badge-info",
        DeadLetterStatus::Redriven | DeadLetterStatus::Completed => "badge badge-ok",
        DeadLetterStatus::Cancelled => "badge",
    };
    chip(tone, status.as_str(), status.label(), test)
}

/// An action's status in words and colour.
pub fn action_chip(status: ActionStatus, test: String) -> AnyView {
    let tone = match status {
        ActionStatus::Requested => "badge badge-warn",
        ActionStatus::Approved | ActionStatus::Dispatched => "badge badge-info",
        ActionStatus::Succeeded => "badge badge-ok",
        ActionStatus::Failed | ActionStatus::Uncertain | ActionStatus::Refused => "badge badge-bad",
        ActionStatus::Rejected | ActionStatus::Expired | ActionStatus::Withdrawn => "badge",
    };
    chip(tone, status.as_str(), status.label(), test)
}

fn chip(tone: &'static str, key: &'static str, label: &'static str, test: String) -> AnyView {
    view! {
        <span class=tone data-test=test data-status=key>
            {label}
        </span>
    }
    .into_any()
}

/// Whether an actor as the server records it (`user:NAME`, see the audit
/// log) is the signed-in user.
pub fn is_me(me: &Me, actor: &str) -> bool {
    actor.strip_prefix("user:") == Some(me.username.as_str())
}

/// Why `me` may not approve or reject `action`, or `None` when they may.
pub fn cannot_decide(me: &Me, action: &ActionView) -> Option<String> {
    if action.status != ActionStatus::Requested {
        Some(format!(
            "Only a request awaiting approval can be decided; this one is {}.",
            action.status.label().to_lowercase()
        ))
    } else if is_me(me, &action.requested_by) {
        Some("You asked for this action: someone else must approve or reject it.".to_owned())
    } else if !me.role.allows(Permission::Approve) {
        Some(format!(
            "Your role ({}) cannot approve or reject; an approver or an admin can.",
            me.role
        ))
    } else {
        None
    }
}

/// Whether `me` may take `action` back: its requester or its approver,
/// before it is dispatched.
pub fn may_withdraw(me: &Me, action: &ActionView) -> bool {
    matches!(
        action.status,
        ActionStatus::Requested | ActionStatus::Approved
    ) && (is_me(me, &action.requested_by)
        || action.decided_by.as_deref().is_some_and(|by| is_me(me, by)))
}

/// Approve, reject or withdraw one action, with the reason the audit log
/// keeps. Nothing when the action is past deciding.
#[component]
pub fn DecisionControls(action: ActionView, me: Me, on_changed: Callback<()>) -> impl IntoView {
    let blocked = cannot_decide(&me, &action);
    let withdraw = may_withdraw(&me, &action);
    let requested = action.status == ActionStatus::Requested;
    if !requested && !withdraw {
        return ().into_any();
    }
    let hydrated = Hydrated::expect();
    let id = action.id;
    let reason = RwSignal::new(String::new());
    let result = RwSignal::new(None::<Result<String, String>>);
    let target = id.clone();
    let decide = Action::new_local(move |(verdict, text): &(Verdict, String)| {
        let (verdict, decision) = (
            *verdict,
            ActionDecision {
                reason: text.clone(),
            },
        );
        let id = target.clone();
        async move {
            match api::decide_dlq_action(&id, verdict, &decision).await {
                Ok(view) => {
                    result.try_set(Some(Ok(format!(
                        "Now {}.",
                        view.status.label().to_lowercase()
                    ))));
                    on_changed.run(());
                }
                Err(e) => {
                    result.try_set(Some(Err(e.message())));
                }
            }
        }
    });
    let pending = decide.pending();
    let send = move |verdict: Verdict| {
        let text = reason.get_untracked().trim().to_owned();
        if text.is_empty() {
            result.set(Some(Err(
                "Give a reason first: the audit log keeps it.".into()
            )));
        } else {
            decide.dispatch((verdict, text));
        }
    };
    let can_decide = blocked.is_none();
    let idle = move || pending.get() || !hydrated.get();
    let reason_field = (can_decide || withdraw).then(|| {
        view! {
            <TextInput
                id=format!("dlq-decision-reason-{id}")
                label="Reason for the audit log"
                value=reason
                hidden_label=true
                placeholder="Reason (required)"
                class="input-small"
            />
        }
    });
    // Approve and Reject are offered on every request, off (with the
    // reason as their title) for whoever may not decide it.
    let buttons = [
        (
            Verdict::Approve,
            "Approve",
            "button button-primary button-small",
            requested,
        ),
        (Verdict::Reject, "Reject", "button button-small", requested),
        (
            Verdict::Withdraw,
            "Withdraw",
            "button button-quiet button-small",
            withdraw,
        ),
    ]
    .into_iter()
    .filter(|(.., shown)| *shown)
    .map(|(verdict, label, class, _)| {
        let off = verdict != Verdict::Withdraw && !can_decide;
        let title = off.then(|| blocked.clone()).flatten();
        view! {
            <button
                type="button"
                class=class
                data-test=format!("dlq-{}-{id}", verdict.verb())
                title=title
                disabled=move || off || idle()
                on:click=move |_| send(verdict)
            >
                {label}
            </button>
        }
    })
    .collect_view();
    view! {
        <div class="decision">
            {reason_field}
            <div class="button-row">{buttons}</div>
            <Outcome result test=format!("dlq-decision-result-{id}") small=true />
        </div>
    }
    .into_any()
}

const ENTRY_HEADS: &[Head] = &[
    ("Action", ""),
    ("Status", ""),
    ("Requested", ""),
    ("Reason", ""),
    ("Why an approver", ""),
    ("Outcome", ""),
    ("Decision", ""),
];

const INBOX_HEADS: &[Head] = &[
    ("Dead letter", ""),
    ("Action", ""),
    ("Requested", ""),
    ("Reason", ""),
    ("Why an approver", ""),
    ("Expires", ""),
    ("Decision", ""),
];

/// Actions, newest first: one entry's (`inbox` false) or those awaiting
/// approval across the fleet (`inbox` true, each linking to its entry and,
/// with a `selection`, pickable for a bulk approval).
#[component]
pub fn ActionsTable(
    actions: Vec<ActionView>,
    me: Me,
    inbox: bool,
    #[prop(optional)] selection: Option<Selection>,
    on_changed: Callback<()>,
) -> impl IntoView {
    let lead = selection.map(|selection| {
        view! {
            <SelectAll selection label="Select every action on show" test="dlq-select-all" />
        }
        .into_any()
    });
    let rows = actions
        .into_iter()
        .map(|action| action_row(action, &me, inbox, selection, on_changed))
        .collect();
    let (caption, test, heads, empty) = if inbox {
        (
            "Dead-letter actions awaiting approval",
            "dlq-inbox-table",
            INBOX_HEADS,
            "No dead-letter action waits for an approver.",
        )
    } else {
        (
            "Actions on this dead letter, newest first",
            "dlq-actions-table",
            ENTRY_HEADS,
            "Nobody has asked for an action yet.",
        )
    };
    view! { <DataTable caption test heads lead=lead empty rows /> }
}

fn when(ms: i64) -> impl IntoView + use<> {
    let at = Utc::from_millis(ms);
    view! { <time datetime=at.iso()>{at.display()}</time> }
}

fn action_row(
    a: ActionView,
    me: &Me,
    inbox: bool,
    selection: Option<Selection>,
    on_changed: Callback<()>,
) -> AnyView {
    let id = a.id.clone();
    let state = a.status.as_str();
    // Only what this person may decide can be picked for a bulk approval.
    let select = selection.map(|selection| {
        let pickable = cannot_decide(me, &a).is_none().then_some(selection);
        let label = format!(
            "Select the {} of run {}",
            a.kind.label().to_lowercase(),
            a.run_id
        );
        select_cell(pickable, &id, label, format!("dlq-select-{id}"))
    });
    let entry = inbox.then(|| {
        let href = format!("/dead-letters/{}", shared::paths::segment(&a.dead_letter_id));
        view! {
            <td class="wrap">
                <a href=href>
                    <code>{a.run_id.clone()}</code>
                </a>
                <p class="muted small">
                    {a.service.clone()} " " <span class="env-badge">{a.environment.clone()}</span> " · "
                    {a.task_type.clone()}
                </p>
            </td>
        }
    });
    let status = (!inbox)
        .then(|| view! { <td>{action_chip(a.status, format!("dlq-action-status-{id}"))}</td> });
    let details = [
        a.resolution_note
            .clone()
            .map(|n| format!("Resolution: {n}")),
        a.escalate_to.clone().map(|t| format!("Escalate to: {t}")),
    ];
    let reasons = if a.approval_reasons.is_empty() {
        view! { <span class="muted">"None needed"</span> }.into_any()
    } else {
        let items = a
            .approval_reasons
            .iter()
            .map(|r| view! { <li>{r.clone()}</li> })
            .collect_view();
        view! { <ul class="reasons">{items}</ul> }.into_any()
    };
    let last = if inbox {
        view! { <td class="nowrap">{when(a.expires_at_ms)}</td> }.into_any()
    } else {
        view! { <td class="wrap">{outcome(&a)}</td> }.into_any()
    };
    view! {
        <tr data-test=format!("dlq-action-row-{id}") data-status=state>
            {select}
            {entry}
            <td>
                <strong>{a.kind.label()}</strong>
                {details
                    .into_iter()
                    .flatten()
                    .map(|d| view! { <p class="muted small">{d}</p> })
                    .collect_view()}
            </td>
            {status}
            <td class="nowrap">
                <code>{a.requested_by.clone()}</code>
                <br />
                {when(a.requested_at_ms)}
            </td>
            <td class="wrap">
                <p class="request-message">{a.reason.clone()}</p>
            </td>
            <td>{reasons}</td>
            {last}
            <td>
                <DecisionControls action=a me=me.clone() on_changed />
            </td>
        </tr>
    }
    .into_any()
}

/// Who decided, where it went and what came back.
fn outcome(a: &ActionView) -> impl IntoView + use<> {
    let decided = a.decided_by.clone().map(|by| {
        let why = a
            .decision_reason
            .clone()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        view! {
            <p class="small">
                "By " <code>{by}</code> {why}
            </p>
        }
    });
    let sent = a.dispatched_to.clone().map(|to| {
        view! {
            <p class="small">
                "Sent to " <code>{to}</code>
            </p>
        }
    });
    let detail = a.detail.clone().map(|d| view! { <p class="small">{d}</p> });
    let nothing = (a.decided_by.is_none() && a.dispatched_to.is_none() && a.detail.is_none())
        .then(|| view! { <span class="muted">"—"</span> });
    (decided, sent, detail, nothing)
}

/// What came of a bulk call: how many went through, and why the others
/// did not.
#[component]
pub fn BulkResults(results: Vec<BulkItemResult>, test: &'static str) -> impl IntoView {
    let done = results.iter().filter(|r| r.action.is_some()).count();
    let failed = results
        .into_iter()
        .filter_map(|r| {
            let message = r.error.map(|e| e.message).unwrap_or_default();
            r.action.is_none().then(|| {
                view! {
                    <li>
                        <code>{r.id}</code> ": " {message}
                    </li>
                }
            })
        })
        .collect::<Vec<_>>();
    let total = done + failed.len();
    let class = if failed.is_empty() {
        "alert alert-success"
    } else {
        "alert alert-error"
    };
    view! {
        <div class=class data-test=test data-done=done>
            <p>{format!("{done} of {total} done.")}</p>
            {(!failed.is_empty()).then(|| view! { <ul class="reasons">{failed}</ul> })}
        </div>
    }
}

/// Asks for an action on one entry (with what each kind needs there) or on
/// several (`requirements` empty: each entry decides for itself). `result`
/// shows the outcome, which the caller writes; a form that is not filled
/// in writes its own complaint there.
#[component]
pub fn ActionRequestForm(
    /// Prefix of the form's element ids and `data-test`s.
    id: &'static str,
    requirements: Vec<ApprovalRequirement>,
    /// The entry's revision as shown; `None` for several entries.
    revision: Option<u32>,
    submit: Callback<ActionRequest>,
    pending: Signal<bool>,
    result: RwSignal<Option<Result<String, String>>>,
    button: &'static str,
) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let kind = RwSignal::new(DlqActionKind::Redrive);
    let reason = RwSignal::new(String::new());
    let note = RwSignal::new(String::new());
    let escalate_to = RwSignal::new(String::new());
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let k = kind.get_untracked();
        let text = |s: RwSignal<String>| {
            let t = s.get_untracked().trim().to_owned();
            (!t.is_empty()).then_some(t)
        };
        let (why, note, to) = (text(reason), text(note), text(escalate_to));
        let missing = match (&why, k) {
            (None, _) => Some("Say why: the approver and the audit log read it."),
            (_, DlqActionKind::ManualComplete) if note.is_none() => {
                Some("Say how the work was finished.")
            }
            (_, DlqActionKind::Escalate) if to.is_none() => Some("Say who takes the work over."),
            _ => None,
        };
        if let Some(m) = missing {
            result.set(Some(Err(m.to_owned())));
            return;
        }
        submit.run(ActionRequest {
            kind: k,
            reason: why.unwrap_or_default(),
            resolution_note: (k == DlqActionKind::ManualComplete)
                .then_some(note)
                .flatten(),
            escalate_to: (k == DlqActionKind::Escalate).then_some(to).flatten(),
            revision,
        });
    };
    let need = move || approval_text(&requirements, kind.get());
    let field = move |suffix: &str| format!("{id}-{suffix}");
    let text_input = move |suffix: &'static str, label: &'static str, value: RwSignal<String>| {
        view! {
            <div class="field">
                <TextInput id=field(suffix) label value />
            </div>
        }
    };
    let options = DlqActionKind::OPTIONS
        .iter()
        .map(|(wire, label)| view! { <option value=*wire>{*label}</option> })
        .collect_view();
    view! {
        <form class="form" novalidate on:submit=on_submit data-test=id>
            <div class="field">
                <label for=field("kind")>"Action"</label>
                <select
                    id=field("kind")
                    data-test=field("kind")
                    on:change=move |ev| {
                        if let Some(k) = DlqActionKind::from_name(&event_target_value(&ev)) {
                            kind.set(k);
                        }
                    }
                >
                    {options}
                </select>
            </div>
            <div class="alert alert-info" data-test=field("approval") aria-live="polite">
                {need}
            </div>
            {text_input("reason", "Why (for the approver and the audit log)", reason)}
            {move || {
                (kind.get() == DlqActionKind::ManualComplete)
                    .then(|| text_input("note", "How the work was finished", note))
            }}
            {move || {
                (kind.get() == DlqActionKind::Escalate)
                    .then(|| text_input("escalate", "Escalate to (a person or an incident)", escalate_to))
            }}
            <div class="button-row">
                <button
                    type="submit"
                    class="button button-primary"
                    data-test=field("submit")
                    disabled=move || pending.get() || !hydrated.get()
                >
                    {button}
                </button>
            </div>
            <Outcome result test=field("result") />
        </form>
    }
}

/// Whether `kind` needs an approver, in words.
fn approval_text(requirements: &[ApprovalRequirement], kind: DlqActionKind) -> String {
    if requirements.is_empty() {
        return "Each entry is handled as if alone: whether it needs an approver depends on its task type and the policy.".to_owned();
    }
    match requirements.iter().find(|r| r.kind == kind) {
        Some(r) if r.reasons.is_empty() => {
            "No approver needed: it goes to an agent as soon as you ask.".to_owned()
        }
        Some(r) => format!("Needs an approver: {}.", r.reasons.join("; ")),
        None => "Ballast did not say whether this needs an approver; it may.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::role::Role;

    fn me(name: &str, role: Role) -> Me {
        Me {
            id: 1,
            username: name.into(),
            role,
        }
    }

    fn action(by: &str, status: ActionStatus) -> ActionView {
        ActionView {
            id: "a1".into(),
            dead_letter_id: "d1".into(),
            service: "case-review-agent".into(),
            environment: "prod".into(),
            run_id: "run-1".into(),
            task_type: "case_review".into(),
            kind: DlqActionKind::Redrive,
            reason: "the notifier is back".into(),
            resolution_note: None,
            escalate_to: None,
            requested_by: format!("user:{by}"),
            requested_at_ms: 0,
            approval_reasons: vec![],
            expires_at_ms: 0,
            policy_version: Some(1),
            entry_revision: 1,
            status,
            decided_by: None,
            decided_at_ms: None,
            decision_reason: None,
            dispatched_to: None,
            dispatched_at_ms: None,
            finished_at_ms: None,
            detail: None,
        }
    }

    #[test]
    fn nobody_decides_their_own_request_whatever_their_role() {
        let mine = action("ana", ActionStatus::Requested);
        let why = cannot_decide(&me("ana", Role::Admin), &mine).unwrap();
        assert!(why.contains("someone else"), "{why}");
        let why = cannot_decide(&me("bo", Role::Engineer), &mine).unwrap();
        assert!(why.contains("engineer"), "{why}");
        assert_eq!(cannot_decide(&me("cy", Role::Approver), &mine), None);
        let done = action("ana", ActionStatus::Succeeded);
        assert!(cannot_decide(&me("cy", Role::Approver), &done).is_some());
    }

    /// The rule is in the markup itself, before any script runs: the
    /// requester's Approve is off and says why; an approver's is on once
    /// the page is live (off until then, like every control).
    #[cfg(feature = "ssr")]
    #[test]
    fn the_requester_is_shown_why_they_cannot_approve() {
        use leptos::tachys::view::RenderHtml;
        let owner = Owner::new();
        owner.set();
        crate::app::Hydrated::provide_unhydrated();
        let render = |who: Me| {
            let action = action("ana", ActionStatus::Requested);
            view! { <DecisionControls action me=who on_changed=Callback::new(|()| ()) /> }.to_html()
        };
        let own = render(me("ana", Role::Admin));
        let approve = &own[own.find(r#"data-test="dlq-approve-a1""#).unwrap()..];
        let approve = &approve[..approve.find('>').unwrap()];
        assert!(approve.contains("disabled"), "{own}");
        assert!(
            approve.contains("title=\"You asked for this action"),
            "{own}"
        );
        assert!(own.contains(r#"data-test="dlq-withdraw-a1""#), "{own}");
        let other = render(me("cy", Role::Approver));
        assert!(!other.contains("title="), "{other}");
        assert!(!other.contains("dlq-withdraw"), "{other}");
        assert!(
            other.contains(r#"data-test="dlq-decision-reason-a1""#),
            "{other}"
        );
    }

    #[test]
    fn the_requester_and_the_approver_withdraw_before_dispatch() {
        let mut a = action("ana", ActionStatus::Requested);
        assert!(may_withdraw(&me("ana", Role::Engineer), &a));
        assert!(!may_withdraw(&me("cy", Role::Approver), &a));
        a.status = ActionStatus::Approved;
        a.decided_by = Some("user:cy".into());
        assert!(may_withdraw(&me("cy", Role::Approver), &a));
        a.status = ActionStatus::Dispatched;
        assert!(!may_withdraw(&me("ana", Role::Engineer), &a));
    }

    #[test]
    fn the_form_says_whether_the_chosen_kind_needs_an_approver() {
        let needs = vec![
            ApprovalRequirement {
                kind: DlqActionKind::Redrive,
                reasons: vec!["the risk tier's default requires approval for every redrive".into()],
            },
            ApprovalRequirement {
                kind: DlqActionKind::Escalate,
                reasons: vec![],
            },
        ];
        assert!(
            approval_text(&needs, DlqActionKind::Redrive)
                .starts_with("Needs an approver: the risk tier")
        );
        assert!(approval_text(&needs, DlqActionKind::Escalate).starts_with("No approver needed"));
        assert!(approval_text(&[], DlqActionKind::Cancel).starts_with("Each entry"));
    }
}
