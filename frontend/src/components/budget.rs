//! Error budgets in words and colours, shared by the service page's
//! objectives and the overview's cards; and the overview's per-card line.
//!
//! Budgets come from the server in basis points of the budget (10000 is
//! untouched, 0 spent, below zero overspent): the server computes them from
//! the persisted rollups, so every page shows the same figure.

use crate::api::fleet_objectives;
use crate::time::age;
use leptos::prelude::*;
use serde_json::Value;

/// How often the overview asks for the budgets again. Budgets move slowly
/// (they cover days), but an automatic canary rollback should show soon.
const FLEET_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

/// A budget's state: `healthy`, `low` (under a quarter left) or `spent`
/// (nothing left). The key is the CSS class suffix and `data-state`.
pub fn budget_state(remaining_bp: i64) -> &'static str {
    if remaining_bp <= 0 {
        "spent"
    } else if remaining_bp < 2_500 {
        "low"
    } else {
        "healthy"
    }
}

/// Basis points as a percentage with two decimals: 9950 → `99.50 %`.
pub fn bp_percent(bp: i64) -> String {
    let sign = if bp < 0 { "−" } else { "" };
    let a = bp.unsigned_abs();
    format!("{sign}{}.{:02} %", a / 100, a % 100)
}

/// The budget left in words: `73.4 % left`, `spent`, `overspent by 12.0 %`.
pub fn budget_text(remaining_bp: i64) -> String {
    let one_decimal = |bp: u64| format!("{}.{} %", bp / 100, bp % 100 / 10);
    match remaining_bp {
        0 => "spent".to_owned(),
        bp if bp < 0 => format!("overspent by {}", one_decimal(bp.unsigned_abs())),
        bp => format!("{} left", one_decimal(bp as u64)),
    }
}

/// What the analysis did, as a sentence start: "rolled back" or "promoted".
pub fn decision_text(decision: &str) -> &'static str {
    match decision {
        "aborted" => "rolled back",
        "promoted" => "promoted",
        _ => "decided on",
    }
}

/// The overview's budgets: one request for every card, made in the
/// browser after hydration and again every [`FLEET_REFRESH`]. Provided as
/// context by the overview, read by each [`CardBudget`].
///
/// Read as a JSON value rather than as [`shared::api::FleetObjectives`]:
/// the overview is in the main bundle, which every page downloads first,
/// and the value's reader is already there (error bodies use it), where a
/// typed reader would add its own code for a handful of fields.
///
/// A plain signal filled by a fetch on a timer rather than a `Remote`: each
/// `Remote` of a new type adds its own copy of that machinery to the main
/// bundle, and the cards need none of it (while loading, or after an error,
/// they draw no line; the overview tells a signed-out session already).
#[derive(Clone, Copy)]
pub struct FleetBudgets(RwSignal<Option<Value>>);

impl FleetBudgets {
    /// Starts loading and provides the budgets to the cards below.
    pub fn provide() {
        let fleet = RwSignal::new(None::<Value>);
        let load = move || {
            leptos::task::spawn_local(async move {
                if let Ok(value) = fleet_objectives::<Value>().await {
                    // The page may be gone by the time the answer arrives.
                    fleet.try_set(Some(value));
                }
            });
        };
        // Effects run only in the browser, so the server never fetches.
        Effect::new(move |_| {
            load();
            if let Ok(handle) = set_interval_with_handle(load, FLEET_REFRESH) {
                on_cleanup(move || handle.clear());
            }
        });
        provide_context(FleetBudgets(fleet));
    }
}

/// What a card draws: the budget line's state, value and words, and the
/// last canary decision's kind, words and reason.
struct CardFigures {
    state: &'static str,
    remaining_bp: i64,
    budget: String,
    verdict: Option<(String, String, String)>,
}

/// The card's figures out of `GET /api/v1/objectives` (a
/// [`shared::api::FleetObjectives`]); `None` when the service has no
/// objectives.
fn card_figures(fleet: &Value, name: &str, env: &str) -> Option<CardFigures> {
    let b = fleet["services"]
        .as_array()?
        .iter()
        .find(|b| b["service"] == name && b["environment"] == env)?;
    let remaining_bp = b["budget_remaining_bp"].as_i64()?;
    let violations = b["violations"].as_u64().unwrap_or(0);
    let mut budget = format!(
        "Error budget: {} ({})",
        budget_text(remaining_bp),
        b["tightest"].as_str().unwrap_or_default()
    );
    if violations > 0 {
        budget.push_str(&format!(" · safety violations: {violations}"));
    }
    let verdict = b.get("last_canary_verdict").and_then(|v| {
        let decision = v["decision"].as_str()?.to_owned();
        let ago = fleet["as_of_ms"].as_i64()? - v["decided_at_ms"].as_i64()?;
        let words = format!(
            "Canary v{} {} automatically {} ago: ",
            v["canary_version"].as_u64()?,
            decision_text(&decision),
            age(ago),
        );
        Some((decision, words, v["reason"].as_str()?.to_owned()))
    });
    Some(CardFigures {
        state: budget_state(remaining_bp),
        remaining_bp,
        budget,
        verdict,
    })
}

