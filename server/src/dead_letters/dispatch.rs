//! From an approved action to exactly one execution.
//!
//! Each open agent stream of a service asks [`claim`] for work when it is
//! woken: on connect, when an action becomes ready on this replica
//! ([`Dispatcher::wake`]), when another replica says so (Postgres `NOTIFY`
//! on [`NOTIFY_CHANNEL`]), and on a slow poll that covers a missed
//! notification. An action is revalidated just before it leaves, then moved
//! from `approved` to `dispatched` by one conditional update, so only one
//! stream on one replica ever sends it. A stream that reconnects gets back
//! the actions dispatched to its instance and not yet acknowledged; the
//! agent's idempotency store turns that redelivery into a replayed ack.
//! Without an ack by its deadline an action becomes `uncertain` ([`sweep`])
//! and is never sent again on its own.

use super::{Rules, actions::expire, end_and_reopen, target};
use crate::app::App;
use crate::approvals::still_approver;
use crate::auth::ServicePrincipal;
use crate::error::{ApiError, ApiResult};
use crate::group_commit::GroupCommit;
use crate::store::{
    AckResult, AckWrite, ActionRow, AuditRecord, Claim, Heard, IngestWrite, Ingested, NewEvent,
    Transition,
};
use axum::http::StatusCode;
use serde_json::json;
use shared::api::ActionStatus;
use shared::protocol::{ActionAck, ActionOutcome, DlqAction, DlqActionKind};
use shared::role::{Permission, Role};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// The Postgres channel that tells other replicas an action is ready.
pub const NOTIFY_CHANNEL: &str = "ballast_dlq";
/// How often a stream looks for work nobody told it about.
pub const POLL_EVERY: Duration = Duration::from_secs(5);
/// How often expiries, missing acks and retention are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// The most acks (or reports) one transaction takes.
const ACK_GROUP: usize = 512;
/// Acks (or reports) waiting beyond this make agents wait too.
const ACK_QUEUE: usize = 4096;
/// The most actions one claim hands to one stream.
const CLAIM_BATCH: i64 = 256;

/// Wakes the streams of a service, and paces its redrives.
#[derive(Debug, Default)]
pub struct Dispatcher {
    channels: Mutex<HashMap<i64, watch::Sender<u64>>>,
    pacing: Mutex<HashMap<i64, Pace>>,
    acks: std::sync::OnceLock<GroupCommit<AckWrite, AckResult>>,
    reports: std::sync::OnceLock<GroupCommit<IngestWrite, Ingested>>,
}

/// A token bucket of redrives per second for one service, on this replica.
#[derive(Debug, Clone, Copy)]
struct Pace {
    tokens: f64,
    at_ms: i64,
}

impl Dispatcher {
    /// The wake-ups of `service_id`'s streams.
    pub fn subscribe(&self, service_id: i64) -> watch::Receiver<u64> {
        self.channels
            .lock()
            .expect("dispatcher lock")
            .entry(service_id)
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    fn wake_here(&self, service_id: i64) {
        if let Some(tx) = self
            .channels
            .lock()
            .expect("dispatcher lock")
            .get(&service_id)
        {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Tells every stream of `service_id`, on every replica, to look for work.
    pub async fn wake(&self, app: &App, service_id: i64) {
        self.wake_here(service_id);
        if let Err(e) = app
            .store
            .notify(NOTIFY_CHANNEL, &service_id.to_string())
            .await
        {
            // The slow poll still finds the work; nothing is lost.
            tracing::warn!(error = %e, "could not tell other replicas about a dead-letter action");
        }
    }

    /// The group commit of agents' acks, started on first use.
    fn acks(&self, app: &App) -> &GroupCommit<AckWrite, AckResult> {
        self.acks.get_or_init(|| {
            let store = app.store.clone();
            let clock = app.clock.clone();
            GroupCommit::spawn(ACK_GROUP, ACK_QUEUE, move |acks| {
                let store = store.clone();
                let now = clock.now_ms();
                async move { store.ack_dlq_actions(&acks, now).await }
            })
        })
    }

    /// The group commit of agents' dead-letter reports, started on first use.
    pub(super) fn reports(&self, app: &App) -> &GroupCommit<IngestWrite, Ingested> {
        self.reports.get_or_init(|| {
            let store = app.store.clone();
            let clock = app.clock.clone();
            GroupCommit::spawn(ACK_GROUP, ACK_QUEUE, move |items| {
                let store = store.clone();
                let now = clock.now_ms();
                async move { store.ingest_dead_letters(&items, now).await }
            })
        })
    }

    /// Takes one redrive token of `service_id` at `rate` per second; `Err`
    /// holds how long until the next.
    fn pace(&self, service_id: i64, rate: u32, now_ms: i64) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        let mut pacing = self.pacing.lock().expect("dispatcher lock");
        let p = pacing.entry(service_id).or_insert(Pace {
            tokens: rate,
            at_ms: now_ms,
        });
        let elapsed = (now_ms - p.at_ms).max(0) as f64 / 1000.0;
        p.tokens = (p.tokens + elapsed * rate).min(rate);
        p.at_ms = now_ms;
        if p.tokens >= 1.0 {
            p.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - p.tokens) / rate))
        }
    }

    /// On Postgres: listens for other replicas' wake-ups for as long as the
    /// app lives, reconnecting with backoff.
    pub fn listen(app: &Arc<App>) {
        let weak: Weak<App> = Arc::downgrade(app);
        app.store.listen(NOTIFY_CHANNEL, move |heard| {
            let weak = weak.clone();
            async move {
                let Some(app) = weak.upgrade() else {
                    return false;
                };
                match heard {
                    // Streams poll, so nothing missed while away is lost.
                    Heard::Connected => {}
                    Heard::Message(payload) => {
                        if let Ok(id) = payload.parse::<i64>() {
                            app.dlq.wake_here(id);
                        }
                    }
                }
                true
            }
        });
    }
}

