//! The built-in runbook library and the template for new runbooks.
//!
//! Written for Ballast's own metrics and controls, so that every built-in
//! alert rule leads somewhere useful on the first day. Teams edit them like
//! any other runbook: an edit is a new version, and the library never
//! overwrites a runbook that exists.

use crate::store::{Store, StoreResult};
use shared::api::RunbookLinks;

/// One runbook of the library.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinRunbook {
    /// Stable name.
    pub slug: &'static str,
    /// Title.
    pub title: &'static str,
    /// Markdown.
    pub body: &'static str,
    /// Dependencies it is about.
    pub dependencies: &'static [&'static str],
    /// Kinds of failure it is about (alert metrics).
    pub failure_types: &'static [&'static str],
}

impl BuiltinRunbook {
    /// Its links, as the API states them.
    pub fn links(&self) -> RunbookLinks {
        let own = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        RunbookLinks {
            services: Vec::new(),
            dependencies: own(self.dependencies),
            failure_types: own(self.failure_types),
        }
    }
}

/// The title a new runbook starts with.
pub const TEMPLATE_TITLE: &str = "AI reliability incident";

/// The incident template: the general order of work for any reliability
/// incident in an AI application, as a checklist.
pub const TEMPLATE_BODY: &str = "\
Use this when an alert fires and the cause is not yet known. Tick each step \
as you finish it: the checklist records who did what, and when, for the review.

## Find what is failing

- [ ] Name the failing dependency: the service page lists each dependency's error, timeout and rejection rates.
- [ ] Read the circuit breaker states. An open breaker is protecting the service; find out what it is protecting it from before forcing it closed.
- [ ] Compare retries with calls. More than about 1.3 attempts per call means retries are adding load to a dependency that is already struggling.
- [ ] Check queue depth and worker health: backlogs, bulkhead rejections, instances that stopped reporting.

## Measure the damage

- [ ] Check the fallback and degraded-response rates. Users are getting weaker answers while these are up; make sure the answers say so.
- [ ] Check token use and cost against the budget. A retry loop or a runaway agent shows here first.
- [ ] Check the safety signals: unauthorised retrieval, unapproved high-risk actions, duplicate side effects. Any of these above zero outranks everything else.

## Contain

- [ ] Turn off the unsafe feature path if one is involved (a policy change, which is versioned and audited).
- [ ] Switch model, provider or index only through an approved policy change.
- [ ] Drain or pause queues that are overloaded, and shed low-priority work before interactive work.

## Recover and learn

- [ ] Review the dead-letter queue: redrive what is safe once the cause is fixed, with an approver for anything with side effects.
- [ ] Add a regression test or a chaos experiment that reproduces the failure, so the fix stays fixed.
- [ ] Write down the timeline and link this checklist from the incident record.
";

