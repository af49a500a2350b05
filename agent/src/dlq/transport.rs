//! How dead-letter reports and action acknowledgements reach the control
//! plane: a [`DlqTransport`] (the [`ControlPlane`] client, or a test's
//! stand-in) and [`deliver`], which resends what is safe to resend.
//!
//! Both calls are idempotent on the control plane: a report per run and
//! failed node, an acknowledgement per action. So a call whose answer was
//! lost, or that met a control plane restarting, may simply be sent again;
//! that is what [`deliver`] does, with capped and jittered backoff so that
//! a fleet coming back together does not arrive in one wave. A refusal
//! (4xx other than 408 and 429) is final: sending the same bytes again
//! would get the same answer.

use crate::client::{ClientError, ControlPlane};
use crate::random::RandomSource;
use crate::retry::Backoff;
use http::StatusCode;
use shared::policy::Jitter;
use shared::protocol::{ActionAck, DeadLetterAck, DeadLetterReport};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The dead-letter half of the agent protocol.
pub trait DlqTransport: Send + Sync + 'static {
    /// `POST /agent/dead-letters`: the entry's id, when the control plane
    /// sends one back.
    fn report(
        &self,
        report: &DeadLetterReport,
    ) -> impl Future<Output = Result<Option<DeadLetterAck>, ClientError>> + Send;

    /// `POST /agent/actions/{id}/ack`.
    fn ack(
        &self,
        action_id: &str,
        ack: &ActionAck,
    ) -> impl Future<Output = Result<(), ClientError>> + Send;
}

impl DlqTransport for ControlPlane {
    async fn report(
        &self,
        report: &DeadLetterReport,
    ) -> Result<Option<DeadLetterAck>, ClientError> {
        self.dead_letter(report).await
    }

    async fn ack(&self, action_id: &str, ack: &ActionAck) -> Result<(), ClientError> {
        match self.ack_action(action_id, ack).await {
            // The status was a success; only the body did not parse, and an
            // acknowledgement's answer carries nothing the agent needs.
            Err(ClientError::Decode(_)) => Ok(()),
            other => other,
        }
    }
}

impl<T: DlqTransport> DlqTransport for Arc<T> {
    fn report(
        &self,
        report: &DeadLetterReport,
    ) -> impl Future<Output = Result<Option<DeadLetterAck>, ClientError>> + Send {
        (**self).report(report)
    }

    fn ack(
        &self,
        action_id: &str,
        ack: &ActionAck,
    ) -> impl Future<Output = Result<(), ClientError>> + Send {
        (**self).ack(action_id, ack)
    }
}

/// How [`deliver`] resends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRetry {
    /// Sends at most this many times in all (at least once).
    pub max_attempts: u32,
    /// The shortest wait between two sends.
    pub base_delay: Duration,
    /// The longest wait between two sends.
    pub max_delay: Duration,
}