/// The protocol's view of an action.
fn wire(row: &ActionRow, kind: DlqActionKind) -> DlqAction {
    DlqAction {
        id: row.id.clone(),
        dead_letter_id: row.dead_letter_id.clone(),
        run_id: row.run_id.clone(),
        kind,
        requested_by: row.requested_by.clone(),
        approved_by: row
            .decided_by
            .clone()
            .unwrap_or_else(|| "policy: no approval needed".into()),
        reason: row.reason.clone(),
    }
}

/// Why an approved action may no longer run, checked at the last moment.
async fn revalidate(app: &App, row: &ActionRow, rules: &Rules) -> ApiResult<Option<String>> {
    let Some(entry) = app.store.dead_letter(&row.dead_letter_id).await? else {
        return Ok(Some("the dead letter is gone".into()));
    };
    if entry.revision != row.entry_revision {
        return Ok(Some(format!(
            "the dead letter changed after approval (revision {} → {})",
            row.entry_revision, entry.revision
        )));
    }
    if rules.version.map(|v| v as i64) != row.policy_version {
        return Ok(Some(format!(
            "the active policy changed after the request (version {:?} → {:?})",
            row.policy_version, rules.version
        )));
    }
    let needed_approval = row.approval_reasons != "[]";
    if needed_approval {
        let Some(approver) = row.decided_by.as_deref() else {
            return Ok(Some("the action needs an approval it does not have".into()));
        };
        if approver == row.requested_by {
            return Ok(Some("the approver is the requester".into()));
        }
        if let Err(why) = still_approver(app, approver).await? {
            return Ok(Some(format!("the approval no longer holds: {why}")));
        }
    }
    Ok(None)
}

async fn refuse(app: &App, row: &ActionRow, why: &str) -> ApiResult<bool> {
    end_and_reopen(
        app,
        row,
        &[ActionStatus::Approved.as_str()],
        ActionStatus::Refused,
        "ballast",
        why,
        format!("{} refused at dispatch: {why}", row.kind),
        json!({ "reason": why }),
    )
    .await
}

/// What a stream should send now, and when to look again if work is left
/// waiting for its redrive pace.
#[derive(Debug, Default)]
pub struct Claimed {
    /// Actions to send, in order.
    pub actions: Vec<DlqAction>,
    /// Look again after this, even if nothing wakes the stream.
    pub retry_after: Option<Duration>,
}

