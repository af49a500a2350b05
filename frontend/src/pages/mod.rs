//! One module per route.

mod approvals;
mod audit;
mod fleet;
mod instances;
mod lazy;
mod login;
mod not_found;
mod overview;
mod policy_editor;
mod service;
mod services;
mod telemetry;
mod users;

use approvals::ApprovalsPage;
use audit::AuditPage;
use fleet::FleetPage;
pub use lazy::{ApprovalsRoute, AuditRoute, FleetRoute, ServiceRoute, ServicesRoute, UsersRoute};
pub use login::LoginPage;
pub use not_found::NotFound;
pub use overview::OverviewPage;
use service::ServicePage;
use services::ServicesPage;
use users::UsersPage;