impl Default for DeliveryRetry {
    /// Ten sends over roughly half a minute to a minute: about as long as
    /// the default acknowledgement timeout of a dead-letter policy (60 s),
    /// after which the control plane has marked the action uncertain.
    fn default() -> DeliveryRetry {
        DeliveryRetry {
            max_attempts: 10,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// What became of a call handed to [`deliver`].
#[derive(Debug)]
pub enum Delivery<T> {
    /// The control plane accepted it.
    Delivered {
        /// Its answer.
        value: T,
        /// Sends it took.
        attempts: u32,
    },
    /// The control plane refused it (a 4xx such as 409: another outcome
    /// was acknowledged for this action). Not resent: the answer would not
    /// change.
    Refused {
        /// The refusal.
        error: ClientError,
        /// Sends made.
        attempts: u32,
    },
    /// Every send failed in a way that might have passed (no connection, a
    /// 5xx); the attempts ran out.
    GaveUp {
        /// The last failure.
        error: ClientError,
        /// Sends made.
        attempts: u32,
    },
}

impl<T> Delivery<T> {
    /// Whether the control plane accepted the call.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Delivery::Delivered { .. })
    }

    /// How many times the call was sent.
    pub fn attempts(&self) -> u32 {
        match self {
            Delivery::Delivered { attempts, .. }
            | Delivery::Refused { attempts, .. }
            | Delivery::GaveUp { attempts, .. } => *attempts,
        }
    }

    /// The control plane's answer, if it accepted the call.
    pub fn value(self) -> Option<T> {
        match self {
            Delivery::Delivered { value, .. } => Some(value),
            Delivery::Refused { .. } | Delivery::GaveUp { .. } => None,
        }
    }
}

/// Whether sending the same call again might succeed: no connection, a
/// server error, a request timeout or a rate limit might pass; any other
/// answer would be given again.
pub fn is_transient(error: &ClientError) -> bool {
    match error {
        ClientError::Transport(_) => true,
        ClientError::Status { status, .. } => {
            status.is_server_error()
                || *status == StatusCode::TOO_MANY_REQUESTS
                || *status == StatusCode::REQUEST_TIMEOUT
        }
        ClientError::Decode(_) => false,
    }
}

/// Sends an idempotent call with `send`, again after a capped, jittered
/// backoff while it fails transiently (see [`is_transient`]), at most
/// `retry.max_attempts` times. Only for calls the control plane treats as
/// idempotent: a lost answer means the call may have landed.
pub async fn deliver<T, F, Fut>(
    retry: &DeliveryRetry,
    random: &dyn RandomSource,
    mut send: F,
) -> Delivery<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    // Decorrelated jitter never waits less than the base: a control plane
    // that is restarting is not hit again at once.
    let mut backoff = Backoff::new(
        retry.base_delay.as_millis() as u64,
        retry.max_delay.as_millis() as u64,
        Jitter::Decorrelated,
    );
    let most = retry.max_attempts.max(1);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match send().await {
            Ok(value) => return Delivery::Delivered { value, attempts },
            Err(error) if !is_transient(&error) => return Delivery::Refused { error, attempts },
            Err(error) if attempts >= most => return Delivery::GaveUp { error, attempts },
            Err(error) => {
                let wait = backoff.delay(attempts, random);
                tracing::debug!(%error, attempts, ?wait, "control-plane call failed; resending");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SplitMix64;
    use std::cell::Cell;

    fn status(code: u16) -> ClientError {
        ClientError::Status {
            status: StatusCode::from_u16(code).unwrap(),
            body: String::new(),
        }
    }

    #[test]
    fn only_failures_that_might_pass_are_transient() {
        assert!(is_transient(&ClientError::Transport("reset".into())));
        for code in [500, 502, 503, 504, 408, 429] {
            assert!(is_transient(&status(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422] {
            assert!(!is_transient(&status(code)), "{code}");
        }
        assert!(!is_transient(&ClientError::Decode("x".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_resent_within_the_cap_and_refusals_are_not() {
        let retry = DeliveryRetry {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        let random = SplitMix64::seeded(1);
        let sends = Cell::new(0);
        let started = tokio::time::Instant::now();
        let out = deliver(&retry, &random, || {
            sends.set(sends.get() + 1);
            let n = sends.get();
            async move { if n < 3 { Err(status(503)) } else { Ok(n) } }
        })
        .await;
        assert_eq!(out.attempts(), 3);
        assert_eq!(out.value(), Some(3));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited <= Duration::from_millis(600),
            "two waits, each within 100..=300 ms: {waited:?}"
        );

        sends.set(0);
        let out = deliver(&retry, &random, || {
            sends.set(sends.get() + 1);
            async { Err::<(), _>(status(503)) }
        })
        .await;
        assert!(
            matches!(out, Delivery::GaveUp { attempts: 4, .. }),
            "{out:?}"
        );
        assert_eq!(sends.get(), 4);

        sends.set(0);
        let out = deliver(&retry, &random, || {
            sends.set(sends.get() + 1);
            async { Err::<(), _>(status(409)) }
        })
        .await;
        assert!(
            matches!(out, Delivery::Refused { attempts: 1, .. }),
            "{out:?}"
        );
        assert_eq!(sends.get(), 1);
    }
}
