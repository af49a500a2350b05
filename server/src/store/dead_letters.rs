//! Dead letters, their actions and their history. Every state change of an
//! action is one conditional `UPDATE … WHERE status IN (…)` inside a
//! transaction with its entry's change, its history event and (for people's
//! steps) its audit entry, so that two replicas, two approvers or an ack
//! racing an expiry can never both win.

use super::audit::append_audit;
use super::{AuditRecord, Store, StoreError, StoreResult, with_db};
use shared::protocol::DeadLetterReport;

/// A dead letter, with its service's name.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadLetterRow {
    /// Id.
    pub id: String,
    /// The owning service.
    pub service_id: i64,
    /// Its name.
    pub service: String,
    /// Its environment.
    pub environment: String,
    /// The run.
    pub run_id: String,
    /// The kind of work.
    pub task_type: String,
    /// The node that failed.
    pub failed_node: String,
    /// The error class's wire name.
    pub error_type: String,
    /// The message.
    pub error_message: String,
    /// Attempts made.
    pub retry_count: i64,
    /// Where a redrive resumes.
    pub last_checkpoint: Option<String>,
    /// Hex SHA-256 of the payload.
    pub payload_hash: String,
    /// The agent's time of failure.
    pub created_at: i64,
    /// First heard of.
    pub received_at: i64,
    /// Content last changed.
    pub updated_at: i64,
    /// Content revision, from 1.
    pub revision: i64,
    /// The entry's status's wire name.
    pub status: String,
    /// When it left the queue.
    pub resolved_at: Option<i64>,
}

/// An action, with what the listings show of its entry and service.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActionRow {
    /// Id.
    pub id: String,
    /// The entry.
    pub dead_letter_id: String,
    /// The entry's service.
    pub service_id: i64,
    /// Its name.
    pub service: String,
    /// Its environment.
    pub environment: String,
    /// The entry's run.
    pub run_id: String,
    /// The entry's task type.
    pub task_type: String,
    /// The kind's wire name.
    pub kind: String,
    /// Why.
    pub reason: String,
    /// For a manual completion.
    pub resolution_note: Option<String>,
    /// For an escalation.
    pub escalate_to: Option<String>,
    /// Who asked.
    pub requested_by: String,
    /// When.
    pub requested_at: i64,
    /// Why it needs approval, as a JSON array; `[]` when it does not.
    pub approval_reasons: String,
    /// When the request or its approval lapses.
    pub expires_at: i64,
    /// The active policy version at the request.
    pub policy_version: Option<i64>,
    /// The entry's revision at the request.
    pub entry_revision: i64,
    /// The status's wire name.
    pub status: String,
    /// Who approved, rejected or withdrew it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<i64>,
    /// Why.
    pub decision_reason: Option<String>,
    /// The instance it went to.
    pub dispatched_to: Option<String>,
    /// When.
    pub dispatched_at: Option<i64>,
    /// When it becomes uncertain without an ack.
    pub ack_deadline: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// The outcome's or the refusal's words.
    pub detail: Option<String>,
}

/// A service's dead-letter queue in two figures.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DepthRow {
    /// The service.
    pub service_id: i64,
    /// Its name.
    pub name: String,
    /// Its environment.
    pub environment: String,
    /// Entries open or pending.
    pub depth: i64,
    /// The oldest one's arrival.
    pub oldest: Option<i64>,
}

/// One history event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRow {
    /// Unix milliseconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub event: String,
    /// The action, if any.
    pub action_id: Option<String>,
    /// In words.
    pub detail: String,
}

/// A history event to record beside a change.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// Who.
    pub actor: &'a str,
    /// What, such as `action.approved`.
    pub event: &'a str,
    /// In words.
    pub detail: String,
}

/// One report to store.
#[derive(Debug, Clone)]
pub struct IngestWrite {
    /// The reporting token's service.
    pub service_id: i64,
    /// The report.
    pub report: DeadLetterReport,
    /// The id a new entry gets.
    pub new_id: String,
    /// `token:ID`.
    pub actor: String,
    /// The service's bound on live entries.
    pub max_live: i64,
}

