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

use crate::api::ApiError;
use crate::session::Session;
use leptos::prelude::*;

/// Signs the browser out when an API load answers 401, so that an expired
/// session leads to the login page rather than to an error panel.
fn sign_out_on_401<T: 'static>(resource: LocalResource<Result<T, ApiError>>) {
    let session = Session::expect();
    Effect::new(move |_| {
        let expired = resource.with(|loaded| {
            matches!(loaded, Some(Err(e)) if e.is_unauthenticated())
        });
        if expired {
            session.signed_out();
        }
    });
}
