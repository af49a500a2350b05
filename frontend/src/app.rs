use crate::layout::Layout;
use crate::live::FleetSeed;
use crate::pages::{
    AlertsRoute, ApprovalsRoute, AuditRoute, ChecklistRoute, DeadLetterRoute, DeadLettersRoute,
    FleetRoute, LoginPage, NotFound, OverviewPage, RunbookRoute, RunbooksRoute, ServiceRoute,
    ServicesRoute, UsersRoute,
};
use crate::session::Session;
use leptos::prelude::*;
use leptos_meta::{Title, provide_meta_context};
use leptos_router::{
    Lazy, SsrMode,
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
                    // The landing page is in the main bundle; every other
                    // page is a lazy route, its code a module of its own that
                    // the browser loads on the first visit (see pages::lazy).
                    <Route path=path!("") view=OverviewPage />
                    <Route path=path!("/services") view={Lazy::<ServicesRoute>::new()} />
                    <Route path=path!("/services/:name/:env") view={Lazy::<ServiceRoute>::new()} />
                    <Route
                        path=path!("/services/:name/:env/dead-letters")
                        view={Lazy::<DeadLettersRoute>::new()}
                    />
                    <Route path=path!("/dead-letters/:id") view={Lazy::<DeadLetterRoute>::new()} />
                    <Route path=path!("/fleet") view={Lazy::<FleetRoute>::new()} />
                    <Route path=path!("/runbooks") view={Lazy::<RunbooksRoute>::new()} />
                    <Route path=path!("/runbooks/:slug") view={Lazy::<RunbookRoute>::new()} />
                    <Route
                        path=path!("/runbooks/:slug/versions/:v")
                        view={Lazy::<RunbookRoute>::new()}
                    />
                    <Route path=path!("/checklists/:id") view={Lazy::<ChecklistRoute>::new()} />
                    <Route path=path!("/alerts") view={Lazy::<AlertsRoute>::new()} />
                    <Route path=path!("/approvals") view={Lazy::<ApprovalsRoute>::new()} />
                    <Route path=path!("/users") view={Lazy::<UsersRoute>::new()} />
                    <Route path=path!("/audit") view={Lazy::<AuditRoute>::new()} />
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

    /// A page rendered alone, as the server renders it (not hydrated).
    /// Only the server build renders to HTML, so only its tests use this.
    #[cfg(all(test, feature = "ssr"))]
    pub fn provide_unhydrated() {
        provide_context(Hydrated(signal(false).0));
    }
}

/// Provides [`Hydrated`], which [`hydration_finished`] sets.
///
/// Not an effect: hydration is asynchronous (a lazy route's module may
/// still be loading), and effects run while it waits, before the page's
/// controls have been hydrated; a control hydrated after the signal turned
/// would never see it turn.
fn mark_body_when_hydrated() {
    let (hydrated, set_hydrated) = signal(false);
    provide_context(Hydrated(hydrated));
    #[cfg(feature = "hydrate")]
    MARK_HYDRATED.set(Some(set_hydrated));
    #[cfg(not(feature = "hydrate"))]
    let _ = set_hydrated;
}

#[cfg(feature = "hydrate")]
thread_local! {
    static MARK_HYDRATED: std::cell::Cell<Option<WriteSignal<bool>>> =
        const { std::cell::Cell::new(None) };
}

/// Called once hydration has walked the whole page: sets
/// `data-hydrated="true"` on `<body>` and turns [`Hydrated`] on.
///
/// Clicks before hydration are lost (or, on the login form, become a full
/// page post), so browser tests wait for the attribute. The server never
/// calls this, so server-rendered HTML never carries it.
#[cfg(feature = "hydrate")]
pub(crate) fn hydration_finished() {
    if let Some(body) = document().body() {
        // Failing to set an attribute on <body> has no useful recovery.
        let _ = body.set_attribute("data-hydrated", "true");
    }
    if let Some(set_hydrated) = MARK_HYDRATED.take() {
        set_hydrated.set(true);
    }
}
