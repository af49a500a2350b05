//! The AI policies: output repair, retrieval, agent nodes, cache and
//! idempotency.

use super::degradation::tier_name;
use super::{Checker, Code, calls, wire};
use crate::policy::{
    CacheKeyPart, Effect, IdempotencyKeyPart, KeyReuse, RepairFailure, RiskTier, SourceFailure,
};

pub(super) fn check(c: &mut Checker<'_>) {
    output_repair(c);
    retrieval(c);
    agent_nodes(c);
    cache(c);
    idempotency(c);
}

fn output_repair(c: &mut Checker<'_>) {
    let policy = c.policy;
    let Some(r) = &policy.output_repair else {
        return;
    };
    let bound = c.context.max_repair_attempts;
    if r.max_attempts > bound {
        c.error(
            "output_repair.max_attempts",
            Code::RepairAboveBound,
            format!(
                "{} repair attempts is above the bound of {bound}; a model that did not fix its output by then will not, and every try costs tokens and time",
                r.max_attempts
            ),
        );
    }
    match (&r.on_failure, &r.fallback_model) {
        (RepairFailure::Fallback, None) => c.error(
            "output_repair.fallback_model",
            Code::MissingFallbackModel,
            "on_failure is `fallback` but no fallback_model is named",
        ),
        (RepairFailure::Fallback, Some(model)) => match c.model_validated(model) {
            None => c.error(
                "output_repair.fallback_model",
                Code::UnknownModel,
                format!("model `{model}` is not listed in the models section"),
            ),
            Some(false) if policy.service.risk_tier >= RiskTier::High => c.error(
                "output_repair.fallback_model",
                Code::UnvalidatedFallbackModel,
                format!(
                    "a {} service may only fall back to a validated model, and `{model}` is not",
                    tier_name(policy.service.risk_tier)
                ),
            ),
            Some(_) => {}
        },
        (RepairFailure::FailSafe, _) => {}
    }
}

fn retrieval(c: &mut Checker<'_>) {
    let Some(r) = &c.policy.retrieval else { return };
    for (name, s) in &r.sources {
        let path = format!("retrieval.sources.{name}");
        c.name(path.clone(), "the source name", name);
        if let Some(dep) = &s.dependency {
            c.dependency(format!("{path}.dependency"), dep);
        }
        c.percent(
            format!("{path}.confidence_penalty_percent"),
            s.confidence_penalty_percent,
        );
        match (s.required, s.on_failure) {
            (true, SourceFailure::Omit) => c.error(
                format!("{path}.on_failure"),
                Code::RequiredSourceOmitted,
                format!("`{name}` is required, yet its failure is silently omitted: the answer would proceed without evidence it needs"),
            ),
            (true, SourceFailure::Degrade) => c.warn(
                format!("{path}.on_failure"),
                Code::RequiredSourceDegrades,
                format!("`{name}` is required but its failure only degrades the answer; fail or ask a person instead"),
            ),
            _ => {}
        }
        if matches!(
            s.on_failure,
            SourceFailure::Degrade | SourceFailure::AskHuman
        ) && s.user_message.is_none()
        {
            c.warn(
                format!("{path}.user_message"),
                Code::MissingUserMessage,
                "the caller should be told which evidence is missing",
            );
        }
    }
}

fn agent_nodes(c: &mut Checker<'_>) {
    let policy = c.policy;
    let high_risk = policy.service.risk_tier >= RiskTier::High;
    for (name, node) in &policy.agent_nodes {
        let path = format!("agent_nodes.{name}");
        c.name(path.clone(), "the node name", name);
        for (j, dep) in node.dependencies.iter().enumerate() {
            c.dependency(format!("{path}.dependencies.{j}"), dep);
        }
        if let Some(retry) = &node.retry {
            calls::retry_policy(
                c,
                &format!("{path}.retry"),
                retry,
                None,
                Some((name, node.effect)),
            );
            let nested = node.dependencies.iter().find_map(|dep| {
                policy
                    .retry
                    .get(dep)
                    .filter(|r| r.max_attempts > 1)
                    .map(|r| (dep, r.max_attempts))
            });
            if retry.max_attempts > 1
                && let Some((dep, inner)) = nested
            {
                c.warn(
                    format!("{path}.retry"),
                    Code::NestedRetries,
                    format!(
                        "`{name}` retries {} times and `{dep}` retries {inner} times inside it: up to {} calls per run",
                        retry.max_attempts,
                        retry.max_attempts.saturating_mul(inner)
                    ),
                );
            }
        }
        if let Some(next) = &node.fallback_node {
            let f_path = format!("{path}.fallback_node");
            if !policy.agent_nodes.contains_key(next) {
                c.error(
                    f_path,
                    Code::UnknownNode,
                    format!("there is no node `{next}`"),
                );
            } else if leads_back(c, name) {
                c.error(
                    f_path,
                    Code::FallbackCycle,
                    format!("following fallback nodes from `{name}` comes back to `{name}`; a failing run would loop"),
                );
            } else if high_risk && node.effect.has_side_effects() && !node.human_handoff_on_failure
            {
                c.warn(
                    format!("{path}.human_handoff_on_failure"),
                    Code::PreferHumanHandoff,
                    format!(
                        "`{name}` changes something in a {} workflow; a person is a safer fallback than node `{next}`",
                        tier_name(policy.service.risk_tier)
                    ),
                );
            }
        }
        if node.effect == Effect::Destructive && !node.requires_approval {
            let message = format!("`{name}` is destructive and runs without approval");
            if high_risk {
                c.error(
                    format!("{path}.requires_approval"),
                    Code::SideEffectWithoutApproval,
                    message,
                );
            } else {
                c.warn(
                    format!("{path}.requires_approval"),
                    Code::SideEffectWithoutApproval,
                    message,
                );
            }
        }
    }
}

