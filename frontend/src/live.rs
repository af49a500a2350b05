//! The fleet's live state, as pages see it: what the server knew when it
//! rendered the page, then every `fleet` event of `/api/v1/live`.
//!
//! The first HTML already carries the fleet (a serialized resource), so the
//! overview is readable before the bundle loads, or without JavaScript, and
//! hydration starts from the same value instead of from "loading". The
//! stream takes over once the browser is live.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
#[cfg(any(feature = "ssr", test))]
use shared::api::{DependencyLive, FleetLive, ServiceLiveSummary};
use shared::protocol::BreakerState;

/// The fleet as the live pages read it: the fields of
/// [`shared::api::FleetLive`] that the overview and the fleet page draw.
/// The stream's events are read straight into this (serde skips the rest),
/// so the main bundle, which every page downloads first, carries a reader
/// for these few fields rather than for every figure of the full view.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Fleet {
    pub as_of_ms: i64,
    pub window_secs: u64,
    pub services: Vec<Service>,
}

/// What the live pages draw of a [`shared::api::ServiceLiveSummary`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Service {
    pub service: String,
    pub environment: String,
    pub instances: Instances,
    pub worst_breaker: Option<BreakerState>,
    pub dependencies: Vec<Dependency>,
    pub dead_letters: DeadLetters,
}

/// [`shared::api::InstanceCounts`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Instances {
    pub up: u64,
    pub stale: u64,
    pub down: u64,
    pub lagging: Vec<String>,
}

/// What the overview's rows draw of a [`shared::api::DependencyLive`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Dependency {
    pub dependency: String,
    pub breaker: Option<BreakerState>,
    pub calls: u64,
    pub degraded_rate: f64,
    pub fallback_rate: f64,
    pub retry_amplification: f64,
    pub shed: u64,
    pub p95_ms: Option<u64>,
}

/// [`shared::api::DeadLetterFigures`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DeadLetters {
    pub depth: u64,
    pub oldest_received_at_ms: Option<i64>,
}

/// Where the page's event stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Only the browser follows the stream, so only it leaves `Connecting`.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum Link {
    Connecting,
    Connected,
    Reconnecting,
}

impl Link {
    fn state(self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Connected => "connected",
            Link::Reconnecting => "reconnecting",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Link::Connecting => "Connecting…",
            Link::Connected => "Live",
            Link::Reconnecting => "Reconnecting…",
        }
    }
}

/// What the overview draws of the fleet, for its first render. It goes into
/// the HTML for hydration, so it carries only the figures the cards show,
/// as JSON arrays rather than objects: the whole [`FleetLive`] of 100
/// services is about 290 KiB of JSON, nearly all field names and figures
/// no card draws, and Leptos writes the seed into the page as a quoted
/// string, escaping it character by character on every page load (every
/// `"` of a field name twice over).
///
/// `[as_of_ms, window_secs, services]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewFleet(i64, u64, Vec<SeedService>);

/// `[service, environment, [up, stale, down, lagging], worst_breaker,
/// dependencies, [dead-letter depth, oldest entry's arrival]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SeedService(
    String,
    String,
    (u64, u64, u64, Vec<String>),
    Option<BreakerState>,
    Vec<SeedDependency>,
    (u64, Option<i64>),
);

/// `[dependency, breaker, calls, degraded_rate, fallback_rate,
/// retry_amplification, shed, p95_ms]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SeedDependency(
    String,
    Option<BreakerState>,
    u64,
    f64,
    f64,
    f64,
    u64,
    Option<u64>,
);

#[cfg(any(feature = "ssr", test))]
impl From<&FleetLive> for OverviewFleet {
    fn from(f: &FleetLive) -> Self {
        OverviewFleet(
            f.as_of_ms,
            f.window_secs,
            f.services.iter().map(SeedService::from).collect(),
        )
    }
}

#[cfg(any(feature = "ssr", test))]
impl From<&ServiceLiveSummary> for SeedService {
    fn from(s: &ServiceLiveSummary) -> Self {
        let i = &s.instances;
        SeedService(
            s.service.clone(),
            s.environment.clone(),
            (i.up, i.stale, i.down, i.lagging.clone()),
            s.worst_breaker,
            s.dependencies.iter().map(SeedDependency::from).collect(),
            (s.dead_letters.depth, s.dead_letters.oldest_received_at_ms),
        )
    }
}

