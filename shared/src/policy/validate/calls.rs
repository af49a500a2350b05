//! Retries and their budget, breakers, bulkheads, rate limits and admission.

use super::{Checker, Code, wire};
use crate::policy::{
    AdmissionMode, BreakerMode, DependencyKind, Effect, ForcedState, PartitionKey, PriorityClass,
    RateLimit, RetryPolicy, Signal,
};
use std::collections::BTreeSet;

pub(super) fn check(c: &mut Checker<'_>) {
    retries(c);
    retry_budget(c);
    breakers(c);
    bulkheads(c);
    limits(c);
    admission(c);
}

fn retries(c: &mut Checker<'_>) {
    let policy = c.policy;
    for (dep, retry) in &policy.retry {
        let path = format!("retry.{dep}");
        let kind = c.dependency(path.clone(), dep);
        retry_policy(c, &path, retry, kind, None);
        if retry.max_attempts > 1
            && let Some(timeout) = c.effective_timeout(dep)
            && let Some(total) = policy.timeouts.as_ref().map(|t| t.total_ms)
        {
            let worst = worst_case_ms(retry, timeout);
            if worst > total {
                c.warn(
                    format!("{path}.max_attempts"),
                    Code::RetriesExceedDeadline,
                    format!(
                        "{} attempts of up to {timeout} ms plus backoff take up to {worst} ms, more than the {total} ms budget; the deadline cuts the last attempts off",
                        retry.max_attempts
                    ),
                );
            }
        }
    }
    let any_retries = policy.retry.values().any(|r| r.max_attempts > 1)
        || policy
            .agent_nodes
            .values()
            .any(|n| n.retry.as_ref().is_some_and(|r| r.max_attempts > 1));
    if any_retries && policy.retry_budget.is_none() {
        c.warn(
            "retry_budget",
            Code::MissingRetryBudget,
            "retries are configured but no retry budget caps them; a failing dependency will get more traffic while it fails",
        );
    }
}

/// Checks one retry policy, for a dependency (`kind` known) or an agent node
/// (`node` names the node and its effect, which is itself an operation).
pub(super) fn retry_policy(
    c: &mut Checker<'_>,
    path: &str,
    retry: &RetryPolicy,
    kind: Option<DependencyKind>,
    node: Option<(&str, Effect)>,
) {
    let retries = retry.max_attempts > 1;
    if retry.max_attempts == 0 {
        c.error(
            format!("{path}.max_attempts"),
            Code::OutOfRange,
            "max_attempts counts the first attempt, so it is at least 1",
        );
    }
    let bound = c.context.max_retry_attempts;
    if retry.max_attempts > bound {
        c.error(
            format!("{path}.max_attempts"),
            Code::MaxAttemptsAboveBound,
            format!(
                "{} attempts is above the bound of {bound}; more retries amplify an outage rather than ride it out",
                retry.max_attempts
            ),
        );
    }
    if retry.max_delay_ms < retry.base_delay_ms {
        c.error(
            format!("{path}.max_delay_ms"),
            Code::BackoffCapBelowBase,
            format!(
                "the backoff cap of {} ms is below the base delay of {} ms",
                retry.max_delay_ms, retry.base_delay_ms
            ),
        );
    }
    if retries && retry.base_delay_ms == 0 {
        c.warn(
            format!("{path}.base_delay_ms"),
            Code::NoBackoff,
            "retries follow each other with no delay, hammering a dependency that just failed",
        );
    }
    if retries && retry.jitter == crate::policy::Jitter::None {
        c.warn(
            format!("{path}.jitter"),
            Code::RetryWithoutJitter,
            "without jitter, clients that failed together retry together, in synchronised waves",
        );
    }
    if retries && retry.retry_on.is_empty() {
        c.warn(
            format!("{path}.retry_on"),
            Code::RetryOnEmpty,
            "retries are allowed but no error class is retried, so none ever happens",
        );
    }
    for (i, class) in retry.retry_on.iter().enumerate() {
        if !class.is_retryable() {
            c.error(
                format!("{path}.retry_on.{i}"),
                Code::NonRetryableErrorClass,
                format!(
                    "`{}` failures fail the same way every time; retrying them only adds load",
                    wire(class)
                ),
            );
        }
    }
    let has_key = |c: &Checker<'_>, op: &str| {
        c.policy
            .idempotency
            .as_ref()
            .is_some_and(|i| i.operations.contains_key(op))
    };
    for (op, effect) in &retry.operations {
        let op_path = format!("{path}.operations.{op}");
        c.name(op_path.clone(), "the operation name", op);
        if retries && effect.has_side_effects() && !has_key(c, op) {
            c.error(
                op_path,
                Code::RetryWithoutIdempotencyKey,
                format!("`{op}` changes something and is retried, but idempotency.operations gives it no key; a retry after a lost reply repeats the side effect"),
            );
        }
    }
    if let Some((name, effect)) = node
        && retries
        && effect.has_side_effects()
        && !has_key(c, name)
    {
        c.error(
            path.to_owned(),
            Code::RetryWithoutIdempotencyKey,
            format!("node `{name}` changes something and is retried, but idempotency.operations has no `{name}`; a retry can repeat its side effect"),
        );
    }
    if retries
        && retry.operations.is_empty()
        && kind.is_some_and(DependencyKind::may_have_side_effects)
    {
        c.warn(
            format!("{path}.operations"),
            Code::SideEffectsUndeclared,
            "this kind of dependency can have side effects; list the retried operations and their effects so unsafe retries are caught",
        );
    }
}

