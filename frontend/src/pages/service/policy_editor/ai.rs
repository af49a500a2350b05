//! The AI-specific policies: structured-output repair, retrieval sources,
//! agent nodes, the cache and idempotency keys.

use super::options::{
    CACHE_KEY_PARTS, DEGRADED_MODE_ACTIONS, EFFECTS, IDEMPOTENCY_KEY_PARTS, KEY_REUSES,
    REPAIR_FAILURES, SENSITIVITIES, SOURCE_FAILURES,
};
use super::retry::default_retry;
use crate::components::fields::{
    Check, CheckList, Choice, Doc, Field, Getter, OptionalSection, Section, Setter, from_wire,
    in_present, in_section, lens_bool, num, num32, opt_num, opt_text, show_opt, toggle_in, top,
    wire, words,
};
use crate::components::keyed_table::{
    AddNamed, Column, Input, KeyedTable, Row, Table, map_keys, same,
};
use leptos::prelude::*;
use shared::policy::{
    AgentNodePolicy, CachePolicy, DegradedModeAction, Effect, IdempotentOperation, KeyReuse,
    OutputRepair, Policy, RepairFailure, Sensitivity, SourceFailure, SourceRequirement,
};
use std::sync::Arc;

// ----- Output repair ------------------------------------------------------

#[component]
pub fn OutputRepairSection(ed: Doc) -> impl IntoView {
    view! {
        <OptionalSection
            ed
            id="output_repair"
            title="Output repair"
            about="When a model's structured output does not validate: how many repairs to try, and what to do when they are used up."
            switch="Repair invalid structured output"
            present=|p| p.output_repair.is_some()
            add=|p| {
                p.output_repair = Some(OutputRepair {
                    max_attempts: 1,
                    on_failure: RepairFailure::FailSafe,
                    fallback_model: None,
                })
            }
            remove=|p| p.output_repair = None
        >
            <div class="form-grid">
                <Field
                    ed
                    path="output_repair.max_attempts"
                    label="Repair attempts"
                    lens=top(
                        |p| show_opt(p.output_repair.as_ref().map(|r| r.max_attempts)),
                        |p, t| {
                            let n = num32(t)?;
                            in_present(&mut p.output_repair, |r| { r.max_attempts = n; Ok(()) })
                        },
                    )
                    numeric=true
                    visible_label=true
                />
                <Choice
                    ed
                    path="output_repair.on_failure"
                    label="When the repairs are used up"
                    lens=top(
                        |p| p.output_repair.as_ref().map(|r| wire(&r.on_failure)).unwrap_or_default(),
                        |p, t| {
                            let v = from_wire(t)?;
                            in_present(&mut p.output_repair, |r| { r.on_failure = v; Ok(()) })
                        },
                    )
                    options=REPAIR_FAILURES
                    visible_label=true
                />
                <Field
                    ed
                    path="output_repair.fallback_model"
                    label="Fallback model (named under model routing)"
                    lens=top(
                        |p| p.output_repair.as_ref().and_then(|r| r.fallback_model.clone()).unwrap_or_default(),
                        |p, t| in_present(&mut p.output_repair, |r| {
                            r.fallback_model = opt_text(t.trim());
                            Ok(())
                        }),
                    )
                    visible_label=true
                />
            </div>
        </OptionalSection>
    }
    .into_any()
}

// ----- Retrieval ----------------------------------------------------------

