//! The goals' service level objectives and the canary analysis that judges
//! canaries on them, inside the Goals section.
//!
//! An objective's indicator is a tagged enum whose one parameter depends on
//! its kind, so the table has a kind column and a "measures" cell that
//! shows the kind's own control; changing the kind keeps the row's id,
//! target and window.

use super::options::DEGRADED_STATUSES;
use crate::components::fields::{
    Check, CheckList, Choice, Doc, Field, Issues, Options, field_id, from_wire, lens, num32,
    opt_text, toggle_in, wire,
};
use crate::components::keyed_table::{
    AddButton, Column, Input, KeyedTable, Row, Table, list_keys, remove_at, row_number,
};
use leptos::prelude::*;
use shared::policy::{CanaryAnalysis, Indicator, Objective, Policy, SafetyViolation};
use std::sync::Arc;

const KINDS: Options = &[
    ("latency", "latency"),
    ("availability", "availability"),
    ("quality", "quality (nothing degraded)"),
    ("safety", "safety (never)"),
];

/// The latency histogram's bounds (`shared::protocol::LATENCY_BUCKETS_MS`
/// without the open last one): only these count exactly, so the editor
/// offers no other. A test holds the two lists together.
const LATENCY_THRESHOLDS: Options = &[
    ("1", "1 ms"),
    ("2", "2 ms"),
    ("5", "5 ms"),
    ("10", "10 ms"),
    ("20", "20 ms"),
    ("50", "50 ms"),
    ("100", "100 ms"),
    ("200", "200 ms"),
    ("500", "500 ms"),
    ("1000", "1 s"),
    ("2000", "2 s"),
    ("5000", "5 s"),
    ("10000", "10 s"),
    ("20000", "20 s"),
    ("60000", "60 s"),
];

const VIOLATIONS: Options = &SafetyViolation::OPTIONS;

fn find<'a>(p: &'a Policy, k: &str) -> Option<&'a Objective> {
    p.goals.as_ref()?.objectives.get(k.parse::<usize>().ok()?)
}

fn find_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut Objective> {
    p.goals
        .as_mut()?
        .objectives
        .get_mut(k.parse::<usize>().ok()?)
}

/// The indicator of `kind`, keeping the current one when it is already of
/// that kind (so re-choosing it loses no threshold).
fn indicator_of(kind: &str, current: &Indicator) -> Result<Indicator, String> {
    if current.kind() == kind {
        return Ok(current.clone());
    }
    Ok(match kind {
        "latency" => Indicator::Latency {
            threshold_ms: 1_000,
        },
        "availability" => Indicator::Availability {
            allowed: Vec::new(),
        },
        "quality" => Indicator::Quality,
        "safety" => Indicator::Safety {
            violation: SafetyViolation::UnauthorizedRetrieval,
        },
        other => return Err(format!("`{other}` is not one of the choices")),
    })
}

/// Sets the kind, and moves the target to one the kind accepts: a safety
/// goal's is 10000, and 10000 leaves any other objective no budget.
fn set_kind(o: &mut Objective, kind: &str) -> Result<(), String> {
    let next = indicator_of(kind, &o.indicator)?;
    let was_safety = matches!(o.indicator, Indicator::Safety { .. });
    let is_safety = matches!(next, Indicator::Safety { .. });
    if is_safety {
        o.target_bp = 10_000;
    } else if was_safety {
        o.target_bp = 9_900;
    }
    o.indicator = next;
    Ok(())
}