/// What an ingest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// A new entry.
    Created(String),
    /// The same report again: nothing changed.
    Unchanged(String),
    /// The same run and node with different content: a new revision.
    Updated(String),
    /// The service has as many live entries as it may; nothing was stored.
    Full,
}

/// The filters of a search; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter<'a> {
    /// Service name.
    pub service: Option<&'a str>,
    /// Environment.
    pub environment: Option<&'a str>,
    /// Task type.
    pub task_type: Option<&'a str>,
    /// Failed node.
    pub failed_node: Option<&'a str>,
    /// Error class wire name.
    pub error_type: Option<&'a str>,
    /// Entry status wire name.
    pub status: Option<&'a str>,
    /// Received at or before (older than a minimum age).
    pub received_before: Option<i64>,
    /// Received at or after (younger than a maximum age).
    pub received_after: Option<i64>,
    /// Keyset cursor: strictly before this (received_at, id).
    pub before: Option<(i64, &'a str)>,
}

/// What [`Store::claim_dlq_actions`] may claim, and for whom.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// The service.
    pub service_id: i64,
    /// The instance the actions go to.
    pub instance: &'a str,
    /// The active policy version; actions requested under another are not
    /// claimed.
    pub policy_version: Option<i64>,
    /// The roles whose holders may approve, by wire name.
    pub approver_roles: &'a [&'a str],
    /// Unix milliseconds.
    pub now_ms: i64,
    /// When the claimed actions become uncertain without an ack.
    pub ack_deadline: i64,
    /// The most to claim.
    pub limit: i64,
}

/// An agent's outcome for one action.
#[derive(Debug, Clone)]
pub struct AckWrite {
    /// The action.
    pub action_id: String,
    /// The acking token's service: an action of another is not found.
    pub service_id: i64,
    /// Succeeded or failed.
    pub succeeded: bool,
    /// The agent's words.
    pub detail: String,
    /// `token:ID`.
    pub actor: String,
}

/// What became of one [`AckWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckResult {
    /// Recorded now.
    Applied,
    /// The same outcome was recorded before.
    Repeated,
    /// The action is in this other status.
    Conflict(String),
    /// No such action for this service.
    NotFound,
}

/// The entry's status once `kind` succeeded.
fn resolved_status(kind: &str) -> &'static str {
    match kind {
        "redrive" => "redriven",
        "cancel" => "cancelled",
        "manual_complete" => "completed",
        _ => "escalated",
    }
}

