use crate::layout::Layout;
use crate::live::FleetSeed;
use crate::pages::{
    ApprovalsPage, AuditPage, FleetPage, LoginPage, NotFound, OverviewPage, ServicePage,
    ServicesPage, UsersPage,
};
use crate::session::Session;
use leptos::prelude::*;
use leptos_meta::{Title, provide_meta_context};
use leptos_router::{
    SsrMode,
    components::{ParentRoute, Route, Router, Routes},
    path,
};

/// The dashboard: `/login` on its own, everything else inside [`Layout`].
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    Session::provide();
    FleetSeed::provide();
    mark_body_when_hydrated();

    view! {
        <Title formatter=|page: String| {
            if page.is_empty() { "Ballast".to_owned() } else { format!("{page} · Ballast") }
        } />
        <Router>
            <Routes fallback=|| view! { <NotFound /> }>
                <Route path=path!("/login") view=LoginPage />
                // Async: the server waits for the session before it sends
                // anything, so the first HTML already has the right
                // navigation, with or without JavaScript, and nothing moves.
                <ParentRoute path=path!("") view=Layout ssr=SsrMode::Async>
                    <Route path=path!("") view=OverviewPage />
                    <Route path=path!("/services") view=ServicesPage />
                    <Route path=path!("/services/:name/:env") view=ServicePage />
                    <Route path=path!("/fleet") view=FleetPage />
                    <Route path=path!("/approvals") view=ApprovalsPage />
                    <Route path=path!("/users") view=UsersPage />
                    <Route path=path!("/audit") view=AuditPage />
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// Whether the browser has hydrated the page: `false` on the server and
/// while hydrating, `true` from then on. Controls that only work through
/// JavaScript stay disabled until then, instead of doing something else.
#[derive(Clone, Copy)]
pub struct Hydrated(ReadSignal<bool>);

impl Hydrated {
    pub fn expect() -> Self {
        expect_context::<Hydrated>()
    }

    pub fn get(self) -> bool {
        self.0.get()
    }
}

/// Sets `data-hydrated="true"` on `<body>` once the app is live.
///
/// Clicks before hydration are lost (or, on the login form, become a full
/// page post), so browser tests wait for this. Effects never run on the
/// server, so server-rendered HTML never carries the attribute; and this
/// one first runs after `hydrate_body` has walked the whole page.
fn mark_body_when_hydrated() {
    let (hydrated, set_hydrated) = signal(false);
    provide_context(Hydrated(hydrated));
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            // Failing to set an attribute on <body> has no useful recovery.
            let _ = body.set_attribute("data-hydrated", "true");
        }
        set_hydrated.set(true);
    });
}
