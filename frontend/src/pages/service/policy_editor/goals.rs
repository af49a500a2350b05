//! What the service promises.

use crate::components::fields::{
    Doc, Field, OptionalSection, in_present, opt_num, opt_num32, show_opt, top,
};
use leptos::prelude::*;
use shared::policy::Goals;

#[component]
pub fn GoalsSection(ed: Doc) -> impl IntoView {
    view! {
        <OptionalSection
            ed
            id="goals"
            title="Goals"
            about="What the service promises. The timeout budget must fit inside the timeout goal; objectives give each promise an error budget, burn-rate alerts and a say over canaries."
            switch="Set goals"
            present=|p| p.goals.is_some()
            add=|p| p.goals = Some(Goals { timeout_ms: Some(10_000), ..Goals::default() })
            remove=|p| p.goals = None
        >
            <div class="form-grid">
                <Field
                    ed
                    path="goals.p95_latency_ms"
                    label="p95 latency (ms)"
                    lens=top(
                        |p| show_opt(p.goals.as_ref().and_then(|g| g.p95_latency_ms)),
                        |p, t| {
                            let n = opt_num(t)?;
                            in_present(&mut p.goals, |g| { g.p95_latency_ms = n; Ok(()) })
                        },
                    )
                    numeric=true
                    visible_label=true
                />
                <Field
                    ed
                    path="goals.timeout_ms"
                    label="Timeout (ms)"
                    lens=top(
                        |p| show_opt(p.goals.as_ref().and_then(|g| g.timeout_ms)),
                        |p, t| {
                            let n = opt_num(t)?;
                            in_present(&mut p.goals, |g| { g.timeout_ms = n; Ok(()) })
                        },
                    )
                    numeric=true
                    visible_label=true
                />
                <Field
                    ed
                    path="goals.availability_bp"
                    label="Availability (basis points, 9950 = 99.50 %)"
                    lens=top(
                        |p| show_opt(p.goals.as_ref().and_then(|g| g.availability_bp)),
                        |p, t| {
                            let n = opt_num32(t)?;
                            in_present(&mut p.goals, |g| { g.availability_bp = n; Ok(()) })
                        },
                    )
                    numeric=true
                    visible_label=true
                />
                <Field
                    ed
                    path="goals.accept_latency_ms"
                    label="Accept within (ms, async work)"
                    lens=top(
                        |p| show_opt(p.goals.as_ref().and_then(|g| g.accept_latency_ms)),
                        |p, t| {
                            let n = opt_num(t)?;
                            in_present(&mut p.goals, |g| { g.accept_latency_ms = n; Ok(()) })
                        },
                    )
                    numeric=true
                    visible_label=true
                />
                <Field
                    ed
                    path="goals.completion_sla_ms"
                    label="Complete within (ms, async work)"
                    lens=top(
                        |p| show_opt(p.goals.as_ref().and_then(|g| g.completion_sla_ms)),
                        |p, t| {
                            let n = opt_num(t)?;
                            in_present(&mut p.goals, |g| { g.completion_sla_ms = n; Ok(()) })
                        },
                    )
                    numeric=true
                    visible_label=true
                />
                <Field
                    ed
                    path="goals.statements"
                    label="Other goals (separated by semicolons)"
                    lens=top(
                        |p| p.goals.as_ref().map(|g| g.statements.join("; ")).unwrap_or_default(),
                        |p, t| {
                            let list = t
                                .split(';')
                                .map(str::trim)
                                .filter(|s| !s.is_empty())
                                .map(str::to_owned)
                                .collect();
                            in_present(&mut p.goals, |g| { g.statements = list; Ok(()) })
                        },
                    )
                    wide=true
                    visible_label=true
                />
            </div>
            <super::objectives::ObjectivesEditor ed />
        </OptionalSection>
    }
    .into_any()
}
