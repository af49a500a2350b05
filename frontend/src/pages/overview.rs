use crate::layout::PageHeader;
use leptos::prelude::*;
use leptos_meta::Title;

/// The fleet at a glance. No agent reports to this server yet, so this says
/// so plainly and says how that changes, rather than showing empty charts.
#[component]
pub fn OverviewPage() -> impl IntoView {
    view! {
        <Title text="Overview" />
        <PageHeader
            title="Overview"
            lede="Every service that runs the Ballast agent, with the policy it enforces and how it is holding up."
        />
        <section class="empty-state" data-test="overview-empty" aria-labelledby="overview-empty-title">
            <div class="empty-state-icon" aria-hidden="true"></div>
            <h2 id="overview-empty-title">"No services report yet."</h2>
            <p>
                "Services appear here once their agent connects. Until then there is nothing to show: no breakers, no fallbacks, no load."
            </p>
            <ol class="steps">
                <li>
                    "An admin creates a service token for the service and its environment (" <code>"ballast token"</code>
                    " on the server's command line)."
                </li>
                <li>"The service embeds the Ballast agent and starts with that token and this server's address."</li>
                <li>
                    "The agent connects, pulls its policy and starts reporting; the service shows up here within seconds."
                </li>
            </ol>
        </section>
    }
}
