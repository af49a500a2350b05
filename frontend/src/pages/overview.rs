//! The fleet at a glance, live: every service by environment, what is broken
//! first, rendered by the server and then updated in place from its `fleet`
//! events.

use crate::components::budget::{CardBudget, FleetBudgets};
use crate::components::firing_alerts::FiringBanner;
use crate::components::telemetry::{breaker_key, ms, pct};
use crate::layout::{Loading, PageHeader};
use crate::live::{self, DeadLetters, LiveFleet, LiveStatus};
use crate::time::age;
use leptos::prelude::*;
use leptos_meta::Title;
use shared::protocol::BreakerState;

#[component]
pub fn OverviewPage() -> impl IntoView {
    let live = LiveFleet::rendered();
    FleetBudgets::provide();
    let fleet = live.fleet;
    let any = Memo::new(move |_| fleet.with(|f| f.as_ref().map(|f| !f.services.is_empty())));
    view! {
        <Title text="Overview" />
        <PageHeader
            title="Overview"
            lede="Every service that runs the Ballast agent, with the policy it enforces and how it is holding up."
        >
            <LiveStatus link=live.link />
        </PageHeader>
        <FiringBanner />
        <Suspense fallback=|| view! { <Loading label="Loading the fleet…" /> }>
            {move || Suspend::new(async move {
                live.ready().await;
                // On the server a Suspense walks its children twice before it
                // renders them (dry runs that find the resources they read),
                // and each walk of a ready Suspend builds what it returns:
                // a hundred cards, three times a request. One tick leaves the
                // dry runs a pending Suspend, which they skip, so the cards
                // are built once. The browser gets the same HTML either way.
                #[cfg(feature = "ssr")]
                leptos::task::tick().await;
                move || match any.get() {
                    None => view! { <Loading label="Loading the fleet…" /> }.into_any(),
                    Some(false) => view! { <Empty /> }.into_any(),
                    Some(true) => view! { <Fleet fleet /> }.into_any(),
                }
            })}
        </Suspense>
    }
    .into_any()
}

/// 2: a breaker is open; 1: degraded answers, a probing breaker or no live
/// instance; 0: fine.
fn severity(s: &live::Service) -> u8 {
    let down = s.instances.up == 0 && s.instances.stale + s.instances.down > 0;
    s.dependencies
        .iter()
        .map(dependency_severity)
        .max()
        .unwrap_or(0)
        .max(u8::from(down))
}

fn dependency_severity(d: &live::Dependency) -> u8 {
    match d.breaker {
        Some(BreakerState::Open | BreakerState::ForcedOpen) => 2,
        Some(BreakerState::HalfOpen) => 1,
        _ => u8::from(d.degraded_rate > 0.0),
    }
}

#[component]
fn Fleet(fleet: Memo<Option<live::Fleet>>) -> impl IntoView {
    // The most broken first, then by name: the first card answers "what is
    // broken right now".
    let order = Memo::new(move |_| {
        fleet.with(|f| {
            let mut keys: Vec<_> = f
                .iter()
                .flat_map(|f| &f.services)
                .map(|s| (2 - severity(s), s.service.clone(), s.environment.clone()))
                .collect();
            keys.sort();
            keys.into_iter().map(|(_, n, e)| (n, e)).collect::<Vec<_>>()
        })
    });
    // One clock for every card's queue age: the time the figures are from.
    let as_of = Memo::new(move |_| fleet.with(|f| f.as_ref().map_or(0, |f| f.as_of_ms)));
    let attention = Memo::new(move |_| {
        fleet.with(|f| {
            f.iter()
                .flat_map(|f| &f.services)
                .filter(|s| severity(s) > 0)
                .count()
        })
    });
    view! {
        <p class="fleet-summary" aria-live="polite" data-test="fleet-summary">
            {move || match attention.get() {
                0 => "Nothing is broken: every breaker is closed and no answer is degraded.".to_owned(),
                1 => "1 service needs attention; it comes first.".to_owned(),
                n => format!("{n} services need attention; they come first."),
            }}
            <span class="muted">" Figures cover the last minute."</span>
        </p>
        <div class="fleet" data-test="fleet-overview">
            <For
                each=move || order.get()
                key=|k| k.clone()
                children=move |(name, env)| view! { <ServiceCard fleet as_of name env /> }
            />
        </div>
    }
    .into_any()
}