/// Claims the work of `service_id` for the stream of `instance`. `sent`
/// holds what this stream already sent, so that a wake-up does not resend.
pub async fn claim(
    app: &App,
    service_id: i64,
    instance: &str,
    sent: &mut HashSet<String>,
) -> ApiResult<Claimed> {
    let rules = Rules::of(app, service_id).await?;
    let now = app.clock.now_ms();
    let ack_ms = i64::try_from(rules.dead_letters.ack_timeout_s)
        .unwrap_or(3600)
        .saturating_mul(1000);
    let approver_roles: Vec<&str> = Role::ALL
        .iter()
        .filter(|r| r.allows(Permission::Approve))
        .map(|r| r.as_str())
        .collect();
    let mut out = Claimed::default();
    // The common case in one transaction: every valid, unpaced action.
    let fast = app
        .store
        .claim_dlq_actions(&Claim {
            service_id,
            instance,
            policy_version: rules.version.map(|v| v as i64),
            approver_roles: &approver_roles,
            now_ms: now,
            ack_deadline: now.saturating_add(ack_ms),
            limit: CLAIM_BATCH,
        })
        .await?;
    if fast.len() as i64 == CLAIM_BATCH {
        out.retry_after = Some(Duration::ZERO);
    }
    for row in fast {
        if let Some(kind) = DlqActionKind::from_name(&row.kind) {
            sent.insert(row.id.clone());
            out.actions.push(wire(&row, kind));
        }
    }
    // The rest one by one: redeliveries after a reconnect, redrives (paced),
    // and actions that no longer pass a check, which are refused or expired
    // with their reason.
    let rows = app
        .store
        .dlq_actions_for_dispatch(service_id, instance, CLAIM_BATCH)
        .await?;
    for row in rows {
        let Some(kind) = DlqActionKind::from_name(&row.kind) else {
            continue;
        };
        if row.status == ActionStatus::Dispatched.as_str() {
            // Ours and unacknowledged: a reconnect. Send it again; the
            // agent's idempotency store will not run it twice.
            if sent.insert(row.id.clone()) {
                out.actions.push(wire(&row, kind));
            }
            continue;
        }
        let now = app.clock.now_ms();
        if now >= row.expires_at {
            expire(app, &row).await?;
            continue;
        }
        if let Some(why) = revalidate(app, &row, &rules).await? {
            refuse(app, &row, &why).await?;
            continue;
        }
        if kind == DlqActionKind::Redrive
            && let Err(wait) = app
                .dlq
                .pace(service_id, rules.dead_letters.redrive_per_s, now)
        {
            out.retry_after = Some(wait.max(Duration::from_millis(10)));
            continue;
        }
        let audit = AuditRecord::new(
            "ballast",
            "dlq.action_dispatched",
            target(&row.dead_letter_id),
            json!({ "action": row.id, "kind": row.kind, "instance": instance }),
        );
        let moved = app
            .store
            .transition_dlq_action(&Transition {
                action_id: &row.id,
                from: &[ActionStatus::Approved.as_str()],
                to: ActionStatus::Dispatched.as_str(),
                decided: None,
                expires_at: None,
                dispatched: Some((instance, now.saturating_add(ack_ms))),
                finished: None,
                entry: None,
                event: NewEvent {
                    actor: "ballast",
                    event: "action.dispatched",
                    detail: format!("{} sent to instance {instance}", row.kind),
                },
                audit: Some(&audit),
                now_ms: now,
            })
            .await?;
        // Another stream won it: it is theirs to send.
        if moved {
            sent.insert(row.id.clone());
            out.actions.push(wire(&row, kind));
        }
    }
    Ok(out)
}

/// The longest outcome detail kept.
const MAX_DETAIL_LEN: usize = 4096;

/// Records an agent's outcome, in a group commit with the others arriving
/// at the same moment. A repeat of the same outcome is accepted and changes
/// nothing; a late ack of an `uncertain` action settles it.
pub async fn ack(app: &App, agent: &ServicePrincipal, id: &str, ack: &ActionAck) -> ApiResult<()> {
    if ack.detail.len() > MAX_DETAIL_LEN {
        return Err(ApiError::invalid(
            "detail",
            format!("detail is at most {MAX_DETAIL_LEN} bytes"),
        ));
    }
    let not_found = || ApiError::not_found("no such action for this service");
    let service_id = app
        .hub
        .service_id(&agent.service, &agent.environment)
        .await?
        .ok_or_else(not_found)?;
    let result = app
        .dlq
        .acks(app)
        .write(AckWrite {
            action_id: id.to_owned(),
            service_id,
            succeeded: ack.outcome == ActionOutcome::Succeeded,
            detail: ack.detail.clone(),
            actor: format!("token:{}", agent.token_id),
        })
        .await?;
    match result {
        AckResult::Applied | AckResult::Repeated => Ok(()),
        AckResult::NotFound => Err(not_found()),
        AckResult::Conflict(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "outcome_conflict",
            format!("the action is {status}; only a dispatched action takes an outcome, once"),
        )),
    }
}

/// Expires undecided and undispatched actions, marks unacknowledged ones
/// uncertain, and deletes entries past retention. Safe on every replica at
/// once: each change is a conditional update.
pub async fn sweep(app: &App) -> ApiResult<()> {
    let now = app.clock.now_ms();
    for row in app
        .store
        .dlq_actions_due(&["requested", "approved"], false, now, 500)
        .await?
    {
        expire(app, &row).await?;
    }
    for row in app
        .store
        .dlq_actions_due(&["dispatched"], true, now, 500)
        .await?
    {
        let instance = row.dispatched_to.clone().unwrap_or_default();
        let why = format!(
            "no acknowledgement from instance {instance} in time: it may or may not have run; \
             check the service before acting again"
        );
        end_and_reopen(
            app,
            &row,
            &[ActionStatus::Dispatched.as_str()],
            ActionStatus::Uncertain,
            "ballast",
            &why,
            why.clone(),
            json!({ "instance": instance }),
        )
        .await?;
    }
    let keep_ms = i64::from(app.settings.dead_letter_retention_days) * 86_400_000;
    app.store
        .prune_dead_letters(now.saturating_sub(keep_ms), 1000)
        .await?;
    let depths = app.store.dead_letter_depths().await?;
    app.telemetry.set_dead_letter_depths(depths);
    Ok(())
}

/// Sweeps every [`SWEEP_EVERY`] for as long as the app lives.
pub fn start(app: &Arc<App>) {
    Dispatcher::listen(app);
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(app) = weak.upgrade() else { return };
            if let Err(e) = sweep(&app).await {
                tracing::warn!(error = %e.message, "could not sweep dead-letter actions");
            }
        }
    });
}
