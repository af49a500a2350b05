//! One module per route.

mod audit;
mod login;
mod not_found;
mod overview;
mod users;

pub use audit::AuditPage;
pub use login::LoginPage;
pub use not_found::NotFound;
pub use overview::OverviewPage;
pub use users::UsersPage;