/// The longest all attempts and backoffs can take, saturating.
fn worst_case_ms(retry: &RetryPolicy, timeout: u64) -> u64 {
    // Beyond 64 attempts the sum has long saturated or the bound check has
    // already failed; the cap keeps validation fast on absurd input.
    let attempts = retry.max_attempts.min(64);
    let mut total = timeout.saturating_mul(u64::from(attempts));
    for n in 1..attempts {
        let factor = 1u64.checked_shl(n - 1).unwrap_or(u64::MAX);
        let delay = retry
            .base_delay_ms
            .saturating_mul(factor)
            .min(retry.max_delay_ms);
        total = total.saturating_add(delay);
    }
    total
}

fn retry_budget(c: &mut Checker<'_>) {
    let Some(b) = &c.policy.retry_budget else {
        return;
    };
    if b.ratio_percent > 100 {
        c.error(
            "retry_budget.ratio_percent",
            Code::OutOfRange,
            format!(
                "retries at {} % of first attempts would more than double the load",
                b.ratio_percent
            ),
        );
    } else if b.ratio_percent > 20 {
        c.warn(
            "retry_budget.ratio_percent",
            Code::RetryBudgetHigh,
            format!("retries may add {} % to the load of a dependency that is already failing; 10 % is usual", b.ratio_percent),
        );
    }
}

