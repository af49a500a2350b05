//! The fallback matrix and model routing.

use super::{Checker, Code};
use crate::policy::{DegradedStatus, DependencyKind, FallbackAction, RiskTier};
use std::collections::BTreeSet;

pub(super) fn check(c: &mut Checker<'_>) {
    fallbacks(c);
    models(c);
}

fn fallbacks(c: &mut Checker<'_>) {
    let policy = c.policy;
    let high_risk = policy.service.risk_tier >= RiskTier::High;
    let mut covered = Vec::new();
    for (i, row) in policy.fallbacks.iter().enumerate() {
        let path = format!("fallbacks.{i}");
        let action_path = format!("{path}.fallback");
        if !c.is_component(&row.component) {
            c.warn(
                format!("{path}.component"),
                Code::UnknownComponent,
                format!("`{}` is not a declared dependency, agent node, retrieval source, stage or model", row.component),
            );
        }
        c.percent(
            format!("{path}.confidence_penalty_percent"),
            row.confidence_penalty_percent,
        );
        if !row.allowed {
            // A forbidden row documents a fallback the agent must refuse;
            // whatever it names is not done.
            continue;
        }
        if covered
            .iter()
            .any(|(comp, failure): &(&str, crate::policy::FailureType)| {
                *comp == row.component && failure.overlaps(row.failure)
            })
        {
            c.error(
                path.clone(),
                Code::DuplicateFallback,
                format!("an earlier allowed row already covers `{}` failing this way; the agent could not tell which applies", row.component),
            );
        }
        covered.push((row.component.as_str(), row.failure));

        let kind = c.kind_of(&row.component);
        match &row.fallback {
            FallbackAction::ModelMemory {} => c.error(
                action_path.clone(),
                Code::FallbackLosesGrounding,
                "answering from the model's memory drops grounding: the answer no longer rests on authorised evidence",
            ),
            FallbackAction::SkipAuthorization {} => c.error(
                action_path.clone(),
                Code::FallbackBypassesAuthorization,
                "a fallback may never skip the authorisation check",
            ),
            FallbackAction::ProceedWithoutApproval {} => c.error(
                action_path.clone(),
                Code::FallbackActsWithoutApproval,
                "a fallback may never perform a side effect without its approval",
            ),
            FallbackAction::SkipStep {} if serves_required_source(c, &row.component) => c.error(
                action_path.clone(),
                Code::FallbackLosesGrounding,
                format!("`{}` serves a required retrieval source; skipping it answers without evidence the answer needs", row.component),
            ),
            FallbackAction::AlternateDependency { dependency } => {
                c.dependency(format!("{action_path}.dependency"), dependency);
                if *dependency == row.component {
                    c.error(
                        format!("{action_path}.dependency"),
                        Code::FallbackToItself,
                        "a component cannot stand in for itself",
                    );
                }
            }
            FallbackAction::AlternateModel { model } => match c.model_validated(model) {
                None => c.error(
                    format!("{action_path}.model"),
                    Code::UnknownModel,
                    format!("model `{model}` is not listed in the models section"),
                ),
                Some(false) if high_risk => c.error(
                    format!("{action_path}.model"),
                    Code::UnvalidatedFallbackModel,
                    format!("a {} service may only fall back to a validated model, and `{model}` is not", tier_name(policy.service.risk_tier)),
                ),
                Some(_) => {}
            },
            FallbackAction::Cached { .. } if high_risk => c.warn(
                action_path.clone(),
                Code::StaleCacheForHighRisk,
                "a cached answer may be stale; make sure it never feeds a high-risk decision",
            ),
            _ => {}
        }
        let named_unsafe = matches!(
            row.fallback,
            FallbackAction::ModelMemory {}
                | FallbackAction::SkipAuthorization {}
                | FallbackAction::ProceedWithoutApproval {}
        );
        if !row.fallback.fails_closed() && !named_unsafe {
            if kind == Some(DependencyKind::Identity) {
                c.error(
                    action_path.clone(),
                    Code::FallbackBypassesAuthorization,
                    format!("`{}` is the identity service: carrying on while it fails means acting without authorisation", row.component),
                );
            }
            if kind == Some(DependencyKind::ApprovalService) {
                c.error(
                    action_path.clone(),
                    Code::FallbackActsWithoutApproval,
                    format!("`{}` is the approval service: while it is down the work must pause, never act", row.component),
                );
            }
        }
        let reduces_quality = !row.fallback.keeps_quality();
        if reduces_quality && row.degraded_status == DegradedStatus::Normal {
            c.warn(
                format!("{path}.degraded_status"),
                Code::SilentFallback,
                format!("`{}` gives a weaker answer but labels it normal; a silent fallback hides a quality change", row.fallback.name()),
            );
        }
        if reduces_quality
            && row.degraded_status == DegradedStatus::Degraded
            && row.confidence_penalty_percent == 0
        {
            c.warn(
                format!("{path}.confidence_penalty_percent"),
                Code::NoConfidencePenalty,
                "a degraded answer should carry lower confidence",
            );
        }
        if row.degraded_status != DegradedStatus::Normal && row.user_message.is_none() {
            c.warn(
                format!("{path}.user_message"),
                Code::MissingUserMessage,
                "the caller should be told that the answer is degraded, and how",
            );
        }
    }
}