static OBJECTIVES: Table<Objective> = Table {
    test: "editor-objectives",
    row_test: "editor-objective",
    key_title: "",
    noun: "objective",
    keys: |p| {
        p.goals
            .as_ref()
            .map(|g| list_keys(&g.objectives))
            .unwrap_or_default()
    },
    path: |k| format!("goals.objectives.{k}"),
    name: row_number,
    find,
    find_mut,
    remove: |p, k| {
        if let Some(g) = p.goals.as_mut() {
            remove_at(&mut g.objectives, k);
        }
    },
    row_issues: &[],
    columns: &[
        Column::new(
            "Id",
            "id",
            Input::Text(
                |o| o.id.clone(),
                |o, t| {
                    o.id = t.trim().to_owned();
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Kind",
            "indicator.kind",
            Input::Choice(|o| o.indicator.kind().to_owned(), set_kind, KINDS),
        ),
        Column::new("Good when", "indicator", Input::Custom(measure_cell)),
        Column::new("Target", "target_bp", Input::Custom(target_cell)),
        Column::new(
            "Window (days)",
            "window_days",
            Input::Number(
                |o| o.window_days.to_string(),
                |o, t| {
                    o.window_days = num32(t)?;
                    Ok(())
                },
            ),
        ),
        Column::below(
            "Runbook",
            "runbook",
            Input::Text(
                |o| o.runbook.clone().unwrap_or_default(),
                |o, t| {
                    o.runbook = opt_text(t.trim());
                    Ok(())
                },
            ),
        ),
    ],
    empty: "No objectives: no error budgets, burn-rate alerts or canary analysis.",
    extra: None,
    footer: None,
};

/// What makes a request good, by kind: the latency bound, the degraded
/// statuses that still count as available, or the safety rule.
fn measure_cell(ed: Doc, row: &Row) -> AnyView {
    let key = row.key.clone();
    let (path, label) = (row.path.clone(), row.label("Good when"));
    let k = key.clone();
    let kind = Memo::new(move |_| {
        ed.policy
            .with(|p| find(p, &k).map_or("", |o| o.indicator.kind()))
    });
    let draw = move || match kind.get() {
        "latency" => {
            let lens = lens(
                &key,
                find,
                find_mut,
                |o| match o.indicator {
                    Indicator::Latency { threshold_ms } => threshold_ms.to_string(),
                    _ => String::new(),
                },
                |o, t| {
                    if let Indicator::Latency { threshold_ms } = &mut o.indicator {
                        *threshold_ms = t.parse().map_err(|_| "choose a bound".to_owned())?;
                    }
                    Ok(())
                },
            );
            view! {
                <Choice
                    ed
                    path=format!("{path}.indicator.threshold_ms")
                    label=format!("{label}: answered within")
                    lens
                    options=LATENCY_THRESHOLDS
                />
            }
            .into_any()
        }
        "availability" => {
            let (k1, k2) = (key.clone(), key.clone());
            view! {
                <span class="small muted">"normal, or"</span>
                <CheckList
                    ed
                    path=format!("{path}.indicator.allowed")
                    label=format!("{label}: degraded statuses that count as available")
                    options=DEGRADED_STATUSES
                    get=Arc::new(move |p| match find(p, &k1).map(|o| &o.indicator) {
                        Some(Indicator::Availability { allowed }) => allowed.iter().map(wire).collect(),
                        _ => Vec::new(),
                    })
                    set=Arc::new(move |p, name, on| {
                        if let Some(Indicator::Availability { allowed }) = find_mut(p, &k2).map(|o| &mut o.indicator) {
                            toggle_in(allowed, name, on);
                        }
                    })
                />
            }
            .into_any()
        }
        "safety" => {
            let lens = lens(
                &key,
                find,
                find_mut,
                |o| match &o.indicator {
                    Indicator::Safety { violation } => wire(violation),
                    _ => String::new(),
                },
                |o, t| {
                    if let Indicator::Safety { violation } = &mut o.indicator {
                        *violation = from_wire(t)?;
                    }
                    Ok(())
                },
            );
            view! {
                <Choice
                    ed
                    path=format!("{path}.indicator.violation")
                    label=format!("{label}: never")
                    lens
                    options=VIOLATIONS
                />
            }
            .into_any()
        }
        _ => view! { <span class="small muted">"answered at full quality"</span> }.into_any(),
    };
    view! { <div class="stack">{draw}</div> }.into_any()
}

/// The target in basis points, with the percentage it means beside it.
fn target_cell(ed: Doc, row: &Row) -> AnyView {
    let k = row.key.clone();
    let lens = lens(
        &row.key,
        find,
        find_mut,
        |o| o.target_bp.to_string(),
        |o, t| {
            o.target_bp = num32(t)?;
            Ok(())
        },
    );
    let percent = move || {
        ed.policy.with(|p| {
            find(p, &k).map(|o| {
                let bp = o.target_bp;
                format!("= {}.{:02} %", bp / 100, bp % 100)
            })
        })
    };
    view! {
        <div class="stack">
            <Field
                ed
                path=format!("{}.target_bp", row.path)
                label=row.label("Target (basis points)")
                lens
                numeric=true
                placeholder="9950"
            />
            <span class="small muted numeric">{percent}</span>
        </div>
    }
    .into_any()
}

fn new_objective(p: &Policy) -> Objective {
    let taken = |id: &str| {
        p.goals
            .as_ref()
            .is_some_and(|g| g.objectives.iter().any(|o| o.id == id))
    };
    let id = (1..)
        .map(|n| {
            if n == 1 {
                "availability".to_owned()
            } else {
                format!("availability-{n}")
            }
        })
        .find(|id| !taken(id))
        .unwrap_or_default();
    Objective {
        id,
        indicator: Indicator::Availability {
            allowed: Vec::new(),
        },
        target_bp: 9_950,
        window_days: 28,
        runbook: None,
    }
}

/// The objectives table and the canary analysis, for the Goals section
/// (drawn only while the policy has goals).
#[component]
pub fn ObjectivesEditor(ed: Doc) -> impl IntoView {
    view! {
        <h3 class="subsection-title" id="objectives-title">"Service level objectives"</h3>
        <p class="muted small">
            "Each objective counts good requests over all requests in a rolling window; the target (in basis points: 9950 = 99.50 %) leaves the rest as error budget. Safety goals allow no violation at all."
        </p>
        <Issues ed path="goals.objectives" />
        <KeyedTable ed table=&OBJECTIVES labelled_by="objectives-title" />
        <AddButton
            ed
            test="add-objective"
            label="Add objective"
            add=|p| {
                let o = new_objective(p);
                if let Some(g) = p.goals.as_mut() {
                    g.objectives.push(o);
                }
            }
        />
        <CanaryEditor ed />
    }
    .into_any()
}

/// Reads or writes one number of the canary analysis, if it is there.
fn canary_number(
    get: fn(&CanaryAnalysis) -> u32,
    set: fn(&mut CanaryAnalysis, u32),
) -> (
    crate::components::fields::Getter,
    crate::components::fields::Setter,
) {
    (
        Arc::new(move |p: &Policy| {
            p.goals
                .as_ref()
                .and_then(|g| g.canary.as_ref())
                .map(|c| get(c).to_string())
                .unwrap_or_default()
        }),
        Arc::new(move |p: &mut Policy, t: &str| {
            let n = num32(t)?;
            if let Some(c) = p.goals.as_mut().and_then(|g| g.canary.as_mut()) {
                set(c, n);
            }
            Ok(())
        }),
    )
}

fn canary_flag(
    get: fn(&CanaryAnalysis) -> bool,
    set: fn(&mut CanaryAnalysis, bool),
) -> (
    crate::components::fields::GetBool,
    crate::components::fields::SetBool,
) {
    (
        Arc::new(move |p: &Policy| {
            p.goals
                .as_ref()
                .and_then(|g| g.canary.as_ref())
                .is_some_and(get)
        }),
        Arc::new(move |p: &mut Policy, on: bool| {
            if let Some(c) = p.goals.as_mut().and_then(|g| g.canary.as_mut()) {
                set(c, on);
            }
        }),
    )
}

#[component]
fn CanaryEditor(ed: Doc) -> impl IntoView {
    let enabled = Memo::new(move |_| {
        ed.policy
            .with(|p| p.goals.as_ref().is_some_and(|g| g.canary.is_some()))
    });
    let switch_id = field_id("goals.canary");
    let toggle = move |ev| {
        let on = event_target_checked(&ev);
        ed.edit(|p| {
            if let Some(g) = p.goals.as_mut() {
                g.canary = on.then(CanaryAnalysis::default);
            }
        });
    };
    let fields = move || {
        enabled.get().then(|| {
            view! {
                <div class="form-grid">
                    <Field
                        ed
                        path="goals.canary.max_burn_ratio_percent"
                        label="Abort above this burn ratio (%, canary over stable; 200 = twice as fast)"
                        lens=canary_number(|c| c.max_burn_ratio_percent, |c, n| c.max_burn_ratio_percent = n)
                        numeric=true
                        visible_label=true
                    />
                    <Field
                        ed
                        path="goals.canary.min_requests"
                        label="Judge after (canary requests)"
                        lens=canary_number(|c| c.min_requests, |c, n| c.min_requests = n)
                        numeric=true
                        visible_label=true
                    />
                    <Field
                        ed
                        path="goals.canary.bake_minutes"
                        label="Bake time (minutes)"
                        lens=canary_number(|c| c.bake_minutes, |c, n| c.bake_minutes = n)
                        numeric=true
                        visible_label=true
                    />
                    <Check
                        ed
                        path="goals.canary.auto_abort"
                        label="Abort a failing canary without waiting for a person"
                        lens=canary_flag(|c| c.auto_abort, |c, on| c.auto_abort = on)
                        visible_label=true
                    />
                    <Check
                        ed
                        path="goals.canary.auto_promote"
                        label="Promote a canary that held for its bake time"
                        lens=canary_flag(|c| c.auto_promote, |c, on| c.auto_promote = on)
                        visible_label=true
                    />
                </div>
            }
        })
    };
    view! {
        <h3 class="subsection-title">"Canary analysis"</h3>
        <div class="section-toggle">
            <input
                id=switch_id.clone()
                type="checkbox"
                data-test="editor-goals-canary-enabled"
                prop:checked=move || enabled.get()
                on:change=toggle
            />
            <label for=switch_id>"Judge canaries on the objectives"</label>
        </div>
        <Issues ed path="goals.canary" />
        {fields}
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_the_histograms_bounds() {
        let bounds = shared::protocol::LATENCY_BUCKETS_MS;
        let offered: Vec<u64> = LATENCY_THRESHOLDS
            .iter()
            .map(|(v, _)| v.parse().unwrap())
            .collect();
        assert_eq!(offered, bounds[..bounds.len() - 1]);
    }

    #[test]
    fn changing_the_kind_keeps_what_it_can_and_fixes_the_target() {
        let mut o = Objective {
            id: "lat".into(),
            indicator: Indicator::Latency { threshold_ms: 500 },
            target_bp: 9_500,
            window_days: 7,
            runbook: None,
        };
        set_kind(&mut o, "latency").unwrap();
        assert_eq!(o.indicator, Indicator::Latency { threshold_ms: 500 });
        set_kind(&mut o, "safety").unwrap();
        assert_eq!(o.target_bp, 10_000);
        set_kind(&mut o, "quality").unwrap();
        assert_eq!(
            (o.indicator.clone(), o.target_bp),
            (Indicator::Quality, 9_900)
        );
        assert_eq!(o.window_days, 7);
        assert!(set_kind(&mut o, "junk").is_err());
    }
}