/// One card's tightest budget and the last automatic canary decision, if
/// the service has objectives. Draws nothing until the budgets arrive (the
/// server renders the cards without them), or without [`FleetBudgets`].
/// Written as markup, as the firing-alerts banner is: the main bundle
/// already has the code for a memo of a string, where a view of its own
/// would add its own.
#[component]
pub fn CardBudget(name: String, env: String) -> impl IntoView {
    let Some(FleetBudgets(fleet)) = use_context::<FleetBudgets>() else {
        return ().into_any();
    };
    let html = Memo::new(move |_| {
        fleet.with(|f| {
            f.as_ref()
                .map(|f| card_html(f, &name, &env))
                .unwrap_or_default()
        })
    });
    view! { <div aria-live="polite" inner_html=move || html.get()></div> }.into_any()
}

/// The card's lines; every value from outside escaped.
fn card_html(fleet: &Value, name: &str, env: &str) -> String {
    use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
    let Some(f) = card_figures(fleet, name, env) else {
        return String::new();
    };
    let prefix = attr(&format!("{name}-{env}")).into_owned();
    let mut html = format!(
        r#"<p class="fleet-budget budget-{state}" data-test="budget-{prefix}" data-state="{state}" data-value="{value}">{budget}</p>"#,
        state = f.state,
        value = f.remaining_bp,
        budget = text(&f.budget),
    );
    if let Some((decision, words, reason)) = f.verdict {
        html.push_str(&format!(
            r#"<p class="fleet-canary{bad}" data-test="canary-verdict-{prefix}" data-decision="{decision}">{words}<span data-test="canary-reason-{prefix}">{reason}</span></p>"#,
            bad = if decision == "aborted" { " is-bad" } else { "" },
            decision = attr(&decision),
            words = text(&words),
            reason = text(&reason),
        ));
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_have_three_states() {
        assert_eq!(budget_state(10_000), "healthy");
        assert_eq!(budget_state(2_500), "healthy");
        assert_eq!(budget_state(2_499), "low");
        assert_eq!(budget_state(1), "low");
        assert_eq!(budget_state(0), "spent");
        assert_eq!(budget_state(-300), "spent");
    }

    #[test]
    fn budgets_read_as_words() {
        assert_eq!(budget_text(10_000), "100.0 % left");
        assert_eq!(budget_text(7_345), "73.4 % left");
        assert_eq!(budget_text(0), "spent");
        assert_eq!(budget_text(-1_200), "overspent by 12.0 %");
        assert_eq!(bp_percent(9_950), "99.50 %");
        assert_eq!(bp_percent(5), "0.05 %");
        assert_eq!(bp_percent(-250), "−2.50 %");
    }

    #[test]
    fn a_card_reads_its_service_and_the_last_decision() {
        let fleet = serde_json::json!({
            "as_of_ms": 600_000,
            "services": [
                {"service": "other", "environment": "prod", "tightest": "x", "budget_remaining_bp": 1, "violations": 0},
                {"service": "rag", "environment": "prod", "tightest": "full-quality",
                 "budget_remaining_bp": 2_000, "violations": 1,
                 "last_canary_verdict": {"canary_version": 2, "stable_version": 1, "decision": "aborted",
                    "reason": "full-quality burns 10x", "decided_at_ms": 480_000}},
            ],
        });
        let f = card_figures(&fleet, "rag", "prod").unwrap();
        assert_eq!((f.state, f.remaining_bp), ("low", 2_000));
        assert_eq!(
            f.budget,
            "Error budget: 20.0 % left (full-quality) · safety violations: 1"
        );
        assert_eq!(
            f.verdict,
            Some((
                "aborted".to_owned(),
                "Canary v2 rolled back automatically 2 min ago: ".to_owned(),
                "full-quality burns 10x".to_owned()
            ))
        );
        assert!(card_figures(&fleet, "rag", "staging").is_none());
        let html = card_html(&fleet, "rag", "prod");
        assert!(html.starts_with(r#"<p class="fleet-budget budget-low" data-test="budget-rag-prod" data-state="low" data-value="2000">"#), "{html}");
        assert!(
            html.contains(r#"data-decision="aborted">Canary v2 rolled back"#),
            "{html}"
        );
        assert!(
            card_figures(&fleet, "other", "prod")
                .unwrap()
                .verdict
                .is_none()
        );
    }
}
