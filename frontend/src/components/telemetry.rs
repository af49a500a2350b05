//! A service's live telemetry tab: per dependency, small charts of the last
//! five minutes drawn as inline SVG, its breaker and recent transitions.
//! Also the figures' formats, which the overview shares.

use crate::api;
use crate::layout::{LoadError, Loading};
use crate::remote::Remote;
use crate::time::Utc;
use leptos::prelude::*;
use shared::api::{DependencyLive, ServiceTelemetry, TelemetryPoint};
use shared::protocol::BreakerState;

/// A share as a percentage with one decimal.
pub fn pct(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}

/// A latency (a histogram bucket's upper bound), or a dash without one.
pub fn ms(value: Option<u64>) -> String {
    match value {
        None => "—".to_owned(),
        Some(v) if v >= 60_000 => "≥ 60 s".to_owned(),
        Some(v) if v >= 10_000 => format!("{} s", v / 1000),
        Some(v) => format!("{v} ms"),
    }
}

/// A breaker state's wire name (for `data-state` and its colour class) and
/// its words.
pub fn breaker_key(state: Option<BreakerState>) -> (&'static str, &'static str) {
    match state {
        None => ("none", "no data"),
        Some(BreakerState::Closed) => ("closed", "closed"),
        Some(BreakerState::HalfOpen) => ("half_open", "half-open"),
        Some(BreakerState::Open) => ("open", "open"),
        Some(BreakerState::ForcedOpen) => ("forced_open", "forced open"),
        Some(BreakerState::ForcedClosed) => ("forced_closed", "forced closed"),
    }
}

/// A breaker's state in words and colour; `data-state` carries the wire name.
/// Drawn as it is: the pages redraw the row or card it sits in when the
/// state changes.
#[component]
pub fn BreakerChip(state: Option<BreakerState>, test: String) -> impl IntoView {
    let (key, label) = breaker_key(state);
    view! {
        <span class=format!("breaker breaker-{key}") data-test=test data-state=key>
            {label}
        </span>
    }
    .into_any()
}

/// [`BreakerChip`] that follows `state` in place: the overview's rows keep
/// their chip while live updates change it.
#[component]
pub fn LiveBreakerChip<F>(state: F, test: String) -> impl IntoView
where
    F: Fn() -> Option<BreakerState> + Clone + Send + Sync + 'static,
{
    let key = move || breaker_key(state());
    let k = key.clone();
    let label = key.clone();
    view! {
        <span class=move || format!("breaker breaker-{}", k().0) data-test=test data-state=move || key().0>
            {move || label().1}
        </span>
    }
}

const W: f64 = 300.0;
const H: f64 = 60.0;

/// An SVG path through `values`, `None` leaving a gap, spread over the
/// chart's width and scaled so that `max` touches the top.
fn path(values: &[Option<f64>], max: f64) -> String {
    let step = W / (values.len().max(2) - 1) as f64;
    let mut d = String::new();
    let mut pen = false;
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => {
                let y = H - (v / max).min(1.0) * H;
                d.push_str(&format!(
                    "{}{:.1} {y:.1}",
                    if pen { 'L' } else { 'M' },
                    i as f64 * step
                ));
                pen = true;
            }
            None => pen = false,
        }
    }
    d
}

/// One small chart: lines as (class, legend, values), the top of the scale
/// in words.
fn chart(
    title: &'static str,
    top: String,
    max: f64,
    lines: Vec<(&'static str, &'static str, Vec<Option<f64>>)>,
) -> impl IntoView {
    let label = format!("{title} over the last 5 minutes; the top of the chart is {top}.");
    let legend = lines
        .iter()
        .map(|(class, name, _)| view! { <li class=format!("legend {class}")>{*name}</li> })
        .collect_view();
    let paths = lines
        .into_iter()
        .map(|(class, _, values)| view! { <path class=format!("line {class}") d=path(&values, max) /> })
        .collect_view();
    let legend = view! { <ul class="chart-legend small">{legend}</ul> };
    ChartFrame {
        title,
        top,
        label,
        since: "−5 min",
    }
    .draw(paths, legend)
}

