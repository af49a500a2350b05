//! What a request ends as: its status, its confidence and what the user is
//! told. Built step by step from what the guard says about each call, so a
//! degraded answer is labelled by the enforcement code, not by the demo.

use agent::{Guarded, Refusal};
use shared::policy::{AdmissionMode, DegradedStatus};

/// The result of one request or workflow run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The worst status any step earned.
    pub status: DegradedStatus,
    /// 100 minus the fallbacks' confidence penalties.
    pub confidence_percent: u32,
    /// What the user is told, one line per step that was not normal.
    pub messages: Vec<String>,
    /// The fallback rows taken, as `component/failure`.
    pub fallbacks: Vec<String>,
    /// The must-fail-closed invariant that stopped the request, if any.
    pub fail_closed: Option<String>,
}

impl Default for Outcome {
    fn default() -> Outcome {
        Outcome {
            status: DegradedStatus::Normal,
            confidence_percent: 100,
            messages: Vec::new(),
            fallbacks: Vec::new(),
            fail_closed: None,
        }
    }
}

impl Outcome {
    /// A request the service refused at the door.
    pub fn refused_at_admission(refusal: &Refusal) -> Outcome {
        let message = match refusal {
            Refusal::Shed { user_message, .. } => user_message
                .clone()
                .unwrap_or_else(|| "The service is shedding load; try again later.".into()),
            Refusal::RateLimited => "Too many requests; slow down.".into(),
            Refusal::Bulkhead(_) => "The service is at capacity; try again shortly.".into(),
            Refusal::DeadlineExpired => "The request ran out of time before it started.".into(),
        };
        Outcome {
            status: DegradedStatus::Refused,
            confidence_percent: 0,
            messages: vec![message],
            ..Outcome::default()
        }
    }

    /// Notes the admission mode: a degraded or queued admission labels the
    /// whole answer.
    pub fn admitted(&mut self, mode: AdmissionMode, message: Option<&str>) {
        let status = match mode {
            AdmissionMode::Normal => return,
            AdmissionMode::Degraded => DegradedStatus::Degraded,
            AdmissionMode::Queued => DegradedStatus::Queued,
            AdmissionMode::Rejected => DegradedStatus::Refused,
        };
        self.worsen(status, message.map(str::to_owned));
    }

    /// Takes in what the guard said about one call. Returns whether the
    /// call produced a value.
    pub fn absorb<T, E>(&mut self, guarded: &Guarded<T, E>) -> bool {
        if guarded.is_ok() {
            return true;
        }
        self.worsen(guarded.status, guarded.user_message().map(str::to_owned));
        if let Some(f) = guarded.fallback() {
            self.fallbacks.push(f.row.clone());
            self.confidence_percent = self
                .confidence_percent
                .saturating_sub(f.confidence_penalty_percent);
        }
        if let Some(invariant) = guarded.fail_closed() {
            self.fail_closed.get_or_insert_with(|| invariant.to_owned());
        }
        false
    }

    /// Raises the status to at least `status`, adding `message` once.
    pub fn worsen(&mut self, status: DegradedStatus, message: Option<String>) {
        self.status = self.status.max(status);
        if let Some(m) = message
            && !self.messages.contains(&m)
        {
            self.messages.push(m);
        }
        if matches!(status, DegradedStatus::Refused) {
            self.confidence_percent = 0;
        }
    }

    /// Whether the request may go on: it has not been refused, paused or
    /// stopped by an invariant.
    pub fn may_continue(&self) -> bool {
        self.fail_closed.is_none()
            && !matches!(
                self.status,
                DegradedStatus::Refused | DegradedStatus::Paused | DegradedStatus::Queued
            )
    }
}
