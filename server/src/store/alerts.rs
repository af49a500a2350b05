//! Alert rules, alerts, silences, webhooks, the notification outbox and
//! leases for singleton jobs.
//!
//! An alert's transition (`pending` → `firing` → `resolved`) is a
//! conditional update, and its notifications are inserted in the same
//! transaction: whoever makes the transition first makes the
//! notifications, and nobody else can, however many replicas evaluate.

use super::audit::append_audit;
use super::{AuditRecord, Backend, Store, StoreResult, row_exists, with_db};
use sqlx::Row;

/// A stored alert rule.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRuleRow {
    /// Name.
    pub name: String,
    /// `shared::api::AlertRuleWrite` as JSON.
    pub definition: String,
    /// Whether it came with Ballast.
    pub builtin: i64,
    /// Who last wrote it.
    pub updated_by: String,
    /// When.
    pub updated_at: i64,
}

/// A stored alert, with its service's name and environment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRow {
    /// Id.
    pub id: String,
    /// Rule name.
    pub rule: String,
    /// Service.
    pub service_id: i64,
    /// Service name.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// Dependency, or empty for a service-wide metric.
    pub dependency: String,
    /// `pending`, `firing` or `resolved`.
    pub state: String,
    /// Last value.
    pub value: f64,
    /// Threshold at the time.
    pub threshold: f64,
    /// What is wrong.
    pub summary: String,
    /// When the condition began to hold.
    pub started_at: i64,
    /// When it fired.
    pub fired_at: Option<i64>,
    /// When it resolved.
    pub resolved_at: Option<i64>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When.
    pub acknowledged_at: Option<i64>,
}

const ALERT_COLUMNS: &str = "a.id, a.rule, a.service_id, s.name AS service, s.environment, a.dependency, \
     a.state, a.value, a.threshold, a.summary, a.started_at, a.fired_at, a.resolved_at, \
     a.acknowledged_by, a.acknowledged_at";

/// A new pending alert.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    /// Id.
    pub id: &'a str,
    /// Rule.
    pub rule: &'a str,
    /// Service.
    pub service_id: i64,
    /// Dependency or empty.
    pub dependency: &'a str,
    /// Value.
    pub value: f64,
    /// Threshold.
    pub threshold: f64,
    /// Summary.
    pub summary: &'a str,
    /// Now.
    pub now_ms: i64,
}

/// A notification to queue with a transition.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Id.
    pub id: String,
    /// The webhook.
    pub webhook_id: String,
    /// The JSON body to send.
    pub payload: String,
}

/// A silence.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SilenceRow {
    /// Id.
    pub id: String,
    /// Rule matched.
    pub rule: Option<String>,
    /// Service matched.
    pub service: Option<String>,
    /// Environment matched.
    pub environment: Option<String>,
    /// Why.
    pub reason: String,
    /// Who.
    pub created_by: String,
    /// From.
    pub starts_at: i64,
    /// Until.
    pub ends_at: i64,
    /// Who ended it early.
    pub ended_by: Option<String>,
}

/// A webhook, with its secret: never leaves the server.
#[derive(Clone, sqlx::FromRow)]
pub struct WebhookRow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// URL.
    pub url: String,
    /// The signing secret.
    pub secret: String,
    /// Who.
    pub created_by: String,
    /// When.
    pub created_at: i64,
    /// Failed deliveries in a row.
    pub consecutive_failures: i64,
    /// The breaker's reopening time, while open.
    pub open_until: Option<i64>,
}

impl std::fmt::Debug for WebhookRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("consecutive_failures", &self.consecutive_failures)
            .field("open_until", &self.open_until)
            .finish()
    }
}

/// A notification as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    /// Id.
    pub id: String,
    /// Alert.
    pub alert_id: String,
    /// Webhook.
    pub webhook_id: String,
    /// `firing` or `resolved`.
    pub event: String,
    /// The body.
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Next attempt due.
    pub next_attempt_at: i64,
    /// Last failure.
    pub last_error: Option<String>,
    /// Delivered when.
    pub delivered_at: Option<i64>,
}

/// A notification claimed for delivery, with where to send it.
#[derive(Clone)]
pub struct ClaimedNotification {
    /// The notification.
    pub id: String,
    /// Its body.
    pub payload: String,
    /// Attempts including this one.
    pub attempts: i64,
    /// When it was made: notifications are retried for a day.
    pub created_at: i64,
    /// The webhook.
    pub webhook_id: String,
    /// Its URL.
    pub url: String,
    /// Its secret.
    pub secret: String,
}

