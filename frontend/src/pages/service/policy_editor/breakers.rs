//! Circuit breakers per dependency.

use super::options::{BREAKER_MODES, FORCED};
use crate::components::fields::{
    Check, Choice, Doc, Field, Section, from_wire, lens, lens_bool, num, num32, opt_text, show_opt,
    wire,
};
use crate::components::keyed_table::{
    AddForDependency, Column, Input, KeyedTable, Row, Table, map_keys, same,
};
use leptos::prelude::*;
use shared::policy::{BreakerMode, BreakerPolicy, Policy, SlowCall};

fn find<'a>(p: &'a Policy, k: &str) -> Option<&'a BreakerPolicy> {
    p.breakers.get(k)
}

fn find_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut BreakerPolicy> {
    p.breakers.get_mut(k)
}

static BREAKERS: Table<BreakerPolicy> = Table {
    test: "editor-breakers",
    row_test: "editor-breaker",
    key_title: "Dependency",
    noun: "",
    keys: |p| map_keys(&p.breakers),
    path: |k| format!("breakers.{k}"),
    name: same,
    find,
    find_mut,
    remove: |p, k| {
        p.breakers.remove(k);
    },
    row_issues: &[],
    columns: &[
        Column::new("Opens on", "mode", Input::Custom(opens_on)),
        Column::new("Slow calls", "slow_call", Input::Custom(slow_calls)),
        Column::new(
            "Cooldown (ms)",
            "cooldown_ms",
            Input::Number(
                |b| b.cooldown_ms.to_string(),
                |b, t| {
                    b.cooldown_ms = num(t)?;
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Half-open probes",
            "half_open_probes",
            Input::Number(
                |b| b.half_open_probes.to_string(),
                |b, t| {
                    b.half_open_probes = num32(t)?;
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Override",
            "forced",
            Input::Choice(
                |b| wire(&b.forced),
                |b, t| {
                    b.forced = from_wire(t)?;
                    Ok(())
                },
                FORCED,
            ),
        ),
        Column::below(
            "Alert rule",
            "alert",
            Input::Text(
                |b| b.alert.clone().unwrap_or_default(),
                |b, t| {
                    b.alert = opt_text(t);
                    Ok(())
                },
            ),
        ),
        Column::below(
            "Runbook",
            "runbook",
            Input::Text(
                |b| b.runbook.clone().unwrap_or_default(),
                |b, t| {
                    b.runbook = opt_text(t);
                    Ok(())
                },
            ),
        ),
    ],
    empty: "No circuit breakers.",
    extra: None,
    footer: None,
};

/// The breaker's mode, and the numbers of that mode.
fn opens_on(ed: Doc, row: &Row) -> AnyView {
    let (key, path) = (row.key.clone(), row.path.clone());
    let k = key.clone();
    let consecutive = Memo::new(move |_| {
        ed.policy.with(|p| {
            find(p, &k).is_some_and(|b| matches!(b.mode, BreakerMode::Consecutive { .. }))
        })
    });
    let mode = lens(
        &key,
        find,
        find_mut,
        |b| match b.mode {
            BreakerMode::Consecutive { .. } => "consecutive".into(),
            BreakerMode::FailureRate { .. } => "failure_rate".into(),
        },
        |b, t| {
            b.mode = match t {
                "consecutive" => BreakerMode::Consecutive { failures: 5 },
                _ => BreakerMode::FailureRate {
                    threshold_percent: 50,
                    window_ms: 30_000,
                    minimum_calls: 20,
                },
            };
            Ok(())
        },
    );
    let fields = move || {
        let field = |field: &str, label: &'static str, get, set| {
            view! {
                <Field
                    ed
                    path=format!("{path}.mode.{field}")
                    label
                    lens=lens(&key, find, find_mut, get, set)
                    numeric=true
                    visible_label=true
                />
            }
        };
        if consecutive.get() {
            field(
                "failures",
                "Failures in a row",
                |b| match b.mode {
                    BreakerMode::Consecutive { failures } => failures.to_string(),
                    _ => String::new(),
                },
                |b, t| {
                    let n = num32(t)?;
                    if let BreakerMode::Consecutive { failures } = &mut b.mode {
                        *failures = n;
                    }
                    Ok(())
                },
            )
            .into_any()
        } else {
            view! {
                {field(
                    "threshold_percent",
                    "Failure rate (%)",
                    |b| match b.mode {
                        BreakerMode::FailureRate { threshold_percent, .. } => threshold_percent.to_string(),
                        _ => String::new(),
                    },
                    |b, t| {
                        let n = num32(t)?;
                        if let BreakerMode::FailureRate { threshold_percent, .. } = &mut b.mode {
                            *threshold_percent = n;
                        }
                        Ok(())
                    },
                )}
                {field(
                    "window_ms",
                    "Window (ms)",
                    |b| match b.mode {
                        BreakerMode::FailureRate { window_ms, .. } => window_ms.to_string(),
                        _ => String::new(),
                    },
                    |b, t| {
                        let n = num(t)?;
                        if let BreakerMode::FailureRate { window_ms, .. } = &mut b.mode {
                            *window_ms = n;
                        }
                        Ok(())
                    },
                )}
                {field(
                    "minimum_calls",
                    "Minimum calls",
                    |b| match b.mode {
                        BreakerMode::FailureRate { minimum_calls, .. } => minimum_calls.to_string(),
                        _ => String::new(),
                    },
                    |b, t| {
                        let n = num32(t)?;
                        if let BreakerMode::FailureRate { minimum_calls, .. } = &mut b.mode {
                            *minimum_calls = n;
                        }
                        Ok(())
                    },
                )}
            }
            .into_any()
        }
    };
    view! {
        <div class="stack">
            <Choice
                ed
                path=format!("{}.mode", row.path)
                label=row.label("When the breaker opens")
                lens=mode
                options=BREAKER_MODES
            />
            {fields}
        </div>
    }
    .into_any()
}

/// Whether slow calls count as failures, and how slow and how many.
fn slow_calls(ed: Doc, row: &Row) -> AnyView {
    let (key, path) = (row.key.clone(), row.path.clone());
    let k = key.clone();
    let slow = Memo::new(move |_| {
        ed.policy
            .with(|p| find(p, &k).is_some_and(|b| b.slow_call.is_some()))
    });
    let fields = move || {
        slow.get().then(|| {
            view! {
                <Field
                    ed
                    path=format!("{path}.slow_call.threshold_ms")
                    label="Slower than (ms)"
                    lens=lens(
                        &key,
                        find,
                        find_mut,
                        |b| show_opt(b.slow_call.as_ref().map(|s| s.threshold_ms)),
                        |b, t| {
                            let n = num(t)?;
                            if let Some(s) = b.slow_call.as_mut() {
                                s.threshold_ms = n;
                            }
                            Ok(())
                        },
                    )
                    numeric=true
                    visible_label=true
                />
                <Field
                    ed
                    path=format!("{path}.slow_call.rate_percent")
                    label="Share that opens (%)"
                    lens=lens(
                        &key,
                        find,
                        find_mut,
                        |b| show_opt(b.slow_call.as_ref().map(|s| s.rate_percent)),
                        |b, t| {
                            let n = num32(t)?;
                            if let Some(s) = b.slow_call.as_mut() {
                                s.rate_percent = n;
                            }
                            Ok(())
                        },
                    )
                    numeric=true
                    visible_label=true
                />
            }
        })
    };
    view! {
        <div class="stack">
            <Check
                ed
                path=format!("{}.slow_call", row.path)
                label="count slow calls"
                visible_label=true
                lens=lens_bool(
                    &row.key,
                    find,
                    find_mut,
                    |b| b.slow_call.is_some(),
                    |b, on| {
                        b.slow_call = on
                            .then_some(SlowCall {
                                threshold_ms: 2_000,
                                rate_percent: 50,
                            });
                    },
                )
            />
            {fields}
        </div>
    }
    .into_any()
}

#[component]
pub fn BreakersSection(ed: Doc, deps: Memo<Vec<String>>) -> impl IntoView {
    let keys = Memo::new(move |_| ed.policy.with(|p| map_keys(&p.breakers)));
    view! {
        <Section
            ed
            id="breakers"
            title="Circuit breakers"
            about="Per dependency: when the breaker opens, how long it stays open, and how many probes it lets through before it closes."
        >
            <KeyedTable ed table=&BREAKERS />
            <AddForDependency
                deps
                taken=keys
                id="add-breaker"
                button="Add circuit breaker"
                on_add=Callback::new(move |dep: String| {
                    ed.edit(|p| {
                        p.breakers
                            .entry(dep)
                            .or_insert(BreakerPolicy {
                                mode: BreakerMode::FailureRate {
                                    threshold_percent: 50,
                                    window_ms: 30_000,
                                    minimum_calls: 20,
                                },
                                slow_call: None,
                                cooldown_ms: 30_000,
                                half_open_probes: 3,
                                forced: Default::default(),
                                forced_until_ms: None,
                                forced_reason: None,
                                alert: None,
                                runbook: None,
                            });
                    })
                })
            />
        </Section>
    }
    .into_any()
}
