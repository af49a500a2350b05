//! The choices of the policy's enums, as the editor offers them: wire name
//! and words.

use super::Options;

pub const RISK_TIERS: Options = &[
    ("low", "low"),
    ("medium", "medium"),
    ("high", "high — publishes need an approver"),
    ("regulated", "regulated — publishes need an approver"),
];

pub const DEPENDENCY_KINDS: Options = &[
    ("model_provider", "model provider"),
    ("embedding", "embedding"),
    ("vector_db", "vector DB"),
    ("lexical_search", "lexical search"),
    ("reranker", "reranker"),
    ("tool_api", "tool API"),
    ("queue", "queue"),
    ("database", "database"),
    ("object_store", "object store"),
    ("identity", "identity"),
    ("approval_service", "approval service"),
    ("case_record", "case record"),
    ("other", "other"),
];

pub const JITTERS: Options = &[
    ("full", "full"),
    ("decorrelated", "decorrelated"),
    ("none", "none"),
];

pub const ERROR_CLASSES: Options = &[
    ("timeout", "timeout"),
    ("connection", "connection"),
    ("rate_limited", "rate_limited"),
    ("unavailable", "unavailable"),
    ("overloaded", "overloaded"),
    ("auth_denied", "auth_denied"),
    ("validation", "validation"),
    ("insufficient_evidence", "insufficient_evidence"),
    ("policy_violation", "policy_violation"),
    ("budget_exceeded", "budget_exceeded"),
    ("permanent", "permanent"),
];

pub const FORCED: Options = &[
    ("none", "no override"),
    ("open", "forced open"),
    ("closed", "forced closed"),
];

pub const BREAKER_MODES: Options = &[
    ("consecutive", "failures in a row"),
    ("failure_rate", "failure rate"),
];

pub const FAILURE_TYPES: Options = &[
    ("unavailable", "unavailable"),
    ("timeout", "timeout"),
    ("slow", "slow"),
    ("rate_limited", "rate limited"),
    ("invalid_output", "invalid output"),
    ("breaker_open", "breaker open"),
    ("any", "any"),
];

pub const FALLBACK_ACTIONS: Options = &[
    ("alternate_dependency", "alternate dependency"),
    ("alternate_model", "alternate model"),
    ("skip_step", "skip step"),
    ("cached", "cached result"),
    ("deterministic_checks_only", "deterministic checks only"),
    ("queue", "queue"),
    ("resume_from_checkpoint", "resume from checkpoint"),
    ("pause", "pause"),
    ("human_handoff", "human handoff"),
    ("explain_unavailable", "explain unavailable"),
    ("refuse", "refuse"),
    ("model_memory", "model memory (unsafe)"),
    ("skip_authorization", "skip authorisation (unsafe)"),
    (
        "proceed_without_approval",
        "proceed without approval (unsafe)",
    ),
];

pub const DEGRADED_STATUSES: Options = &[
    ("normal", "normal"),
    ("degraded", "degraded"),
    ("partial", "partial"),
    ("queued", "queued"),
    ("paused", "paused"),
    ("refused", "refused"),
];

pub const PARTITIONS: Options = &[
    ("tenant", "tenant"),
    ("tool", "tool"),
    ("model", "model"),
    ("queue", "queue"),
    ("priority", "priority class"),
];

pub const PRIORITY_CLASSES: Options = &[
    ("safety_critical", "safety critical"),
    ("contractual", "contractual"),
    ("interactive", "interactive"),
    ("background", "background"),
    ("batch_eval", "batch and evaluation"),
    ("optional_enrichment", "optional enrichment"),
];

pub const ADMISSION_MODES: Options = &[
    ("normal", "normal"),
    ("degraded", "degraded"),
    ("queued", "queued"),
    ("rejected", "rejected"),
];

pub const SIGNALS: Options = &[
    ("queue_depth", "queue deeper than"),
    ("dependency_p95", "dependency p95 above"),
    ("breaker_open", "breaker open"),
    ("cost_near_limit", "cost near its limit"),
];

pub const REPAIR_FAILURES: Options = &[
    ("fail_safe", "fail safe"),
    ("fallback", "ask the fallback model"),
];

pub const SOURCE_FAILURES: Options = &[
    ("fail", "fail"),
    ("degrade", "degrade"),
    ("omit", "omit (optional sources only)"),
    ("ask_human", "ask a person"),
];

pub const EFFECTS: Options = &[
    ("read", "read"),
    ("write", "write"),
    ("destructive", "destructive"),
];

pub const DEGRADED_MODE_ACTIONS: Options = &[("run", "run"), ("hold", "hold")];

pub const CACHE_KEY_PARTS: Options = &[
    ("tenant", "tenant"),
    ("security_context", "security context"),
    ("index_version", "index version"),
    ("prompt_version", "prompt version"),
    ("model_version", "model version"),
    ("normalization_version", "normalisation version"),
    ("query", "query"),
    ("user", "user"),
];

pub const SENSITIVITIES: Options = &[
    ("public", "public"),
    ("internal", "internal"),
    ("confidential", "confidential"),
    ("restricted", "restricted"),
];

pub const IDEMPOTENCY_KEY_PARTS: Options = &[
    ("request_id", "request id"),
    ("workflow_run_id", "workflow run id"),
    ("node", "node"),
    ("operation", "operation"),
    ("tenant", "tenant"),
    ("action_id", "action id"),
];

pub const KEY_REUSES: Options = &[
    ("reject", "reject"),
    ("escalate", "escalate"),
    ("replay_original", "replay the original"),
];

pub const PROHIBITIONS: Options = &[
    ("act_without_approval", "act without approval"),
    (
        "destructive_action_in_degraded_mode",
        "destructive action in degraded mode",
    ),
    ("unlabeled_stale_data", "unlabelled stale data"),
    ("retry_without_idempotency", "retry without idempotency"),
    ("hide_missing_evidence", "hide missing evidence"),
    ("ungrounded_answer", "ungrounded answer"),
    ("bypass_authorization", "bypass authorisation"),
    ("other", "other"),
];