fn breakers(c: &mut Checker<'_>) {
    let policy = c.policy;
    for (dep, b) in &policy.breakers {
        let path = format!("breakers.{dep}");
        c.dependency(path.clone(), dep);
        match &b.mode {
            BreakerMode::Consecutive { failures } => {
                if *failures == 0 {
                    c.error(
                        format!("{path}.mode.failures"),
                        Code::OutOfRange,
                        "a breaker needs at least one failure to open",
                    );
                }
            }
            BreakerMode::FailureRate {
                threshold_percent,
                window_ms,
                minimum_calls,
            } => {
                if *threshold_percent == 0 {
                    c.error(
                        format!("{path}.mode.threshold_percent"),
                        Code::OutOfRange,
                        "a 0 % threshold opens the breaker on success",
                    );
                }
                c.percent(format!("{path}.mode.threshold_percent"), *threshold_percent);
                if *window_ms == 0 {
                    c.error(
                        format!("{path}.mode.window_ms"),
                        Code::OutOfRange,
                        "the window must be above zero",
                    );
                }
                if *minimum_calls == 0 {
                    c.error(
                        format!("{path}.mode.minimum_calls"),
                        Code::OutOfRange,
                        "at least one call is needed to measure a rate",
                    );
                }
            }
        }
        if b.forced == ForcedState::None && b.forced_until_ms.is_some() {
            c.error(
                format!("{path}.forced_until_ms"),
                Code::OutOfRange,
                "an end time without an override: set `forced` to open or closed, or drop the end time",
            );
        }
        if b.forced_until_ms.is_some_and(|t| t <= 0) {
            c.error(
                format!("{path}.forced_until_ms"),
                Code::OutOfRange,
                "the end time is Unix milliseconds, above zero",
            );
        }
        if b.forced_reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > 500)
        {
            c.error(
                format!("{path}.forced_reason"),
                Code::OutOfRange,
                "at most 500 characters",
            );
        }
        if b.half_open_probes == 0 {
            c.error(
                format!("{path}.half_open_probes"),
                Code::OutOfRange,
                "with no probes a half-open breaker can never learn that the dependency is back",
            );
        }
        if b.cooldown_ms == 0 {
            c.error(
                format!("{path}.cooldown_ms"),
                Code::OutOfRange,
                "with no cooldown an open breaker probes again at once and flaps",
            );
        }
        if let Some(slow) = &b.slow_call {
            if slow.threshold_ms == 0 {
                c.error(
                    format!("{path}.slow_call.threshold_ms"),
                    Code::OutOfRange,
                    "every call would count as slow",
                );
            }
            if slow.rate_percent == 0 {
                c.error(
                    format!("{path}.slow_call.rate_percent"),
                    Code::OutOfRange,
                    "a 0 % slow-call rate opens the breaker on any call",
                );
            }
            c.percent(format!("{path}.slow_call.rate_percent"), slow.rate_percent);
            if let Some(timeout) = c.effective_timeout(dep)
                && slow.threshold_ms >= timeout
            {
                c.warn(
                    format!("{path}.slow_call.threshold_ms"),
                    Code::SlowCallAboveTimeout,
                    format!(
                        "calls time out at {timeout} ms, before they can count as slow at {} ms",
                        slow.threshold_ms
                    ),
                );
            }
        }
        match b.forced {
            ForcedState::None => {}
            ForcedState::Open => {
                let required = policy
                    .service
                    .dependencies
                    .get(dep)
                    .is_some_and(|d| d.required);
                let consequence = if required {
                    "it is required, so the service fails or degrades everywhere"
                } else {
                    "every call takes the fallback"
                };
                c.warn(
                    format!("{path}.forced"),
                    Code::BreakerForced,
                    format!("`{dep}` is forced open for the whole fleet: {consequence}"),
                );
            }
            ForcedState::Closed => c.warn(
                format!("{path}.forced"),
                Code::BreakerForced,
                format!(
                    "`{dep}` is forced closed for the whole fleet: the breaker will not protect it"
                ),
            ),
        }
    }
    for (dep, d) in &policy.service.dependencies {
        let needs = matches!(
            d.kind,
            DependencyKind::ModelProvider
                | DependencyKind::Embedding
                | DependencyKind::VectorDb
                | DependencyKind::LexicalSearch
                | DependencyKind::Reranker
                | DependencyKind::ToolApi
        ) || policy.retry.get(dep).is_some_and(|r| r.max_attempts > 1);
        if needs && !policy.breakers.contains_key(dep) {
            c.warn(
                format!("breakers.{dep}"),
                Code::MissingBreaker,
                format!(
                    "`{dep}` has no circuit breaker; while it fails every request still waits on it"
                ),
            );
        }
    }
}

