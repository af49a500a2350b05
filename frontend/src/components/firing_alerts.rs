//! The alerts firing now, as every signed-in page sees them: the count on
//! the navigation's Alerts link and the banner at the top of the overview.
//! One request every few seconds serves both; the evaluator on the server
//! runs every 5 s, so asking more often would show nothing new.
//!
//! This is in the main bundle (the layout and the overview use it), which
//! every page downloads first, so it is written to stay small: it reads only
//! the fields it shows, and writes the banner as one string of markup
//! rather than as a view (each view is code in the bundle). The alerts page
//! has the rest.

use crate::api::{self, ApiError};
use crate::remote::Remote;
use leptos::prelude::*;
use serde::Deserialize;
use shared::paths::segment;

/// How often the firing alerts are fetched again.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// What the banner shows of an alert (`shared::api::AlertView` has more).
/// Plain strings: parsing the wire enums would add their code to the main
/// bundle only to turn them back into words.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FiringAlert {
    pub rule: String,
    pub severity: String,
    pub runbook: String,
    pub service: String,
    pub environment: String,
    #[serde(default)]
    pub dependency: Option<String>,
    pub summary: String,
    #[serde(default)]
    pub acknowledged_by: Option<String>,
}

/// The firing alerts, refreshed every few seconds while someone is signed in.
#[derive(Clone, Copy)]
pub struct FiringAlerts(Remote<Vec<FiringAlert>>);

impl FiringAlerts {
    /// Starts fetching, and provides the list to the pages below.
    pub fn provide() -> Self {
        let firing = Remote::new(api::firing_alerts::<FiringAlert>);
        // Effects run only in the browser, so the server never polls.
        Effect::new(move |_| {
            if let Ok(handle) = set_interval_with_handle(move || firing.reload(), REFRESH) {
                on_cleanup(move || handle.clear());
            }
        });
        let alerts = FiringAlerts(firing);
        provide_context(alerts);
        alerts
    }

    /// Asks again now (after an acknowledgement, say), if provided.
    pub fn refresh() {
        if let Some(alerts) = use_context::<FiringAlerts>() {
            alerts.0.reload();
        }
    }

    /// How many fire; 0 while loading or when the server could not say.
    pub fn count(self) -> usize {
        self.with(|list| list.len())
    }

    fn with<R>(self, f: impl FnOnce(&[FiringAlert]) -> R) -> R {
        let list: Option<Result<Vec<FiringAlert>, ApiError>> = self.0.get();
        match list {
            Some(Ok(list)) => f(&list),
            _ => f(&[]),
        }
    }
}

/// A stable name for one alert in `data-test`s: rule, service, environment
/// and, for per-dependency rules, the dependency.
pub fn alert_key(rule: &str, service: &str, env: &str, dependency: Option<&str>) -> String {
    match dependency {
        Some(d) => format!("{rule}-{service}-{env}-{d}"),
        None => format!("{rule}-{service}-{env}"),
    }
}

/// The dashboard's address of a runbook.
pub fn runbook_href(slug: &str) -> String {
    format!("/runbooks/{}", segment(slug))
}

/// The overview's banner: each firing alert in one line, its runbook one
/// click away. Empty while nothing fires. The router follows its links like
/// any other, so they open the runbook without a page load.
#[component]
pub fn FiringBanner() -> impl IntoView {
    let Some(alerts) = use_context::<FiringAlerts>() else {
        return ().into_any();
    };
    // A memo: the list is fetched every few seconds, and the live region
    // must only be rewritten (and read out) when it changes.
    let html = Memo::new(move |_| alerts.with(banner_html));
    view! { <div aria-live="polite" data-test="firing-alerts-region" inner_html=move || html.get()></div> }
        .into_any()
}

/// The banner's markup; every value from outside escaped.
fn banner_html(list: &[FiringAlert]) -> String {
    use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
    if list.is_empty() {
        return String::new();
    }
    let heading = match list.len() {
        1 => "1 alert firing".to_owned(),
        n => format!("{n} alerts firing"),
    };
    let mut html = format!(
        r#"<section class="notice notice-error firing-banner" aria-labelledby="firing-banner-title" data-test="firing-alerts"><h2 id="firing-banner-title" class="notice-title">{heading}</h2><ul class="firing-list">"#
    );
    for a in list {
        let key = alert_key(&a.rule, &a.service, &a.environment, a.dependency.as_deref());
        let place = match &a.dependency {
            Some(d) => format!("{} {} · {d}", a.service, a.environment),
            None => format!("{} {}", a.service, a.environment),
        };
        let acked = a
            .acknowledged_by
            .as_ref()
            .map(|by| {
                format!(
                    r#" <span class="muted">(acknowledged by {})</span>"#,
                    text(by)
                )
            })
            .unwrap_or_default();
        html.push_str(&format!(
            r#"<li data-test="alert-{key}" data-severity="{severity}"><span class="badge badge-bad">{severity_text}</span> <strong>{rule}</strong> on {place}: {summary}{acked} <a href="{href}" data-test="alert-runbook-{key}">Runbook: {runbook}</a></li>"#,
            key = attr(&key),
            severity = attr(&a.severity),
            severity_text = text(&a.severity),
            rule = text(&a.rule),
            place = text(&place),
            summary = text(&a.summary),
            href = attr(&runbook_href(&a.runbook)),
            runbook = text(&a.runbook),
        ));
    }
    html.push_str(
        r#"</ul><p class="small"><a href="/alerts" data-test="firing-alerts-all">All alerts, rules and silences</a></p></section>"#,
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(rule: &str, dependency: Option<&str>) -> FiringAlert {
        FiringAlert {
            rule: rule.into(),
            severity: "page".into(),
            runbook: "ai-reliability-incident".into(),
            service: "rag-answer".into(),
            environment: "prod".into(),
            dependency: dependency.map(Into::into),
            summary: r#"<script>alert("x")</script> & more"#.into(),
            acknowledged_by: None,
        }
    }

    #[test]
    fn nothing_firing_is_no_banner() {
        assert_eq!(banner_html(&[]), "");
    }

    #[test]
    fn each_alert_links_its_runbook_and_outside_text_is_escaped() {
        let html = banner_html(&[
            alert("breaker-open", Some("reranker")),
            alert("shed-rate-high", None),
        ]);
        assert!(html.contains("2 alerts firing"), "{html}");
        assert!(
            html.contains(r#"<a href="/runbooks/ai-reliability-incident" data-test="alert-runbook-breaker-open-rag-answer-prod-reranker">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"data-test="alert-shed-rate-high-rag-answer-prod""#),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