/// What every small chart has around its marks: a caption with the top of
/// the scale, the SVG (300 × 60 user units, the marks' coordinates) with
/// its text alternative, and the time axis.
pub struct ChartFrame {
    pub title: &'static str,
    /// The top of the scale, in words.
    pub top: String,
    /// The chart's text alternative.
    pub label: String,
    /// Where the time axis starts, such as "−5 min".
    pub since: &'static str,
}

impl ChartFrame {
    pub fn draw(self, marks: impl IntoView, below: impl IntoView) -> AnyView {
        view! {
            <figure class="chart">
                <figcaption>
                    <span>{self.title}</span>
                    <span class="muted numeric">{self.top}</span>
                </figcaption>
                <svg viewBox="0 0 300 60" preserveAspectRatio="none" role="img" aria-label=self.label>
                    <line class="chart-base" x1="0" y1="60" x2="300" y2="60" />
                    {marks}
                </svg>
                <div class="chart-axis muted small" aria-hidden="true">
                    <span>{self.since}</span>
                    <span>"now"</span>
                </div>
                {below}
            </figure>
        }
        .into_any()
    }
}

#[component]
pub fn Telemetry(name: String, env: String) -> impl IntoView {
    let target = StoredValue::new((name, env));
    let data = Remote::new(move || {
        let (n, e) = target.get_value();
        async move { api::telemetry(&n, &e, 300).await }
    });
    Effect::new(move |_| {
        if let Ok(handle) =
            set_interval_with_handle(move || data.reload(), std::time::Duration::from_secs(5))
        {
            on_cleanup(move || handle.clear());
        }
    });
    view! {
        <section class="panel" aria-labelledby="telemetry-title">
            <div class="panel-header">
                <h2 id="telemetry-title">"Telemetry"</h2>
                <p class="muted">"Per dependency, the last 5 minutes. Refreshes every 5 s."</p>
            </div>
            {move || match data.get() {
                None => view! { <Loading label="Loading telemetry…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| data.reload()) /> }
                        .into_any()
                }
                Some(Ok(t)) => body(t).into_any(),
            }}
        </section>
    }
    .into_any()
}

fn body(t: ServiceTelemetry) -> impl IntoView {
    let i = &t.instances;
    let counts = format!(
        "{} up, {} stale, {} down{}",
        i.up,
        i.stale,
        i.down,
        if i.lagging.is_empty() {
            String::new()
        } else {
            format!("; lagging: {}", i.lagging.join(", "))
        }
    );
    let empty = t.dependencies.is_empty().then(|| {
        view! {
            <div class="empty-state empty-state-flat" data-test="telemetry-empty">
                <h2>"No calls in the last 5 minutes."</h2>
                <p>"Charts appear once an instance reports calls to a dependency."</p>
            </div>
        }
    });
    let mut series = t.series;
    let deps = t
        .dependencies
        .into_iter()
        .map(|d| {
            let points = series
                .iter()
                .position(|s| s.dependency == d.dependency)
                .map(|i| series.swap_remove(i).points)
                .unwrap_or_default();
            dependency(d, &points)
        })
        .collect_view();
    view! {
        <p class="panel-body telemetry-instances" data-test="telemetry-instances">
            "Instances: " {counts}
        </p>
        {empty}
        <div class="telemetry-grid">{deps}</div>
    }
    .into_any()
}