/// One service. The name and its link never change, so they are drawn
/// once (keyboard focus on the link survives live updates); everything else
/// is redrawn from the card's summary when that summary changes, in a few
/// closures rather than one per figure: a page load builds a hundred cards,
/// and each reactive read costs more on the server than the markup it
/// draws. The card's memos are `ArcMemo`s, read through their `Arc`: a
/// `Memo` is looked up in the reactive arena on every read (a thread-local,
/// a weak reference and a lock on the server).
#[component]
fn ServiceCard(
    fleet: Memo<Option<live::Fleet>>,
    as_of: Memo<i64>,
    name: String,
    env: String,
) -> impl IntoView {
    let (n, e) = (name.clone(), env.clone());
    let s = ArcMemo::new(move |_| {
        fleet.with(|f| {
            f.iter()
                .flat_map(|f| &f.services)
                .find(|s| s.service == n && s.environment == e)
                .cloned()
                .unwrap_or_default()
        })
    });
    let level = ArcMemo::new({
        let s = s.clone();
        move |_| s.with(severity)
    });
    let base = format!(
        "/services/{}/{}",
        shared::paths::segment(&name),
        shared::paths::segment(&env)
    );
    let href = format!("{base}?tab=telemetry");
    let dlq_href = format!("{base}/dead-letters");
    let prefix = format!("{name}-{env}");
    let (budget_name, budget_env) = (name.clone(), env.clone());
    let card = format!("service-card-{prefix}");
    let dlq_test = format!("dlq-depth-{prefix}");
    let (class_level, badge_level) = (level.clone(), level.clone());
    let (facts_of, quiet_of, rows_of, dlq_of) = (s.clone(), s.clone(), s.clone(), s);
    // Its own memo: the age moves with the clock, and only its words redraw.
    let dlq = ArcMemo::new(move |_| {
        let as_of = as_of.get();
        dlq_of.with(|s| dlq_figure(&s.dead_letters, as_of))
    });
    view! {
        <section
            class=move || ["fleet-card", "fleet-card is-warn", "fleet-card is-bad"][class_level.get() as usize]
            data-test=card
            data-severity=move || level.get()
        >
            <header class="fleet-card-header">
                <h2>
                    <a href=href>{name}</a>
                    " "
                    <span class="env-badge">{env}</span>
                </h2>
                {move || {
                    let l = badge_level.get() as usize;
                    view! {
                        <span class=["badge badge-ok", "badge badge-warn", "badge badge-bad"][l]>
                            {["healthy", "needs attention", "breaker open"][l]}
                        </span>
                    }
                }}
                <dl class="fleet-facts">
                    {move || facts_of.with(facts)}
                    <div>
                        <dt>"DLQ depth"</dt>
                        <dd>
                            <a href=dlq_href data-test=dlq_test>
                                <span class="visually-hidden">"Dead letters: "</span>
                                {move || dlq.get()}
                            </a>
                        </dd>
                    </div>
                </dl>
                <CardBudget name=budget_name env=budget_env />
            </header>
            {move || {
                quiet_of
                    .with(|s| s.dependencies.is_empty())
                    .then(|| view! { <p class="muted fleet-quiet">"No calls reported in the last minute."</p> })
            }}
            <div class="table-scroll">
                <table class="table live-table">
                    <thead>
                        <tr>
                            <th scope="col">"Dependency"</th>
                            <th scope="col">"Breaker"</th>
                            <th scope="col" class="num">"Calls"</th>
                            <th scope="col" class="num">"Degraded"</th>
                            <th scope="col" class="num">"Fallback"</th>
                            <th scope="col" class="num">"Retry ×"</th>
                            <th scope="col" class="num">"Shed"</th>
                            <th scope="col" class="num">"p95"</th>
                        </tr>
                    </thead>
                    <tbody>{dependency_rows(rows_of, prefix)}</tbody>
                </table>
            </div>
        </section>
    }
    .into_any()
}