static SOURCES: Table<SourceRequirement> = Table {
    test: "editor-retrieval-sources",
    row_test: "editor-source",
    key_title: "Source",
    noun: "",
    keys: |p| {
        p.retrieval
            .as_ref()
            .map(|r| map_keys(&r.sources))
            .unwrap_or_default()
    },
    path: |k| format!("retrieval.sources.{k}"),
    name: same,
    find: |p, k| p.retrieval.as_ref()?.sources.get(k),
    find_mut: |p, k| p.retrieval.as_mut()?.sources.get_mut(k),
    remove: |p, k| {
        let _ = in_section(&mut p.retrieval, |r| {
            r.sources.remove(k);
            Ok(())
        });
    },
    row_issues: &[],
    columns: &[
        Column::new(
            "Dependency",
            "dependency",
            Input::Text(
                |s| s.dependency.clone().unwrap_or_default(),
                |s, t| {
                    s.dependency = opt_text(t.trim());
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Required",
            "required",
            Input::Check(|s| s.required, |s, on| s.required = on),
        ),
        Column::new(
            "On failure",
            "on_failure",
            Input::Choice(
                |s| wire(&s.on_failure),
                |s, t| {
                    s.on_failure = from_wire(t)?;
                    Ok(())
                },
                SOURCE_FAILURES,
            ),
        ),
        Column::new(
            "Confidence penalty (%)",
            "confidence_penalty_percent",
            Input::Number(
                |s| s.confidence_penalty_percent.to_string(),
                |s, t| {
                    s.confidence_penalty_percent = num32(t)?;
                    Ok(())
                },
            ),
        ),
        Column::below(
            "User message",
            "user_message",
            Input::Text(
                |s| s.user_message.clone().unwrap_or_default(),
                |s, t| {
                    s.user_message = opt_text(t);
                    Ok(())
                },
            ),
        ),
    ],
    empty: "No retrieval sources.",
    extra: None,
    footer: None,
};

#[component]
pub fn RetrievalSection(ed: Doc) -> impl IntoView {
    view! {
        <Section
            ed
            id="retrieval"
            title="Retrieval sources"
            about="Which sources an answer needs, and what the failure of each does to the answer."
        >
            <KeyedTable ed table=&SOURCES />
            <AddNamed
                id="add-source"
                label="New source"
                button="Add source"
                placeholder="e.g. policy"
                on_add=Callback::new(move |key: String| {
                    if ed.policy.with_untracked(|p| (SOURCES.find)(p, &key).is_some()) {
                        return Err(format!("`{key}` already exists"));
                    }
                    ed.edit(|p| {
                        let _ = in_section(&mut p.retrieval, |r| {
                            r.sources
                                .insert(
                                    key,
                                    SourceRequirement {
                                        dependency: None,
                                        required: true,
                                        on_failure: SourceFailure::Fail,
                                        user_message: None,
                                        confidence_penalty_percent: 0,
                                    },
                                );
                            Ok(())
                        });
                    });
                    Ok(())
                })
            />
        </Section>
    }
    .into_any()
}

// ----- Agent nodes --------------------------------------------------------

static NODES: Table<AgentNodePolicy> = Table {
    test: "editor-agent-nodes",
    row_test: "editor-node",
    key_title: "Node",
    noun: "",
    keys: |p| map_keys(&p.agent_nodes),
    path: |k| format!("agent_nodes.{k}"),
    name: same,
    find: |p, k| p.agent_nodes.get(k),
    find_mut: |p, k| p.agent_nodes.get_mut(k),
    remove: |p, k| {
        p.agent_nodes.remove(k);
    },
    row_issues: &[("retry", true)],
    columns: &[
        Column::new(
            "Effect",
            "effect",
            Input::Choice(
                |n| wire(&n.effect),
                |n, t| {
                    n.effect = from_wire(t)?;
                    Ok(())
                },
                EFFECTS,
            ),
        ),
        Column::new(
            "Needs approval",
            "requires_approval",
            Input::Check(|n| n.requires_approval, |n, on| n.requires_approval = on),
        ),
        Column::new(
            "Required to complete",
            "required_for_completion",
            Input::Check(
                |n| n.required_for_completion,
                |n, on| n.required_for_completion = on,
            ),
        ),
        Column::new(
            "Hand off on failure",
            "human_handoff_on_failure",
            Input::Check(
                |n| n.human_handoff_on_failure,
                |n, on| n.human_handoff_on_failure = on,
            ),
        ),
        Column::new(
            "When degraded",
            "in_degraded_mode",
            Input::Choice(
                |n| wire(&n.in_degraded_mode),
                |n, t| {
                    n.in_degraded_mode = from_wire(t)?;
                    Ok(())
                },
                DEGRADED_MODE_ACTIONS,
            ),
        ),
        Column::below(
            "Dependencies (comma-separated)",
            "dependencies",
            Input::Text(
                |n| n.dependencies.join(", "),
                |n, t| {
                    n.dependencies = words(t);
                    Ok(())
                },
            ),
        ),
        Column::below(
            "Fallback node",
            "fallback_node",
            Input::Text(
                |n| n.fallback_node.clone().unwrap_or_default(),
                |n, t| {
                    n.fallback_node = opt_text(t.trim());
                    Ok(())
                },
            ),
        ),
        Column::below(
            "Attempts (empty: no retry)",
            "retry.max_attempts",
            Input::Number(
                |n| show_opt(n.retry.as_ref().map(|r| r.max_attempts)),
                |n, t| {
                    if t.trim().is_empty() {
                        n.retry = None;
                    } else {
                        let attempts = num32(t)?;
                        n.retry.get_or_insert_with(default_retry).max_attempts = attempts;
                    }
                    Ok(())
                },
            ),
        ),
        Column::below(
            "Runbook",
            "runbook",
            Input::Text(
                |n| n.runbook.clone().unwrap_or_default(),
                |n, t| {
                    n.runbook = opt_text(t);
                    Ok(())
                },
            ),
        ),
    ],
    empty: "No agent nodes: this service is not an agent workflow.",
    extra: None,
    footer: None,
};

#[component]
pub fn AgentNodesSection(ed: Doc) -> impl IntoView {
    view! {
        <Section
            ed
            id="agent_nodes"
            title="Agent nodes"
            about="Per node of an agent workflow: what it changes, whether it needs approval, and what its failure does to the run."
        >
            <KeyedTable ed table=&NODES />
            <AddNamed
                id="add-node"
                label="New node"
                button="Add node"
                placeholder="e.g. draft_reply"
                on_add=Callback::new(move |key: String| {
                    if ed.policy.with_untracked(|p| p.agent_nodes.contains_key(&key)) {
                        return Err(format!("`{key}` already exists"));
                    }
                    ed.edit(|p| {
                        p.agent_nodes
                            .insert(
                                key,
                                AgentNodePolicy {
                                    effect: Effect::Read,
                                    requires_approval: false,
                                    dependencies: Vec::new(),
                                    retry: None,
                                    fallback_node: None,
                                    required_for_completion: true,
                                    human_handoff_on_failure: false,
                                    in_degraded_mode: DegradedModeAction::Run,
                                    runbook: None,
                                },
                            );
                    });
                    Ok(())
                })
            />
        </Section>
    }
    .into_any()
}

// ----- Cache --------------------------------------------------------------

fn cache(p: &Policy) -> Option<&CachePolicy> {
    p.cache.as_ref()
}

fn cache_mut(p: &mut Policy) -> Option<&mut CachePolicy> {
    p.cache.as_mut()
}

/// A lens on the time to live of one sensitivity.
fn ttl(sensitivity: &'static str) -> (Getter, Setter) {
    (
        Arc::new(move |p: &Policy| {
            let s = from_wire::<Sensitivity>(sensitivity).ok();
            show_opt(cache(p).and_then(|c| c.ttl_ms_by_sensitivity.get(&s?).copied()))
        }),
        Arc::new(move |p: &mut Policy, t: &str| {
            let ms = opt_num(t)?;
            let s = from_wire::<Sensitivity>(sensitivity)?;
            in_present(&mut p.cache, |c| {
                match ms {
                    Some(ms) => c.ttl_ms_by_sensitivity.insert(s, ms),
                    None => c.ttl_ms_by_sensitivity.remove(&s),
                };
                Ok(())
            })
        }),
    )
}

#[component]
pub fn CacheSection(ed: Doc) -> impl IntoView {
    let flag = move |path: &'static str,
                     label: &'static str,
                     get: fn(&CachePolicy) -> bool,
                     set: fn(&mut CachePolicy, bool)| {
        view! {
            <Check
                ed
                path
                label
                visible_label=true
                lens=lens_bool("", |p, _| cache(p), |p, _| cache_mut(p), get, set)
            />
        }
    };
    view! {
        <OptionalSection
            ed
            id="cache"
            title="Cache"
            about="What a cache key is made of, how long entries live by sensitivity, and whether stale entries may be served."
            switch="Cache answers"
            present=|p| p.cache.is_some()
            add=|p| {
                p.cache = Some(CachePolicy {
                    key: shared::policy::CacheKeyPart::MANDATORY.to_vec(),
                    invalidate_on_source_update: true,
                    ..CachePolicy::default()
                })
            }
            remove=|p| p.cache = None
        >
            <div class="form-grid">
                <div class="cell-field cell-wide">
                    <span class="static-label">"Key parts"</span>
                    <CheckList
                        ed
                        path="cache.key"
                        label="Key parts"
                        options=CACHE_KEY_PARTS
                        get=Arc::new(|p| cache(p).map(|c| c.key.iter().map(wire).collect()).unwrap_or_default())
                        set=Arc::new(|p, name, on| {
                            if let Some(c) = cache_mut(p) {
                                toggle_in(&mut c.key, name, on);
                            }
                        })
                    />
                </div>
                {SENSITIVITIES
                    .iter()
                    .map(|(s, words)| {
                        view! {
                            <Field
                                ed
                                path=format!("cache.ttl_ms_by_sensitivity.{s}")
                                label=format!("Time to live, {words} (ms)")
                                lens=ttl(s)
                                numeric=true
                                visible_label=true
                                placeholder="not cached"
                            />
                        }
                    })
                    .collect_view()}
                {flag("cache.allow_stale", "serve stale entries while the source is down", |c| c.allow_stale, |c, on| c.allow_stale = on)}
                {flag("cache.stale_for_high_risk", "let stale entries feed high-risk decisions", |c| c.stale_for_high_risk, |c, on| c.stale_for_high_risk = on)}
                {flag(
                    "cache.invalidate_on_source_update",
                    "drop entries when their source changes",
                    |c| c.invalidate_on_source_update,
                    |c, on| c.invalidate_on_source_update = on,
                )}
                <Field
                    ed
                    path="cache.stale_caveat"
                    label="Caveat shown with a stale answer"
                    lens=top(
                        |p| cache(p).and_then(|c| c.stale_caveat.clone()).unwrap_or_default(),
                        |p, t| in_present(&mut p.cache, |c| {
                            c.stale_caveat = opt_text(t);
                            Ok(())
                        }),
                    )
                    wide=true
                    visible_label=true
                />
            </div>
        </OptionalSection>
    }
    .into_any()
}

// ----- Idempotency --------------------------------------------------------

static OPERATIONS: Table<IdempotentOperation> = Table {
    test: "editor-idempotency",
    row_test: "editor-operation",
    key_title: "Operation",
    noun: "",
    keys: |p| {
        p.idempotency
            .as_ref()
            .map(|i| map_keys(&i.operations))
            .unwrap_or_default()
    },
    path: |k| format!("idempotency.operations.{k}"),
    name: same,
    find: |p, k| p.idempotency.as_ref()?.operations.get(k),
    find_mut: |p, k| p.idempotency.as_mut()?.operations.get_mut(k),
    remove: |p, k| {
        let _ = in_section(&mut p.idempotency, |i| {
            i.operations.remove(k);
            Ok(())
        });
    },
    row_issues: &[],
    columns: &[
        Column::new(
            "Dependency",
            "dependency",
            Input::Text(
                |o| o.dependency.clone().unwrap_or_default(),
                |o, t| {
                    o.dependency = opt_text(t.trim());
                    Ok(())
                },
            ),
        ),
        Column::new("Key parts", "key", Input::Custom(key_parts)),
        Column::new(
            "Reused with another payload",
            "on_payload_mismatch",
            Input::Choice(
                |o| wire(&o.on_payload_mismatch),
                |o, t| {
                    o.on_payload_mismatch = from_wire(t)?;
                    Ok(())
                },
                KEY_REUSES,
            ),
        ),
        Column::new(
            "Kept for (ms)",
            "retention_ms",
            Input::Number(
                |o| o.retention_ms.to_string(),
                |o, t| {
                    o.retention_ms = num(t)?;
                    Ok(())
                },
            ),
        ),
    ],
    empty: "No operations carry idempotency keys.",
    extra: None,
    footer: None,
};

fn key_parts(ed: Doc, row: &Row) -> AnyView {
    let (k1, k2) = (row.key.clone(), row.key.clone());
    view! {
        <CheckList
            ed
            path=format!("{}.key", row.path)
            label=row.label("Key parts")
            options=IDEMPOTENCY_KEY_PARTS
            get=Arc::new(move |p| {
                (OPERATIONS.find)(p, &k1).map(|o| o.key.iter().map(wire).collect()).unwrap_or_default()
            })
            set=Arc::new(move |p, name, on| {
                if let Some(o) = (OPERATIONS.find_mut)(p, &k2) {
                    toggle_in(&mut o.key, name, on);
                }
            })
        />
    }
    .into_any()
}

#[component]
pub fn IdempotencySection(ed: Doc) -> impl IntoView {
    view! {
        <Section
            ed
            id="idempotency"
            title="Idempotency"
            about="Operations that carry an idempotency key, what the key is made of, and what a reused key does. Writes are retried only with one."
        >
            <KeyedTable ed table=&OPERATIONS />
            <AddNamed
                id="add-operation"
                label="New operation"
                button="Add operation"
                placeholder="e.g. close_case"
                on_add=Callback::new(move |key: String| {
                    if ed.policy.with_untracked(|p| (OPERATIONS.find)(p, &key).is_some()) {
                        return Err(format!("`{key}` already exists"));
                    }
                    ed.edit(|p| {
                        let _ = in_section(&mut p.idempotency, |i| {
                            i.operations
                                .insert(
                                    key,
                                    IdempotentOperation {
                                        dependency: None,
                                        key: vec![
                                            shared::policy::IdempotencyKeyPart::RequestId,
                                            shared::policy::IdempotencyKeyPart::Operation,
                                        ],
                                        on_payload_mismatch: KeyReuse::Reject,
                                        retention_ms: 86_400_000,
                                    },
                                );
                            Ok(())
                        });
                    });
                    Ok(())
                })
            />
        </Section>
    }
    .into_any()
}
