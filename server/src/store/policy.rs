//! Services, policy drafts, immutable versions, rollouts, publish requests
//! and the fleet of instances.

use super::audit::append_audit;
use super::{AuditRecord, Store, StoreError, StoreResult, with_db};
use shared::protocol::{PolicySource, RefusedPolicy};

/// A service in one environment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServiceRow {
    /// Id.
    pub id: i64,
    /// Name, as the agent's token names it.
    pub name: String,
    /// Environment.
    pub environment: String,
    /// Owning team or person.
    pub owner: String,
    /// Who registered it.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// The working draft of a service's policy.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DraftRow {
    /// The policy document as JSON.
    pub document: String,
    /// Who saved it last.
    pub updated_by: String,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// A published, immutable policy version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    /// Owning service.
    pub service_id: i64,
    /// Number, from 1.
    pub version: i64,
    /// The policy document as JSON.
    pub document: String,
    /// Content hash.
    pub etag: String,
    /// The document's risk tier, kept for listings.
    pub risk_tier: String,
    /// Who wrote it.
    pub author: String,
    /// Who approved it, when it needed approval.
    pub approver: Option<String>,
    /// Why.
    pub message: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// What a service's instances should run.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct RolloutRow {
    /// The version every instance runs, unless in the canary.
    pub active_version: Option<i64>,
    /// A version on trial for some instances.
    pub canary_version: Option<i64>,
    /// The share of instances in the canary, 1 to 99.
    pub canary_percent: Option<i64>,
}

/// A publish waiting for (or decided by) a second person.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PublishRequestRow {
    /// Random id.
    pub id: String,
    /// The service.
    pub service_id: i64,
    /// The policy to publish, as JSON.
    pub document: String,
    /// The author's message.
    pub message: String,
    /// Publish as a canary to this share of instances.
    pub canary_percent: Option<i64>,
    /// Why approval is needed, as a JSON array of sentences.
    pub reasons: String,
    /// Who asked.
    pub author: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// pending, approved or rejected.
    pub status: String,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<i64>,
    /// The version the approval published.
    pub version: Option<i64>,
    /// The version that was active when the request was filed; the request
    /// was computed against it and is approved against nothing else.
    pub base_version: Option<i64>,
}

/// An agent instance as last heard from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstanceRow {
    /// The agent's own id.
    pub instance_id: String,
    /// Its library version.
    pub agent_version: String,
    /// The policy version it enforces.
    pub policy_version: Option<i64>,
    /// server, disk or default.
    pub policy_source: String,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Unix milliseconds.
    pub last_seen_at: i64,
    /// The policy its latest heartbeat said it refused, if any.
    #[sqlx(flatten)]
    pub refused: RefusedColumns,
}

/// A refused policy as the `instances` table keeps it: four nullable
/// columns, all set or all NULL.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct RefusedColumns {
    /// The version refused.
    pub refused_version: Option<i64>,
    /// server or disk.
    pub refused_source: Option<String>,
    /// The agent's validation errors, a JSON array of `path: code`.
    pub refused_errors: Option<String>,
    /// Unix milliseconds.
    pub refused_at: Option<i64>,
}

impl RefusedColumns {
    /// The columns for what a heartbeat reported. The version must fit an
    /// i64; the heartbeat's check makes sure of that first.
    pub fn of(refused: Option<&RefusedPolicy>) -> RefusedColumns {
        let Some(r) = refused else {
            return RefusedColumns::default();
        };
        RefusedColumns {
            refused_version: Some(r.version.min(i64::MAX as u64) as i64),
            refused_source: Some(r.source.as_str().to_owned()),
            refused_errors: Some(serde_json::Value::from(r.errors.clone()).to_string()),
            refused_at: Some(r.refused_at_ms),
        }
    }

    /// The refusal, if the columns hold one. Errors that do not read back
    /// (no writer stores such) show as none rather than hide the refusal.
    pub fn policy(&self) -> Option<RefusedPolicy> {
        let version = self.refused_version?;
        Some(RefusedPolicy {
            version: version.max(0) as u64,
            source: self
                .refused_source
                .as_deref()
                .and_then(PolicySource::from_name)
                .unwrap_or(PolicySource::Server),
            errors: self
                .refused_errors
                .as_deref()
                .and_then(|e| serde_json::from_str(e).ok())
                .unwrap_or_default(),
            refused_at_ms: self.refused_at.unwrap_or(0),
        })
    }
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    /// The service.
    pub service_id: i64,
    /// The policy document as JSON.
    pub document: &'a str,
    /// Its content hash.
    pub etag: &'a str,
    /// Its risk tier.
    pub risk_tier: &'a str,
    /// Who wrote it.
    pub author: &'a str,
    /// Who approved it.
    pub approver: Option<&'a str>,
    /// Why.
    pub message: &'a str,
    /// Publish as a canary to this share of instances instead of to all.
    pub canary_percent: Option<i64>,
    /// Unix milliseconds.
    pub now_ms: i64,
}

