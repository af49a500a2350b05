//! Retrieval sources: what an answer does when one of its sources fails,
//! under the policy's `retrieval` section and its invariants.
//!
//! Each source's `on_failure` says it: `fail` (no answer), `degrade`
//! (answer, labelled degraded, with lower confidence), `omit` (answer as if
//! the source had returned nothing) or `ask_human` (hand the question to a
//! person). The agent applies it after the rules that outrank it:
//!
//! * a must-fail-closed invariant on the source (or its dependency) fails
//!   the answer, whatever `on_failure` says;
//! * a source the policy does not name fails: nobody said the answer may do
//!   without it;
//! * a required source is never silently omitted (validation refuses it; a
//!   policy that got through anyway fails instead), and with a
//!   `must_not_do` of kind `ungrounded_answer` a required source does not
//!   merely degrade the answer either;
//! * an omitted source is labelled degraded instead, so the caller learns
//!   the evidence is missing, when `hide_missing_evidence` is forbidden or
//!   a `may_degrade` invariant covers the failure (it promises a labelled
//!   answer, and gives the message when the source has none).
//!
//! [`Evidence`] gathers the outcomes of one answer's sources: whether the
//! answer may be given, its status, its confidence penalty and what the
//! caller is told.

use crate::compiled::CompiledPolicy;
use crate::state::Enforcement;
use shared::policy::{DegradedStatus, FailureType, Prohibition, SourceFailure};

/// What one failed source does to the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOutcome {
    /// The source.
    pub source: String,
    /// What happens, after the invariants and safety rules (see the
    /// module's documentation); may differ from the policy's `on_failure`.
    pub action: SourceFailure,
    /// The status the answer carries because of it.
    pub status: DegradedStatus,
    /// What the caller is told.
    pub user_message: Option<String>,
    /// How much the answer's confidence drops.
    pub confidence_penalty_percent: u32,
    /// The must-fail-closed invariant that stopped the answer, if any.
    pub fail_closed: Option<String>,
}

impl SourceOutcome {
    /// Whether the answer may still be given (degraded or with the source
    /// omitted).
    pub fn proceeds(&self) -> bool {
        matches!(self.action, SourceFailure::Degrade | SourceFailure::Omit)
    }
}

fn status_of(action: SourceFailure) -> DegradedStatus {
    match action {
        SourceFailure::Fail => DegradedStatus::Refused,
        SourceFailure::Degrade => DegradedStatus::Degraded,
        SourceFailure::Omit => DegradedStatus::Normal,
        SourceFailure::AskHuman => DegradedStatus::Paused,
    }
}

/// What a failure of `source` of type `failure` does to the answer under
/// `policy`.
pub fn source_failed(policy: &CompiledPolicy, source: &str, failure: FailureType) -> SourceOutcome {
    let requirement = policy
        .policy()
        .retrieval
        .as_ref()
        .and_then(|r| r.sources.get(source));
    let dependency = requirement.and_then(|r| r.dependency.as_deref());
    let invariant = policy
        .fail_closed(source, failure)
        .chain(
            dependency
                .into_iter()
                .flat_map(|d| policy.fail_closed(d, failure)),
        )
        .next();
    let unavailable = || format!("The {source} evidence is unavailable right now.");
    if let Some(invariant) = invariant {
        return SourceOutcome {
            source: source.to_owned(),
            action: SourceFailure::Fail,
            status: DegradedStatus::Refused,
            user_message: Some(invariant.description.clone()),
            confidence_penalty_percent: 0,
            fail_closed: Some(invariant.id.clone()),
        };
    }
    let Some(req) = requirement else {
        return SourceOutcome {
            source: source.to_owned(),
            action: SourceFailure::Fail,
            status: DegradedStatus::Refused,
            user_message: Some(unavailable()),
            confidence_penalty_percent: 0,
            fail_closed: None,
        };
    };
    let mut action = req.on_failure;
    if req.required
        && (action == SourceFailure::Omit
            || (action == SourceFailure::Degrade && policy.forbids(Prohibition::UngroundedAnswer)))
    {
        action = SourceFailure::Fail;
    }
    let may_degrade = policy
        .may_degrade(source, Some(failure))
        .or_else(|| dependency.and_then(|d| policy.may_degrade(d, Some(failure))));
    if action == SourceFailure::Omit
        && (policy.forbids(Prohibition::HideMissingEvidence) || may_degrade.is_some())
    {
        action = SourceFailure::Degrade;
    }
    let user_message = match action {
        SourceFailure::Omit => None,
        SourceFailure::Degrade => req
            .user_message
            .clone()
            .or_else(|| may_degrade.map(str::to_owned))
            .or_else(|| Some(unavailable())),
        _ => Some(req.user_message.clone().unwrap_or_else(unavailable)),
    };
    SourceOutcome {
        source: source.to_owned(),
        action,
        status: status_of(action),
        user_message,
        confidence_penalty_percent: match action {
            SourceFailure::Degrade => req.confidence_penalty_percent,
            _ => 0,
        },
        fail_closed: None,
    }
}

impl Enforcement {
    /// What a failure of retrieval `source` does to the answer under the
    /// policy in force (see [`source_failed`]); the status it gives the
    /// answer is counted against the source.
    pub fn source_failed(&self, source: &str, failure: FailureType) -> SourceOutcome {
        let outcome = source_failed(&self.policy(), source, failure);
        self.recorder().dependency(source).degraded(outcome.status);
        outcome
    }
}

/// The outcomes of one answer's failed sources, gathered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    failed: Vec<SourceOutcome>,
}

impl Evidence {
    /// No source has failed yet.
    pub fn new() -> Evidence {
        Evidence::default()
    }

    /// Adds a failed source's outcome.
    pub fn record(&mut self, outcome: SourceOutcome) {
        self.failed.push(outcome);
    }

    /// The failed sources' outcomes, in the order recorded.
    pub fn failed(&self) -> &[SourceOutcome] {
        &self.failed
    }

    /// Whether the answer may be given: every failed source lets it.
    pub fn may_answer(&self) -> bool {
        self.failed.iter().all(SourceOutcome::proceeds)
    }

    /// Whether a person must take the question over: a source says to ask
    /// one, and none says to fail.
    pub fn needs_human(&self) -> bool {
        !self.failed.iter().any(|o| o.action == SourceFailure::Fail)
            && self
                .failed
                .iter()
                .any(|o| o.action == SourceFailure::AskHuman)
    }

    /// The answer's status: the worst of its sources'.
    pub fn status(&self) -> DegradedStatus {
        self.failed
            .iter()
            .map(|o| o.status)
            .max()
            .unwrap_or(DegradedStatus::Normal)
    }

    /// The answer's confidence penalty: the sources' added up, at most 100.
    pub fn confidence_penalty_percent(&self) -> u32 {
        self.failed
            .iter()
            .map(|o| o.confidence_penalty_percent)
            .sum::<u32>()
            .min(100)
    }

    /// What the caller is told, one message per source that has one.
    pub fn user_messages(&self) -> impl Iterator<Item = &str> {
        self.failed.iter().filter_map(|o| o.user_message.as_deref())
    }
}