fn dependency(d: DependencyLive, points: &[TelemetryPoint]) -> impl IntoView + use<> {
    let rate = |f: fn(&TelemetryPoint) -> u64| -> Vec<Option<f64>> {
        points
            .iter()
            .map(|p| (p.calls > 0).then(|| f(p) as f64 / p.calls as f64))
            .collect()
    };
    let (errors, timeouts, fallbacks) = (
        rate(|p| p.failures),
        rate(|p| p.timeouts),
        rate(|p| p.fallbacks),
    );
    let top_rate = errors
        .iter()
        .chain(&timeouts)
        .chain(&fallbacks)
        .flatten()
        .fold(0.05_f64, |a, &b| a.max(b))
        .min(1.0);
    let latency = |f: fn(&TelemetryPoint) -> Option<u64>| -> Vec<Option<f64>> {
        points
            .iter()
            .map(|p| f(p).map(|v| v.min(60_000) as f64))
            .collect()
    };
    let (p50, p95, p99) = (
        latency(|p| p.p50_ms),
        latency(|p| p.p95_ms),
        latency(|p| p.p99_ms),
    );
    let top_ms = p99
        .iter()
        .chain(&p95)
        .flatten()
        .fold(10.0_f64, |a, &b| a.max(b));
    let gauge = |f: fn(&TelemetryPoint) -> u64| -> Vec<Option<f64>> {
        points.iter().map(|p| Some(f(p) as f64)).collect()
    };
    let (in_flight, queued, rejected) = (
        gauge(|p| p.in_flight),
        gauge(|p| p.queued),
        gauge(|p| p.bulkhead_rejections),
    );
    let top_load = in_flight
        .iter()
        .chain(&queued)
        .chain(&rejected)
        .flatten()
        .fold(1.0_f64, |a, &b| a.max(b));
    let cost = gauge(|p| p.cost_usd_micros);
    let top_cost = cost.iter().flatten().fold(1.0_f64, |a, &b| a.max(b));
    let spent: u64 = points.iter().map(|p| p.cost_usd_micros).sum();
    let timeline = breaker_timeline(points);
    let transitions = d
        .recent_transitions
        .iter()
        .take(5)
        .map(|t| {
            let at = Utc::from_millis(t.at_ms);
            view! {
                <li>
                    <time datetime=at.iso()>{at.display()}</time>
                    " "
                    <code>{t.instance_id.clone()}</code>
                    {format!(" {} → {}", breaker_key(Some(t.from)).1, breaker_key(Some(t.to)).1)}
                </li>
            }
        })
        .collect_view();
    let name = d.dependency.clone();
    view! {
        <article class="dep-telemetry" data-test=format!("telemetry-chart-{name}")>
            <header class="dep-telemetry-header">
                <h3>{name.clone()}</h3>
                <BreakerChip state=d.breaker test=format!("telemetry-breaker-{name}") />
            </header>
            <dl class="dep-figures numeric">
                <div><dt>"p50"</dt><dd>{ms(d.p50_ms)}</dd></div>
                <div><dt>"p95"</dt><dd>{ms(d.p95_ms)}</dd></div>
                <div><dt>"p99"</dt><dd>{ms(d.p99_ms)}</dd></div>
                <div><dt>"errors"</dt><dd>{pct(d.error_rate)}</dd></div>
                <div><dt>"timeouts"</dt><dd>{pct(d.timeout_rate)}</dd></div>
                <div><dt>"fallbacks"</dt><dd>{pct(d.fallback_rate)}</dd></div>
            </dl>
            {timeline}
            {chart(
                "Latency",
                ms(Some(top_ms as u64)),
                top_ms,
                vec![("l-p50", "p50", p50), ("l-p95", "p95", p95), ("l-p99", "p99", p99)],
            )}
            {chart(
                "Error, timeout and fallback rates",
                pct(top_rate),
                top_rate,
                vec![("l-error", "errors", errors), ("l-timeout", "timeouts", timeouts), ("l-fallback", "fallbacks", fallbacks)],
            )}
            {chart(
                "Bulkhead saturation",
                format!("{top_load:.0} calls"),
                top_load,
                vec![
                    ("l-inflight", "in flight (peak)", in_flight),
                    ("l-queued", "queued (peak)", queued),
                    ("l-rejected", "refused", rejected),
                ],
            )}
            {chart(
                "Cost per step",
                usd(top_cost as u64),
                top_cost,
                vec![("l-cost", "spend", cost)],
            )}
            <p class="muted small numeric" data-test=format!("telemetry-cost-{name}")>
                {format!("{} in the last 5 minutes", usd(spent))}
            </p>
            <h4 class="small">"Recent breaker transitions"</h4>
            {if d.recent_transitions.is_empty() {
                view! { <p class="muted small">"None in the last 15 minutes."</p> }.into_any()
            } else {
                view! { <ul class="transitions small">{transitions}</ul> }.into_any()
            }}
        </article>
    }
    .into_any()
}

