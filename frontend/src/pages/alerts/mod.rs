//! `/alerts`: what fires now and what is about to, what fired before, the
//! rules behind them, silences, and (for admins) the webhooks that
//! notifications go to. Every alert leads to its runbook.

mod form;
mod rules;
mod silences;
mod webhooks;

use crate::api;
use crate::app::Hydrated;
use crate::components::data_table::{DataTable, Head};
use crate::components::firing_alerts::{FiringAlerts, alert_key, runbook_href};
use crate::layout::{LoadError, Loading, Outcome, PageHeader, Panel};
use crate::remote::Remote;
use crate::session::Session;
use crate::time::Utc;
use leptos::prelude::*;
use leptos_meta::Title;
use shared::api::{
    AlertMetric, AlertState, AlertView, BreakerOverrideRequest, BreakerOverrideResult, Me,
    NotificationView, OverrideOutcome, OverrideState,
};
use shared::role::Permission;

/// How often the page asks for alerts again: the server evaluates every 5 s.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

#[component]
pub fn AlertsPage() -> impl IntoView {
    let session = Session::expect();
    view! {
        <Title text="Alerts" />
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                session.me().await.ok().flatten().map(|me| view! { <Alerts me /> })
            })}
        </Suspense>
    }
    .into_any()
}

#[component]
fn Alerts(me: Me) -> impl IntoView {
    let alerts = Remote::new(|| api::alerts(None));
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || alerts.reload(), REFRESH) {
            on_cleanup(move || handle.clear());
        }
    });
    let can_respond = me.role.allows(Permission::Respond);
    // The alert whose notifications are shown, if any.
    let deliveries = RwSignal::new(None::<String>);
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let acknowledge = Action::new_local(move |id: &String| {
        let id = id.clone();
        async move {
            let result = api::acknowledge_alert(&id).await;
            match &result {
                Ok(a) => outcome.try_set(Some(Ok(format!(
                    "Acknowledged {} on {} {}.",
                    a.rule, a.service, a.environment
                )))),
                Err(e) => outcome.try_set(Some(Err(e.message()))),
            };
            alerts.reload();
            FiringAlerts::refresh();
        }
    });
    // The incident control: one click forces the alert's breaker open
    // across the fleet for 30 minutes, through the normal publish path.
    let force_open = Action::new_local(move |(dependency, reason): &(String, String)| {
        let req = BreakerOverrideRequest {
            dependency: dependency.clone(),
            state: OverrideState::Open,
            duration_s: FORCE_OPEN_S,
            reason: reason.clone(),
            services: Vec::new(),
        };
        async move {
            let result = api::breaker_override(&req).await;
            match result {
                Ok(list) => outcome.try_set(Some(Ok(override_summary(&req.dependency, &list)))),
                Err(e) => outcome.try_set(Some(Err(e.message()))),
            };
        }
    });
    let in_state = move |state: AlertState| {
        alerts.get().map(|r| {
            r.map(|list| {
                list.into_iter()
                    .filter(|a| a.state == state)
                    .collect::<Vec<_>>()
            })
        })
    };
    let ctx = RowContext {
        can_respond,
        acknowledge: Callback::new(move |id: String| {
            acknowledge.dispatch(id);
        }),
        ack_pending: acknowledge.pending().into(),
        can_override: me.role.allows(Permission::PublishLowRisk),
        force_open: Callback::new(move |target: (String, String)| {
            force_open.dispatch(target);
        }),
        override_pending: force_open.pending().into(),
        show_deliveries: Callback::new(move |id: String| deliveries.set(Some(id))),
    };
    let section = move |state: AlertState, empty: &'static str| {
        move || {
            match in_state(state) {
            None => view! { <Loading label="Loading alerts…" /> }.into_any(),
            Some(Err(e)) => {
                view! { <LoadError message=e.message() retry=Callback::new(move |()| alerts.reload()) /> }
                    .into_any()
            }
            Some(Ok(list)) => view! { <AlertsTable alerts=list state empty ctx /> }.into_any(),
        }
        }
    };
    view! {
        <PageHeader
            title="Alerts"
            lede="Alert rules watch the live figures every agent reports. Each alert leads to a runbook: open it, acknowledge the alert so others know someone is on it, and work through its checklist."
        />
        <Outcome result=outcome test="alert-outcome" />
        <Panel
            id="alerts-firing-title"
            title="Firing now"
            about="Refreshed every 5 seconds. Times in UTC."
            test="alerts-firing"
        >
            {section(AlertState::Firing, "Nothing is firing.")}
        </Panel>
        <Panel
            id="alerts-pending-title"
            title="Pending"
            about="The condition holds, but not yet for as long as the rule asks."
            test="alerts-pending"
        >
            {section(AlertState::Pending, "Nothing is pending.")}
        </Panel>
        <Panel id="alerts-history-title" title="Resolved" about="Recent history, newest first." test="alerts-history">
            {section(AlertState::Resolved, "No alert has resolved yet.")}
        </Panel>
        {move || deliveries.get().map(|id| view! { <Deliveries id on_close=Callback::new(move |()| deliveries.set(None)) /> })}
        <rules::RulesPanel can_edit=me.role.allows(Permission::Edit) />
        <silences::SilencesPanel can_respond />
        {me.role.allows(Permission::ManageTokens).then(|| view! { <webhooks::WebhooksPanel /> })}
    }
    .into_any()
}

