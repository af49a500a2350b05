//! Property tests over arbitrary policies: validation never panics (nor
//! overflows), and every policy survives a JSON and a YAML round trip.
//!
//! Case counts are modest so the suite stays quick on a two-core machine.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use shared::policy::*;
use std::collections::BTreeMap;

/// Names: mostly ones that other sections refer to, so that cross-section
/// rules get exercised, plus arbitrary (often invalid) ones.
fn name() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(&[
            "model_provider", "tool", "search", "identity", "approval", "reranker", "node_a",
            "node_b", "big", "small",
        ][..])
        .prop_map(String::from),
        1 => "[a-z][a-z0-9_.-]{0,8}",
        1 => "\\PC{0,6}",
    ]
    .boxed()
}

/// Free text, including strings YAML would misread if left unquoted.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "\\PC{0,24}",
        1 => select(&[
            "", "yes", "no", "null", "~", "true", "1.5", "0x10", "- a", ": x", "#c", "'q'",
            "\"d\"", "a: b", "[x]", "{y}", "&anchor", "*alias", "!tag", "|", ">", " lead",
            "trail ", "multi\nline", "tab\there",
        ][..])
        .prop_map(String::from),
    ]
    .boxed()
}

fn small() -> BoxedStrategy<u64> {
    prop_oneof![4 => 0u64..20_000, 1 => any::<u64>()].boxed()
}

fn small32() -> BoxedStrategy<u32> {
    prop_oneof![4 => 0u32..8, 1 => 0u32..200, 1 => any::<u32>()].boxed()
}

fn opt<T: std::fmt::Debug + Clone + 'static>(s: BoxedStrategy<T>) -> BoxedStrategy<Option<T>> {
    prop::option::of(s).boxed()
}

fn map<T: std::fmt::Debug + Clone + 'static>(
    s: BoxedStrategy<T>,
) -> BoxedStrategy<BTreeMap<String, T>> {
    btree_map(name(), s, 0..4).boxed()
}

fn risk_tier() -> BoxedStrategy<RiskTier> {
    select(
        &[
            RiskTier::Low,
            RiskTier::Medium,
            RiskTier::High,
            RiskTier::Regulated,
        ][..],
    )
    .boxed()
}

fn service() -> BoxedStrategy<Service> {
    use DependencyKind::*;
    let kind = select(
        &[
            ModelProvider,
            Embedding,
            VectorDb,
            LexicalSearch,
            Reranker,
            ToolApi,
            Queue,
            Database,
            ObjectStore,
            Identity,
            ApprovalService,
            CaseRecord,
            Other,
        ][..],
    );
    let dependency =
        (kind, any::<bool>(), opt(text())).prop_map(|(kind, required, description)| Dependency {
            kind,
            required,
            description,
        });
    (
        name(),
        name(),
        text(),
        risk_tier(),
        opt(text()),
        map(dependency.boxed()),
    )
        .prop_map(
            |(name, environment, owner, risk_tier, description, dependencies)| Service {
                name,
                environment,
                owner,
                risk_tier,
                description,
                dependencies,
            },
        )
        .boxed()
}

fn goals() -> BoxedStrategy<Goals> {
    (
        opt(small()),
        opt(small()),
        opt(small32()),
        opt(small()),
        opt(small()),
        vec(text(), 0..3),
        vec(objective(), 0..3),
        opt(canary()),
    )
        .prop_map(
            |(
                p95_latency_ms,
                timeout_ms,
                availability_bp,
                accept_latency_ms,
                completion_sla_ms,
                statements,
                objectives,
                canary,
            )| Goals {
                p95_latency_ms,
                timeout_ms,
                availability_bp,
                accept_latency_ms,
                completion_sla_ms,
                statements,
                objectives,
                canary,
            },
        )
        .boxed()
}

fn objective() -> BoxedStrategy<Objective> {
    let indicator = prop_oneof![
        small().prop_map(|threshold_ms| Indicator::Latency { threshold_ms }),
        vec(prop::sample::select(DegradedStatus::ALL.to_vec()), 0..3)
            .prop_map(|allowed| Indicator::Availability { allowed }),
        Just(Indicator::Quality),
        prop::sample::select(SafetyViolation::ALL.to_vec())
            .prop_map(|violation| Indicator::Safety { violation }),
    ];
    (name(), indicator, small32(), small32(), opt(name()))
        .prop_map(
            |(id, indicator, target_bp, window_days, runbook)| Objective {
                id,
                indicator,
                target_bp,
                window_days,
                runbook,
            },
        )
        .boxed()
}