/// The runbooks every installation starts with.
pub const LIBRARY: &[BuiltinRunbook] = &[
    BuiltinRunbook {
        slug: "ai-reliability-incident",
        title: TEMPLATE_TITLE,
        body: TEMPLATE_BODY,
        dependencies: &[],
        failure_types: &["breaker_open", "timeout_rate", "error_rate"],
    },
    BuiltinRunbook {
        slug: "model-provider-outage",
        title: "Model provider outage or slowdown",
        body: "\
The model provider is failing, slow or rate limiting, and the breaker around it may be open.

- [ ] Confirm on the service page whether the failures are timeouts, 5xx or 429s: each calls for a different response.
- [ ] For 429s, lower concurrency or the request rate before touching retries; retries against a rate limit make it worse.
- [ ] Check that the fallback model is serving and that its answers carry the degraded label.
- [ ] Check the provider's status page and open a ticket with the request ids from the traces.
- [ ] If the outage will last, publish a policy that routes to the approved fallback model for longer; high-risk features stay off unvalidated models.
- [ ] When the provider recovers, watch the breaker's half-open probes succeed before declaring the incident over.
",
        dependencies: &["model_provider"],
        failure_types: &["breaker_open", "timeout_rate", "fallback_rate"],
    },
    BuiltinRunbook {
        slug: "retrieval-degraded",
        title: "Retrieval degraded: vector store, reranker or search index",
        body: "\
Answers are being built from weaker evidence because part of retrieval is failing.

- [ ] Find which stage fails: the vector store, lexical search or the reranker.
- [ ] If only the reranker is down, check that fused ranking is serving and that answers still cite enough evidence.
- [ ] If both the vector store and lexical search fail, answers must stop rather than guess: confirm the service refuses to answer without evidence.
- [ ] Check the index's freshness; a stale index is a quality incident even when every call succeeds.
- [ ] Restore the failing component, then watch the degraded rate fall back to its usual level.
",
        dependencies: &["vector_db", "lexical_search", "reranker", "embedding"],
        failure_types: &["degraded_rate", "fallback_rate"],
    },
    BuiltinRunbook {
        slug: "case-record-outage",
        title: "Case record system unavailable",
        body: "\
The case record system cannot be read or written. Case work must fail closed: no decision is made without the record.

- [ ] Confirm that requests needing the record fail with a clear message rather than proceeding on partial data.
- [ ] Check for writes whose outcome is unknown (timeouts after sending); they are dead letters marked as side effects.
- [ ] Tell case workers that case actions are paused, and how long the pause is expected to last.
- [ ] Once the system is back, reconcile the uncertain writes against the record before redriving anything.
- [ ] Redrive the dead letters in small batches, each approved by a second person.
",
        dependencies: &["case_record"],
        failure_types: &["breaker_open", "dlq_depth"],
    },
    BuiltinRunbook {
        slug: "approval-service-outage",
        title: "Approval service unavailable",
        body: "\
High-risk actions need an approval that cannot currently be obtained. They must wait; nothing acts without approval.

- [ ] Confirm that high-risk actions are paused, not proceeding and not failing silently.
- [ ] Check how many actions are waiting, and whether any has a deadline that matters to a person.
- [ ] Escalate actions with deadlines to a named approver who can decide outside the system, and record the decision.
- [ ] When the service is back, check that paused actions resume once each, with their idempotency keys.
",
        dependencies: &["approval_service"],
        failure_types: &["breaker_open", "dlq_depth"],
    },
    BuiltinRunbook {
        slug: "dlq-growth",
        title: "Dead-letter queue growing",
        body: "\
Work is failing for good faster than people are dealing with it.

- [ ] Open the service's dead-letter page and group by error class and failed node: one cause usually dominates.
- [ ] Fix or wait out that cause before redriving; a redrive into the same failure only refills the queue.
- [ ] Cancel entries that no longer matter (with a reason) so the queue shows what does.
- [ ] Redrive the rest in batches, with an approver for anything that has side effects, and watch for new entries.
- [ ] Check the oldest entry's age: anything older than its task's deadline needs a person, not a redrive.
",
        dependencies: &[],
        failure_types: &["dlq_depth", "dlq_oldest_age"],
    },
    BuiltinRunbook {
        slug: "cost-budget",
        title: "Cost or token budget nearly spent",
        body: "\
Spending is on course to reach the budget before the period ends. When it does, requests are refused or degraded.

- [ ] Find which feature and model the spend comes from, on the service page.
- [ ] Look for loops: retries, agents re-planning, or one tenant sending far more than usual.
- [ ] Decide with the owner whether to raise the budget (a policy change, approved) or let the limit hold.
- [ ] If the limit will hold, make sure refused requests get a clear message rather than an error.
",
        dependencies: &["model_provider"],
        failure_types: &["cost_budget"],
    },
    BuiltinRunbook {
        slug: "retry-storm",
        title: "Retry amplification",
        body: "\
Each call is being tried several times, multiplying the load on a dependency that is already failing.

- [ ] Check the retry budget: when it is exhausted, retries stop on their own; when it is not, it may be too large.
- [ ] Check that only transient errors are retried (timeouts, 429, 503) and never validation or authorisation failures.
- [ ] Confirm backoff uses jitter, so that retries from many instances do not arrive together.
- [ ] If the dependency is down, let the breaker open instead of retrying into it; lower the retry limit through a policy change if needed.
",
        dependencies: &[],
        failure_types: &["retry_amplification"],
    },
    BuiltinRunbook {
        slug: "load-shedding",
        title: "Load shedding or bulkheads rejecting work",
        body: "\
The service is refusing work to protect itself: queues are full or latency is over the admission limit.

- [ ] Check which priority classes are shed; interactive and high-risk work should be the last to go.
- [ ] Find the slow dependency behind the backlog; shedding is the symptom, not the cause.
- [ ] Add capacity if the load is real, or find the client sending unusual traffic if it is not.
- [ ] Watch shed and rejection rates return to zero before closing the incident.
",
        dependencies: &[],
        failure_types: &["shed_rate"],
    },
    BuiltinRunbook {
        slug: "structured-output-failures",
        title: "Model output failing validation",
        body: "\
The model's structured output often fails its schema and is being repaired or retried.

- [ ] Check whether one prompt, model version or feature accounts for most of the repairs.
- [ ] Compare with the last model or prompt change; roll it back through the policy if it lines up.
- [ ] Make sure outputs that cannot be repaired fail safely and are not passed on as if valid.
- [ ] Add the failing outputs to the evaluation set.
",
        dependencies: &["model_provider"],
        failure_types: &["repair_rate"],
    },
    BuiltinRunbook {
        slug: "error-budget-burn",
        title: "Error budget burning",
        body: "\
A service level objective is spending its error budget faster than its window allows. \
A page means the budget runs out within days at this rate; a ticket means within the window.

- [ ] Open the service page's objectives: which objective burns, since when, and how much budget is left.
- [ ] Check whether a canary or a policy publish lines up with the start. Abort the canary or roll the policy back first; investigate after.
- [ ] Find the dependency behind it: the error, timeout and fallback rates on the service page, and any open breaker.
- [ ] If the burn is from degraded answers, check that users are told and that the fallbacks are the ones the matrix allows.
- [ ] When the budget is spent, freeze risky changes to this service until it recovers, and say so in the incident channel.
- [ ] Record what spent the budget in the reliability report's review.
",
        dependencies: &[],
        failure_types: &["slo_burn_fast", "slo_burn_medium", "slo_burn_slow"],
    },
    BuiltinRunbook {
        slug: "safety-goal-violated",
        title: "Safety goal violated",
        body: "\
A rule that must never break broke at least once: an unauthorised retrieval, an unapproved \
high-risk action, a duplicate side effect or an answer without evidence. This outranks every \
other alert.

- [ ] Find the requests: the service's own logs around the alert's start, by the violation named in the alert.
- [ ] Contain: force the component involved off (a breaker forced open, a fallback row removed) until the cause is known.
- [ ] Tell the people affected, following the service's data-handling procedure.
- [ ] Check the dead-letter queue and the audit log for actions taken in the same window.
- [ ] Find the policy or code change that allowed it and add a test that would have caught it.
",
        dependencies: &[],
        failure_types: &["safety_violations"],
    },
];

/// Stores each library runbook that does not exist yet, as version 1 by
/// `ballast`. Runs at every start and never touches a runbook that exists,
/// edited or not. Like a migration's rows, this is not audited: nobody did it.
pub async fn seed(store: &Store, now_ms: i64) -> StoreResult<()> {
    for book in LIBRARY {
        let links = serde_json::to_string(&book.links()).map_err(|e| {
            crate::store::StoreError::Corrupt(format!("library runbook links: {e}"))
        })?;
        let steps = i64::try_from(super::steps(book.body).len()).unwrap_or(i64::MAX);
        store
            .seed_runbook(book.slug, book.title, book.body, &links, steps, now_ms)
            .await?;
    }
    Ok(())
}
