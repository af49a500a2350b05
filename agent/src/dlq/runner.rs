//! The action runner: the service's side of an approved dead-letter action,
//! from the stream to the acknowledgement.
//!
//! Each action goes through [`ActionExecutor`], so that its handler runs at
//! most once per action id whatever the number of deliveries, and then its
//! outcome is acknowledged with [`deliver`]. Only the acknowledgement is
//! ever resent, never the handler: the control plane takes the same
//! acknowledgement twice, while a handler run twice may repeat a side
//! effect. An action that is running elsewhere, or whose run could not be
//! recorded, is not acknowledged at all; the control plane marks it
//! uncertain when its acknowledgement timeout passes, and a person decides.

use super::transport::{Delivery, DeliveryRetry, DlqTransport, deliver};
use super::{ActionExecutor, Execution};
use crate::idempotency::DedupStore;
use crate::random::{RandomSource, SplitMix64};
use shared::protocol::{ActionAck, DlqAction};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// What a service does for an approved action: `Ok(detail)` when it is
/// done, `Err(detail)` when it was tried and failed with nothing left
/// half-done. Either detail goes to the audit log, so it says what happened
/// in words an operator can act on, without secrets or personal data.
///
/// The handler runs at most once per action id, so it must not assume it
/// will be called again to finish: a failure is final for that action, and
/// another attempt is a new action that a person approves.
pub trait ActionHandler: Send + Sync + 'static {
    /// Executes `action`.
    fn handle(&self, action: &DlqAction) -> impl Future<Output = Result<String, String>> + Send;
}

/// An async closure taking the action is a handler.
impl<F, Fut> ActionHandler for F
where
    F: Fn(DlqAction) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, String>> + Send,
{
    fn handle(&self, action: &DlqAction) -> impl Future<Output = Result<String, String>> + Send {
        self(action.clone())
    }
}

/// What became of one action in [`ActionRunner::handle`].
#[derive(Debug)]
pub struct Handled {
    /// Whether the handler ran, ran before, or could not run.
    pub execution: Execution,
    /// The acknowledgement's delivery; `None` when there was nothing to
    /// acknowledge (in progress elsewhere, or not run).
    pub ack: Option<Delivery<()>>,
}

/// Drains the approved actions a [`crate::client::LiveAgent`] receives
/// ([`crate::client::LiveAgent::take_actions`]), executes each at most once
/// with the service's [`ActionHandler`], and acknowledges the outcome.
///
/// ```no_run
/// use agent::client::{AgentConfig, LiveAgent};
/// use agent::dlq::ActionRunner;
/// use agent::idempotency::SqliteDedupStore;
/// use shared::protocol::DlqAction;
///
/// # async fn run(config: AgentConfig) -> Result<(), Box<dyn std::error::Error>> {
/// let live = LiveAgent::start(config).await;
/// // Durable: a restart must not forget which actions ran.
/// let store = SqliteDedupStore::open("data/actions.sqlite".as_ref()).await?;
/// let handler = |action: DlqAction| async move {
///     Ok::<_, String>(format!("{} of run {} done", action.kind.as_str(), action.run_id))
/// };
/// let runner = ActionRunner::new(store, handler, live.control_plane().clone());
/// if let Some(actions) = live.take_actions() {
///     runner.spawn(actions);
/// }
/// # Ok(())
/// # }
/// ```
pub struct ActionRunner<S, H, T> {
    executor: ActionExecutor<S>,
    handler: H,
    transport: T,
    retry: DeliveryRetry,
    random: Arc<dyn RandomSource>,
}