fn facts(s: &live::Service) -> impl IntoView + use<> {
    let i = &s.instances;
    let lagging = match i.lagging.as_slice() {
        [] => "none".to_owned(),
        ids => ids.join(", "),
    };
    view! {
        <div>
            <dt>"Instances"</dt>
            <dd class="numeric">
                <span class="status status-on">{i.up} " up"</span>
                " "
                <span class="status status-warn">{i.stale} " stale"</span>
                " "
                <span class="status status-bad">{i.down} " down"</span>
            </dd>
        </div>
        <div>
            <dt>"Lagging"</dt>
            <dd>{lagging}</dd>
        </div>
    }
}

/// The dead-letter queue in words: its depth, and how long the oldest entry
/// has waited as of `as_of_ms`.
fn dlq_figure(f: &DeadLetters, as_of_ms: i64) -> String {
    match f.oldest_received_at_ms {
        Some(oldest) if f.depth > 0 => {
            format!("{} · oldest {}", f.depth, age(as_of_ms - oldest))
        }
        _ => f.depth.to_string(),
    }
}

/// The card's dependency rows. In the browser they are a keyed list that
/// live updates change in place: a row and its breaker chip are the same
/// nodes before and after an update, so nothing an engineer is looking at
/// or has selected is swapped under them. On the server the same markup is
/// written as one string ([`rows_html`]): the rows are the bulk of the page
/// (a hundred services draw five hundred rows of nine elements) and the
/// list's owners, keys, memo reads and per-element allocations cost several
/// times the markup itself. A test renders both for the same summaries and
/// requires the same bytes, since the browser hydrates the list from them.
#[cfg(feature = "hydrate")]
fn dependency_rows(s: ArcMemo<live::Service>, prefix: String) -> impl IntoView {
    browser_rows::live_rows(s, prefix)
}

#[cfg(not(feature = "hydrate"))]
fn dependency_rows(s: ArcMemo<live::Service>, prefix: String) -> impl IntoView {
    let mut html = s.with_untracked(|s| rows_html(&prefix, s));
    // Where the keyed list ends, as the list itself marks it.
    html.push_str("<!>");
    leptos::tachys::html::InertElement::new(html)
}

/// What [`browser_rows::live_rows`] renders for `s`, byte for byte, written directly.
/// Every value from outside is escaped as the view would escape it
/// (`html_escape`, which Leptos uses): dependency names come from agents.
// The browser's build hydrates the list instead.
#[cfg_attr(feature = "hydrate", allow(dead_code))]
fn rows_html(prefix: &str, s: &live::Service) -> String {
    use std::fmt::Write;
    // As the view writes a text node: an empty one as a space.
    fn text(html: &mut String, value: &str) {
        if value.is_empty() {
            html.push(' ');
        } else {
            html_escape::encode_text_to_string(value, html);
        }
    }
    fn attr(html: &mut String, value: &str) {
        html_escape::encode_double_quoted_attribute_to_string(value, html);
    }
    let mut html = String::with_capacity(640 * s.dependencies.len());
    // The row's id in `data-test`s, escaped once for both.
    let mut id = String::new();
    for d in &s.dependencies {
        let (key, label) = breaker_key(d.breaker);
        id.clear();
        attr(&mut id, prefix);
        id.push('-');
        attr(&mut id, &d.dependency);
        html.push_str(if dependency_severity(d) == 2 {
            r#"<tr class="row-bad"><th scope="row">"#
        } else {
            r#"<tr class=""><th scope="row">"#
        });
        text(&mut html, &d.dependency);
        let _ = write!(
            html,
            r#"</th><td><span data-test="breaker-{id}" data-state="{key}" class="breaker breaker-{key}">{label}</span></td><td class="num">{calls}</td><td data-test="degraded-{id}" data-value="{degraded}" class="num">{degraded_pct}</td><td class="num">{fallback}</td><td class="num">{retry:.2}</td><td class="num">{shed}</td><td class="num">{p95}</td></tr>"#,
            calls = d.calls,
            degraded = d.degraded_rate,
            degraded_pct = pct(d.degraded_rate),
            fallback = pct(d.fallback_rate),
            retry = d.retry_amplification,
            shed = d.shed,
            p95 = ms(d.p95_ms),
        );
    }
    html
}

/// The rows as the browser draws and updates them (see [`dependency_rows`]).
// The server's build draws `rows_html` instead and keeps these for the test
// that holds the two to the same markup.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
mod browser_rows {
    use super::*;
    use crate::components::telemetry::LiveBreakerChip;
    use std::sync::Arc;

