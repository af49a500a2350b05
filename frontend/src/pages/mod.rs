//! One module per route.

mod approvals;
mod audit;
mod fleet;
mod instances;
mod login;
mod not_found;
mod overview;
mod policy_editor;
mod service;
mod services;
mod telemetry;
mod users;

pub use approvals::ApprovalsPage;
pub use audit::AuditPage;
pub use fleet::FleetPage;
pub use login::LoginPage;
pub use not_found::NotFound;
pub use overview::OverviewPage;
pub use service::ServicePage;
pub use services::ServicesPage;
pub use users::UsersPage;
