//! The service page's Objectives tab: each error budget, how fast it
//! burns, its burn-down over the window; and how the running canary
//! compares with the stable version, with the analysis's past decisions.
//!
//! Everything is computed by the server (from the persisted rollups, the
//! same figures the alerts and `/metrics` use); this tab only draws it. It
//! is part of the service page's lazy module: a route of its own would
//! have cost the main bundle a route stub and the page its shared code
//! again.

use crate::api::service_objectives;
use crate::components::budget::{bp_percent, budget_state, budget_text, decision_text};
use crate::layout::{LoadError, Loading};
use crate::remote::Remote;
use crate::time::{Utc, age};
use leptos::prelude::*;
use shared::api::{
    BudgetPoint, BurnRate, CanaryComparison, CanaryState, CanaryVerdict, ObjectiveStatus,
    ServiceObjectives,
};

/// How often the panel asks again: the evaluator judges a canary every few
/// seconds, and an engineer watching one wants to see its verdict move.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// The objectives panel and the canary analysis below it. `on_canary_ended`
/// runs when a canary this panel saw is gone (the analysis aborted or
/// promoted it, or someone did), so the page's rollout panel catches up.
#[component]
pub fn Objectives(name: String, env: String, on_canary_ended: Callback<()>) -> impl IntoView {
    let target = StoredValue::new((name, env));
    let data = Remote::new(move || {
        let (n, e) = target.get_value();
        async move { service_objectives(&n, &e).await }
    });
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(move || data.reload(), REFRESH) {
            on_cleanup(move || handle.clear());
        }
    });
    // Whether the last answer had a canary: its disappearance is the signal.
    Effect::new(move |had: Option<bool>| {
        let has = matches!(data.get(), Some(Ok(o)) if o.canary.is_some());
        if had == Some(true) && !has {
            on_canary_ended.run(());
        }
        has
    });
    view! {
        <section class="panel" aria-labelledby="objectives-title" data-test="objectives">
            <div class="panel-header">
                <h2 id="objectives-title">"Objectives"</h2>
                <p class="muted">
                    "Error budgets over each objective's window, from the agents' request records. Refreshes every 10 s."
                </p>
            </div>
            {move || match data.get() {
                None => view! { <Loading label="Loading objectives…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| data.reload()) /> }
                        .into_any()
                }
                Some(Ok(o)) => objectives_list(&o).into_any(),
            }}
        </section>
        {move || match data.get() {
            Some(Ok(o)) => Some(canary_panel(o)),
            _ => None,
        }}
    }
    .into_any()
}

fn objectives_list(o: &ServiceObjectives) -> AnyView {
    if o.objectives.is_empty() {
        return view! {
            <div class="empty-state empty-state-flat" data-test="objectives-empty">
                <h2>"No objectives."</h2>
                <p>
                    "The active policy sets none. Add them under Goals in the policy editor: each gets an error budget, burn-rate alerts, and judges canaries."
                </p>
            </div>
        }
        .into_any();
    }
    let as_of = o.as_of_ms;
    let items = o
        .objectives
        .iter()
        .map(|s| objective(s, as_of))
        .collect_view();
    view! { <div class="objectives-grid">{items}</div> }.into_any()
}

fn objective(s: &ObjectiveStatus, as_of_ms: i64) -> impl IntoView + use<> {
    let id = s.id.clone();
    let state = budget_state(s.budget_remaining_bp);
    let safety = s.kind == "safety";
    let achieved = match s.achieved_bp {
        Some(bp) => format!("{} ({} of {})", bp_percent(i64::from(bp)), s.good, s.valid),
        None => "no requests yet".to_owned(),
    };
    let violations = safety.then(|| {
        view! {
            <div>
                <dt>"Violations"</dt>
                <dd data-test=format!("objective-violations-{id}") class:bad={s.violations > 0}>
                    {s.violations}
                </dd>
            </div>
        }
    });
    let runbook_href = format!("/runbooks/{}", shared::paths::segment(&s.runbook));
    view! {
        <article
            class=format!("objective budget-{state}")
            data-test=format!("objective-{id}")
            data-state=state
            data-kind=s.kind.clone()
        >
            <header class="objective-header">
                <h3>
                    <code>{id.clone()}</code>
                </h3>
                <span class="badge">{s.kind.clone()}</span>
            </header>
            <p class="objective-summary">{s.summary.clone()}</p>
            <dl class="objective-figures">
                <div>
                    <dt>"Target"</dt>
                    <dd class="numeric">
                        {format!("{} over {} d", bp_percent(i64::from(s.target_bp)), s.window_days)}
                    </dd>
                </div>
                <div>
                    <dt>"Achieved"</dt>
                    <dd class="numeric" data-test=format!("objective-achieved-{id}")>
                        {achieved}
                    </dd>
                </div>
                <div>
                    <dt>"Budget"</dt>
                    <dd
                        class="numeric budget-value"
                        data-test=format!("objective-budget-{id}")
                        data-value=s.budget_remaining_bp
                    >
                        <span class="budget-dot" aria-hidden="true"></span>
                        {budget_text(s.budget_remaining_bp)}
                        <span class="visually-hidden">{format!(" ({state})")}</span>
                    </dd>
                </div>
                {violations}
            </dl>
            {(!safety).then(|| burn_rates(&id, &s.burn_rates))}
            {burn_down(&id, s.window_days, &s.burn_down, as_of_ms)}
            <p class="small">
                <a href=runbook_href data-test=format!("objective-runbook-{id}")>
                    "Runbook: "
                    {s.runbook.clone()}
                </a>
            </p>
        </article>
    }
}