#[cfg(any(feature = "ssr", test))]
impl From<&DependencyLive> for SeedDependency {
    fn from(d: &DependencyLive) -> Self {
        SeedDependency(
            d.dependency.clone(),
            d.breaker,
            d.calls,
            d.degraded_rate,
            d.fallback_rate,
            d.retry_amplification,
            d.shed,
            d.p95_ms,
        )
    }
}

/// Back to the fleet the pages read; the stream's first event brings the
/// same fields again.
impl From<OverviewFleet> for Fleet {
    fn from(OverviewFleet(as_of_ms, window_secs, services): OverviewFleet) -> Self {
        Fleet {
            as_of_ms,
            window_secs,
            services: services.into_iter().map(Service::from).collect(),
        }
    }
}

impl From<SeedService> for Service {
    fn from(seed: SeedService) -> Self {
        let SeedService(service, environment, (up, stale, down, lagging), worst, deps, dlq) = seed;
        Service {
            service,
            environment,
            instances: Instances {
                up,
                stale,
                down,
                lagging,
            },
            worst_breaker: worst,
            dependencies: deps.into_iter().map(Dependency::from).collect(),
            dead_letters: DeadLetters {
                depth: dlq.0,
                oldest_received_at_ms: dlq.1,
            },
        }
    }
}

impl From<SeedDependency> for Dependency {
    fn from(seed: SeedDependency) -> Self {
        Dependency {
            dependency: seed.0,
            breaker: seed.1,
            calls: seed.2,
            degraded_rate: seed.3,
            fallback_rate: seed.4,
            retry_amplification: seed.5,
            shed: seed.6,
            p95_ms: seed.7,
        }
    }
}

/// The fleet as the server knows it now, for the first render of the
/// overview; `None` for every other page, which has no use for it.
#[server(prefix = "/_ballast/fn", endpoint = "overview_seed")]
pub async fn overview_seed() -> Result<Option<OverviewFleet>, ServerFnError> {
    use axum::http::request::Parts;
    use shared::api::Me;
    use shared::role::Permission;
    let parts = use_context::<Parts>()
        .ok_or_else(|| ServerFnError::new("the request is not available to overview_seed"))?;
    // Where `App` routes the overview.
    const OVERVIEW_PATH: &str = "/";
    if parts.uri.path() != OVERVIEW_PATH {
        return Ok(None);
    }
    // The same rule as `GET /api/v1/fleet/live`: reading is for every role.
    match parts.extensions.get::<Me>() {
        Some(me) if me.role.allows(Permission::Read) => {}
        _ => return Err(ServerFnError::new("sign in to read the fleet")),
    }
    let source = use_context::<FleetSource>()
        .ok_or_else(|| ServerFnError::new("the server gave the dashboard no fleet source"))?;
    let fleet = (source.0)().await.map_err(ServerFnError::new)?;
    Ok(Some(OverviewFleet::from(&fleet)))
}

type SeedResource = Resource<Result<Option<OverviewFleet>, ServerFnError>>;

/// The seed's fetcher. Only the server computes it: the browser reads the
/// server's answer from the page (the resource is made once, at the app's
/// root, while hydrating), and never asks for it again, so its bundle
/// carries no client for `overview_seed`. Were the answer ever missing,
/// the page would show the fleet from the stream's first event instead.
#[cfg(feature = "ssr")]
async fn seed() -> Result<Option<OverviewFleet>, ServerFnError> {
    overview_seed().await
}

#[cfg(not(feature = "ssr"))]
async fn seed() -> Result<Option<OverviewFleet>, ServerFnError> {
    Ok(None)
}

/// The overview's first fleet, made once per page load at the app's root.
/// Made inside the page, the resource would be made again each time the
/// layout's `<Suspense>` renders the page on the server, and each copy
/// would be computed and serialized into the HTML.
#[derive(Clone, Copy)]
pub struct FleetSeed {
    resource: SeedResource,
    /// Set when the page that used the seed goes away. Not a signal: it
    /// is written while views are torn down (sign-out included), when a
    /// reactive write would wake views that are going away.
    spent: StoredValue<bool>,
}