fn bulkheads(c: &mut Checker<'_>) {
    let policy = c.policy;
    let total = policy.timeouts.as_ref().map(|t| t.total_ms);
    for (name, b) in &policy.bulkheads {
        let path = format!("bulkheads.{name}");
        c.name(path.clone(), "the bulkhead name", name);
        if let Some(dep) = &b.dependency {
            c.dependency(format!("{path}.dependency"), dep);
        }
        if b.max_concurrent == 0 {
            c.error(
                format!("{path}.max_concurrent"),
                Code::OutOfRange,
                "a bulkhead with no slots admits nothing",
            );
        }
        queue_timeout(
            c,
            &format!("{path}.queue_timeout_ms"),
            b.queue_timeout_ms,
            total,
        );
        for (key, o) in &b.overrides {
            let o_path = format!("{path}.overrides.{key}");
            match b.partition {
                PartitionKey::Priority if PriorityClass::from_name(key).is_none() => c.error(
                    o_path.clone(),
                    Code::UnknownPriorityClass,
                    format!("`{key}` is not one of the six priority classes"),
                ),
                PartitionKey::Model if c.model_validated(key).is_none() => c.warn(
                    o_path.clone(),
                    Code::UnknownModel,
                    format!("model `{key}` is not listed in the models section"),
                ),
                _ => {}
            }
            if o.max_concurrent == Some(0) {
                c.warn(
                    format!("{o_path}.max_concurrent"),
                    Code::OutOfRange,
                    format!("no slots: all work for `{key}` is refused"),
                );
            }
            if let Some(ms) = o.queue_timeout_ms {
                queue_timeout(c, &format!("{o_path}.queue_timeout_ms"), ms, total);
            }
        }
    }
}

fn queue_timeout(c: &mut Checker<'_>, path: &str, ms: u64, total: Option<u64>) {
    if let Some(total) = total
        && ms > total
    {
        c.warn(
            path.to_owned(),
            Code::TimeoutExceedsBudget,
            format!("waiting up to {ms} ms for a slot outlasts the whole {total} ms budget"),
        );
    }
}

fn limits(c: &mut Checker<'_>) {
    let Some(l) = &c.policy.limits else { return };
    if let Some(rate) = &l.requests {
        rate_limit(c, "limits.requests", rate);
    }
    if l.tokens_per_minute == Some(0) {
        c.error(
            "limits.tokens_per_minute",
            Code::OutOfRange,
            "a budget of zero tokens admits nothing",
        );
    }
    if l.cost_per_tenant_per_day_usd_micros == Some(0) {
        c.error(
            "limits.cost_per_tenant_per_day_usd_micros",
            Code::OutOfRange,
            "a budget of zero admits nothing",
        );
    }
    for (dep, d) in &l.dependencies {
        let path = format!("limits.dependencies.{dep}");
        c.dependency(path.clone(), dep);
        if let Some(rate) = &d.requests {
            rate_limit(c, &format!("{path}.requests"), rate);
        }
        if d.tokens_per_minute == Some(0) {
            c.error(
                format!("{path}.tokens_per_minute"),
                Code::OutOfRange,
                "a budget of zero tokens admits nothing",
            );
        }
    }
}

fn rate_limit(c: &mut Checker<'_>, path: &str, rate: &RateLimit) {
    if rate.per_second == 0 {
        c.error(
            format!("{path}.per_second"),
            Code::OutOfRange,
            "a rate of zero admits nothing",
        );
    }
    if rate.burst == 0 {
        c.error(
            format!("{path}.burst"),
            Code::OutOfRange,
            "a bucket of size zero admits nothing",
        );
    } else if rate.burst < rate.per_second {
        c.warn(
            format!("{path}.burst"),
            Code::BurstBelowRate,
            format!("a burst of {} is below the rate of {} per second, which then can never be reached in one second's arrivals", rate.burst, rate.per_second),
        );
    }
}

