//! The dashboard: Leptos server-side rendering, its server functions, and the
//! built assets under `/pkg`.
//!
//! Pages need a signed-in user, except `/login`. The session is resolved here,
//! once per request, and handed to the Leptos app as `shared::api::Me` in the
//! request's extensions; the app never sees the token.

use crate::app::AppState;
use crate::auth::{Principal, authenticate};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use leptos::config::LeptosOptions;
use leptos_axum::{AxumRouteListing, LeptosRoutes, generate_route_list};
use std::path::Path;
use std::sync::OnceLock;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// Where the dashboard's server functions are mounted (see the `frontend` crate).
pub const SERVER_FN_PREFIX: &str = "/_ballast/fn/";
/// The only page that needs no session.
pub const LOGIN_PATH: &str = "/login";

/// Leptos' view of the built site: `SITE_ROOT/pkg/ballast.js` and
/// `ballast_bg.wasm`, as `scripts/build-site` lays them out.
pub fn leptos_options(site_root: &Path) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("ballast")
        .site_root(site_root.display().to_string())
        .site_pkg_dir("pkg")
        .build()
}

/// Pages, server functions and assets.
pub fn router(state: &AppState) -> Router<AppState> {
    let options = state.leptos.clone();
    let shell_options = options.clone();
    let routes = route_list();
    let fleet = fleet_source(state.clone());
    let pages = Router::new()
        .leptos_routes_with_context(
            state,
            routes,
            move || leptos::prelude::provide_context(fleet.clone()),
            move || frontend::shell(shell_options.clone()),
        )
        .fallback(not_found_page)
        .layer(middleware::from_fn_with_state(state.clone(), page_session));

    let pkg_dir = Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    // The bundle's names do not change between builds, so browsers must
    // revalidate; ETag/Last-Modified make that a cheap 304.
    let assets = Router::new()
        .nest_service("/pkg", ServeDir::new(pkg_dir))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ));
    pages.merge(assets)
}

/// The dashboard's routes, generated once per process.
///
/// Generating them renders the app with resource loading suppressed, and
/// Leptos keeps that switch in one process-wide flag: any page rendered on
/// another thread meanwhile would wait for its resources forever. A server
/// builds its router once, before it serves; tests build many routers while
/// other tests render, so without this a render hung at random.
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES
        .get_or_init(|| generate_route_list(frontend::App))
        .clone()
}

/// The overview's first render reads the fleet straight from the live
/// aggregation, as `GET /api/v1/fleet/live` does; the page then follows the
/// stream. Server errors are logged here and reach the page only as a
/// generic message, like any 5xx.
fn fleet_source(state: AppState) -> frontend::FleetSource {
    frontend::FleetSource(std::sync::Arc::new(move || {
        let state = state.clone();
        Box::pin(async move {
            crate::telemetry::fleet_view(&state).await.map_err(|e| {
                tracing::error!(error = %e.message, "rendering the fleet view failed");
                "the fleet view is unavailable".to_owned()
            })
        })
    }))
}

async fn not_found_page(State(state): State<AppState>, req: Request) -> Response {
    let options = state.leptos.clone();
    let render = leptos_axum::render_app_to_stream(move || frontend::shell(options.clone()));
    let mut response = render(req).await;
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// Resolves the session cookie for pages and server functions. Pages other
/// than `/login` send a visitor without a session to `/login`; a signed-in
/// visitor to `/login` goes to the overview.
async fn page_session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let now = state.clock.now_ms();
    let me = match authenticate(req.headers(), &state.store, &state.auth, now).await {
        Ok(Principal::User(user)) => Some(user.me),
        Ok(Principal::Service(_)) => None,
        Err(e) if e.status.is_server_error() => return e.into_response(),
        Err(_) => None,
    };
    let path = req.uri().path().to_owned();
    let is_page_view =
        matches!(*req.method(), Method::GET | Method::HEAD) && !path.starts_with(SERVER_FN_PREFIX);
    if is_page_view {
        match (&me, path == LOGIN_PATH) {
            (Some(_), true) => return Redirect::to("/").into_response(),
            (None, false) => return Redirect::to(LOGIN_PATH).into_response(),
            _ => {}
        }
    }
    if let Some(me) = me {
        req.extensions_mut().insert(me);
    }
    let mut response = next.run(req).await;
    if is_page_view {
        // Pages show who is signed in; no shared cache may keep them.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
