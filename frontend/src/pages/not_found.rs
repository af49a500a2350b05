use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn NotFound() -> impl IntoView {
    // Crawlers, monitors and scripts read the status, not the page.
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found" />
        <main id="main" class="centered-page">
            <div class="card">
                <h1>"Page not found"</h1>
                <p class="lede">"There is no page at this address."</p>
                <p>
                    <a href="/">"Go to the overview"</a>
                </p>
            </div>
        </main>
    }
}