/// Micro-dollars as dollars, with cents below a thousand dollars.
pub fn usd(micros: u64) -> String {
    let dollars = micros as f64 / 1_000_000.0;
    if dollars >= 1000.0 {
        format!("${dollars:.0}")
    } else if dollars >= 0.01 || micros == 0 {
        format!("${dollars:.2}")
    } else {
        format!("${dollars:.4}")
    }
}

/// Runs of equal breaker state over the window, as (first step, steps,
/// state); steps without a report continue the run before them, since a
/// breaker keeps its state until it reports another.
fn breaker_runs(points: &[TelemetryPoint]) -> Vec<(usize, usize, Option<BreakerState>)> {
    let mut runs: Vec<(usize, usize, Option<BreakerState>)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        match (runs.last_mut(), p.breaker) {
            (Some((_, len, state)), b) if b.is_none() || b == *state => *len += 1,
            _ => runs.push((i, 1, p.breaker)),
        }
    }
    runs
}

/// The breaker's state over the window as a strip of coloured runs, with
/// the same story in words for screen readers.
fn breaker_timeline(points: &[TelemetryPoint]) -> impl IntoView + use<> {
    let runs = breaker_runs(points);
    let steps = points.len().max(1) as f64;
    let words = runs
        .iter()
        .filter(|(_, _, state)| state.is_some())
        .map(|(_, len, state)| format!("{} for {len} steps", breaker_key(*state).1))
        .collect::<Vec<_>>();
    let label = if words.is_empty() {
        "No breaker state reported in the last 5 minutes.".to_owned()
    } else {
        format!(
            "Breaker over the last 5 minutes, oldest first: {}.",
            words.join(", then ")
        )
    };
    let rects = runs
        .into_iter()
        .map(|(start, len, state)| {
            let x = start as f64 / steps * W;
            let width = len as f64 / steps * W;
            view! {
                <rect
                    class=format!("run run-{}", breaker_key(state).0)
                    x=format!("{x:.1}")
                    y="0"
                    width=format!("{width:.1}")
                    height="12"
                />
            }
        })
        .collect_view();
    view! {
        <figure class="chart timeline" data-test="breaker-timeline">
            <figcaption>
                <span>"Breaker"</span>
            </figcaption>
            <svg viewBox="0 0 300 12" preserveAspectRatio="none" role="img" aria-label=label>
                {rects}
            </svg>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_leave_gaps_and_clamp() {
        assert_eq!(path(&[Some(0.0), Some(1.0)], 1.0), "M0.0 60.0L300.0 0.0");
        assert_eq!(
            path(&[Some(2.0), None, Some(0.5)], 1.0),
            "M0.0 0.0M300.0 30.0"
        );
        assert_eq!(ms(Some(120)), "120 ms");
        assert_eq!(ms(Some(60_000)), "≥ 60 s");
        assert_eq!(pct(0.125), "12.5 %");
        assert_eq!(usd(1_234_567), "$1.23");
        assert_eq!(usd(35), "$0.0000");
        assert_eq!(usd(0), "$0.00");
    }

    #[test]
    fn breaker_runs_carry_the_last_state_across_silent_steps() {
        let at = |breaker| TelemetryPoint {
            breaker,
            ..TelemetryPoint::default()
        };
        let points = [
            at(None),
            at(Some(BreakerState::Closed)),
            at(None),
            at(Some(BreakerState::Open)),
            at(Some(BreakerState::Open)),
            at(Some(BreakerState::HalfOpen)),
        ];
        assert_eq!(
            breaker_runs(&points),
            [
                (0, 1, None),
                (1, 2, Some(BreakerState::Closed)),
                (3, 2, Some(BreakerState::Open)),
                (5, 1, Some(BreakerState::HalfOpen)),
            ]
        );
    }
}
