//! API data that the browser loads after hydration.
//!
//! Deliberately not a `LocalResource` under `<Suspense>`: a local resource
//! makes its enclosing Suspense give up on the server, and with the
//! layout's Async rendering that Suspense is the permission check or the
//! whole layout. Here the server and the hydrating browser both render
//! "loading" (`None`), and an effect, which only ever runs in the browser,
//! fetches afterwards.

use crate::api::ApiError;
use crate::session::Session;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::future::Future;

pub struct Remote<T: Send + Sync + 'static> {
    value: RwSignal<Option<Result<T, ApiError>>>,
    reload: Trigger,
}

impl<T: Send + Sync + 'static> Clone for Remote<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static> Copy for Remote<T> {}

impl<T: Send + Sync + 'static> Remote<T> {
    /// Starts loading with `fetch` once in the browser, and again on each
    /// [`Remote::reload`]. A 401 signs the browser out, so an expired session
    /// leads to the login page rather than to an error panel.
    pub fn new<Fut>(fetch: impl Fn() -> Fut + 'static) -> Self
    where
        Fut: Future<Output = Result<T, ApiError>> + 'static,
    {
        let session = Session::expect();
        let value = RwSignal::new(None);
        let reload = Trigger::new();
        // Only the newest load may write: a slow answer to an older request
        // must not overwrite a fresher one.
        let latest = StoredValue::new(0_u64);
        Effect::new(move |_| {
            reload.track();
            let generation = latest.get_value() + 1;
            latest.set_value(generation);
            let request = fetch();
            spawn_local(async move {
                let result = request.await;
                // The page may be gone by the time the answer arrives.
                if latest.try_get_value() != Some(generation) {
                    return;
                }
                if matches!(&result, Err(e) if e.is_unauthenticated()) {
                    // Nothing may be written after this: signing out tears
                    // the page down, and its views must not wake up first.
                    session.signed_out();
                    return;
                }
                value.try_set(Some(result));
            });
        });
        Remote { value, reload }
    }

    /// `None` while the first load is under way; a reload keeps showing the
    /// previous answer until the next one arrives.
    pub fn get(&self) -> Option<Result<T, ApiError>>
    where
        T: Clone,
    {
        // `try_`: a view being torn down may still ask once.
        self.value.try_get().flatten()
    }

    pub fn reload(&self) {
        self.reload.notify();
    }
}
