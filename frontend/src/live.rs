//! The fleet's live state, as pages see it: what the server knew when it
//! rendered the page, then every `fleet` event of `/api/v1/live`.
//!
//! The first HTML already carries the fleet (a serialized resource), so the
//! overview is readable before the bundle loads, or without JavaScript, and
//! hydration starts from the same value instead of from "loading". The
//! stream takes over once the browser is live.

use leptos::prelude::*;
use shared::api::FleetLive;

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

/// The fleet as the server knows it now, for the first render.
#[server(prefix = "/_ballast/fn", endpoint = "fleet_now")]
pub async fn fleet_now() -> Result<FleetLive, ServerFnError> {
    use axum::http::request::Parts;
    use shared::api::Me;
    use shared::role::Permission;
    let parts = use_context::<Parts>()
        .ok_or_else(|| ServerFnError::new("the request is not available to fleet_now"))?;
    // The same rule as `GET /api/v1/fleet/live`: reading is for every role.
    match parts.extensions.get::<Me>() {
        Some(me) if me.role.allows(Permission::Read) => {}
        _ => return Err(ServerFnError::new("sign in to read the fleet")),
    }
    let source = use_context::<FleetSource>()
        .ok_or_else(|| ServerFnError::new("the server gave the dashboard no fleet source"))?;
    (source.0)().await.map_err(ServerFnError::new)
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
    pub fleet: Memo<Option<FleetLive>>,
    /// The server's render, read under a `<Suspense>` so that the server
    /// waits for it before sending the page.
    initial: Option<Resource<Result<FleetLive, ServerFnError>>>,
    pub link: RwSignal<Link>,
}

impl LiveFleet {
    /// Starts from the server's view, rendered into the page (see
    /// [`LiveFleet::track_initial`]), and follows the stream while the
    /// calling page is mounted.
    pub fn rendered() -> LiveFleet {
        LiveFleet::new(Some(Resource::new(|| (), |_| fleet_now())))
    }

    /// Follows the stream only, for pages that use it as a change signal.
    pub fn streamed() -> LiveFleet {
        LiveFleet::new(None)
    }

    fn new(initial: Option<Resource<Result<FleetLive, ServerFnError>>>) -> LiveFleet {
        let streamed = RwSignal::new(None::<FleetLive>);
        let link = RwSignal::new(Link::Connecting);
        follow_stream(streamed, link);
        let fleet = Memo::new(move |_| {
            streamed
                .get()
                .or_else(|| initial.and_then(|r| r.get()).and_then(Result::ok))
        });
        LiveFleet {
            fleet,
            initial,
            link,
        }
    }

    /// Subscribes the caller to the server's render, so that a
    /// `<Suspense>` around it holds the page until the fleet is known.
    pub fn track_initial(self) {
        if let Some(r) = self.initial {
            r.track();
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
fn follow_stream(fleet: RwSignal<Option<FleetLive>>, link: RwSignal<Link>) {
    use crate::{api, session::Session};
    use leptos::task::spawn_local;
    use wasm_bindgen::{JsCast, closure::Closure};
    use web_sys::{Event, EventSource, MessageEvent};

    let session = Session::expect();
    let attempt = RwSignal::new(0_u32);
    Effect::new(move |_| {
        attempt.track();
        let Ok(source) = EventSource::new(api::LIVE) else {
            link.set(Link::Reconnecting);
            return;
        };
        let on_fleet = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let data = ev.data().as_string().unwrap_or_default();
            if let Ok(f) = serde_json::from_str::<FleetLive>(&data) {
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
                match api::fleet_live().await {
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
fn follow_stream(_: RwSignal<Option<FleetLive>>, _: RwSignal<Link>) {}
