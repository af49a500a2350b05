//! The lazy routes: each page here is split out of the main bundle into a
//! module of its own (scripts/build-site), which the browser loads when the
//! route is first shown. The server renders them like any other route.
//!
//! None of them loads data before its module arrives: each page's own
//! resources start when it renders, as they did before the split.
//!
//! On a lazy page loaded directly, the browser fetches the route's modules
//! once the main bundle runs (in parallel, then hydrates). The server does
//! not yet add `<link rel="preload">` for them (observed: no such links in
//! the HTML). By our reading, leptos_integration_utils 0.8.9 looks up the
//! split manifest outside any reactive owner and so never finds it; not
//! verified further. Preloading would save one round trip on such loads.

use super::{
    AlertsPage, ApprovalsPage, AuditPage, ChecklistPage, DeadLetterPage, DeadLettersPage,
    FleetPage, RunbookPage, RunbooksPage, ServicePage, ServicesPage, UsersPage,
};
use leptos::prelude::*;
use leptos_router::{LazyRoute, lazy_route};

/// `/services/:name/:env`: the policy editor, telemetry with its charts,
/// versions and instances; by far the largest page.
pub struct ServiceRoute;

#[lazy_route]
impl LazyRoute for ServiceRoute {
    fn data() -> Self {
        ServiceRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <ServicePage /> }.into_any()
    }
}

/// `/services/:name/:env/dead-letters`: one service's dead-letter queue.
pub struct DeadLettersRoute;

#[lazy_route]
impl LazyRoute for DeadLettersRoute {
    fn data() -> Self {
        DeadLettersRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <DeadLettersPage /> }.into_any()
    }
}

/// `/dead-letters/:id`: one dead letter, its actions and history.
pub struct DeadLetterRoute;

#[lazy_route]
impl LazyRoute for DeadLetterRoute {
    fn data() -> Self {
        DeadLetterRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <DeadLetterPage /> }.into_any()
    }
}

/// `/services`.
pub struct ServicesRoute;

#[lazy_route]
impl LazyRoute for ServicesRoute {
    fn data() -> Self {
        ServicesRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <ServicesPage /> }.into_any()
    }
}

/// `/fleet`.
pub struct FleetRoute;

#[lazy_route]
impl LazyRoute for FleetRoute {
    fn data() -> Self {
        FleetRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <FleetPage /> }.into_any()
    }
}

/// `/approvals`.
pub struct ApprovalsRoute;

#[lazy_route]
impl LazyRoute for ApprovalsRoute {
    fn data() -> Self {
        ApprovalsRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <ApprovalsPage /> }.into_any()
    }
}

/// `/users`.
pub struct UsersRoute;

#[lazy_route]
impl LazyRoute for UsersRoute {
    fn data() -> Self {
        UsersRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <UsersPage /> }.into_any()
    }
}

/// `/audit`.
pub struct AuditRoute;

#[lazy_route]
impl LazyRoute for AuditRoute {
    fn data() -> Self {
        AuditRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <AuditPage /> }.into_any()
    }
}

/// `/runbooks`: the library, open incidents, and a new runbook.
pub struct RunbooksRoute;

#[lazy_route]
impl LazyRoute for RunbooksRoute {
    fn data() -> Self {
        RunbooksRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <RunbooksPage /> }.into_any()
    }
}

/// `/runbooks/:slug` and `/runbooks/:slug/versions/:v`: one runbook, its
/// editor, history and checklists.
pub struct RunbookRoute;

#[lazy_route]
impl LazyRoute for RunbookRoute {
    fn data() -> Self {
        RunbookRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <RunbookPage /> }.into_any()
    }
}

/// `/checklists/:id`: an incident checklist being worked through.
pub struct ChecklistRoute;

#[lazy_route]
impl LazyRoute for ChecklistRoute {
    fn data() -> Self {
        ChecklistRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <ChecklistPage /> }.into_any()
    }
}

/// `/alerts`: firing, pending and resolved alerts, rules, silences and
/// webhooks.
pub struct AlertsRoute;

#[lazy_route]
impl LazyRoute for AlertsRoute {
    fn data() -> Self {
        AlertsRoute
    }

    fn view(_this: Self) -> AnyView {
        view! { <AlertsPage /> }.into_any()
    }
}