/// `300` → `5 min`, `259200` → `3 d`.
fn window_label(seconds: u32) -> String {
    age(i64::from(seconds) * 1000)
}

/// A burn rate: `0.42×`, `14×`; a window without requests has none.
fn rate_text(rate: f64, requests: u64) -> String {
    if requests == 0 {
        "—".to_owned()
    } else if rate >= 10.0 {
        format!("{rate:.0}×")
    } else {
        format!("{rate:.2}×")
    }
}

fn burn_rates(id: &str, rates: &[BurnRate]) -> impl IntoView + use<> {
    let heads = rates
        .iter()
        .map(|r| view! { <th scope="col" class="num">{window_label(r.window_s)}</th> })
        .collect_view();
    let cells = rates
        .iter()
        .map(|r| {
            view! {
                <td
                    class="num"
                    class:bad={r.requests > 0 && r.rate > 1.0}
                    data-test=format!("burn-{id}-{}", r.window_s)
                    data-value=r.rate.to_string()
                >
                    {rate_text(r.rate, r.requests)}
                </td>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="table burn-table">
                <caption class="small muted">
                    "Burn rate per window (1× spends the budget exactly over the objective's window)"
                </caption>
                <thead>
                    <tr>{heads}</tr>
                </thead>
                <tbody>
                    <tr>{cells}</tr>
                </tbody>
            </table>
        </div>
    }
}

/// The chart's marks, in its 300 × 60 user units: the budget line, and the
/// zero line when the budget went below zero. The scale runs from the
/// lower of 0 and the lowest point to the higher of 100 % and the highest.
fn burn_down_marks(points: &[BudgetPoint]) -> Option<(String, Option<f64>)> {
    let (first, last) = (points.first()?, points.last()?);
    let span = (last.at_ms - first.at_ms).max(1) as f64;
    let low = points.iter().map(|p| p.remaining_bp).min()?.min(0) as f64;
    let high = points.iter().map(|p| p.remaining_bp).max()?.max(10_000) as f64;
    let y = |bp: f64| 60.0 - (bp - low) / (high - low) * 60.0;
    let mut d = String::new();
    for (i, p) in points.iter().enumerate() {
        let x = if points.len() == 1 {
            300.0
        } else {
            (p.at_ms - first.at_ms) as f64 / span * 300.0
        };
        d.push_str(&format!(
            "{}{x:.1} {:.1}",
            if i == 0 { "M" } else { " L" },
            y(p.remaining_bp as f64)
        ));
    }
    Some((d, (low < 0.0).then(|| y(0.0))))
}

fn burn_down(
    id: &str,
    window_days: u32,
    points: &[BudgetPoint],
    as_of_ms: i64,
) -> impl IntoView + use<> {
    let Some((path, zero)) = burn_down_marks(points) else {
        return ().into_any();
    };
    let now = points.last().map_or(10_000, |p| p.remaining_bp);
    let start = points.first().map_or(10_000, |p| p.remaining_bp);
    let lowest = points.iter().map(|p| p.remaining_bp).min().unwrap_or(now);
    let days = (as_of_ms - points.first().map_or(as_of_ms, |p| p.at_ms)) / 86_400_000;
    let label = format!(
        "Error budget of {id} over the last {} days (window {window_days} days): {} at the start, lowest {}, now {}.",
        days.max(1),
        budget_text(start),
        budget_text(lowest),
        budget_text(now),
    );
    let zero = zero.map(|y| {
        let y = format!("{y:.1}");
        view! { <line class="chart-zero" x1="0" y1=y.clone() x2="300" y2=y /> }
    });
    view! {
        <figure class="chart burn-down" data-test=format!("burn-down-{id}")>
            <figcaption>
                <span>"Budget left, by day"</span>
                <span class="muted numeric">"100 %"</span>
            </figcaption>
            <svg viewBox="0 0 300 60" preserveAspectRatio="none" role="img" aria-label=label>
                <line class="chart-base" x1="0" y1="60" x2="300" y2="60" />
                {zero}
                <path class="line l-budget" d=path />
            </svg>
            <div class="chart-axis muted small" aria-hidden="true">
                <span>{format!("−{} d", days.max(1))}</span>
                <span>"now"</span>
            </div>
        </figure>
    }
    .into_any()
}

fn verdict_class(v: CanaryState) -> &'static str {
    match v {
        CanaryState::Gathering => "badge",
        CanaryState::Holding => "badge badge-ok",
        CanaryState::Baked => "badge badge-ok",
        CanaryState::Failing => "badge badge-bad",
    }
}

fn canary_panel(o: ServiceObjectives) -> AnyView {
    let kinds: Vec<(String, bool)> = o
        .objectives
        .iter()
        .map(|s| (s.id.clone(), s.kind == "safety"))
        .collect();
    let running = match o.canary {
        Some(c) => comparison(c, &kinds).into_any(),
        None => view! {
            <p class="panel-body muted" data-test="canary-none">
                "No canary is being analysed. Publish with a canary share and the analysis compares it with the stable version on these objectives."
            </p>
        }
        .into_any(),
    };
    view! {
        <section class="panel" aria-labelledby="canary-analysis-title" data-test="canary-analysis">
            <div class="panel-header">
                <h2 id="canary-analysis-title">"Canary analysis"</h2>
                <p class="muted">"The canary's instances against the stable ones, on each objective, since the canary started."</p>
            </div>
            {running}
            <h3 class="panel-subtitle">"Automatic decisions"</h3>
            {history(o.canary_history)}
        </section>
    }
    .into_any()
}

fn comparison(c: CanaryComparison, kinds: &[(String, bool)]) -> impl IntoView + use<> {
    let started = Utc::from_millis(c.started_at_ms);
    let rows = c
        .objectives
        .into_iter()
        .map(|ob| {
            let safety = kinds.iter().any(|(id, s)| *id == ob.id && *s);
            let show = |v: f64| {
                if safety {
                    format!("{v:.0} violations")
                } else {
                    rate_text(v, 1)
                }
            };
            let worse = ob.canary_burn > ob.stable_burn && ob.canary_burn > 1.0;
            view! {
                <tr class:row-bad=worse data-test=format!("canary-row-{}", ob.id)>
                    <th scope="row">
                        <code>{ob.id.clone()}</code>
                    </th>
                    <td class="num">{show(ob.canary_burn)}</td>
                    <td class="num">{show(ob.stable_burn)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="panel-body canary-comparison" data-test="canary-comparison">
            <p>
                <span
                    class=verdict_class(c.verdict)
                    data-test="canary-verdict"
                    data-verdict=c.verdict.as_str()
                >
                    {c.verdict.label()}
                </span>
                " "
                <span data-test="canary-reason">{c.reason}</span>
            </p>
            <p class="muted small numeric">
                {format!(
                    "Canary v{} ({} requests) against stable v{} ({} requests), since ",
                    c.canary_version,
                    c.canary_requests,
                    c.stable_version,
                    c.stable_requests,
                )}
                <time datetime=started.iso()>{started.display()}</time>
                "."
            </p>
            <div class="table-scroll">
                <table class="table">
                    <thead>
                        <tr>
                            <th scope="col">"Objective"</th>
                            <th scope="col" class="num">"Canary burn"</th>
                            <th scope="col" class="num">"Stable burn"</th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </div>
    }
}

fn history(list: Vec<CanaryVerdict>) -> AnyView {
    if list.is_empty() {
        return view! {
            <p class="panel-body muted" data-test="canary-history-empty">
                "The analysis has not promoted or aborted a canary of this service."
            </p>
        }
        .into_any();
    }
    let rows = list
        .into_iter()
        .map(|v| {
            let at = Utc::from_millis(v.decided_at_ms);
            view! {
                <tr data-test=format!("canary-history-{}", v.canary_version) data-decision=v.decision.clone()>
                    <td class="nowrap">
                        <time datetime=at.iso()>{at.display()}</time>
                    </td>
                    <td class="num">{format!("v{} vs v{}", v.canary_version, v.stable_version)}</td>
                    <td>
                        <span class=if v.decision == "aborted" { "badge badge-bad" } else { "badge badge-ok" }>
                            {decision_text(&v.decision)}
                        </span>
                    </td>
                    <td class="wrap">{v.reason}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="table" data-test="canary-history">
                <thead>
                    <tr>
                        <th scope="col">"When"</th>
                        <th scope="col" class="num">"Canary"</th>
                        <th scope="col">"Decision"</th>
                        <th scope="col">"Why"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_rates_read_short() {
        assert_eq!(window_label(300), "5 min");
        assert_eq!(window_label(21_600), "6 h");
        assert_eq!(window_label(259_200), "3 d");
        assert_eq!(rate_text(0.4213, 10), "0.42×");
        assert_eq!(rate_text(14.4, 10), "14×");
        assert_eq!(rate_text(3.0, 0), "—");
    }

    #[test]
    fn the_burn_down_spans_the_chart_and_marks_zero_when_overspent() {
        let p = |at_ms, remaining_bp| BudgetPoint {
            at_ms,
            remaining_bp,
        };
        let (d, zero) = burn_down_marks(&[p(0, 10_000), p(100, 5_000), p(200, 0)]).unwrap();
        assert_eq!(d, "M0.0 0.0 L150.0 30.0 L300.0 60.0");
        assert_eq!(zero, None);
        let (_, zero) = burn_down_marks(&[p(0, 10_000), p(10, -10_000)]).unwrap();
        assert_eq!(zero, Some(30.0));
        assert!(burn_down_marks(&[]).is_none());
    }
}