fn canary() -> BoxedStrategy<CanaryAnalysis> {
    (
        small32(),
        small32(),
        small32(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(max_burn_ratio_percent, min_requests, bake_minutes, auto_abort, auto_promote)| {
                CanaryAnalysis {
                    max_burn_ratio_percent,
                    min_requests,
                    bake_minutes,
                    auto_abort,
                    auto_promote,
                }
            },
        )
        .boxed()
}

fn timeouts() -> BoxedStrategy<Timeouts> {
    let stage =
        (name(), small(), vec(name(), 0..3)).prop_map(|(name, budget_ms, dependencies)| Stage {
            name,
            budget_ms,
            dependencies,
        });
    (small(), vec(stage, 0..5), map(small()))
        .prop_map(|(total_ms, stages, dependencies)| Timeouts {
            total_ms,
            stages,
            dependencies,
        })
        .boxed()
}

fn effect() -> BoxedStrategy<Effect> {
    select(&[Effect::Read, Effect::Write, Effect::Destructive][..]).boxed()
}

fn retry_policy() -> BoxedStrategy<RetryPolicy> {
    use ErrorClass::*;
    let class = select(
        &[
            Timeout,
            Connection,
            RateLimited,
            Unavailable,
            Overloaded,
            AuthDenied,
            Validation,
            InsufficientEvidence,
            PolicyViolation,
            BudgetExceeded,
            Permanent,
        ][..],
    );
    let jitter = select(&[Jitter::Full, Jitter::Decorrelated, Jitter::None][..]);
    (
        small32(),
        small(),
        small(),
        jitter,
        vec(class, 0..4),
        map(effect()),
    )
        .prop_map(
            |(max_attempts, base_delay_ms, max_delay_ms, jitter, retry_on, operations)| {
                RetryPolicy {
                    max_attempts,
                    base_delay_ms,
                    max_delay_ms,
                    jitter,
                    retry_on,
                    operations,
                }
            },
        )
        .boxed()
}

fn breaker() -> BoxedStrategy<BreakerPolicy> {
    let mode = prop_oneof![
        small32().prop_map(|failures| BreakerMode::Consecutive { failures }),
        (small32(), small(), small32()).prop_map(
            |(threshold_percent, window_ms, minimum_calls)| {
                BreakerMode::FailureRate {
                    threshold_percent,
                    window_ms,
                    minimum_calls,
                }
            }
        ),
    ];
    let slow = (small(), small32()).prop_map(|(threshold_ms, rate_percent)| SlowCall {
        threshold_ms,
        rate_percent,
    });
    let forced = select(&[ForcedState::None, ForcedState::Open, ForcedState::Closed][..]);
    (
        mode,
        opt(slow.boxed()),
        small(),
        small32(),
        forced,
        opt(name()),
        opt(name()),
    )
        .prop_map(
            |(mode, slow_call, cooldown_ms, half_open_probes, forced, alert, runbook)| {
                BreakerPolicy {
                    mode,
                    slow_call,
                    cooldown_ms,
                    half_open_probes,
                    forced,
                    forced_until_ms: None,
                    forced_reason: None,
                    alert,
                    runbook,
                }
            },
        )
        .boxed()
}

fn failure_type() -> BoxedStrategy<FailureType> {
    use FailureType::*;
    select(
        &[
            Unavailable,
            Timeout,
            Slow,
            RateLimited,
            InvalidOutput,
            BreakerOpen,
            Any,
        ][..],
    )
    .boxed()
}

fn fallback_action() -> BoxedStrategy<FallbackAction> {
    use FallbackAction::*;
    prop_oneof![
        name().prop_map(|dependency| AlternateDependency { dependency }),
        name().prop_map(|model| AlternateModel { model }),
        small().prop_map(|max_staleness_ms| Cached { max_staleness_ms }),
        select(
            &[
                SkipStep {},
                DeterministicChecksOnly {},
                Queue {},
                ResumeFromCheckpoint {},
                Pause {},
                HumanHandoff {},
                ExplainUnavailable {},
                Refuse {},
                ModelMemory {},
                SkipAuthorization {},
                ProceedWithoutApproval {},
            ][..]
        ),
    ]
    .boxed()
}

fn fallback_rule() -> BoxedStrategy<FallbackRule> {
    use DegradedStatus::*;
    let status = select(&[Normal, Degraded, Partial, Queued, Paused, Refused][..]);
    (
        name(),
        failure_type(),
        fallback_action(),
        status,
        opt(text()),
        any::<bool>(),
        small32(),
        opt(text()),
        opt(name()),
        opt(name()),
    )
        .prop_map(
            |(
                component,
                failure,
                fallback,
                degraded_status,
                user_message,
                allowed,
                confidence_penalty_percent,
                note,
                alert,
                runbook,
            )| {
                FallbackRule {
                    component,
                    failure,
                    fallback,
                    degraded_status,
                    user_message,
                    allowed,
                    confidence_penalty_percent,
                    note,
                    alert,
                    runbook,
                }
            },
        )
        .boxed()
}

fn models() -> BoxedStrategy<ModelRouting> {
    let primary =
        (name(), name(), any::<bool>()).prop_map(|(model, dependency, validated)| ModelRoute {
            model,
            dependency,
            validated,
        });
    let fallback = (
        name(),
        name(),
        any::<bool>(),
        vec(text(), 0..3),
        vec(risk_tier(), 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(
                model,
                dependency,
                validated,
                allowed_features,
                disallowed_risk_levels,
                requires_additional_validation,
            )| {
                ModelFallback {
                    model,
                    dependency,
                    validated,
                    allowed_features,
                    disallowed_risk_levels,
                    requires_additional_validation,
                }
            },
        );
    (primary, vec(fallback, 0..3))
        .prop_map(|(primary, fallbacks)| ModelRouting { primary, fallbacks })
        .boxed()
}

fn bulkhead() -> BoxedStrategy<Bulkhead> {
    use PartitionKey::*;
    let partition = select(&[Tenant, Tool, Model, Queue, Priority][..]);
    let override_ = (opt(small32()), opt(small32()), opt(small())).prop_map(
        |(max_concurrent, max_queued, queue_timeout_ms)| BulkheadOverride {
            max_concurrent,
            max_queued,
            queue_timeout_ms,
        },
    );
    let keys = prop_oneof![
        name(),
        select(&["batch_eval", "safety_critical", "vip"][..]).prop_map(String::from)
    ];
    (
        partition,
        opt(name()),
        small32(),
        small32(),
        small(),
        btree_map(keys, override_, 0..3),
    )
        .prop_map(
            |(partition, dependency, max_concurrent, max_queued, queue_timeout_ms, overrides)| {
                Bulkhead {
                    partition,
                    dependency,
                    max_concurrent,
                    max_queued,
                    queue_timeout_ms,
                    overrides,
                }
            },
        )
        .boxed()
}

fn rate() -> BoxedStrategy<RateLimit> {
    (small32(), small32())
        .prop_map(|(per_second, burst)| RateLimit { per_second, burst })
        .boxed()
}

fn limits() -> BoxedStrategy<Limits> {
    let dep =
        (opt(rate()), opt(small())).prop_map(|(requests, tokens_per_minute)| DependencyLimit {
            requests,
            tokens_per_minute,
        });
    (opt(rate()), opt(small()), opt(small()), map(dep.boxed()))
        .prop_map(
            |(requests, tokens_per_minute, cost_per_tenant_per_day_usd_micros, dependencies)| {
                Limits {
                    requests,
                    tokens_per_minute,
                    cost_per_tenant_per_day_usd_micros,
                    dependencies,
                }
            },
        )
        .boxed()
}

fn admission() -> BoxedStrategy<Admission> {
    let class = select(&PriorityClass::ALL[..]);
    let mode = select(
        &[
            AdmissionMode::Normal,
            AdmissionMode::Degraded,
            AdmissionMode::Queued,
            AdmissionMode::Rejected,
        ][..],
    );
    let signal = prop_oneof![
        (small(), opt(name()))
            .prop_map(|(above, dependency)| Signal::QueueDepth { above, dependency }),
        (name(), small()).prop_map(|(dependency, above_ms)| Signal::DependencyP95 {
            dependency,
            above_ms
        }),
        name().prop_map(|dependency| Signal::BreakerOpen { dependency }),
        small32().prop_map(|percent| Signal::CostNearLimit { percent }),
    ];
    let trigger = (
        name(),
        signal,
        btree_map(class.clone(), mode, 0..6),
        opt(text()),
        opt(name()),
        opt(name()),
    )
        .prop_map(
            |(id, signal, modes, user_message, alert, runbook)| Trigger {
                id,
                signal,
                modes,
                user_message,
                alert,
                runbook,
            },
        );
    (class, vec(trigger, 0..3))
        .prop_map(|(default_class, triggers)| Admission {
            default_class,
            triggers,
        })
        .boxed()
}

fn output_repair() -> BoxedStrategy<OutputRepair> {
    let on_failure = select(&[RepairFailure::FailSafe, RepairFailure::Fallback][..]);
    (small32(), on_failure, opt(name()))
        .prop_map(|(max_attempts, on_failure, fallback_model)| OutputRepair {
            max_attempts,
            on_failure,
            fallback_model,
        })
        .boxed()
}

fn retrieval() -> BoxedStrategy<Retrieval> {
    use SourceFailure::*;
    let on_failure = select(&[Fail, Degrade, Omit, AskHuman][..]);
    let source = (
        opt(name()),
        any::<bool>(),
        on_failure,
        opt(text()),
        small32(),
    )
        .prop_map(
            |(dependency, required, on_failure, user_message, confidence_penalty_percent)| {
                SourceRequirement {
                    dependency,
                    required,
                    on_failure,
                    user_message,
                    confidence_penalty_percent,
                }
            },
        );
    map(source.boxed())
        .prop_map(|sources| Retrieval { sources })
        .boxed()
}

fn agent_node() -> BoxedStrategy<AgentNodePolicy> {
    let degraded = select(&[DegradedModeAction::Run, DegradedModeAction::Hold][..]);
    (
        effect(),
        any::<bool>(),
        vec(name(), 0..3),
        opt(retry_policy()),
        opt(name()),
        any::<bool>(),
        any::<bool>(),
        degraded,
        opt(name()),
    )
        .prop_map(
            |(
                effect,
                requires_approval,
                dependencies,
                retry,
                fallback_node,
                required_for_completion,
                human_handoff_on_failure,
                in_degraded_mode,
                runbook,
            )| {
                AgentNodePolicy {
                    effect,
                    requires_approval,
                    dependencies,
                    retry,
                    fallback_node,
                    required_for_completion,
                    human_handoff_on_failure,
                    in_degraded_mode,
                    runbook,
                }
            },
        )
        .boxed()
}

fn cache() -> BoxedStrategy<CachePolicy> {
    use CacheKeyPart::*;
    let part = select(
        &[
            Tenant,
            SecurityContext,
            IndexVersion,
            PromptVersion,
            ModelVersion,
            NormalizationVersion,
            Query,
            User,
        ][..],
    );
    let sensitivity = select(
        &[
            Sensitivity::Public,
            Sensitivity::Internal,
            Sensitivity::Confidential,
            Sensitivity::Restricted,
        ][..],
    );
    (
        vec(part, 0..9),
        btree_map(sensitivity, small(), 0..4),
        any::<bool>(),
        opt(text()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                key,
                ttl_ms_by_sensitivity,
                allow_stale,
                stale_caveat,
                stale_for_high_risk,
                invalidate_on_source_update,
            )| CachePolicy {
                key,
                ttl_ms_by_sensitivity,
                allow_stale,
                stale_caveat,
                stale_for_high_risk,
                invalidate_on_source_update,
            },
        )
        .boxed()
}

fn idempotency() -> BoxedStrategy<IdempotencyPolicy> {
    use IdempotencyKeyPart::*;
    let part = select(&[RequestId, WorkflowRunId, Node, Operation, Tenant, ActionId][..]);
    let reuse = select(
        &[
            KeyReuse::Reject,
            KeyReuse::Escalate,
            KeyReuse::ReplayOriginal,
        ][..],
    );
    let op = (opt(name()), vec(part, 0..4), reuse, small()).prop_map(
        |(dependency, key, on_payload_mismatch, retention_ms)| IdempotentOperation {
            dependency,
            key,
            on_payload_mismatch,
            retention_ms,
        },
    );
    map(op.boxed())
        .prop_map(|operations| IdempotencyPolicy { operations })
        .boxed()
}

fn invariants() -> BoxedStrategy<Invariants> {
    use Prohibition::*;
    let fail_closed = (name(), opt(name()), failure_type(), text()).prop_map(
        |(id, component, failure, description)| FailClosed {
            id,
            component,
            failure,
            description,
        },
    );
    let may_degrade = (name(), opt(name()), failure_type(), text()).prop_map(
        |(id, component, failure, description)| MayDegrade {
            id,
            component,
            failure,
            description,
        },
    );
    let kind = select(
        &[
            ActWithoutApproval,
            DestructiveActionInDegradedMode,
            UnlabeledStaleData,
            RetryWithoutIdempotency,
            HideMissingEvidence,
            UngroundedAnswer,
            BypassAuthorization,
            Other,
        ][..],
    );
    let must_not = (name(), kind, text()).prop_map(|(id, kind, description)| MustNotDo {
        id,
        kind,
        description,
    });
    (
        vec(fail_closed, 0..3),
        vec(may_degrade, 0..3),
        vec(must_not, 0..3),
    )
        .prop_map(|(must_fail_closed, may_degrade, must_not_do)| Invariants {
            must_fail_closed,
            may_degrade,
            must_not_do,
        })
        .boxed()
}

fn dead_letters() -> BoxedStrategy<DeadLetterPolicy> {
    let need = select(&ApprovalNeed::ALL[..]);
    let kind = select(&shared::protocol::DlqActionKind::ALL[..]);
    (
        btree_map(name(), any::<bool>(), 0..3),
        btree_map(kind, need, 0..4),
        small(),
        small(),
        small32(),
    )
        .prop_map(
            |(task_types, approval, approval_expires_after_s, ack_timeout_s, redrive_per_s)| {
                DeadLetterPolicy {
                    task_types: task_types
                        .into_iter()
                        .map(|(n, side_effects)| (n, TaskType { side_effects }))
                        .collect(),
                    approval,
                    approval_expires_after_s,
                    ack_timeout_s,
                    redrive_per_s,
                }
            },
        )
        .boxed()
}

fn policy() -> impl Strategy<Value = Policy> {
    let first = (
        service(),
        opt(goals()),
        opt(timeouts()),
        map(retry_policy()),
        opt((small32(), small32())
            .prop_map(|(ratio_percent, min_per_second)| RetryBudget {
                ratio_percent,
                min_per_second,
            })
            .boxed()),
        map(breaker()),
        vec(fallback_rule(), 0..5),
        opt(models()),
    );
    let second = (
        map(bulkhead()),
        opt(limits()),
        opt(admission()),
        opt(output_repair()),
        opt(retrieval()),
        map(agent_node()),
        opt(cache()),
        opt(idempotency()),
        opt(invariants()),
        opt(dead_letters()),
    );
    (first, second).prop_map(
        |(
            (service, goals, timeouts, retry, retry_budget, breakers, fallbacks, models),
            (
                bulkheads,
                limits,
                admission,
                output_repair,
                retrieval,
                agent_nodes,
                cache,
                idempotency,
                invariants,
                dead_letters,
            ),
        )| Policy {
            service,
            goals,
            timeouts,
            retry,
            retry_budget,
            breakers,
            fallbacks,
            models,
            bulkheads,
            limits,
            admission,
            output_repair,
            retrieval,
            agent_nodes,
            cache,
            idempotency,
            invariants,
            dead_letters,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        // Integration tests have no lib.rs beside them for proptest to file
        // regressions next to; a failure prints its minimal input instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn validation_never_panics(p in policy()) {
        let context = ValidationContext::new()
            .with_alerts(["tool", "search"])
            .with_runbooks(["identity"]);
        let report = validate(&p, &context);
        for finding in &report.findings {
            prop_assert!(!finding.message.is_empty());
        }
        prop_assert_eq!(report.has_errors(), report.errors().next().is_some());
    }

    #[test]
    fn json_round_trips(p in policy()) {
        let text = p.to_json().unwrap();
        prop_assert_eq!(Policy::from_json(&text).unwrap(), p);
    }

    #[test]
    fn yaml_round_trips(p in policy()) {
        let text = p.to_yaml().unwrap();
        let back = Policy::from_yaml(&text);
        prop_assert!(back.is_ok(), "{:?}\n{}", back, text);
        prop_assert_eq!(back.unwrap(), p);
    }

    #[test]
    fn diff_is_empty_exactly_for_equal_policies(a in policy(), b in policy()) {
        prop_assert!(diff(&a, &a).is_empty());
        prop_assert_eq!(diff(&a, &b).is_empty(), a == b);
        prop_assert!(!Policy::loosens_invariants(&a, &a));
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = Policy::from_yaml(&text);
        let _ = Policy::from_json(&text);
    }
}