/// A change of an action's status, with what goes with it.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    /// The action.
    pub action_id: &'a str,
    /// The statuses it may be in now.
    pub from: &'a [&'a str],
    /// The status it moves to.
    pub to: &'a str,
    /// Who decided, and why (approve, reject, withdraw).
    pub decided: Option<(&'a str, &'a str)>,
    /// A new expiry (an approval starts its own clock).
    pub expires_at: Option<i64>,
    /// The instance it goes to, and its ack deadline.
    pub dispatched: Option<(&'a str, i64)>,
    /// Ends the action with these words.
    pub finished: Option<&'a str>,
    /// The entry's new status, and whether it leaves the queue.
    pub entry: Option<(&'a str, bool)>,
    /// The history event.
    pub event: NewEvent<'a>,
    /// The audit entry, for steps people and the dispatcher take.
    pub audit: Option<&'a AuditRecord>,
    /// Unix milliseconds.
    pub now_ms: i64,
}

const DEAD_LETTER_COLUMNS: &str = "d.id, d.service_id, s.name AS service, s.environment, d.run_id, \
     d.task_type, d.failed_node, d.error_type, d.error_message, d.retry_count, d.last_checkpoint, \
     d.payload_hash, d.created_at, d.received_at, d.updated_at, d.revision, d.status, d.resolved_at";

const ACTION_SELECT: &str = "SELECT a.id, a.dead_letter_id, a.service_id, s.name AS service, \
     s.environment, d.run_id, d.task_type, a.kind, a.reason, a.resolution_note, a.escalate_to, \
     a.requested_by, a.requested_at, a.approval_reasons, a.expires_at, a.policy_version, \
     a.entry_revision, a.status, a.decided_by, a.decided_at, a.decision_reason, a.dispatched_to, \
     a.dispatched_at, a.ack_deadline, a.finished_at, a.detail \
     FROM dlq_actions a JOIN dead_letters d ON d.id = a.dead_letter_id \
     JOIN services s ON s.id = a.service_id";

/// Inserts a history event inside the open transaction `$tx`.
macro_rules! insert_event {
    ($tx:expr, $entry:expr, $action:expr, $now:expr, $ev:expr) => {{
        let ev: &NewEvent<'_> = $ev;
        sqlx::query(
            "INSERT INTO dlq_events (dead_letter_id, action_id, at, actor, event, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($entry)
        .bind($action)
        .bind($now)
        .bind(ev.actor)
        .bind(ev.event)
        .bind(&ev.detail)
        .execute(&mut *$tx)
        .await?;
    }};
}

// The SQL built with `format!` here joins constants, column names chosen by
// a `bool` and `$n` placeholders, never input; input is always bound, which
// is why the strings are passed through `sqlx::AssertSqlSafe`.

/// `$1, $2, …` from `start`, one per item.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Stores reports in one transaction, each idempotently per (service,
    /// run, node) and as if alone. At most `max_live` entries of a service
    /// may be open or pending at once.
    pub async fn ingest_dead_letters(
        &self,
        items: &[IngestWrite],
        now_ms: i64,
    ) -> StoreResult<Vec<Ingested>> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let report = &item.report;
                let (service_id, new_id, actor) = (item.service_id, item.new_id.as_str(), item.actor.as_str());
                let error_type = report.error_type.as_str();
                let retry_count = i64::from(report.retry_count);
                // The first statement writes, so the transaction holds
                // SQLite's write lock from its start: a read first would
                // have to upgrade later, which fails at once (busy) when
                // another writer got in between.
                let inserted = sqlx::query(
                    "INSERT INTO dead_letters (id, service_id, run_id, task_type, failed_node, error_type, \
                     error_message, retry_count, last_checkpoint, payload_hash, created_at, received_at, \
                     updated_at, revision, status) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1, 'open') \
                     ON CONFLICT (service_id, run_id, failed_node) DO NOTHING",
                )
                .bind(new_id)
                .bind(service_id)
                .bind(&report.run_id)
                .bind(&report.task_type)
                .bind(&report.failed_node)
                .bind(error_type)
                .bind(&report.error_message)
                .bind(retry_count)
                .bind(&report.last_checkpoint)
                .bind(&report.payload_hash)
                .bind(report.created_at_ms)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 1 {
                    let (live,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM dead_letters \
                         WHERE service_id = $1 AND status IN ('open', 'pending')",
                    )
                    .bind(service_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if live > item.max_live {
                        sqlx::query("DELETE FROM dead_letters WHERE id = $1")
                            .bind(new_id)
                            .execute(&mut *tx)
                            .await?;
                        out.push(Ingested::Full);
                        continue;
                    }
                    let ev = NewEvent {
                        actor,
                        event: "reported",
                        detail: format!(
                            "{} at {} after {} attempts: {}",
                            error_type, report.failed_node, report.retry_count, report.error_message
                        ),
                    };
                    insert_event!(tx, new_id, None::<&str>, now_ms, &ev);
                    out.push(Ingested::Created(new_id.to_owned()));
                    continue;
                }
                let (id, task_type, et, rc, cp, created, hash, message): (
                    String, String, String, i64, Option<String>, i64, String, String,
                ) = sqlx::query_as(
                    "SELECT id, task_type, error_type, retry_count, last_checkpoint, created_at, \
                     payload_hash, error_message FROM dead_letters \
                     WHERE service_id = $1 AND run_id = $2 AND failed_node = $3",
                )
                .bind(service_id)
                .bind(&report.run_id)
                .bind(&report.failed_node)
                .fetch_one(&mut *tx)
                .await?;
                let same = task_type == report.task_type
                    && et == error_type
                    && rc == retry_count
                    && cp == report.last_checkpoint
                    && created == report.created_at_ms
                    && hash == report.payload_hash
                    && message == report.error_message;
                if same {
                    out.push(Ingested::Unchanged(id));
                    continue;
                }
                // New content for the same work: a new revision, back in the
                // queue if it had left (a redrive that failed again). An
                // action in flight keeps the entry pending; its dispatch is
                // refused, because the entry is no longer what was approved.
                sqlx::query(
                    "UPDATE dead_letters SET task_type = $2, error_type = $3, error_message = $4, \
                     retry_count = $5, last_checkpoint = $6, created_at = $7, payload_hash = $8, \
                     updated_at = $9, revision = revision + 1, resolved_at = NULL, \
                     status = CASE WHEN status = 'pending' THEN 'pending' ELSE 'open' END \
                     WHERE id = $1",
                )
                .bind(&id)
                .bind(&report.task_type)
                .bind(error_type)
                .bind(&report.error_message)
                .bind(retry_count)
                .bind(&report.last_checkpoint)
                .bind(report.created_at_ms)
                .bind(&report.payload_hash)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                let ev = NewEvent {
                    actor,
                    event: "reported_again",
                    detail: format!(
                        "{} after {} attempts: {}",
                        error_type, report.retry_count, report.error_message
                    ),
                };
                insert_event!(tx, &id, None::<&str>, now_ms, &ev);
                out.push(Ingested::Updated(id));
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// One entry.
    pub async fn dead_letter(&self, id: &str) -> StoreResult<Option<DeadLetterRow>> {
        let sql = format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters d JOIN services s ON s.id = d.service_id \
             WHERE d.id = $1"
        );
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, DeadLetterRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?)
        })
    }

    /// Entries matching `f`, newest first, at most `limit`.
    pub async fn dead_letters(
        &self,
        f: &DeadLetterFilter<'_>,
        limit: i64,
    ) -> StoreResult<Vec<DeadLetterRow>> {
        let sql = format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters d JOIN services s ON s.id = d.service_id \
             WHERE ($1 IS NULL OR s.name = $1) AND ($2 IS NULL OR s.environment = $2) \
             AND ($3 IS NULL OR d.task_type = $3) AND ($4 IS NULL OR d.failed_node = $4) \
             AND ($5 IS NULL OR d.error_type = $5) AND ($6 IS NULL OR d.status = $6) \
             AND ($7 IS NULL OR d.received_at <= $7) AND ($8 IS NULL OR d.received_at >= $8) \
             AND ($9 IS NULL OR d.received_at < $9 OR (d.received_at = $9 AND d.id < $10)) \
             ORDER BY d.received_at DESC, d.id DESC LIMIT $11"
        );
        let (before_at, before_id) = match f.before {
            Some((at, id)) => (Some(at), Some(id)),
            None => (None, None),
        };
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, DeadLetterRow>(sqlx::AssertSqlSafe(sql))
                .bind(f.service)
                .bind(f.environment)
                .bind(f.task_type)
                .bind(f.failed_node)
                .bind(f.error_type)
                .bind(f.status)
                .bind(f.received_before)
                .bind(f.received_after)
                .bind(before_at)
                .bind(before_id)
                .bind(limit)
                .fetch_all(pool)
                .await?)
        })
    }

    /// An entry's history, oldest first.
    pub async fn dead_letter_events(&self, id: &str) -> StoreResult<Vec<EventRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, EventRow>(
                "SELECT at, actor, event, action_id, detail FROM dlq_events \
                 WHERE dead_letter_id = $1 ORDER BY id LIMIT 1000",
            )
            .bind(id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// One action.
    pub async fn dlq_action(&self, id: &str) -> StoreResult<Option<ActionRow>> {
        let sql = format!("{ACTION_SELECT} WHERE a.id = $1");
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, ActionRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?)
        })
    }

    /// Actions, newest first: of one entry, or filtered by status and service.
    pub async fn dlq_actions(
        &self,
        entry: Option<&str>,
        status: Option<&str>,
        service: Option<(&str, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<ActionRow>> {
        let sql = format!(
            "{ACTION_SELECT} WHERE ($1 IS NULL OR a.dead_letter_id = $1) \
             AND ($2 IS NULL OR a.status = $2) AND ($3 IS NULL OR s.name = $3) \
             AND ($4 IS NULL OR s.environment = $4) \
             ORDER BY a.requested_at DESC, a.id DESC LIMIT $5"
        );
        let (name, env) = service.unzip();
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, ActionRow>(sqlx::AssertSqlSafe(sql))
                .bind(entry)
                .bind(status)
                .bind(name)
                .bind(env)
                .bind(limit)
                .fetch_all(pool)
                .await?)
        })
    }

    /// Requests awaiting a decision that `user` did not ask for.
    pub async fn dlq_actions_awaiting(&self, not_by: &str) -> StoreResult<i64> {
        with_db!(self, pool => {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM dlq_actions WHERE status = 'requested' AND requested_by <> $1",
            )
            .bind(not_by)
            .fetch_one(pool)
            .await?;
            Ok(n)
        })
    }

    /// Files an action on an entry that is open at `row.entry_revision`.
    /// An entry that moved on is a conflict on `dead_letters.revision`; one
    /// already holding a live action, on `dlq_actions.live`.
    pub async fn create_dlq_action(
        &self,
        row: &ActionRow,
        event: &NewEvent<'_>,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let claimed = sqlx::query(
                "UPDATE dead_letters SET status = 'pending' \
                 WHERE id = $1 AND revision = $2 AND status = 'open'",
            )
            .bind(&row.dead_letter_id)
            .bind(row.entry_revision)
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() != 1 {
                let (status, revision): (String, i64) = sqlx::query_as(
                    "SELECT status, revision FROM dead_letters WHERE id = $1",
                )
                .bind(&row.dead_letter_id)
                .fetch_one(&mut *tx)
                .await?;
                return Err(StoreError::Conflict(if revision != row.entry_revision {
                    "dead_letters.revision".into()
                } else if status == "pending" {
                    "dlq_actions.live".into()
                } else {
                    "dead_letters.status".into()
                }));
            }
            sqlx::query(
                "INSERT INTO dlq_actions (id, dead_letter_id, service_id, kind, reason, resolution_note, \
                 escalate_to, requested_by, requested_at, approval_reasons, expires_at, policy_version, \
                 entry_revision, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&row.id)
            .bind(&row.dead_letter_id)
            .bind(row.service_id)
            .bind(&row.kind)
            .bind(&row.reason)
            .bind(&row.resolution_note)
            .bind(&row.escalate_to)
            .bind(&row.requested_by)
            .bind(row.requested_at)
            .bind(&row.approval_reasons)
            .bind(row.expires_at)
            .bind(row.policy_version)
            .bind(row.entry_revision)
            .bind(&row.status)
            .execute(&mut *tx)
            .await?;
            insert_event!(tx, &row.dead_letter_id, Some(&row.id), row.requested_at, event);
            append_audit!(tx, row.requested_at, audit);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Moves an action from one of `t.from` to `t.to`, with everything that
    /// goes with it. `Ok(false)` when the action was not in `t.from` (someone
    /// or something got there first); nothing is written then.
    pub async fn transition_dlq_action(&self, t: &Transition<'_>) -> StoreResult<bool> {
        let sql = format!(
            "UPDATE dlq_actions SET status = $1 WHERE id = $2 AND status IN ({})",
            placeholders(3, t.from.len())
        );
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(t.to).bind(t.action_id);
            for s in t.from {
                q = q.bind(*s);
            }
            if q.execute(&mut *tx).await?.rows_affected() != 1 {
                return Ok(false);
            }
            if let Some((by, why)) = t.decided {
                sqlx::query(
                    "UPDATE dlq_actions SET decided_by = $2, decided_at = $3, decision_reason = $4 \
                     WHERE id = $1",
                )
                .bind(t.action_id)
                .bind(by)
                .bind(t.now_ms)
                .bind(why)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(at) = t.expires_at {
                sqlx::query("UPDATE dlq_actions SET expires_at = $2 WHERE id = $1")
                    .bind(t.action_id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some((instance, deadline)) = t.dispatched {
                sqlx::query(
                    "UPDATE dlq_actions SET dispatched_to = $2, dispatched_at = $3, ack_deadline = $4 \
                     WHERE id = $1",
                )
                .bind(t.action_id)
                .bind(instance)
                .bind(t.now_ms)
                .bind(deadline)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(detail) = t.finished {
                sqlx::query("UPDATE dlq_actions SET finished_at = $2, detail = $3 WHERE id = $1")
                    .bind(t.action_id)
                    .bind(t.now_ms)
                    .bind(detail)
                    .execute(&mut *tx)
                    .await?;
            }
            let (entry,): (String,) =
                sqlx::query_as("SELECT dead_letter_id FROM dlq_actions WHERE id = $1")
                    .bind(t.action_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if let Some((status, resolved)) = t.entry {
                sqlx::query("UPDATE dead_letters SET status = $2, resolved_at = $3 WHERE id = $1")
                    .bind(&entry)
                    .bind(status)
                    .bind(resolved.then_some(t.now_ms))
                    .execute(&mut *tx)
                    .await?;
            }
            insert_event!(tx, &entry, Some(t.action_id), t.now_ms, &t.event);
            if let Some(audit) = t.audit {
                append_audit!(tx, t.now_ms, audit);
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Actions in `status` whose `column` (`expires_at` or `ack_deadline`)
    /// has passed, oldest first.
    pub async fn dlq_actions_due(
        &self,
        statuses: &[&str],
        ack_deadline: bool,
        now_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<ActionRow>> {
        let column = if ack_deadline {
            "a.ack_deadline"
        } else {
            "a.expires_at"
        };
        let sql = format!(
            "{ACTION_SELECT} WHERE a.status IN ({}) AND {column} < $1 ORDER BY {column} LIMIT $2",
            placeholders(3, statuses.len())
        );
        with_db!(self, pool => {
            let mut q = sqlx::query_as::<_, ActionRow>(sqlx::AssertSqlSafe(sql)).bind(now_ms).bind(limit);
            for s in statuses {
                q = q.bind(*s);
            }
            Ok(q.fetch_all(pool).await?)
        })
    }

    /// A service's approved actions, in the order they were approved, and
    /// those already dispatched to `instance` and not acknowledged.
    pub async fn dlq_actions_for_dispatch(
        &self,
        service_id: i64,
        instance: &str,
        limit: i64,
    ) -> StoreResult<Vec<ActionRow>> {
        let sql = format!(
            "{ACTION_SELECT} WHERE a.service_id = $1 AND (a.status = 'approved' \
             OR (a.status = 'dispatched' AND a.dispatched_to = $2)) \
             ORDER BY a.status DESC, COALESCE(a.decided_at, a.requested_at), a.id LIMIT $3"
        );
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, ActionRow>(sqlx::AssertSqlSafe(sql))
                .bind(service_id)
                .bind(instance)
                .bind(limit)
                .fetch_all(pool)
                .await?)
        })
    }

    /// Claims, in one transaction, up to `c.limit` of a service's approved
    /// actions that are still valid for dispatch to `c.instance`: not
    /// expired, the entry at the approved revision, the policy version the
    /// request was made under still active, and the approver (where one
    /// was needed) still enabled in a role that approves. Each claimed
    /// action is audited and gets its history event. Redrives are left to
    /// the caller, which paces them; so is every action that fails a
    /// check, so that it is refused or expired with its reason.
    pub async fn claim_dlq_actions(&self, c: &Claim<'_>) -> StoreResult<Vec<ActionRow>> {
        let roles = placeholders(7, c.approver_roles.len());
        // On Postgres, streams claiming at once take different rows rather
        // than queue behind one another's row locks (and then find them
        // taken). SQLite has one writer at a time, so the question is moot.
        let skip = match self.backend() {
            super::Backend::Postgres => " FOR UPDATE OF a SKIP LOCKED",
            super::Backend::Sqlite => "",
        };
        let claim_sql = format!(
            "UPDATE dlq_actions SET status = 'dispatched', dispatched_to = $1, dispatched_at = $2, \
             ack_deadline = $3 WHERE status = 'approved' AND id IN ( \
               SELECT a.id FROM dlq_actions a JOIN dead_letters d ON d.id = a.dead_letter_id \
               LEFT JOIN users u ON a.decided_by = 'user:' || u.username \
               WHERE a.service_id = $4 AND a.status = 'approved' AND a.kind <> 'redrive' \
                 AND a.expires_at > $2 AND d.revision = a.entry_revision \
                 AND a.policy_version IS NOT DISTINCT FROM $5 \
                 AND (a.approval_reasons = '[]' OR (u.disabled = 0 AND u.role IN ({roles}) \
                      AND a.decided_by <> a.requested_by)) \
               ORDER BY COALESCE(a.decided_at, a.requested_at), a.id LIMIT $6{skip}) \
             RETURNING id"
        );
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut q = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(claim_sql))
                .bind(c.instance)
                .bind(c.now_ms)
                .bind(c.ack_deadline)
                .bind(c.service_id)
                .bind(c.policy_version)
                .bind(c.limit);
            for r in c.approver_roles {
                q = q.bind(*r);
            }
            let ids: Vec<String> = q.fetch_all(&mut *tx).await?.into_iter().map(|(id,)| id).collect();
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let select = format!("{ACTION_SELECT} WHERE a.id IN ({}) ORDER BY COALESCE(a.decided_at, a.requested_at), a.id", placeholders(1, ids.len()));
            let mut q = sqlx::query_as::<_, ActionRow>(sqlx::AssertSqlSafe(select));
            for id in &ids {
                q = q.bind(id);
            }
            let rows = q.fetch_all(&mut *tx).await?;
            for row in &rows {
                let ev = NewEvent {
                    actor: "ballast",
                    event: "action.dispatched",
                    detail: format!("{} sent to instance {}", row.kind, c.instance),
                };
                insert_event!(tx, &row.dead_letter_id, Some(&row.id), c.now_ms, &ev);
                let audit = AuditRecord::new(
                    "ballast",
                    "dlq.action_dispatched",
                    format!("dead_letter:{}", row.dead_letter_id),
                    serde_json::json!({ "action": row.id, "kind": row.kind, "instance": c.instance }),
                );
                append_audit!(tx, c.now_ms, &audit);
            }
            tx.commit().await?;
            Ok(rows)
        })
    }

    /// Records agents' outcomes in one transaction, each as if alone: an
    /// action of the acking service that is dispatched (or uncertain) takes
    /// the outcome, its entry resolves or reopens, and both are audited.
    pub async fn ack_dlq_actions(
        &self,
        acks: &[AckWrite],
        now_ms: i64,
    ) -> StoreResult<Vec<AckResult>> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut out = Vec::with_capacity(acks.len());
            for a in acks {
                let to = if a.succeeded { "succeeded" } else { "failed" };
                let moved: Option<(String, String, Option<String>)> = sqlx::query_as(
                    "UPDATE dlq_actions SET status = $3, finished_at = $4, detail = $5 \
                     WHERE id = $1 AND service_id = $2 AND status IN ('dispatched', 'uncertain') \
                     RETURNING dead_letter_id, kind, dispatched_to",
                )
                .bind(&a.action_id)
                .bind(a.service_id)
                .bind(to)
                .bind(now_ms)
                .bind(&a.detail)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((entry, kind, instance)) = moved else {
                    let status: Option<(String,)> = sqlx::query_as(
                        "SELECT status FROM dlq_actions WHERE id = $1 AND service_id = $2",
                    )
                    .bind(&a.action_id)
                    .bind(a.service_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    out.push(match status {
                        None => AckResult::NotFound,
                        Some((s,)) if s == to => AckResult::Repeated,
                        Some((s,)) => AckResult::Conflict(s),
                    });
                    continue;
                };
                let (entry_status, resolved) = if a.succeeded {
                    (resolved_status(&kind), Some(now_ms))
                } else {
                    ("open", None)
                };
                sqlx::query("UPDATE dead_letters SET status = $2, resolved_at = $3 WHERE id = $1")
                    .bind(&entry)
                    .bind(entry_status)
                    .bind(resolved)
                    .execute(&mut *tx)
                    .await?;
                let ev = NewEvent {
                    actor: &a.actor,
                    event: if a.succeeded { "action.succeeded" } else { "action.failed" },
                    detail: format!("{kind} {to}: {}", a.detail),
                };
                insert_event!(tx, &entry, Some(&a.action_id), now_ms, &ev);
                let audit = AuditRecord::new(
                    a.actor.clone(),
                    format!("dlq.action_{to}"),
                    format!("dead_letter:{entry}"),
                    serde_json::json!({ "action": a.action_id, "kind": kind,
                                        "instance": instance, "detail": a.detail }),
                );
                append_audit!(tx, now_ms, &audit);
                out.push(AckResult::Applied);
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Per service with any: its id, name and environment, live entries and
    /// the oldest one's arrival.
    pub async fn dead_letter_depths(&self) -> StoreResult<Vec<DepthRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as(
                "SELECT d.service_id, s.name, s.environment, COUNT(*) AS depth, \
                 MIN(d.received_at) AS oldest FROM dead_letters d JOIN services s ON s.id = d.service_id \
                 WHERE d.status IN ('open', 'pending') GROUP BY d.service_id, s.name, s.environment",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// A service's live entries grouped by `column` (`error_type` or
    /// `failed_node`), most common first.
    pub async fn dead_letter_top(
        &self,
        service_id: i64,
        by_node: bool,
        limit: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        let column = if by_node { "failed_node" } else { "error_type" };
        let sql = format!(
            "SELECT {column}, COUNT(*) AS n FROM dead_letters \
             WHERE service_id = $1 AND status IN ('open', 'pending') \
             GROUP BY {column} ORDER BY n DESC, {column} LIMIT $2"
        );
        with_db!(self, pool => {
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(service_id).bind(limit).fetch_all(pool).await?)
        })
    }

    /// Arrival and resolution times of a service's entries that were live
    /// at some point since `since_ms`, for the depth chart.
    pub async fn dead_letter_spans(
        &self,
        service_id: i64,
        since_ms: i64,
    ) -> StoreResult<Vec<(i64, Option<i64>)>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as(
                "SELECT received_at, resolved_at FROM dead_letters \
                 WHERE service_id = $1 AND (resolved_at IS NULL OR resolved_at >= $2) LIMIT 200000",
            )
            .bind(service_id)
            .bind(since_ms)
            .fetch_all(pool)
            .await?)
        })
    }

    /// A service's actions in `status`.
    pub async fn dlq_action_count(&self, service_id: i64, status: &str) -> StoreResult<i64> {
        with_db!(self, pool => {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM dlq_actions WHERE service_id = $1 AND status = $2",
            )
            .bind(service_id)
            .bind(status)
            .fetch_one(pool)
            .await?;
            Ok(n)
        })
    }

    /// Deletes entries that left the queue before `before_ms`, with their
    /// actions and history, at most `limit` at a time. Returns how many.
    pub async fn prune_dead_letters(&self, before_ms: i64, limit: i64) -> StoreResult<u64> {
        with_db!(self, pool => {
            let done = sqlx::query(
                "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters \
                 WHERE resolved_at IS NOT NULL AND resolved_at < $1 LIMIT $2)",
            )
            .bind(before_ms)
            .bind(limit)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }
}
