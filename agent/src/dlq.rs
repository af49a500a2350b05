//! Dead letters: reporting work that failed for good, and executing the
//! approved actions the control plane sends back, each exactly once.
//!
//! The action's id is its idempotency key. An action redelivered (a
//! reconnect, a replica fan-out) returns the stored acknowledgement without
//! running the handler again, and that includes a failed run: "tried and
//! failed, nothing half-done" is an outcome, not an invitation to retry.
//!
//! * [`dead_letter`] builds the report of work that failed for good;
//!   [`DlqTransport::report`] sends it, through [`deliver`] to survive a
//!   control plane that is briefly away.
//! * [`ActionRunner`] drains the approved actions from the stream, runs
//!   each through [`ActionExecutor`] with the service's [`ActionHandler`],
//!   and acknowledges the outcome.

mod runner;
mod transport;

pub use runner::{ActionHandler, ActionRunner, Handled};
pub use transport::{Delivery, DeliveryRetry, DlqTransport, deliver, is_transient};

use crate::idempotency::{DedupStore, Fingerprint, IdempotencyKey, Once, OnceError, run_once};
use shared::policy::ErrorClass;
use shared::protocol::{ActionAck, ActionOutcome, DeadLetterReport, DlqAction};
use std::future::Future;

/// The longest error message the control plane stores, in bytes.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

/// `message` as the control plane accepts it: control characters (other
/// than newlines and tabs) become spaces, and a message past
/// [`MAX_ERROR_MESSAGE_BYTES`] is cut at a character boundary and marked,
/// so that an overlong upstream error cannot get a dead letter refused.
fn error_message(message: &str) -> String {
    const CUT: &str = " …";
    let clean: String = message
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect();
    if clean.len() <= MAX_ERROR_MESSAGE_BYTES {
        return clean;
    }
    let mut end = MAX_ERROR_MESSAGE_BYTES - CUT.len();
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", &clean[..end])
}

/// Builds the report of a dead letter. The payload stays in the service;
/// only its hash travels, so the control plane never holds personal data.
/// The message is cleaned of control characters and cut to the control
/// plane's bound ([`MAX_ERROR_MESSAGE_BYTES`]).
#[allow(clippy::too_many_arguments)]
pub fn dead_letter(
    run_id: &str,
    task_type: &str,
    failed_node: &str,
    error_type: ErrorClass,
    error_message: &str,
    retry_count: u32,
    last_checkpoint: Option<&str>,
    created_at_ms: i64,
    payload: &[u8],
) -> DeadLetterReport {
    DeadLetterReport {
        run_id: run_id.to_owned(),
        task_type: task_type.to_owned(),
        failed_node: failed_node.to_owned(),
        error_type,
        error_message: self::error_message(error_message),
        retry_count,
        last_checkpoint: last_checkpoint.map(str::to_owned),
        created_at_ms,
        payload_hash: Fingerprint::of(payload).as_str().to_owned(),
    }
}

/// What became of an action handed to [`ActionExecutor::execute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// The handler ran now; acknowledge this.
    Ran(ActionAck),
    /// The action had run before; this is the acknowledgement it produced.
    AlreadyRan(ActionAck),
    /// Another delivery of the action is running now; acknowledge nothing.
    InProgress,
    /// The dedup store failed, so the handler was not run (running it
    /// without a record could run it twice); acknowledge nothing, and the
    /// control plane redelivers or marks the action uncertain.
    NotRun(String),
}

impl Execution {
    /// The acknowledgement to send, if any.
    pub fn ack(&self) -> Option<&ActionAck> {
        match self {
            Execution::Ran(a) | Execution::AlreadyRan(a) => Some(a),
            Execution::InProgress | Execution::NotRun(_) => None,
        }
    }
}

/// Runs approved DLQ actions exactly once, keyed by action id.
#[derive(Debug)]
pub struct ActionExecutor<S> {
    store: S,
}

impl<S: DedupStore> ActionExecutor<S> {
    /// An executor remembering actions in `store` (use a durable one, so
    /// that a restart does not forget what ran).
    pub fn new(store: S) -> ActionExecutor<S> {
        ActionExecutor { store }
    }

    /// Runs `handler` for `action` unless it ran before. The handler
    /// answers `Ok(detail)` or `Err(detail)`; either is stored as the
    /// action's outcome.
    pub async fn execute<F, Fut>(&self, action: &DlqAction, handler: F) -> Execution
    where
        F: FnOnce(&DlqAction) -> Fut,
        Fut: Future<Output = Result<String, String>>,
    {
        let key = IdempotencyKey::raw(format!("dlq-action:{}", action.id));
        let payload = serde_json::to_vec(action).unwrap_or_default();
        let result = run_once(
            &self.store,
            &key,
            &Fingerprint::of(&payload),
            None,
            || async {
                Ok::<_, ()>(match handler(action).await {
                    Ok(detail) => ActionAck {
                        outcome: ActionOutcome::Succeeded,
                        detail,
                    },
                    Err(detail) => ActionAck {
                        outcome: ActionOutcome::Failed,
                        detail,
                    },
                })
            },
        )
        .await;
        match result {
            Ok(Once::Ran(ack)) => Execution::Ran(ack),
            Ok(Once::Replayed(ack)) => Execution::AlreadyRan(ack),
            Err(OnceError::InProgress) => Execution::InProgress,
            // The same id with different contents: the control plane sent
            // two different actions under one id. Never run the second.
            Err(OnceError::Conflict { .. }) => Execution::AlreadyRan(ActionAck {
                outcome: ActionOutcome::Failed,
                detail: String::from("action id reused with different contents; not executed"),
            }),
            Err(OnceError::Store(e)) => Execution::NotRun(e.to_string()),
            Err(OnceError::Failed(())) => Execution::InProgress,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_carries_the_payloads_hash_and_a_message_the_control_plane_accepts() {
        let long = format!("first\r\nline\u{7}{}", "é".repeat(3000));
        let r = dead_letter(
            "run-1",
            "case_review",
            "send_notice",
            ErrorClass::Connection,
            &long,
            2,
            Some("close_case"),
            1,
            b"{}",
        );
        assert!(r.error_message.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert!(
            r.error_message.starts_with("first \nline "),
            "{:?}",
            &r.error_message[..12]
        );
        assert!(r.error_message.ends_with(" …"));
        assert_eq!(r.payload_hash, Fingerprint::of(b"{}").as_str());
        assert_eq!(r.payload_hash.len(), 64);
        let short = dead_letter("r", "t", "n", ErrorClass::Timeout, "late", 1, None, 1, b"");
        assert_eq!(short.error_message, "late");
    }
}