impl FleetSeed {
    pub fn provide() {
        provide_context(FleetSeed {
            resource: Resource::new(|| (), |_| seed()),
            spent: StoredValue::new(false),
        });
    }

    pub fn expect() -> Self {
        expect_context::<FleetSeed>()
    }

    /// The seed for a page being mounted, unless an earlier page used it:
    /// coming back later must not show a fleet minutes old, even for a
    /// moment.
    fn take(self) -> Option<SeedResource> {
        if self.spent.try_get_value().unwrap_or(true) {
            return None;
        }
        // Only in the browser: on the server the page is rendered more
        // than once from the same seed.
        #[cfg(feature = "hydrate")]
        on_cleanup(move || {
            let _ = self.spent.try_set_value(true);
        });
        Some(self.resource)
    }
}

/// How the server hands the dashboard its current fleet view: the same
/// computation as `GET /api/v1/fleet/live`, without an HTTP round trip.
#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct FleetSource(pub std::sync::Arc<dyn Fn() -> FleetFuture + Send + Sync>);

/// What a [`FleetSource`] returns.
#[cfg(feature = "ssr")]
pub type FleetFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<FleetLive, String>> + Send>>;

/// The fleet a page shows, and the state of its stream.
#[derive(Clone, Copy)]
pub struct LiveFleet {
    /// The newest fleet: the stream's latest event, or else the server's
    /// render. `None` only while neither has arrived (or the server could
    /// not tell).
    pub fleet: Memo<Option<Fleet>>,
    /// The server's render (see [`LiveFleet::ready`]).
    initial: Option<SeedResource>,
    pub link: RwSignal<Link>,
}

impl LiveFleet {
    /// Starts from the server's view, rendered into the page (see
    /// [`LiveFleet::ready`]), and follows the stream while the calling page
    /// is mounted.
    pub fn rendered() -> LiveFleet {
        LiveFleet::new(FleetSeed::expect().take())
    }

    /// Follows the stream only, for pages that use it as a change signal.
    pub fn streamed() -> LiveFleet {
        LiveFleet::new(None)
    }

    fn new(initial: Option<SeedResource>) -> LiveFleet {
        let streamed = RwSignal::new(None::<Fleet>);
        let link = RwSignal::new(Link::Connecting);
        follow_stream(streamed, link);
        let fleet = Memo::new(move |_| {
            streamed.get().or_else(|| {
                initial
                    .and_then(|r| r.get())
                    .and_then(Result::ok)
                    .flatten()
                    .map(Fleet::from)
            })
        });
        LiveFleet {
            fleet,
            initial,
            link,
        }
    }

    /// Resolves once the server's view is known. Awaited in a `Suspend`,
    /// it holds the page on the server until the fleet is in it; in the
    /// hydrating browser the value is already there.
    pub async fn ready(self) {
        if let Some(r) = self.initial {
            // A failure shows as "loading" until the stream answers.
            let _ = r.await;
        }
    }
}

/// The stream's state as a badge in the page header.
#[component]
pub fn LiveStatus(link: RwSignal<Link>) -> impl IntoView {
    view! {
        <span
            class="live-status"
            role="status"
            data-test="live-status"
            data-state=move || link.get().state()
        >
            {move || link.get().label()}
        </span>
    }
}