/// What each row may do, shared by every row of the page.
#[derive(Clone, Copy)]
struct RowContext {
    can_respond: bool,
    acknowledge: Callback<String>,
    ack_pending: Signal<bool>,
    can_override: bool,
    force_open: Callback<(String, String)>,
    override_pending: Signal<bool>,
    show_deliveries: Callback<String>,
}

/// How long the one-click override holds; agents lift it on their own.
const FORCE_OPEN_S: u32 = 1800;

/// One line per service of what an override did.
fn override_summary(dependency: &str, results: &[BreakerOverrideResult]) -> String {
    let parts: Vec<String> = results
        .iter()
        .map(|r| {
            let what = match &r.outcome {
                OverrideOutcome::Published { version } => format!("published as version {version}"),
                OverrideOutcome::PendingApproval { request_id } => {
                    format!("waiting for an approver (request {request_id})")
                }
                OverrideOutcome::Skipped { reason } => format!("skipped: {reason}"),
                OverrideOutcome::Failed { error } => format!("refused: {error}"),
            };
            format!("{}/{}: {what}", r.service.name, r.service.environment)
        })
        .collect();
    format!(
        "{dependency}'s breaker forced open for {} min. {}.",
        FORCE_OPEN_S / 60,
        parts.join("; ")
    )
}

const LIVE_HEADS: &[Head] = &[
    ("Severity", ""),
    ("Alert", ""),
    ("Where", ""),
    ("Value", "num"),
    ("Since", ""),
    ("Runbook", ""),
    ("Response", ""),
];

const HISTORY_HEADS: &[Head] = &[
    ("Severity", ""),
    ("Alert", ""),
    ("Where", ""),
    ("Value", "num"),
    ("Fired", ""),
    ("Resolved", ""),
    ("Runbook", ""),
];

#[component]
fn AlertsTable(
    alerts: Vec<AlertView>,
    state: AlertState,
    empty: &'static str,
    ctx: RowContext,
) -> impl IntoView {
    let heads = if state == AlertState::Resolved {
        HISTORY_HEADS
    } else {
        LIVE_HEADS
    };
    let rows = alerts.into_iter().map(|a| alert_row(a, ctx)).collect();
    view! {
        <DataTable
            caption=format!("{} alerts", state.label())
            test=match state {
                AlertState::Firing => "alerts-firing-table",
                AlertState::Pending => "alerts-pending-table",
                AlertState::Resolved => "alerts-history-table",
            }
            heads
            empty
            rows
        />
    }
}

/// A value in the metric's unit: a share as a percentage, a count or age
/// as a number.
fn figure(metric: AlertMetric, value: f64) -> String {
    match metric {
        AlertMetric::RetryAmplification => format!("{value:.2}×"),
        m if m.is_rate() || m == AlertMetric::CostBudget => format!("{:.1} %", value * 100.0),
        _ => format!("{value:.0}"),
    }
}

fn when(ms: Option<i64>) -> AnyView {
    match ms {
        Some(ms) => {
            let t = Utc::from_millis(ms);
            view! { <time datetime=t.iso()>{t.display()}</time> }.into_any()
        }
        None => view! { <span class="muted">"—"</span> }.into_any(),
    }
}

