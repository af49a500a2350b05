//! Rate limits and budgets: per tenant, and per dependency.

use crate::components::fields::{
    Doc, Field, Issues, Section, in_section, opt_num, opt_num32, show_opt, top,
};
use crate::components::keyed_table::{
    AddForDependency, Column, Input, KeyedTable, Table, map_keys, same,
};
use leptos::prelude::*;
use shared::policy::{DependencyLimit, Limits, Policy, RateLimit};

/// Runs `f` on the limits section, creating it, and drops it again when
/// nothing is left in it.
fn with_limits(
    p: &mut Policy,
    f: impl FnOnce(&mut Limits) -> Result<(), String>,
) -> Result<(), String> {
    in_section(&mut p.limits, f)
}

/// Sets one of a rate's two numbers. No rate means no limit; an empty burst
/// is the rate itself.
fn set_rate(
    rate: &mut Option<RateLimit>,
    per_second: Option<&str>,
    burst: Option<&str>,
) -> Result<(), String> {
    let current = rate.clone();
    let per_second = match per_second {
        Some(t) => match opt_num32(t)? {
            // Clearing the rate removes the limit, burst and all.
            None => {
                *rate = None;
                return Ok(());
            }
            some => some,
        },
        None => current.as_ref().map(|r| r.per_second),
    };
    let burst = match burst {
        Some(t) => opt_num32(t)?,
        None => current.as_ref().map(|r| r.burst),
    };
    if per_second.is_none() && burst.is_some() {
        return Err("set the rate first".to_owned());
    }
    *rate = per_second.map(|p| RateLimit {
        per_second: p,
        burst: burst.unwrap_or(p),
    });
    Ok(())
}

static DEPENDENCY_LIMITS: Table<DependencyLimit> = Table {
    test: "editor-dependency-limits",
    row_test: "",
    key_title: "Dependency",
    noun: "",
    keys: |p| {
        p.limits
            .as_ref()
            .map(|l| map_keys(&l.dependencies))
            .unwrap_or_default()
    },
    path: |k| format!("limits.dependencies.{k}"),
    name: same,
    find: |p, k| p.limits.as_ref()?.dependencies.get(k),
    find_mut: |p, k| p.limits.as_mut()?.dependencies.get_mut(k),
    remove: |p, k| {
        let _ = with_limits(p, |l| {
            l.dependencies.remove(k);
            Ok(())
        });
    },
    row_issues: &[("requests", false)],
    columns: &[
        Column::new(
            "Calls per second",
            "requests.per_second",
            Input::Number(
                |l| show_opt(l.requests.as_ref().map(|r| r.per_second)),
                |l, t| set_rate(&mut l.requests, Some(t), None),
            ),
        ),
        Column::new(
            "Burst",
            "requests.burst",
            Input::Number(
                |l| show_opt(l.requests.as_ref().map(|r| r.burst)),
                |l, t| set_rate(&mut l.requests, None, Some(t)),
            ),
        ),
        Column::new(
            "Tokens per minute",
            "tokens_per_minute",
            Input::Number(
                |l| show_opt(l.tokens_per_minute),
                |l, t| {
                    l.tokens_per_minute = opt_num(t)?;
                    Ok(())
                },
            ),
        ),
    ],
    empty: "No per-dependency limits.",
    extra: None,
    footer: None,
};

#[component]
pub fn LimitsSection(ed: Doc, deps: Memo<Vec<String>>) -> impl IntoView {
    let rate = top(
        |p| {
            show_opt(
                p.limits
                    .as_ref()
                    .and_then(|l| l.requests.as_ref())
                    .map(|r| r.per_second),
            )
        },
        |p, t| with_limits(p, |l| set_rate(&mut l.requests, Some(t), None)),
    );
    let burst = top(
        |p| {
            show_opt(
                p.limits
                    .as_ref()
                    .and_then(|l| l.requests.as_ref())
                    .map(|r| r.burst),
            )
        },
        |p, t| with_limits(p, |l| set_rate(&mut l.requests, None, Some(t))),
    );
    let tokens = top(
        |p| show_opt(p.limits.as_ref().and_then(|l| l.tokens_per_minute)),
        |p, t| {
            let n = opt_num(t)?;
            with_limits(p, |l| {
                l.tokens_per_minute = n;
                Ok(())
            })
        },
    );
    let cost = top(
        |p| {
            show_opt(
                p.limits
                    .as_ref()
                    .and_then(|l| l.cost_per_tenant_per_day_usd_micros),
            )
        },
        |p, t| {
            let n = opt_num(t)?;
            with_limits(p, |l| {
                l.cost_per_tenant_per_day_usd_micros = n;
                Ok(())
            })
        },
    );
    let keys = Memo::new(move |_| ed.policy.with(|p| (DEPENDENCY_LIMITS.keys)(p)));
    view! {
        <Section
            ed
            id="limits"
            title="Rate limits and budgets"
            about="Reserved before each call. Leave a field empty for no limit."
        >
            <div class="form-grid">
                <Field ed path="limits.requests.per_second" label="Requests per second, per tenant" lens=rate numeric=true visible_label=true />
                <Field ed path="limits.requests.burst" label="Burst" lens=burst numeric=true visible_label=true />
                <Field ed path="limits.tokens_per_minute" label="Model tokens per minute" lens=tokens numeric=true visible_label=true />
                <Field
                    ed
                    path="limits.cost_per_tenant_per_day_usd_micros"
                    label="Cost per tenant per day (micro-USD)"
                    lens=cost
                    numeric=true
                    visible_label=true
                />
            </div>
            <Issues ed path="limits.requests" />
            <h3 class="subheading" id="dep-limits-title">
                "Per dependency"
            </h3>
            <KeyedTable ed table=&DEPENDENCY_LIMITS labelled_by="dep-limits-title" />
            <AddForDependency
                deps
                taken=keys
                id="add-limit"
                button="Add dependency limit"
                on_add=Callback::new(move |dep: String| {
                    ed.edit(|p| {
                        let _ = with_limits(
                            p,
                            |l| {
                                l.dependencies
                                    .entry(dep)
                                    .or_insert(DependencyLimit {
                                        requests: Some(RateLimit {
                                            per_second: 50,
                                            burst: 100,
                                        }),
                                        tokens_per_minute: None,
                                    });
                                Ok(())
                            },
                        );
                    })
                })
            />
        </Section>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_rate_is_no_limit() {
        let mut rate = None;
        set_rate(&mut rate, Some("5"), None).unwrap();
        assert_eq!(
            rate,
            Some(RateLimit {
                per_second: 5,
                burst: 5
            })
        );
        set_rate(&mut rate, None, Some("8")).unwrap();
        assert_eq!(
            rate,
            Some(RateLimit {
                per_second: 5,
                burst: 8
            })
        );
        set_rate(&mut rate, Some(""), None).unwrap();
        assert_eq!(rate, None);
        assert!(set_rate(&mut rate, None, Some("3")).is_err());
    }
}