/// Publishes inside the open transaction `$tx` and evaluates to the new
/// version number. The first statement locks the service's rollout row, which
/// serialises publishers of one service on both backends, so version numbers
/// are dense and never collide.
macro_rules! publish_in_tx {
    ($tx:expr, $new:expr) => {{
        let new: &NewVersion<'_> = $new;
        sqlx::query(
            "INSERT INTO rollouts (service_id, active_version, canary_version, canary_percent, updated_at) \
             VALUES ($1, NULL, NULL, NULL, $2) \
             ON CONFLICT (service_id) DO UPDATE SET updated_at = excluded.updated_at",
        )
        .bind(new.service_id)
        .bind(new.now_ms)
        .execute(&mut *$tx)
        .await?;
        let (next,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM policy_versions WHERE service_id = $1",
        )
        .bind(new.service_id)
        .fetch_one(&mut *$tx)
        .await?;
        sqlx::query(
            "INSERT INTO policy_versions \
             (service_id, version, document, etag, risk_tier, author, approver, message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(new.service_id)
        .bind(next)
        .bind(new.document)
        .bind(new.etag)
        .bind(new.risk_tier)
        .bind(new.author)
        .bind(new.approver)
        .bind(new.message)
        .bind(new.now_ms)
        .execute(&mut *$tx)
        .await?;
        match new.canary_percent {
            Some(percent) => {
                sqlx::query(
                    "UPDATE rollouts SET canary_version = $2, canary_percent = $3 WHERE service_id = $1",
                )
                .bind(new.service_id)
                .bind(next)
                .bind(percent)
                .execute(&mut *$tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE rollouts SET active_version = $2, canary_version = NULL, canary_percent = NULL \
                     WHERE service_id = $1",
                )
                .bind(new.service_id)
                .bind(next)
                .execute(&mut *$tx)
                .await?;
            }
        }
        next
    }};
}

impl Store {
    /// Registers a service in an environment.
    pub async fn create_service(
        &self,
        name: &str,
        environment: &str,
        owner: &str,
        actor: &str,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<ServiceRow> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let row = sqlx::query_as::<_, ServiceRow>(
                "INSERT INTO services (name, environment, owner, created_by, created_at) VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id, name, environment, owner, created_by, created_at",
            )
            .bind(name)
            .bind(environment)
            .bind(owner)
            .bind(actor)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(row)
        })
    }

    /// Every service, by name and environment.
    pub async fn list_services(&self) -> StoreResult<Vec<ServiceRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, ServiceRow>(
                "SELECT id, name, environment, owner, created_by, created_at FROM services ORDER BY name, environment",
            )
            .fetch_all(pool)
            .await?)
        })
    }

    /// Every service with its rollout, in one query (a service never
    /// published has an empty rollout).
    pub async fn list_services_with_rollouts(&self) -> StoreResult<Vec<(ServiceRow, RolloutRow)>> {
        #[derive(sqlx::FromRow)]
        struct Joined {
            #[sqlx(flatten)]
            service: ServiceRow,
            #[sqlx(flatten)]
            rollout: RolloutRow,
        }
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, Joined>(
                "SELECT s.id, s.name, s.environment, s.owner, s.created_by, s.created_at, \
                 r.active_version, r.canary_version, r.canary_percent \
                 FROM services s LEFT JOIN rollouts r ON r.service_id = s.id ORDER BY s.name, s.environment",
            )
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|j| (j.service, j.rollout))
            .collect())
        })
    }

    /// One service by name and environment.
    pub async fn service(&self, name: &str, environment: &str) -> StoreResult<Option<ServiceRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, ServiceRow>(
                "SELECT id, name, environment, owner, created_by, created_at FROM services \
                 WHERE name = $1 AND environment = $2",
            )
            .bind(name)
            .bind(environment)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// One service by id.
    pub async fn service_by_id(&self, id: i64) -> StoreResult<Option<ServiceRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, ServiceRow>(
                "SELECT id, name, environment, owner, created_by, created_at FROM services WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Saves the working draft (replacing the previous one).
    pub async fn save_draft(
        &self,
        service_id: i64,
        document: &str,
        actor: &str,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO policy_drafts (service_id, document, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (service_id) DO UPDATE SET document = excluded.document, \
                 updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            )
            .bind(service_id)
            .bind(document)
            .bind(actor)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(())
        })
    }

    /// The working draft, if one was saved.
    pub async fn draft(&self, service_id: i64) -> StoreResult<Option<DraftRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, DraftRow>(
                "SELECT document, updated_by, updated_at FROM policy_drafts WHERE service_id = $1",
            )
            .bind(service_id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Publishes a new version, audited in the same transaction. Returns its number.
    pub async fn publish(&self, new: &NewVersion<'_>, audit: &AuditRecord) -> StoreResult<i64> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let version = publish_in_tx!(tx, new);
            let mut audit = audit.clone();
            audit.detail["version"] = version.into();
            append_audit!(tx, new.now_ms, &audit);
            tx.commit().await?;
            Ok(version)
        })
    }

    /// Every version of a service, newest first.
    pub async fn versions(&self, service_id: i64) -> StoreResult<Vec<VersionRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, VersionRow>(
                "SELECT service_id, version, document, etag, risk_tier, author, approver, message, created_at \
                 FROM policy_versions WHERE service_id = $1 ORDER BY version DESC",
            )
            .bind(service_id)
            .fetch_all(pool)
            .await?)
        })
    }

    /// One version.
    pub async fn version(&self, service_id: i64, version: i64) -> StoreResult<Option<VersionRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, VersionRow>(
                "SELECT service_id, version, document, etag, risk_tier, author, approver, message, created_at \
                 FROM policy_versions WHERE service_id = $1 AND version = $2",
            )
            .bind(service_id)
            .bind(version)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// What the service's instances should run (empty before the first publish).
    pub async fn rollout(&self, service_id: i64) -> StoreResult<RolloutRow> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, RolloutRow>(
                "SELECT active_version, canary_version, canary_percent FROM rollouts WHERE service_id = $1",
            )
            .bind(service_id)
            .fetch_optional(pool)
            .await?
            .unwrap_or_default())
        })
    }

    /// Changes a running canary: `Some(p)` sets its share, `None` with
    /// `promote` makes it the active version, `None` without aborts it.
    /// Fails with NotFound when no canary runs.
    pub async fn change_canary(
        &self,
        service_id: i64,
        change: CanaryChange,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<RolloutRow> {
        // Each change binds only what it uses: (service, now[, percent]).
        let (sql, percent) = match change {
            CanaryChange::Percent(p) => (
                "UPDATE rollouts SET canary_percent = $3, updated_at = $2 \
                 WHERE service_id = $1 AND canary_version IS NOT NULL \
                 RETURNING active_version, canary_version, canary_percent",
                Some(p),
            ),
            CanaryChange::Promote => (
                "UPDATE rollouts SET active_version = canary_version, canary_version = NULL, \
                 canary_percent = NULL, updated_at = $2 \
                 WHERE service_id = $1 AND canary_version IS NOT NULL \
                 RETURNING active_version, canary_version, canary_percent",
                None,
            ),
            CanaryChange::Abort => (
                "UPDATE rollouts SET canary_version = NULL, canary_percent = NULL, updated_at = $2 \
                 WHERE service_id = $1 AND canary_version IS NOT NULL \
                 RETURNING active_version, canary_version, canary_percent",
                None,
            ),
        };
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut query = sqlx::query_as::<_, RolloutRow>(sql).bind(service_id).bind(now_ms);
            if let Some(p) = percent {
                query = query.bind(p);
            }
            let row = query
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
            append_audit!(tx, now_ms, audit);
            tx.commit().await?;
            Ok(row)
        })
    }

    /// Files a publish that waits for approval.
    pub async fn create_publish_request(
        &self,
        req: &PublishRequestRow,
        audit: &AuditRecord,
    ) -> StoreResult<()> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO publish_requests \
                 (id, service_id, document, message, canary_percent, reasons, author, created_at, status, \
                 base_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)",
            )
            .bind(&req.id)
            .bind(req.service_id)
            .bind(&req.document)
            .bind(&req.message)
            .bind(req.canary_percent)
            .bind(&req.reasons)
            .bind(&req.author)
            .bind(req.created_at)
            .bind(req.base_version)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, req.created_at, audit);
            tx.commit().await?;
            Ok(())
        })
    }

    /// One publish request.
    pub async fn publish_request(&self, id: &str) -> StoreResult<Option<PublishRequestRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, PublishRequestRow>(
                "SELECT id, service_id, document, message, canary_percent, reasons, author, created_at, status, \
                 decided_by, decided_at, version, base_version FROM publish_requests WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Publish requests, newest first, optionally only those with `status`.
    pub async fn publish_requests(
        &self,
        status: Option<&str>,
    ) -> StoreResult<Vec<PublishRequestRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, PublishRequestRow>(
                "SELECT id, service_id, document, message, canary_percent, reasons, author, created_at, status, \
                 decided_by, decided_at, version, base_version FROM publish_requests \
                 WHERE ($1 IS NULL OR status = $1) ORDER BY created_at DESC, id LIMIT 500",
            )
            .bind(status)
            .fetch_all(pool)
            .await?)
        })
    }

    /// How many publish requests wait for a decision and were not filed by
    /// `author` (who may not decide them).
    pub async fn pending_publish_requests_not_by(&self, author: &str) -> StoreResult<i64> {
        with_db!(self, pool => {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM publish_requests WHERE status = 'pending' AND author <> $1",
            )
            .bind(author)
            .fetch_one(pool)
            .await?;
            Ok(n)
        })
    }

    /// Approves a pending request and publishes it in one transaction, or
    /// rejects it. A request already decided is a [`StoreError::Conflict`].
    pub async fn decide_publish_request(
        &self,
        id: &str,
        approve: bool,
        decider: &str,
        new: Option<&NewVersion<'_>>,
        now_ms: i64,
        audit: &AuditRecord,
    ) -> StoreResult<Option<i64>> {
        with_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let status = if approve { "approved" } else { "rejected" };
            let updated = sqlx::query(
                "UPDATE publish_requests SET status = $2, decided_by = $3, decided_at = $4 \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(status)
            .bind(decider)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() != 1 {
                return Err(StoreError::Conflict("publish_requests.status".into()));
            }
            let version = match (approve, new) {
                (true, Some(new)) => {
                    let v = publish_in_tx!(tx, new);
                    sqlx::query("UPDATE publish_requests SET version = $2 WHERE id = $1")
                        .bind(id)
                        .bind(v)
                        .execute(&mut *tx)
                        .await?;
                    Some(v)
                }
                _ => None,
            };
            let mut audit = audit.clone();
            if let Some(v) = version {
                audit.detail["version"] = v.into();
            }
            append_audit!(tx, now_ms, &audit);
            tx.commit().await?;
            Ok(version)
        })
    }

    /// Records a heartbeat.
    pub async fn upsert_instance(&self, service_id: i64, row: &InstanceRow) -> StoreResult<()> {
        with_db!(self, pool => {
            sqlx::query(
                "INSERT INTO instances \
                 (service_id, instance_id, agent_version, policy_version, policy_source, started_at, last_seen_at, \
                 refused_version, refused_source, refused_errors, refused_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (service_id, instance_id) DO UPDATE SET agent_version = excluded.agent_version, \
                 policy_version = excluded.policy_version, policy_source = excluded.policy_source, \
                 started_at = excluded.started_at, last_seen_at = excluded.last_seen_at, \
                 refused_version = excluded.refused_version, refused_source = excluded.refused_source, \
                 refused_errors = excluded.refused_errors, refused_at = excluded.refused_at",
            )
            .bind(service_id)
            .bind(&row.instance_id)
            .bind(&row.agent_version)
            .bind(row.policy_version)
            .bind(&row.policy_source)
            .bind(row.started_at)
            .bind(row.last_seen_at)
            .bind(row.refused.refused_version)
            .bind(&row.refused.refused_source)
            .bind(&row.refused.refused_errors)
            .bind(row.refused.refused_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// A service's instances seen since `since_ms`, most recent first.
    pub async fn instances(&self, service_id: i64, since_ms: i64) -> StoreResult<Vec<InstanceRow>> {
        with_db!(self, pool => {
            Ok(sqlx::query_as::<_, InstanceRow>(
                "SELECT instance_id, agent_version, policy_version, policy_source, started_at, last_seen_at, \
                 refused_version, refused_source, refused_errors, refused_at \
                 FROM instances WHERE service_id = $1 AND last_seen_at >= $2 ORDER BY last_seen_at DESC, instance_id",
            )
            .bind(service_id)
            .bind(since_ms)
            .fetch_all(pool)
            .await?)
        })
    }
}

/// A change to a running canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryChange {
    /// Change the share of instances in the canary.
    Percent(i64),
    /// Make the canary the active version for all.
    Promote,
    /// Drop the canary; everyone runs the active version.
    Abort,
}
