//! One module per route.

mod approvals;
mod audit;
mod fleet;
mod lazy;
mod login;
mod not_found;
mod overview;
mod service;
mod services;
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