    /// The rows as the browser keeps them: one [`DependencyRow`] per dependency.
    pub(super) fn live_rows(s: ArcMemo<live::Service>, prefix: String) -> impl IntoView {
        let names = s.clone();
        view! {
            <For
                each=move || names.with(|s| s.dependencies.iter().map(|d| d.dependency.clone()).collect::<Vec<_>>())
                key=|d| d.clone()
                children=move |dep| view! { <DependencyRow s=s.clone() prefix=prefix.clone() dep /> }
            />
        }
    }

    /// One dependency. The row and its breaker chip stay in place as the
    /// figures change (the chip is what an engineer watches); the figures are
    /// one closure, redrawn together, as the server draws them in one string.
    #[component]
    fn DependencyRow(s: ArcMemo<live::Service>, prefix: String, dep: String) -> impl IntoView {
        let id = format!("{prefix}-{dep}");
        let name: Arc<str> = dep.as_str().into();
        let level = reader(&s, &name, dependency_severity);
        let breaker = reader(&s, &name, |d| d.breaker);
        let test = format!("breaker-{id}");
        // Drawn from the summary in place, without copying the dependency out.
        let row = move || {
            s.with(|s| {
                s.dependencies
                    .iter()
                    .find(|d| *d.dependency == *name)
                    .map(|d| figures(&id, d))
            })
        };
        view! {
            <tr class=move || if level() == Some(2) { "row-bad" } else { "" }>
                <th scope="row">{dep}</th>
                <td>
                    <LiveBreakerChip state=move || breaker().flatten() test />
                </td>
                {row}
            </tr>
        }
    }

    /// Reads `read` of the dependency called `name` in the card's summary;
    /// `None` once it has gone (its row is about to go too).
    fn reader<T: 'static>(
        s: &ArcMemo<live::Service>,
        name: &Arc<str>,
        read: fn(&live::Dependency) -> T,
    ) -> impl Fn() -> Option<T> + Clone + Send + Sync + use<T> {
        let (s, name) = (s.clone(), Arc::clone(name));
        move || {
            s.with(|s| {
                s.dependencies
                    .iter()
                    .find(|d| *d.dependency == *name)
                    .map(read)
            })
        }
    }

    fn figures(id: &str, d: &live::Dependency) -> impl IntoView + use<> {
        view! {
            <td class="num">{d.calls}</td>
            <td class="num" data-test=format!("degraded-{id}") data-value=d.degraded_rate.to_string()>
                {pct(d.degraded_rate)}
            </td>
            <td class="num">{pct(d.fallback_rate)}</td>
            <td class="num">{format!("{:.2}", d.retry_amplification)}</td>
            <td class="num">{d.shed}</td>
            <td class="num">{ms(d.p95_ms)}</td>
        }
    }
}