/// Whether following fallback nodes from `start` comes back to it.
fn leads_back(c: &Checker<'_>, start: &str) -> bool {
    let nodes = &c.policy.agent_nodes;
    let mut current = start;
    // A chain longer than the number of nodes must repeat; the bound makes
    // a cycle that does not pass through `start` terminate too.
    for _ in 0..nodes.len() {
        match nodes.get(current).and_then(|n| n.fallback_node.as_deref()) {
            Some(next) if next == start => return true,
            Some(next) => current = next,
            None => return false,
        }
    }
    false
}

fn cache(c: &mut Checker<'_>) {
    let Some(cache) = &c.policy.cache else { return };
    for part in CacheKeyPart::MANDATORY {
        if !cache.key.contains(&part) {
            c.error(
                "cache.key",
                Code::CacheKeyMissingPart,
                format!("the cache key lacks `{}`; without it an entry can be served to the wrong caller or after its inputs changed", part.as_str()),
            );
        }
    }
    if cache.stale_for_high_risk {
        c.error(
            "cache.stale_for_high_risk",
            Code::StaleCacheForHighRisk,
            "stale entries must never feed a high-risk decision",
        );
    }
    if cache.allow_stale && cache.stale_caveat.is_none() {
        c.warn(
            "cache.stale_caveat",
            Code::StaleWithoutCaveat,
            "a stale answer must carry a caveat",
        );
    }
    if cache.ttl_ms_by_sensitivity.is_empty() {
        c.warn(
            "cache.ttl_ms_by_sensitivity",
            Code::MissingTtl,
            "set a TTL per sensitivity, so sensitive entries expire sooner",
        );
    }
    let ttls: Vec<_> = cache.ttl_ms_by_sensitivity.iter().collect();
    for (n, (sensitivity, ttl)) in ttls.iter().enumerate() {
        if let Some((lower, lower_ttl)) = ttls[..n].iter().find(|(_, lower_ttl)| ttl > lower_ttl) {
            c.warn(
                format!("cache.ttl_ms_by_sensitivity.{}", sensitivity.as_str()),
                Code::TtlNotDecreasing,
                format!(
                    "`{}` data lives {ttl} ms, longer than less sensitive `{}` data ({lower_ttl} ms)",
                    sensitivity.as_str(),
                    lower.as_str()
                ),
            );
        }
    }
    if !cache.invalidate_on_source_update {
        c.warn(
            "cache.invalidate_on_source_update",
            Code::NoInvalidation,
            "entries outlive an update of their source, so answers can cite superseded documents",
        );
    }
}

fn idempotency(c: &mut Checker<'_>) {
    let Some(i) = &c.policy.idempotency else {
        return;
    };
    for (name, op) in &i.operations {
        let path = format!("idempotency.operations.{name}");
        c.name(path.clone(), "the operation name", name);
        if let Some(dep) = &op.dependency {
            c.dependency(format!("{path}.dependency"), dep);
        }
        if op.key.is_empty() {
            c.error(
                format!("{path}.key"),
                Code::IdempotencyKeyEmpty,
                "an idempotency key needs at least one part",
            );
        } else {
            let has = |part| op.key.contains(&part);
            if !has(IdempotencyKeyPart::Operation) && !has(IdempotencyKeyPart::Node) {
                c.warn(
                    format!("{path}.key"),
                    Code::WeakIdempotencyKey,
                    "without `operation` or `node`, two different operations of one run share a key",
                );
            }
            if !has(IdempotencyKeyPart::RequestId)
                && !has(IdempotencyKeyPart::WorkflowRunId)
                && !has(IdempotencyKeyPart::ActionId)
            {
                c.warn(
                    format!("{path}.key"),
                    Code::WeakIdempotencyKey,
                    "without `request_id`, `workflow_run_id` or `action_id`, unrelated requests share a key",
                );
            }
        }
        if op.on_payload_mismatch == KeyReuse::ReplayOriginal {
            c.warn(
                format!("{path}.on_payload_mismatch"),
                Code::ReplayOnMismatch,
                format!(
                    "`{}` hides that the caller asked for something else; `reject` or `escalate` make the conflict visible",
                    wire(&op.on_payload_mismatch)
                ),
            );
        }
        if op.retention_ms == 0 {
            c.error(
                format!("{path}.retention_ms"),
                Code::OutOfRange,
                "a key that is forgotten at once protects nothing",
            );
        }
    }
}