fn alert_row(a: AlertView, ctx: RowContext) -> AnyView {
    let hydrated = Hydrated::expect();
    let key = alert_key(&a.rule, &a.service, &a.environment, a.dependency.as_deref());
    let severity_class = match a.severity.as_str() {
        "page" => "badge badge-bad",
        "ticket" => "badge badge-warn",
        _ => "badge badge-info",
    };
    let place = view! {
        <td class="wrap">
            {format!("{} {}", a.service, a.environment)}
            {a.dependency.clone().map(|d| view! { <p class="muted small">"dependency " <code>{d}</code></p> })}
        </td>
    };
    let value = format!(
        "{} vs {}",
        figure(a.metric, a.value),
        figure(a.metric, a.threshold)
    );
    let runbook = view! {
        <td>
            <a href=runbook_href(&a.runbook) data-test=format!("alert-runbook-{key}")>
                {a.runbook.clone()}
            </a>
        </td>
    };
    let head = view! {
        <td>
            <span class=severity_class>{a.severity.label()}</span>
        </td>
        <td class="wrap">
            <strong>{a.rule.clone()}</strong>
            <p class="small">{a.summary.clone()}</p>
            {a.silenced_by.clone().map(|s| view! {
                <p class="small muted" data-test=format!("alert-silenced-{key}")>"Silenced (" {s} "): no notifications."</p>
            })}
        </td>
        {place}
        <td class="num">{value}</td>
    };
    let deliveries_button = {
        let id = a.id.clone();
        view! {
            <button
                type="button"
                class="button button-small button-quiet"
                data-test=format!("alert-deliveries-{key}")
                disabled=move || !hydrated.get()
                on:click=move |_| ctx.show_deliveries.run(id.clone())
            >
                "Notifications"
            </button>
        }
    };
    if a.state == AlertState::Resolved {
        return view! {
            <tr data-test=format!("alert-row-{key}") data-state=a.state.as_str()>
                {head}
                <td>{when(a.fired_at_ms)}</td>
                <td>{when(a.resolved_at_ms)}</td>
                {runbook}
            </tr>
        }
        .into_any();
    }
    let response = match (&a.acknowledged_by, a.acknowledged_at_ms) {
        (Some(by), at) => view! {
            <p class="small" data-test=format!("alert-acked-{key}")>
                "Acknowledged by " <code>{by.clone()}</code>
                {at.map(|at| view! { " at " {when(Some(at))} })}
            </p>
        }
        .into_any(),
        (None, _) if ctx.can_respond && a.state == AlertState::Firing => {
            let id = a.id.clone();
            view! {
                <button
                    type="button"
                    class="button button-small"
                    data-test=format!("alert-ack-{key}")
                    disabled=move || ctx.ack_pending.get() || !hydrated.get()
                    on:click=move |_| ctx.acknowledge.run(id.clone())
                >
                    "Acknowledge"
                </button>
            }
            .into_any()
        }
        (None, _) => view! { <span class="muted small">"Not acknowledged"</span> }.into_any(),
    };
    let force_button = match &a.dependency {
        Some(dependency) if ctx.can_override && a.state == AlertState::Firing => {
            let target = (
                dependency.clone(),
                format!("alert {}: {}", a.rule, a.summary),
            );
            Some(view! {
                <button
                    type="button"
                    class="button button-small"
                    data-test=format!("alert-force-open-{key}")
                    title="Publishes each service's next version with this breaker forced open for 30 minutes; high-risk services wait for an approver"
                    disabled=move || ctx.override_pending.get() || !hydrated.get()
                    on:click=move |_| ctx.force_open.run(target.clone())
                >
                    "Force breaker open (30 min, fleet-wide)"
                </button>
            })
        }
        _ => None,
    };
    view! {
        <tr data-test=format!("alert-row-{key}") data-state=a.state.as_str()>
            {head}
            <td>{when(a.fired_at_ms.or(Some(a.started_at_ms)))}</td>
            {runbook}
            <td class="wrap">
                {response}
                {force_button}
                {deliveries_button}
            </td>
        </tr>
    }
    .into_any()
}

const DELIVERY_HEADS: &[Head] = &[
    ("Event", ""),
    ("Webhook", ""),
    ("Status", ""),
    ("Attempts", "num"),
    ("Next attempt or delivered", ""),
    ("Last error", ""),
];

/// One alert's notifications: to which webhook, and how delivery went.
#[component]
fn Deliveries(id: String, on_close: Callback<()>) -> impl IntoView {
    let alert = id.clone();
    let list = Remote::new(move || {
        let alert = alert.clone();
        async move { api::notifications(&alert).await }
    });
    view! {
        <Panel
            id="alert-deliveries-title"
            title="Notifications of one alert"
            about="Each webhook gets one notification when the alert fires and one when it resolves, retried with backoff until it answers."
            test="alert-deliveries"
        >
            <p class="panel-body small">
                "Alert " <code>{id}</code> " "
                <button type="button" class="button button-small button-quiet" on:click=move |_| on_close.run(())>
                    "Hide"
                </button>
            </p>
            {move || match list.get() {
                None => view! { <Loading label="Loading notifications…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| list.reload()) /> }.into_any()
                }
                Some(Ok(items)) => {
                    let rows = items.into_iter().map(delivery_row).collect();
                    view! {
                        <DataTable
                            caption="Notifications"
                            test="alert-deliveries-table"
                            heads=DELIVERY_HEADS
                            empty="No notification: no rule webhook was set, or the alert was silenced."
                            rows
                        />
                    }
                        .into_any()
                }
            }}
        </Panel>
    }
}

fn delivery_row(n: NotificationView) -> AnyView {
    let at = n.delivered_at_ms.unwrap_or(n.next_attempt_at_ms);
    view! {
        <tr data-test=format!("delivery-{}", n.id)>
            <td>{n.event.label()}</td>
            <td>
                <code>{n.webhook_id}</code>
            </td>
            <td data-status=n.status.as_str()>{n.status.label()}</td>
            <td class="num">{n.attempts}</td>
            <td>{when(Some(at))}</td>
            <td class="wrap">{n.last_error.unwrap_or_default()}</td>
        </tr>
    }
    .into_any()
}