impl std::fmt::Debug for ClaimedNotification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedNotification")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .field("webhook_id", &self.webhook_id)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// How a delivery attempt went.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    /// 2xx.
    Delivered,
    /// Anything else: try again at `retry_at`, or give up when `None`.
    Failed {
        /// Why.
        error: String,
        /// When to try again.
        retry_at: Option<i64>,
        /// When the webhook's breaker opens until, if this failure opens it.
        open_until: Option<i64>,
    },
}

/// What a change that only some states allow did (acknowledging an alert,
/// ending a silence, ticking or closing a checklist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// Done.
    Done,
    /// Nothing with that id.
    Missing,
    /// Not in a state that allows it (not firing, already ended, closed).
    Refused,
}

impl Store {
    /// Creates or replaces a rule, audited. Returns whether it was created.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_alert_rule(
        &self,
        name: &str,
        definition: &str,
        runbook: &str,
        enabled: bool,
        by: &str,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<bool> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE alert_rules SET definition = $2, runbook = $3, enabled = $4, updated_by = $5, updated_at = $6 \
                 WHERE name = $1 RETURNING name",
            )
            .bind(name)
            .bind(definition)
            .bind(runbook)
            .bind(i64::from(enabled))
            .bind(by)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if updated.is_none() {
                sqlx::query(
                    "INSERT INTO alert_rules (name, definition, runbook, enabled, builtin, updated_by, updated_at) \
                     VALUES ($1, $2, $3, $4, 0, $5, $6)",
                )
                .bind(name)
                .bind(definition)
                .bind(runbook)
                .bind(i64::from(enabled))
                .bind(by)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(updated.is_none())
        })
    }

    /// Stores a built-in rule unless one with `name` exists. Not audited:
    /// initial data, like the runbook library.
    pub async fn seed_alert_rule(
        &self,
        name: &str,
        definition: &str,
        runbook: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        with_db!(self, pool => {
            sqlx::query(
                "INSERT INTO alert_rules (name, definition, runbook, enabled, builtin, updated_by, updated_at) \
                 VALUES ($1, $2, $3, 1, 1, 'ballast', $4) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(definition)
            .bind(runbook)
            .bind(now_ms)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Every rule, by name.
    pub async fn alert_rules(&self) -> StoreResult<Vec<AlertRuleRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, AlertRuleRow>(
                "SELECT name, definition, builtin, updated_by, updated_at FROM alert_rules ORDER BY name",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Every rule's name: what policies' `alert` fields are checked against.
    pub async fn alert_rule_names(&self) -> StoreResult<Vec<String>> {
        with_db!(self, pool => {
            Ok(sqlx::query_scalar("SELECT name FROM alert_rules ORDER BY name").fetch_all(pool).await?)
        })
    }

    /// One rule.
    pub async fn alert_rule(&self, name: &str) -> StoreResult<Option<AlertRuleRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, AlertRuleRow>(
                "SELECT name, definition, builtin, updated_by, updated_at FROM alert_rules WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Deletes a rule with its alerts and their notifications, audited.
    pub async fn delete_alert_rule(
        &self,
        name: &str,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<bool> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let gone = sqlx::query("DELETE FROM alert_rules WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone == 0 {
                return Ok(false);
            }
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Alerts that are pending or firing.
    pub async fn live_alerts(&self) -> StoreResult<Vec<AlertRow>> {
        self.alerts(Some(&["pending", "firing"]), None, 10_000)
            .await
    }

    /// Alerts in `states` (all when `None`), of one service when given, the
    /// newest first, at most `limit`.
    pub async fn alerts(
        &self,
        states: Option<&[&str]>,
        service_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AlertRow>> {
        let state_filter = match states {
            Some(states) => format!(
                "a.state IN ({})",
                states
                    .iter()
                    .map(|s| match *s {
                        "pending" => "'pending'",
                        "firing" => "'firing'",
                        _ => "'resolved'",
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "1 = 1".to_owned(),
        };
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a JOIN services s ON s.id = a.service_id \
             WHERE {state_filter} AND ($1 IS NULL OR a.service_id = $1) \
             ORDER BY CASE a.state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, a.started_at DESC, a.rule, a.dependency, a.id \
             LIMIT $2"
        );
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, AlertRow>(sqlx::AssertSqlSafe(sql))
                .bind(service_id)
                .bind(limit)
                .fetch_all(pool)
                .await?)
        })
    }

    /// One alert.
    pub async fn alert(&self, id: &str) -> StoreResult<Option<AlertRow>> {
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts a JOIN services s ON s.id = a.service_id WHERE a.id = $1"
        );
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, AlertRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?)
        })
    }

    /// Opens a pending alert. False when a live one already exists for the
    /// same rule, service and dependency (another evaluator was first).
    pub async fn open_alert(&self, a: &NewAlert<'_>) -> StoreResult<bool> {
        with_db!(self, pool => {
            let n = sqlx::query(
                "INSERT INTO alerts (id, rule, service_id, dependency, state, value, threshold, summary, started_at) \
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(a.id)
            .bind(a.rule)
            .bind(a.service_id)
            .bind(a.dependency)
            .bind(a.value)
            .bind(a.threshold)
            .bind(a.summary)
            .bind(a.now_ms)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Records the latest value of a live alert.
    pub async fn update_alert_value(&self, id: &str, value: f64, summary: &str) -> StoreResult<()> {
        with_db!(self, pool => {
            sqlx::query("UPDATE alerts SET value = $2, summary = $3 WHERE id = $1 AND state IN ('pending', 'firing')")
                .bind(id)
                .bind(value)
                .bind(summary)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Moves an alert from `from` to `to` at `now_ms` and queues its
    /// notifications, in one transaction. False (and nothing queued) when
    /// the alert was not in `from`: someone else made the move.
    pub async fn transition_alert(
        &self,
        id: &str,
        from: &str,
        to: &str,
        now_ms: i64,
        notifications: &[NewNotification],
    ) -> StoreResult<bool> {
        let column = if to == "firing" {
            "fired_at"
        } else {
            "resolved_at"
        };
        let sql = format!(
            "UPDATE alerts SET state = $3, {column} = $4 WHERE id = $1 AND state = $2 RETURNING id"
        );
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(from)
                .bind(to)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
            if moved.is_none() {
                return Ok(false);
            }
            for n in notifications {
                sqlx::query(
                    "INSERT INTO alert_notifications (id, alert_id, webhook_id, event, payload, status, attempts, \
                     next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&n.id)
                .bind(id)
                .bind(&n.webhook_id)
                .bind(to)
                .bind(&n.payload)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Drops a pending alert whose condition stopped holding before it
    /// fired: it never was an alert anyone saw.
    pub async fn drop_pending_alert(&self, id: &str) -> StoreResult<()> {
        with_db!(self, pool => {
            sqlx::query("DELETE FROM alerts WHERE id = $1 AND state = 'pending'").bind(id).execute(pool).await?;
            Ok(())
        })
    }

    /// Acknowledges a firing alert, audited.
    pub async fn acknowledge_alert(
        &self,
        id: &str,
        by: &str,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<Changed> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE alerts SET acknowledged_by = $2, acknowledged_at = $3 \
                 WHERE id = $1 AND state = 'firing' AND acknowledged_by IS NULL RETURNING id",
            )
            .bind(id)
            .bind(by)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if done.is_none() {
                return Ok(if row_exists!(tx, "alerts", id) { Changed::Refused } else { Changed::Missing });
            }
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(Changed::Done)
        })
    }

    /// Stores a silence, audited.
    pub async fn create_silence(&self, s: &SilenceRow, audit: &AuditRecord) -> StoreResult<()> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO silences (id, rule, service, environment, reason, created_by, starts_at, ends_at, ended_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
            )
            .bind(&s.id)
            .bind(&s.rule)
            .bind(&s.service)
            .bind(&s.environment)
            .bind(&s.reason)
            .bind(&s.created_by)
            .bind(s.starts_at)
            .bind(s.ends_at)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, s.starts_at, audit);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Silences still in force at `now_ms`, or every one of the last week
    /// when `all`.
    pub async fn silences(&self, now_ms: i64, all: bool) -> StoreResult<Vec<SilenceRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, SilenceRow>(
                "SELECT id, rule, service, environment, reason, created_by, starts_at, ends_at, ended_by \
                 FROM silences WHERE ends_at > $1 ORDER BY ends_at DESC, id LIMIT 1000",
            )
            .bind(if all { now_ms - 7 * 86_400_000 } else { now_ms })
            .fetch_all(pool)
            .await?)
        })
    }

    /// Ends a silence now, audited.
    pub async fn end_silence(
        &self,
        id: &str,
        by: &str,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<Changed> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE silences SET ends_at = $3, ended_by = $2 WHERE id = $1 AND ends_at > $3 RETURNING id",
            )
            .bind(id)
            .bind(by)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if done.is_none() {
                return Ok(if row_exists!(tx, "silences", id) { Changed::Refused } else { Changed::Missing });
            }
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(Changed::Done)
        })
    }

    /// Stores a webhook, audited.
    pub async fn create_webhook(&self, w: &WebhookRow, audit: &AuditRecord) -> StoreResult<()> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO webhooks (id, name, url, secret, created_by, created_at, consecutive_failures) \
                 VALUES ($1, $2, $3, $4, $5, $6, 0)",
            )
            .bind(&w.id)
            .bind(&w.name)
            .bind(&w.url)
            .bind(&w.secret)
            .bind(&w.created_by)
            .bind(w.created_at)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, w.created_at, audit);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Webhooks in use, each with its undelivered notifications.
    pub async fn webhooks(&self) -> StoreResult<Vec<(WebhookRow, i64)>> {
        with_db!(self, pool => {
            let rows = sqlx::query(
                "SELECT w.id, w.name, w.url, w.secret, w.created_by, w.created_at, w.consecutive_failures, w.open_until, \
                 (SELECT COUNT(*) FROM alert_notifications n WHERE n.webhook_id = w.id AND n.status = 'pending') AS pending \
                 FROM webhooks w WHERE w.deleted_at IS NULL ORDER BY w.name, w.id",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((
                    WebhookRow {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                        url: r.try_get("url")?,
                        secret: r.try_get("secret")?,
                        created_by: r.try_get("created_by")?,
                        created_at: r.try_get("created_at")?,
                        consecutive_failures: r.try_get("consecutive_failures")?,
                        open_until: r.try_get("open_until")?,
                    },
                    r.try_get("pending")?,
                ));
            }
            Ok(out)
        })
    }

    /// Stops using a webhook, audited: its undelivered notifications fail.
    pub async fn delete_webhook(
        &self,
        id: &str,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<bool> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let gone = sqlx::query("UPDATE webhooks SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if gone == 0 {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE alert_notifications SET status = 'failed', last_error = 'the webhook was deleted' \
                 WHERE webhook_id = $1 AND status = 'pending'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Ids of the webhooks in use, for checking a rule's `notify`.
    pub async fn webhook_ids(&self) -> StoreResult<Vec<String>> {
        with_db!(self, pool => {
            Ok(sqlx::query_scalar("SELECT id FROM webhooks WHERE deleted_at IS NULL").fetch_all(pool).await?)
        })
    }

    /// Takes up to `limit` due notifications whose webhook's breaker is not
    /// open, and hides them from other claimers until `now_ms + hold_ms`
    /// (longer than a delivery attempt can take), so that each attempt is
    /// made by one replica. A replica that dies mid-attempt leaves them to
    /// be taken again when the hold runs out.
    pub async fn claim_notifications(
        &self,
        now_ms: i64,
        hold_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedNotification>> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE OF n SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE alert_notifications SET next_attempt_at = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT n.id FROM alert_notifications n JOIN webhooks w ON w.id = n.webhook_id \
               WHERE n.status = 'pending' AND n.next_attempt_at <= $1 AND w.deleted_at IS NULL \
               AND (w.open_until IS NULL OR w.open_until <= $1) \
               ORDER BY n.next_attempt_at, n.id LIMIT $3 {lock}) \
             RETURNING id, payload, attempts, webhook_id, created_at"
        );
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now_ms)
                .bind(now_ms + hold_ms)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let webhook_id: String = r.try_get("webhook_id")?;
                let (url, secret): (String, String) = sqlx::query_as("SELECT url, secret FROM webhooks WHERE id = $1")
                    .bind(&webhook_id)
                    .fetch_one(&mut *tx)
                    .await?;
                out.push(ClaimedNotification {
                    id: r.try_get("id")?,
                    payload: r.try_get("payload")?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                    webhook_id,
                    url,
                    secret,
                });
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Records how an attempt went, and the webhook's breaker with it.
    pub async fn record_delivery(
        &self,
        notification_id: &str,
        webhook_id: &str,
        outcome: &DeliveryOutcome,
        now_ms: i64,
    ) -> StoreResult<()> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            match outcome {
                DeliveryOutcome::Delivered => {
                    sqlx::query(
                        "UPDATE alert_notifications SET status = 'delivered', delivered_at = $2, last_error = NULL \
                         WHERE id = $1 AND status = 'pending'",
                    )
                    .bind(notification_id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE webhooks SET consecutive_failures = 0, open_until = NULL WHERE id = $1")
                        .bind(webhook_id)
                        .execute(&mut *tx)
                        .await?;
                }
                DeliveryOutcome::Failed { error, retry_at, open_until } => {
                    match retry_at {
                        Some(at) => sqlx::query(
                            "UPDATE alert_notifications SET next_attempt_at = $2, last_error = $3 \
                             WHERE id = $1 AND status = 'pending'",
                        )
                        .bind(notification_id)
                        .bind(*at)
                        .bind(error)
                        .execute(&mut *tx)
                        .await?,
                        None => sqlx::query(
                            "UPDATE alert_notifications SET status = 'failed', last_error = $2 \
                             WHERE id = $1 AND status = 'pending'",
                        )
                        .bind(notification_id)
                        .bind(error)
                        .execute(&mut *tx)
                        .await?,
                    };
                    sqlx::query(
                        "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1, \
                         open_until = COALESCE($2, open_until) WHERE id = $1",
                    )
                    .bind(webhook_id)
                    .bind(*open_until)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// A webhook's failures in a row, for the breaker.
    pub async fn webhook_failures(&self, webhook_id: &str) -> StoreResult<i64> {
        with_db!(self, pool => {
            Ok(sqlx::query_scalar("SELECT consecutive_failures FROM webhooks WHERE id = $1")
                .bind(webhook_id)
                .fetch_optional(pool)
                .await?
                .unwrap_or(0))
        })
    }

    /// Notifications, newest first: of one alert when given.
    pub async fn notifications(
        &self,
        alert_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<NotificationRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, NotificationRow>(
                "SELECT id, alert_id, webhook_id, event, payload, status, attempts, next_attempt_at, last_error, delivered_at \
                 FROM alert_notifications WHERE ($1 IS NULL OR alert_id = $1) ORDER BY created_at DESC, id LIMIT $2",
            )
            .bind(alert_id)
            .bind(limit)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Takes or renews the lease `name` for `holder` until `now_ms +
    /// ttl_ms`. True when `holder` has it: it held it already, or the
    /// previous holder's lease ran out.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> StoreResult<bool> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let taken = sqlx::query(
                "UPDATE leases SET holder = $2, expires_at = $4 WHERE name = $1 AND (holder = $2 OR expires_at <= $3) \
                 RETURNING holder",
            )
            .bind(name)
            .bind(holder)
            .bind(now_ms)
            .bind(now_ms + ttl_ms)
            .fetch_optional(&mut *tx)
            .await?;
            let held = if taken.is_some() {
                true
            } else {
                sqlx::query(
                    "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(holder)
                .bind(now_ms + ttl_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1
            };
            tx.commit().await?;
            Ok(held)
        })
    }

    /// Per service and dependency, the rollups' column sums from `since_ms`.
    pub async fn rollup_sums(&self, since_ms: i64) -> StoreResult<Vec<super::RollupRow>> {
        let sql = format!(
            "SELECT service_id, dependency, {} FROM telemetry_rollups WHERE minute_ms >= $1 \
             GROUP BY service_id, dependency",
            super::telemetry::summed_columns()
        );
        with_db!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(since_ms).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let values = super::telemetry::summed_values(&row, 2)?;
                out.push(super::RollupRow { service_id: row.try_get(0)?, dependency: row.try_get(1)?, minute_ms: since_ms, values });
            }
            Ok(out)
        })
    }

    /// Per service, dead letters received since `since_ms`.
    pub async fn dead_letters_received_since(&self, since_ms: i64) -> StoreResult<Vec<(i64, i64)>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as(
                "SELECT service_id, COUNT(*) FROM dead_letters WHERE received_at >= $1 GROUP BY service_id",
            )
            .bind(since_ms)
            .fetch_all(pool)
            .await?)
        })
    }
}
