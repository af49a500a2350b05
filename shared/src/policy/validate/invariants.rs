//! The invariants, what in the rest of the policy contradicts them, and the
//! alert and runbook references.

use super::{Checker, Code};
use crate::policy::{DegradedStatus, FailureType, FallbackAction, Prohibition, SourceFailure};
use std::collections::BTreeSet;

pub(super) fn check(c: &mut Checker<'_>) {
    entries(c);
    fail_closed(c);
    prohibitions(c);
    references(c);
}

/// What the three lists of invariants have in common.
struct Entry<'a> {
    id: &'a str,
    description: &'a str,
    component: Option<&'a str>,
}

/// Ids, descriptions and components of the entries themselves, and
/// entries that contradict each other.
fn entries(c: &mut Checker<'_>) {
    let Some(inv) = &c.policy.invariants else {
        return;
    };
    let lists: [(&str, Vec<Entry<'_>>); 3] = [
        (
            "must_fail_closed",
            inv.must_fail_closed
                .iter()
                .map(|e| Entry {
                    id: &e.id,
                    description: &e.description,
                    component: e.component.as_deref(),
                })
                .collect(),
        ),
        (
            "may_degrade",
            inv.may_degrade
                .iter()
                .map(|e| Entry {
                    id: &e.id,
                    description: &e.description,
                    component: e.component.as_deref(),
                })
                .collect(),
        ),
        (
            "must_not_do",
            inv.must_not_do
                .iter()
                .map(|e| Entry {
                    id: &e.id,
                    description: &e.description,
                    component: None,
                })
                .collect(),
        ),
    ];
    for (list, items) in &lists {
        let mut seen = BTreeSet::new();
        for (
            i,
            &Entry {
                id,
                description,
                component,
            },
        ) in items.iter().enumerate()
        {
            let path = format!("invariants.{list}.{i}");
            c.name(format!("{path}.id"), "the invariant id", id);
            if !seen.insert(id) {
                c.error(
                    format!("{path}.id"),
                    Code::DuplicateName,
                    format!("`{id}` is listed twice in {list}"),
                );
            }
            if description.trim().is_empty() {
                c.error(
                    format!("{path}.description"),
                    Code::EmptyField,
                    "say in words what the invariant protects",
                );
            }
            if let Some(component) = component
                && !c.is_component(component)
            {
                c.warn(
                    format!("{path}.component"),
                    Code::UnknownComponent,
                    format!("`{component}` is not a declared dependency, agent node, retrieval source, stage or model"),
                );
            }
        }
    }
    for (j, degrade) in inv.may_degrade.iter().enumerate() {
        let Some(component) = &degrade.component else {
            continue;
        };
        if let Some(closed) = inv.must_fail_closed.iter().find(|f| {
            f.component.as_ref() == Some(component) && f.failure.overlaps(degrade.failure)
        }) {
            c.error(
                format!("invariants.may_degrade.{j}"),
                Code::InvariantConflict,
                format!("`{component}` may degrade here, but must_fail_closed `{}` says it must fail closed", closed.id),
            );
        }
    }
}

/// Nothing may work around a failure that must fail closed.
fn fail_closed(c: &mut Checker<'_>) {
    let policy = c.policy;
    let Some(inv) = &policy.invariants else {
        return;
    };
    for closed in &inv.must_fail_closed {
        let Some(component) = closed.component.as_deref() else {
            continue;
        };
        for (i, row) in policy.fallbacks.iter().enumerate() {
            if row.allowed
                && row.component == component
                && row.failure.overlaps(closed.failure)
                && !row.fallback.fails_closed()
            {
                c.error(
                    format!("fallbacks.{i}.fallback"),
                    Code::InvariantContradicted,
                    format!(
                        "must_fail_closed `{}` says `{component}` failing must stop the work, but this row answers with `{}`",
                        closed.id,
                        row.fallback.name()
                    ),
                );
            }
        }
        if closed.failure == FailureType::Any || closed.failure == FailureType::Unavailable {
            if let Some(r) = &policy.retrieval {
                for (name, source) in &r.sources {
                    let matches =
                        name == component || source.dependency.as_deref() == Some(component);
                    if matches
                        && matches!(
                            source.on_failure,
                            SourceFailure::Degrade | SourceFailure::Omit
                        )
                    {
                        c.error(
                            format!("retrieval.sources.{name}.on_failure"),
                            Code::InvariantContradicted,
                            format!(
                                "must_fail_closed `{}` says `{component}` failing must stop the work, but this source only degrades",
                                closed.id
                            ),
                        );
                    }
                }
            }
            if let Some(node) = policy.agent_nodes.get(component)
                && node.fallback_node.is_some()
            {
                c.error(
                    format!("agent_nodes.{component}.fallback_node"),
                    Code::InvariantContradicted,
                    format!(
                        "must_fail_closed `{}` says node `{component}` failing must stop the run, but it falls back to another node",
                        closed.id
                    ),
                );
            }
        }
    }
}

/// What each kind of prohibition rules out elsewhere in the policy. Kinds
/// that an unconditional rule already covers (ungrounded answers, skipped
/// authorisation, retries without keys) add nothing here, so a policy is
/// not told the same thing twice.
fn prohibitions(c: &mut Checker<'_>) {
    let policy = c.policy;
    let Some(inv) = &policy.invariants else {
        return;
    };
    for rule in &inv.must_not_do {
        let id = &rule.id;
        match rule.kind {
            Prohibition::DestructiveActionInDegradedMode => {
                for (name, node) in &policy.agent_nodes {
                    if node.effect == crate::policy::Effect::Destructive
                        && node.in_degraded_mode == crate::policy::DegradedModeAction::Run
                    {
                        c.error(
                            format!("agent_nodes.{name}.in_degraded_mode"),
                            Code::InvariantContradicted,
                            format!("must_not_do `{id}` forbids destructive actions in degraded mode, but `{name}` is destructive and still runs; set it to `hold`"),
                        );
                    }
                }
            }
            Prohibition::ActWithoutApproval => {
                for (name, node) in &policy.agent_nodes {
                    if node.effect == crate::policy::Effect::Destructive && !node.requires_approval
                    {
                        c.error(
                            format!("agent_nodes.{name}.requires_approval"),
                            Code::InvariantContradicted,
                            format!("must_not_do `{id}` forbids acting without approval, but `{name}` is destructive and needs none"),
                        );
                    }
                }
            }
            Prohibition::UnlabeledStaleData => {
                if let Some(cache) = &policy.cache
                    && cache.allow_stale
                    && cache.stale_caveat.is_none()
                {
                    c.error(
                        "cache.stale_caveat",
                        Code::InvariantContradicted,
                        format!("must_not_do `{id}` forbids unlabelled stale data, but stale entries are served without a caveat"),
                    );
                }
                for (i, row) in policy.fallbacks.iter().enumerate() {
                    if row.allowed
                        && matches!(row.fallback, FallbackAction::Cached { .. })
                        && (row.degraded_status == DegradedStatus::Normal
                            || row.user_message.is_none())
                    {
                        c.error(
                            format!("fallbacks.{i}"),
                            Code::InvariantContradicted,
                            format!("must_not_do `{id}` forbids unlabelled stale data; label this cached answer degraded and tell the caller"),
                        );
                    }
                }
            }
            Prohibition::HideMissingEvidence => {
                if let Some(r) = &policy.retrieval {
                    for (name, source) in &r.sources {
                        if source.on_failure == SourceFailure::Omit {
                            c.error(
                                format!("retrieval.sources.{name}.on_failure"),
                                Code::InvariantContradicted,
                                format!("must_not_do `{id}` forbids hiding missing evidence, but `{name}` is silently omitted when it fails"),
                            );
                        }
                    }
                }
                for (i, row) in policy.fallbacks.iter().enumerate() {
                    if row.allowed
                        && matches!(row.fallback, FallbackAction::SkipStep {})
                        && row.degraded_status == DegradedStatus::Normal
                    {
                        c.error(
                            format!("fallbacks.{i}.degraded_status"),
                            Code::InvariantContradicted,
                            format!("must_not_do `{id}` forbids hiding missing evidence, but this skipped step is labelled normal"),
                        );
                    }
                }
            }
            Prohibition::RetryWithoutIdempotency
            | Prohibition::UngroundedAnswer
            | Prohibition::BypassAuthorization
            | Prohibition::Other => {}
        }
    }
}

fn references(c: &mut Checker<'_>) {
    let policy = c.policy;
    let mut alerts: Vec<(String, &str)> = Vec::new();
    let mut runbooks: Vec<(String, &str)> = Vec::new();
    for (dep, b) in &policy.breakers {
        push(&mut alerts, format!("breakers.{dep}.alert"), &b.alert);
        push(&mut runbooks, format!("breakers.{dep}.runbook"), &b.runbook);
    }
    for (i, row) in policy.fallbacks.iter().enumerate() {
        push(&mut alerts, format!("fallbacks.{i}.alert"), &row.alert);
        push(
            &mut runbooks,
            format!("fallbacks.{i}.runbook"),
            &row.runbook,
        );
    }
    if let Some(a) = &policy.admission {
        for (i, t) in a.triggers.iter().enumerate() {
            push(
                &mut alerts,
                format!("admission.triggers.{i}.alert"),
                &t.alert,
            );
            push(
                &mut runbooks,
                format!("admission.triggers.{i}.runbook"),
                &t.runbook,
            );
        }
    }
    if let Some(goals) = &policy.goals {
        for (i, o) in goals.objectives.iter().enumerate() {
            push(
                &mut runbooks,
                format!("goals.objectives.{i}.runbook"),
                &o.runbook,
            );
        }
    }
    for (name, node) in &policy.agent_nodes {
        push(
            &mut runbooks,
            format!("agent_nodes.{name}.runbook"),
            &node.runbook,
        );
    }
    if let Some(known) = &c.context.known_alerts {
        for (path, id) in alerts {
            if !known.contains(id) {
                c.error(
                    path,
                    Code::UnknownAlert,
                    format!("there is no alert rule `{id}`"),
                );
            }
        }
    }
    if let Some(known) = &c.context.known_runbooks {
        for (path, id) in runbooks {
            if !known.contains(id) {
                c.error(
                    path,
                    Code::UnknownRunbook,
                    format!("there is no runbook `{id}`"),
                );
            }
        }
    }
}

fn push<'a>(out: &mut Vec<(String, &'a str)>, path: String, value: &'a Option<String>) {
    if let Some(id) = value {
        out.push((path, id.as_str()));
    }
}