fn admission(c: &mut Checker<'_>) {
    let policy = c.policy;
    let Some(a) = &policy.admission else { return };
    let mut ids = BTreeSet::new();
    for (i, t) in a.triggers.iter().enumerate() {
        let path = format!("admission.triggers.{i}");
        c.name(format!("{path}.id"), "the trigger id", &t.id);
        if !ids.insert(t.id.as_str()) {
            c.error(
                format!("{path}.id"),
                Code::DuplicateName,
                format!("trigger `{}` is listed twice", t.id),
            );
        }
        let s_path = format!("{path}.signal");
        match &t.signal {
            Signal::QueueDepth { above, dependency } => {
                if *above == 0 {
                    c.error(
                        format!("{s_path}.above"),
                        Code::OutOfRange,
                        "a queue depth above zero is normal operation",
                    );
                }
                if let Some(dep) = dependency {
                    c.dependency(format!("{s_path}.dependency"), dep);
                }
            }
            Signal::DependencyP95 {
                dependency,
                above_ms,
            } => {
                c.dependency(format!("{s_path}.dependency"), dependency);
                if *above_ms == 0 {
                    c.error(
                        format!("{s_path}.above_ms"),
                        Code::OutOfRange,
                        "every call is slower than zero ms",
                    );
                }
            }
            Signal::BreakerOpen { dependency } => {
                if c.dependency(format!("{s_path}.dependency"), dependency)
                    .is_some()
                    && !policy.breakers.contains_key(dependency)
                {
                    c.warn(
                        format!("{s_path}.dependency"),
                        Code::MissingBreaker,
                        format!("`{dependency}` has no breaker, so this trigger never fires"),
                    );
                }
            }
            Signal::CostNearLimit { percent } => {
                if *percent == 0 {
                    c.error(
                        format!("{s_path}.percent"),
                        Code::OutOfRange,
                        "0 % of the budget is always reached",
                    );
                }
                c.percent(format!("{s_path}.percent"), *percent);
                let budget = policy
                    .limits
                    .as_ref()
                    .and_then(|l| l.cost_per_tenant_per_day_usd_micros);
                if budget.is_none() {
                    c.warn(
                        format!("{s_path}.percent"),
                        Code::MissingBudget,
                        "limits.cost_per_tenant_per_day_usd_micros is not set, so this trigger never fires",
                    );
                }
            }
        }
        let mode = |class: PriorityClass| t.modes.get(&class).copied().unwrap_or_default();
        if mode(PriorityClass::SafetyCritical) == AdmissionMode::Rejected {
            c.error(
                format!("{path}.modes.safety_critical"),
                Code::ShedsSafetyCritical,
                "safety-critical work is never shed; queue or degrade other classes instead",
            );
        }
        let all = PriorityClass::ALL;
        for (n, &higher) in all.iter().enumerate() {
            if let Some(&lower) = all[n + 1..]
                .iter()
                .find(|&&lower| mode(higher) > mode(lower))
            {
                c.warn(
                    format!("{path}.modes.{}", higher.as_str()),
                    Code::PriorityInversion,
                    format!(
                        "`{}` is {} while the less important `{}` is {}",
                        higher.as_str(),
                        wire(&mode(higher)),
                        lower.as_str(),
                        wire(&mode(lower))
                    ),
                );
            }
        }
        if all
            .iter()
            .all(|&class| mode(class) == AdmissionMode::Normal)
        {
            c.warn(
                format!("{path}.modes"),
                Code::TriggerWithoutEffect,
                "every class stays normal, so the trigger changes nothing",
            );
        }
        let sheds = all
            .iter()
            .any(|&class| matches!(mode(class), AdmissionMode::Queued | AdmissionMode::Rejected));
        if sheds && t.user_message.is_none() {
            c.warn(
                format!("{path}.user_message"),
                Code::MissingUserMessage,
                "callers that are queued or rejected should be told why and what to do",
            );
        }
    }
}