/// No services: say so plainly, and how that changes, rather than showing
/// empty charts.
#[component]
fn Empty() -> impl IntoView {
    view! {
        <section class="empty-state" data-test="overview-empty" aria-labelledby="overview-empty-title">
            <div class="empty-state-icon" aria-hidden="true"></div>
            <h2 id="overview-empty-title">"No services report yet."</h2>
            <p>
                "Services appear here once their agent connects. Until then there is nothing to show: no breakers, no fallbacks, no load."
            </p>
            <ol class="steps">
                <li>
                    "An admin creates a service token for the service and its environment (" <code>"ballast token"</code>
                    " on the server's command line)."
                </li>
                <li>"The service embeds the Ballast agent and starts with that token and this server's address."</li>
                <li>
                    "The agent connects, pulls its policy and starts reporting; the service shows up here within seconds."
                </li>
            </ol>
        </section>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(dependencies: Vec<live::Dependency>) -> live::Service {
        live::Service {
            dependencies,
            ..Default::default()
        }
    }

    const HOSTILE: &str = r#"<img src=x onerror="alert(1)">&"#;

    fn dependencies() -> Vec<live::Dependency> {
        vec![
            live::Dependency {
                dependency: HOSTILE.to_owned(),
                breaker: Some(BreakerState::Open),
                calls: 100,
                degraded_rate: 0.8,
                fallback_rate: 0.0196078431372549,
                p95_ms: Some(250),
                ..Default::default()
            },
            live::Dependency {
                dependency: "model".to_owned(),
                breaker: Some(BreakerState::Closed),
                calls: 7,
                retry_amplification: 1.25,
                ..Default::default()
            },
            live::Dependency {
                dependency: "tool".to_owned(),
                breaker: None,
                degraded_rate: 0.5,
                shed: 12,
                p95_ms: Some(61_000),
                ..Default::default()
            },
            live::Dependency {
                dependency: String::new(),
                breaker: Some(BreakerState::ForcedOpen),
                p95_ms: Some(12_000),
                ..Default::default()
            },
            live::Dependency {
                dependency: "vector".to_owned(),
                breaker: Some(BreakerState::HalfOpen),
                ..Default::default()
            },
            live::Dependency {
                dependency: "x".to_owned(),
                breaker: Some(BreakerState::ForcedClosed),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn rows_are_escaped_markup_with_the_chips_and_figures() {
        let html = rows_html("rag-prod", &summary(dependencies()));
        assert!(!html.contains("<img"), "{html}");
        assert_eq!(html.matches("<tr").count(), 6, "{html}");
        assert_eq!(html.matches("</tr>").count(), 6, "{html}");
        assert!(
            html.starts_with(
                r#"<tr class="row-bad"><th scope="row">&lt;img src=x onerror="alert(1)"&gt;&amp;</th>"#
            ),
            "{html}"
        );
        // In an attribute a quote would end the value: it is escaped there.
        assert!(
            html.contains(
                r#"<span data-test="breaker-rag-prod-&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" data-state="open" class="breaker breaker-open">open</span>"#
            ),
            "{html}"
        );
        assert!(
            html.contains(r#"data-value="0.8" class="num">80.0 %</td>"#),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<tr class=""><th scope="row">model</th><td><span data-test="breaker-rag-prod-model" data-state="closed" class="breaker breaker-closed">closed</span></td><td class="num">7</td>"#
            ),
            "{html}"
        );
    }

    /// The browser hydrates the keyed list from the server's string, so the
    /// two must agree to the byte for every kind of row: escaped names, an
    /// empty one, every breaker state, every latency format.
    #[cfg(feature = "ssr")]
    #[test]
    fn the_servers_rows_are_the_markup_of_the_browsers_list() {
        use leptos::tachys::view::RenderHtml;
        let owner = Owner::new();
        owner.set();
        let all = dependencies();
        for n in 0..=all.len() {
            let s = summary(all[..n].to_vec());
            let expected = {
                let s = s.clone();
                let memo = ArcMemo::new(move |_| s.clone());
                view! { <tbody>{browser_rows::live_rows(memo, "rag-prod".to_owned())}</tbody> }
                    .to_html()
            };
            let written = format!("<tbody>{}<!></tbody>", rows_html("rag-prod", &s));
            assert_eq!(written, expected, "with {n} dependencies");
            assert_eq!(expected.matches("</tr>").count(), n, "{expected}");
        }
    }

    #[test]
    fn the_queue_reads_as_its_depth_and_oldest_age() {
        let f = |depth, oldest| DeadLetters {
            depth,
            oldest_received_at_ms: oldest,
        };
        assert_eq!(dlq_figure(&f(0, None), 1_000), "0");
        assert_eq!(
            dlq_figure(&f(3, Some(1_000)), 1_000 + 2 * 3_600_000 + 5 * 60_000),
            "3 · oldest 2 h 5 min"
        );
        assert_eq!(dlq_figure(&f(2, None), 1_000), "2");
    }

    #[test]
    fn open_breakers_outrank_degraded_answers() {
        let dep = |breaker, degraded_rate| live::Dependency {
            breaker,
            degraded_rate,
            ..Default::default()
        };
        let service = |deps| live::Service {
            dependencies: deps,
            ..Default::default()
        };
        assert_eq!(
            severity(&service(vec![dep(Some(BreakerState::Closed), 0.0)])),
            0
        );
        assert_eq!(severity(&service(vec![dep(None, 0.2)])), 1);
        assert_eq!(
            severity(&service(vec![
                dep(None, 0.2),
                dep(Some(BreakerState::ForcedOpen), 0.0)
            ])),
            2
        );
    }
}