/// Whether `component` is a required retrieval source, or the dependency
/// that serves one.
fn serves_required_source(c: &Checker<'_>, component: &str) -> bool {
    c.policy.retrieval.as_ref().is_some_and(|r| {
        r.sources.iter().any(|(name, s)| {
            s.required && (name == component || s.dependency.as_deref() == Some(component))
        })
    })
}

pub(super) fn tier_name(tier: RiskTier) -> &'static str {
    match tier {
        RiskTier::Low => "low-risk",
        RiskTier::Medium => "medium-risk",
        RiskTier::High => "high-risk",
        RiskTier::Regulated => "regulated",
    }
}

fn models(c: &mut Checker<'_>) {
    let policy = c.policy;
    let Some(m) = &policy.models else { return };
    let tier = policy.service.risk_tier;
    model_dependency(c, "models.primary.dependency", &m.primary.dependency);
    if tier >= RiskTier::High && !m.primary.validated {
        c.warn(
            "models.primary.validated",
            Code::UnvalidatedModel,
            format!(
                "the primary model of a {} service is not marked validated",
                tier_name(tier)
            ),
        );
    }
    let mut names = BTreeSet::from([m.primary.model.as_str()]);
    for (i, f) in m.fallbacks.iter().enumerate() {
        let path = format!("models.fallbacks.{i}");
        if !names.insert(f.model.as_str()) {
            c.error(
                format!("{path}.model"),
                Code::DuplicateName,
                format!("model `{}` is listed twice", f.model),
            );
        }
        model_dependency(c, &format!("{path}.dependency"), &f.dependency);
        if tier >= RiskTier::High && !f.validated && !f.disallowed_risk_levels.contains(&tier) {
            c.error(
                format!("{path}.validated"),
                Code::UnvalidatedFallbackModel,
                format!(
                    "a {} service may only fall back to validated models; validate `{}` or list `{}` in its disallowed_risk_levels",
                    tier_name(tier),
                    f.model,
                    super::wire(&tier)
                ),
            );
        }
        for (j, feature) in f.allowed_features.iter().enumerate() {
            if feature.trim().is_empty() {
                c.error(
                    format!("{path}.allowed_features.{j}"),
                    Code::EmptyField,
                    "a feature name is empty",
                );
            }
        }
    }
}

fn model_dependency(c: &mut Checker<'_>, path: &str, dep: &str) {
    if let Some(kind) = c.dependency(path.to_owned(), dep)
        && kind != DependencyKind::ModelProvider
    {
        c.warn(
            path.to_owned(),
            Code::DependencyKindMismatch,
            format!(
                "`{dep}` serves a model but is declared as `{}`, not `model_provider`",
                super::wire(&kind)
            ),
        );
    }
}
