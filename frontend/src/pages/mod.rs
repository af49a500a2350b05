//! One module per route.

mod alerts;
mod approvals;
mod audit;
mod checklist;
mod dead_letter;
mod dead_letters;
mod fleet;
mod lazy;
mod login;
mod not_found;
mod overview;
mod runbook;
mod runbooks;
mod service;
mod services;
mod users;

use alerts::AlertsPage;
use approvals::ApprovalsPage;
use audit::AuditPage;
use checklist::ChecklistPage;
use dead_letter::DeadLetterPage;
use dead_letters::DeadLettersPage;
use fleet::FleetPage;
pub use lazy::{
    AlertsRoute, ApprovalsRoute, AuditRoute, ChecklistRoute, DeadLetterRoute, DeadLettersRoute,
    FleetRoute, RunbookRoute, RunbooksRoute, ServiceRoute, ServicesRoute, UsersRoute,
};
pub use login::LoginPage;
pub use not_found::NotFound;
pub use overview::OverviewPage;
use runbook::RunbookPage;
use runbooks::RunbooksPage;
use service::ServicePage;
use services::ServicesPage;
use users::UsersPage;

/// The service and environment of a `/services/:name/:env/…` page.
fn service_in_path() -> leptos::prelude::Memo<(String, String)> {
    use leptos::prelude::*;
    let params = leptos_router::hooks::use_params_map();
    Memo::new(move |_| {
        params.with(|p| {
            (
                p.get("name").unwrap_or_default(),
                p.get("env").unwrap_or_default(),
            )
        })
    })
}