impl<S, H, T> std::fmt::Debug for ActionRunner<S, H, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionRunner")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<S, H, T> ActionRunner<S, H, T>
where
    S: DedupStore + 'static,
    H: ActionHandler,
    T: DlqTransport,
{
    /// A runner remembering executed actions in `store` (use a durable
    /// one, such as [`crate::idempotency::SqliteDedupStore`], so that a
    /// restart does not forget what ran), calling `handler`, acknowledging
    /// through `transport` with [`DeliveryRetry::default`].
    pub fn new(store: S, handler: H, transport: T) -> ActionRunner<S, H, T> {
        ActionRunner {
            executor: ActionExecutor::new(store),
            handler,
            transport,
            retry: DeliveryRetry::default(),
            random: Arc::new(SplitMix64::from_entropy()),
        }
    }

    /// How acknowledgements are resent.
    pub fn retry(mut self, retry: DeliveryRetry) -> Self {
        self.retry = retry;
        self
    }

    /// The source of the backoff's jitter; seed it in tests.
    pub fn random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = random;
        self
    }

    /// Runs the handler for `action` unless it ran before (see
    /// [`ActionExecutor::execute`]).
    pub async fn execute(&self, action: &DlqAction) -> Execution {
        // The closure's argument is the same action; the handler borrows
        // it from here so that its future may hold the reference.
        let execution = self
            .executor
            .execute(action, |_| self.handler.handle(action))
            .await;
        match &execution {
            Execution::Ran(ack) => tracing::info!(
                action = %action.id, run_id = %action.run_id, kind = action.kind.as_str(),
                outcome = ack.outcome.as_str(), detail = %ack.detail, "dead-letter action executed"
            ),
            Execution::AlreadyRan(ack) => tracing::info!(
                action = %action.id, outcome = ack.outcome.as_str(),
                "dead-letter action delivered again; acknowledging its stored outcome"
            ),
            Execution::InProgress => tracing::info!(
                action = %action.id,
                "dead-letter action is already running; its run will acknowledge it"
            ),
            Execution::NotRun(why) => tracing::error!(
                action = %action.id, error = %why,
                "dead-letter action not run: its execution could not be recorded"
            ),
        }
        execution
    }

    /// Acknowledges `ack` for the action `action_id`, resending while the
    /// control plane is unreachable or failing.
    pub async fn acknowledge(&self, action_id: &str, ack: &ActionAck) -> Delivery<()> {
        let delivery = deliver(&self.retry, &*self.random, || {
            self.transport.ack(action_id, ack)
        })
        .await;
        match &delivery {
            Delivery::Delivered { attempts, .. } => {
                tracing::debug!(action = %action_id, attempts, "action acknowledged");
            }
            Delivery::Refused { error, .. } => {
                tracing::error!(action = %action_id, %error, "the control plane refused the acknowledgement");
            }
            Delivery::GaveUp { error, attempts } => tracing::warn!(
                action = %action_id, %error, attempts,
                "acknowledgement not delivered; the control plane will mark the action uncertain"
            ),
        }
        delivery
    }

    /// Executes `action` and acknowledges its outcome, if it has one.
    pub async fn handle(&self, action: &DlqAction) -> Handled {
        let execution = self.execute(action).await;
        let ack = match execution.ack() {
            Some(ack) => Some(self.acknowledge(&action.id, ack).await),
            None => None,
        };
        Handled { execution, ack }
    }

    /// Handles every action from `actions` until the channel closes, then
    /// waits for the acknowledgements still being delivered.
    ///
    /// Handlers run one at a time, in the order the actions arrive, so two
    /// redrives never race for the same dependency; acknowledgements are
    /// delivered in the background, so an unreachable control plane does
    /// not hold up the next action. A handler that panics is treated as a
    /// crash mid-action: nothing is acknowledged (its record stays in
    /// progress, and the control plane marks the action uncertain), and the
    /// runner goes on with the next one.
    pub async fn run(self, mut actions: mpsc::Receiver<DlqAction>) {
        let me = Arc::new(self);
        let mut acks = JoinSet::new();
        loop {
            tokio::select! {
                // Collects finished deliveries so the set does not grow.
                Some(_) = acks.join_next(), if !acks.is_empty() => {}
                next = actions.recv() => {
                    let Some(action) = next else { break };
                    let runner = me.clone();
                    let id = action.id.clone();
                    let executed =
                        tokio::spawn(async move { (runner.execute(&action).await, action) }).await;
                    let (execution, action) = match executed {
                        Ok(done) => done,
                        Err(e) => {
                            tracing::error!(action = %id, error = %e, "dead-letter action handler panicked; not acknowledged");
                            continue;
                        }
                    };
                    if let Some(ack) = execution.ack().cloned() {
                        let runner = me.clone();
                        acks.spawn(async move { runner.acknowledge(&action.id, &ack).await });
                    }
                }
            }
        }
        while acks.join_next().await.is_some() {}
    }

    /// Spawns [`ActionRunner::run`] on the current runtime.
    pub fn spawn(self, actions: mpsc::Receiver<DlqAction>) -> JoinHandle<()> {
        tokio::spawn(self.run(actions))
    }
}
