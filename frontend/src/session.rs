//! Who is signed in, as one value shared by the whole app.

use leptos::prelude::*;
use shared::api::Me;

/// The signed-in user, or `None` without a valid session.
///
/// The server checks the `ballast_session` cookie before any page or server
/// function runs and puts the resulting [`Me`] into the request's extensions;
/// this only reads that verdict, so the rules live in one place.
#[server(prefix = "/_ballast/fn", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<Me>, ServerFnError> {
    use axum::http::request::Parts;
    // Without the request the answer would be a guess; an error shows up
    // as one, where `None` would send a signed-in user back to /login.
    let parts = use_context::<Parts>()
        .ok_or_else(|| ServerFnError::new("the request is not available to current_user"))?;
    Ok(parts.extensions.get::<Me>().cloned())
}

type SessionResource = Resource<Result<Option<Me>, ServerFnError>>;

/// The session as app-wide context.
///
/// A serialized [`Resource`]: the server renders the navigation for the right
/// user and the browser hydrates with that same value instead of asking again.
#[derive(Clone, Copy)]
pub struct Session(SessionResource);

impl Session {
    /// Creates the session resource and provides it to everything below.
    pub fn provide() -> Self {
        let session = Session(Resource::new(|| (), |_| current_user()));
        provide_context(session);
        session
    }

    pub fn expect() -> Self {
        expect_context::<Session>()
    }

    /// The signed-in user, once known. Awaiting this inside a `Suspend`
    /// subscribes to it, so views re-render on sign-in and sign-out.
    pub async fn me(self) -> Result<Option<Me>, ServerFnError> {
        self.0.await
    }

    /// Records a successful login; the login response already says who it
    /// is, so there is nothing to ask the server.
    pub fn signed_in(self, me: Me) {
        self.0.set(Some(Ok(Some(me))));
    }

    /// Records that the session is gone (logout, or the API said 401).
    pub fn signed_out(self) {
        self.0.set(Some(Ok(None)));
    }

    /// Asks the server again, after a failure to find out.
    pub fn reload(self) {
        self.0.refetch();
    }
}