/// Follows `/api/v1/live` while the page is mounted: the browser reconnects
/// by itself after a dropped connection; a refused one (the server said no)
/// is checked with a plain request, which signs out an ended session, and
/// tried again a few seconds later.
#[cfg(feature = "hydrate")]
fn follow_stream(fleet: RwSignal<Option<Fleet>>, link: RwSignal<Link>) {
    use crate::{api, session::Session};
    use leptos::task::spawn_local;
    use wasm_bindgen::{JsCast, closure::Closure};
    use web_sys::{Event, EventSource, MessageEvent};

    let session = Session::expect();
    let attempt = RwSignal::new(0_u32);
    Effect::new(move |_| {
        attempt.track();
        // Server-sent `fleet` events (a `FleetLive` each, read as a `Fleet`).
        let Ok(source) = EventSource::new(shared::paths::LIVE) else {
            link.set(Link::Reconnecting);
            return;
        };
        let on_fleet = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let data = ev.data().as_string().unwrap_or_default();
            if let Ok(f) = serde_json::from_str::<Fleet>(&data) {
                fleet.try_set(Some(f));
                link.try_set(Link::Connected);
            }
        });
        let watched = source.clone();
        let on_error = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            link.try_set(Link::Reconnecting);
            if watched.ready_state() != EventSource::CLOSED {
                return;
            }
            spawn_local(async move {
                match api::fleet_live::<Fleet>().await {
                    // Nothing may be written after this: the page goes away.
                    Err(e) if e.is_unauthenticated() => session.signed_out(),
                    other => {
                        if let Ok(f) = other {
                            fleet.try_set(Some(f));
                        }
                        set_timeout(
                            move || {
                                attempt.try_update(|n| *n += 1);
                            },
                            std::time::Duration::from_secs(3),
                        );
                    }
                }
            });
        });
        let _ = source.add_event_listener_with_callback("fleet", on_fleet.as_ref().unchecked_ref());
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        // The callbacks must live as long as the stream; both end together,
        // when the page unmounts (sign-out included) or before a retry.
        let held = StoredValue::new_local((source, on_fleet, on_error));
        on_cleanup(move || {
            held.try_with_value(|(source, _, _)| source.close());
        });
    });
}

#[cfg(not(feature = "hydrate"))]
fn follow_stream(_: RwSignal<Option<Fleet>>, _: RwSignal<Link>) {}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::{DeadLetterFigures, InstanceCounts};

    /// What the cards draw survives the trip through the page; the rest is
    /// left for the stream, and the seed is a fraction of the full fleet.
    #[test]
    fn the_seed_keeps_what_the_overview_draws() {
        let dependency = DependencyLive {
            dependency: "reranker".into(),
            calls: 100,
            failures: 80,
            degraded_rate: 0.8,
            fallback_rate: 0.75,
            retry_amplification: 1.25,
            shed: 4,
            p95_ms: Some(250),
            breaker: Some(BreakerState::Open),
            breakers: [("pod-1".to_owned(), BreakerState::Open)].into(),
            ..Default::default()
        };
        let fleet = FleetLive {
            as_of_ms: 1_700_000_000_000,
            window_secs: 60,
            services: vec![ServiceLiveSummary {
                service: "rag-answer".into(),
                environment: "prod".into(),
                instances: InstanceCounts {
                    up: 2,
                    stale: 1,
                    down: 0,
                    lagging: vec!["pod-3".into()],
                },
                worst_breaker: Some(BreakerState::Open),
                dependencies: vec![dependency.clone()],
                service_level: None,
                dead_letters: DeadLetterFigures {
                    depth: 7,
                    oldest_received_at_ms: Some(1_699_999_000_000),
                },
            }],
        };
        let seed = OverviewFleet::from(&fleet);
        let json = serde_json::to_string(&seed).unwrap();
        let back = Fleet::from(serde_json::from_str::<OverviewFleet>(&json).unwrap());
        let (s, d) = (&back.services[0], &back.services[0].dependencies[0]);
        assert_eq!((back.as_of_ms, back.window_secs), (fleet.as_of_ms, 60));
        let i = &fleet.services[0].instances;
        assert_eq!(
            (s.instances.up, s.instances.stale, s.instances.down),
            (i.up, i.stale, i.down)
        );
        assert_eq!(s.instances.lagging, i.lagging);
        assert_eq!(s.worst_breaker, Some(BreakerState::Open));
        let dl = &fleet.services[0].dead_letters;
        assert_eq!(
            (s.dead_letters.depth, s.dead_letters.oldest_received_at_ms),
            (dl.depth, dl.oldest_received_at_ms)
        );
        assert_eq!(
            (d.dependency.as_str(), d.breaker, d.calls, d.shed, d.p95_ms),
            ("reranker", Some(BreakerState::Open), 100, 4, Some(250))
        );
        assert_eq!(
            (d.degraded_rate, d.fallback_rate, d.retry_amplification),
            (0.8, 0.75, 1.25)
        );
        assert!(json.len() * 5 < serde_json::to_string(&fleet).unwrap().len());
        // The stream's full events read into the same fields.
        let streamed: Fleet =
            serde_json::from_str(&serde_json::to_string(&fleet).unwrap()).unwrap();
        assert_eq!(streamed, back);
    }
}
