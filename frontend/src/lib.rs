//! Ballast's dashboard: a Leptos app that the server renders (feature `ssr`)
//! and the browser hydrates (feature `hydrate`).
//!
//! The server calls [`shell`] to render every page, mounts the server
//! functions (prefix `/_ballast/fn`) and serves the wasm bundle built from
//! this crate under `/pkg`. Everything the pages show comes from the REST API
//! under `/api/v1`, except the signed-in user, which the server hands to the
//! render through the request's extensions (see [`current_user`]).

// Deep view types (the policy editor) need more than the default 128.
#![recursion_limit = "256"]

mod api;
mod app;
mod components;
mod layout;
mod live;
mod pages;
mod remote;
mod session;
mod time;

pub use app::App;
#[cfg(feature = "ssr")]
pub use live::{FleetFuture, FleetSource};
pub use session::current_user;

use leptos::prelude::*;
use leptos_meta::MetaTags;

/// The whole HTML document around [`App`], rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // Same directory as the wasm bundle, so one static route serves both.
    let stylesheet = format!("/{}/ballast.css", options.site_pkg_dir);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                // An empty icon stops the browser asking for /favicon.ico,
                // which the server would answer with a redirect to /login.
                <link rel="icon" href="data:," />
                <link rel="stylesheet" href=stylesheet />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The browser bundle's entry point, called by the script that
/// [`HydrationScripts`] puts in the page.
///
/// Hydrates asynchronously, because most pages are lazy routes (see
/// [`app`]) whose code is a separate module: on a page loaded directly, the
/// walk over the server's HTML waits for that module. Only when the walk is
/// over is the app marked as hydrated.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    wasm_bindgen_futures::spawn_local(async {
        let body = document().body().expect("the page has a <body>");
        let mounted = leptos::mount::hydrate_from_async(body, App).await;
        app::hydration_finished();
        // The app lives as long as the page.
        mounted.forget();
    });
}
